"""The unCLIP paper's claims, measured in miniature (issue #22, lesson 15, ``python -m benchmarks.claims``).

* **Variations** (the paper's Fig. 3): encode a picture with CLIP, decode the embedding again with fresh noise; the
  new pictures keep "both semantic information ... and stylistic elements" while the rest changes. Which of a Shapes
  picture's properties does the embedding carry? For each property, the **keep rate** is the fraction of variations
  whose value, read by the strict judge (a refused image keeps nothing), equals the source picture's, and **chance**
  is the rate at which a variation agrees with a *random* source (computed exactly from the two sets' value
  frequencies, Σ_v p_read(v)·p_source(v)): a property the embedding drops is kept only at chance. The background
  shade is in the list because no caption ever names it (lesson 00); lesson 01 probed the same with a classifier.
* **Text diffs from the picture's own noise** (§3.3): DDIM inversion, then a caption with one attribute changed.
* **Diversity against guidance** (§5.3, Figs. 9–11): unCLIP's decoder, fed the prior's samples, against the GLIDE-like
  model (:mod:`~dalle2_lessons.glide`) on captions that leave attributes free, every comparison paired per seed.

Binding (§7) lives in :mod:`~dalle2_lessons.binding`: it needs every stage retrained on two-object scenes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import metrics, scorecard, shapes
from .judge import AttributeJudge, load_judge
from .prior_ablation import PARTIAL_KINDS  # the sweep's caption kinds: diversity is measured on those


@dataclass(frozen=True)
class ClaimsSettings:
    """Lesson 15: the sizes of its experiments, each over ``seeds`` (the benchmark, ``python -m benchmarks.claims``,
    runs the same functions larger)."""

    variation_images: int  #: fresh test renders per seed whose variation is judged
    diff_images: int  #: fresh test renders per seed edited by a text diff (the edited attribute cycles)
    sweep_scales: tuple[float, ...]  #: guidance scales of the diversity sweep
    sweep_kinds: tuple[str, ...]  #: caption kinds of the sweep (each leaves attributes free)
    sweep_captions: int = 1  #: captions per kind and seed in the sweep
    sweep_k: int = 16  #: samples per caption (diversity is the entropy over these)
    decoder_steps: int = 25  #: DDIM steps of every decoder and of the GLIDE-like model
    diff_weights: tuple[float, ...] = (0.0, 0.5)  #: text-diff weights (0: the inverted picture, unedited)
    seeds: tuple[int, ...] = (0, 1, 2)
    budget_steps: int = 6  #: training steps per model timed to match the GLIDE-like model's budget (glide.step_seconds)
    binding_captions: int = 48  #: two-object test captions per seed in the binding experiment (:mod:`~.binding`)
    probe_scenes: int = 2000  #: relation renders the linear probe of the relation CLIP's embedding learns from


PRESETS: dict[str, ClaimsSettings] = {
    "ci": ClaimsSettings(variation_images=4, diff_images=4, sweep_scales=(1.0, 8.0), sweep_kinds=("colour",),
                         sweep_k=4, decoder_steps=5, budget_steps=2, binding_captions=4,
                         probe_scenes=64),
    "cpu": ClaimsSettings(variation_images=48, diff_images=24, sweep_scales=(1.0, 3.0, 8.0),
                          sweep_kinds=("colour", "shape", "size+position")),
    "gpu": ClaimsSettings(variation_images=128, diff_images=64, sweep_scales=(1.0, 2.0, 3.0, 5.0, 8.0),
                          sweep_kinds=("colour", "shape", "size+position", "colour+shape", "colour+size+position"),
                          sweep_captions=4, diff_weights=(0.0, 0.25, 0.5, 0.75), binding_captions=128),
}

#: what a variation may keep: the judge's four attributes, and the background shade read by pixels
PROPERTIES: tuple[str, ...] = (*shapes.TIERS["single"], "background")


def strict_readings(judge: AttributeJudge, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, 5)``: the strict judge's verdict on the four attributes (−1 for every attribute of an
    image it refuses, which so keeps none of them) and the background read by pixels (:func:`~.scorecard.readings`
    takes the judge's best guesses instead)."""
    return torch.cat([judge.verdict(images), shapes.read_background(images)[:, None]], dim=1)


