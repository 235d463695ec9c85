"""Every family builder learns from the Shapes version it is told: its data, tokenizer, CLIP and judge (issue #21).

A v2 stage trained on v1's 16-px images, or reading v2's partial captions through v1's vocabulary, would still run;
these tiny builds check what it was fed and what it draws.
"""

from dataclasses import replace

import pytest
import torch

from dalle2_lessons import checkpoints, dalle1, diffusion, gan, guidance, shapes, tokenizer, vae
from dalle2_lessons.clip import load_clip

TINY = {"n_train": 64, "steps": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def clip_v2():
    return load_clip(version="v2")


def _draw(name: str, model, clip) -> torch.Tensor:
    if name == "dalle1":
        text, _, _ = guidance.eval_conditions("tokens", 2, version="v2")
        return model.sample(text, torch.Generator().manual_seed(0))
    cond, _, _ = guidance.eval_conditions("clip", 2, clip, version="v2")
    if name == "text-diffusion":
        return guidance.sample(model, cond, diffusion.cosine_schedule(), steps=2)
    return model.sample(cond, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name, module, extra", [
    ("vae", vae, {}),
    ("gan", gan, {}),
    ("text-diffusion", guidance, {"prediction_type": "v_prediction"}),
    ("dalle1", dalle1, {"tokenizer_steps": 2}),
])
def test_a_v2_build_draws_at_v2s_base_resolution(name, module, extra, clip_v2):
    cfg = replace(module.PRESETS["ci"], version="v2", **TINY, **extra)
    built = module.build(cfg, clip=clip_v2, n_eval=4, progress=False)
    images = _draw(name, built.model.eval(), clip_v2)
    assert images.shape == (2, 3, shapes.V2.resolution, shapes.V2.resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert checkpoints.versioned(module.CHECKPOINT, cfg.version) == f"{name}-v2"
    if name == "text-diffusion":
        assert built.model.config.prediction_type == "v_prediction"


def test_v2_conditions_are_full_captions_in_v2s_vocabulary(clip_v2):
    """The family tables score all four attributes, so their captions must name all four, in v2's words."""
    tokens, attrs, captions = guidance.eval_conditions("tokens", 32, version="v2")
    scenes = shapes.sample_scenes(32, "test", "single", seed=1, version="v2")
    assert captions == scenes.full_captions and torch.equal(attrs, torch.as_tensor(scenes.attrs))
    assert any(a != b for a, b in zip(scenes.captions, scenes.full_captions)), "v2 test captions leave things out"
    assert torch.equal(tokens, tokenizer.for_version("v2").encode_batch(captions))
    emb, _, _ = guidance.eval_conditions("clip", 32, clip_v2, version="v2")
    assert emb.shape == (32, clip_v2.config.embed_dim)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(32))
