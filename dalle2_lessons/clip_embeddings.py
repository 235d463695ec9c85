"""A trained CLIP's embeddings, and what they know (lesson 01).

* in batches: :func:`embed_images`, :func:`embed_texts`, and what unCLIP's prior and decoder read of a caption
  (:func:`encode_captions`, :class:`CaptionBank`, every distinct caption of a dataset encoded once);
* measured: zero-shot classification with prompt ensembles, retrieval recall, linear probes, and all of it in one
  call (:func:`evaluate_clip`).

Everything here takes a CLIP, ours (:class:`~dalle2_lessons.clip.CLIP`) or the library's behind the same interface
(:class:`~dalle2_lessons.clip_hf.HFCLIPAdapter`). :mod:`~dalle2_lessons.clip` re-exports the batch helpers, so
``clip.embed_images`` and ``from dalle2_lessons.clip import CaptionBank`` keep working.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import shapes

if TYPE_CHECKING:
    from .clip import CLIP


# ----------------------------------------------------------------------------------------------
# A trained CLIP's embeddings, in batches.


@torch.no_grad()
def embed_images(model: CLIP, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, E)`` unit vectors (eval mode, on the model's device, returned on the CPU)."""
    model.eval()
    device = model.logit_scale.device
    return torch.cat([model.encode_image(x.to(device)).cpu() for x in images.split(batch_size)])


