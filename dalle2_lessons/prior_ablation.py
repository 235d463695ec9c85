"""What the prior is for, measured: the unCLIP paper's prior ablation on captions that leave things out.

A caption such as "a red thing" fits many pictures: any shape, size, place and background. The decoder needs *one*
CLIP image embedding to draw from, and the question the paper asks (§5.1, Fig. 9) is where it should come from:

* ``prior``: a sample of the diffusion prior (with 1 or 2 candidates, of which the one closest to the caption
  is kept), a fresh one for every picture;
* ``no prior``: the caption's CLIP *text* embedding itself, the same point for every picture;
* ``nearest``: the image embedding of the training scene whose caption is most similar, again one point.

Each is compared, as a *distribution*, with K image embeddings of real renders that fit the caption
(:func:`~.shapes.matching_scenes`), by the energy distance (:func:`~.metrics.energy_distance`: 0 for identical
sets, and what K other real renders score is the floor) and by the spread ratio (1: as varied as the real
pictures; 0: one point). Full captions are the control: there the caption fixes almost everything, and the rows
should nearly tie. Every number is a mean over captions with a 95% interval over evaluation seeds, each seed
drawing its own captions, real renders and sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import diffusion, metrics, shapes, tokenizer
from .clip_embeddings import embed_images, encode_captions

#: The kinds of evaluation caption: which of (colour, shape, size, position) each names. "full" is the control.
MENTION_TYPES: dict[str, tuple[bool, bool, bool, bool]] = {
    "colour": (True, False, False, False),
    "shape": (False, True, False, False),
    "size+position": (False, False, True, True),
    "colour+shape": (True, True, False, False),
    "colour+size+position": (True, False, True, True),
    "full": (True, True, True, True),
}
#: every kind that leaves an attribute free: where a prior has something to sample and diversity can be measured
PARTIAL_KINDS: tuple[str, ...] = tuple(kind for kind in MENTION_TYPES if kind != "full")
METHODS: tuple[str, ...] = ("prior", "prior_1", "no_prior", "nearest", "floor")


@dataclass
class EvalCaption:
    """One evaluation caption and two independent sets of real scenes that fit it."""

    kind: str  #: a key of :data:`MENTION_TYPES`
    text: str
    attrs: np.ndarray  #: ``(4,)`` the anchor scene's attributes (only the mentioned ones are fixed)
    mentioned: np.ndarray  #: ``(4,)`` bool
    real: shapes.Scenes  #: ``K`` scenes fitting the caption: what samples are compared with
    other: shapes.Scenes  #: ``K`` more: what real pictures score against ``real`` (the floor)


def evaluation_captions(n_per_type: int = 6, k: int = 64, split: str = "test", seed: int = 0,
                        version: str = "v2", kinds: tuple[str, ...] | None = None) -> list[EvalCaption]:
    """``n_per_type`` captions of each kind in :data:`MENTION_TYPES` (or of ``kinds`` only), each anchored on a random
    ``split`` scene, with ``2k`` real scenes fitting it. Deterministic in ``seed``; different seeds give different
    captions; a kind's captions do not depend on which other kinds are asked for."""
    anchors = shapes.sample_scenes(n_per_type * len(MENTION_TYPES), split, seed=100 + seed, version=version).attrs
    out = []
    for t, (kind, mentioned) in enumerate(MENTION_TYPES.items()):
        if kinds is not None and kind not in kinds:
            continue
        for c in range(n_per_type):
            attrs, m = anchors[t * n_per_type + c], np.array(mentioned)
            fits = shapes.matching_scenes(attrs, m, 2 * k, split, seed=1000 * seed + t * n_per_type + c,
                                          version=version, template=c % shapes.n_templates("single"))
            out.append(EvalCaption(kind, fits.captions[0], attrs, m, fits[:k], fits[k:]))
    return out


@torch.no_grad()
def ablation(prior, clip_model, data, cfg, seeds: tuple[int, ...] = (0, 1, 2), n_per_type: int = 6, k: int = 64,
             scale: float = 1.0, version: str = "v2", kinds: tuple[str, ...] | None = None,
             one_candidate: bool = True) -> list[dict]:
    """Energy distance and spread ratio to ``k`` real image embeddings, for every method in :data:`METHODS` (without
    ``prior_1`` if not ``one_candidate``), on :func:`evaluation_captions` of each seed. ``data``: the
    :class:`~.prior.PriorData` the prior learnt from (for ``nearest``); ``cfg``: its :class:`~.prior.PriorSettings`
    (sampling steps, candidates). Returns one row per (seed, caption):
    ``{"seed", "kind", "caption", "energy": {method: float}, "spread": {method: float}}``."""
    from .prior import sample  # prior.py imports this module in its main

    tok, schedule = tokenizer.for_version(version), diffusion.cosine_schedule()
    r = clip_model.config.resolution
    first_captions = data.bank.embeddings[data.bank.index[:, 0]]
    rows = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        for cap in evaluation_captions(n_per_type, k, seed=seed, version=version, kinds=kinds):
            real = embed_images(clip_model, shapes.render(cap.real, r))
            emb, feats, mask = encode_captions(clip_model, tok.encode_batch([cap.text]))
            sets = {"floor": embed_images(clip_model, shapes.render(cap.other, r)), "no_prior": emb,
                    "nearest": data.image_emb[(emb @ first_captions.T).argmax(1)]}
            for name, candidates in (("prior", cfg.candidates), ("prior_1", 1))[:2 if one_candidate else 1]:
                sets[name] = sample(prior, emb.expand(k, -1), feats.expand(k, -1, -1), mask.expand(k, -1), schedule,
                                    scale, cfg.sample_steps, candidates, gen)
            rows.append({"seed": seed, "kind": cap.kind, "caption": cap.text,
                         "energy": {m: float(metrics.energy_distance(sets[m], real)) for m in METHODS if m in sets},
                         "spread": {m: float(metrics.spread_ratio(sets[m], real)) if len(sets[m]) > 1 else 0.0
                                    for m in METHODS if m in sets}})
    return rows


def summary_table(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Per caption kind and method, the mean over captions of each seed, as a 95% interval over seeds:
    ``{kind: {"energy/prior": {"mean", "low", "high", "n"}, "spread/prior": ..., ...}}``."""
    seeds = sorted({r["seed"] for r in rows})
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        out[kind] = {}
        for measure in ("energy", "spread"):
            for m in (m for m in METHODS if all(m in r[measure] for r in rows)):
                per_seed = [np.mean([r[measure][m] for r in rows if r["kind"] == kind and r["seed"] == s])
                            for s in seeds]
                out[kind][f"{measure}/{m}"] = vars(metrics.interval95(per_seed))
    return out


def format_summary(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """The summary as a text table: one row per caption kind, energy distance (lower is better; ``floor`` is what
    real pictures score) and the prior's spread ratio, each ``mean ± half-width`` of its 95% interval."""

    def cell(iv: dict[str, float]) -> str:
        return f"{iv['mean']:.3f}±{(iv['high'] - iv['low']) / 2:.3f}"

    head = f"{'caption kind':22s}" + "".join(f"{m:>15s}" for m in METHODS) + f"{'spread prior':>15s}"
    lines = [head, "-" * len(head)]
    for kind, row in table.items():
        lines.append(f"{kind:22s}" + "".join(f"{cell(row[f'energy/{m}']):>15s}" for m in METHODS)
                     + f"{cell(row['spread/prior']):>15s}")
    return "\n".join(lines)
