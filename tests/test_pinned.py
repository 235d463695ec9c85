"""Numbers pinned so that moving code around cannot change what a seed trains or samples. First pinned before the "one
way to train a stage" refactor (issue #20) on Shapes v1; re-pinned when the v1 checkpoints were retired (issue #21,
commit after 6906816) on Shapes v2, and for the upsampler when ``upsampler.downsample`` became area averaging and its
checkpoint was rebuilt (issue #21): ``ci`` presets, three optimiser steps, the course CLIP handed to each builder (as
its command line does); one thread.

The tolerance allows other x86 kernels (AVX2, SSE) to differ in the last digits; a changed initialisation, batch
order or loss moves these numbers in the first or second digit.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dalle2_lessons import clip, dalle1, decoder, diffusion, gan, guidance, prior, tokenizer, unclip, upsampler, vae

REL = 2e-4

PINNED_LOSSES = {  # the first three training losses of each builder
    "clip": {"loss": [4.244013, 4.698146, 5.80776]},
    "prior": {"loss": [1.374424, 0.930515, 0.804302]},
    "decoder": {"loss": [0.886077, 0.65069, 0.683004]},
    "upsampler": {"loss": [1.190042, 1.46381, 0.975952]},
    "guidance": {"loss": [1.051492, 1.007217, 0.710634]},
    "vae": {"loss": [14122.847656, 5433.308594, 3986.198486], "kl": [0.151467, 161.335327, 1014.294189]},
    "gan": {"d_loss": [2.251709, 1.200049, 0.639224], "g_loss": [0.612802, 1.716354, 2.03353]},
    "dalle1": {"loss": [5.046829, 2.70857, 2.071607], "tokenizer_loss": [0.829424, 0.624385, 0.195329]},
}
MODULES = {"clip": clip, "prior": prior, "decoder": decoder, "upsampler": upsampler, "guidance": guidance, "vae": vae,
           "gan": gan, "dalle1": dalle1}


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def course_clip():
    return clip.load_clip(version="v2")


@pytest.mark.parametrize("stage", list(PINNED_LOSSES))
def test_every_builder_trains_as_before(stage, course_clip, one_thread):
    module = MODULES[stage]
    extra = {"dalle1": {"tokenizer_steps": 3, "tokenizer_batch_size": 32}}.get(stage, {})
    cfg = dataclasses.replace(module.PRESETS["ci"], steps=3, version="v2", **extra)
    built = module.build(cfg, clip=course_clip, progress=False)
    assert built.settings == cfg and set(PINNED_LOSSES[stage]) <= set(built.losses)
    for name, expected in PINNED_LOSSES[stage].items():
        assert built.losses[name][:3] == pytest.approx(expected, rel=REL), (stage, name)


def test_sampling_the_course_checkpoints_is_as_before(course_clip, one_thread):
    system = unclip.UnCLIP.load(clip=course_clip, version="v2")
    prompts = ["a small red circle in the top left", "a large blue square in the centre"]
    steps = {"n": 2, "prior_steps": 4, "decoder_steps": 4, "upsampler_steps": 3, "progress": False, "seed": 0}
    out = system.generate(prompts, **steps)  # the defaults: decoder guidance 1.25, the upsampler reads a blurred input
    assert float(out.image_embeddings.sum()) == pytest.approx(-1.43199, rel=1e-3)
    assert float(out.low.abs().sum()) == pytest.approx(11585.08, rel=REL)
    assert float(out.images.abs().sum()) == pytest.approx(46343.14, rel=REL)
    # the defaults before them, each pinned as it was: decoder guidance 2 and 3 (SHAPES_V2 section 5), no input blur
    at_2 = system.generate(prompts, decoder_scale=2.0, **steps)
    assert torch.equal(at_2.image_embeddings, out.image_embeddings)  # the prior does not see the decoder's guidance
    assert float(at_2.low.abs().sum()) == pytest.approx(11686.43, rel=REL)
    assert float(at_2.images.abs().sum()) == pytest.approx(46721.45, rel=REL)
    at_3 = system.generate(prompts, decoder_scale=3.0, **steps)
    assert float(at_3.low.abs().sum()) == pytest.approx(11732.99, rel=REL)
    assert float(at_3.images.abs().sum()) == pytest.approx(46850.64, rel=REL)
    plain = system.generate(prompts, decoder_scale=3.0, upsampler_input_blur=0.0, **steps)
    assert torch.equal(plain.low, at_3.low)
    assert float(plain.images.abs().sum()) == pytest.approx(46853.39, rel=REL)
    # the guided prior (two passes per step) and the decoder's caption pathway (at the default guidance)
    out = system.generate(prompts[:1], n=2, prior_steps=4, prior_scale=2.0, caption=True, decoder_steps=4,
                          upsampler_steps=3, progress=False, seed=1)
    assert float(out.image_embeddings.sum()) == pytest.approx(0.22796, rel=1e-3)
    assert float(out.low.abs().sum()) == pytest.approx(4479.065, rel=REL)
    assert float(out.images.abs().sum()) == pytest.approx(17928.26, rel=REL)

    text_diffusion = guidance.load_text_diffusion(clip=course_clip, version="v2")
    cond, _, _ = guidance.eval_conditions("clip", 4, course_clip, version="v2")
    x = guidance.sample(text_diffusion, cond, diffusion.cosine_schedule(), scale=3.0, steps=4,
                        generator=torch.Generator().manual_seed(0))
    assert float(x.abs().sum()) == pytest.approx(10385.006, rel=REL)

    tok = tokenizer.for_version("v2")
    ids = dalle1.load_dalle1(version="v2").sample(tok.encode_batch(prompts), generator=torch.Generator().manual_seed(0))
    assert float(ids.abs().sum()) == pytest.approx(5988.112, rel=REL)
    z = clip.embed_texts(course_clip, tok.encode_batch([prompts[0], "a large blue square"]))
    expected = [-0.08512, 0.05622, 0.14572, -0.07177, 0.05703, -0.12644, -0.04166, 0.00426]
    assert z[:, :4].flatten().tolist() == pytest.approx(expected, abs=2e-5)
