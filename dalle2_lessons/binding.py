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
shapes) come out exchanged — a *swap*, the binding failure. Colours are read apart from shapes
(:func:`colour_order`): at the shipped budgets the two-object pictures are too soft for the strict judge to read
their shapes (it reads 14–29% of them), but which colour is on top can be read from a blob.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from . import checkpoints, claims, clip, decoder, glide, metrics, prior, shapes, tokenizer
from .clip import CLIP, CLIPConfig, caption_tokens
from .clip_embeddings import CaptionBank, embed_images, linear_probe
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
    """What the strict relation judge read, ``read`` ``(N, 5)`` (−1: refused), against the caption's attributes
    ``asked`` ``(N, 5)``. Returns ``(N,)`` bools: ``correct`` (all five), ``colour swap`` (the relation and both shapes
    right, the two colours exchanged) and ``shape swap`` (likewise the shapes), and ``shapes placed`` (the colours,
    the relation and both shapes where the caption put them). A swap is only possible where the two values differ;
    :func:`binding_rates` draws captions whose objects differ in both."""
    exchanged = asked[:, [B_COLOUR, B_SHAPE, RELATION, A_COLOUR, A_SHAPE]]  # object a's values where b's are, and back
    same = read == asked
    shapes_and_relation, colours_and_relation = (same[:, [A_SHAPE, RELATION, B_SHAPE]].all(1),
                                                 same[:, [A_COLOUR, RELATION, B_COLOUR]].all(1))
    colour_swap = (read[:, A_COLOUR] == exchanged[:, 0]) & (read[:, B_COLOUR] == exchanged[:, 3]) & shapes_and_relation
    shape_swap = (read[:, A_SHAPE] == exchanged[:, 1]) & (read[:, B_SHAPE] == exchanged[:, 4]) & colours_and_relation
    return {"correct": same.all(1), "colour swap": colour_swap, "shape swap": shape_swap,
            "shapes placed": same[:, [A_SHAPE, B_SHAPE]].all(1) & colours_and_relation}


#: what :func:`colour_order` reads: the two colours and the arrangement, not the shapes
COLOUR_READING: tuple[str, ...] = ("colour_a", "relation", "colour_b")


def colour_order(colours: torch.Tensor, asked: torch.Tensor) -> dict[str, torch.Tensor]:
    """Which colour went where, whatever the shapes: ``colours`` ``(N, 3)`` as the judge read colour_a, the relation
    and colour_b (:data:`COLOUR_READING`, −1: refused), against the caption's attributes ``asked`` ``(N, 5)``.
    Returns ``(N,)`` bools: ``colours in order`` (the arrangement right, the top or left object in the caption's
    first colour and the other in its second) and ``colours exchanged`` (the arrangement right, the two colours the
    other way round). Either means the model drew *both* colours the caption asked for; only their places differ.

    This is the paper's own example (Fig. 15, "a red cube on top of a blue cube": two objects told apart by where
    they are), and it can be read from blobs: a decoder whose shapes are too soft for the strict judge still shows
    which colour is on top."""
    right_arrangement = colours[:, 1] == asked[:, RELATION]
    first, second = colours[:, 0], colours[:, 2]
    a, b = asked[:, A_COLOUR], asked[:, B_COLOUR]
    return {"colours in order": right_arrangement & (first == a) & (second == b),
            "colours exchanged": right_arrangement & (first == b) & (second == a)}


def swap_shares(outcome: dict[str, torch.Tensor]) -> dict[str, float]:
    """The binding error itself, apart from how often a model draws the right things at all. ``colour swap share``:
    of the pictures with both of the caption's colours in the right arrangement (:func:`colour_order`), the fraction
    with them exchanged. ``shape swap share``: of the strictly read pictures with the colours, the relation and the
    two shapes right up to an exchange of the shapes (:func:`swaps`), the fraction exchanged — it needs shapes crisp
    enough to read. A model that knows *which* colours (shapes) but not *where* they go swaps half the time (0.5);
    one that binds, never (0). NaN when no picture qualifies."""
    pairs = {"colour": ("colours exchanged", "colours in order"), "shape": ("shape swap", "shapes placed")}
    out = {}
    for what, (wrong, right) in pairs.items():
        swapped, placed = outcome[wrong].sum().item(), outcome[right].sum().item()
        out[f"{what} swap share"] = swapped / (swapped + placed) if swapped + placed else float("nan")
    return out


