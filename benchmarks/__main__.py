"""``python -m benchmarks [--tiny] [--only SECTION ...] [--out DIR]``: run the benchmarks and write
``DIR/RESULTS.md``."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import torch

from dalle2_lessons.unclip import DECODER_SCALE

from . import claims, libraries, machine, quality, runtime, speed

HERE = Path(__file__).resolve().parent

#: Sizes of a full run and of the tiny run the test suite makes (seconds; its numbers mean nothing).
FULL = {"matmul_n": 2048, "batch": 128, "steps": 20, "sampling_images": 16, "notebook_profiles": ("ci", "cpu"),
        "notebooks": None,
        "decoder_budget_s": 300, "decoder": {}, "prior_budget_s": 180, "prior": {}, "clip_budget_s": 180, "clip": {}}
TINY = {"matmul_n": 256, "batch": 4, "steps": 2, "sampling_images": 2, "notebook_profiles": ("ci",),
        "notebooks": ["00_welcome.ipynb"],
        "samplers": {"DDPM-1000": (20, 1.0), "DDIM-50": (4, 0.0), "DDIM-25": (2, 0.0)}, "prior_steps": 2,
        "decoder_budget_s": 1, "decoder": {"n_train": 64, "n_eval": 4, "batch": 8, "sample_steps": 2},
        "prior_budget_s": 1,
        "prior": {"profile": "ci", "n_train": 64, "n_eval": 4, "sample_steps": 2, "decoder_steps": 2},
        "clip_budget_s": 1, "clip": {"profile": "ci", "n_eval": 32}}
SECTIONS = ("throughput", "sampling", "quality", "libraries", "runtime")


def table(rows: list[dict], floats: str = "{:.3g}") -> str:
    """A Markdown table of dicts with the same keys."""
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])
    fmt = lambda v: (floats.format(v) if not math.isnan(v) else "–") if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


#: What a run writes into benchmarks/: results it changes do not make the code it ran "differ from its commit".
OUTPUTS = ("results.json", "RESULTS.md", "*.png")


def commit() -> str:
    """The checked-out commit (``+`` if tracked files other than the benchmark's own results differ from it), or ``?``
    outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
        spec = [":(top)", *(f":(top,exclude){HERE.name}/{name}" for name in OUTPUTS)]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *spec], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def previous(out: Path, facts: dict, tiny: bool) -> dict:
    """Sections an earlier run on the same machine, in the same mode, left in ``out/results.json``: a full run takes
    longer than a sitting, so sections can be run apart (``--only``) and still land in one RESULTS.md, each stamped
    with its own run."""
    path = out / "results.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = lambda f: {k: v for k, v in f.items() if k != "date"}  # noqa: E731
    if same(old.get("machine", {})) != same(facts) or old.get("tiny") != tiny:
        print(f"{path}: written on another machine, setup or mode; its sections are dropped", flush=True)
        return {}
    return old


def merge_runtime(old: list[dict], new: list[dict]) -> list[dict]:
    """Notebook times keyed by (profile, notebook): a run of some notebooks replaces only their rows, so the course's
    hour and a half of ``cpu`` notebooks can be measured in parts. Ordered by profile, then lesson."""
    from dalle2_lessons import course

    lesson = {entry.filename: i for i, entry in enumerate(course.LESSONS)}
    profile = {"ci": 0, "cpu": 1, "gpu": 2}
    rows = {(r["profile"], r["notebook"]): r for r in old + new}
    return sorted(rows.values(),
                  key=lambda r: (profile.get(r["profile"], 3), lesson.get(r["notebook"], len(lesson)), r["notebook"]))


