"""Lesson 02's package code: stop words, order-blind and order-aware text encoders, the pair tests."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dalle2_lessons import clip, shapes, text_encoders as te, tokenizer

TOK = tokenizer.for_version("v2")  # the course's words, partial captions' included
CONFIG = clip.CLIPConfig(TOK.vocab_size, TOK.context_length, resolution=16, text_width=32, text_layers=1, image_width=8)


def relation_captions(n: int = 64, seed: int = 0) -> list[str]:
    scenes = shapes.sample_scenes(n, "train", "relation", seed=seed)
    return [shapes.caption("relation", a, t % 4) for t, a in enumerate(scenes.attrs)]


def test_stop_lists_name_only_our_words_and_drop_the_relation_words():
    words = set(TOK.vocab)
    for name, stop in te.STOP_LISTS.items():
        assert stop <= words, f"{name}: {stop - words} are not caption words"
        assert {"above", "below", "to", "of", "the", "a"} <= stop
        assert not {"left", "right", "red", "circle"} & stop
    assert {"top", "bottom"} <= te.STOP_LISTS["scikit-learn"] and not {"top", "bottom"} & te.STOP_LISTS["NLTK"]
    assert (te.keywords("a red circle above a blue square", TOK) == te.keywords("a red circle below a blue square", TOK)
            == "red circle blue square")
    assert te.keywords("a blue square to the right of a red circle", TOK) == "blue square right red circle"


def test_drop_stop_words_keeps_the_order_of_the_rest_and_pads():
    texts = relation_captions() + ["a small red circle in the top left", "top left: small red circle"]
    tokens = TOK.encode_batch(texts)
    out = te.drop_stop_words(tokens, te.stop_word_ids(TOK), TOK.pad_id)
    assert out.shape == tokens.shape and out.dtype == torch.long
    for text, row in zip(texts, out):
        kept = [TOK.start_id, *(TOK.ids[w] for w in te.keywords(text, TOK).split()), TOK.end_id]
        assert row.tolist() == kept + [TOK.pad_id] * (len(row) - len(kept))
    assert torch.equal(out.argmax(-1), TOK.end_positions(out)), "<end> must stay the row's largest id"


def test_masked_mean_ignores_padding_and_empty_rows_give_zeros():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out = te.masked_mean(x, mask)
    assert torch.allclose(out[0], x[0, :2].mean(0)) and torch.allclose(out[1], x[1].mean(0))
    assert torch.equal(out[2], torch.zeros(4))


def permuted_words(tokens: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each row's real tokens shuffled, padding left at the end."""
    out = tokens.clone()
    for row in out:
        n = int((row != TOK.pad_id).sum())
        row[:n] = row[:n][torch.randperm(n, generator=g)]
    return out


@pytest.mark.parametrize("name", te.ENCODER_NAMES)
def test_which_encoders_are_order_blind(name):
    torch.manual_seed(0)
    encoder = te.make_text_encoder(name, TOK, CONFIG).eval()
    tokens = TOK.encode_batch(relation_captions(16))
    with torch.no_grad():
        a, b = encoder(tokens), encoder(permuted_words(tokens, torch.Generator().manual_seed(1)))
    assert a.shape == (16, CONFIG.embed_dim)
    blind = next(e.order_blind for e in te.ENCODERS if e.name == name)
    if blind:
        assert torch.equal(a, b), "a bag must give exactly the same features for any order of the same words"
    else:
        assert (a - b).abs().max() > 1e-3


def test_make_clip_replaces_only_the_text_encoder_and_rejects_unknown_names():
    torch.manual_seed(0)
    plain, bag = clip.CLIP(CONFIG), te.make_clip("word bag", TOK, CONFIG)
    assert isinstance(bag.text, te.BagOfWords)
    assert [p.shape for p in bag.image.parameters()] == [p.shape for p in plain.image.parameters()]
    with pytest.raises(ValueError, match="GPT, <end>"):
        te.make_text_encoder("gpt-3", TOK, CONFIG)


def test_swaps_exchange_what_they_say_and_nothing_else():
    scenes = shapes.sample_scenes(32, "test", "relation")
    twins = te.swap_objects(scenes)
    a = scenes.attrs
    assert np.array_equal(twins.attrs, a[:, [3, 4, 2, 0, 1]]) and np.array_equal(twins.centres, scenes.centres)
    assert np.array_equal(te.swap_objects(twins).attrs, a)
    assert torch.equal(shapes.render(te.swap_objects(twins)), shapes.render(scenes))
    assert (shapes.render(twins) != shapes.render(scenes)).flatten(1).any(1).all(), "every twin is a different picture"
    ok = te.can_swap_colours(a)
    recoloured = te.swap_colours(scenes[ok])
    assert np.array_equal(recoloured.attrs, a[ok][:, [3, 1, 2, 0, 4]])
    assert np.array_equal(recoloured.shapes, scenes.shapes[ok])
    assert not shapes.contains_heldout_pair(recoloured.attrs, "relation").any()
    assert 0 < ok.sum() < len(a)
    with pytest.raises(ValueError, match="relation"):
        te.swap_objects(shapes.sample_scenes(2, "test", "single"))


def test_a_twin_keeps_the_background_no_caption_names():
    scenes = shapes.sample_scenes(64, "test", "relation", version="v2")
    assert 0 < scenes.backgrounds.sum() < len(scenes), "both shades occur"
    for twins in (te.swap_objects(scenes), te.swap_colours(scenes)):
        assert twins.version == "v2" and np.array_equal(twins.backgrounds, scenes.backgrounds)
        assert torch.equal(shapes.read_background(shapes.render(twins, 32)), torch.from_numpy(scenes.backgrounds))