def evaluation_scenes(n: int, seed: int) -> shapes.Scenes:
    """``n`` relation test scenes whose two objects differ in colour *and* shape, so either swap can be seen."""
    pool = shapes.sample_scenes(8 * n, "test", TIER, seed=900 + seed, version=VERSION)
    keep = ((pool.attrs[:, A_COLOUR] != pool.attrs[:, B_COLOUR])
            & (pool.attrs[:, A_SHAPE] != pool.attrs[:, B_SHAPE])).nonzero()[0][:n]
    if len(keep) < n:
        raise ValueError(f"only {len(keep)} of {8 * n} relation scenes have two different objects")
    return pool[keep]


#: the measures of :func:`binding_rates`, per seed: from the strict judge (every attribute, crisp pictures only) ...
STRICT_MEASURES: tuple[str, ...] = ("correct", "colour swap", "shape swap", "shape swap share", "readable")
#: ... and from the colours and the arrangement alone (:func:`colour_order`)
COLOUR_MEASURES: tuple[str, ...] = ("colours readable", "both colours", "colour swap share")
MEASURES: tuple[str, ...] = STRICT_MEASURES + COLOUR_MEASURES


@torch.no_grad()
def binding_rates(generators: dict[str, Callable[[list[str], int], torch.Tensor]], seeds: tuple[int, ...] = (0, 1, 2),
                  n: int = 64, judge: AttributeJudge | None = None) -> dict[str, dict[str, list[float]]]:
    """Each generator (``(captions, seed) → (N, 3, R, R)`` images) draws the full caption of ``n`` relation test
    scenes per seed (:func:`evaluation_scenes`: every model gets the same captions for a seed); the relation judge
    reads them twice, strictly (every attribute, :func:`swaps`) and for the colours and arrangement alone
    (:func:`colour_order`). Returns ``{name: {measure: [one value per seed]}}`` for each of :data:`MEASURES` (the
    fractions of :func:`swaps` over all pictures, :func:`swap_shares`, how many pictures each reading could read, and
    how many showed both colours in the right arrangement, either way round);
    :func:`binding_intervals` and :func:`binding_difference` turn them into 95% intervals."""
    judge = judge or load_judge(TIER, version=VERSION)
    per_seed: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MEASURES} for name in generators}
    for seed in seeds:
        scenes = evaluation_scenes(n, seed)
        asked = torch.as_tensor(scenes.attrs)
        for name, generate in generators.items():
            images = generate(scenes.full_captions, seed)
            read, colours = judge.verdict(images), judge.verdict_on(images, COLOUR_READING)
            outcome = swaps(read, asked) | colour_order(colours, asked)
            rates = {k: outcome[k].float().mean().item() for k in ("correct", "colour swap", "shape swap")}
            rates |= swap_shares(outcome) | {"readable": (read[:, 0] >= 0).float().mean().item(),
                                             "colours readable": (colours[:, 0] >= 0).float().mean().item(),
                                             "both colours": (outcome["colours in order"]
                                                              | outcome["colours exchanged"]).float().mean().item()}
            for m in MEASURES:
                per_seed[name][m].append(rates[m])
    return per_seed


def binding_intervals(per_seed: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, metrics.Interval]]:
    """:func:`binding_rates`' per-seed values → ``{name: {measure: 95% interval over seeds}}``."""
    return {name: {m: metrics.interval95(v) for m, v in rates.items()} for name, rates in per_seed.items()}


def measurable(per_seed: dict[str, dict[str, list[float]]], measure: str) -> bool:
    """Whether every model has a value of ``measure`` in every seed: a swap share is NaN in a seed where no picture
    showed the right shapes (colours) in the right arrangement, and then there was nothing to swap."""
    return all(v == v for rates in per_seed.values() for v in rates[measure])


def binding_difference(per_seed: dict[str, dict[str, list[float]]], measure: str, a: str, b: str) -> metrics.Interval:
    """95% interval of model ``a``'s ``measure`` minus model ``b``'s, seed by seed (paired: the same captions)."""
    return metrics.interval95([x - y for x, y in zip(per_seed[a][measure], per_seed[b][measure], strict=True)])