def agreement_by_chance(read: torch.Tensor, truth: torch.Tensor, n_values: tuple[int, ...]) -> torch.Tensor:
    """``(N, P)`` readings and ``(N, P)`` true values (ints) → ``(P,)``: the expected agreement of a reading with the
    value of a *random* other source, Σ_v p_read(v)·p_truth(v) per property. A judge's refusal (−1) never agrees."""
    out = []
    for p, n in enumerate(n_values):
        r = read[:, p]
        p_read = torch.stack([(r == v).double().mean() for v in range(n)])
        p_truth = torch.stack([(truth[:, p] == v).double().mean() for v in range(n)])
        out.append((p_read * p_truth).sum())
    return torch.stack(out).float()


def _blur(sigma: float | None) -> dict[str, float]:
    """``UnCLIP.upsample``'s keyword for an input blur of ``sigma`` px; none for None: the pipeline's default holds."""
    return {} if sigma is None else {"input_blur": sigma}


@torch.no_grad()
def variation_keep_rates(pipe, seeds: tuple[int, ...] = (0, 1, 2), n_images: int = 32, scale: float = 3.0,
                         decoder_steps: int = 25, upsampler_steps: int | None = 15,
                         judge: AttributeJudge | None = None, chance_fn: Callable = agreement_by_chance,
                         upsampler_input_blur: float | None = None) -> dict[str, dict[str, metrics.Interval]]:
    """One variation of each of ``n_images`` fresh test renders per seed (64×64 → CLIP image embedding → decoder with
    fresh noise → upsampler, or the decoder's own 32×32 if ``upsampler_steps`` is None), judged. Returns ``{"kept" |
    "chance" | "kept − chance": {property: 95% interval over seeds}}`` for every property in :data:`PROPERTIES`.
    ``pipe``: an :class:`~.unclip.UnCLIP`; ``chance_fn``: :func:`agreement_by_chance` or a learner's;
    ``upsampler_input_blur``: σ px of the blur on the decoder's samples before the upsampler (None: the pipeline's
    default, :data:`~.unclip.UPSAMPLER_INPUT_BLUR`)."""
    judge = judge or load_judge("single", version="v2")
    per_seed: dict[str, list[torch.Tensor]] = {"kept": [], "chance": []}
    for seed in seeds:
        scenes = shapes.sample_scenes(n_images, "test", "single", seed=500 + seed, version="v2")
        truth = torch.cat([torch.as_tensor(scenes.attrs), torch.as_tensor(scenes.backgrounds)[:, None]], dim=1)
        gen = torch.Generator().manual_seed(seed)
        images = pipe.decode(pipe.embed(shapes.render(scenes, 64)), scale, decoder_steps, gen)
        if upsampler_steps is not None:
            images = pipe.upsample(images, upsampler_steps, gen, **_blur(upsampler_input_blur))
        read = strict_readings(judge, images)
        per_seed["kept"].append((read == truth).float().mean(0))
        per_seed["chance"].append(chance_fn(read, truth, scorecard.N_VALUES))
    per_seed["kept − chance"] = [k - c for k, c in zip(per_seed["kept"], per_seed["chance"], strict=True)]
    return {name: {prop: metrics.interval95([float(v[i]) for v in values]) for i, prop in enumerate(PROPERTIES)}
            for name, values in per_seed.items()}


def direction(low: float, high: float) -> str:
    """The verdict of a 95% interval ``[low, high]`` of a difference a − b: ``"higher"`` (a > b: the interval lies above
    0), ``"lower"`` (below 0), or ``"cannot tell"`` (it contains 0). Every conclusion of lesson 15 is drawn by it."""
    return "higher" if low > 0 else "lower" if high < 0 else "cannot tell"


