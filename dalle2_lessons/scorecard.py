"""The scorecard of a text-to-image model on Shapes v2: fidelity, diversity and Shapes FID, with 95% intervals.

One number cannot say whether a model draws what a caption asks for *and* varies what the caption leaves open, so
every generative comparison in the course reports three, per kind of caption (:data:`~.prior_ablation.MENTION_TYPES`:
full captions, and captions naming only some attributes):

* **fidelity**: the fraction of samples on which the strict judge reads every attribute the caption *mentions*
  correctly (an image it cannot read counts as wrong: :meth:`~.judge.AttributeJudge.verdict`);
* **diversity**: for each attribute the caption left free, and for the background, which no caption names, the
  entropy of what the judge reads over a caption's K samples, as a fraction of the same over K real renders of that
  caption (:func:`~.metrics.diversity_ratio`; 1 = as varied as real pictures). The readings here are the judge's
  best guesses, refused or not: variety is a property of the set, fidelity already charges for blobs;
* **Shapes FID**: the Fréchet distance between the judge's penultimate features of the samples and of real renders
  of the same captions (:func:`~.metrics.shapes_fid`), next to its **floor**, what another K real renders of each
  caption score at the same set size.

Each is averaged over the captions of one evaluation seed (its own captions, real renders and sampling noise), and
reported as a 95% interval over seeds (:func:`~.metrics.interval95`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from . import metrics, shapes
from .judge import AttributeJudge, load_judge
from .prior_ablation import MENTION_TYPES, PARTIAL_KINDS, evaluation_captions

#: ``generate(captions, seed) -> (N, 3, R, R)`` images in [-1, 1], one per caption (repeat a caption for K samples).
Generator = Callable[[list[str], int], torch.Tensor]
#: Classes per column of the diversity readings: the four attributes, then the background.
N_VALUES: tuple[int, ...] = (*(len(shapes.ATTRIBUTE_VALUES[a]) for a in shapes.TIERS["single"]),
                             len(shapes.V2.backgrounds))
PARTIAL = "partial"  #: the row pooling every kind of caption that leaves something out


def readings(judge: AttributeJudge, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, 5)``: the judge's best guess of each attribute, and the background read by pixels."""
    return torch.cat([judge.predict(images), shapes.read_background(images)[:, None]], dim=1)


@torch.no_grad()
def score_seed(generate: Generator, seed: int, n_per_type: int = 4, k: int = 16,
               judge: AttributeJudge | None = None, resolution: int = 64,
               kinds: tuple[str, ...] | None = None) -> list[dict]:
    """Generate ``k`` samples for each of :func:`~.prior_ablation.evaluation_captions` ``(n_per_type, k, seed)`` (of
    ``kinds`` only, if given) and score them. Returns one row per caption: kind, caption, fidelity, readable, the
    diversity ratio, and the judge features of samples, real renders and other real renders (for :func:`summarise`'s
    pooled Shapes FID)."""
    judge = judge or load_judge("single", version="v2")
    captions = evaluation_captions(n_per_type, k, seed=seed, kinds=kinds)
    images = generate([c.text for c in captions for _ in range(k)], seed)
    rows = []
    for i, cap in enumerate(captions):
        samples = images[i * k:(i + 1) * k]
        real, other = shapes.render(cap.real, resolution), shapes.render(cap.other, resolution)
        attrs = torch.from_numpy(np.repeat(cap.attrs[None], k, 0))
        mentioned = torch.from_numpy(np.repeat(cap.mentioned[None], k, 0))
        report = judge.score(samples, attrs, mentioned)
        free = torch.tensor([*(~cap.mentioned), True])[None]  # the background is always free
        diversity = metrics.diversity_ratio(readings(judge, samples)[None], readings(judge, real)[None], free,
                                            N_VALUES)
        rows.append({"seed": seed, "kind": cap.kind, "caption": cap.text, "fidelity": report.all_correct,
                     "readable": 1 - report.unreadable, "diversity": diversity,
                     "features": {name: metrics.judge_features(x, judge)
                                  for name, x in (("samples", samples), ("real", real), ("other", other))}})
    return rows


