"""Measuring instruments that see distributions: Shapes FID, diversity, energy distance, 95% intervals.

The attribute judge answers "does this image show what its caption asked for?", one image at a time. A
generative model can pass that test and still be wrong as a *distribution*: eight identical red circles for
"a red shape" are all correct and have no variety. This module measures the sets.

* **Shapes FID** (:func:`shapes_fid`): the Fréchet distance between Gaussians fitted to features of samples and
  of real renders of the same captions. The original FID uses Inception-v3 features from ImageNet, which know
  nothing about coloured shapes on black; fast.ai part 2 builds its FID from a small classifier trained on its own
  data instead, and we do the same with the one classifier that knows this domain: the judge. The features are
  its *penultimate* layer (:func:`judge_features`: the 256 ReLU units of the dense layer under the attribute
  heads). The logits keep only the attribute classes; the layer below also encodes how an object is drawn (edges,
  blur, exact place and size within the jitter), and as a dense layer over the 4×4 map, not a global pool, it
  keeps *where* things are. Images are seen as the judge sees them (32×32 for v1, 64×64 for the strict v2
  judge). FID is biased upwards for small sets, so a number means something only next to its floor at the same set
  size (:func:`real_floor`).
* **Diversity** (:func:`diversity_ratio`): for each attribute a caption left free, the entropy of the
  judge's readings over K samples, as a fraction of the same entropy over K real renders of that caption.
* **Embedding distributions** (:func:`energy_distance`, :func:`spread_ratio`): K prior samples against K
  real image embeddings of a caption, for the prior lesson.
* **Intervals** (:func:`interval95`, :func:`overlaps`): every comparison is a mean over ≥ 3 seeds with a 95%
  Student-t interval; two models differ measurably when their intervals do not overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import shapes
from .judge import AttributeJudge, load_judge, to_judge_resolution

# ----------------------------------------------------------------------------------------------
# The Fréchet distance between two Gaussians, by hand.


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite ``(F, F)`` matrix: ``V diag(√λ) Vᵀ``. Round-off makes
    the smallest eigenvalues of a rank-deficient covariance slightly negative; they are zero, so clamp them."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_from_stats(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, s1) and N(mu2, s2), means ``(F,)``, covariances ``(F, F)``.

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).

    Reference code writes the last term as ``sqrtm(Σ₁ Σ₂)``, but the product of two covariances is not
    symmetric, so it needs a general matrix square root (Schur decomposition, complex round-off to discard).
    The "sandwich" Σ₁^½ Σ₂ Σ₁^½ is similar to Σ₁Σ₂ (same eigenvalues, hence same trace of the square root)
    and *is* symmetric positive semi-definite, so two symmetric eigendecompositions (``eigh``: real, stable,
    fine with zero eigenvalues) do it. Float64 because the trace is a difference of large, nearly equal terms.
    """
    mu1, s1, mu2, s2 = (t.detach().to("cpu", torch.float64) for t in (mu1, s1, mu2, s2))
    root1 = _sqrtm_psd(s1)
    sandwich = root1 @ s2 @ root1
    sandwich = (sandwich + sandwich.T) / 2  # symmetric in exact arithmetic; make it so in floating point
    tr_covmean = torch.linalg.eigvalsh(sandwich).clamp_min(0).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_covmean
    return max(float(d2), 0.0)  # a distance: a value like -1e-12 is round-off around zero


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, F)`` features, N ≥ 2 → mean ``(F,)`` and unbiased covariance ``(F, F)`` in float64."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N, F) features with N >= 2, got shape {tuple(features.shape)}")
    x = features.detach().to("cpu", torch.float64)
    return x.mean(0), torch.cov(x.T)  # torch.cov wants variables in rows


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``(N, F)`` and ``(M, F)``. With N or M ≤ F the
    covariance is rank-deficient; the distance is still defined (and biased upwards: compare with a floor)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"feature sets differ in width: {tuple(a.shape)} vs {tuple(b.shape)}")
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))


# ----------------------------------------------------------------------------------------------
# Shapes FID: the judge's penultimate features, and the real-vs-real floor.


_default_judge = lru_cache(maxsize=1)(lambda: load_judge("single"))  # the shipped judge, loaded once


