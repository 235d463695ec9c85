"""Shared test setup. Runs before any notebook kernel starts, so the notebooks inherit it."""

import os

# The README's test command runs every notebook; without a profile they would take the `cpu`
# profile's ten minutes each. Tests and notebooks run in the `ci` profile unless told otherwise.
os.environ.setdefault("DALLE2_LESSONS_PROFILE", "ci")

# `pytest` runs in parallel (pytest-xdist, one worker per core, `--dist loadscope` so a notebook's cells stay together
# in one worker and one kernel). Each worker and its notebook kernels then compute on one thread: two workers with a
# thread per core beat one worker with two threads (the small models here do not keep two threads busy), and more
# threads than cores would make every worker wait for the others.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402

import pytest  # noqa: E402

# How the quality bounds in these tests were set. A bound on a trained or sampled result (an accuracy, a loss ratio)
# holds on any x86 CPU only if it sits below what several seeds *and* several CPUs measure, with a margin: floating
# point differs between BLAS kernels, so one machine's number is one draw. Tests that bound such a number use the two
# fixtures below; a run with
#     DALLE2_TEST_SEED=1 DALLE2_TEST_MEASUREMENTS=m.jsonl pytest tests
# draws other random numbers and appends every measured value to m.jsonl. Each bound's comment states the range those
# runs measured: `bash tests/measure_bounds.sh` makes them (seeds 0-2, then kernels forced to AVX2 and to plain SSE,
# and one thread, standing in for other processors).
SEED = int(os.environ.get("DALLE2_TEST_SEED", "0"))
MEASUREMENTS = os.environ.get("DALLE2_TEST_MEASUREMENTS")


@pytest.fixture
def test_seed() -> int:
    """The seed of the statistical tests: 0 unless ``DALLE2_TEST_SEED`` says otherwise."""
    return SEED


@pytest.fixture
def measured(request):
    """``measured(name, value)`` returns ``value`` and, with ``DALLE2_TEST_MEASUREMENTS`` set, appends it to that
    JSON-lines file with the test, the seed and the CPU kernels in use."""

    def record(name: str, value: float) -> float:
        value = float(value)
        if MEASUREMENTS:
            import torch

            row = {"test": request.node.nodeid, "name": name, "value": value, "seed": SEED,
                   "kernels": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
            with open(MEASUREMENTS, "a") as f:
                f.write(json.dumps(row) + "\n")
        return value

    return record


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    """Each notebook starts from a learner's fresh checkout: its kernel gets an empty folder of its own for what the
    learner trains (``DALLE2_LESSONS_RUNS``), so a lesson loads the course's shipped checkpoints, as it does for a
    learner who opens it first on Colab. That is the course's promise (every lesson runs on its own) and it keeps
    notebooks that run at the same time, in parallel workers, from reading each other's half-written files."""
    notebook = item.parent
    starting = type(notebook).__name__ == "IPyNbFile" and getattr(notebook, "kernel", None) is None
    before = os.environ.get("DALLE2_LESSONS_RUNS")
    if starting:  # the kernel starts in this setup and copies the environment as it is now
        os.environ["DALLE2_LESSONS_RUNS"] = str(item.config._tmp_path_factory.mktemp(f"runs-{notebook.path.stem}"))
    yield
    if starting:  # the unit tests that run later in this process keep the usual folder
        if before is None:
            os.environ.pop("DALLE2_LESSONS_RUNS", None)
        else:
            os.environ["DALLE2_LESSONS_RUNS"] = before
