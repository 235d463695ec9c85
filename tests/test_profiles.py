import dataclasses

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
    """Every count and step number of every lesson: ci ≤ cpu ≤ gpu; other settings (resolution, sizes
    of the model) are the same in all three, so checkpoints of one profile fit the next lesson of another."""
    ci, cpu, gpu = (profiles.PROFILES[k] for k in ("ci", "cpu", "gpu"))
    lessons = [f.name for f in dataclasses.fields(profiles.Profile) if f.name not in ("name", "description")]
    assert lessons, "no lesson settings"
    for lesson in lessons:
        a, b, c = (getattr(p, lesson) for p in (ci, cpu, gpu))
        for f in dataclasses.fields(a):
            values = [getattr(x, f.name) for x in (a, b, c)]
            if f.name.startswith("n_") or f.name in ("steps", "batch_size"):
                assert values[0] <= values[1] <= values[2], f"{lesson}.{f.name}: {values}"
            elif f.name in ("resolution", "embed_dim"):
                assert len(set(values)) == 1, f"{lesson}.{f.name} differs between profiles: {values}"


def test_setup_lesson_prints_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv(profiles.PROFILE_ENV, "ci")
    prof, device = profiles.setup_lesson(seed=3)
    a = torch.rand(3)
    out = capsys.readouterr().out
    assert prof.name == "ci" and "profile: ci" in out and f"device : {device}" in out
    profiles.setup_lesson(seed=3)
    assert torch.equal(a, torch.rand(3))
