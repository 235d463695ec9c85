"""Issue #22's measurements of the unCLIP paper's claims with the shipped v2 checkpoints (lesson 15 runs the same
functions smaller): ``python -m benchmarks.claims [--tiny] [--only SECTION ...]`` writes ``benchmarks/claims.json``
and ``benchmarks/CLAIMS.md``.

1. **Diversity against guidance** (the paper's Figs. 9–11; :func:`dalle2_lessons.claims.guidance_sweep`): unCLIP's
   32-px decoder (fed the prior's samples) and the GLIDE-like model at guidance 1, 2, 3, 5 and 8, on captions that
   leave attributes free; fidelity, diversity and Shapes FID beside its floor; the changes from the lowest to the
   highest scale and the gap between the models, each a 95% interval of per-seed (paired) differences.
2. **Variations** (Fig. 3; :func:`~dalle2_lessons.claims.variation_keep_rates`): how often a variation keeps each
   attribute and the background no caption names, against chance.
3. **Text diffs from inverted noise** (§3.3; :func:`~dalle2_lessons.claims.text_diff_rates`).
4. **Binding** (§7, Figs. 14–15; :func:`dalle2_lessons.binding.binding_rates`): the relation-tier unCLIP (with and
   without the decoder's caption pathway) and GLIDE-like model on two-object captions; how often the colours (read
   apart from the shapes) or the shapes land on the wrong objects, and the paired differences between the models.

Each section is stored with the checkpoints and sizes it ran on; a later run keeps a stored section (or, in section 1,
a stored model) that matches and measures only what is missing or was asked for with ``--only``. Full sizes take
about 20 (1), 9 (2), 30 (3) and 11 (4) minutes on 2 CPU cores; ``--tiny`` is a smoke run whose numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dalle2_lessons import binding, checkpoints, claims, glide
from dalle2_lessons.unclip import UPSAMPLER_INPUT_BLUR, UnCLIP

HERE = Path(__file__).resolve().parent
FULL = {"seeds": (0, 1, 2), "scales": claims.GUIDANCE_SCALES, "sweep_captions": 1, "sweep_k": 16, "steps": 25,
        "variation_images": 48, "diff_images": 36, "diff_weights": (0.0, 0.25, 0.5, 0.75), "upsampler_steps": 15,
        "upsampler_input_blur": UPSAMPLER_INPUT_BLUR, "binding_captions": 128, "binding_scale": 3.0}
TINY = {"seeds": (0, 1), "scales": (1.0, 8.0), "sweep_captions": 1, "sweep_k": 4, "steps": 2,
        "variation_images": 4, "diff_images": 4, "diff_weights": (0.0, 0.5), "upsampler_steps": 2,
        "upsampler_input_blur": UPSAMPLER_INPUT_BLUR, "binding_captions": 4, "binding_scale": 3.0}
SECTIONS = ("sweep", "variations", "text_diffs", "binding")
#: the checkpoints each part reads (the judge reads every one)
READS = {"unCLIP decoder": ("clip-v2", "prior-v2", "decoder-v2"), "GLIDE-like": ("glide-v2",),
         "variations": ("clip-v2", "decoder-v2", "upsampler-v2"),
         "text_diffs": ("clip-v2", "decoder-v2", "upsampler-v2"),
         "binding": tuple(binding.checkpoint_name(stage) for stage in binding.STAGES)}


def shas(names: tuple[str, ...]) -> dict[str, str]:
    judge = "judge-relation-v2" if names == READS["binding"] else "judge-single-v2"
    return {n: checkpoints.read_meta(n, checkpoints.shipped_dir())["sha256"][:12] for n in (*names, judge)}


def binding_verdicts(per_seed: dict[str, dict[str, list[float]]]) -> list[str]:
    """Sentences computed from the binding experiment's paired intervals."""
    words = {"higher": "higher than", "lower": "lower than", "cannot tell": "cannot be told from"}
    out = []
    for measure in ("colour swap share", "both colours", "shape swap share", "correct"):
        for a, b in (("unCLIP", "GLIDE-like"), ("unCLIP + caption pathway", "GLIDE-like"),
                     ("unCLIP", "unCLIP + caption pathway")):
            if not binding.measurable({m: per_seed[m] for m in (a, b)}, measure):
                out.append(f"{measure}: {a} − {b}: not measurable (in some seed no picture qualified)")
                continue
            d = binding.binding_difference(per_seed, measure, a, b)
            out.append(f"{measure}: {a} − {b} = {d.mean:+.3g} [{d.low:+.3g}, {d.high:+.3g}] → {a}'s "
                       f"{words[claims.direction(d.low, d.high)]} {b}'s")
    return out


