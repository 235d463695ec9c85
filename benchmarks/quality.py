"""Quality per CPU-minute: accuracy against *training* minutes (measuring time excluded), for CLIP, the
text-conditional diffusion model, and unCLIP's prior and decoder, each trained from scratch here with the course's
own builders in the ``cpu`` profile's sizes, on Shapes v2 (the course's data; the checkpoints' builds train longer).

* CLIP: zero-shot accuracy on test images (mean over the four attributes) and text→image recall@1;
* text → pixels diffusion (lesson 05): the strict judge's all-attributes accuracy on test captions (guidance 3);
* unCLIP prior (lesson 06): on captions that leave attributes out, the energy distance between its samples and
  the CLIP image embeddings of real renders that fit the caption (lower is better), next to the text embedding
  fed as it is (``no_prior``) and to other real renders (``floor``): what the prior is for, as it is learnt;
* unCLIP decoder (lesson 07): the strict judge's all-attributes accuracy on reconstructions of test images'
  embeddings.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from dalle2_lessons import claims, clip, clip_embeddings, decoder, guidance, prior, prior_ablation, shapes, tokenizer
from dalle2_lessons.training import Curve

DATA = "v2"  #: the Shapes version every curve trains and measures on (the profiles' default)


def clip_curve(steps: int | None = None, every: int = 100, n_eval: int = 500, profile: str = "cpu") -> list[dict]:
    """The course CLIP (``clip.build``) trained with ``profile``'s settings for ``steps`` (default: the course command's
    1000), measured every ``every`` steps.
    (Its clock starts before the training images are rendered: under a second in the ``cpu`` profile.)"""
    s = replace(clip.PRESETS[profile], steps=steps or 1000, version=DATA,
                resolution=shapes.get_version(DATA).resolution)  # CLIP reads what the decoder draws, as in lesson 01
    steps = s.steps
    tok = tokenizer.for_version(s.version)

    def measure(m) -> dict[str, float]:
        r = clip_embeddings.evaluate_clip(m.eval(), tok, s.resolution, n=n_eval, n_retrieval=min(256, n_eval),
                                          splits=("test",), version=s.version)["test"]
        return {"zero-shot": sum(r[a] for a in shapes.TIERS["single"]) / 4, "t2i@1": r["t2i@1"]}

    curve = Curve(steps, every, measure)
    clip.build(s, progress=False, callback=curve)
    return curve.points


def diffusion_curve(module, steps: int | None, every: int, n_eval: int, profile: str = "cpu") -> list[dict]:
    """The course builder of ``module`` (:mod:`~dalle2_lessons.guidance` for text → pixels, lesson 05, or
    :mod:`~dalle2_lessons.decoder`, lesson 07) with its measuring callback, ``profile``'s settings trained for
    ``steps``. The decoder reads the course CLIP checkpoint, as in lesson 07."""
    cfg = replace(module.PRESETS[profile], version=DATA)
    cfg = replace(cfg, steps=steps or cfg.steps)
    return module.build(cfg, progress=False, eval_every=every, n_eval=n_eval).curve


def prior_curve(steps: int | None, every: int, profile: str = "cpu", captions: int = 2, k: int = 32) -> list[dict]:
    """The course prior (``prior.train_prior`` on the course CLIP's embeddings, ``profile``'s settings) trained for
    ``steps``, and every ``every`` steps its energy distance to real image embeddings on ``captions`` captions of
    each kind that leaves something out (:func:`~dalle2_lessons.prior_ablation.ablation`, evaluation seed 0, ``k``
    samples and real renders each), next to the caption's text embedding and to ``k`` other real renders."""
    cfg = prior.PRESETS[profile]
    cfg = replace(cfg, steps=steps or cfg.steps, version=DATA)
    clip_model = clip.load_clip(version=cfg.version)
    data = prior.PriorData.build(clip_model, cfg.n_train, version=cfg.version)

    def measure(m) -> dict[str, float]:
        rows = prior_ablation.ablation(m.eval(), clip_model, data, cfg, (0,), captions, k, version=cfg.version,
                                       kinds=claims.PARTIAL_KINDS, one_candidate=False)
        return {name: sum(r["energy"][name] for r in rows) / len(rows) for name in ("prior", "no_prior", "floor")}

    curve = Curve(cfg.steps, every, measure)
    prior.train_prior(cfg, data.image_emb, data.bank, "cpu", False, curve)
    return curve.points


def plot(curves: dict[str, list[dict]], path) -> None:
    """One panel per model: its measure(s) against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.3), squeeze=False)
    for ax, (name, points) in zip(axes[0], curves.items()):
        keys = [k for k in points[0] if k not in ("step", "train_minutes")] if points else []
        keys = [k for k in keys if k in ("zero-shot", "t2i@1", "all", "prior", "no_prior", "floor")] or keys[:2]
        for k in keys:
            ax.plot([p["train_minutes"] for p in points], [p[k] for p in points], marker="o", label=k)
        energy = "prior" in keys  # the prior's panel: energy distances (lower is better), the others accuracies
        ax.set_ylim(0, None if energy else 1.02)
        ax.set(title=name, xlabel="training minutes", ylabel="energy distance" if energy else "accuracy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(tiny: bool, partial: Path | None = None) -> tuple[dict[str, list[dict]], float]:
    """The four curves, ``{"CLIP": ..., "text → pixels diffusion": ..., "unCLIP prior": ..., "unCLIP decoder": ...}``,
    and the seconds they took (training and measuring).

    ``partial``: a JSON file that keeps each curve as soon as it is finished, so that a full run (56 min on two cores
    on 2026-12-05 with nothing beside it; longer where it shares the machine) can be taken up where it stopped: curves
    already in it are not measured again. The caller decides whether an old one may be taken up
    (``python -m benchmarks --only quality --resume``)."""
    if tiny:
        jobs = {"CLIP": lambda: clip_curve(steps=4, every=2, n_eval=32, profile="ci"),
                "text → pixels diffusion": lambda: diffusion_curve(guidance, 2, 1, 4, profile="ci"),
                "unCLIP prior": lambda: prior_curve(2, 1, profile="ci", captions=1, k=4),
                "unCLIP decoder": lambda: diffusion_curve(decoder, 2, 1, 4, profile="ci")}
    else:
        jobs = {"CLIP": lambda: clip_curve(),
                "text → pixels diffusion": lambda: diffusion_curve(guidance, 1500, 250, 128),
                "unCLIP prior": lambda: prior_curve(None, 100, captions=2, k=32),
                "unCLIP decoder": lambda: diffusion_curve(decoder, 1500, 250, 128)}
    done = json.loads(partial.read_text()) if partial is not None and partial.is_file() else {}
    curves, seconds = done.get("curves", {}), done.get("seconds", {})
    for name, job in jobs.items():
        if name in curves:
            print(f"quality: {name}: taken from {partial} ({seconds[name] / 60:.1f} min when it ran)", flush=True)
            continue
        t0 = time.perf_counter()
        curves[name] = job()
        seconds[name] = time.perf_counter() - t0
        print(f"quality: {name}: {seconds[name] / 60:.1f} min", flush=True)
        if partial is not None:
            partial.write_text(json.dumps({"curves": curves, "seconds": seconds}, indent=1))
    return {name: curves[name] for name in jobs}, sum(seconds[name] for name in jobs)
