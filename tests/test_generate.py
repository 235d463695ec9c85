"""The command line fails early and plainly: one line and exit status 2 for a user's mistake, before any work."""

import os
import subprocess
import sys

import pytest
from PIL import Image

from dalle2_lessons import generate, profiles
from dalle2_lessons.generate import UsageError, check_out, check_prompts, main


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_profile_names_match_the_profiles():
    assert generate.PROFILE_NAMES == tuple(profiles.PROFILES)


@pytest.mark.parametrize("out, why", [("grid", "image extension"), ("grid.txt", "image extension")])
def test_an_output_name_without_an_image_extension_is_refused_first(capsys, out, why):
    code, err = run(capsys, "a red circle", "-o", out)
    assert code == 2 and why in err and err.count("\n") == 1


def test_an_output_under_a_file_or_naming_a_folder_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_out(str(tmp_path / "afile" / "out.png"))
    with pytest.raises(UsageError, match="is a folder"):
        check_out(str(tmp_path))
    assert check_out(str(tmp_path / "new" / "deeper" / "out.jpg")).suffix == ".jpg"  # folders are made later


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UsageError, match="cannot write"):
        check_out(str(locked / "out.png"))


@pytest.mark.parametrize("flag", ["--decoder-steps", "--prior-steps", "--upsampler-steps", "-n", "--batch-size"])
def test_counts_below_one_are_refused(capsys, flag):
    with pytest.raises(SystemExit) as exit_:
        main(["a red circle", flag, "0"])
    assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_a_device_that_is_not_there_is_refused(capsys):
    code, err = run(capsys, "a red circle", "--device", "foo")
    assert code == 2 and "not a device name" in err and err.count("\n") == 1
    import torch

    if not torch.cuda.is_available():
        code, err = run(capsys, "a red circle", "--device", "cuda")
        assert code == 2 and "no CUDA GPU" in err


def test_prompts_keep_their_sentence_marks_out_and_name_the_one_that_fails():
    check_prompts(["a red circle.", "A Red Circle!", "a small blue square in the top left?"])  # no error
    with pytest.raises(UsageError, match=r"prompt 2 of 3 \(''\): The prompt is empty"):
        check_prompts(["a red circle", "", "a blue square"])
    with pytest.raises(UsageError, match=r"prompt \('a red dragon'\).*'dragon'"):
        check_prompts(["a red dragon"])


def test_a_missing_checkpoint_is_one_line_naming_the_rebuild_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DALLE2_LESSONS_DATA", str(tmp_path))
    code, err = run(capsys, "a red circle", "-o", str(tmp_path / "x.png"))
    assert code == 1 and err.count("\n") == 1 and "python -m dalle2_lessons.clip" in err
    assert not (tmp_path / "x.png").exists()


def test_help_needs_no_torch():
    probe = ("import sys; from dalle2_lessons.generate import parse_args; parse_args(['x']); "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_many_images_are_drawn_in_batches_into_one_grid(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["a red circle", "a blue square", "-n", "3", "--batch-size", "4", "-o", str(out), "--prior-steps", "2",
                 "--decoder-steps", "2", "--upsampler-steps", "2", "--device", "cpu"]) == 0
    assert "drew 6 images" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (3 * (128 + generate.PAD) + generate.PAD, 2 * (generate.CAPTION_HEIGHT + 128 + generate.PAD))


def test_drawing_leaves_autograd_on_for_the_program_around_it(tmp_path):
    import torch

    main(["a red circle", "-n", "1", "-o", str(tmp_path / "g.png"), "--prior-steps", "1", "--decoder-steps", "1",
          "--upsampler-steps", "1", "--device", "cpu"])
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("width", ["-0.1", "3"])
def test_an_upsampler_input_blur_outside_0_to_2_pixels_is_refused(capsys, width):
    with pytest.raises(SystemExit) as exit_:
        main(["a red circle", "--upsampler-input-blur", width])
    assert exit_.value.code == 2 and "--upsampler-input-blur" in capsys.readouterr().err


def test_options_left_unset_keep_the_pipelines_defaults(tmp_path, monkeypatch):
    import torch

    from dalle2_lessons.unclip import Generation, UnCLIP

    asked = []

    class Recorder:
        def generate(self, prompts, **kwargs):
            asked.append(kwargs)
            return Generation(prompts, torch.zeros(len(prompts), 4), torch.zeros(len(prompts), 3, 32, 32),
                              torch.zeros(len(prompts), 3, 64, 64))

    monkeypatch.setattr(UnCLIP, "load", classmethod(lambda cls, *args, **kwargs: Recorder()))
    assert main(["a red circle", "-o", str(tmp_path / "a.png"), "--device", "cpu"]) == 0
    assert main(["a red circle", "-o", str(tmp_path / "b.png"), "--device", "cpu", "--decoder-scale", "1.5",
                 "--upsampler-input-blur", "0"]) == 0
    assert "decoder_scale" not in asked[0] and "upsampler_input_blur" not in asked[0]  # UnCLIP.generate's own
    assert asked[1]["decoder_scale"] == 1.5 and asked[1]["upsampler_input_blur"] == 0.0
