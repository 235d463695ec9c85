"""The one transformer block: its attention against PyTorch's, the key/value cache, lesson 01's swap of the attention,
and the prior's checkpoints saved before it shared the block."""

import pytest
import torch
import torch.nn.functional as F

from dalle2_lessons import clip, exercises, prior, profiles, tokenizer, transformer


def test_causal_attention_of_the_last_positions_matches_pytorch():
    """With a key/value cache the T queries are the last T of S positions: causal must see every earlier key."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 3, 8, generator=g)  # 3 new positions
    k, v = torch.randn(2, 2, 4, 7, 8, generator=g)  # 4 cached positions and the 3 new ones
    allowed = torch.ones(3, 7, dtype=torch.bool).tril(diagonal=4)  # query i sits at position 4 + i
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(transformer.scaled_dot_product_attention(q, k, v, causal=True), expected)


def test_masked_attention_matches_pytorch():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 2, 4, 6, 8, generator=g)
    mask = (torch.rand(2, 1, 6, 6, generator=g) < 0.5) | torch.eye(6, dtype=torch.bool)  # every row sees itself
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(transformer.scaled_dot_product_attention(q, k, v, mask=mask), expected)


def test_a_block_with_a_cache_matches_the_whole_sequence():
    torch.manual_seed(0)
    block = transformer.Block(16, 4, causal=True).eval()
    x = torch.randn(2, 7, 16)
    full = block(x)
    cache = transformer.KVCache()
    parts = [block(x[:, :3], cache=cache)] + [block(x[:, j : j + 1], cache=cache) for j in range(3, 7)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full)
    assert cache.k.shape == cache.v.shape == (2, 4, 7, 4)


def test_lesson_01_attention_runs_inside_clip_until_the_next_lesson():
    """Lesson 01 swaps the learner's attention (no mask argument) into the package: CLIP's text encoder must call it."""
    tok = tokenizer.Tokenizer()
    model = clip.CLIP(clip.CLIPConfig(tok.vocab_size, tok.context_length, 16, embed_dim=8, text_width=16, text_layers=2,
                                      image_width=8)).eval()
    tokens = tok.encode_batch(["a red circle"])
    original = transformer.scaled_dot_product_attention
    calls = []

    def yours(q, k, v, causal=False):
        calls.append(causal)
        return original(q, k, v, causal=causal)

    exercises.use_in_package(transformer, "scaled_dot_product_attention", yours)
    try:
        model.encode_text(tokens)
        assert calls == [True, True]  # one causal attention per text block
        model.encode_image(torch.zeros(1, 3, 16, 16))
        assert calls[2:] == [False]  # the image encoder's attention pooling
    finally:
        profiles.setup_lesson(seed=0)
    assert transformer.scaled_dot_product_attention is original


@pytest.mark.parametrize("old_names", [True, False])
def test_prior_loads_checkpoints_from_before_the_shared_block(old_names):
    """The prior's blocks used to name their attention layers `qkv` and `proj`; such state dicts still load."""
    torch.manual_seed(0)
    config = prior.PriorConfig(embed_dim=8, token_width=16, context_length=5, width=16, layers=2, heads=2)
    model = prior.DiffusionPrior(config)
    state = model.state_dict()
    if old_names:
        state = {k.replace(".attn.qkv.", ".qkv.").replace(".attn.out.", ".proj."): v for k, v in state.items()}
        assert "blocks.1.proj.weight" in state
    again = prior.DiffusionPrior(config)
    again.load_state_dict(state)  # strict
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