@torch.no_grad()
def embed_texts(model: CLIP, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``(N, L)`` → ``(N, E)`` unit vectors."""
    model.eval()
    device = model.logit_scale.device
    return torch.cat([model.encode_text(t.to(device)).cpu() for t in tokens.split(batch_size)])


@torch.no_grad()
def encode_captions(
    model: CLIP, tokens: torch.Tensor, pad_id: int = 0, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What unCLIP's prior and decoder read of a caption: ``(N, L)`` ids → ``(embeddings (N, E) unit norm,
    per-token features (N, L, width), token mask (N, L) bool, True for real tokens)``."""
    model.eval()
    device = model.logit_scale.device
    emb, feats = [], []
    for chunk in tokens.split(batch_size):
        chunk = chunk.to(device)
        emb.append(model.encode_text(chunk).cpu())
        feats.append(model.text(chunk, return_tokens=True).cpu())
    return torch.cat(emb), torch.cat(feats), tokens != pad_id


@dataclass
class CaptionBank:
    """Every distinct caption of a dataset through the frozen text encoder, once.

    ``index[i, k]`` is the row of scene ``i``'s ``k``-th paraphrase in ``embeddings`` ``(U, E)``,
    ``features`` ``(U, L, width)`` and ``mask`` ``(U, L)``; a few thousand rows serve 20 000 scenes.
    """

    embeddings: torch.Tensor
    features: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor

    @classmethod
    def build(cls, model: CLIP, tokens: torch.Tensor) -> CaptionBank:
        """``tokens`` ``(N, T, L)``: ``T`` paraphrases of each of ``N`` scenes (as from :func:`caption_tokens`)."""
        unique, inverse = torch.unique(tokens.flatten(0, 1), dim=0, return_inverse=True)
        emb, feats, mask = encode_captions(model, unique)
        return cls(emb, feats, mask, inverse.view(tokens.shape[:2]))

    def random_paraphrase(
        self, idx: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For scenes ``idx`` ``(B,)``: one random paraphrase each, as ``(embeddings, features, mask)``."""
        k = torch.randint(self.index.shape[1], (len(idx),), generator=generator)
        rows = self.index[idx, k]
        return self.embeddings[rows], self.features[rows], self.mask[rows]


# ----------------------------------------------------------------------------------------------
# What the embedding knows: zero-shot classification, retrieval, linear probes.


def prompt_bank(tokenizer, tier: str = "single") -> tuple[torch.Tensor, torch.Tensor]:
    """Every caption of every attribute combination (held-out pairs included: they are just words).

    Returns:
        ``(tokens (P, L), attrs (P, A))`` with ``P = combinations × templates``.
    """
    names = shapes.TIERS[tier]
    combos = [c for c in itertools.product(*(range(len(shapes.ATTRIBUTE_VALUES[n])) for n in names))]
    if tier == "relation":  # a scene's two objects always differ
        combos = [c for c in combos if (c[0], c[1]) != (c[3], c[4])]
    attrs = torch.tensor(combos).repeat_interleave(shapes.n_templates(tier), dim=0)
    texts = [shapes.caption(tier, a, t % shapes.n_templates(tier)) for t, a in enumerate(attrs)]
    return tokenizer.encode_batch(texts), attrs


def zero_shot_classifiers(
    text_embeddings: torch.Tensor, attrs: torch.Tensor, tier: str = "single"
) -> dict[str, torch.Tensor]:
    """Prompt ensembling: class ``k`` of an attribute is the normalised mean embedding of every prompt
    that states ``k`` (whatever the other attributes and the paraphrase).

    Args:
        text_embeddings: ``(P, E)`` unit vectors of a :func:`prompt_bank`; attrs: its ``(P, A)``.
    Returns:
        ``{attribute: (n_classes, E)}`` unit vectors.
    """
    return {
        name: class_embeddings(text_embeddings, attrs[:, j], len(shapes.ATTRIBUTE_VALUES[name]))
        for j, name in enumerate(shapes.TIERS[tier])
    }


def class_embeddings(text_embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One embedding per class: the mean of the prompts that state it, renormalised to unit length.

    Args:
        text_embeddings: ``(P, E)`` unit vectors of ``P`` prompts.
        labels: ``(P,)`` int64, the class each prompt states.
    Returns:
        ``(n_classes, E)`` unit vectors.
    """
    sums = torch.zeros(n_classes, text_embeddings.shape[1], dtype=text_embeddings.dtype)
    sums.index_add_(0, labels, text_embeddings)
    return F.normalize(sums, dim=-1)  # the mean and the sum point the same way


def zero_shot_accuracy(
    image_embeddings: torch.Tensor, attrs: torch.Tensor, classifiers: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Fraction of images whose nearest class embedding is the true class, per attribute."""
    return {
        name: float(((image_embeddings @ w.T).argmax(-1) == attrs[:, j]).float().mean())
        for j, (name, w) in enumerate(classifiers.items())
    }


def recall_at_k(
    similarity: torch.Tensor, query_attrs: torch.Tensor, item_attrs: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[int, float]:
    """Retrieval recall: a query scores a hit at ``k`` if one of its ``k`` most similar items has exactly
    the attributes it asked for (several images can match one caption, so "its own image" is too strict).

    Args:
        similarity: ``(Q, I)`` query-by-item scores.
        query_attrs: ``(Q, A)``; item_attrs: ``(I, A)``.
    """
    matches = (query_attrs[:, None, :] == item_attrs[None, :, :]).all(-1)  # (Q, I)
    order = similarity.argsort(dim=1, descending=True)
    ranked = matches.gather(1, order)
    return {k: float(ranked[:, :k].any(1).float().mean()) for k in ks}


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    n_classes: int,
    weight_decay: float = 1e-3,
    iters: int = 100,
) -> float:
    """Multinomial logistic regression on frozen embeddings (L-BFGS); returns test accuracy.

    Args:
        train_x: ``(N, E)``; train_y: ``(N,)`` int64 (and the same for test).
    """
    torch.manual_seed(0)
    probe = nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(train_x), train_y) + weight_decay * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((probe(test_x).argmax(-1) == test_y).float().mean())


# ----------------------------------------------------------------------------------------------
# Evaluation in one call.


def evaluate_clip(
    model: nn.Module,
    tokenizer,
    resolution: int,
    n: int = 2000,
    n_retrieval: int = 256,
    splits: tuple[str, ...] = ("test", "heldout"),
    version: str = "v2",
) -> dict[str, dict[str, float]]:
    """Zero-shot accuracy per attribute and retrieval recall@1/5 (text→image and image→text among
    ``n_retrieval`` images, by their full captions), for each split of Shapes ``version``. Returns
    ``{split: {"colour": ..., "t2i@1": ..., ...}}``."""
    prompts, prompt_attrs = prompt_bank(tokenizer)
    classifiers = zero_shot_classifiers(embed_texts(model, prompts), prompt_attrs)
    results = {}
    for split in splits:
        ds = shapes.ShapesDataset(split, n=n, resolution=resolution, version=version)
        image_emb = embed_images(model, ds.images)
        row = zero_shot_accuracy(image_emb, ds.attrs, classifiers)
        k = min(n_retrieval, n)
        sim = embed_texts(model, tokenizer.encode_batch(ds.scenes[:k].full_captions)) @ image_emb[:k].T
        a = ds.attrs[:k]
        row.update({f"t2i@{r}": v for r, v in recall_at_k(sim, a, a).items()})
        row.update({f"i2t@{r}": v for r, v in recall_at_k(sim.T, a, a).items()})
        results[split] = row
    return results
