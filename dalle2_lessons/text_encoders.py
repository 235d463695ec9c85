"""What the text encoder must understand: keywords, bags of words and transformers, on relation captions.

A popular description of DALL·E 2 says the caption is first reduced to *keywords* (stop words removed),
then encoded by a GPT-style model. This module builds the candidates so that lesson 02 can measure what
each one keeps, all inside the same CLIP (same image encoder, data, steps and loss; only ``model.text``
changes):

* ``keywords bag``:  stop words removed, then the mean of the remaining word vectors and an MLP;
* ``word bag``:      every word kept, the mean of the word vectors and an MLP (order is lost, words are not);
* ``keywords → GPT``: stop words removed, then the course's causal transformer (the claim, literally);
* ``GPT, mean``:     the course's causal transformer over the whole caption, averaged over positions;
* ``GPT, <end>``:    the course's CLIP text encoder: causal transformer read at ``<end>`` (as CLIP does).

And the tests that tell them apart, on two-object ``relation`` scenes:

* :func:`swap_objects`: the same placement with the two objects exchanged ("a red circle above a blue
  square" ↔ "a blue square above a red circle"): the same words, a different picture;
* :func:`swap_colours`: the colours exchanged, shapes kept ("a red circle ... a blue square" ↔ "a blue
  circle ... a red square"): which adjective belongs to which noun (*attribute binding*);
* :func:`pair_accuracy`: can the model tell which caption goes with which picture of such a pair?

Any text encoder whose embedding cannot change when two captions have the same multiset of words
scores *exactly* 50% on a pair test (ties count half): that is a property of the architecture, not a
result of training, and ``tests/test_text_encoders.py`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from . import clip, clip_embeddings, shapes, tokenizer

# ----------------------------------------------------------------------------------------------
# Stop words. Only the words of *our* vocabulary are listed, with the public list that contains them.

#: Our caption words on two widely used English stop-word lists: NLTK's ``stopwords.words("english")``
#: and scikit-learn's ``ENGLISH_STOP_WORDS`` (the one ``CountVectorizer(stop_words="english")`` uses).
#: The relation words "above", "below", "to" and "of" are on both; "left" and "right" on neither; "something" (of
#: Shapes v2's partial captions) only on scikit-learn's.
STOP_LISTS: dict[str, frozenset[str]] = {
    "NLTK": frozenset({"a", "an", "the", "there", "is", "in", "on", "at", "to", "of", "above", "below"}),
    "scikit-learn": frozenset(
        {"a", "an", "the", "there", "is", "in", "on", "at", "to", "of", "above", "below", "top", "bottom",
         "something"}
    ),
}
#: What the keyword models drop: a word on either list, and punctuation.
STOP_WORDS: frozenset[str] = frozenset().union(*STOP_LISTS.values()) | {":", ","}


def stop_word_ids(tok: tokenizer.Tokenizer, stop_words: frozenset[str] = STOP_WORDS) -> torch.Tensor:
    """``(S,)`` int64 ids of the vocabulary's stop words (special tokens are never stop words)."""
    return torch.tensor(sorted(tok.ids[w] for w in stop_words if w in tok.ids))


