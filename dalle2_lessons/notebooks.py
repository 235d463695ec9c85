"""Generate the exercise notebooks (``notebooks/``) from the complete lessons (``solutions/``).

``solutions/`` is the one source of truth. In it, the code a learner should write sits between
markers inside a function::

    def caption_for(colour, shape, size, position):
        # BEGIN SOLUTION (Exercise 1: a caption template)
        # HINT: LOCATION_PHRASES turns "top left" into "in the top left".
        return f"a {size} {colour} {shape} {shapes.LOCATION_PHRASES[position]}"
        # END SOLUTION

and the exercise notebook gets, in its place::

        # HINT: LOCATION_PHRASES turns "top left" into "in the top left".
        # YOUR CODE HERE
        raise NotImplementedError("Exercise 1: a caption template")

Cells whose first line is ``# SOLUTIONS ONLY`` (e.g. asserting that every reference solution
passes its checker) are left out of the exercise notebook. Outputs are stripped from both, and the
first two cells of every lesson (the Open-in-Colab badge and the Colab setup cell) are rewritten
from :mod:`dalle2_lessons.course`, the one place that names the repository.

Run after editing a lesson::

    python -m dalle2_lessons.notebooks          # rewrite solutions/ headers and regenerate notebooks/
    python -m dalle2_lessons.notebooks --check  # exit 1 if anything is stale (what the tests do)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from . import course

REPO_ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s*\((?P<name>[^)]*)\))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
HINT = re.compile(r"^\s*# HINT\b")
SOLUTIONS_ONLY = "# SOLUTIONS ONLY"
BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*$")

SETUP_CELL = f"""\
# Setup: on Colab this fetches and installs the course package; anywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    ![ -d {course.COLAB_CHECKOUT} ] || git clone --quiet --depth 1 {course.REPO_URL} {course.COLAB_CHECKOUT}
    %pip install --quiet --no-deps -e {course.COLAB_CHECKOUT}
    sys.path.insert(0, "{course.COLAB_CHECKOUT}")
    from dalle2_lessons.colab import install_missing
    install_missing()  # only what Colab lacks; upgrades nothing (Colab's widgets need its ipywidgets 7)

import dalle2_lessons as dl

profile, device = dl.setup_lesson(seed=0)"""

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class NotebookFormatError(ValueError):
    """A lesson breaks the authoring rules (unbalanced markers, unnamed exercise, missing header)."""


def _hints(block: list[str]) -> list[str]:
    """The hint lines of a solution block: each ``# HINT`` line and the comment lines that continue it."""
    kept: list[str] = []
    in_hint = False
    for line in block:
        in_hint = bool(HINT.match(line)) or (in_hint and line.lstrip().startswith("#"))
        if in_hint:
            kept.append(line)
    return kept


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every ``# BEGIN SOLUTION (name)`` … ``# END SOLUTION`` block with a placeholder."""
    out: list[str] = []
    block: list[str] | None = None
    indent = name = ""
    for line in source.splitlines():
        if (m := BEGIN.match(line)) is not None:
            if block is not None:
                raise NotebookFormatError(f"{where}: nested '# BEGIN SOLUTION'")
            if not m["name"]:
                raise NotebookFormatError(f"{where}: name the exercise, e.g. '# BEGIN SOLUTION (Exercise 1: ...)'")
            block, indent, name = [], m["indent"], m["name"].strip()
        elif END.match(line):
            if block is None:
                raise NotebookFormatError(f"{where}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            out += _hints(block)
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({name!r})"]
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise NotebookFormatError(f"{where}: '# BEGIN SOLUTION' without '# END SOLUTION'")
    return "\n".join(out)


def _clean(nb: nbformat.NotebookNode, folder: str, filename: str) -> nbformat.NotebookNode:
    """Strip outputs, set the kernel, and rewrite the badge and setup cells for ``folder``."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    cells = nb.cells
    if len(cells) < 2 or cells[0].cell_type != "markdown" or cells[1].cell_type != "code":
        raise NotebookFormatError(f"{filename}: a lesson starts with a Markdown title cell, then the setup cell")
    title_lines = cells[0].source.splitlines()
    if title_lines and BADGE.match(title_lines[0]):
        title_lines = title_lines[1:]
    cells[0].source = "\n".join([course.colab_badge(folder, filename), *title_lines])
    cells[1].source = SETUP_CELL
    for i, cell in enumerate(cells):
        cell.id = f"{Path(filename).stem[:2]}-{i:03d}"
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def exercise_version(solution: nbformat.NotebookNode, filename: str) -> nbformat.NotebookNode:
    """The learner's notebook made from a (clean) solution notebook."""
    nb = copy.deepcopy(solution)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.source.startswith(SOLUTIONS_ONLY))]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{filename} cell {i}")
    return _clean(nb, "notebooks", filename)


def build(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Every file that ``solutions/`` implies: ``{path: notebook JSON}`` for both folders."""
    files: dict[Path, str] = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        solution = _clean(nbformat.read(path, as_version=4), "solutions", path.name)
        files[path] = nbformat.writes(solution) + "\n"
        files[root / "notebooks" / path.name] = nbformat.writes(exercise_version(solution, path.name)) + "\n"
    return files


def stale(root: Path = REPO_ROOT) -> list[Path]:
    """Files in ``notebooks/`` or ``solutions/`` that differ from what :func:`build` makes, or should not exist."""
    files = build(root)
    out = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    out += [p for p in sorted((root / "notebooks").glob("*.ipynb")) if p not in files]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only report stale notebooks; exit 1 if any")
    args = p.parse_args(argv)
    bad = stale()
    if args.check:
        for path in bad:
            print(f"stale: {path.relative_to(REPO_ROOT)}")
        if bad:
            print("Run `python -m dalle2_lessons.notebooks` to regenerate.")
        return 1 if bad else 0
    files = build()
    (REPO_ROOT / "notebooks").mkdir(exist_ok=True)
    for path in bad:
        if path in files:
            path.write_text(files[path])
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        else:
            path.unlink()
            print(f"removed {path.relative_to(REPO_ROOT)} (no matching solution)")
    if not bad:
        print("notebooks/ and solutions/ are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
