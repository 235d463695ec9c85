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


def test_a_hint_keeps_its_comment_continuation_lines_and_nothing_after_them():
    src = ("def f(x):\n    # BEGIN SOLUTION (Exercise 9: double)\n    # HINT: add x\n    # to itself\n"
           "    y = x + x  # the answer\n    # a comment of the solution\n    return y\n    # END SOLUTION")
    assert strip_solutions(src) == ("def f(x):\n    # HINT: add x\n    # to itself\n    # YOUR CODE HERE\n"
                                    "    raise NotImplementedError('Exercise 9: double')")


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


#: Percentages and factors that may be typed into a lesson's prose: design constants and quoted paper figures, never
#: a result (issue #23). Each pattern must match the hit with its surroundings.
ALLOWED_PROSE_NUMBERS = (
    r"95%",  # the level of every interval the course reports
    r"exactly\s+50(\.0)?%",  # chance on a pair of captions, by construction (lesson 02)
    r"(random|dropped|embedding|guidance \(|for)\s*10%",  # the paper's condition dropout (GLIDE, unCLIP)
    r"caption\s+50%\s+of the time",  # unCLIP's caption dropout in the decoder
    r"70\.5% ± 2\.8%",  # the unCLIP paper's human preference for its diversity over GLIDE's (its section 5.3)
    r"400 million photos",  # CLIP's training set (Radford et al. 2021)
    r"12 billion parameters",  # DALL·E 1's transformer (Ramesh et al. 2021)
)
#: 86.7%, 4× (not the sizes 32×32), 0.8 million, 12 min, 3.5 s: results and timings
PROSE_NUMBER = re.compile(r"(?<![\w.×])\d+(?:\.\d+)?(?:\s?%|\s?×(?!\s?\d)"
                          r"|\s?(?:million|billion|thousand|minutes?|min|seconds?|hours?)\b|\s(?:s|ms)\b)")


def prose_numbers(source: str) -> list[str]:
    """The percentages, factors, counts in millions and timings in a markdown cell that no
    :data:`ALLOWED_PROSE_NUMBERS` pattern explains."""
    found = []
    for m in PROSE_NUMBER.finditer(source):
        context = source[max(0, m.start() - 40):m.end() + 25]
        if not any(re.search(p, context) and any(m.group(0) in hit.group(0) for hit in re.finditer(p, context))
                   for p in ALLOWED_PROSE_NUMBERS):
            found.append(context.replace("\n", " "))
    return found


def test_the_prose_number_scanner_catches_results_and_spares_constants():
    assert len(prose_numbers("the course checkpoint drew 86.7% all-correct samples, 4× faster")) == 2
    assert not prose_numbers("a 95% interval over 32×32 images; exactly 50% on every pair; a random 10% of images")
    assert prose_numbers("it scored 50% on the test set") != []
    assert len(prose_numbers("about 0.8 million parameters, trained in 12 min; 3.5 s per image")) == 3
    assert not prose_numbers("the sharpest pictures of the late 2010s, 1000 steps, lesson 05")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_no_result_is_typed_into_the_prose(path):
    """Numbers that a run produces are computed in the notebook (formatted from variables) or asserted, so a lesson's
    text cannot disagree with its printout in any profile."""
    cells = nbformat.read(path, as_version=4).cells
    typed = [hit for c in cells if c.cell_type == "markdown" for hit in prose_numbers(c.source)]
    assert not typed, f"{path.name}: results typed into markdown: {typed}"