def seed_values(rows: list[dict], kinds: list[str] | tuple[str, ...]) -> dict[str, list[float]]:
    """The per-seed values of each measure over the captions of ``kinds`` in ``rows`` (:func:`score_seed`'s): fidelity,
    readable and diversity averaged over the seed's captions, Shapes FID and its floor over their pooled features.
    Two settings scored on the same seeds can be compared seed by seed (a paired difference) from these."""
    per_seed: dict[str, list[float]] = {m: [] for m in ("fidelity", "readable", "diversity", "fid", "fid_floor")}
    for s in sorted({r["seed"] for r in rows}):
        group = [r for r in rows if r["seed"] == s and r["kind"] in kinds]
        if not group:
            continue
        for m in ("fidelity", "readable"):
            per_seed[m].append(float(np.mean([r[m] for r in group])))
        div = [r["diversity"] for r in group if not np.isnan(r["diversity"])]
        per_seed["diversity"].append(float(np.mean(div)) if div else float("nan"))
        feats = {f: torch.cat([r["features"][f] for r in group]) for f in ("samples", "real", "other")}
        per_seed["fid"].append(metrics.frechet_distance(feats["samples"], feats["real"]))
        per_seed["fid_floor"].append(metrics.frechet_distance(feats["other"], feats["real"]))
    return per_seed