def drop_stop_words(tokens: torch.Tensor, stop_ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Remove stop words from token rows and close the gaps, keeping the order of what is left.

    Args:
        tokens: ``(B, L)`` int64 rows as from :meth:`Tokenizer.encode_batch` (``<start> … <end> <pad>…``).
        stop_ids: ``(S,)`` int64 ids to remove.
        pad_id: the padding id that fills the freed places at the end of each row.
    Returns:
        ``(B, L)`` int64: the kept ids of each row, in their original order, then padding.
    """
    keep = ~torch.isin(tokens, stop_ids)
    # a stable sort on "dropped?" moves the kept ids to the front without reordering them
    order = torch.sort((~keep).int(), dim=1, stable=True).indices
    return torch.where(keep.gather(1, order), tokens.gather(1, order), torch.full_like(tokens, pad_id))


def keywords(text: str, tok: tokenizer.Tokenizer, stop_words: frozenset[str] = STOP_WORDS) -> str:
    """``"a red circle above a blue square"`` → ``"red circle blue square"`` (what a keyword model reads)."""
    return " ".join(w for w in tok.words(text) if w not in stop_words)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(B, L, C)`` over the positions where ``mask`` ``(B, L)`` is True → ``(B, C)``."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------
# The encoders. Each maps tokens (B, L) int64 to text features (B, embed_dim), like clip.TextEncoder.


class BagOfWords(nn.Module):
    """The mean of the word vectors, then an MLP: ``(B, L)`` → ``(B, embed_dim)``.

    The mean is the same for any order of the same words, and nothing after it can bring the order
    back: "a red circle above a blue square" and "a blue square above a red circle" get one embedding.
    """

    def __init__(self, vocab_size: int, width: int = 128, embed_dim: int = 64, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.mlp = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width),
            nn.LayerNorm(width),
        )
        self.projection = nn.Linear(width, embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # Sorting the ids first makes the invariance exact in floating point too: a sum's rounding
        # depends on the order of its terms, and a bag must not depend on anything order-like.
        tokens = tokens.sort(dim=1).values
        bag = masked_mean(self.token_embedding(tokens), tokens != self.pad_id)  # (B, width)
        return self.projection(self.mlp(bag))


class MeanPooledTransformer(clip.TextEncoder):
    """The course's causal transformer read by averaging every real position instead of at ``<end>``.

    Each position has seen only the words before it, so the average still depends on the order.
    """

    def __init__(self, *args, pad_id: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad_id = pad_id

    def forward(self, tokens: torch.Tensor, return_tokens: bool = False) -> torch.Tensor:
        x = super().forward(tokens, return_tokens=True)  # (B, L, width)
        if return_tokens:
            return x
        return self.projection(masked_mean(x, tokens != self.pad_id))


class KeywordsFirst(nn.Module):
    """Any text encoder, fed only the keywords: stop words are dropped before it sees the caption."""

    def __init__(self, encoder: nn.Module, stop_ids: torch.Tensor, pad_id: int = 0):
        super().__init__()
        self.encoder = encoder
        self.pad_id = pad_id
        self.register_buffer("stop_ids", stop_ids, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(drop_stop_words(tokens, self.stop_ids, self.pad_id))


@dataclass(frozen=True)
class EncoderKind:
    name: str
    reads: str  #: what the encoder sees, in words
    order_blind: bool  #: True if two captions with the same words must get the same embedding


#: The five text encoders of lesson 02, in the order of its table.
ENCODERS: tuple[EncoderKind, ...] = (
    EncoderKind("keywords bag", "keywords, as a set", True),
    EncoderKind("word bag", "every word, as a set", True),
    EncoderKind("keywords → GPT", "keywords, in order, causal transformer", False),
    EncoderKind("GPT, mean", "every word, causal transformer, mean of positions", False),
    EncoderKind("GPT, <end>", "every word, causal transformer, at <end> (CLIP's)", False),
)
ENCODER_NAMES: tuple[str, ...] = tuple(e.name for e in ENCODERS)


def make_text_encoder(name: str, tok: tokenizer.Tokenizer, config: clip.CLIPConfig) -> nn.Module:
    """A fresh text encoder of kind ``name`` (one of :data:`ENCODER_NAMES`) sized like ``config``'s."""
    c = config
    gpt = lambda cls=clip.TextEncoder, **kw: cls(  # noqa: E731
        c.vocab_size, c.context_length, c.text_width, c.text_layers, c.text_heads, c.embed_dim, **kw
    )
    makers: dict[str, Callable[[], nn.Module]] = {
        "keywords bag": lambda: KeywordsFirst(
            BagOfWords(c.vocab_size, c.text_width, c.embed_dim, tok.pad_id), stop_word_ids(tok), tok.pad_id
        ),
        "word bag": lambda: BagOfWords(c.vocab_size, c.text_width, c.embed_dim, tok.pad_id),
        "keywords → GPT": lambda: KeywordsFirst(gpt(), stop_word_ids(tok), tok.pad_id),
        "GPT, mean": lambda: gpt(MeanPooledTransformer, pad_id=tok.pad_id),
        "GPT, <end>": lambda: gpt(),
    }
    if name not in makers:
        raise ValueError(f"unknown text encoder {name!r}; choose one of {ENCODER_NAMES}")
    return makers[name]()


def make_clip(name: str, tok: tokenizer.Tokenizer, config: clip.CLIPConfig) -> clip.CLIP:
    """The course CLIP with its text encoder replaced by one of kind ``name``; the image side is untouched."""
    model = clip.CLIP(config)
    model.text = make_text_encoder(name, tok, config)
    return model


# ----------------------------------------------------------------------------------------------
# Pairs of scenes that the words alone cannot tell apart.


#: Column orders of the relation attributes ``(colour_a, shape_a, relation, colour_b, shape_b)`` that
#: exchange the two objects, or only their colours.
OBJECT_SWAP: tuple[int, ...] = (3, 4, 2, 0, 1)
COLOUR_SWAP: tuple[int, ...] = (3, 1, 2, 0, 4)


def swap_objects(scenes: shapes.Scenes) -> shapes.Scenes:
    """Relation scenes with object A and object B exchanged, each placement kept.

    "a red circle above a blue square" becomes "a blue square above a red circle": the same words
    (with the same paraphrase template), a different picture.
    """
    return _swapped(scenes, OBJECT_SWAP, swap_shapes=True)


def swap_colours(scenes: shapes.Scenes) -> shapes.Scenes:
    """Relation scenes with the two colours exchanged and everything else kept.

    "a red circle above a blue square" becomes "a blue circle above a red square". Use
    :func:`can_swap_colours` to keep only scenes where that gives a different, allowed picture.
    """
    return _swapped(scenes, COLOUR_SWAP, swap_shapes=False)


def _swapped(scenes: shapes.Scenes, order: tuple[int, ...], swap_shapes: bool) -> shapes.Scenes:
    if scenes.tier != "relation":
        raise ValueError("swapping needs relation scenes (two objects)")
    objects_shapes = scenes.shapes[:, ::-1] if swap_shapes else scenes.shapes
    return shapes.Scenes("relation", scenes.attrs[:, list(order)].copy(), scenes.colours[:, ::-1].copy(),
                         objects_shapes.copy(), scenes.centres.copy(), scenes.half_extents.copy(),
                         scenes.templates.copy(), scenes.version, scenes.backgrounds.copy(), scenes.mentions.copy())


def can_swap_colours(attrs: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(N,)`` bool for relation attributes ``(N, 5)``: the colours differ and neither new colour–shape
    pair is a held-out one (so the image encoder was trained on both pictures of the pair)."""
    a = np.asarray(attrs)
    swapped = a[:, list(COLOUR_SWAP)]
    return (a[:, 0] != a[:, 3]) & ~shapes.contains_heldout_pair(swapped, "relation")


def near_miss_tokens(tok: tokenizer.Tokenizer, attrs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A hard negative caption for every scene and paraphrase: ``(N, 5)`` attrs → ``(N, n_templates, L)``.

    Each scene gets, at random, its objects swapped or (where allowed) its colours swapped, written
    with the same template as the true caption, so only the order or the binding tells them apart.
    """
    a = np.asarray(attrs)
    colour = can_swap_colours(a) & (np.random.default_rng(seed).random(len(a)) < 0.5)
    partner = np.where(colour[:, None], a[:, list(COLOUR_SWAP)], a[:, list(OBJECT_SWAP)])
    return clip.caption_tokens(tok, "relation", torch.from_numpy(partner))


def pair_accuracy(similarity: torch.Tensor) -> float:
    """How often each caption of a pair prefers its own picture.

    Args:
        similarity: ``(N, 2, 2)``; ``similarity[n, k, j]`` scores caption ``k`` of pair ``n`` against
            picture ``j`` of the pair (caption ``k`` describes picture ``k``).
    Returns:
        The fraction of the ``2N`` captions that score their own picture higher than the other one;
        a tie counts half, so a model that cannot tell the two captions apart scores exactly 0.5.
        Pass ``similarity.transpose(1, 2)`` for the other direction (each picture choosing a caption).
    """
    own = similarity.diagonal(dim1=1, dim2=2)  # (N, 2): caption k with picture k
    other = similarity.flip(2).diagonal(dim1=1, dim2=2)  # (N, 2): caption k with the other picture
    return float(((own > other).float() + 0.5 * (own == other).float()).mean())


@torch.no_grad()
def pair_similarities(
    model: clip.CLIP, tok: tokenizer.Tokenizer, scenes: shapes.Scenes, partner: shapes.Scenes, resolution: int
) -> torch.Tensor:
    """``(N, 2, 2)`` cosine similarities of each scene and its partner, captions against pictures.

    Both captions of a pair use the scene's own paraphrase template, so they differ only in what the
    swap changed.
    """
    texts = [shapes.caption("relation", s, int(t)) for s, t in zip(scenes.attrs, scenes.templates)]
    texts += [shapes.caption("relation", s, int(t)) for s, t in zip(partner.attrs, partner.templates)]
    text_emb = clip.embed_texts(model, tok.encode_batch(texts))
    image_emb = clip.embed_images(
        model, torch.cat([shapes.render(scenes, resolution), shapes.render(partner, resolution)])
    )
    n = len(scenes)
    t, i = text_emb.view(2, n, -1).transpose(0, 1), image_emb.view(2, n, -1).transpose(0, 1)  # (N, 2, E)
    return t @ i.transpose(1, 2)


def evaluate(
    model: clip.CLIP, tok: tokenizer.Tokenizer, resolution: int, n: int = 1000, n_retrieval: int = 256,
    split: str = "test", version: str = "v2",
) -> dict[str, float]:
    """The lesson's table row for one model on ``n`` relation scenes of ``split`` of Shapes ``version``.

    Returns:
        ``{"t2i@1": retrieval recall@1 of n_retrieval captions among their n_retrieval pictures,
        "t2i@1 +twins": the same with every picture's object-swapped twin added to the gallery,
        "objects swapped": pair accuracy (text → picture), "objects swapped (above)" / "(left of)": the
        same per relation, "colours swapped": attribute-binding pair accuracy (text → picture)}``.
    """
    scenes = shapes.sample_scenes(n, split, "relation", version=version)
    twins = swap_objects(scenes)
    k = min(n_retrieval, n)
    text = clip.embed_texts(model, tok.encode_batch(scenes[:k].captions))
    gallery = clip.embed_images(model, shapes.render(scenes[:k] if k < n else scenes, resolution))
    twin_gallery = clip.embed_images(model, shapes.render(twins[:k], resolution))
    a, a_twin = torch.from_numpy(scenes.attrs[:k]), torch.from_numpy(twins.attrs[:k])
    row = {
        "t2i@1": clip_embeddings.recall_at_k(text @ gallery[:k].T, a, a, ks=(1,))[1],
        "t2i@1 +twins": clip_embeddings.recall_at_k(
            text @ torch.cat([gallery[:k], twin_gallery]).T, a, torch.cat([a, a_twin]), ks=(1,)
        )[1],
    }
    swapped = pair_similarities(model, tok, scenes, twins, resolution)
    row["objects swapped"] = pair_accuracy(swapped)
    for r, relation in enumerate(shapes.RELATIONS):
        row[f"objects swapped ({relation})"] = pair_accuracy(swapped[torch.from_numpy(scenes.attrs[:, 2] == r)])
    ok = can_swap_colours(scenes.attrs)
    row["colours swapped"] = pair_accuracy(
        pair_similarities(model, tok, scenes[ok], swap_colours(scenes[ok]), resolution)
    )
    return row


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class TextEncoderSettings:
    """Lesson 02: five text encoders inside the same CLIP, on two-object relation captions."""

    n_train: int  #: relation training scenes
    steps: int  #: optimiser steps, the same for every encoder
    batch_size: int
    lr: float
    n_eval: int  #: test scenes for the pair tests (each gets a swapped twin)
    n_retrieval: int  #: test captions and pictures for retrieval recall@1
    #: 16 px, half the course CLIP's: the question is about the words, and seven CLIPs must train in the budget
    resolution: int = 16
    seed: int = 0
    version: str = "v2"  #: Shapes version (lesson 00); the relation tier's captions are the same in both


PRESETS: dict[str, TextEncoderSettings] = {
    "ci": TextEncoderSettings(n_train=2_000, steps=20, batch_size=64, lr=2e-3, n_eval=128, n_retrieval=64),
    "cpu": TextEncoderSettings(n_train=20_000, steps=300, batch_size=128, lr=2e-3, n_eval=1_000, n_retrieval=256),
    "gpu": TextEncoderSettings(n_train=20_000, steps=1_500, batch_size=128, lr=2e-3, n_eval=2_000, n_retrieval=256),
}
