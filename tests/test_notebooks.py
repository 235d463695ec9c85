import re
from pathlib import Path

import nbformat
import pytest

from dalle2_lessons import course, notebooks
from dalle2_lessons.notebooks import NotebookFormatError, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_exercise_notebooks_are_not_stale():
    bad = notebooks.stale(ROOT)
    assert not bad, f"stale: {[str(p.relative_to(ROOT)) for p in bad]}; run `python -m dalle2_lessons.notebooks`"


def test_same_lessons_in_both_folders_named_as_the_course_map():
    names = [p.name for p in SOLUTIONS]
    assert names and names == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names)
    assert {lesson.filename for lesson in course.LESSONS} == set(names)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_lesson_header_exercises_and_no_solutions_leak(path):
    solution = nbformat.read(path, as_version=4)
    exercise = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    for folder, nb in (("solutions", solution), ("notebooks", exercise)):
        assert nb.cells[0].source.startswith(course.colab_badge(folder, path.name))
        assert nb.cells[1].source == notebooks.SETUP_CELL
        assert all(c.get("outputs", []) == [] for c in nb.cells), f"{folder}/{path.name} has outputs"
    n_exercises = sum(c.source.count("# BEGIN SOLUTION") for c in solution.cells)
    assert n_exercises >= 1
    text = "\n".join(c.source for c in exercise.cells)
    assert "# BEGIN SOLUTION" not in text and "# SOLUTIONS ONLY" not in text
    assert text.count("raise NotImplementedError(") == n_exercises


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_lesson_ends_with_the_exercise_summary_and_repeats_no_cell(path):
    """A notebook assembled by a script once ended with two copies of its scorecard cells and no summary."""
    cells = nbformat.read(path, as_version=4).cells
    assert cells[-2].source.strip().endswith("dl.exercises.summary();")
    assert cells[-1].source.startswith("# SOLUTIONS ONLY")
    code = [c.source for c in cells if c.cell_type == "code" and c.source.strip()]
    repeated = {s.splitlines()[0] for s in code if code.count(s) > 1}
    assert not repeated, f"{path.name}: code cells repeated: {repeated}"


def test_strip_solutions_keeps_hints_and_indentation():
    src = ("def f(x):\n    # BEGIN SOLUTION (Exercise 9: double)\n    # HINT: add x to itself\n    return x + x\n"
           "    # END SOLUTION\n\ng = 1")
    assert strip_solutions(src) == (
        "def f(x):\n    # HINT: add x to itself\n    # YOUR CODE HERE\n"
        "    raise NotImplementedError('Exercise 9: double')\n\ng = 1"
    )


@pytest.mark.parametrize(
    "src, problem",
    [
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "name the exercise"),
        ("# BEGIN SOLUTION (a)\nx = 1", "without '# END SOLUTION'"),
        ("x = 1\n# END SOLUTION", "without '# BEGIN SOLUTION'"),
        ("# BEGIN SOLUTION (a)\n# BEGIN SOLUTION (b)\n# END SOLUTION", "nested"),
    ],
)
def test_malformed_markers_are_explained(src, problem):
    with pytest.raises(NotebookFormatError, match=re.escape(problem)):
        strip_solutions(src)


def test_stale_detects_an_edited_exercise_notebook(tmp_path):
    for folder in ("solutions", "notebooks"):
        (tmp_path / folder).mkdir()
    src = SOLUTIONS[0]
    (tmp_path / "solutions" / src.name).write_text(src.read_text())
    (tmp_path / "notebooks" / src.name).write_text((ROOT / "notebooks" / src.name).read_text())
    assert notebooks.stale(tmp_path) == []
    nb = nbformat.read(tmp_path / "solutions" / src.name, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("a new paragraph"))
    nbformat.write(nb, tmp_path / "solutions" / src.name)
    # the exercise notebook lags behind, and the hand-saved solution needs its ids and header normalised
    assert notebooks.stale(tmp_path) == [tmp_path / "solutions" / src.name, tmp_path / "notebooks" / src.name]
    (tmp_path / "notebooks" / "99_orphan.ipynb").write_text("{}")
    assert tmp_path / "notebooks" / "99_orphan.ipynb" in notebooks.stale(tmp_path)
