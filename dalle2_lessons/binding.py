"""Binding attributes to objects (the unCLIP paper's §7 and Figs. 14–15), measured in miniature (issue #22).

The paper reports that unCLIP binds attributes to objects worse than GLIDE: asked for "a red cube on top of a blue
cube", it draws the colours on the wrong cubes. Its explanation: the decoder sees the picture to draw only through
one CLIP image embedding, and CLIP's embedding need not record which colour belongs to which object (lesson 02 tests
CLIP's text side for exactly this); GLIDE reads the words in order.

To measure it, every stage that reads captions is retrained on Shapes' **relation tier** — two objects in one row or
column, "a red circle above a blue square" — with the same trainers, sizes and steps as its single-object course
checkpoint: a CLIP, a prior and a decoder on that CLIP (unCLIP), and a GLIDE-like model. Each is built by
``python -m dalle2_lessons.binding --stage STAGE`` (:data:`STAGES`, in order: the prior and decoder read the CLIP
built first) into a checkpoint named ``<stage>-relation-v2``. :func:`binding_rates` then draws each test caption and
the relation judge reads the pictures: how often everything is right, and how often the two objects' colours (or
shapes) come out exchanged — a *swap*, the binding failure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from . import checkpoints, clip, decoder, glide, metrics, prior, shapes, tokenizer
from .clip import CLIP, CLIPConfig, caption_tokens
from .clip_embeddings import CaptionBank, embed_images
from .judge import AttributeJudge, load_judge

TIER = "relation"
VERSION = "v2"
#: the stages this module builds, in the order they must be built (the prior and the decoder read the CLIP)
STAGES: tuple[str, ...] = ("clip", "prior", "decoder", "glide")
#: the attributes of a relation scene (:data:`~.shapes.TIERS`): colour_a, shape_a, relation, colour_b, shape_b
A_COLOUR, A_SHAPE, RELATION, B_COLOUR, B_SHAPE = range(5)


def checkpoint_name(stage: str) -> str:
    """``"clip"`` → ``"clip-relation-v2"``."""
    return f"{stage}-{TIER}-{VERSION}"


def rebuild_command(stage: str, profile: str = "cpu", steps: int | None = None) -> str:
    return checkpoints.command("binding", stage=stage, profile=profile, steps=steps)


def training_data(n: int) -> shapes.ShapesDataset:
    """``n`` relation scenes at the version's base resolution (32×32): what every stage here learns from."""
    return shapes.ShapesDataset("train", TIER, n=n, version=VERSION)


# ----------------------------------------------------------------------------------------------
# Building and loading.


def build_stage(stage: str, profile: str = "cpu", steps: int | None = None, device: str | torch.device = "cpu",
                progress: bool = True, directory: Path | None = None,
                ) -> tuple[torch.nn.Module, dict, dict[str, torch.nn.Module]]:
    """Train ``stage`` on relation scenes with the settings of its single-object course checkpoint in ``profile``
    (``steps`` overrides the preset's). The prior and decoder learn the embeddings of the relation CLIP found in
    ``directory`` (default: the shipped checkpoints). Returns ``(model, metrics, parents)``."""
    tok = tokenizer.for_version(VERSION)
    if stage == "clip":
        # at the base resolution, as the course CLIP (clip-v2) was built, so the decoder's images are what it reads
        cfg = replace(clip.PRESETS[profile], resolution=shapes.get_version(VERSION).resolution,
                      **({"steps": steps} if steps else {}))
        data = training_data(cfg.n_train)
        model = CLIP(CLIPConfig(tok.vocab_size, tok.context_length, cfg.resolution, cfg.embed_dim))
        t0 = time.perf_counter()
        losses = clip.train_clip(model, data.images, caption_tokens(tok, TIER, data.attrs), cfg.steps,
                                 cfg.batch_size, cfg.lr, seed=cfg.seed, device=device, progress=progress)
        return model.eval(), _metrics(cfg, losses, time.perf_counter() - t0, profile), {}
    if stage == "glide":
        cfg = replace(glide.PRESETS[profile], **({"steps": steps} if steps else {}))
        data = training_data(cfg.n_train)
        t0 = time.perf_counter()
        model, losses = glide.train_glide(cfg, data.images, caption_tokens(tok, TIER, data.attrs), device, progress)
        return model, _metrics(cfg, losses, time.perf_counter() - t0, profile), {}
    clip_model = load_stage("clip", directory=directory)
    module = {"prior": prior, "decoder": decoder}[stage]
    cfg = replace(module.PRESETS[profile], **({"steps": steps} if steps else {}))
    data = training_data(cfg.n_train)
    bank = CaptionBank.build(clip_model, caption_tokens(tok, TIER, data.attrs))
    t0 = time.perf_counter()
    z_images = embed_images(clip_model, data.images)  # CLIP reads the base resolution (v2: both 32 px)
    if stage == "prior":
        model, losses = prior.train_prior(cfg, z_images, bank, device, progress)
    else:
        model, losses = decoder.train_decoder(cfg, data.images, z_images, bank, device, progress)
    return model, _metrics(cfg, losses, time.perf_counter() - t0, profile), {"clip": clip_model}