def format_keep_rates(rates: dict[str, dict[str, metrics.Interval]]) -> str:
    """One line per property: kept, chance, and the verdict from the interval of their per-seed difference."""
    lines = [f"{'property':12s}{'kept':>18s}{'chance':>18s}   verdict (95% interval of kept − chance over seeds)"]
    for prop in PROPERTIES:
        kept, chance, diff = (rates[name][prop] for name in ("kept", "chance", "kept − chance"))
        verdict = {"higher": "kept above chance", "lower": "kept below chance",
                   "cannot tell": "cannot be told from chance"}[direction(diff.low, diff.high)]
        lines.append(f"{prop:12s}{kept.mean:10.1%} ±{(kept.high - kept.low) / 2:5.1%}{chance.mean:10.1%} "
                     f"±{(chance.high - chance.low) / 2:5.1%}   {verdict} [{diff.low:+.2f}, {diff.high:+.2f}]")
    return "\n".join(lines)


def edit_outcomes(read: torch.Tensor, truth: torch.Tensor, target: torch.Tensor, new_value: torch.Tensor,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """What an edit did to each of N pictures. ``read``, ``truth``: ``(N, P)`` property values (ints) read from the
    edited pictures and true of their sources; ``target``: ``(N,)`` which property each edit changes; ``new_value``:
    ``(N,)`` the value it asks for. Returns ``(changed, kept)``, each ``(N,)`` bool: the target reads as its new
    value; every *other* property reads as the source's."""
    rows = torch.arange(len(read))
    changed = read[rows, target] == new_value
    agree = read == truth
    agree[rows, target] = True  # the edited property is not part of "the rest"
    return changed, agree.all(dim=1)


@torch.no_grad()
def text_diff_rates(pipe, seeds: tuple[int, ...] = (0, 1, 2), n_images: int = 36,
                    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75), steps: int = 25, scale: float = 1.0,
                    upsampler_steps: int | None = 15, judge: AttributeJudge | None = None,
                    outcome_fn: Callable = edit_outcomes,
                    upsampler_input_blur: float | None = None) -> dict[float, dict[str, metrics.Interval]]:
    """The paper's text diffs (its section 3.3) with each picture's own noise. For every fresh test render: its x_T by
    DDIM inversion under its own CLIP embedding (:meth:`~.unclip.UnCLIP.invert`), its full caption, and the same
    caption with one attribute changed (colour, shape, size and position in turn, each to a random other value);
    decode ``text_diff(z_image, z_text(caption), z_text(edited), w)`` from x_T with η = 0, upsample (unless
    ``upsampler_steps`` is None: the decoder's own 32×32; ``upsampler_input_blur`` as in :func:`variation_keep_rates`),
    judge; ``outcome_fn``: :func:`edit_outcomes` or a learner's.

    Returns, per weight ``w`` (``w = 0``: the reconstruction), 95% intervals over seeds of ``changed`` (the edited
    attribute reads as its new value), ``kept`` (every other attribute and the background read as the source's) and
    ``both``, the edit the paper shows, and ``both: <attribute>`` for the edits that change that attribute."""
    from .unclip import text_diff  # unclip imports this package's loaders; importing it here keeps claims light

    judge = judge or load_judge("single", version="v2")
    base = pipe.decoder.config.unet.resolution
    per_seed: dict[float, dict[str, list[float]]] = {w: {"changed": [], "kept": [], "both": []} for w in weights}
    for seed in seeds:
        scenes = shapes.sample_scenes(n_images, "test", "single", seed=700 + seed, version="v2")
        attrs = torch.as_tensor(scenes.attrs)
        truth = torch.cat([attrs, torch.as_tensor(scenes.backgrounds)[:, None]], dim=1)  # (N, 5)
        g = torch.Generator().manual_seed(seed)
        target = torch.arange(n_images) % attrs.shape[1]  # which attribute each picture's edit changes
        edited = attrs.clone()
        for i, a in enumerate(target.tolist()):  # a random *other* value: shift by 1 .. n-1
            n = scorecard.N_VALUES[a]
            edited[i, a] = (attrs[i, a] + torch.randint(1, n, (1,), generator=g)) % n
        src = shapes.render(scenes, 64)
        x_T, _ = pipe.invert(shapes.render(scenes, base), steps, scale)  # noqa: N806  (the decoder's own resolution)
        z = pipe.embed(src)
        t_from = pipe.encode_text([shapes.caption("single", a) for a in attrs])[0]
        t_to = pipe.encode_text([shapes.caption("single", a) for a in edited])[0]
        new_value = edited[torch.arange(n_images), target]
        for w in weights:
            images = pipe.decode(text_diff(z, t_from, t_to, w), scale, steps, x_T=x_T)
            if upsampler_steps is not None:
                images = pipe.upsample(images, upsampler_steps, torch.Generator().manual_seed(seed),
                                       **_blur(upsampler_input_blur))
            read = strict_readings(judge, images)
            changed, kept = outcome_fn(read, truth, target, new_value)
            for name, ok in (("changed", changed), ("kept", kept), ("both", changed & kept)):
                per_seed[w][name].append(ok.float().mean().item())
            for a, attr in enumerate(shapes.TIERS["single"]):  # the same edit, by which attribute it changes
                per_seed[w].setdefault(f"both: {attr}", []).append((changed & kept)[target == a].float().mean().item())
    return {w: {name: metrics.interval95(v) for name, v in rates.items()} for w, rates in per_seed.items()}