@torch.no_grad()
def judge_features(images: torch.Tensor, judge: AttributeJudge | None = None, batch_size: int = 512) -> torch.Tensor:
    """``(N, 3, R, R)`` images in [-1, 1], any R → ``(N, 256)`` float32 ≥ 0: the judge's layer before its heads.
    ``judge.features`` is the whole trunk (convolutions, flatten, the 256-unit dense layer and its ReLU); the heads
    are single linear layers on top of it. Default judge: the shipped ``judge-single``."""
    judge = judge if judge is not None else _default_judge()
    judge.eval()  # BatchNorm must use its running statistics, not the batch's
    device = next(judge.parameters()).device
    out = [judge.features(to_judge_resolution(chunk.to(device), judge.resolution)).cpu()
           for chunk in images.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, judge.features[-2].out_features)


def shapes_fid(samples: torch.Tensor, real: torch.Tensor, judge: AttributeJudge | None = None) -> float:
    """Shapes FID between ``(N, 3, R, R)`` samples and ``(M, 3, R', R')`` real renders (both in [-1, 1]).
    Print it next to :func:`real_floor` of the same captions, at the same set size."""
    return frechet_distance(judge_features(samples, judge), judge_features(real, judge))


def real_renders(attrs: torch.Tensor | np.ndarray | shapes.Scenes, resolution: int, seed: int = 0) -> torch.Tensor:
    """Fresh real renders ``(N, 3, R, R)`` in [-1, 1] of single-object scenes given as ``(N, 4)`` attribute
    indices (colour, shape, size, position) or as :class:`~.shapes.Scenes`: "another picture of the same
    caption", with placement and size jittered by ``seed`` (:func:`~.shapes.rejitter`)."""
    if isinstance(attrs, shapes.Scenes):
        scenes = attrs
    else:
        a = np.asarray(attrs, dtype=np.int64)
        # rejitter redraws centres and sizes from the attributes, so placeholders suffice here
        scenes = shapes.Scenes("single", a, a[:, :1], a[:, 1:2], np.zeros((len(a), 1, 2), np.float32),
                               np.zeros((len(a), 1), np.float32), np.zeros(len(a), np.int64))
    return shapes.render(shapes.rejitter(scenes, seed), resolution)


def real_floor(attrs: torch.Tensor | np.ndarray | shapes.Scenes, resolution: int, seeds: tuple[int, int] = (1, 2),
               judge: AttributeJudge | None = None) -> float:
    """The Shapes FID between two independent sets of real renders of the same captions (``seeds`` pick the jitter):
    what a perfect generator scores at this set size. Score samples against ``real_renders(attrs, R, seeds[0])``."""
    return shapes_fid(real_renders(attrs, resolution, seeds[0]), real_renders(attrs, resolution, seeds[1]), judge)


# ----------------------------------------------------------------------------------------------
# Diversity: entropy of the judge's readings of the attributes a caption left free.


def attribute_entropy(readings: torch.Tensor, n_values: int) -> torch.Tensor:
    """Plug-in entropy in nats of integer readings ``(..., K)`` in ``[0, n_values)`` → ``(...)`` float64, in
    ``[0, log min(K, n_values)]``. It is biased low for small K, so compare entropies only at equal K."""
    if readings.numel() and (readings.min() < 0 or readings.max() >= n_values):
        raise ValueError(f"readings must lie in [0, {n_values}), got [{int(readings.min())}, {int(readings.max())}]")
    p = torch.nn.functional.one_hot(readings.long(), n_values).double().mean(-2)  # (..., n_values)
    return -(p * p.clamp_min(1e-300).log()).sum(-1)  # 0 · log 0 = 0


def entropy_ratios(sample_readings: torch.Tensor, real_readings: torch.Tensor, free: torch.Tensor,
                   n_values: tuple[int, ...] | None = None) -> torch.Tensor:
    """Per caption and attribute, H(samples' readings) / H(real renders' readings).

    Args:
        sample_readings: ``(C, K, A)`` int, the judge's reading of attribute ``a`` in sample ``k`` of caption ``c``.
        real_readings: ``(C, K, A)`` int, the same for K real renders of each caption (use the same K).
        free: ``(C, A)`` bool, the attributes each caption left free.
        n_values: classes per attribute; default the ``single`` tier's (8 colours, 4 shapes, 2 sizes, 9 positions).
    Returns:
        ``(C, A)`` float64 ratios ≥ 0 (above 1: samples vary more than real renders), NaN where the attribute is
        not free or the real renders' entropy is 0: if real pictures of a caption never vary an attribute, there
        is no diversity to match and the ratio is undefined (neither 0 nor 1); averages skip it.
    """
    if n_values is None:
        n_values = tuple(len(shapes.ATTRIBUTE_VALUES[name]) for name in shapes.TIERS["single"])
    if sample_readings.ndim != 3 or real_readings.shape[::2] != sample_readings.shape[::2]:
        raise ValueError(f"readings must be (C, K, A) with equal C and A: {tuple(sample_readings.shape)} "
                         f"vs {tuple(real_readings.shape)}")
    h_samples, h_real = (torch.stack([attribute_entropy(r[..., j], n) for j, n in enumerate(n_values)], -1)
                         for r in (sample_readings, real_readings))  # each (C, A)
    defined = free.bool() & (h_real > 0)
    return torch.where(defined, h_samples / h_real.clamp_min(1e-12), torch.full_like(h_real, math.nan))