def _metrics(cfg, losses: list[float], seconds: float, profile: str) -> dict:
    return {"train_seconds": round(seconds, 1), "steps": cfg.steps, "profile": profile,
            "final_loss": sum(losses[-50:]) / len(losses[-50:])}


def load_stage(stage: str, device: str | torch.device = "cpu", directory: Path | None = None,
               clip_model: CLIP | None = None) -> torch.nn.Module:
    """The relation checkpoint of ``stage`` from ``directory`` (default: the shipped ones), in eval mode; the prior
    and decoder only if they were trained on ``clip_model`` (default: the relation CLIP of the same directory)."""
    directory = Path(directory or checkpoints.shipped_dir())
    name = checkpoint_name(stage)
    ckpt = checkpoints.load_checkpoint(name, directory)
    if stage in ("prior", "decoder"):
        clip_model = clip_model or load_stage("clip", device, directory)
        want = checkpoints.origin(clip_model).sha256
        if ckpt.origin.parents.get("clip") != want:
            raise checkpoints.CheckpointError(
                f"{name} in {directory} was not trained on this relation CLIP ({want[:12]}). Rebuild it with:  "
                + rebuild_command(stage))
    make: dict[str, Callable[[dict], torch.nn.Module]] = {
        "clip": lambda c: CLIP(CLIPConfig(**c)), "prior": lambda c: prior.DiffusionPrior(prior.PriorConfig(**c)),
        "decoder": lambda c: decoder.Decoder(decoder.DecoderConfig.from_dict(c)),
        "glide": lambda c: glide.Glide(glide.GlideConfig.from_dict(c))}
    model = checkpoints.load_into(make[stage](ckpt.config), ckpt).to(device).eval()
    model.origin = ckpt.origin
    return model


# ----------------------------------------------------------------------------------------------
# The measurement.


