import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dalle2_lessons import diffusion, shapes, unclip
from dalle2_lessons.generate import CAPTION_HEIGHT, PAD, picture_grid
from dalle2_lessons.generate import main as generate_main


def test_slerp_stays_on_the_sphere_and_hits_both_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.nn.functional.normalize(torch.randn(2, 5, 16, generator=g), dim=-1)
    torch.testing.assert_close(unclip.slerp(a, b, 0.0), a)
    torch.testing.assert_close(unclip.slerp(a, b, 1.0), b)
    mid = unclip.slerp(a, b, 0.5)
    torch.testing.assert_close(mid.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(unclip.angle_degrees(a, mid), unclip.angle_degrees(mid, b), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(unclip.text_diff(a, b[:1], b[1:2], 0.0), a)


def test_ddim_inversion_round_trips_for_an_exact_model():
    # For data that is a single point x*, the exact noise predictor is ε(x_t, t) = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t):
    # inversion then sampling must give x* back.
    sched = diffusion.cosine_schedule(1000)
    x_star = torch.rand(2, 3, 4, 4) * 2 - 1

    def eps(x, t):
        a = sched.alphas_cumprod[t][:, None, None, None]
        return (x - a.sqrt() * x_star) / (1 - a).sqrt().clamp_min(1e-4)

    x_T = diffusion.ddim_invert(eps, x_star, sched, steps=50)
    back = diffusion.sample_ddim(eps, x_star.shape, sched, 50, x_T=x_T, clip_x0=False, progress=False)
    torch.testing.assert_close(back, x_star.clamp(-1, 1), atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def system():
    torch.manual_seed(0)
    return unclip.UnCLIP.load()


def test_the_course_pipeline_draws_single_object_test_captions(system, test_seed, measured):
    scenes = shapes.sample_scenes(32, "test", "single", seed=11 + test_seed)
    out = system.generate(scenes.full_captions, n=1, seed=test_seed, prior_steps=32, decoder_steps=25,
                          upsampler_steps=10, progress=False)
    assert out.images.shape == (32, 3, 64, 64) and out.low.shape == (32, 3, 32, 32)
    assert set(out.seconds) == {"text", "prior", "decoder", "upsampler"}
    from dalle2_lessons.judge import load_judge

    report = load_judge("single").score(out.images, torch.as_tensor(scenes.attrs))
    assert measured("all correct", report.all_correct) >= 0.8, report  # measured 1.0 in 6 runs (tests/conftest.py)


def test_variations_interpolations_text_diffs_and_inversion(system, measured):
    images = shapes.render(shapes.sample_scenes(2, "test", "single", seed=2), 32)
    assert system.variations(images, n=2, steps=10).shape == (4, 3, 64, 64)
    row = system.interpolate(images[0], images[1], n=3, steps=10)
    assert row.shape == (3, 3, 64, 64)
    diffs = system.text_diff(images[0], "a red circle", "a blue circle", weights=(0.0, 0.5), steps=10)
    assert diffs.shape == (2, 3, 64, 64)
    # lesson 09 passes the learner's slerp and text diff: they must be what runs
    used = []
    system.interpolate(images[0], images[1], n=2, steps=2, slerp_fn=lambda a, b, w: used.append("slerp") or a)
    system.text_diff(images[0], "a red circle", "a blue circle", weights=(0.5,), steps=2,
                     text_diff_fn=lambda z, f, t, w: used.append("text_diff") or z)
    assert used == ["slerp", "slerp", "text_diff"]
    several = shapes.render(shapes.sample_scenes(8, "test", "single", seed=2), 32)
    x_T, back = system.invert(several, steps=25)
    assert x_T.shape == several.shape and x_T.std() > 0.5  # a noise-like latent ...
    # ... from which η = 0 DDIM draws every picture back. Without the refinement (refine=0) the first picture, on grey,
    # came back on black (error 0.38 at 25, 50 and 100 steps; the others 0.006-0.010): the first-order inversion step
    # tipped it across the sampler's early choice of background. With refine=2: worst 0.005 with leading spacing, 0.021
    # with the decoder's trailing spacing
    assert measured("inversion error, worst picture", (back - several).abs().mean((1, 2, 3)).max()) < 0.05


def test_cli_refuses_an_unknown_word_with_a_clear_message(capsys):
    assert generate_main(["a small red dragon in the top left", "-o", "unused.png"]) == 2
    err = capsys.readouterr().err
    assert "dragon" in err and "error" in err


def test_cli_writes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    result = subprocess.run(
        [sys.executable, "-m", "dalle2_lessons.generate", "a small red circle in the top left",
         "a large blue square in the centre", "-n", "2", "-o", str(out),
         "--prior-steps", "8", "--decoder-steps", "8", "--upsampler-steps", "4", "--device", "cpu"],
        capture_output=True, text=True, timeout=1800,  # hang guards, not speed tests
    )
    assert result.returncode == 0, result.stderr
    assert "drew 4 images" in result.stdout and f"wrote {out.resolve()}" in result.stdout
    with Image.open(out) as im:  # 2 rows × 2 columns of 64-px images enlarged 2× to 128 px, under a caption band each
        assert im.size == (2 * (128 + PAD) + PAD, 2 * (CAPTION_HEIGHT + 128 + PAD))
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    first = pixels[:, CAPTION_HEIGHT:CAPTION_HEIGHT + 128, PAD:PAD + 128]
    blocks = first.reshape(3, 64, 2, 64, 2)
    assert (blocks == blocks[:, :, :1, :, :1]).all(), (
        "nearest neighbour: each drawn pixel is a 2×2 block, nothing smoothed")
    assert (pixels[:, 2:CAPTION_HEIGHT - 2, :] > 200).any(), "the caption is written above its row"


def test_picture_grid_scales_each_image_to_at_least_128_pixels():
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    grid = picture_grid(images, ["one", "two"], n=3)
    assert grid.size == (3 * (128 + PAD) + PAD, 2 * (CAPTION_HEIGHT + 128 + PAD))
    # 3×, whole factors
    assert picture_grid(torch.zeros(1, 3, 50, 50), ["x"], n=1).size == (150 + 2 * PAD, CAPTION_HEIGHT + 150 + PAD)


def test_cli_bad_prompt_exits_non_zero_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dalle2_lessons.generate", "a purple unicorn",
                             "-o", str(tmp_path / "x.png")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 2
    assert "unicorn" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_v2_pipeline_reads_partial_captions_and_draws_64_pixels():
    """Shapes v2 (issue #21): the v2 checkpoints fit together; a caption that leaves things out is a valid prompt."""
    pipe = unclip.UnCLIP.load(version="v2")
    out = pipe.generate(["something red", "a large circle in the top left"], n=2, prior_steps=4, decoder_steps=3,
                        upsampler_steps=2, progress=False)
    assert out.low.shape == (4, 3, 32, 32) and out.images.shape == (4, 3, 64, 64)
    assert out.images.min() >= -1 and out.images.max() <= 1
    assert pipe.embed(out.images).shape == (4, pipe.clip.config.embed_dim)


def test_the_pipeline_blurs_the_decoders_samples_before_upsampling_by_default(monkeypatch):
    """unCLIP.generate and UnCLIP.upsample hand the upsampler the pipeline's input blur unless told otherwise."""
    pipe = unclip.UnCLIP.load(version="v2")
    seen = []
    real = unclip.upsampler_lib.sample

    def spy(*args, **kwargs):
        seen.append(kwargs["input_blur"])
        return real(*args, **kwargs)

    monkeypatch.setattr(unclip.upsampler_lib, "sample", spy)
    low = pipe.generate(["a red circle"], prior_steps=2, decoder_steps=2, upsampler_steps=2, progress=False).low
    pipe.generate(["a red circle"], prior_steps=2, decoder_steps=2, upsampler_steps=2, progress=False,
                  upsampler_input_blur=0.0)
    pipe.upsample(low, 2)
    assert seen == [unclip.UPSAMPLER_INPUT_BLUR, 0.0, unclip.UPSAMPLER_INPUT_BLUR] and 0 < seen[0] <= 0.8


def test_the_pipeline_draws_at_its_decoder_guidance_unless_told_otherwise(monkeypatch):
    pipe = unclip.UnCLIP.load(version="v2")
    seen = []
    real = unclip.decoder_lib.sample

    def spy(decoder, z, tokens, mask, schedule, scale, *args, **kwargs):
        seen.append(scale)
        return real(decoder, z, tokens, mask, schedule, scale, *args, **kwargs)

    monkeypatch.setattr(unclip.decoder_lib, "sample", spy)
    steps = {"prior_steps": 2, "decoder_steps": 2, "upsampler_steps": 2, "progress": False}
    pipe.generate(["a red circle"], **steps)
    pipe.generate(["a red circle"], decoder_scale=4.0, **steps)
    assert seen == [unclip.DECODER_SCALE, 4.0] and 1 <= unclip.DECODER_SCALE <= 3  # picked in SHAPES_V2 section 5


@pytest.mark.slow
def test_the_cascade_meets_issue_21s_partial_caption_targets(measured):
    """``benchmarks/SHAPES_V2.md`` section 2 at its sizes (3 seeds × 12 captions × 16 samples; that section's two rows
    took 18 minutes together on 2 cores): unCLIP end to end at 64×64, as it ships (decoder guidance ``DECODER_SCALE``,
    its upsampler reading the decoder's samples through a blur of ``UPSAMPLER_INPUT_BLUR`` px), draws what full and
    partial captions name, varies what they leave free, and is within twice the real-vs-real floor in Shapes FID on
    partial captions."""
    from dalle2_lessons import scorecard

    pipe = unclip.UnCLIP.load(version="v2")
    shipped = scorecard.scorecard(scorecard.pipeline_generator(pipe, decoder_steps=25, upsampler_steps=15),
                                  (0, 1, 2), 2, 16)
    full, part = shipped["full"], shipped[scorecard.PARTIAL]
    # SHAPES_V2 section 2's unCLIP row (the same calls), as it ships (the 6,600-step decoder at guidance 1.25, the
    # upsampler rebuilt on area downsamples and read through a 0.3-px blur; 2026-12-05, 2 cores): fidelity 100% full,
    # 99.8% (98.9-100.7) partial; diversity 0.99 (0.94-1.03); partial FID 360 (199-521) against a floor of 289
    # (255-323); full-caption FID 42 (-32-117) against 26 (-16-68). With the 2,600-step decoder at guidance 2: 100%,
    # 98.8%, 0.98, 399, 130; with the earlier upsampler too (bilinear downsamples, 0.5 px): 100%, 99.2%, 0.98, 379, 65.
    assert measured("fidelity full", full["fidelity"]["mean"]) >= 0.95
    assert measured("fidelity partial", part["fidelity"]["mean"]) >= 0.90
    assert measured("diversity partial", part["diversity"]["mean"]) >= 0.8
    floor = part["fid_floor"]["mean"]
    assert measured("FID partial, shipped", part["fid"]["mean"]) <= 2 * floor
    # This test also asserted that the upsampler needs its input blur (section 4, guidance 3: read as they are, the
    # decoder's samples scored 1020 against 435 blurred). That held for the earlier upsampler, trained on downsamples
    # 0.5 px softer than the renders; the rebuilt one reads them as they are about as well (section 4's validation,
    # seeds 10-12, partial captions, 2,600-step decoder: 507 ± 62 as they are, 491 ± 54 at 0.3 px, 507 ± 57 at 0.15,
    # 537 ± 133 at 0.5; 6,600-step decoder: 382 ± 97, 373 ± 88, 381 ± 96, 646 ± 224), so the claim was dropped
    # rather than kept false.


@pytest.mark.slow
def test_the_cascade_meets_issue_21s_full_caption_target(measured):
    """``benchmarks/SHAPES_V2.md`` section 6's unCLIP row (3 seeds × 8 full captions × 16 samples; 370 s on 2 cores,
    the section's numbers exactly): on full captions the shipped cascade draws what they name and is within twice the
    real-vs-real floor in Shapes FID. Section 2's two full captions per seed are too few for that floor (its interval
    reaches 0), so this set is four times larger."""
    from dalle2_lessons import scorecard

    pipe = unclip.UnCLIP.load(version="v2")
    card = scorecard.scorecard(scorecard.pipeline_generator(pipe, decoder_steps=25, upsampler_steps=15),
                               (0, 1, 2), 8, 16, kinds=("full",))["full"]
    # SHAPES_V2 section 6 (the same calls, 2026-12-05, 2 cores): fidelity 100%, diversity of the background 1.01;
    # FID 29.1 (14.4-43.9) against a floor of 17.2 (8.7-25.8): 1.7x as a ratio of means, not confirmed by the
    # intervals. At the decoder's earlier guidance 2, on validation seeds 10-12: 52.9 against 16.7 (3.2x).
    assert measured("fidelity full (8 per seed)", card["fidelity"]["mean"]) >= 0.95
    floor = measured("FID floor full (8 per seed)", card["fid_floor"]["mean"])
    assert measured("FID full (8 per seed)", card["fid"]["mean"]) <= 2 * floor
