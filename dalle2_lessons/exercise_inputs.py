"""What the exercise checkers try: each exercise's random inputs and the edge cases the lesson's own code hits.

A lesson hands them to :func:`~dalle2_lessons.exercises.check_exercise`::

    masked_mean = check_exercise("Exercise 2: the masked mean", masked_mean, text_encoders.masked_mean,
                                 **exercise_inputs.masked_mean())

Every function returns ``{"make_inputs": generator → arguments, "edge_cases": {label: generator → arguments}}``.
The edge cases are the inputs random trials rarely draw and the lesson always meets (a caption that was dropped, a
batch of one, σ = 0, a crop at the border, a tie, ...). ``tests/test_exercises.py`` shows, for each exercise, a
plausible bug that these very inputs catch. Lessons 03, 04, 06 (the DDIM step), 09 (slerp) and 12 (top-k) define
theirs next to the exercise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import shapes, tokenizer

Make = Callable[[torch.Generator], tuple]


def _inputs(make_inputs: Make, **edge_cases: Make) -> dict:
    return {"make_inputs": make_inputs, "edge_cases": edge_cases}


def _pick(values, g: torch.Generator):
    return values[int(torch.randint(len(values), (1,), generator=g))]


# ----------------------------------------------------------------------------------------------
# Lesson 00


#: Points exactly on each outline (inside, by the definition: ``<=``), as ``(x, y)`` pairs.
OUTLINES: dict[str, list[tuple[float, float]]] = {
    "circle": [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)],
    "square": [(0.85, 0.0), (0.0, -0.85), (0.85, 0.85), (-0.85, 0.3)],
    "triangle": [(0.0, -1.0), (0.0, 0.8), (-0.5, 0.8), (0.5, 0.8)],
    "cross": [(0.33, 0.9), (-0.9, 0.33), (1.0, 0.0), (0.0, -1.0)],
}


def shape_mask() -> dict:
    """``(shape, x, y)``: every shape in turn on a grid of points around it, and points on each outline."""
    next_shape = itertools.cycle(shapes.SHAPES)  # every shape gets tried

    def random_points(g: torch.Generator):
        x, y = torch.rand(2, 48, 48, generator=g) * 2.4 - 1.2
        return next(next_shape), x, y

    def on_outline(shape: str) -> Make:
        return lambda g: (shape, *torch.tensor(OUTLINES[shape]).T.contiguous())

    return {"make_inputs": random_points,
            "edge_cases": {f"points on the {s}'s outline": on_outline(s) for s in shapes.SHAPES}}


def caption_template() -> dict:
    """``(colour, shape, size, position)``; the edge cases take each of the three prepositions ("in the centre",
    "at the top", "on the left")."""

    def random_attributes(g: torch.Generator):
        return _pick(shapes.COLOURS, g), _pick(shapes.SHAPES, g), _pick(shapes.SIZES, g), _pick(shapes.POSITIONS, g)

    def at(position: str) -> Make:
        return lambda g: (_pick(shapes.COLOURS, g), _pick(shapes.SHAPES, g), _pick(shapes.SIZES, g), position)

    return {"make_inputs": random_attributes,
            "edge_cases": {f"the position {p!r}": at(p) for p in ("centre", "top", "left")}}


def _predictions(n: int, attributes: int) -> Make:
    def make(g: torch.Generator):
        target = torch.randint(0, 8, (n, attributes), generator=g)
        wrong = torch.rand(n, attributes, generator=g) < 0.15
        return torch.where(wrong, torch.randint(0, 8, (n, attributes), generator=g), target), target
    return make


def scorecard() -> dict:
    """``(predicted, target)`` of the single tier's judge; edge cases: one image, and the relation tier's five
    attributes (lesson 02's judge)."""
    return _inputs(_predictions(64, len(shapes.TIERS["single"])), **{
        "one image": _predictions(1, len(shapes.TIERS["single"])),
        "the relation tier (5 attributes)": _predictions(64, len(shapes.TIERS["relation"])),
    })


# ----------------------------------------------------------------------------------------------
# Lesson 01


def attention() -> dict:
    """``(q, k, v, causal)``: batch 2, 4 heads, 6 tokens, head width 8; edge case: a whole caption (the text
    encoder's 16 tokens, causal) of a batch of one."""

    def random_qkv(g: torch.Generator):
        q, k, v = torch.randn(3, 2, 4, 6, 8, generator=g)
        return q, k, v, bool(torch.rand(1, generator=g) < 0.5)

    def caption(g: torch.Generator):
        return *torch.randn(3, 1, 4, tokenizer.CONTEXT_LENGTH, 8, generator=g), True

    label = f"a whole caption ({tokenizer.CONTEXT_LENGTH} tokens, causal), a batch of one"
    return _inputs(random_qkv, **{label: caption})


# ----------------------------------------------------------------------------------------------
# Lesson 02


def stop_word_filter(tok: tokenizer.Tokenizer, stop_ids: torch.Tensor) -> dict:
    """``(tokens, stop_ids, pad_id)``: six relation captions; edge cases: one caption (the lesson's ``row[None]``),
    and captions with no stop word to drop (keywords only)."""

    def rows(texts: list[str]):
        return tok.encode_batch(texts), stop_ids, tok.pad_id

    def random_rows(g: torch.Generator):
        def one():
            seed = int(torch.randint(10**6, (1,), generator=g))
            template = int(torch.randint(4, (1,), generator=g))
            attrs = shapes.sample_scenes(1, "train", "relation", seed=seed).attrs[0]
            return shapes.caption("relation", attrs, template)
        return rows([one() for _ in range(6)])

    return _inputs(random_rows, **{
        "one caption": lambda g: rows(["there is a red circle to the left of a blue square"]),
        "nothing to drop": lambda g: rows(["red circle blue square", "small green cross"]),
    })


def masked_mean() -> dict:
    """``(x, mask)`` of up to 5 captions, 5 tokens, 5 channels; edge cases: a dropped caption (every token hidden,
    what a padding-only row is too) and a batch of one caption with a single visible token."""

    def random_masked(g: torch.Generator):
        b, length, c = (int(torch.randint(1, 6, (1,), generator=g)) for _ in range(3))
        return torch.randn(b, length, c, generator=g), torch.rand(b, length, generator=g) < 0.6

    def all_hidden(g: torch.Generator):
        x, mask = torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, generator=g) < 0.6
        mask[0] = False
        return x, mask

    def one_token(g: torch.Generator):
        return torch.randn(1, 5, 4, generator=g), torch.tensor([[False, False, True, False, False]])

    return _inputs(random_masked, **{"a caption with every token hidden": all_hidden,
                                     "one caption, one visible token": one_token})


