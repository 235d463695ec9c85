"""Installing the course on Colab without changing anything Colab ships.

Colab comes with PyTorch, torchvision, NumPy, Matplotlib, transformers, tqdm, safetensors and ipywidgets 7.7,
and its notebook front end renders widgets only with ipywidgets 7: upgrading it to 8 makes every slider vanish.
A plain ``pip install -e`` would upgrade any package whose installed version misses a bound, so the setup cell
of every lesson installs the course with ``--no-deps`` and then calls :func:`install_missing`, which installs
only the requirements that are absent and never touches one that is there::

    %pip install --quiet --no-deps -e /content/dalle2-from-scratch
    from dalle2_lessons.colab import install_missing
    install_missing()

Nothing here imports PyTorch, so it runs before anything else in the lesson.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

DISTRIBUTION = "dalle2-lessons"


def requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """The distribution's own requirements (``"torch>=2.2"``, ...), without those of its extras: from the installed
    metadata, or, where pip has not registered it yet, from the ``pyproject.toml`` of the checkout beside this file."""
    try:
        return [r for r in metadata.requires(distribution) or [] if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
        return pyproject["project"]["dependencies"]


def requirement_name(requirement: str) -> str:
    """``"ipywidgets>=7.6"`` → ``"ipywidgets"``."""
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]


def missing(reqs: list[str]) -> list[str]:
    """The requirements whose package is not installed at all (an installed one counts, whatever its version)."""
    out = []
    for r in reqs:
        try:
            metadata.version(requirement_name(r))
        except metadata.PackageNotFoundError:
            out.append(r)
    return out


def pip_command(reqs: list[str]) -> list[str]:
    """``pip install`` of exactly ``reqs``, leaving every installed package as it is (``--upgrade-strategy
    only-if-needed`` is pip's default; it is spelled out because upgrading is what this module exists to avoid)."""
    return [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade-strategy", "only-if-needed", *reqs]


def install_missing(distribution: str = DISTRIBUTION, dry_run: bool = False) -> list[str]:
    """Install the requirements of ``distribution`` that are not installed; return them (``[]``: nothing to do).

    With ``dry_run``, only report. Installed packages are never upgraded, even where older than a bound: the
    course's bounds are set so that what Colab ships meets them.
    """
    todo = missing(requirements(distribution))
    if todo and not dry_run:
        print("installing what this machine lacks:", " ".join(todo))
        subprocess.run(pip_command(todo), check=True)
    return todo