def sweep_verdicts(sweep: dict) -> list[str]:
    """Sentences computed from the sweep's paired intervals."""
    lo, hi = min(next(iter(sweep.values()))), max(next(iter(sweep.values())))
    words = {"higher": "rises", "lower": "falls", "cannot tell": "cannot be told apart"}
    out = []
    for measure in ("fidelity", "diversity", "fid"):
        for model in sweep:
            d = claims.sweep_difference(sweep, measure, (model, hi), (model, lo))
            out.append(f"{model}: {measure} from guidance {lo:g} to {hi:g} {d.mean:+.3g} "
                       f"[{d.low:+.3g}, {d.high:+.3g}] → {words[claims.direction(d.low, d.high)]}")
    if len(sweep) == 2:
        a, b = sweep
        for s in sweep[a]:
            for measure in ("fidelity", "diversity", "fid"):
                d = claims.sweep_difference(sweep, measure, (a, s), (b, s))
                out.append(f"guidance {s:g}, {measure}: {a} − {b} = {d.mean:+.3g} [{d.low:+.3g}, {d.high:+.3g}] → "
                           f"{a} {claims.direction(d.low, d.high).replace('cannot tell', 'cannot be told apart')}")
    return out


def summary_rows(result: dict) -> list[dict[str, str]]:
    """The paper's claims beside this benchmark's stored measurements (:func:`dalle2_lessons.claims.claim_rows`, the
    function that draws lesson 15's last table, on the stored json). Parts not measured yet are left out."""
    from dalle2_lessons.metrics import Interval

    def intervals(table: dict) -> dict:
        return {key: {m: Interval(**iv) for m, iv in row.items()} for key, row in table.items()}

    sweep = {m: {float(s): v for s, v in d["results"].items()} for m, d in result.get("sweep", {}).items()}
    return claims.claim_rows(
        keep=intervals(result["variations"]["results"]) if result.get("variations") else None,
        diffs={float(w): r for w, r in intervals(result["text_diffs"]["results"]).items()}
        if result.get("text_diffs") else None,
        sweep=sweep if len(sweep) == 2 else None,
        bind=result["binding"]["results"] if result.get("binding") else None)


def summary_markdown(result: dict) -> str:
    """:func:`summary_rows` as a markdown table."""
    rows = summary_rows(result)
    return "\n".join(["| the paper's claim | the paper | the course | measured (95% intervals over seeds) |",
                      "|---|---|---|---|", *(f"| {r['claim']} | {r['paper']} | {r['course']} | {r['measured']} |"
                                             for r in rows)]) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--only", nargs="*", choices=SECTIONS, default=None, help="measure these sections (and models) "
                   "even if stored; the others are kept if stored and skipped if not")
    p.add_argument("--models", nargs="*", choices=tuple(READS)[:2], default=tuple(READS)[:2],
                   help="the models of section 1")
    args = p.parse_args(argv)
    size = TINY if args.tiny else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "claims.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    pipe = UnCLIP.load(version="v2")
    result: dict = {"seconds": {}, "threads": torch.get_num_threads()}

    def key(part: str, sizes: tuple[str, ...]) -> dict:
        return {"checkpoints": shas(READS[part]), "sizes": {k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in size.items() if k in sizes}}

    def reusable(section: str, part: str, sizes: tuple[str, ...]) -> dict | None:
        old = stored.get(section, {}).get(part) if section == "sweep" else stored.get(section)
        if args.only is not None and section in args.only:
            return None
        return old if old is not None and {k: old[k] for k in ("checkpoints", "sizes")} == key(part, sizes) else None

    # 1. the sweep, one model at a time
    sweep_sizes = ("seeds", "scales", "sweep_captions", "sweep_k", "steps")
    makers = {"unCLIP decoder": lambda: claims.unclip_base_generators(pipe, size["steps"]),
              "GLIDE-like": lambda: (lambda m: lambda s: claims.glide_generator(m, s, size["steps"]))(
                  glide.load_glide(version="v2"))}
    result["sweep"] = {m: v for m, v in stored.get("sweep", {}).items() if m not in args.models}  # kept as stored
    for model in args.models:
        old = reusable("sweep", model, sweep_sizes)
        if old is None and (args.only is None or "sweep" in args.only):
            t0 = time.time()
            res = claims.guidance_sweep({model: makers[model]()}, size["scales"], size["seeds"],
                                        size["sweep_captions"], size["sweep_k"])[model]
            old = {**key(model, sweep_sizes), "seconds": round(time.time() - t0),
                   "results": {str(s): r for s, r in res.items()}}
        if old is not None:
            result["sweep"][model] = old
    result["sweep"] = dict(sorted(result["sweep"].items(), key=lambda kv: tuple(READS).index(kv[0])))
    sweep = {m: {float(s): r for s, r in v["results"].items()} for m, v in result["sweep"].items()}
    if sweep:
        print(claims.format_guidance_sweep(sweep), *sweep_verdicts(sweep), sep="\n", flush=True)

    # 2 and 3: variations and text diffs
    # the upsampler reads the decoder's samples through the blur of the sizes (the pipeline's default), so a change of
    # the default re-runs these
    runs = {"variations": (("seeds", "variation_images", "steps", "upsampler_steps", "upsampler_input_blur"),
                           lambda: claims.variation_keep_rates(pipe, size["seeds"], size["variation_images"],
                                                               decoder_steps=size["steps"],
                                                               upsampler_steps=size["upsampler_steps"],
                                                               upsampler_input_blur=size["upsampler_input_blur"])),
            "text_diffs": (("seeds", "diff_images", "diff_weights", "steps", "upsampler_steps",
                            "upsampler_input_blur"),
                           lambda: claims.text_diff_rates(pipe, size["seeds"], size["diff_images"],
                                                          size["diff_weights"], size["steps"],
                                                          upsampler_steps=size["upsampler_steps"],
                                                          upsampler_input_blur=size["upsampler_input_blur"]))}
    def run_binding() -> dict:
        rel_pipe, rel_glide = binding.load_models()
        return binding.binding_rates(binding.generators(rel_pipe, rel_glide, size["steps"], size["binding_scale"]),
                                     size["seeds"], size["binding_captions"])

    runs["binding"] = (("seeds", "binding_captions", "binding_scale", "steps"), run_binding)
    for section, (sizes, run) in runs.items():
        old = reusable(section, section, sizes)
        if old is None and (args.only is None or section in args.only):
            t0 = time.time()
            rates = run()
            old = {**key(section, sizes), "seconds": round(time.time() - t0),
                   "results": rates if section == "binding" else  # per seed: the verdicts pair the models
                   {str(k): {m: vars(iv) for m, iv in v.items()} for k, v in rates.items()}}
        if old is not None:
            result[section] = old
    path.write_text(json.dumps({**stored, **result}, indent=1) + "\n")
    write_markdown(out, {**stored, **result})


