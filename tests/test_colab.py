"""The Colab setup cell installs the course without changing what Colab ships (ipywidgets 7 above all)."""

import json
import sys

from dalle2_lessons import colab, notebooks


def test_only_absent_requirements_are_missing_whatever_the_installed_version():
    assert colab.missing(["tqdm>=4", "a-package-nobody-installed>=1"]) == ["a-package-nobody-installed>=1"]
    assert colab.missing(["ipywidgets>=999"]) == [], "an installed package is never upgraded, even below a bound"


def test_the_course_requires_exactly_what_pyproject_says_without_extras():
    import tomllib

    declared = tomllib.loads((notebooks.REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert colab.requirements() == declared
    assert not [r for r in colab.requirements() if colab.requirement_name(r) in {"jupyterlab", "nbval", "pytest"}]
    assert colab.install_missing(dry_run=True) == []  # this environment has them all


def test_pip_is_asked_for_exactly_the_missing_packages_and_no_upgrade():
    cmd = colab.pip_command(["a-package>=1"])
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and cmd[-1] == "a-package>=1"
    assert "--upgrade" not in cmd and "-U" not in cmd and cmd[cmd.index("--upgrade-strategy") + 1] == "only-if-needed"


def test_every_lesson_installs_the_course_without_its_dependencies_on_colab():
    setup = notebooks.SETUP_CELL
    assert "%pip install --quiet --no-deps -e" in setup and "install_missing()" in setup
    assert setup.index("sys.path.insert") < setup.index("from dalle2_lessons.colab import install_missing")
    for folder in ("notebooks", "solutions"):
        for path in sorted((notebooks.REPO_ROOT / folder).glob("*.ipynb")):
            cell = "".join(json.loads(path.read_text())["cells"][1]["source"])
            assert cell == setup, f"{path.name}: setup cell is stale (python -m dalle2_lessons.notebooks)"
