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

import time
from dataclasses import replace

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


def diffusion_curves(
    steps: dict[str, int | None], every: dict[str, int], n_eval: int, profile: str = "cpu"
) -> dict[str, list[dict]]:
    """The course builders with their measuring callbacks: ``{"text → pixels": ..., "prior": ..., "decoder": ...}``.
    The prior and decoder read the course CLIP checkpoint, as in lessons 06–07."""
    curves = {}
    for name, module, key in (("text → pixels diffusion", guidance, "text"), ("unCLIP decoder", decoder, "decoder")):
        cfg = module.PRESETS[profile]
        cfg = replace(cfg, steps=steps[key] or cfg.steps, version=DATA)
        curves[name] = module.build(cfg, progress=False, eval_every=every[key], n_eval=n_eval).curve
    curves["unCLIP prior"] = prior_curve(steps["prior"], every["prior"], profile, 1 if n_eval < 32 else 2,
                                         min(32, n_eval))
    return {k: curves[k] for k in ("text → pixels diffusion", "unCLIP prior", "unCLIP decoder")}


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


def run(tiny: bool) -> tuple[dict[str, list[dict]], float]:
    t0 = time.perf_counter()
    if tiny:
        curves = {"CLIP": clip_curve(steps=4, every=2, n_eval=32, profile="ci")}
        curves |= diffusion_curves({"text": 2, "prior": 2, "decoder": 2}, {"text": 1, "prior": 1, "decoder": 1}, 4,
                                   profile="ci")
    else:
        curves = {"CLIP": clip_curve()}
        curves |= diffusion_curves({"text": 1500, "prior": None, "decoder": 1500},
                                   {"text": 250, "prior": 100, "decoder": 250}, 128)
    return curves, time.perf_counter() - t0