def write_markdown(out: Path, result: dict) -> None:
    from dalle2_lessons.metrics import Interval

    md = ["# The unCLIP paper's claims, measured (issue #22)\n",
          "Written by `python -m benchmarks.claims` from `claims.json`; each part names the checkpoints (sha256 "
          "prefixes) and sizes it ran on. Intervals: 95% over seeds, `mean ± half-width`. Lesson 15 runs the same "
          "functions on fewer captions.\n",
          "## Summary\n", summary_markdown(result)]
    if result.get("sweep"):
        sweep = {m: {float(s): r for s, r in v["results"].items()} for m, v in result["sweep"].items()}
        md += ["## 1. Diversity against guidance (Figs. 9–11)\n",
               "Captions that leave attributes free (every partial kind), K samples each, both models at their base "
               "32×32 with the same DDIM steps; the changes and gaps are paired per seed (same captions and real "
               "renders).\n",
               *(f"- `{m}`: {v['checkpoints']}, sizes {v['sizes']}, {v['seconds']} s" for m, v in
                 result["sweep"].items()),
               "\n```\n" + claims.format_guidance_sweep(sweep) + "\n```\n",
               *(f"- {line}" for line in sweep_verdicts(sweep)), ""]
    if result.get("variations"):
        v = result["variations"]
        rates = {name: {p: Interval(**iv) for p, iv in r.items()} for name, r in v["results"].items()}
        md += ["## 2. Variations (Fig. 3)\n", f"{v['checkpoints']}, sizes {v['sizes']}, {v['seconds']} s.\n",
               "```\n" + claims.format_keep_rates(rates) + "\n```\n"]
    if result.get("text_diffs"):
        v = result["text_diffs"]
        rates = {float(w): {m: Interval(**iv) for m, iv in r.items()} for w, r in v["results"].items()}
        md += ["## 3. Text diffs from inverted noise (§3.3)\n", f"{v['checkpoints']}, sizes {v['sizes']}, "
               f"{v['seconds']} s.\n", "```\n" + claims.format_text_diff_rates(rates) + "\n```\n"]
    if result.get("binding"):
        v = result["binding"]
        md += ["## 4. Binding (§7, Figs. 14–15)\n",
               f"Relation-tier checkpoints {v['checkpoints']}, sizes {v['sizes']}, {v['seconds']} s. Full two-object "
               "test captions whose objects differ in colour and shape; every model draws the same captions for a "
               "seed, guided at `binding_scale` with `steps` DDIM steps. The strict judge reads every attribute of "
               "crisp pictures only; the colour reading reads the two colours and the arrangement (which is on top, "
               "or left) whatever the shapes look like (`binding.colour_order`). *Colour swap share*: of the "
               "pictures with both of the caption's colours in the right arrangement, the fraction with them "
               "exchanged (0.5: placed at random). *Shape swap share*: likewise for the shapes, strict reading.\n",
               "```\n" + binding.format_binding_rates(v["results"]) + "\n```\n",
               *(f"- {line}" for line in binding_verdicts(v["results"])), ""]
    (out / "CLAIMS.md").write_text("\n".join(md))
    print(f"wrote {out / 'CLAIMS.md'}")


if __name__ == "__main__":
    main()
