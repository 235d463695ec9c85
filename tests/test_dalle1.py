"""Lesson 12's DALL·E 1: vector quantisation, the straight-through estimator, the codebook update, top-k,
the key/value-cached sampler, CLIP reranking and the checkpoint."""

import pytest
import torch
import torch.nn.functional as F

from dalle2_lessons import checkpoints, dalle1, tokenizer
from dalle2_lessons.transformer import KVCache

VQ = dalle1.VQConfig(codebook_size=16, code_dim=4, width=8)
TR = dalle1.TransformerConfig(text_vocab=tokenizer.Tokenizer().vocab_size, text_length=16, image_vocab=16,
                              image_length=64, width=32, layers=2,
                              heads=4)


def test_quantise_picks_the_nearest_entry_by_brute_force():
    g = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(3, 4, 5, 6, generator=g), torch.randn(16, 4, generator=g)
    ids, q = dalle1.quantise(z, codebook)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    expected = torch.cdist(flat, codebook).argmin(1).view(3, 5, 6)
    assert torch.equal(ids, expected)
    assert torch.allclose(q, codebook[expected].permute(0, 3, 1, 2))


def test_straight_through_passes_the_value_of_q_and_the_gradient_to_z():
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q = torch.randn(2, 4, 3, 3)
    out = dalle1.straight_through(z, q)
    assert torch.allclose(out, q)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    assert torch.allclose(z.grad, upstream)


def test_codebook_update_with_no_memory_moves_each_used_entry_to_its_cluster_mean():
    m = dalle1.VQVAE(dalle1.VQConfig(codebook_size=16, code_dim=4, width=8, codebook_decay=0.0))
    z = torch.randn(2, 4, 8, 8)
    ids, _ = dalle1.quantise(z, m.codebook)
    m.update_codebook(z, ids)
    flat, flat_ids = z.permute(0, 2, 3, 1).reshape(-1, 4), ids.flatten()
    for k in range(16):
        if (flat_ids == k).any():
            assert torch.allclose(m.codebook[k], flat[flat_ids == k].mean(0), atol=1e-5)


def test_reset_codes_puts_entries_on_encoder_vectors():
    m = dalle1.VQVAE(VQ)
    z = torch.randn(2, 4, 8, 8)
    which = torch.zeros(16, dtype=torch.bool)
    which[:5] = True
    untouched = m.codebook[5:].clone()
    m.reset_codes(which, z, torch.Generator().manual_seed(0))
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in range(5):
        assert (flat - m.codebook[k]).abs().sum(1).min() < 1e-6
    assert torch.equal(m.codebook[5:], untouched)


def test_tokenizer_shapes_and_a_short_training_run():
    torch.manual_seed(0)
    m = dalle1.VQVAE(VQ)
    images = torch.rand(64, 3, 16, 16) * 2 - 1
    log = dalle1.train_tokenizer(m, images, steps=20, batch_size=16, restart_every=5, progress=False)
    assert set(log) == {"loss", "reconstruction", "codes_used"} and len(log["loss"]) == 20
    assert log["reconstruction"][-1] < log["reconstruction"][0]
    ids = m.encode(images[:3])
    assert ids.shape == (3, 8, 8) and ids.dtype == torch.long and 0 <= ids.min() and ids.max() < 16
    assert m.decode(ids).shape == (3, 3, 16, 16)
    assert dalle1.tokenize_images(m, images, batch_size=7).shape == (64, 64)


def test_the_learners_functions_are_what_trains_and_samples():
    """Lesson 12 passes the learner's quantise, straight-through and top-k into the package: they must be used."""
    calls = {"quantise": 0, "straight_through": 0}

    def counting(name, fn):
        def wrapped(*args):
            calls[name] += 1
            return fn(*args)
        return wrapped

    m = dalle1.VQVAE(VQ)
    dalle1.train_tokenizer(m, torch.rand(32, 3, 16, 16) * 2 - 1, steps=3, batch_size=8, progress=False,
                           quantise_fn=counting("quantise", dalle1.quantise),
                           straight_through_fn=counting("straight_through", dalle1.straight_through))
    assert calls == {"quantise": 3, "straight_through": 3}

    def only_token_5(logits, k):
        return torch.full_like(logits, float("-inf")).index_fill(-1, torch.tensor([5]), 0.0)

    t = dalle1.TextImageTransformer(TR).eval()
    ids = t.sample(torch.randint(37, (2, 16)), top_k=3, generator=torch.Generator().manual_seed(0),
                   filter_fn=only_token_5)
    assert (ids == 5).all()


