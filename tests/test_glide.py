"""The GLIDE-like baseline: its text pathway, its guidance, and that it learns (dalle2_lessons.glide)."""

import pytest
import torch

from dalle2_lessons import diffusion, glide, tokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = glide.Glide(glide.glide_config(tokenizer.for_version("v2"), resolution=32, width=32, depth=1)).eval()
    with torch.no_grad():  # the U-Net starts its condition and attention paths at zero: nudge every weight off it
        for p in m.parameters():
            p += 0.02 * torch.randn_like(p)
    return m


def captions(*texts):
    return tokenizer.for_version("v2").encode_batch(list(texts))


def test_shapes_and_the_final_token(model):
    tokens = captions("a red circle", "a large blue square in the top left")
    features, final = model.text(tokens)
    assert features.shape == (2, tokens.shape[1], 32) and final.shape == (2, 32)
    end = (tokens == model.config.end_id).float().argmax(1)
    assert torch.equal(final, features[torch.arange(2), end])
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 900])
    assert model(x, t, tokens).shape == (2, 3, 32, 32)


def test_the_caption_reaches_the_picture_and_padding_does_not(model):
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
    with torch.no_grad():
        red, blue = model(x, t, captions("a red circle")), model(x, t, captions("a blue circle"))
        assert (red - blue).abs().max() > 1e-4
        # whatever the padding's embedding is, masked attention must never read it
        model.text.token_embedding.weight[model.config.pad_id] += 5.0
        again = model(x, t, captions("a red circle"))
        model.text.token_embedding.weight[model.config.pad_id] -= 5.0
    assert torch.allclose(red, again, atol=1e-5)


def test_dropped_captions_are_the_empty_caption(model):
    tokens = captions("a red circle", "a blue square")
    assert torch.equal(glide.drop_captions(model, tokens, 0.0), tokens)
    empty = glide.drop_captions(model, tokens, 1.0)
    assert torch.equal(empty, model.empty_caption(2))
    assert empty[0, :2].tolist() == [model.config.start_id, model.config.end_id]
    assert (empty[:, 2:] == model.config.pad_id).all()


def test_guidance_at_scale_one_is_the_conditional_model(model):
    tokens, x, t = captions("a red circle"), torch.randn(1, 3, 32, 32), torch.tensor([700])
    with torch.no_grad():
        plain = diffusion.x0_and_eps(model(x, t, tokens), t, x, glide.SCHEDULE, model.config.prediction_type)[1]
        assert torch.allclose(glide.eps_model(model, tokens, scale=1.0)(x, t), plain, atol=1e-5)
        images = glide.sample(model, captions("a red circle", "a green cross"), steps=2,
                              generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1


def test_a_few_steps_of_training_lower_the_loss():
    cfg = glide.GlideSettings(n_train=64, steps=30, batch_size=16, lr=2e-3)
    from dalle2_lessons import shapes
    from dalle2_lessons.clip import caption_tokens

    data = shapes.ShapesDataset("train", n=cfg.n_train, version="v2")
    tokens = caption_tokens(tokenizer.for_version("v2"), "single", data.attrs, data.scenes.mentions)
    model, losses = glide.train_glide(cfg, data.images, tokens, progress=False)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert not model.training


def test_the_budget_is_matched_in_measured_seconds():
    from dalle2_lessons.clip import load_clip

    seconds = glide.step_seconds(load_clip(version="v2"), n_steps=2, batch_sizes=(8, 4, 4))
    assert set(seconds) == {"prior", "decoder", "glide"} and all(v > 0 for v in seconds.values())
    # 5000 prior steps at 0.2 s and 2600 decoder steps at 1.2 s are 4120 s: 3433 steps at 1.2 s
    assert glide.matched_steps({"prior": 0.2, "decoder": 1.2, "glide": 1.2}, 5000, 2600) == 3433
