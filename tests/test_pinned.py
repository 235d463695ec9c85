"""Numbers pinned before the "one way to train a stage" refactor (issue #20), so that moving code around cannot
change what a seed trains or samples. Measured on the code before the refactor (commit 0f4f7eb), ``ci`` presets,
three optimiser steps, the course CLIP handed to each builder (as its command line does); one thread.

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
    "clip": {"loss": [4.317584, 4.183618, 4.936251]},
    "prior": {"loss": [1.387669, 1.249468, 0.979682]},
    "decoder": {"loss": [1.146693, 1.362833, 1.239141]},
    "upsampler": {"loss": [1.211019, 1.462347, 1.025249]},
    "guidance": {"loss": [1.066426, 1.093699, 1.340402]},
    "vae": {"loss": [5418.039551, 2205.340088, 1283.354614], "kl": [0.095373, 9.399412, 1.995405]},
    "gan": {"d_loss": [1.973894, 1.682589, 1.499922], "g_loss": [0.14733, 0.165399, 0.193689]},
    "dalle1": {"loss": [5.235205, 2.590421, 1.878828], "tokenizer_loss": [0.726752, 0.251941, 0.18238]},
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
    return clip.load_clip()


@pytest.mark.parametrize("stage", list(PINNED_LOSSES))
def test_every_builder_trains_as_before(stage, course_clip, one_thread):
    module = MODULES[stage]
    # the ci batches of dalle1, gan and guidance when the numbers were pinned; v1's decoder and upsampler
    extra = {"dalle1": {"tokenizer_steps": 3, "tokenizer_batch_size": 32}, "gan": {"batch_size": 64},
             "guidance": {"batch_size": 32}, "decoder": {"prediction_type": "epsilon"},
             "upsampler": {"max_sigma": 0.6}}.get(stage, {})
    cfg = dataclasses.replace(module.PRESETS["ci"], steps=3, **extra)
    built = module.build(cfg, clip=course_clip, progress=False)
    assert built.settings == cfg and set(PINNED_LOSSES[stage]) <= set(built.losses)
    for name, expected in PINNED_LOSSES[stage].items():
        assert built.losses[name][:3] == pytest.approx(expected, rel=REL), (stage, name)


def test_sampling_the_course_checkpoints_is_as_before(course_clip, one_thread):
    system = unclip.UnCLIP.load(clip=course_clip)
    prompts = ["a small red circle in the top left", "a large blue square in the centre"]
    out = system.generate(prompts, n=2, prior_steps=4, decoder_steps=4, upsampler_steps=3, progress=False, seed=0)
    assert float(out.image_embeddings.sum()) == pytest.approx(-5.27018, rel=1e-3)
    assert float(out.low.abs().sum()) == pytest.approx(2316.107, rel=REL)
    assert float(out.images.abs().sum()) == pytest.approx(9341.494, rel=REL)
    # the guided prior (two passes per step) and the decoder's caption pathway
    out = system.generate(prompts[:1], n=2, prior_steps=4, prior_scale=2.0, caption=True, decoder_steps=4,
                          upsampler_steps=3, progress=False, seed=1)
    assert float(out.image_embeddings.sum()) == pytest.approx(1.87061, rel=1e-3)
    assert float(out.low.abs().sum()) == pytest.approx(1065.441, rel=REL)
    assert float(out.images.abs().sum()) == pytest.approx(4363.281, rel=REL)

    text_diffusion = guidance.load_text_diffusion(clip=course_clip)
    cond, _, _ = guidance.eval_conditions("clip", 4, course_clip)
    x = guidance.sample(text_diffusion, cond, diffusion.cosine_schedule(), scale=3.0, steps=4,
                        generator=torch.Generator().manual_seed(0))
    assert float(x.abs().sum()) == pytest.approx(2384.321, rel=REL)

    text = tokenizer.Tokenizer().encode_batch(prompts)
    ids = dalle1.load_dalle1().sample(text, generator=torch.Generator().manual_seed(0))
    assert float(ids.abs().sum()) == pytest.approx(1495.598, rel=REL)
    z = clip.embed_texts(course_clip, tokenizer.Tokenizer().encode_batch([prompts[0], "a large blue square"]))
    expected = [0.05736, -0.00756, 0.12712, -0.0084, -0.15524, -0.13144, -0.18448, -0.04688]
    assert z[:, :4].flatten().tolist() == pytest.approx(expected, abs=2e-5)