def test_top_k_filter_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])
    out = dalle1.top_k_filter(logits, 2)
    assert torch.equal(torch.isfinite(out), torch.tensor([[False, True, False, True, False]]))
    assert torch.equal(out[torch.isfinite(out)], torch.tensor([3.0, 2.0]))
    assert torch.equal(dalle1.top_k_filter(logits, 0), logits)
    probs = dalle1.top_k_filter(logits, 2).softmax(-1)
    assert torch.allclose(probs.sum(), torch.tensor(1.0)) and probs[0, 0] == 0


def test_teacher_forcing_is_causal():
    """Changing image token j must not change the logits of positions ≤ j (they predict tokens ≤ j)."""
    torch.manual_seed(0)
    t = dalle1.TextImageTransformer(TR).eval()
    text, image = torch.randint(37, (2, 16)), torch.randint(16, (2, 64))
    logits = t(text, image)
    changed = image.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 16
    after = t(text, changed)
    assert torch.allclose(logits[:, :11], after[:, :11], atol=1e-5)
    assert not torch.allclose(logits[:, 11:], after[:, 11:], atol=1e-5)


def test_cached_sampler_matches_recomputing_the_prefix():
    """The key/value cache is only an optimisation: the same draws give the same logits as `forward`."""
    torch.manual_seed(0)
    t = dalle1.TextImageTransformer(TR).eval()
    text = torch.randint(37, (3, 16))
    ids = t.sample(text, top_k=0, generator=torch.Generator().manual_seed(1))
    assert ids.shape == (3, 64)
    # replay the same tokens through the uncached forward pass: every drawn token had non-zero probability
    # and the cached logits at each step equal the full forward pass's
    c = t.config
    start = torch.full_like(text[:, :1], t.start_of_image)
    x = torch.cat([t.text_embedding(text), t.image_embedding(start)], 1) + t.position[:17]
    caches = [KVCache() for _ in range(c.layers)]
    full = t(text, ids)
    for j in range(64):
        for block, cache in zip(t.blocks, caches):
            x = block(x, cache=cache)
        assert torch.allclose(t.head(t.ln_final(x[:, -1])), full[:, j], atol=1e-4)
        x = t.image_embedding(ids[:, j : j + 1]) + t.position[17 + j : 18 + j]


def test_rerank_keeps_the_candidate_clip_prefers():
    class FakeClip:  # scores an image by how close its mean pixel is to the caption's first token / 10
        def encode_text(self, tokens):
            return F.normalize(torch.stack([tokens[:, 0].float() / 10, torch.ones(len(tokens))], 1), dim=-1)

        def encode_image(self, images):
            return F.normalize(torch.stack([images.mean((1, 2, 3)), torch.ones(len(images))], 1), dim=-1)

    text = torch.tensor([[5], [-5]])
    levels = torch.tensor([-0.5, 0.0, 0.5])
    images = levels.view(1, 3, 1, 1, 1).expand(2, 3, 3, 4, 4).clone()
    best = dalle1.rerank(FakeClip(), text, images, keep=2)
    assert best.shape == (2, 2, 3, 4, 4)
    assert best[0, 0].mean() == 0.5 and best[1, 0].mean() == -0.5


def test_model_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    m = dalle1.DALLE1(VQ, TR)
    checkpoints.save_checkpoint("dalle1", m.state_dict(), m.config_dict(), tmp_path)
    ckpt = checkpoints.load_checkpoint("dalle1", tmp_path)
    back = checkpoints.load_into(dalle1.DALLE1.from_config(ckpt.config), ckpt)
    text = tokenizer.Tokenizer().encode_batch(["a red circle", "a blue square"])
    a = m.sample(text, torch.Generator().manual_seed(0))
    b = back.sample(text, torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert torch.equal(back.tokenizer.codebook, m.tokenizer.codebook)


@pytest.mark.parametrize("version", ["v2"])  # v1's checkpoints no longer ship
def test_course_checkpoint_loads_with_its_numbers(version):
    ckpt = checkpoints.load_checkpoint(checkpoints.versioned(dalle1.CHECKPOINT, version))
    assert isinstance(dalle1.load_dalle1(version=version), dalle1.DALLE1)
    for split in ("test", "heldout"):
        assert set(ckpt.metrics["eval"][split]) >= {"all", "colour", "shape", "size", "position"}
    assert set(ckpt.metrics["reconstructions"]) >= {"all", "shape"}
    assert checkpoints.versioned("dalle1", version) in checkpoints.REBUILD_COMMANDS