def pair_accuracy() -> dict:
    """``(similarity,)`` ``(N, 2, 2)``; edge cases: a tie (a model that cannot tell the two captions apart) and
    a single pair."""

    def random_similarities(g: torch.Generator):
        return (torch.randn(int(torch.randint(1, 12, (1,), generator=g)), 2, 2, generator=g),)

    def tie(g: torch.Generator):
        sim = torch.randn(4, 2, 2, generator=g)
        sim[0, :, 1] = sim[0, :, 0]  # both captions of pair 0 score the two pictures the same
        return (sim,)

    return _inputs(random_similarities, **{"a tie": tie, "one pair": lambda g: (torch.randn(1, 2, 2, generator=g),)})


# ----------------------------------------------------------------------------------------------
# Lesson 05


def guided_eps(toy_model: Callable) -> dict:
    """``(model, x, t, c, scale)``; edge cases: ``scale = 1`` (no guidance: the conditional prediction alone) and
    ``scale = 0`` (the unconditional one), as the lesson's comparison of scales uses."""

    def with_scale(scale: float | None) -> Make:
        def make(g: torch.Generator):
            x = torch.randn(4, 3, 8, 8, generator=g)
            t, c = torch.randint(1000, (4,), generator=g), torch.randn(4, 6, generator=g)
            s = float(torch.randint(0, 9, (1,), generator=g)) if scale is None else scale
            return toy_model, x, t, c, s
        return make

    return _inputs(with_scale(None), **{"scale = 1 (no guidance)": with_scale(1.0),
                                        "scale = 0 (unconditional)": with_scale(0.0)})