def binding_claim(per_seed: dict[str, dict[str, list[float]]], a: str = "unCLIP", b: str = "GLIDE-like",
                  direction: Callable[[float, float], str] = claims.direction) -> tuple[str, str]:
    """The paper's §7 claim, "unCLIP binds attributes worse than GLIDE", judged from :func:`binding_rates`' per-seed
    colour swap shares: ``(verdict, measured)``. The verdict is ``"yes"`` (``a`` swaps more often than ``b``: the
    paired interval of the difference lies above 0, as ``direction`` reads it), ``"no"`` (below), ``"not told
    apart"``, or ``"not measurable"``
    (in some seed no picture had both colours to swap); where neither model's own interval excludes 0.5 (colours put
    down at random), it adds that neither binds. ``measured`` states the numbers the verdict was read from
    (:func:`~.claims.claim_rows` puts it in the paper-beside-the-course table)."""
    measure = "colour swap share"
    intervals = binding_intervals({m: per_seed[m] for m in (a, b)})
    if not measurable({m: per_seed[m] for m in (a, b)}, measure):
        return "not measurable", ("too few pictures with both colours in the right arrangement to count swaps "
                                  "(both colours: " + ", ".join(f"{m} {r['both colours'].mean:.0%}"
                                                                for m, r in intervals.items()) + ")")
    d = binding_difference(per_seed, measure, a, b)
    verdict = claims.YES[direction(d.low, d.high)]
    if all(r[measure].low <= 0.5 <= r[measure].high for r in intervals.values()):
        verdict += "; neither binds"
    shares = ", ".join(f"{m} {r[measure].mean:.0%} ± {(r[measure].high - r[measure].low) / 2:.0%}"
                       for m, r in intervals.items())
    return verdict, (f"colour swap share {shares} (0.5: colours placed at random); {a} − {b} {d.mean:+.2f} "
                     f"[{d.low:+.2f}, {d.high:+.2f}]")


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
    GLIDE-like model. Every decoder is guided by ``scale`` with ``steps`` DDIM steps; the generators are lesson 15's
    (:mod:`~.claims`), so both experiments draw pictures the same way."""
    return {"unCLIP": claims.unclip_base_generators(pipe, steps)(scale),
            "unCLIP + caption pathway": claims.unclip_base_generators(pipe, steps, caption_pathway=True)(scale),
            "GLIDE-like": claims.glide_generator(glide_model, scale, steps)}


def render_generator(pipe, steps: int = 25, scale: float = 3.0) -> Callable[[list[str], int], torch.Tensor]:
    """unCLIP without its prior's guess: ``(captions, seed) → (N, 3, 32, 32)`` decoded from the CLIP image embeddings
    of the renders the captions describe — :func:`evaluation_scenes` ``(len(captions), seed)``, the only captions it
    accepts — with the decoder noise of :func:`generators`' unCLIP row. If the swaps stay, the prior did not cause
    them: the decoder cannot read the binding out of the embedding of the very picture it should draw."""
    resolution = shapes.get_version(VERSION).resolution

    def generate(captions: list[str], seed: int) -> torch.Tensor:
        scenes = evaluation_scenes(len(captions), seed)
        if scenes.full_captions != list(captions):
            raise ValueError("render_generator draws only the captions of binding.evaluation_scenes(n, seed)")
        z = embed_images(pipe.clip, shapes.render(scenes, resolution).to(pipe.device))
        return pipe.decode(z, scale, steps, torch.Generator().manual_seed(1000 * seed))

    return generate


def colour_probe(clip_model: CLIP, n_train: int = 2000, n_test: int = 500) -> dict[str, float]:
    """What a straight line can read from the relation CLIP's image embedding: test accuracy of lesson 01's linear
    probe (:func:`~.clip_embeddings.linear_probe`) for each attribute of a relation scene, trained on ``n_train``
    renders and tested on ``n_test`` others. Chance for a colour is 1/8."""
    resolution = shapes.get_version(VERSION).resolution
    device = next(clip_model.parameters()).device
    train, test = (shapes.sample_scenes(n, split, TIER, seed=seed, version=VERSION)
                   for n, split, seed in ((n_train, "train", 1), (n_test, "test", 2)))
    z_train, z_test = (embed_images(clip_model, shapes.render(s, resolution).to(device)).cpu() for s in (train, test))
    return {name: linear_probe(z_train, torch.as_tensor(train.attrs[:, i]).long(), z_test,
                               torch.as_tensor(test.attrs[:, i]).long(), len(shapes.ATTRIBUTE_VALUES[name]))
            for i, name in enumerate(shapes.TIERS[TIER])}


def format_binding_rates(per_seed: dict[str, dict[str, list[float]]], strict: bool = True) -> str:
    """Two tables, one line per model: the strict reading's :data:`STRICT_MEASURES` (unless ``strict=False``), then
    the colour reading's :data:`COLOUR_MEASURES`, each as ``mean ± half-width`` of its 95% interval over seeds."""
    intervals = binding_intervals(per_seed)
    lines = []
    tables = (("strict judge (every attribute)", STRICT_MEASURES), ("colours and arrangement only", COLOUR_MEASURES))
    for title, measures in tables[0 if strict else 1:]:
        lines.append(f"{title:32s}" + "".join(f"{m:>19s}" for m in measures))
        for name, r in intervals.items():
            lines.append(f"  {name:30s}" + "".join(f"{r[m].mean:11.1%} ±{(r[m].high - r[m].low) / 2:5.1%}"
                                                   for m in measures))
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