def run(sections: tuple[str, ...], sizes: dict, out: Path, command: str = "python -m benchmarks",
        notebooks: list[str] | None = None, profiles: tuple[str, ...] | None = None, resume: bool = False) -> dict:
    """Run ``sections`` at ``sizes`` (FULL or TINY) into ``out``; ``notebooks`` (file names) and ``profiles`` narrow the
    runtime section; ``resume`` takes up the curves an interrupted quality section kept in ``out/quality.partial.json``
    (otherwise that file is started afresh)."""
    torch.manual_seed(0)
    facts, tiny = machine.facts(), sizes is TINY
    results = previous(out, facts, tiny)
    results |= {"machine": facts, "tiny": tiny}
    results.setdefault("runs", {})
    rate = machine.matmul_gflops(sizes["matmul_n"])
    results["matmul_gflops"] = rate
    print(f"float32 matmul ({sizes['matmul_n']}²): {rate:.1f} GFLOP/s", flush=True)
    for section in SECTIONS:
        if section not in sections:
            continue
        t0, date, code = time.perf_counter(), machine.facts()["date"], commit()  # the code as the section starts
        if section == "throughput":
            results["throughput"] = speed.training_throughput(sizes["batch"], sizes["steps"], matmul_rate=rate)
        elif section == "sampling":
            results["sampling"] = speed.sampling_seconds(sizes["sampling_images"], sizes.get("samplers"),
                                                         sizes.get("prior_steps", 64))
            results["sampling_decoder_scale"] = DECODER_SCALE  # generate's default, which the section runs with
        elif section == "quality":
            partial = out / "quality.partial.json"  # each curve as it is finished: the section is about an hour long
            if not resume:
                partial.unlink(missing_ok=True)
            out.mkdir(parents=True, exist_ok=True)
            results["quality"], results["quality_seconds"] = quality.run(tiny, partial)
            results["quality_data"] = quality.DATA
            partial.unlink()  # all four curves are in results.json now
        elif section == "libraries":
            results["decoder_vs_libraries"] = libraries.decoder_vs_libraries(
                sizes["decoder_budget_s"], **sizes["decoder"])
            results["prior_vs_dalle2_pytorch"] = libraries.prior_vs_dalle2_pytorch(
                sizes["prior_budget_s"], **sizes["prior"])
            results["clip_vs_transformers"] = libraries.clip_vs_transformers(sizes["clip_budget_s"], **sizes["clip"])
            results["budgets_s"] = {k: sizes[f"{k}_budget_s"] for k in ("decoder", "prior", "clip")}
        elif section == "runtime":
            rows = runtime.notebook_minutes(profiles or sizes["notebook_profiles"],
                                            names=notebooks or sizes["notebooks"])
            results["runtime"] = merge_runtime(results.get("runtime", []), [r | {"commit": code} for r in rows])
        results["runs"][section] = {"command": command, "date": date, "commit": code, "matmul GFLOP/s": round(rate, 1),
                                    "minutes": round((time.perf_counter() - t0) / 60, 1)}
        write(results, sizes, out)  # after every section: a long run that stops keeps what it measured
    write(results, sizes, out)
    return results


def write(results: dict, sizes: dict, out: Path) -> None:
    """results.json, and RESULTS.md and the figure drawn from it (every run redraws them from all stored sections)."""
    out.mkdir(parents=True, exist_ok=True)
    if "quality" in results:
        quality.plot(results["quality"], out / "quality_per_minute.png")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "RESULTS.md").write_text(report(results, sizes))