def x0_and_eps_from_v(schedule) -> dict:
    """``(v, t, x_t, schedule)`` for a batch of four with random ``t`` ``(4,)``; edge cases: the first and the last
    step (ᾱ near 1, where x̂_0 is nearly x_t, and ᾱ near 0, where it is nearly −v) and a batch of one."""

    def make(t: torch.Tensor | None = None, b: int = 4) -> Make:
        def inputs(g: torch.Generator):
            v, x_t = torch.randn(2, b, 3, 8, 8, generator=g)
            return v, torch.randint(1000, (b,), generator=g) if t is None else t, x_t, schedule
        return inputs

    return _inputs(make(), **{"t = 0 and t = 999": make(torch.tensor([0, 999, 0, 999])),
                              "a batch of one": make(b=1)})


# ----------------------------------------------------------------------------------------------
# Lesson 06


def prior_attention_mask() -> dict:
    """``(token_mask,)`` ``(B, n)``; edge cases: dropped captions (no token visible, 10% of training rows) and
    captions that fill every place."""

    def random_masks(g: torch.Generator):
        b, n = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 17, (1,), generator=g))
        lengths = torch.randint(0, n + 1, (b, 1), generator=g)  # 0: a dropped caption
        return (torch.arange(n)[None] < lengths,)

    return _inputs(random_masks, **{
        "dropped captions": lambda g: (torch.zeros(2, tokenizer.CONTEXT_LENGTH, dtype=torch.bool),),
        "captions filling every place": lambda g: (torch.ones(2, tokenizer.CONTEXT_LENGTH, dtype=torch.bool),),
    })


def pick_best() -> dict:
    """``(candidates (B, K, D), text_emb (B, D))``, unit vectors; edge cases: one caption, and one candidate
    (K = 1: nothing to choose)."""

    def candidates(b: int | None, k: int | None) -> Make:
        def make(g: torch.Generator):
            bb = int(torch.randint(1, 6, (1,), generator=g)) if b is None else b
            kk = int(torch.randint(1, 4, (1,), generator=g)) if k is None else k
            return (F.normalize(torch.randn(bb, kk, 8, generator=g), dim=-1),
                    F.normalize(torch.randn(bb, 8, generator=g), dim=-1))
        return make

    return _inputs(candidates(None, None), **{"one caption": candidates(1, 2), "one candidate": candidates(3, 1)})


# ----------------------------------------------------------------------------------------------
# Lesson 07


def context_attention() -> dict:
    """``(q, k, v, ck, cv, context_mask)``: 16 pixels and up to 7 context tokens; edge cases: the decoder's context
    when the caption is dropped (half its training rows: the four image-embedding tokens visible, the caption's 16
    hidden) and a single context token."""

    def make(s: int | None, visible: int | None) -> Make:
        def inputs(g: torch.Generator):
            ss = int(torch.randint(1, 8, (1,), generator=g)) if s is None else s
            r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
            b, h, hw, c = 2, 2, 16, 8
            mask = torch.rand(b, ss, generator=g) < 0.5 if visible is None else torch.arange(ss).expand(b, ss) < visible
            return r(b, h, hw, c), r(b, h, hw, c), r(b, h, hw, c), r(b, h, ss, c), r(b, h, ss, c), mask
        return inputs

    return _inputs(make(None, None), **{"a dropped caption": make(4 + tokenizer.CONTEXT_LENGTH, 4),
                                        "one context token": make(1, 1)})


# ----------------------------------------------------------------------------------------------
# Lesson 08


def gaussian_blur(max_sigma: float = 0.6) -> dict:
    """``(images (B, 3, 16, 16), sigma (B,))``; edge cases: σ = 0 (no blur: the training condition's sharpest
    case, and the lesson's first picture) and one image at the widest σ."""

    def random_blur_inputs(g: torch.Generator):
        b = int(torch.randint(1, 5, (1,), generator=g))
        return torch.rand(b, 3, 16, 16, generator=g) * 2 - 1, torch.rand(b, generator=g) * 1.5

    def sigma(b: int, value: float) -> Make:
        return lambda g: (torch.rand(b, 3, 16, 16, generator=g) * 2 - 1, torch.full((b,), value))

    return _inputs(random_blur_inputs, **{"σ = 0": sigma(2, 0.0), f"one image, σ = {max_sigma}": sigma(1, max_sigma)})


