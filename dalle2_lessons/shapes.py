"""The Shapes dataset: coloured shapes on a black background, with captions, rendered on the fly.

Everything in the course trains on this dataset because it is small enough for a laptop CPU and yet
has what text-to-image models must learn: colours, shapes, sizes, positions, paraphrased captions,
and (in the ``relation`` tier) two objects whose order in the caption matters.

Two tiers:

* ``single``: one object. Attributes ``colour`` (8), ``shape`` (4), ``size`` (2), ``position`` (3×3
  grid). Caption e.g. "a small red circle in the top left" or "top left: small red circle".
* ``relation``: two small objects in one row or column. Attributes ``colour_a``, ``shape_a``,
  ``relation``, ``colour_b``, ``shape_b`` in the canonical form "A above B" or "A left of B" (A is
  always the upper or left object). Captions may state it either way round: "a red circle above a
  blue square" and "a blue square below a red circle" describe the same scene.

Three splits: ``train`` and ``test`` use the same attribute combinations (fresh samples, different
seeds); ``heldout`` uses only the colour–shape pairs in :data:`HELDOUT_PAIRS`, which never appear in
``train`` or ``test``. A model that draws "a red triangle" after seeing red things and triangles but
never a red triangle has generalised compositionally.

Sample ``i`` of a split depends only on ``(seed, split, tier, i)``, never on how many samples you
ask for, so ``n=100`` is a prefix of ``n=20_000``. No scene occurs in both ``train`` and ``test``, but
the jitter is finer than the anti-aliasing grid, so about 10% of 16-px test renders coincide pixel for
pixel with one of the 20,000 training renders (measured in ``tests/test_shapes.py``): ``test`` tells
you how well a model fits the distribution, ``heldout`` whether it generalises.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

# The caption templates and phrases live in captions.py; lessons and modules read them here too (shapes.caption_single).
from .captions import RELATION_PHRASES as _RELATION_PHRASES  # noqa: F401
from .captions import RELATION_TEMPLATES, SINGLE_TEMPLATES, caption_relation, caption_single, n_templates  # noqa: F401
from .captions import location_phrase

# ----------------------------------------------------------------------------------------------
# Attribute vocabularies. The order of each tuple is the class index used everywhere.

COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
#: RGB in [0, 1], chosen to stay distinguishable after blur and noise at 16×16.
COLOUR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.95, 0.92, 0.10),
    "green": (0.10, 0.70, 0.20),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.15, 0.30, 1.00),
    "purple": (0.58, 0.18, 0.85),
    "pink": (1.00, 0.55, 0.80),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
SIZES: tuple[str, ...] = ("small", "large")
#: Row-major 3×3 grid: index = 3 * row + column.
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "centre", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
#: How each position reads inside a sentence ("a red circle *at the top*").
LOCATION_PHRASES: dict[str, str] = {p: location_phrase(p) for p in POSITIONS}
#: Canonical relations: A is above B, or A is left of B (read backwards in captions: ``_RELATION_PHRASES``).
RELATIONS: tuple[str, ...] = ("above", "left of")

TIERS: dict[str, tuple[str, ...]] = {
    "single": ("colour", "shape", "size", "position"),
    "relation": ("colour_a", "shape_a", "relation", "colour_b", "shape_b"),
}
#: The class names of every attribute, e.g. ``ATTRIBUTE_VALUES["size"] == ("small", "large")``.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS,
    "colour_a": COLOURS, "shape_a": SHAPES, "relation": RELATIONS, "colour_b": COLOURS, "shape_b": SHAPES,
}  # fmt: skip

#: Colour–shape pairs that never appear in ``train`` or ``test``: each shape once, four colours.
HELDOUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("red", "triangle"),
    ("yellow", "square"),
    ("green", "circle"),
    ("blue", "cross"),
)
_HELDOUT_IDS = {(COLOURS.index(c), SHAPES.index(s)) for c, s in HELDOUT_PAIRS}
_ALL_PAIRS = list(itertools.product(range(len(COLOURS)), range(len(SHAPES))))
_SEEN_PAIRS = np.array([p for p in _ALL_PAIRS if p not in _HELDOUT_IDS])
_UNSEEN_PAIRS = np.array(sorted(_HELDOUT_IDS))

SPLITS: tuple[str, ...] = ("train", "test", "heldout", "judge")
#: The fixed size of each split; a lesson may use a prefix of it (or more, for ``train``).
SPLIT_SIZES: dict[str, int] = {"train": 20_000, "test": 2_000, "heldout": 2_000, "judge": 100_000}

# ----------------------------------------------------------------------------------------------
# Captions: several paraphrases per scene (the templates and phrases are in captions.py).


def caption(tier: str, attrs: dict[str, str] | tuple[int, ...] | torch.Tensor, template: int = 0) -> str:
    """Caption for attributes given as names (``{"colour": "red", ...}``) or class indices."""
    if not isinstance(attrs, dict):
        attrs = attribute_names(tier, attrs)
    fn = caption_single if tier == "single" else caption_relation
    return fn(**attrs, template=template)


def attribute_names(tier: str, ids: tuple[int, ...] | torch.Tensor | np.ndarray) -> dict[str, str]:
    """Class indices ``(A,)`` → ``{"colour": "red", ...}`` for one scene."""
    return {name: ATTRIBUTE_VALUES[name][int(i)] for name, i in zip(TIERS[tier], ids)}


# ----------------------------------------------------------------------------------------------
# Geometry. Coordinates are fractions of the image side: (0, 0) is the top-left corner.

GRID_CENTRES: tuple[float, ...] = (0.2, 0.5, 0.8)
HALF_EXTENT: dict[str, float] = {"small": 0.09, "large": 0.15}
JITTER: float = 0.04  # ± uniform shift of the centre, fraction of the image side
SCALE_JITTER: float = 0.05  # ± relative change of the object's size


@dataclass
class Scenes:
    """A batch of scenes, independent of resolution. ``N`` scenes of ``K`` objects (1 or 2).

    Attributes:
        tier: ``"single"`` or ``"relation"``.
        attrs: ``(N, A)`` int64 class indices, columns named by ``TIERS[tier]``.
        colours, shapes: ``(N, K)`` int64 per object.
        centres: ``(N, K, 2)`` float32 ``(x, y)`` in [0, 1].
        half_extents: ``(N, K)`` float32 half the object's bounding box side, in [0, 1] units.
        templates: ``(N,)`` int64 which caption paraphrase each scene uses.
    """

    tier: str
    attrs: np.ndarray
    colours: np.ndarray
    shapes: np.ndarray
    centres: np.ndarray
    half_extents: np.ndarray
    templates: np.ndarray

    def __len__(self) -> int:
        return len(self.attrs)

    def __getitem__(self, index: slice | np.ndarray) -> Scenes:
        """A sub-batch: ``scenes[:100]`` or ``scenes[np.array([3, 5])]``."""
        fields = {
            k: getattr(self, k)[index] for k in ("attrs", "colours", "shapes", "centres", "half_extents", "templates")
        }
        return Scenes(tier=self.tier, **fields)

    @property
    def captions(self) -> list[str]:
        return [caption(self.tier, a, int(t)) for a, t in zip(self.attrs, self.templates)]


_BLOCK = 1024  # scenes are drawn in blocks so that sample i never depends on n


def sample_scenes(n: int, split: str = "train", tier: str = "single", seed: int = 0) -> Scenes:
    """Draw ``n`` scenes of ``split``; sample ``i`` depends only on ``(seed, split, tier, i)``.

    ``judge`` is the attribute judge's own split: every combination, held-out ones included (the
    judge is a measuring instrument, not a generative model, so it must know them all).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {tuple(TIERS)}, got {tier!r}")
    blocks = []
    for b in range(-(-n // _BLOCK)):
        ss = np.random.SeedSequence([seed, SPLITS.index(split), list(TIERS).index(tier), b])
        blocks.append(_sample_block(np.random.default_rng(ss), split, tier))
    fields = {k: np.concatenate([blk[k] for blk in blocks])[:n] for k in blocks[0]}
    return Scenes(tier=tier, **fields)


def rejitter(scenes: Scenes, seed: int = 0) -> Scenes:
    """The same single-object scenes (colour, shape, size, position cell, caption) with fresh random
    placement and size within their cells: "another picture of the same caption"."""
    if scenes.tier != "single":
        raise ValueError("rejitter needs single-object scenes (a relation's attributes do not fix the cells)")
    rng = np.random.default_rng(seed)
    m = len(scenes)
    position, size = scenes.attrs[:, 3], scenes.attrs[:, 2]
    cells = np.stack([position % 3, position // 3], axis=1)[:, None, :]
    centres = np.array(GRID_CENTRES)[cells] + rng.uniform(-JITTER, JITTER, size=(m, 1, 2))
    half = np.array([HALF_EXTENT[s] for s in SIZES])[size][:, None] * rng.uniform(
        1 - SCALE_JITTER, 1 + SCALE_JITTER, size=(m, 1)
    )
    return Scenes(scenes.tier, scenes.attrs.copy(), scenes.colours.copy(), scenes.shapes.copy(),
                  centres.astype(np.float32), half.astype(np.float32), scenes.templates.copy())


def _pairs_for(rng: np.random.Generator, split: str, m: int) -> np.ndarray:
    """``(m, 2)`` (colour, shape) pairs allowed in ``split``."""
    pool = {"heldout": _UNSEEN_PAIRS, "judge": np.array(_ALL_PAIRS)}.get(split, _SEEN_PAIRS)
    return pool[rng.integers(len(pool), size=m)]


def _sample_block(rng: np.random.Generator, split: str, tier: str, m: int = _BLOCK) -> dict[str, np.ndarray]:
    if tier == "single":
        pairs = _pairs_for(rng, split, m)
        size = rng.integers(len(SIZES), size=m)
        position = rng.integers(len(POSITIONS), size=m)
        attrs = np.stack([pairs[:, 0], pairs[:, 1], size, position], axis=1)
        colours, shapes = pairs[:, :1], pairs[:, 1:]
        cells = np.stack([position % 3, position // 3], axis=1)[:, None, :]  # (m, 1, 2) column, row
        half = np.array([HALF_EXTENT[s] for s in SIZES])[size][:, None]
    else:
        a, b = _pairs_for(rng, split, m), _pairs_for(rng, "train" if split == "heldout" else split, m)
        same = (a == b).all(axis=1)  # two identical objects make "A above B" ambiguous: redraw B
        while same.any():
            b[same] = _pairs_for(rng, "train" if split == "heldout" else split, int(same.sum()))
            same = (a == b).all(axis=1)
        if split == "heldout":  # the held-out object may be either one
            swap = rng.random(m) < 0.5
            a[swap], b[swap] = b[swap].copy(), a[swap].copy()
        relation = rng.integers(len(RELATIONS), size=m)  # 0: A above B (same column), 1: A left of B
        lane = rng.integers(3, size=m)  # the shared column (above) or row (left of)
        first, second = np.array([[0, 1], [0, 2], [1, 2]])[rng.integers(3, size=m)].T
        col_a = np.where(relation == 0, lane, first)
        row_a = np.where(relation == 0, first, lane)
        col_b = np.where(relation == 0, lane, second)
        row_b = np.where(relation == 0, second, lane)
        attrs = np.stack([a[:, 0], a[:, 1], relation, b[:, 0], b[:, 1]], axis=1)
        colours, shapes = np.stack([a[:, 0], b[:, 0]], 1), np.stack([a[:, 1], b[:, 1]], 1)
        cells = np.stack([np.stack([col_a, row_a], 1), np.stack([col_b, row_b], 1)], axis=1)  # (m, 2, 2)
        half = np.full((m, 2), HALF_EXTENT["small"])  # two large objects in adjacent cells would touch
    k = colours.shape[1]
    centres = np.array(GRID_CENTRES)[cells] + rng.uniform(-JITTER, JITTER, size=(m, k, 2))
    half = half * rng.uniform(1 - SCALE_JITTER, 1 + SCALE_JITTER, size=(m, k))
    templates = rng.integers(n_templates(tier), size=m)
    return {
        "attrs": attrs.astype(np.int64),
        "colours": colours.astype(np.int64),
        "shapes": shapes.astype(np.int64),
        "centres": centres.astype(np.float32),
        "half_extents": half.astype(np.float32),
        "templates": templates.astype(np.int64),
    }


# ----------------------------------------------------------------------------------------------
# Rendering: anti-aliased by supersampling, vectorised over the whole batch.


def shape_mask(shape: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Is the point ``(x, y)`` inside ``shape``? Coordinates are relative to the object's centre in
    units of its half-extent, so every shape fits the box ``[-1, 1]²``; ``y`` points down.

    Args:
        x, y: tensors of the same shape, any shape.
    Returns:
        bool tensor of that shape.
    """
    ax, ay = x.abs(), y.abs()
    if shape == "circle":
        return x**2 + y**2 <= 1.0
    if shape == "square":
        return torch.maximum(ax, ay) <= 0.85  # a little smaller, so its area is close to the circle's
    if shape == "triangle":  # apex up at y = -1, base at y = 0.8
        return (y <= 0.8) & (ax <= (y + 1.0) / 1.8)
    if shape == "cross":  # an upright "plus" with arms a third of the half-extent thick
        return ((ax <= 0.33) & (ay <= 1.0)) | ((ay <= 0.33) & (ax <= 1.0))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def render(scenes: Scenes, resolution: int = 16, supersample: int | None = None, chunk: int = 2048) -> torch.Tensor:
    """Draw scenes as images.

    Args:
        scenes: ``N`` scenes from :func:`sample_scenes`.
        resolution: side in pixels (any size ≥ 8; the course uses 16, 32 and 64).
        supersample: sub-pixels per pixel side for anti-aliasing (default: enough for ~64 px).
    Returns:
        ``(N, 3, resolution, resolution)`` float32 in [-1, 1]; the background is -1 (black).
    """
    s = supersample or max(2, 64 // resolution)
    side = resolution * s
    grid = (torch.arange(side, dtype=torch.float32) + 0.5) / side  # sub-pixel centres in [0, 1]
    palette = torch.tensor([COLOUR_RGB[c] for c in COLOURS])  # (8, 3)
    out = torch.empty(len(scenes), 3, resolution, resolution)
    for start in range(0, len(scenes), chunk):
        sl = slice(start, start + chunk)
        colours = torch.from_numpy(scenes.colours[sl])
        shapes = torch.from_numpy(scenes.shapes[sl])
        centres = torch.from_numpy(scenes.centres[sl])
        half = torch.from_numpy(scenes.half_extents[sl])
        m, k = colours.shape
        canvas = torch.zeros(m, 3, resolution, resolution)
        for j in range(k):
            coverage = torch.zeros(m, side, side)
            for shape_id, shape in enumerate(SHAPES):
                idx = (shapes[:, j] == shape_id).nonzero().squeeze(1)
                if len(idx) == 0:
                    continue
                h = half[idx, j, None, None]
                x = (grid[None, None, :] - centres[idx, j, 0, None, None]) / h
                y = (grid[None, :, None] - centres[idx, j, 1, None, None]) / h
                coverage[idx] = shape_mask(shape, x, y).float()
            alpha = F.avg_pool2d(coverage[:, None], s)  # fraction of each pixel the object covers
            canvas = canvas * (1 - alpha) + alpha * palette[colours[:, j]][:, :, None, None]
        out[sl] = canvas * 2 - 1
    return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float → [0, 255] uint8, same shape."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 255] uint8 → [-1, 1] float32, same shape."""
    return images.float() / 127.5 - 1


# ----------------------------------------------------------------------------------------------
# The PyTorch dataset.


class ShapesDataset(Dataset):
    """Rendered Shapes scenes with captions and attributes.

    ``dataset[i]`` is ``(image, caption, attrs)``: a ``(3, R, R)`` float tensor in [-1, 1], a string,
    and a ``(A,)`` int64 tensor of class indices named by :attr:`attribute_names`. The whole split is
    rendered once at construction (20,000 images at 16 px take a few seconds) and kept as uint8; for
    fast CPU training use :attr:`images` / :attr:`attrs` / :attr:`captions` directly instead of a
    ``DataLoader``.

    Args:
        split: ``"train"``, ``"test"`` or ``"heldout"`` (or ``"judge"``).
        tier: ``"single"`` or ``"relation"``.
        n: how many scenes; default :data:`SPLIT_SIZES` ``[split]``. Any ``n`` gives a prefix.
        resolution: image side in pixels.
        seed: changes every sample; the course uses 0.
    """

    def __init__(
        self, split: str = "train", tier: str = "single", n: int | None = None, resolution: int = 16, seed: int = 0
    ):
        self.split, self.tier, self.resolution = split, tier, resolution
        self.scenes = sample_scenes(n if n is not None else SPLIT_SIZES[split], split, tier, seed)
        self._images = to_uint8(render(self.scenes, resolution))
        self.attrs = torch.from_numpy(self.scenes.attrs)
        self.captions = self.scenes.captions
        self.attribute_names = TIERS[tier]

    @property
    def images(self) -> torch.Tensor:
        """``(N, 3, R, R)`` float32 in [-1, 1]."""
        return from_uint8(self._images)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, torch.Tensor]:
        return from_uint8(self._images[i]), self.captions[i], self.attrs[i]

    def __repr__(self) -> str:
        return f"ShapesDataset(split={self.split!r}, tier={self.tier!r}, n={len(self)}, resolution={self.resolution})"


def combination_counts(attrs: torch.Tensor | np.ndarray, tier: str = "single") -> dict[str, np.ndarray]:
    """How often each class of each attribute occurs: ``{"colour": (8,) counts, ...}``."""
    attrs = np.asarray(attrs)
    return {name: np.bincount(attrs[:, j], minlength=len(ATTRIBUTE_VALUES[name])) for j, name in enumerate(TIERS[tier])}


def contains_heldout_pair(attrs: torch.Tensor | np.ndarray, tier: str = "single") -> np.ndarray:
    """``(N,)`` bool: does each scene contain one of the :data:`HELDOUT_PAIRS`?"""
    attrs = np.asarray(attrs)
    names = TIERS[tier]
    objects = [("colour", "shape")] if tier == "single" else [("colour_a", "shape_a"), ("colour_b", "shape_b")]
    hit = np.zeros(len(attrs), dtype=bool)
    for c, s in objects:
        pairs = zip(attrs[:, names.index(c)], attrs[:, names.index(s)])
        hit |= np.array([(int(a), int(b)) in _HELDOUT_IDS for a, b in pairs], dtype=bool)
    return hit