def swaps(read: torch.Tensor, asked: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the relation judge read, ``read`` ``(N, 5)`` (−1: refused), against the caption's attributes ``asked``
    ``(N, 5)``. Returns ``(N,)`` bools: ``correct`` (all five), ``colour swap`` (the relation and both shapes right,
    the two colours exchanged) and ``shape swap`` (likewise the shapes). A swap is only possible where the two values
    differ; :func:`binding_rates` draws captions whose objects differ in both."""
    exchanged = asked[:, [B_COLOUR, B_SHAPE, RELATION, A_COLOUR, A_SHAPE]]  # object a's values where b's are, and back
    same = read == asked
    colour_swap = ((read[:, A_COLOUR] == exchanged[:, 0]) & (read[:, B_COLOUR] == exchanged[:, 3])
                   & same[:, [A_SHAPE, RELATION, B_SHAPE]].all(1))
    shape_swap = ((read[:, A_SHAPE] == exchanged[:, 1]) & (read[:, B_SHAPE] == exchanged[:, 4])
                  & same[:, [A_COLOUR, RELATION, B_COLOUR]].all(1))
    return {"correct": same.all(1), "colour swap": colour_swap, "shape swap": shape_swap}


def evaluation_scenes(n: int, seed: int) -> shapes.Scenes:
    """``n`` relation test scenes whose two objects differ in colour *and* shape, so either swap can be seen."""
    pool = shapes.sample_scenes(8 * n, "test", TIER, seed=900 + seed, version=VERSION)
    keep = ((pool.attrs[:, A_COLOUR] != pool.attrs[:, B_COLOUR])
            & (pool.attrs[:, A_SHAPE] != pool.attrs[:, B_SHAPE])).nonzero()[0][:n]
    if len(keep) < n:
        raise ValueError(f"only {len(keep)} of {8 * n} relation scenes have two different objects")
    return pool[keep]


@torch.no_grad()
def binding_rates(generators: dict[str, Callable[[list[str], int], torch.Tensor]], seeds: tuple[int, ...] = (0, 1, 2),
                  n: int = 64, judge: AttributeJudge | None = None) -> dict[str, dict[str, metrics.Interval]]:
    """Each generator (``(captions, seed) → (N, 3, R, R)`` images) draws the full caption of ``n`` relation test
    scenes per seed (:func:`evaluation_scenes`); the strict relation judge reads them. Returns ``{name: {"correct" |
    "colour swap" | "shape swap" | "readable": 95% interval over seeds}}``."""
    judge = judge or load_judge(TIER, version=VERSION)
    per_seed: dict[str, dict[str, list[float]]] = {name: {} for name in generators}
    for seed in seeds:
        scenes = evaluation_scenes(n, seed)
        asked = torch.as_tensor(scenes.attrs)
        for name, generate in generators.items():
            images = generate(scenes.full_captions, seed)
            read = judge.verdict(images)
            rates = {k: v.float().mean().item() for k, v in swaps(read, asked).items()}
            rates["readable"] = (read[:, 0] >= 0).float().mean().item()
            for k, v in rates.items():
                per_seed[name].setdefault(k, []).append(v)
    return {name: {k: metrics.interval95(v) for k, v in rates.items()} for name, rates in per_seed.items()}


def load_models(device: str | torch.device = "cpu", directory: Path | None = None) -> tuple[object, glide.Glide]:
    """The relation checkpoints: unCLIP (the relation CLIP, prior and decoder, and the course upsampler, which reads
    pixels only) and the GLIDE-like model. Returns ``(pipe, glide_model)``, ``pipe`` an :class:`~.unclip.UnCLIP`."""
    from .unclip import UnCLIP
    from .upsampler import load_upsampler

    clip_model = load_stage("clip", device, directory)
    pipe = UnCLIP(clip_model, load_stage("prior", device, directory, clip_model),
                  load_stage("decoder", device, directory, clip_model), load_upsampler(None, device, version=VERSION),
                  tokenizer.for_version(VERSION))
    return pipe, load_stage("glide", device, directory)


def generators(pipe, glide_model: glide.Glide, steps: int = 25, scale: float = 3.0,
               ) -> dict[str, Callable[[list[str], int], torch.Tensor]]:
    """The three rows of the paper's comparison, each ``(captions, seed) → (N, 3, 32, 32)``: unCLIP (text → prior →
    decoder, which sees the caption only through the sampled image embedding), unCLIP with the decoder's caption
    pathway (the caption's token features as extra attention context, which the paper's decoder kept), and the
    GLIDE-like model. Every decoder is guided by ``scale`` with ``steps`` DDIM steps."""

    def unclip_row(caption_pathway: bool):
        def generate(texts: list[str], seed: int) -> torch.Tensor:
            gen = torch.Generator().manual_seed(seed)
            text, tokens, mask = pipe.encode_text(texts)
            z = pipe.image_embeddings(text, tokens, mask, generator=gen)
            return pipe.decode(z, scale, steps, gen, tokens=tokens if caption_pathway else None,
                               mask=mask if caption_pathway else None)
        return generate

    def glide_row(texts: list[str], seed: int) -> torch.Tensor:
        tokens = tokenizer.for_version(VERSION).encode_batch(texts)
        return glide.sample(glide_model, tokens, scale, steps, generator=torch.Generator().manual_seed(seed))

    return {"unCLIP": unclip_row(False), "unCLIP + caption pathway": unclip_row(True), "GLIDE-like": glide_row}


def format_binding_rates(rates: dict[str, dict[str, metrics.Interval]]) -> str:
    """One line per model: each rate as ``mean ± half-width`` of its 95% interval over seeds."""
    cols = ("correct", "colour swap", "shape swap", "readable")
    lines = [f"{'model':28s}" + "".join(f"{c:>16s}" for c in cols)]
    for name, r in rates.items():
        lines.append(f"{name:28s}" + "".join(f"{r[c].mean:9.1%} ±{(r[c].high - r[c].low) / 2:5.1%}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train one stage on Shapes' relation tier (two objects) and save it as "
                                            "<stage>-relation-v2, for the binding experiment.")
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--profile", default="cpu", choices=("ci", "cpu", "gpu"))
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the stage's preset)")
    p.add_argument("--out", default=None, help="folder (default: data/checkpoints); the prior and decoder read the "
                                               "relation CLIP from it")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else checkpoints.shipped_dir()
    model, results, parents = build_stage(args.stage, args.profile, args.steps, args.device, directory=out)
    model = model.cpu()
    path = checkpoints.save_checkpoint(checkpoint_name(args.stage), model.state_dict(), model.config_dict(), out,
                                       results, rebuild=rebuild_command(args.stage, args.profile, args.steps),
                                       parents=parents)
    print(f"saved {path} (trained {results['train_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