def random_crops() -> dict:
    """``(a, b, size, generator)`` of 32×32 images; edge case: a crop as large as the image (its only window starts
    at the border)."""

    def crops(size: int | None) -> Make:
        def make(g: torch.Generator):
            n, r = int(torch.randint(1, 5, (1,), generator=g)), 32
            s = int(torch.randint(4, 20, (1,), generator=g)) if size is None else size
            return (torch.randn(n, 3, r, r, generator=g), torch.randn(n, 3, r, r, generator=g), s,
                    torch.Generator().manual_seed(int(torch.randint(10**6, (1,), generator=g))))
        return make

    return _inputs(crops(None), **{"a crop as large as the image": crops(32), "a one-pixel crop": crops(1)})


# ----------------------------------------------------------------------------------------------
# Stochastic exercises (lessons 05 and 07): checked by statistics, not by one order of random draws.
#
# A dropout written with ``torch.bernoulli``, or drawing the caption's coins before the embedding's, is as right as
# the reference, yet gives other rows for the same generator. So the checker compares what any right answer shares:
# the shapes, that a row is either kept unchanged or dropped whole, the drop rates (on many rows, within a tolerance
# of about six standard errors) and, for two dropouts, their independence. ``probe.wraps`` is the learner's function,
# so a checker can still tell it from the course's own.

STATISTICS_ROWS = 20_000  #: rows per trial: a drop rate's standard error is at most 0.0035
STATISTICS_ATOL = 0.025  #: how far a learner's rate may be from the reference's (both are estimates)


def _rate(flags: torch.Tensor) -> float:
    return float(flags.float().mean())


def condition_dropout_statistics(drop: Callable) -> Callable:
    """Lesson 05: ``drop(c (B, D), p_uncond, generator) → (B, D)`` seen through ``(p_uncond, seed) →`` statistics."""

    def probe(p_uncond: float, seed: int) -> dict:
        c = torch.randn(STATISTICS_ROWS, 6, generator=torch.Generator().manual_seed(seed)) + 3.0  # no zero entries
        out = drop(c, p_uncond, torch.Generator().manual_seed(seed + 1))
        dropped, kept = (out == 0).all(1), (out == c).all(1)
        return {"shape": tuple(out.shape), "rows kept unchanged or zeroed whole": _rate(dropped | kept),
                "drop rate": _rate(dropped)}

    probe.wraps = drop
    # for the checker's GPU check (exercises.device_problem): plain arguments, the coins drawn with a CPU generator
    # as in training, where c lives on the GPU
    probe.device_args = lambda g: (torch.randn(4, 6, generator=g), 0.5, torch.Generator().manual_seed(0))
    return probe


def dropout_statistics(drop: Callable) -> Callable:
    """Lesson 07: ``drop(z (B, D), token_mask (B, L), p_image, p_caption, generator) → (z, mask)`` seen through
    ``(p_image, p_caption, seed) →`` statistics."""

    def probe(p_image: float, p_caption: float, seed: int) -> dict:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(STATISTICS_ROWS, 6, generator=g) + 3.0
        mask = torch.rand(STATISTICS_ROWS, 5, generator=g) < 0.7
        mask[:, 0] = True  # every caption has at least one real token, so "hidden" is visible in the mask
        z_out, m_out = drop(z, mask, p_image, p_caption, torch.Generator().manual_seed(seed + 1))
        z_dropped, c_dropped = (z_out == 0).all(1), ~m_out.any(1)
        both = _rate(z_dropped & c_dropped) - _rate(z_dropped) * _rate(c_dropped)
        return {"shapes": (tuple(z_out.shape), tuple(m_out.shape)),
                "embedding rows kept unchanged or zeroed whole": _rate(z_dropped | (z_out == z).all(1)),
                "captions kept unchanged or hidden whole": _rate(c_dropped | (m_out == mask).all(1)),
                "embedding drop rate": _rate(z_dropped), "caption drop rate": _rate(c_dropped),
                "rate of both dropped, minus the product of the two (0 when independent)": both}

    probe.wraps = drop
    probe.device_args = lambda g: (torch.randn(4, 6, generator=g), torch.rand(4, 5, generator=g) < 0.7, 0.5, 0.5,
                                   torch.Generator().manual_seed(0))
    return probe