def format_text_diff_rates(rates: dict[float, dict[str, metrics.Interval]]) -> str:
    """One line per weight: changed, kept and both, then both by the attribute edited, each ``mean ± half-width`` of
    the 95% interval over seeds."""
    attrs = shapes.TIERS["single"]
    head = f"{'weight':>6s}" + "".join(f"{m:>15s}" for m in ("target changed", "rest kept", "both"))
    lines = [head + "".join(f"{'both: ' + a:>15s}" for a in attrs)]
    for w, r in rates.items():
        lines.append(f"{w:6.2f}" + "".join(f"{r[m].mean:8.0%} ±{(r[m].high - r[m].low) / 2:4.0%}"
                                           for m in ("changed", "kept", "both", *(f"both: {a}" for a in attrs))))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Diversity against guidance (the paper's Figs. 9–11): unCLIP's decoder against a GLIDE-like model.

#: the guidance scales of the sweep (the paper's Fig. 9 shows 1, 4 and 8; Figs. 10–11 sweep 1 to 8)
GUIDANCE_SCALES: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 8.0)


def unclip_base_generators(pipe, decoder_steps: int = 25, batch_size: int = 128, caption_pathway: bool = False,
                           ) -> Callable[[float], scorecard.Generator]:
    """``decoder_scale → Generator`` of unCLIP's *base* images ``(N, 3, R, R)`` (R = 32 in v2: text → prior → decoder,
    no upsampler), the prior at the pipeline's defaults. The prior does not see the decoder's guidance, so each batch's
    image embeddings are drawn once and decoded at every scale from the same noise: the scales are compared on the
    same embeddings, and the prior's cost is paid once. With ``caption_pathway`` the decoder also reads the caption's
    token features as extra attention context (the paper's decoder kept this pathway; lesson 07); without it, the
    caption reaches the picture only through the sampled image embedding."""
    encoded: dict[tuple[tuple[str, ...], int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def make(decoder_scale: float) -> scorecard.Generator:
        def generate(texts: list[str], seed: int) -> torch.Tensor:
            out = []
            for i in range(0, len(texts), batch_size):
                batch, batch_seed = tuple(texts[i:i + batch_size]), 1000 * seed + i // batch_size
                if (batch, batch_seed) not in encoded:
                    text, tokens, mask = pipe.encode_text(list(batch))
                    z = pipe.image_embeddings(text, tokens, mask, generator=torch.Generator().manual_seed(batch_seed))
                    encoded[batch, batch_seed] = z, tokens, mask
                z, tokens, mask = encoded[batch, batch_seed]
                noise = torch.Generator().manual_seed(batch_seed)
                out.append(pipe.decode(z, decoder_scale, decoder_steps, noise,
                                       **({"tokens": tokens, "mask": mask} if caption_pathway else {})))
            return torch.cat(out)

        return generate

    return make


def glide_generator(model, scale: float, steps: int = 25, batch_size: int = 128) -> scorecard.Generator:
    """A :data:`~.scorecard.Generator` of the GLIDE-like model's images ``(N, 3, R, R)`` (R = 32 in v2), guided by
    ``scale`` (``model``: a :class:`~.glide.Glide`)."""
    from . import glide, tokenizer

    tok = tokenizer.for_version("v2")

    def generate(texts: list[str], seed: int) -> torch.Tensor:
        return torch.cat([glide.sample(model, tok.encode_batch(texts[i:i + batch_size]), scale, steps,
                                       generator=torch.Generator().manual_seed(1000 * seed + i // batch_size))
                          for i in range(0, len(texts), batch_size)])

    return generate


def guidance_sweep(models: dict[str, Callable[[float], scorecard.Generator]],
                   scales: tuple[float, ...] = GUIDANCE_SCALES, seeds: tuple[int, ...] = (0, 1, 2),
                   n_per_type: int = 2, k: int = 16, resolution: int = 32, judge: AttributeJudge | None = None,
                   kinds: tuple[str, ...] = PARTIAL_KINDS) -> dict[str, dict[float, dict]]:
    """Score each model on captions that leave something free (``kinds``, :data:`PARTIAL_KINDS` by default:
    ``n_per_type`` of each kind per seed, ``k`` samples each) at every guidance scale. ``models`` maps a name to a
    function ``scale → Generator``; real renders are drawn at ``resolution``, the generators'. Every setting sees the
    same captions and real renders for a seed, so settings can be compared seed by seed.

    Returns ``{name: {scale: {"card": scorecard, "per_seed": values}}}``: the :func:`~.scorecard.summarise` card (its
    :data:`~.scorecard.PARTIAL` row pools the kinds) and :func:`~.scorecard.seed_values` of the pooled kinds."""
    judge = judge or load_judge("single", version="v2")
    out: dict[str, dict[float, dict]] = {}
    for name, make in models.items():
        out[name] = {}
        for s in scales:
            rows = [row for seed in seeds
                    for row in scorecard.score_seed(make(s), seed, n_per_type, k, judge, resolution, kinds)]
            out[name][s] = {"card": scorecard.summarise(rows), "per_seed": scorecard.seed_values(rows, kinds)}
    return out


def sweep_difference(sweep: dict[str, dict[float, dict]], measure: str, a: tuple[str, float], b: tuple[str, float],
                     ) -> metrics.Interval:
    """95% interval of the per-seed difference of ``measure`` between two settings ``(model, scale)`` of a
    :func:`guidance_sweep`: the same model at two scales, or two models at one (paired: same captions and renders)."""
    va, vb = (np.asarray(sweep[name][s]["per_seed"][measure]) for name, s in (a, b))
    return metrics.interval95((va - vb).tolist())


def format_guidance_sweep(sweep: dict[str, dict[float, dict]]) -> str:
    """One line per model and scale: fidelity, diversity and Shapes FID (with its floor) on the pooled partial captions,
    ``mean ± half-width`` of each 95% interval."""
    def cell(iv: dict[str, float], fmt: str) -> str:
        return f"{fmt.format(iv['mean'])} ±{fmt.format((iv['high'] - iv['low']) / 2)}"

    lines = [f"{'model':16s}{'scale':>6s}{'fidelity':>18s}{'diversity':>16s}{'Shapes FID':>16s}{'floor':>14s}"]
    for name, by_scale in sweep.items():
        for s, result in by_scale.items():
            row = result["card"][scorecard.PARTIAL]
            lines.append(f"{name:16s}{s:6g}{cell(row['fidelity'], '{:.1%}'):>18s}"
                         f"{cell(row['diversity'], '{:.2f}'):>16s}{cell(row['fid'], '{:.0f}'):>16s}"
                         f"{cell(row['fid_floor'], '{:.0f}'):>14s}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The paper beside the course.

#: the course's word for a verdict of :func:`direction` on "a − b" where the paper says a > b
YES = {"higher": "yes", "lower": "no", "cannot tell": "not told apart"}


def claim_rows(keep: dict[str, dict[str, metrics.Interval]] | None = None,
               diffs: dict[float, dict[str, metrics.Interval]] | None = None,
               sweep: dict[str, dict[float, dict]] | None = None,
               bind: dict[str, dict[str, list[float]]] | None = None,
               direction: Callable[[float, float], str] = direction) -> list[dict[str, str]]:
    """The paper's claims beside the course's measurements: one row ``{"claim", "paper", "course", "measured"}`` per
    claim whose experiment is given, every verdict read from an interval by ``direction`` (lesson 15 passes the
    learner's). Lesson 15's last table and ``benchmarks.claims``' summary both call this, so they cannot disagree.

    Args:
        keep: :func:`variation_keep_rates`' intervals. diffs: :func:`text_diff_rates`'. sweep: :func:`guidance_sweep`'s
            result for two models, unCLIP's first. bind: :func:`~.binding.binding_rates`' per-seed values.
    """
    rows = []
    if keep is not None:
        named = [keep["kept − chance"][p] for p in PROPERTIES[:4]]
        bg = keep["kept − chance"]["background"]
        rows += [{"claim": "§3.1 variations keep what captions name", "paper": "yes (Fig. 3)",
                  "course": "yes" if all(direction(d.low, d.high) == "higher" for d in named) else "no",
                  "measured": "kept − chance, lowest low end over the named attributes "
                              f"{min(d.low for d in named):+.2f}"},
                 {"claim": "§3.1 … and vary details the embedding lacks", "paper": "yes (Fig. 3)",
                  "course": "yes" if direction(bg.low, bg.high) == "cannot tell" else "no",
                  "measured": f"background kept {keep['kept']['background'].mean:.0%} vs chance "
                              f"{keep['chance']['background'].mean:.0%} "
                              f"(kept − chance [{bg.low:+.2f}, {bg.high:+.2f}])"}]
    if diffs is not None:
        w = best_edit_weight(diffs)
        both, none = diffs[w]["both"], diffs[0.0]["both"]
        # the two intervals apart (not a paired difference): the edits land more often than at w = 0 beyond overlap
        rows.append({"claim": "§3.3 text diffs from inverted noise edit by words", "paper": "yes (Fig. 5)",
                     "course": "yes" if direction(both.low - none.high, both.high - none.low) == "higher"
                     else "not shown",
                     "measured": f"target changed and the rest kept: {both.mean:.0%} ± "
                                 f"{(both.high - both.low) / 2:.0%} at weight {w:g}, {none.mean:.0%} at weight 0"})
    if sweep is not None:
        (a, b), scales = sweep, sorted(next(iter(sweep.values())))
        lo, hi = scales[0], scales[-1]
        fid = {m: sweep_difference(sweep, "fidelity", (m, hi), (m, lo)) for m in sweep}
        rows.append({"claim": "§5.3 guidance raises fidelity", "paper": "yes (both models)",
                     "course": " / ".join(f"{m}: {YES[direction(d.low, d.high)]}" for m, d in fid.items()),
                     "measured": f"guidance {lo:g} → {hi:g}: " + "; ".join(
                         f"{m} {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" for m, d in fid.items())})
        gap = sweep_difference(sweep, "diversity", (a, hi), (b, hi))
        rows.append({"claim": "§5.3 unCLIP keeps more diversity under guidance",
                     "paper": "yes: 70.5% ± 2.8% human preference", "course": YES[direction(gap.low, gap.high)],
                     "measured": f"diversity at guidance {hi:g}, {a} − {b}: {gap.mean:+.2f} "
                                 f"[{gap.low:+.2f}, {gap.high:+.2f}]"})
    if bind is not None:
        from .binding import binding_claim

        course, measured = binding_claim(bind, direction=direction)
        rows.append({"claim": "§7 unCLIP binds attributes worse than GLIDE", "paper": "yes (Figs. 14–15)",
                     "course": course, "measured": measured})
    return rows


def best_edit_weight(diffs: dict[float, dict[str, metrics.Interval]]) -> float:
    """The text-diff weight above 0 whose edits land most often ("both": target changed, the rest kept)."""
    return max((w for w in diffs if w > 0), key=lambda w: diffs[w]["both"].mean)


def format_claim_rows(rows: list[dict[str, str]]) -> str:
    """:func:`claim_rows` as aligned text, one line per claim."""
    keys = ("claim", "paper", "course", "measured")
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys[:3]} if rows else {}
    return "\n".join("  ".join(f"{r[k]:{widths[k]}s}" if k in widths else r[k] for k in keys)
                     for r in [dict(zip(keys, keys)), *rows])
