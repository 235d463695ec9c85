import json
import re

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
        load_checkpoint("judge-single-v2", tmp_path)


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
    save_checkpoint("judge-single-v2", _model().state_dict(), {}, tmp_path)
    (tmp_path / "judge-single-v2.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"corrupt config.*dalle2_lessons.judge"):
        load_checkpoint("judge-single-v2", tmp_path)


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


def test_shipped_checkpoints_load_and_have_no_pickles():
    shipped = sorted(checkpoints.shipped_dir().glob("*.json"))
    assert shipped, "the course ships at least the judges"
    for meta in shipped:
        ckpt = load_checkpoint(meta.stem)
        assert ckpt.meta["rebuild"], f"{meta.stem} does not say how to rebuild it"
    assert not [p for p in checkpoints.REPO_ROOT.joinpath("data").rglob("*")
                if p.suffix in {".pt", ".pth", ".pkl", ".bin"}]


def test_one_rebuild_command_per_checkpoint_everywhere():
    """``REBUILD_COMMANDS`` is the one place a rebuild command is written: every shipped checkpoint recorded exactly
    that command, and the README's table of checkpoints shows it (so a missing-file error names what was run)."""
    shipped = {p.stem for p in checkpoints.shipped_dir().glob("*.json")}
    assert shipped == set(checkpoints.REBUILD_COMMANDS)
    for name in shipped:
        assert load_checkpoint(name).meta["rebuild"] == checkpoints.REBUILD_COMMANDS[name], name
    readme = (checkpoints.REPO_ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| `(python -m [^`]+)` \|", readme, flags=re.M))
    assert rows == checkpoints.REBUILD_COMMANDS


def test_rebuild_commands_are_spelled_like_the_shipped_ones():
    from dalle2_lessons import checkpoints

    assert (checkpoints.command("guidance", profile="cpu", steps=2600, condition=None, eval_every=500, version="v2",
                                batch_size=64, prediction_type="v_prediction")
            == checkpoints.REBUILD_COMMANDS["text-diffusion-v2"])
    first = checkpoints.command("decoder", profile="cpu", steps=2600, eval_every=None, version="v2", batch_size=64,
                                prediction_type=None)
    then = checkpoints.command("decoder", profile="cpu", steps=4000, eval_every=None, version="v2", batch_size=64,
                               prediction_type=None, lr=0.001, seed=1, init="runs/decoder-stage1/decoder-v2")
    assert f"{first} --out runs/decoder-stage1 && {then}" == checkpoints.REBUILD_COMMANDS["decoder-v2"]


# ----------------------------------------------------------------------------------------------
# Lineage: a stage is only ever paired with the CLIP it was trained on.


def _clip_from_another_seed(seed: int = 1):
    """A CLIP shaped like the course's with other weights: what a learner's lesson-01 run leaves in runs/."""
    from dalle2_lessons.clip import CLIP, CLIPConfig

    torch.manual_seed(seed)
    return CLIP(CLIPConfig(**checkpoints.load_checkpoint("clip-v2").config))


def test_every_shipped_stage_records_the_shipped_clip_it_was_trained_on():
    clip_sha = checkpoints.read_meta("clip-v2", checkpoints.shipped_dir())["sha256"]
    for name, parents in checkpoints.PARENTS.items():
        meta = checkpoints.read_meta(name, checkpoints.shipped_dir())
        assert meta["parents"] == {p: clip_sha for p in parents}, name


def test_a_stage_that_reads_embeddings_must_name_its_parents(tmp_path):
    with pytest.raises(CheckpointError, match="parents"):
        save_checkpoint("prior-v2", _model().state_dict(), {}, tmp_path)
    with pytest.raises(CheckpointError, match="not loaded from a checkpoint"):
        save_checkpoint("prior-v2", _model().state_dict(), {}, tmp_path, parents={"clip": _model()})
    with pytest.raises(TypeError, match="parents"):
        checkpoints.load_model("prior-v2", lambda config: _model())


def test_a_learners_clip_is_never_paired_with_course_stages(tmp_path, monkeypatch, capsys):
    """The bug this guards against: lesson 01 saves your CLIP; lessons 06-09 fed its embeddings to the course prior and
    decoder (trained on the course CLIP) and drew wrong colours and blobs without a word."""
    from dalle2_lessons import decoder, prior, unclip
    from dalle2_lessons.clip import load_clip

    monkeypatch.setenv("DALLE2_LESSONS_RUNS", str(tmp_path))
    mine = _clip_from_another_seed()
    save_checkpoint("clip-v2", mine.state_dict(), mine.config_dict(), checkpoints.runs_dir("cpu"))
    course_sha = checkpoints.read_meta("clip-v2", checkpoints.shipped_dir())["sha256"]

    yours = load_clip("cpu")  # lessons that train on your CLIP (01, 10, 11) still get it
    assert yours.origin.path.parent == checkpoints.runs_dir("cpu") and yours.origin.sha256 != course_sha

    # Refused: the course prior was trained on another CLIP, and nothing in runs/ was trained on yours.
    with pytest.raises(CheckpointError, match=r"(?s)No 'prior-v2' checkpoint was trained on the clip.*--clip yours"):
        prior.load_prior("cpu", clip=yours)

    # Resolved: the pipeline picks the course CLIP, because the prior and decoder it can load were trained on it,
    # and says so.
    capsys.readouterr()
    system = unclip.UnCLIP.load("cpu")
    out = capsys.readouterr().out
    assert "Your CLIP" in out and "is not used here" in out and "prior-v2 or decoder-v2" in out
    assert system.clip.origin.sha256 == course_sha
    assert system.prior.origin.parents == system.decoder.origin.parents == {"clip": course_sha}

    # Once both stages are trained on your CLIP (here: course weights saved as if they were), yours is used throughout.
    for stage, make in (("prior-v2", lambda: prior.load_prior(clip=system.clip)),
                        ("decoder-v2", lambda: decoder.load_decoder(clip=system.clip))):
        model = make()
        save_checkpoint(stage, model.state_dict(), model.config_dict(), checkpoints.runs_dir("cpu"),
                        parents={"clip": yours})
    system = unclip.UnCLIP.load("cpu")
    assert system.clip.origin.sha256 == yours.origin.sha256
    assert system.prior.origin.path.parent == system.decoder.origin.path.parent == checkpoints.runs_dir("cpu")


def test_a_learners_v2_clip_is_not_paired_with_course_v2_stages(tmp_path, monkeypatch, capsys):
    """The same guard for Shapes v2: your ``clip-v2`` is used only where the lesson's stages were trained on it."""
    from dalle2_lessons import guidance
    from dalle2_lessons.clip import load_clip

    monkeypatch.setenv("DALLE2_LESSONS_RUNS", str(tmp_path))
    mine = _clip_from_another_seed()
    save_checkpoint("clip-v2", mine.state_dict(), mine.config_dict(), checkpoints.runs_dir("cpu"))
    course_sha = checkpoints.read_meta("clip-v2", checkpoints.shipped_dir())["sha256"]
    assert load_clip("cpu", version="v2").origin.sha256 != course_sha  # without stages to feed: yours
    capsys.readouterr()
    clip_model = load_clip("cpu", for_stages=("text-diffusion",), version="v2")
    out = capsys.readouterr().out
    assert "is not used here" in out and "text-diffusion-v2" in out and clip_model.origin.sha256 == course_sha
    assert guidance.load_text_diffusion("cpu", clip=clip_model, version="v2").origin.parents == {"clip": course_sha}


def test_your_stage_trained_on_another_clip_is_skipped_with_a_reason(tmp_path, monkeypatch, capsys):
    from dalle2_lessons import prior
    from dalle2_lessons.clip import load_clip

    monkeypatch.setenv("DALLE2_LESSONS_RUNS", str(tmp_path))
    mine = _clip_from_another_seed(2)
    save_checkpoint("clip-v2", mine.state_dict(), mine.config_dict(), tmp_path / "elsewhere")
    other_sha = checkpoints.read_meta("clip-v2", tmp_path / "elsewhere")["sha256"]
    course = load_clip()
    model = prior.load_prior(clip=course)
    save_checkpoint("prior-v2", model.state_dict(), model.config_dict(), checkpoints.runs_dir("cpu"),
                    parents={"clip": other_sha})
    capsys.readouterr()
    chosen = prior.load_prior("cpu", clip=course)
    out = capsys.readouterr().out
    assert chosen.origin.path.parent == checkpoints.shipped_dir()
    assert "skipped your 'prior-v2'" in out and other_sha[:8] in out
    assert checkpoints.metrics_of(chosen) == checkpoints.load_checkpoint("prior-v2").metrics


def test_trained_in_all_counts_the_run_a_checkpoint_went_on_from():
    assert checkpoints.trained_in_all({"steps": 40, "train_seconds": 12.0}) == (40, 12.0)
    went_on = {"steps": 4000, "train_seconds": 2700.0, "init": {"steps": 2600, "train_seconds": 1800.0}}
    assert checkpoints.trained_in_all(went_on) == (6600, 4500.0)
    # a run that recorded no time (a lesson's own) leaves the total unknown, not silently short
    assert checkpoints.trained_in_all({"steps": 40, "init": {"steps": 10, "train_seconds": 5.0}}) == (50, None)
    shipped = checkpoints.read_meta("decoder-v2", checkpoints.shipped_dir())["metrics"]
    assert checkpoints.trained_in_all(shipped)[0] == shipped["steps"] + shipped["init"]["steps"]
