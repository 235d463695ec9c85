import json

import pytest
import torch

from dalle2_lessons import checkpoints
from dalle2_lessons.checkpoints import CheckpointError, find_checkpoint, load_checkpoint, load_into, save_checkpoint


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_round_trip(tmp_path):
    model = _model()
    path = save_checkpoint("toy", model.state_dict(), {"width": 8}, tmp_path, metrics={"acc": 0.5}, rebuild="make toy")
    assert path.suffix == ".safetensors" and (tmp_path / "toy.json").is_file()
    ckpt = load_checkpoint("toy", tmp_path)
    assert ckpt.config == {"width": 8} and ckpt.metrics == {"acc": 0.5} and ckpt.meta["rebuild"] == "make toy"
    other = load_into(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)), ckpt)
    x = torch.randn(3, 4)
    assert torch.equal(other(x), model(x))


def test_missing_names_the_rebuild_command(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing.*python -m dalle2_lessons.judge --tier single"):
        load_checkpoint("judge-single", tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_weights(tmp_path, damage):
    save_checkpoint("toy", _model().state_dict(), {}, tmp_path, rebuild="python -m toy.rebuild")
    weights = tmp_path / "toy.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        weights.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        weights.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"corrupt.*python -m toy.rebuild"):
        load_checkpoint("toy", tmp_path)


def test_unreadable_weights_without_checksum(tmp_path):
    save_checkpoint("toy", _model().state_dict(), {}, tmp_path, rebuild="python -m toy.rebuild")
    meta = json.loads((tmp_path / "toy.json").read_text())
    del meta["sha256"]
    (tmp_path / "toy.json").write_text(json.dumps(meta))
    (tmp_path / "toy.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match=r"unreadable.*python -m toy.rebuild"):
        load_checkpoint("toy", tmp_path)


def test_corrupt_config(tmp_path):
    save_checkpoint("judge-single", _model().state_dict(), {}, tmp_path)
    (tmp_path / "judge-single.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"corrupt config.*dalle2_lessons.judge"):
        load_checkpoint("judge-single", tmp_path)


def test_wrong_model_is_a_clear_error(tmp_path):
    save_checkpoint("toy", _model().state_dict(), {}, tmp_path, rebuild="python -m toy.rebuild")
    with pytest.raises(CheckpointError, match=r"(?s)does not fit Linear.*Missing key.*python -m toy.rebuild"):
        load_into(torch.nn.Linear(4, 2), load_checkpoint("toy", tmp_path))


def test_own_checkpoint_is_preferred_and_announced(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DALLE2_LESSONS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DALLE2_LESSONS_RUNS", str(tmp_path / "runs"))
    save_checkpoint("toy", _model().state_dict(), {"who": "course"}, checkpoints.shipped_dir())
    assert find_checkpoint("toy", "cpu").config == {"who": "course"}
    assert "course checkpoint" in capsys.readouterr().out
    save_checkpoint("toy", _model().state_dict(), {"who": "me"}, checkpoints.runs_dir("cpu"))
    assert find_checkpoint("toy", "cpu").config == {"who": "me"}
    assert "your checkpoint" in capsys.readouterr().out
    assert find_checkpoint("toy", "ci").config == {"who": "course"}  # other profiles keep their own
    assert find_checkpoint("toy", "cpu", prefer_own=False).config == {"who": "course"}


def test_recorded_metrics_follow_the_same_choice_quietly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DALLE2_LESSONS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DALLE2_LESSONS_RUNS", str(tmp_path / "runs"))
    assert checkpoints.recorded_metrics("toy") == {}  # nothing there yet
    save_checkpoint("toy", _model().state_dict(), {}, checkpoints.shipped_dir(), metrics={"train_seconds": 60})
    save_checkpoint("toy", _model().state_dict(), {}, checkpoints.runs_dir("cpu"), metrics={"profile": "cpu"})
    capsys.readouterr()
    assert checkpoints.recorded_metrics("toy") == {"train_seconds": 60}
    assert checkpoints.recorded_metrics("toy", "cpu") == {"profile": "cpu"}
    assert checkpoints.recorded_metrics("toy", "ci") == {"train_seconds": 60}
    assert capsys.readouterr().out == ""


def test_shipped_checkpoints_load_and_have_no_pickles():
    shipped = sorted(checkpoints.shipped_dir().glob("*.json"))
    assert shipped, "the course ships at least the judges"
    for meta in shipped:
        ckpt = load_checkpoint(meta.stem)
        assert ckpt.meta["rebuild"], f"{meta.stem} does not say how to rebuild it"
    assert not [p for p in checkpoints.REPO_ROOT.joinpath("data").rglob("*") if p.suffix in {".pt", ".pth", ".pkl", ".bin"}]


def test_rebuild_commands_are_spelled_like_the_shipped_ones():
    from dalle2_lessons import checkpoints

    assert checkpoints.command("guidance", profile="cpu", steps=1500, condition=None, eval_every=250) == checkpoints.REBUILD_COMMANDS["text-diffusion"]
    assert checkpoints.command("decoder", profile="cpu", steps=1500, eval_every=250) == checkpoints.REBUILD_COMMANDS["decoder"]