def condition_dropout_rates() -> dict:
    """``(p_uncond, seed)`` for :func:`condition_dropout_statistics`; edge cases: never and always drop."""
    return dropout_rates(1)


def dropout_rates(n: int = 2) -> dict:
    """``(p_image, p_caption, seed)`` for :func:`dropout_statistics` (``n`` probabilities); edge cases: never and
    always drop."""

    def make(g: torch.Generator):
        return (*(float(torch.rand(1, generator=g)) for _ in range(n)), int(torch.randint(10**6, (1,), generator=g)))

    def fixed(p: float) -> Make:
        return lambda g: (*([p] * n), int(torch.randint(10**6, (1,), generator=g)))

    return {**_inputs(make, **{"p = 0 (never drop)": fixed(0.0), "p = 1 (always drop)": fixed(1.0)}),
            "atol": STATISTICS_ATOL}


# ----------------------------------------------------------------------------------------------
# Lesson 09


def text_diff() -> dict:
    """``(z_image, text_from, text_to, w)``; edge cases: the lesson's own edit (one picture, ``w = 0``: the
    picture unedited)."""

    def diff(n: int, w: float | None) -> Make:
        def make(g: torch.Generator):
            z = F.normalize(torch.randn(n, 16, generator=g), dim=-1)
            t1, t2 = F.normalize(torch.randn(2, 1, 16, generator=g), dim=-1)
            return z, t1, t2, float(torch.rand(1, generator=g) * 0.8) if w is None else w
        return make

    return _inputs(diff(3, None), **{"one picture, w = 0 (unedited)": diff(1, 0.0),
                                     "one picture, w = 0.6": diff(1, 0.6)})


# ----------------------------------------------------------------------------------------------
# Lesson 13


def attribute_entropy() -> dict:
    """``(readings (C, K) int64, n_values)``, some sets using only a few of the values; edge cases: every reading the
    same (each absent value's term is 0 · log 0, which must count as 0, not NaN), and a single reading."""

    def random_readings(g: torch.Generator):
        n, k = int(torch.randint(2, 10, (1,), generator=g)), int(torch.randint(2, 20, (1,), generator=g))
        used = int(torch.randint(1, n + 1, (1,), generator=g))
        return torch.randint(0, used, (int(torch.randint(1, 5, (1,), generator=g)), k), generator=g), n

    return _inputs(random_readings, **{
        "every reading the same": lambda g: (torch.full((2, 16), 3), 8),
        "a single reading": lambda g: (torch.tensor([[1]]), 4),
    })


def dominated() -> dict:
    """``(scores (N, M),)`` of small integers, so that ties happen; edge cases: a single row (nothing to beat it),
    and two identical rows (a tie beats neither)."""

    def random_scores(g: torch.Generator):
        shape = (int(torch.randint(1, 8, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g)))
        return (torch.randint(0, 4, shape, generator=g).float(),)

    return _inputs(random_scores, **{
        "one row": lambda g: (torch.rand(1, 3, generator=g),),
        "two identical rows": lambda g: (torch.tensor([[0.5, 0.7, 0.2], [0.5, 0.7, 0.2], [0.1, 0.1, 0.1]]),),
    })


# ----------------------------------------------------------------------------------------------
# Lesson 14