def report(results: dict, sizes: dict) -> str:
    tiny = sizes is TINY
    # the stored run's budgets
    budget = results.get("budgets_s") or {k: sizes[f"{k}_budget_s"] for k in ("decoder", "prior", "clip")}
    runs = [{"section": k, **results["runs"][k]} for k in SECTIONS if k in results["runs"]]
    parts = ["# Benchmark results\n\n",
             "Written by `python -m benchmarks` (sections can be run apart with `--only`); every number below comes "
             "from the run of its section listed here, on this machine. Do not edit by hand: run it again."
             + (" **Tiny mode: toy sizes, the numbers mean nothing.**" if tiny else "") + "\n\n",
             "## Machine\n\n", table([{"fact": k, "value": v} for k, v in results["machine"].items()]),
             f"\nfloat32 matmul, {sizes['matmul_n']}×{sizes['matmul_n']}, best of 10: "
             f"**{results['matmul_gflops']:.1f} GFLOP/s** "
             "in the latest run (2n³ FLOPs per product; each run's own rate below).\n\n",
             "## Runs\n\n", table(runs, "{:.1f}")]
    if not_yet := [k for k in SECTIONS if k not in results["runs"]]:
        parts += ["\n**Not measured yet:** " + ", ".join(f"{k} (`python -m benchmarks --only {k}`)" for k in not_yet)
                  + ".\n"]
    if "throughput" in results:
        parts += ["\n## Training throughput of unCLIP's U-Nets\n\n",
                  "Full training steps (forward, backward, AdamW) on random inputs of the real shapes. FLOPs: "
                  "matrix products and convolutions counted by `torch.utils.flop_counter.FlopCounterMode` over one "
                  "step (2 per multiply-add); norms, activations and the optimiser are not counted.\n\n",
                  table(results["throughput"])]
    if "sampling" in results:
        parts += ["\n## Sampling: seconds per image, text to 64×64\n\n",
                  "The course checkpoints end to end: prior (64 DDIM steps, two candidates), decoder (guidance "
                  f"{results.get('sampling_decoder_scale', 3.0):g}) "  # a run that did not record it: the old default
                  "and upsampler, both with the sampler named. DDPM-1000 is DDIM with all 1000 steps and η = 1.\n\n",
                  table(results["sampling"])]
    if "quality" in results:
        parts += ["\n## Quality per training minute\n\n"]
        if results.get("quality_data") != quality.DATA:  # runs before the v2 rewrite stored no version: Shapes v1
            parts += [f"**Stale: the tables below were measured on Shapes {results.get('quality_data', 'v1')}** "
                      "with that version's measures (the prior's columns are mean cosines to one true image embedding "
                      "of a full caption, which cannot see what the prior is for). `benchmarks/quality.py` now "
                      f"trains and measures on Shapes {quality.DATA}; run `python -m benchmarks --only quality` "
                      "again.\n"]
        else:
            parts += [(quality.__doc__ or "").split("\n\n", 1)[1]]
        parts += ["\n![quality per minute](quality_per_minute.png)\n"]
        for name, points in results["quality"].items():
            parts += [f"\n**{name}**\n\n", table(points)]
    if "decoder_vs_libraries" in results:
        rows = results["decoder_vs_libraries"]
        parts += ["\n## Against libraries\n\n",
                  (libraries.__doc__ or "").split("\n\n", 1)[1].split("\n\nEqual budgets")[0], "\n\n",
                  "Ratios are ours ÷ theirs, from the same run: above 1 is better for rates and accuracies, "
                  "below 1 for seconds.\n\n",
                  f"**Decoder**, {budget['decoder']} s of training each:\n\n", table(rows), "\n",
                  table(libraries.ratios(rows, ("train images / s", "judge: all correct", "sampling s / image")),
                        "{:.2f}×")]
    if "prior_vs_dalle2_pytorch" in results:
        rows = results["prior_vs_dalle2_pytorch"]
        parts += [f"\n**Prior**, {budget['prior']} s of training each:\n\n", table(rows), "\n",
                  table(libraries.ratios(rows, ("train pairs / s", "cosine to true image embedding",
                                                "judge: all correct (course decoder)")), "{:.2f}×")]
    if "clip_vs_transformers" in results:
        rows = results["clip_vs_transformers"]
        parts += [f"\n**CLIP**, {budget['clip']} s of training each:\n\n", table(rows), "\n",
                  table(libraries.ratios(rows, ("train images / s", "zero-shot (mean of 4)", "t2i@1")), "{:.2f}×")]
    if not tiny and (claims_json := HERE / "claims.json").is_file():  # measured apart: python -m benchmarks.claims
        parts += ["\n## The unCLIP paper's claims\n\n",
                  "From `python -m benchmarks.claims` (issue #22; each experiment's tables, sizes and checkpoints in "
                  "[CLAIMS.md](CLAIMS.md)); every verdict is computed from a 95% interval over three seeds.\n\n",
                  claims.summary_markdown(json.loads(claims_json.read_text()))]
    if "runtime" in results:
        parts += ["\n## Course run time\n\n",
                  "Every lesson in `solutions/`, executed top to bottom in a fresh kernel.\n\n",
                  table(results["runtime"], "{:.2f}"), "\n" + runtime.summary(results["runtime"]) + "\n"]
    return "".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tiny", action="store_true", help="toy sizes: checks that every section runs (seconds)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS,
                   help="sections to run (default: all; the machine's facts and matmul rate are always measured)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for RESULTS.md, results.json and figures "
                        "(default: benchmarks/, or benchmarks/tiny/ with --tiny)")
    p.add_argument("--notebooks", nargs="+", metavar="NN",
                   help="runtime: only the lessons whose file names start so (e.g. 00 07)")
    p.add_argument("--profiles", nargs="+", choices=("ci", "cpu", "gpu"),
                   help="runtime: only these profiles (default: ci cpu)")
    p.add_argument("--resume", action="store_true",
                   help="quality: take up the curves an interrupted run kept in quality.partial.json (run with the "
                        "same code; without this flag the section starts afresh)")
    args = p.parse_args(argv)
    args.out = args.out or (HERE / "tiny" if args.tiny else HERE)
    notebooks = None
    if args.notebooks:
        from dalle2_lessons import course

        notebooks = [e.filename for e in course.LESSONS if any(e.filename.startswith(n) for n in args.notebooks)]
        if not notebooks:
            p.error(f"no lesson's file name starts with {' or '.join(args.notebooks)}")
    t0 = time.perf_counter()
    command = "python -m benchmarks" + (" --tiny" if args.tiny else "")
    command += "" if tuple(args.only) == SECTIONS else " --only " + " ".join(args.only)
    command += " --notebooks " + " ".join(args.notebooks) if args.notebooks else ""
    command += " --profiles " + " ".join(args.profiles) if args.profiles else ""
    run(tuple(args.only), TINY if args.tiny else FULL, args.out, command, notebooks,
        tuple(args.profiles) if args.profiles else None, args.resume)
    print(f"wrote {args.out / 'RESULTS.md'} in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
