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

Two versions (:class:`Version`), drawn by the same code. **v1**: every caption names all four attributes, the
background is black, the decoder works at 16 px. **v2** (issue #21): half of a scene's paraphrases name only a random
non-empty subset of the attributes ("a red thing", "something large in the top left"; :attr:`Scenes.mentions` says
which), the background is black or grey and no caption names it (:func:`read_background` reads it by pixels), and
objects are sized for a 32-px decoder (the smallest is 6 px wide there) and a 64-px upsampler.
:func:`matching_scenes` draws the real pictures that fit an under-specified caption. Every shipped checkpoint is
trained on v2; v1 stays so that lesson 00 can show why it was replaced (one caption fixes one picture there, so a
prior has nothing to choose).

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
from .captions import NOUNS, caption_partial, location_phrase  # noqa: F401

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
# Versions. v2 (issue #21) is what every shipped checkpoint is trained on; v1 is the first design, kept for lesson 00's
# comparison. Both are drawn by the same code: a version only changes the numbers below.

#: Background shades (RGB in [0, 1]). No caption names the background: it is the property a caption never fixes.
BACKGROUND_RGB: dict[str, tuple[float, float, float]] = {"black": (0.0, 0.0, 0.0), "grey": (0.25, 0.25, 0.25)}


@dataclass(frozen=True)
class Version:
    """The numbers that define one version of the dataset.

    Attributes:
        name: ``"v1"`` or ``"v2"``.
        grid_centres: centre of each grid column (and row), fraction of the image side.
        half_extent: half the bounding-box side of a ``small`` and a ``large`` object, fraction of the side.
        jitter: ± uniform shift of an object's centre, fraction of the side.
        scale_jitter: ± relative change of an object's size.
        backgrounds: the shades a scene's background is drawn from (keys of :data:`BACKGROUND_RGB`).
        p_full: probability that a paraphrase names all four attributes; otherwise it names a random non-empty
            proper subset of them (single-object tier only; relation captions are always full).
        resolution: the base resolution, what CLIP reads and the decoder draws.
        final_resolution: what the upsampler draws.
    """

    name: str
    grid_centres: tuple[float, float, float]
    half_extent: tuple[float, float]
    jitter: float
    scale_jitter: float
    backgrounds: tuple[str, ...]
    p_full: float
    resolution: int
    final_resolution: int


#: Every caption full, black background, a 16-px base: small objects are 3 px wide there (a cross is a blob).
V1 = Version("v1", (0.2, 0.5, 0.8), (0.09, 0.15), 0.04, 0.05, ("black",), 1.0, 16, 32)
#: Half the captions leave attributes out, the background is black or grey (never named), a 32-px base where the
#: smallest object is 6 px wide and a cross's arm 2 px thick, upsampled to 64 px.
V2 = Version("v2", (0.22, 0.5, 0.78), (0.10, 0.17), 0.03, 0.05, ("black", "grey"), 0.5, 32, 64)
VERSIONS: dict[str, Version] = {"v1": V1, "v2": V2}
#: The attribute subsets a partial caption may mention: the 14 non-empty proper subsets of the four attributes, as
#: ``(4,)`` bool flags in ``TIERS["single"]`` order.
PARTIAL_MENTIONS: np.ndarray = np.array(
    [[a in c for a in range(4)] for r in (1, 2, 3) for c in itertools.combinations(range(4), r)], dtype=bool)


def get_version(version: str | Version) -> Version:
    """``"v2"`` or a :class:`Version` → the :class:`Version`."""
    if isinstance(version, Version):
        return version
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {tuple(VERSIONS)}, got {version!r}")
    return VERSIONS[version]


# ----------------------------------------------------------------------------------------------
# Captions: several paraphrases per scene (the templates and phrases are in captions.py).


def caption(tier: str, attrs: dict[str, str] | tuple[int, ...] | torch.Tensor, template: int = 0,
            mentioned: tuple[bool, ...] | np.ndarray | None = None) -> str:
    """Caption for attributes given as names (``{"colour": "red", ...}``) or class indices. ``mentioned``: ``(A,)``
    flags of the attributes the caption names (default all; a single-object caption may leave some out)."""
    if not isinstance(attrs, dict):
        attrs = attribute_names(tier, attrs)
    if mentioned is not None and not all(bool(m) for m in mentioned):
        if tier != "single":
            raise ValueError("only single-object captions can leave attributes out")
        return caption_partial(**attrs, mentioned=tuple(bool(m) for m in mentioned), template=template)
    fn = caption_single if tier == "single" else caption_relation
    return fn(**attrs, template=template)


def attribute_names(tier: str, ids: tuple[int, ...] | torch.Tensor | np.ndarray) -> dict[str, str]:
    """Class indices ``(A,)`` → ``{"colour": "red", ...}`` for one scene."""
    return {name: ATTRIBUTE_VALUES[name][int(i)] for name, i in zip(TIERS[tier], ids)}


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
        version: the dataset version's name (``"v1"``, ``"v2"``).
        backgrounds: ``(N,)`` int64 index into the version's ``backgrounds`` (v1: all 0, black).
        mentions: ``(N, T, A)`` bool: which attributes paraphrase ``t`` of each scene names (v1: all True).
    """

    tier: str
    attrs: np.ndarray
    colours: np.ndarray
    shapes: np.ndarray
    centres: np.ndarray
    half_extents: np.ndarray
    templates: np.ndarray
    version: str = "v2"
    backgrounds: np.ndarray | None = None
    mentions: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, a = self.attrs.shape
        if self.backgrounds is None:
            self.backgrounds = np.zeros(n, dtype=np.int64)
        if self.mentions is None:
            self.mentions = np.ones((n, n_templates(self.tier), a), dtype=bool)

    _FIELDS = ("attrs", "colours", "shapes", "centres", "half_extents", "templates", "backgrounds", "mentions")

    def __len__(self) -> int:
        return len(self.attrs)

    def __getitem__(self, index: slice | np.ndarray) -> Scenes:
        """A sub-batch: ``scenes[:100]`` or ``scenes[np.array([3, 5])]``."""
        return Scenes(tier=self.tier, version=self.version, **{k: getattr(self, k)[index] for k in self._FIELDS})

    @property
    def mentioned(self) -> np.ndarray:
        """``(N, A)`` bool: the attributes each scene's caption (paraphrase ``templates``) names."""
        return self.mentions[np.arange(len(self)), self.templates]

    @property
    def captions(self) -> list[str]:
        return [caption(self.tier, a, int(t), m) for a, t, m in zip(self.attrs, self.templates, self.mentioned)]

    @property
    def full_captions(self) -> list[str]:
        """Each scene's caption (paraphrase ``templates``) naming every attribute, whatever its ``mentions``: what a
        measurement of a single picture against its caption reads (v1: the same as :attr:`captions`)."""
        return [caption(self.tier, a, int(t)) for a, t in zip(self.attrs, self.templates)]

    def paraphrases(self) -> list[list[str]]:
        """Every paraphrase of every scene: ``N`` lists of ``T`` captions (what CLIP and the prior train on)."""
        return [[caption(self.tier, a, t, m) for t, m in enumerate(ms)] for a, ms in zip(self.attrs, self.mentions)]


_BLOCK = 1024  # scenes are drawn in blocks so that sample i never depends on n


def sample_scenes(n: int, split: str = "train", tier: str = "single", seed: int = 0,
                  version: str | Version = "v2") -> Scenes:
    """Draw ``n`` scenes of ``split``; sample ``i`` depends only on ``(seed, split, tier, version, i)``.

    ``judge`` is the attribute judge's own split: every combination, held-out ones included (the
    judge is a measuring instrument, not a generative model, so it must know them all).
    """
    version = get_version(version)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {tuple(TIERS)}, got {tier!r}")
    blocks = []
    for b in range(-(-n // _BLOCK)):
        ss = np.random.SeedSequence([seed, SPLITS.index(split), list(TIERS).index(tier), b])
        blocks.append(_sample_block(np.random.default_rng(ss), split, tier, version))
    fields = {k: np.concatenate([blk[k] for blk in blocks])[:n] for k in blocks[0]}
    return Scenes(tier=tier, version=version.name, **fields)


def rejitter(scenes: Scenes, seed: int = 0) -> Scenes:
    """The same single-object scenes (colour, shape, size, position cell, caption) with fresh random
    placement and size within their cells, and (v2) a fresh background, which no caption names: "another
    picture of the same caption"."""
    if scenes.tier != "single":
        raise ValueError("rejitter needs single-object scenes (a relation's attributes do not fix the cells)")
    v = get_version(scenes.version)
    rng = np.random.default_rng(seed)
    m = len(scenes)
    position, size = scenes.attrs[:, 3], scenes.attrs[:, 2]
    cells = np.stack([position % 3, position // 3], axis=1)[:, None, :]
    centres = np.array(v.grid_centres)[cells] + rng.uniform(-v.jitter, v.jitter, size=(m, 1, 2))
    half = np.array(v.half_extent)[size][:, None] * rng.uniform(1 - v.scale_jitter, 1 + v.scale_jitter, size=(m, 1))
    backgrounds = rng.integers(len(v.backgrounds), size=m) if len(v.backgrounds) > 1 else scenes.backgrounds.copy()
    return Scenes(scenes.tier, scenes.attrs.copy(), scenes.colours.copy(), scenes.shapes.copy(),
                  centres.astype(np.float32), half.astype(np.float32), scenes.templates.copy(), scenes.version,
                  backgrounds.astype(np.int64), scenes.mentions.copy())


def _pairs_for(rng: np.random.Generator, split: str, m: int) -> np.ndarray:
    """``(m, 2)`` (colour, shape) pairs allowed in ``split``."""
    pool = {"heldout": _UNSEEN_PAIRS, "judge": np.array(_ALL_PAIRS)}.get(split, _SEEN_PAIRS)
    return pool[rng.integers(len(pool), size=m)]


def _sample_block(rng: np.random.Generator, split: str, tier: str, version: Version = V1,
                  m: int = _BLOCK) -> dict[str, np.ndarray]:
    small, large = version.half_extent
    if tier == "single":
        pairs = _pairs_for(rng, split, m)
        size = rng.integers(len(SIZES), size=m)
        position = rng.integers(len(POSITIONS), size=m)
        attrs = np.stack([pairs[:, 0], pairs[:, 1], size, position], axis=1)
        colours, shapes = pairs[:, :1], pairs[:, 1:]
        cells = np.stack([position % 3, position // 3], axis=1)[:, None, :]  # (m, 1, 2) column, row
        half = np.array([small, large])[size][:, None]
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
        half = np.full((m, 2), small)  # two large objects in adjacent cells would touch
    k = colours.shape[1]
    j, s = version.jitter, version.scale_jitter
    centres = np.array(version.grid_centres)[cells] + rng.uniform(-j, j, size=(m, k, 2))
    half = half * rng.uniform(1 - s, 1 + s, size=(m, k))
    templates = rng.integers(n_templates(tier), size=m)
    # Drawn after everything v1 draws, so v1's scenes are unchanged by v2's existence.
    backgrounds = rng.integers(len(version.backgrounds), size=m) if len(version.backgrounds) > 1 else np.zeros(m)
    mentions = np.ones((m, n_templates(tier), attrs.shape[1]), dtype=bool)
    if tier == "single" and version.p_full < 1:
        partial = rng.random(mentions.shape[:2]) >= version.p_full
        mentions[partial] = PARTIAL_MENTIONS[rng.integers(len(PARTIAL_MENTIONS), size=int(partial.sum()))]
    return {
        "attrs": attrs.astype(np.int64),
        "colours": colours.astype(np.int64),
        "shapes": shapes.astype(np.int64),
        "centres": centres.astype(np.float32),
        "half_extents": half.astype(np.float32),
        "templates": templates.astype(np.int64),
        "backgrounds": backgrounds.astype(np.int64),
        "mentions": mentions,
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
        ``(N, 3, resolution, resolution)`` float32 in [-1, 1]; the background is
        black (-1) or, in v2, possibly grey (-0.5).
    """
    s = supersample or max(2, 64 // resolution)
    side = resolution * s
    grid = (torch.arange(side, dtype=torch.float32) + 0.5) / side  # sub-pixel centres in [0, 1]
    palette = torch.tensor([COLOUR_RGB[c] for c in COLOURS])  # (8, 3)
    shades = torch.tensor([BACKGROUND_RGB[b] for b in get_version(scenes.version).backgrounds])  # (n_backgrounds, 3)
    out = torch.empty(len(scenes), 3, resolution, resolution)
    for start in range(0, len(scenes), chunk):
        sl = slice(start, start + chunk)
        colours = torch.from_numpy(scenes.colours[sl])
        shapes = torch.from_numpy(scenes.shapes[sl])
        centres = torch.from_numpy(scenes.centres[sl])
        half = torch.from_numpy(scenes.half_extents[sl])
        m, k = colours.shape
        canvas = shades[torch.from_numpy(scenes.backgrounds[sl])][:, :, None, None].expand(m, 3, resolution, resolution)
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
        resolution: image side in pixels (default: the version's base resolution).
        seed: changes every sample; the course uses 0.
        version: ``"v1"`` or ``"v2"`` (:data:`VERSIONS`).
    """

    def __init__(self, split: str = "train", tier: str = "single", n: int | None = None, resolution: int | None = None,
                 seed: int = 0, version: str = "v2"):
        self.split, self.tier, self.version = split, tier, get_version(version).name
        self.resolution = resolution or get_version(version).resolution
        self.scenes = sample_scenes(n if n is not None else SPLIT_SIZES[split], split, tier, seed, version)
        self._images = to_uint8(render(self.scenes, self.resolution))
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
        return (f"ShapesDataset(split={self.split!r}, tier={self.tier!r}, n={len(self)}, "
                f"resolution={self.resolution}, version={self.version!r})")


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


# ----------------------------------------------------------------------------------------------
# What a caption leaves free: the evaluation set of under-specified captions, and the background read back.


def matching_scenes(attrs: np.ndarray | torch.Tensor, mentioned: np.ndarray, n: int, split: str = "test",
                    seed: int = 0, version: str = "v2", template: int = 0) -> Scenes:
    """``n`` scenes of ``split`` that fit one single-object caption: the attributes flagged in ``mentioned``
    ``(4,)`` bool equal ``attrs`` ``(4,)``; the others (and the background) are whatever the split draws, in the
    split's proportions ("real renders of this caption"). Every returned scene's caption is that one caption
    (paraphrase ``template``). Raises if the split holds no such scene (e.g. a held-out pair in ``test``)."""
    attrs, mentioned = np.asarray(attrs, dtype=np.int64), np.asarray(mentioned, dtype=bool)
    found: list[Scenes] = []
    have, draw = 0, 0
    while have < n:
        pool = sample_scenes(8 * _BLOCK, split, "single", seed=1_000_003 * (seed + 1) + draw, version=version)
        keep = np.nonzero((pool.attrs[:, mentioned] == attrs[mentioned]).all(1))[0]
        found.append(pool[keep])
        have, draw = have + len(keep), draw + 1
        if draw == 64 and have == 0:
            raise ValueError(f"no {split} scene fits {caption('single', attrs, template, mentioned)!r}")
    scenes = Scenes(tier="single", version=get_version(version).name,
                    **{k: np.concatenate([getattr(f, k) for f in found])[:n] for k in Scenes._FIELDS})
    scenes.templates[:] = template
    scenes.mentions[:, template] = mentioned
    return scenes


def border_pixels(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, R, R)`` → ``(B, C, 4R − 4)``: every pixel on the image's edge, once."""
    return torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], dim=-1)


def read_background(images: torch.Tensor, version: str = "v2") -> torch.Tensor:
    """``(B, 3, R, R)`` in [-1, 1] → ``(B,)`` int64 index of the version's background shade nearest to the median of
    the image's border pixels (objects rarely touch the border, and a median ignores the few that do). A reading by
    pixels, not by a classifier: what the background is needs no judge."""
    level = border_pixels(images).median(dim=-1).values.mean(dim=1)  # (B,) in [-1, 1]
    shades = torch.tensor([BACKGROUND_RGB[b][0] * 2 - 1 for b in get_version(version).backgrounds])
    return (level[:, None] - shades[None]).abs().argmin(dim=1)
