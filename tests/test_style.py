"""The code style every contributor gets checked: ruff's pycodestyle (E, W, line length 120) and pyflakes (F) rules,
as configured in pyproject.toml, over the package, the tests and the benchmarks (notebooks are run, not linted)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")
    command = [sys.executable, "-m", "ruff", "check", "dalle2_lessons", "tests", "benchmarks"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