def summarise(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Per caption kind (and :data:`PARTIAL`, every kind but ``full`` pooled): fidelity, readable, diversity, Shapes
    FID and its floor, each a 95% interval over the seeds in ``rows`` of the per-seed value (:func:`seed_values`)."""
    kinds = {kind: [kind] for kind in MENTION_TYPES}
    kinds[PARTIAL] = list(PARTIAL_KINDS)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, members in kinds.items():
        per_seed = seed_values(rows, members)
        if len(per_seed["fidelity"]) >= 2:
            out[name] = {m: vars(metrics.interval95(v)) for m, v in per_seed.items() if not np.isnan(v).any()}
    return out


def scorecard(generate: Generator, seeds: tuple[int, ...] = (0, 1, 2), n_per_type: int = 4, k: int = 16,
              judge: AttributeJudge | None = None, resolution: int = 64,
              kinds: tuple[str, ...] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`score_seed` for every seed, then :func:`summarise` (real renders at ``resolution``, the samples')."""
    judge = judge or load_judge("single", version="v2")
    return summarise([row for s in seeds for row in score_seed(generate, s, n_per_type, k, judge, resolution, kinds)])


def format_scorecard(card: dict[str, dict[str, dict[str, float]]]) -> str:
    """One line per caption kind: each measure as ``mean ± half-width`` of its 95% interval."""

    def cell(iv: dict[str, float] | None, pct: bool) -> str:
        if iv is None:
            return "-"
        half = (iv["high"] - iv["low"]) / 2
        if pct:
            return f"{iv['mean']:.1%}±{half:.1%}"
        fmt = "{:.0f}" if abs(iv["mean"]) >= 100 else "{:.2f}"  # FIDs in hundreds, diversity near 1
        return f"{fmt.format(iv['mean'])}±{fmt.format(half)}"

    cols = (("fidelity", True), ("readable", True), ("diversity", False), ("fid", False), ("fid_floor", False))
    head = f"{'caption kind':22s}" + "".join(f"{c:>19s}" for c, _ in cols)
    lines = [head, "-" * len(head)]
    for kind, row in card.items():
        lines.append(f"{kind:22s}" + "".join(f"{cell(row.get(c), pct):>19s}" for c, pct in cols))
    return "\n".join(lines)


def compare(cards: dict[str, dict], a: str, b: str, kind: str, measure: str, label: str) -> str:
    """A verdict computed from two scorecards' 95% intervals of ``measure`` on caption ``kind`` (``cards`` maps a
    setting's name to its :func:`scorecard`): which is higher if the intervals are apart, or that they cannot be
    told apart if they overlap. Lessons print these lines instead of writing an outcome into their prose."""
    ia, ib = (metrics.Interval(**cards[name][kind][measure]) for name in (a, b))
    if metrics.overlaps(ia, ib):
        return f"{label}: {a} and {b} cannot be told apart ({ia.mean:.2f} vs {ib.mean:.2f}, intervals overlap)"
    (hi, i_hi), (lo, i_lo) = sorted(((a, ia), (b, ib)), key=lambda p: -p[1].mean)
    return f"{label}: {hi} is higher, {i_hi.mean:.2f} against {i_lo.mean:.2f} for {lo} (intervals apart)"


def compare_paired(a: list[dict[str, float]], b: list[dict[str, float]], measure: str, names: tuple[str, str],
                   label: str) -> str:
    """A verdict from the per-seed *differences* ``a[i][measure] − b[i][measure]`` of two settings scored on the same
    seeds, and so on the same starting noise (DDIM with η = 0 draws the same picture from the same noise at any step
    count). Pairing cancels what both share (how hard that seed's draws were), so it can separate settings whose
    unpaired intervals overlap. Lesson 04 prints these lines instead of writing an outcome into its prose."""
    d = metrics.interval95([x[measure] - y[measure] for x, y in zip(a, b, strict=True)])
    fmt = "{:+.2f}" if max(abs(d.low), abs(d.high)) < 10 else "{:+.0f}"  # FIDs are in the hundreds
    span = f"paired 95% interval of the difference [{fmt.format(d.low)}, {fmt.format(d.high)}] over {d.n} seeds"
    if d.low <= 0 <= d.high:
        return f"{label}: {names[0]} and {names[1]} cannot be told apart ({span} contains 0)"
    hi, lo = names if d.mean > 0 else names[::-1]
    return f"{label}: {hi} is higher than {lo} by {fmt.format(abs(d.mean))[1:]} ({span})"


BLURS = (0.5, 0.8, 1.0)  #: Gaussian blurs (px at 64×64) of :func:`fid_calibration`'s rows


@torch.no_grad()
def fid_calibration(seeds: tuple[int, ...] = (0, 1, 2), n_per_type: int = 4, k: int = 16,
                    upsample_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None, base: int = 32,
                    judge: AttributeJudge | None = None, blurs: tuple[float, ...] = BLURS,
                    groups: tuple[str, ...] = ("full", PARTIAL),
                    reconstruct_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                    ) -> dict[str, dict[str, dict[str, float]]]:
    """What a Shapes FID *means*: the FID of real renders made worse in known ways, against the same real renders and on
    the same captions and set sizes as :func:`scorecard` (so its numbers sit beside a model's). Rows: ``floor``
    (another set of renders), ``blur σ=…`` (the other renders through a Gaussian blur of σ px at 64×64), ``bicubic
    from 32`` (rendered at the decoder's ``base`` resolution and enlarged by interpolation) and, with ``upsample_fn``
    (``(low, seed) → 64-px images``), ``upsampler from 32``: what the cascade would score with a perfect decoder;
    with ``reconstruct_fn`` (the same signature), ``decoder + upsampler from real embeddings``: the 32-px renders'
    CLIP image embeddings decoded and upsampled, what the cascade would score with a perfect prior.
    ``groups``: which of ``"full"`` and :data:`PARTIAL` to measure.
    Returns ``{group: {row: 95% interval over seeds}}``."""
    from . import upsampler  # the resampling functions; a top-level import would be circular (profiles)

    judge = judge or load_judge("single", version="v2")
    kinds_of = {"full": ("full",), PARTIAL: PARTIAL_KINDS}
    per_seed: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
    for seed in seeds:
        for group in groups:
            caps = evaluation_captions(n_per_type, k, seed=seed, kinds=kinds_of[group])  # the captions score_seed draws
            real, other = (torch.cat([shapes.render(getattr(c, f), 64) for c in caps]) for f in ("real", "other"))
            low = torch.cat([shapes.render(c.other, base) for c in caps])
            rows = {"floor": other}
            rows |= {f"blur σ={b}": upsampler.gaussian_blur(other, torch.full((len(other),), b)) for b in blurs}
            rows["bicubic from 32"] = upsampler.upsample(low, 64).clamp(-1, 1)
            if upsample_fn is not None:
                rows["upsampler from 32"] = upsample_fn(low, seed)
            if reconstruct_fn is not None:
                rows["decoder + upsampler from real embeddings"] = reconstruct_fn(low, seed)
            f_real = metrics.judge_features(real, judge)
            for name, x in rows.items():
                per_seed[group].setdefault(name, []).append(
                    metrics.frechet_distance(metrics.judge_features(x, judge), f_real))
    return {g: {name: vars(metrics.interval95(v)) for name, v in rows.items()} for g, rows in per_seed.items()}


def format_calibration(cal: dict[str, dict[str, dict[str, float]]], cards: dict[str, dict]) -> str:
    """:func:`fid_calibration`'s rows, then each model's Shapes FID from ``cards`` (name → :func:`scorecard`), one
    column per caption group, ``mean±half-width`` of the 95% interval."""

    def cell(iv: dict[str, float]) -> str:
        return f"{iv['mean']:.0f}±{(iv['high'] - iv['low']) / 2:.0f}"

    groups = list(cal)
    head = f"{'Shapes FID against real renders':40s}" + "".join(f"{g:>16s}" for g in groups)
    lines = [head, "-" * len(head)]
    lines += [f"{name:40s}" + "".join(f"{cell(cal[g][name]):>16s}" for g in groups) for name in cal[groups[0]]]
    lines += [f"{'samples: ' + name:40s}" + "".join(f"{cell(card[g]['fid']):>16s}" for g in groups)
              for name, card in cards.items()]
    return "\n".join(lines)


def blur_equivalent(cal: dict[str, dict[str, dict[str, float]]], fid: float, group: str = "full") -> str:
    """Where a model's Shapes FID ``fid`` falls on :func:`fid_calibration`'s blur ladder of ``group``: a phrase such as
    "between renders blurred by σ = 0.8 and 1.0 px", computed from the ladder's means."""
    ladder = sorted((float(name.split("=")[1]), iv["mean"]) for name, iv in cal[group].items()
                    if name.startswith("blur σ="))
    ladder = [(0.0, cal[group]["floor"]["mean"]), *ladder]
    for (s0, f0), (s1, f1) in zip(ladder, ladder[1:]):
        if fid <= f1:
            return (f"at most the floor ({f0:.0f})" if fid <= f0 else
                    f"between renders blurred by σ = {s0:g} and {s1:g} px ({f0:.0f} and {f1:.0f})")
    return f"worse than renders blurred by σ = {ladder[-1][0]:g} px ({ladder[-1][1]:.0f})"


def format_table(cards: dict[str, dict]) -> str:
    """One line per setting of ``cards`` (name → :func:`scorecard`): fidelity on full and partial captions, the
    diversity of what partial captions leave free, Shapes FID on full captions and its floor (``mean±half-width``)."""

    def cell(iv: dict[str, float], pct: bool = True) -> str:
        half = (iv["high"] - iv["low"]) / 2
        return f"{iv['mean']:.0%}±{half:.0%}" if pct else f"{iv['mean']:.2f}±{half:.2f}"

    width = max(18, *(len(name) + 2 for name in cards))
    lines = [f"{'':{width}s}{'fidelity full':>15s}{'fidelity partial':>18s}{'diversity partial':>19s}{'FID full':>10s}"
             f"{'(floor)':>9s}"]
    for name, card in cards.items():
        full, part = card["full"], card[PARTIAL]
        lines.append(f"{name:{width}s}{cell(full['fidelity']):>15s}{cell(part['fidelity']):>18s}"
                     f"{cell(part['diversity'], False):>19s}{full['fid']['mean']:10.0f}"
                     f"{full['fid_floor']['mean']:9.0f}")
    return "\n".join(lines)


@torch.no_grad()
def score_unconditional(samples: torch.Tensor, seed: int, judge: AttributeJudge | None = None,
                        resolution: int = 64) -> dict[str, float]:
    """One seed of an *unconditional* model's samples ``(N, 3, R, R)`` in [-1, 1] (lesson 04), against ``N`` random
    real renders of the test split: nothing was asked, so every attribute and the background are free.

    Returns ``readable`` (fraction the strict judge does not refuse), ``diversity`` (the entropy of the judge's
    readings of each attribute and of the background over the N samples, as a fraction of the same over N real
    renders, averaged over the five: 1 = as varied as real pictures), ``fid`` (Shapes FID against those renders) and
    ``fid_floor`` (another N real renders against the same ones: what a perfect model scores at this N)."""
    judge = judge or load_judge("single", version="v2")
    n = len(samples)
    real, other = (shapes.render(shapes.sample_scenes(n, "test", "single", seed=1000 + 2 * seed + j, version="v2"),
                                 resolution) for j in (0, 1))
    free = torch.ones(1, len(N_VALUES), dtype=torch.bool)
    ratios = metrics.entropy_ratios(readings(judge, samples)[None], readings(judge, real)[None], free, N_VALUES)[0]
    feats = {name: metrics.judge_features(x, judge) for name, x in (("samples", samples), ("real", real),
                                                                     ("other", other))}
    return {"readable": float(judge.readable(samples).float().mean()), "diversity": float(ratios.nanmean()),
            "fid": metrics.frechet_distance(feats["samples"], feats["real"]),
            "fid_floor": metrics.frechet_distance(feats["other"], feats["real"])}


def pipeline_generator(pipe, batch_size: int = 128, **generate_kwargs) -> Generator:
    """A :data:`Generator` from an :class:`~.unclip.UnCLIP` pipeline: its final images, ``batch_size`` captions at a
    time, each batch seeded from ``seed`` (``generate_kwargs`` go to :meth:`~.unclip.UnCLIP.generate`, e.g.
    ``use_prior=False`` for the "no prior" baseline)."""

    def generate(texts: list[str], seed: int) -> torch.Tensor:
        return torch.cat([pipe.generate(texts[i:i + batch_size], n=1, seed=1000 * seed + i // batch_size,
                                        progress=False, **generate_kwargs).images
                          for i in range(0, len(texts), batch_size)])

    return generate


def stage_generators(pipe, blurs: tuple[float, ...] = (), upsampler_steps: int = 25, batch_size: int = 128,
                     **generate_kwargs) -> dict[str, Generator]:
    """Where a cascade loses its Shapes FID: :data:`Generator` s that share *one* run of the pipeline per (captions,
    seed) and differ only in how the decoder's 32-px samples reach 64 px.

    * ``"decoder + upsampler"``: the pipeline's own images (exactly :func:`pipeline_generator`'s with the same
      ``generate_kwargs`` and seeds; its upsampler reads the decoder's samples through the blur of
      ``upsampler_input_blur``, by default :data:`~.unclip.UPSAMPLER_INPUT_BLUR`);
    * ``"decoder + bicubic"``: the same decoder samples enlarged by interpolation, no upsampler;
    * ``"decoder + upsampler, input blurred σ=…"`` for each of ``blurs``: the upsampler run on the same decoder samples
      after a Gaussian blur of σ px at 32 px (0: none), the corruption it was trained to undo
      (:func:`~.upsampler.degrade`), with its own noise (seeded from ``seed``, the same for every σ).

    Scoring the first two with :func:`scorecard` splits the distance from the real renders into what the decoder's
    samples already carry and what the upsampler adds or removes. ``generate_kwargs`` go to
    :meth:`~.unclip.UnCLIP.generate` (``upsampler_steps`` is the upsampler's, for every row)."""
    from . import upsampler  # the resampling functions; a top-level import would be circular (profiles)

    runs: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (captions, seed) → (32-px samples, final images)

    def run(texts: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(texts), seed)
        if key not in runs:
            gens = [pipe.generate(texts[i:i + batch_size], n=1, seed=1000 * seed + i // batch_size, progress=False,
                                  upsampler_steps=upsampler_steps, **generate_kwargs)
                    for i in range(0, len(texts), batch_size)]
            runs[key] = torch.cat([g.low for g in gens]), torch.cat([g.images for g in gens])
        return runs[key]

    def blurred(sigma: float) -> Generator:
        def generate(texts: list[str], seed: int) -> torch.Tensor:
            return pipe.upsample(run(texts, seed)[0], upsampler_steps, torch.Generator().manual_seed(1000 * seed),
                                 input_blur=sigma)
        return generate

    out: dict[str, Generator] = {
        "decoder + upsampler": lambda texts, seed: run(texts, seed)[1],
        "decoder + bicubic": lambda texts, seed: upsampler.upsample(run(texts, seed)[0], 2 * run(texts, seed)[0]
                                                                    .shape[-1]),
    }
    out |= {f"decoder + upsampler, input blurred σ={b:g}": blurred(b) for b in blurs}
    return out
