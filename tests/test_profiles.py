import pytest
import torch

from dalle2_lessons import profiles


def test_env_overrides(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "gpu")
    assert profiles.get_profile().name == "gpu"
    monkeypatch.setenv(profiles.PROFILE_ENV, " CPU ")
    assert profiles.get_profile().name == "cpu"


def test_auto_selection_follows_the_device(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    assert profiles.get_profile(device=torch.device("cuda")).name == "gpu"
    assert profiles.get_profile(device=torch.device("cpu")).name == "cpu"
    assert profiles.get_profile(device=torch.device("mps")).name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.get_device().type == "cuda"
    assert profiles.get_profile().name == "gpu"


def test_argument_beats_env(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "gpu")
    assert profiles.get_profile("ci").name == "ci"


def test_unknown_profile_lists_the_known(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "laptop")
    with pytest.raises(ValueError, match=r"'laptop' \(from DALLE2_LESSONS_PROFILE\).*ci, cpu, gpu"):
        profiles.get_profile()


def test_profiles_grow_from_ci_to_gpu():
    ci, cpu, gpu = (profiles.PROFILES[k] for k in ("ci", "cpu", "gpu"))
    for field in ("n_tour", "n_stats", "n_judge_eval"):
        assert getattr(ci.welcome, field) <= getattr(cpu.welcome, field) <= getattr(gpu.welcome, field)


def test_setup_lesson_prints_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv(profiles.PROFILE_ENV, "ci")
    prof, device = profiles.setup_lesson(seed=3)
    a = torch.rand(3)
    out = capsys.readouterr().out
    assert prof.name == "ci" and "profile: ci" in out and f"device : {device}" in out
    profiles.setup_lesson(seed=3)
    assert torch.equal(a, torch.rand(3))