def test_near_misses_use_the_same_words_for_another_scene():
    attrs = torch.from_numpy(shapes.sample_scenes(200, "train", "relation").attrs)
    true, neg = clip.caption_tokens(TOK, "relation", attrs), te.near_miss_tokens(TOK, attrs)
    assert neg.shape == true.shape
    for i in range(len(attrs)):
        paraphrases = {TOK.decode(t) for t in true[i]}
        for k in range(true.shape[1]):
            a, b = TOK.decode(true[i, k]), TOK.decode(neg[i, k])
            assert b not in paraphrases, "a near miss must not describe the same scene"
            assert sorted(a.split()) == sorted(b.split()), (a, b)
    objects = (neg == clip.caption_tokens(TOK, "relation", attrs[:, list(te.OBJECT_SWAP)])).all(-1).all(-1)
    colours = (neg == clip.caption_tokens(TOK, "relation", attrs[:, list(te.COLOUR_SWAP)])).all(-1).all(-1)
    assert (objects | colours).all(), "every near miss is one of the two swaps"
    assert objects.sum() > 50 and (colours & ~objects).sum() > 20, "both kinds occur"
    allowed = torch.from_numpy(te.can_swap_colours(attrs))
    assert not (colours & ~objects & ~allowed).any(), "colours swapped only where allowed"


def test_pair_accuracy_counts_ties_as_half():
    sim = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.1, 0.9], [0.8, 0.2]], [[0.5, 0.5], [0.3, 0.3]]])
    assert te.pair_accuracy(sim[:1]) == 1.0 and te.pair_accuracy(sim[1:2]) == 0.0 and te.pair_accuracy(sim[2:]) == 0.5
    assert te.pair_accuracy(sim) == pytest.approx(0.5)


def test_an_order_blind_clip_scores_exactly_chance_on_pair_tests():
    torch.manual_seed(0)
    model = te.make_clip("keywords bag", TOK, CONFIG).eval()
    row = te.evaluate(model, TOK, 16, n=64, n_retrieval=32)
    assert set(row) == {"t2i@1", "t2i@1 +twins", "objects swapped", "objects swapped (above)",
                        "objects swapped (left of)", "colours swapped"}
    for key in ("objects swapped", "objects swapped (above)", "objects swapped (left of)", "colours swapped"):
        assert row[key] == 0.5, key


def test_hard_negative_loss_is_clips_loss_with_more_wrong_answers():
    g = torch.Generator().manual_seed(0)
    u, v, w = torch.randn(3, 8, 16, generator=g)
    scale = 10.0
    loss = clip.hard_negative_loss(u, v, w, scale)
    un, vn, wn = (F.normalize(x, dim=-1) for x in (u, v, w))
    i2t = torch.stack([-(scale * un[i] @ vn[i]) + torch.logsumexp(scale * torch.cat([un[i] @ vn.T, un[i] @ wn.T]), 0)
                       for i in range(8)]).mean()
    t2i = torch.stack([-(scale * vn[j] @ un[j]) + torch.logsumexp(scale * vn[j] @ un.T, 0) for j in range(8)]).mean()
    assert torch.allclose(loss, (i2t + t2i) / 2, atol=1e-5)
    assert loss > clip.contrastive_loss(u, v, scale)


# 300 steps (the earlier setting) is where the transformer *starts* to learn the order: it measured 0.50-0.71 over
# seeds 0-4 and three kernel sets (0.547 with AVX2 kernels, the failure seen on another machine). At 1000 steps every
# run measured 0.720-0.737 (seeds 0-4 with AVX-512 and AVX2 kernels, 0-2 with SSE; 512 pairs: ±0.02 binomial); the
# bound keeps 0.07 below the lowest and 0.15 above chance. On Shapes v2's relation tier (16 px, as lesson 02) seeds 0-4
# measured 0.724-0.735 with AVX-512 kernels: the same bound holds.
STEPS, BOUND = 1000, 0.65


def test_hard_negatives_teach_a_transformer_the_order_a_bag_cannot_learn(test_seed, measured):
    """The lesson's finding at toy size (about 40 s): with near-miss captions as extra negatives, a transformer text
    encoder learns which object is above the other. A bag of words cannot, however long it trains: its features are
    exactly those of any word order (``test_which_encoders_are_order_blind``), so it scores exactly 50%
    (``test_an_order_blind_clip_scores_exactly_chance_on_pair_tests``)."""
    config = clip.CLIPConfig(TOK.vocab_size, TOK.context_length, resolution=16, text_width=64, text_layers=1,
                             image_width=16)
    train = shapes.ShapesDataset("train", "relation", n=2000, resolution=16, version="v2")
    tokens = clip.caption_tokens(TOK, "relation", train.attrs)
    negatives = te.near_miss_tokens(TOK, train.attrs)
    torch.manual_seed(test_seed)
    model = te.make_clip("GPT, <end>", TOK, config)
    clip.train_clip(model, train.images, tokens, steps=STEPS, batch_size=64, lr=5e-3, seed=test_seed, progress=False,
                    negatives=negatives)
    row = te.evaluate(model.eval(), TOK, 16, n=512, n_retrieval=64, version="v2")
    assert measured("GPT objects swapped", row["objects swapped"]) > BOUND, row