def diversity_ratio(sample_readings: torch.Tensor, real_readings: torch.Tensor, free: torch.Tensor,
                    n_values: tuple[int, ...] | None = None) -> float:
    """:func:`entropy_ratios` averaged over each caption's free attributes, then over captions (each caption
    counts once). 1: as varied as real renders; 0: every sample reads the same. NaN if no ratio is defined."""
    ratios = entropy_ratios(sample_readings, real_readings, free, n_values)
    per_caption = ratios.nanmean(1)  # NaN for a caption without a defined ratio
    return float(per_caption.nanmean()) if not per_caption.isnan().all() else math.nan


# ----------------------------------------------------------------------------------------------
# Distances between sets of embeddings (the prior lesson): energy distance and spread.


def _pairwise(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(..., N, D)``, ``(..., M, D)`` → ``(..., N, M)`` Euclidean distances in float64. The direct formula,
    not cdist's matrix-product shortcut, whose round-off makes a point's distance to itself non-zero."""
    return torch.cdist(x.double(), y.double(), compute_mode="donot_use_mm_for_euclid_dist")


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance 2E‖x−y‖ − E‖x−x'‖ − E‖y−y'‖ between sets ``(..., N, D)`` and ``(..., M, D)`` → ``(...)``.

    The V-statistic (every mean includes the zero i = j terms), i.e. the energy distance between the two empirical
    distributions: ≥ 0, exactly 0 for identical sets. Unlike the Fréchet distance it assumes no Gaussian and needs
    no covariance, so K = 16 points in a 64-d space are enough. In 1-D: ``scipy.stats.energy_distance(u, v)²``.
    """
    return 2 * _pairwise(x, y).mean((-2, -1)) - _pairwise(x, x).mean((-2, -1)) - _pairwise(y, y).mean((-2, -1))


def mean_pairwise_distance(x: torch.Tensor) -> torch.Tensor:
    """``(..., K, D)``, K ≥ 2 → ``(...)``: the mean distance between two different points of a set."""
    return _pairwise(x, x).sum((-2, -1)) / (x.shape[-2] * (x.shape[-2] - 1))  # the zero diagonal is not a pair


def spread_ratio(samples: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean pairwise distance of samples ``(..., K, D)`` over that of real embeddings ``(..., K', D)`` → ``(...)``.
    1: as spread out as the real embeddings; near 0: collapsed onto one point (a regression to the mean)."""
    return mean_pairwise_distance(samples) / mean_pairwise_distance(real)


# ----------------------------------------------------------------------------------------------
# 95% intervals over seeds.

#: t quantile 0.975 for 1–30 degrees of freedom (scipy.stats.t.ppf(0.975, df), to 4 decimals); 1.96 beyond.
T975: tuple[float, ...] = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    """The two-sided 95% Student-t quantile for ``df`` ≥ 1 degrees of freedom (normal 1.96 past 30)."""
    if df < 1:
        raise ValueError(f"need at least 1 degree of freedom, got {df}")
    return T975[df - 1] if df <= len(T975) else 1.96


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its 95% interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int  #: how many values (seeds)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def interval95(values: torch.Tensor | np.ndarray | list[float] | tuple[float, ...]) -> Interval:
    """Mean of ≥ 2 per-seed values and its 95% Student-t interval, mean ± t · s / √n. With 3 seeds t is 4.30, not
    1.96: few seeds give wide intervals, and that is the honest answer."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) < 2:
        raise ValueError(f"an interval needs at least 2 values (seeds), got {len(v)}")
    mean, half = float(v.mean()), t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return Interval(mean, mean - half, mean + half, len(v))


def overlaps(a: Interval, b: Interval) -> bool:
    """Do two intervals share a point? If not, the difference between the two means is measurable."""
    return a.low <= b.high and b.low <= a.high
