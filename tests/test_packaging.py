import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    from dalle2_lessons.colab import requirement_name  # the parser the Colab install uses

    return requirement_name(requirement).lower()


def test_environment_yml_lists_what_pyproject_declares():
    project = _pyproject()["project"]
    declared: dict[str, str] = {}
    for group in (project["dependencies"], project["optional-dependencies"]["lab"],
                  project["optional-dependencies"]["test"]):
        # an extra's bound replaces the dependency's (ipywidgets>=8 for the lab)
        declared.update({_name(r): r for r in group})
    env = (ROOT / "environment.yml").read_text()
    pip_section = env.split("- pip:", 1)[1]
    listed = {m.strip().strip("\"'") for m in re.findall(r"^\s+- (.+)$", pip_section, flags=re.M)}
    listed.discard("-e .")
    assert listed == set(declared.values()), (
        f"only in environment.yml: {listed - set(declared.values())}; "
        f"only in pyproject: {set(declared.values()) - listed}")


def test_required_dependencies_are_what_the_lessons_import_and_colab_already_has():
    project = _pyproject()["project"]
    names = {_name(d) for d in project["dependencies"]}
    assert names == {"torch", "torchvision", "matplotlib", "numpy", "transformers", "ipywidgets", "tqdm", "safetensors"}
    # Colab ships ipywidgets 7.7 and renders widgets only with 7: the course must accept it and must not pull in 8.
    assert "ipywidgets>=7.6" in project["dependencies"]
    lab = {_name(d) for d in project["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "ipywidgets"} <= lab
    assert "nbval" in {_name(d) for d in project["optional-dependencies"]["test"]}


IMPORT_PROBE = """
import socket, sys, time
def no_network(*a, **k):
    raise AssertionError("importing dalle2_lessons touched the network")
socket.socket.connect = no_network
socket.create_connection = no_network
t = time.perf_counter()
import dalle2_lessons
seconds = time.perf_counter() - t
print(seconds, "torch" in sys.modules)
"""


def test_import_is_fast_and_offline():
    probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
    out = probe.stdout.split()
    seconds, torch_loaded = float(out[0]), out[1] == "True"
    print(f"import dalle2_lessons: {seconds * 1000:.0f} ms")
    assert seconds < 2 and not torch_loaded


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    setup = [c.strip() for c in commands if "pip install" in c]
    assert len(setup) == 2, setup
    assert "jupyter lab" in setup[0]
    assert "pytest" in setup[1]
    assert setup[1] in (ROOT / ".ci" / "run").read_text(), ".ci/run must run the README's test command"


def test_lazy_submodules_resolve():
    import dalle2_lessons as dl

    assert dl.shapes.COLOURS and callable(dl.setup_lesson) and "shapes" in dir(dl)


def test_readme_lists_every_lesson_with_its_badge_and_minutes():
    from dalle2_lessons import course

    readme = (ROOT / "README.md").read_text()
    for lesson in course.LESSONS:
        row = next((line for line in readme.splitlines() if line.startswith(f"| {lesson.number} |")), None)
        assert row, f"README has no row for lesson {lesson.number}"
        assert course.colab_badge("notebooks", lesson.filename) in row
        if lesson.cpu_minutes is not None:
            assert f"| {lesson.cpu_minutes:.1f} |" in row