def to_course_images() -> dict:
    """``(pixels,)`` uint8 ``(N, H, W)`` or ``(N, H, W, C)``; edge cases: the three datasets' own pictures (MNIST and
    Fashion-MNIST 28×28 grey without a channel axis, CIFAR-10 32×32 RGB: no resize), one picture, RGBA."""

    def pixels(n: int, h: int, w: int, channels: tuple) -> Make:
        return lambda g: (torch.randint(0, 256, (n, h, w, *channels), generator=g, dtype=torch.uint8).numpy(),)

    def random_pixels(g: torch.Generator):
        h, w = (int(v) for v in torch.randint(12, 48, (2,), generator=g))
        return pixels(3, h, w, _pick([(), (1,), (3,), (4,)], g))(g)

    return _inputs(random_pixels, **{
        "MNIST: 28×28 grey, no channel axis": pixels(4, 28, 28, ()),
        "CIFAR-10: 32×32 RGB": pixels(4, 32, 32, (3,)),
        "one picture": pixels(1, 40, 30, (3,)),
        "one RGBA picture": pixels(1, 33, 33, (4,)),
    })


def zero_shot_predict() -> dict:
    """``(image_emb (N, 8), class_emb (K, 8))``; edge cases: one image, and the datasets' ten classes."""

    def embeddings(n: int | None, k: int | None) -> Make:
        def make(g: torch.Generator):
            nn_, kk = (int(v) for v in torch.randint(1, 12, (2,), generator=g))
            nn_, kk = nn_ if n is None else n, kk if k is None else k
            image_emb = torch.randn(nn_, 8, generator=g) * 3
            return image_emb, torch.randn(kk, 8, generator=g) * torch.rand(kk, 1, generator=g)
        return make

    return _inputs(embeddings(None, None), **{"one image": embeddings(1, 10), "ten classes": embeddings(20, 10)})


# ----------------------------------------------------------------------------------------------
# Lesson 15


def chance_agreement() -> dict:
    """``(read, truth, n_values)``: ``(N, 3)`` readings with refusals (−1) and true values of three properties with
    2, 3 and 5 values; edge cases: every reading refused, one property always read the same."""
    n_values = (2, 3, 5)

    def make_with(refuse: float, constant: bool) -> Make:
        def make(g: torch.Generator):
            n = 40
            truth = torch.stack([torch.randint(v, (n,), generator=g) for v in n_values], dim=1)
            read = torch.stack([torch.randint(v, (n,), generator=g) for v in n_values], dim=1)
            read[torch.rand(n, 3, generator=g) < refuse] = -1
            if constant:
                read[:, 1] = 2
            return read, truth, n_values
        return make

    return _inputs(make_with(0.2, False), **{"every reading refused": make_with(1.0, False),
                                             "a property always read as one value": make_with(0.0, True)})


def edit_outcomes() -> dict:
    """``(read, truth, target, new_value)`` for 30 edits of five properties with 4 values; readings agree with the
    source or the edit most of the time, so every outcome occurs; edge case: every edit perfect."""

    def make_with(perfect: bool) -> Make:
        def make(g: torch.Generator):
            n, p = 30, 5
            truth = torch.randint(4, (n, p), generator=g)
            target = torch.randint(p, (n,), generator=g)
            rows = torch.arange(n)
            new_value = (truth[rows, target] + torch.randint(1, 4, (n,), generator=g)) % 4
            read = truth.clone()
            read[rows, target] = new_value
            if not perfect:  # spoil some readings, in the target and elsewhere
                noise = torch.rand(n, p, generator=g) < 0.15
                read[noise] = torch.randint(-1, 4, (int(noise.sum()),), generator=g)
            return read, truth, target, new_value
        return make

    return _inputs(make_with(False), **{"every edit perfect": make_with(True)})


def direction() -> dict:
    """``(low, high)`` of an interval: random ones straddling 0 or not; edge cases: both above, both below, 0 inside."""

    def fixed(low: float, high: float) -> Make:
        return lambda g: (low, high)

    def make(g: torch.Generator):
        a, b = (torch.randn(2, generator=g) * 0.3).tolist()
        return min(a, b), max(a, b)

    return _inputs(make, **{"above 0": fixed(0.02, 0.3), "below 0": fixed(-0.4, -0.1),
                            "straddling 0": fixed(-0.05, 0.2)})
