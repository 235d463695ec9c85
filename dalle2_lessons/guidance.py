"""Conditioning a diffusion model on a caption, and classifier-free guidance (lesson 05).

The U-Net of lesson 04 gains one input: a condition vector ``c`` of size ``cond_dim``, projected
and added to the timestep embedding (so it reaches every residual block). Two ways to get ``c``:

* **CLIP text embedding** (unCLIP's own vocabulary): the frozen course CLIP of lesson 01 encodes the caption; any
  paraphrase of the same scene lands near the same vector. GLIDE itself reads every token of the caption with its own
  transformer; the course's GLIDE-like model is :mod:`~dalle2_lessons.glide` (lesson 15).
* **learned attribute tokens**: one learned vector per attribute value (colour, shape, size, position), summed. It
  gets the ground-truth attributes, not the caption: an upper bound on what a full caption could tell the network,
  and no way to say "a red thing". Shapes v1 has a course checkpoint of it (``--condition attributes``); lesson 05
  on Shapes v2 no longer uses it.

**Classifier-free guidance** (Ho & Salimans 2022). During training the condition is replaced by
the *null condition*, the zero vector, for a fraction ``p_uncond`` of the images (a real CLIP
embedding has norm 1, so zero is unambiguous), so one network learns both ``ε(x_t, c)`` and
``ε(x_t, ∅)``. At sampling time we extrapolate away from the unconditional prediction::

    ε̂ = ε(x_t, ∅) + s · (ε(x_t, c) − ε(x_t, ∅))

``s = 0`` is the unconditional model, ``s = 1`` the plain conditional one, ``s > 1`` trades
diversity for faithfulness to the caption (GLIDE's convention for ``s``).

With Shapes v2's 32-px images the network predicts v rather than ε (``prediction_type="v_prediction"``): guidance
combines v exactly as it combines ε (the conversion is affine in the output at a fixed ``x_t``), and
:func:`guided_eps_model` hands the samplers their ε (:func:`x0_and_eps_from_v`, lesson 05's exercise, is its v case).

The course checkpoint (the text → pixels baseline of the unCLIP lessons; the lesson itself trains for fewer steps) is
``text-diffusion-v2``; the command that rebuilds it is in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

from . import builders, checkpoints, diffusion, judge, profiles, shapes, tokenizer
from .clip import CLIP, caption_tokens, embed_texts, load_clip
from .builders import Built
from .training import Curve, train
from .unet import UNet, UNetConfig

CHECKPOINT = "text-diffusion"


def unet_config(cond_dim: int, resolution: int = 16) -> UNetConfig:
    """Lesson 04's U-Net, plus what a caption needs: the condition vector, scale-and-shift of the
    features by the embedding (ADM's adaptive GroupNorm: a condition can turn features on and off,
    not just nudge them) and a learned position embedding (so "top left" can mean a place). At 32 px (Shapes v2)
    it has the decoder's extra level (lesson 07), so that attention still runs on an 8×8 map."""
    if resolution == 16:
        return UNetConfig(cond_dim=cond_dim, scale_shift=True, position_embedding=True)
    return UNetConfig(resolution=resolution, base_channels=32, channel_mults=(1, 2, 3, 3), attention_levels=(2, 3),
                      cond_dim=cond_dim, scale_shift=True, position_embedding=True)


def sum_attribute_vectors(tables: list[torch.Tensor], attrs: torch.Tensor) -> torch.Tensor:
    """``tables[j]`` ``(n_values_j, D)`` holds one vector per value of attribute ``j``; ``attrs`` ``(B, A)``
    int64 picks one row of each table per image. Returns their sum, ``(B, D)``."""
    return sum(table[attrs[:, j]] for j, table in enumerate(tables))


class AttributeEncoder(nn.Module):
    """Ground-truth attributes ``(B, A)`` int64 → condition vectors ``(B, dim)``: one learned vector
    per attribute value, summed over the ``A`` attributes of the tier (:func:`sum_attribute_vectors`)."""

    def __init__(self, dim: int, tier: str = "single"):
        super().__init__()
        self.tier = tier
        self.tables = nn.ModuleList(
            nn.Embedding(len(shapes.ATTRIBUTE_VALUES[name]), dim) for name in shapes.TIERS[tier]
        )
        for table in self.tables:
            nn.init.normal_(table.weight, std=1.0)  # entries of about ±1, like the scaled CLIP embedding

    def forward(self, attrs: torch.Tensor) -> torch.Tensor:
        return sum_attribute_vectors([table.weight for table in self.tables], attrs)


@dataclass(frozen=True)
class ConditionalConfig:
    """Everything needed to rebuild a :class:`ConditionalUNet` (stored in its checkpoint)."""

    unet: UNetConfig
    condition: str = "clip"  #: ``"clip"`` (a precomputed CLIP text embedding) or ``"attributes"``
    tier: str = "single"
    #: what the network predicts: the noise ε (lesson 04) or the velocity v (lesson 07; checkpoints before it: ε)
    prediction_type: str = "epsilon"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ConditionalConfig:
        return cls(UNetConfig.from_dict(d["unet"]), d["condition"], d["tier"], d.get("prediction_type", "epsilon"))


class ConditionalUNet(nn.Module):
    """A U-Net whose condition is a CLIP text embedding ``(B, D)`` float or attributes ``(B, A)`` int64.

    ``encode(cond)`` turns either into the vector the U-Net adds to its time embedding; ``forward(x,
    t, c)`` takes that *vector* (so guidance can pair each ``c`` with the null vector, zeros).
    """

    def __init__(self, config: ConditionalConfig):
        super().__init__()
        self.config = config
        if config.unet.cond_dim is None:
            raise ValueError("a conditional U-Net needs UNetConfig(cond_dim=...)")
        self.unet = UNet(config.unet)
        self.attributes = (
            AttributeEncoder(config.unet.cond_dim, config.tier) if config.condition == "attributes" else None
        )

    def encode(self, cond: torch.Tensor) -> torch.Tensor:
        """Unit-norm CLIP embeddings are scaled by √D, so their entries are about ±1 like every other
        input of a linear layer (at ±1/√D the condition starts out as a whisper); attribute ids become
        their summed learned vectors."""
        if self.attributes is None:
            return cond * cond.shape[-1] ** 0.5
        return self.attributes(cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, c)

    def config_dict(self) -> dict:
        return self.config.to_dict()


# ----------------------------------------------------------------------------------------------
# The two equations of the lesson: condition dropout in training, guidance in sampling.


def drop_condition(c: torch.Tensor, p_uncond: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each row of ``c`` ``(B, D)`` by the null condition (zeros) with probability ``p_uncond``."""
    keep = torch.rand(len(c), generator=generator) >= p_uncond
    return c * keep.to(c.device, c.dtype)[:, None]


def guided_eps(model: Callable, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``ε(x,∅) + s·(ε(x,c) − ε(x,∅))`` for ``x`` ``(B, C, H, W)``, ``c`` ``(B, D)``.

    Both predictions come from one batched call of ``model(x, t, c)`` on ``2B`` images; ``scale == 1``
    needs only the conditional half.
    """
    return diffusion.guide(model, (x, t, c), (x, t, torch.zeros_like(c)), scale)


def x0_and_eps_from_v(v: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, schedule: diffusion.NoiseSchedule,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lesson 05's Exercise 2: ``(x̂_0, ε)`` at ``x_t`` ``(B, C, H, W)`` from a v-prediction ``v`` (same shape), ``t``
    ``(B,)``. (x_t, v) is (x_0, ε) turned by the angle whose cosine is √ᾱ_t, so turning back gives
    x̂_0 = √ᾱ_t·x_t − √(1−ᾱ_t)·v and ε = √(1−ᾱ_t)·x_t + √ᾱ_t·v (:func:`~.diffusion.x0_and_eps`)."""
    return diffusion.x0_and_eps(v, t, x_t, schedule, "v_prediction")


def conditional_loss(
    model: ConditionalUNet, x0: torch.Tensor, cond: torch.Tensor, schedule: diffusion.NoiseSchedule,
    p_uncond: float = 0.1, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Lesson 04's ε-prediction loss (or v's, as the model's config says) with a condition that is dropped for a
    fraction ``p_uncond`` of the batch."""
    c = drop_condition(model.encode(cond), p_uncond, generator)
    return diffusion.diffusion_loss(lambda x_t, t: model(x_t, t, c), x0, schedule, generator,
                                    model.config.prediction_type)


def guided_eps_model(
    model: ConditionalUNet, c: torch.Tensor, scale: float, schedule: diffusion.NoiseSchedule
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``(x_t, t) → ε`` function the samplers of :mod:`~dalle2_lessons.diffusion` call, for encoded conditions
    ``c`` ``(B, D)``: guided on the model's own output, which a v-prediction model turns into ε (lesson 07)."""
    kind = model.config.prediction_type
    return lambda x, t: diffusion.x0_and_eps(guided_eps(model, x, t, c, scale), t, x, schedule, kind)[1]


#: Where DDIM's steps start (:func:`~dalle2_lessons.diffusion.ddim_timesteps`), as for the decoder (its ``SPACING``):
#: with "leading" spacing the course text-diffusion-v2 drew the grey background on 96% of 48 test captions, with
#: "trailing" on 31% (the renders: half).
SPACING: diffusion.Spacing = "trailing"


@torch.no_grad()
def sample(
    model: ConditionalUNet, cond: torch.Tensor, schedule: diffusion.NoiseSchedule, scale: float = 3.0,
    steps: int | None = 50, eta: float = 0.0, resolution: int | None = None, generator: torch.Generator | None = None,
    device: str | torch.device = "cpu", progress: bool = False, batch_size: int = 256,
) -> torch.Tensor:
    """Guided samples for each condition row: ``(N, 3, R, R)`` in [-1, 1].

    ``steps=None`` is ancestral DDPM with all ``T`` steps; otherwise DDIM with ``steps`` steps and ``eta``. A
    v-prediction model is guided on v and hands the samplers its ε (as the decoder does, lesson 07).
    """
    res = resolution or model.config.unet.resolution
    out = []
    for chunk in cond.split(batch_size):
        eps_model = guided_eps_model(model, model.encode(chunk.to(device)), scale, schedule)
        shape = (len(chunk), model.config.unet.in_channels, res, res)
        if steps is None:
            out.append(diffusion.sample_ddpm(eps_model, shape, schedule, generator, device, progress=progress).cpu())
        else:
            out.append(
                diffusion.sample_ddim(
                    eps_model, shape, schedule, steps, eta, generator, device, progress=progress, spacing=SPACING
                ).cpu()
            )
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# Data and the course checkpoint.


def clip_caption_embeddings(
    clip_model, tok: tokenizer.Tokenizer, attrs: torch.Tensor, tier: str = "single", mentions: np.ndarray | None = None
) -> torch.Tensor:
    """Every paraphrase of every scene through the frozen CLIP text encoder: ``(N, n_templates, D)``, unit norm.
    ``mentions`` ``(N, n_templates, A)``: which attributes each paraphrase names (Shapes v2; default all)."""
    tokens = caption_tokens(tok, tier, attrs, mentions)  # (N, T, L)
    unique, inverse = torch.unique(tokens.flatten(0, 1), dim=0, return_inverse=True)
    return embed_texts(clip_model, unique)[inverse].view(*tokens.shape[:2], -1)


def make_condition_sampler(kind: str, attrs: torch.Tensor, caption_embeddings: torch.Tensor | None = None) -> Callable:
    """``(indices, generator) → conditions`` for training: the attributes (``kind="attributes"``), or a random
    paraphrase's row of ``caption_embeddings`` ``(N, n_templates, ...)`` — CLIP embeddings, or tokens (lesson 12)."""
    if kind == "attributes":
        return lambda idx, gen: attrs[idx]
    assert caption_embeddings is not None
    n_t = caption_embeddings.shape[1]
    return lambda idx, gen: caption_embeddings[idx, torch.randint(n_t, (len(idx),), generator=gen)]


def paraphrase_training_set(n_train: int, version: str, clip: CLIP | None = None,
                            ) -> tuple[shapes.ShapesDataset, CLIP, Callable]:
    """What every caption-conditioned family learns from (lessons 05, 10, 11): ``(data, clip, get_cond)``.

    ``n_train`` training images of Shapes ``version``; the CLIP that reads their captions (default: the course CLIP
    of ``version``); and a :func:`make_condition_sampler` that gives, per image and per step, that CLIP's text
    embedding of a random paraphrase of its caption — partial ones included (v2's ``mentions``), so a model learns
    from "a red shape" as well as from the full caption.
    """
    data = shapes.ShapesDataset("train", n=n_train, version=version)
    clip = clip or load_clip(version=version)
    emb = clip_caption_embeddings(clip, tokenizer.for_version(version), data.attrs, mentions=data.scenes.mentions)
    return data, clip, make_condition_sampler("clip", data.attrs, emb)


def eval_conditions(
    kind: str, n: int, clip_model=None, split: str = "test", seed: int = 1, version: str = "v2"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` full captions of ``split`` (every attribute named, so the judge can score all four) of Shapes
    ``version`` to generate from: ``(conditions, attrs, captions)``.

    ``kind``: ``"clip"`` (the captions' CLIP text embeddings), ``"tokens"`` (the tokenised captions) or
    ``"attributes"`` (the class indices themselves).
    """
    scenes = shapes.sample_scenes(n, split, "single", seed=seed, version=version)
    ds_attrs = torch.as_tensor(scenes.attrs)
    captions = scenes.full_captions
    if kind == "attributes":
        return ds_attrs, ds_attrs, captions
    tokens = tokenizer.for_version(version).encode_batch(captions)
    if kind == "tokens":
        return tokens, ds_attrs, captions
    return embed_texts(clip_model, tokens), ds_attrs, captions


def judge_caption_samples(
    sample: Callable[[torch.Tensor, torch.Generator], torch.Tensor], clip_model, n: int,
    splits: tuple[str, ...] = ("test", "heldout"), condition: str = "clip", version: str = "v2",
) -> dict[str, dict[str, float]]:
    """Judge one sample per caption of each split, for any caption-conditioned generator (lessons 10–13).

    Args:
        sample: ``(conditions, generator) → images (B, 3, R, R)`` in [-1, 1]; the conditions are CLIP text
            embeddings ``(B, D)`` or, with ``condition="tokens"``, tokenised captions ``(B, L)``.
    Returns:
        ``{split: {attribute accuracies, "all", "soft_pixels", "sample_seconds_per_image"}}`` (the strict judge of
        ``version``: v2's also reports the unreadable rate).
    """
    results = {}
    for split in splits:
        cond, attrs, _ = eval_conditions(condition, n, clip_model, split=split, version=version)
        t0 = time.perf_counter()
        images = sample(cond, torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - t0
        results[split] = {**judge.load_judge("single", version=version).score(images, attrs).as_dict(),
                          "soft_pixels": judge.soft_pixels(images),
                          "sample_seconds_per_image": seconds / len(cond)}
        print(f"{split:8s} {results[split]}", flush=True)
    return results


def evaluate(
    model: ConditionalUNet, schedule: diffusion.NoiseSchedule, cond: torch.Tensor, attrs: torch.Tensor,
    scale: float, steps: int | None = 50, seed: int = 0, device: str | torch.device = "cpu", version: str = "v2",
) -> judge.JudgeReport:
    """Generate one sample per condition and let the judge of Shapes ``version`` read it."""
    images = sample(model, cond, schedule, scale, steps, generator=torch.Generator().manual_seed(seed), device=device)
    return judge.load_judge("single", version=version).score(images, attrs)


#: The seed of the validation captions a builder picks its guidance scale on: full captions of the test
#: distribution that no lesson, scorecard or benchmark scores (they use other seeds), so the scale that lesson 13
#: compares the families at was not chosen on the captions it is scored on.
VALIDATION_SEED = 4242
#: How many validation captions :func:`pick_scale` judges, and with how many DDIM steps.
VALIDATION_N, VALIDATION_STEPS = 128, 25


def pick_scale(
    model: ConditionalUNet, clip_model: CLIP | None, scales: tuple[float, ...], n: int = VALIDATION_N,
    steps: int = VALIDATION_STEPS, condition: str = "clip", version: str = "v2", device: str | torch.device = "cpu",
) -> tuple[float, dict[str, float]]:
    """The guidance scale whose samples the strict judge reads all-right most often on ``n`` validation captions
    (:data:`VALIDATION_SEED`), DDIM-``steps``: ``(best scale, {str(scale): all-correct rate})``."""
    schedule = diffusion.cosine_schedule()
    cond, attrs, _ = eval_conditions(condition, n, clip_model, seed=VALIDATION_SEED, version=version)
    rates = {f"{sc:g}": evaluate(model, schedule, cond, attrs, sc, steps, device=device, version=version).all_correct
             for sc in scales}
    return max(scales, key=lambda sc: rates[f"{sc:g}"]), rates


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class GuidanceSettings:
    """Lesson 05 (and ``python -m dalle2_lessons.guidance``, which builds the course checkpoint)."""

    n_train: int  #: training images (the version's base resolution: 16×16 in v1, 32×32 in v2) with their captions
    steps: int  #: optimiser steps of the model the lesson trains (the course checkpoint trained longer)
    batch_size: int
    lr: float
    n_eval: int  #: test captions the lesson's own model draws (and the judge reads), per guidance scale
    k: int  #: samples per caption in the lesson's scorecards (diversity needs many per caption)
    n_compare: int  #: test captions for the sampler-bug comparison
    n_heldout: int  #: held-out captions per seed
    sample_steps: int = 50  #: DDIM steps of the lesson's sampling (the course checkpoint was judged with 50)
    n_per_type: int = 1  #: scorecard captions of each kind per seed
    seeds: tuple[int, ...] = (0, 1, 2)  #: evaluation seeds of the lesson's 95% intervals
    lesson_scales: tuple[float, ...] = (1.0, 3.0)  #: guidance scales the lesson's sweep scores
    scales: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)  #: scales the builder judges its model with
    p_uncond: float = 0.1  #: condition dropout: how often the null condition replaces the caption
    condition: str = "clip"  #: "clip" (the caption's CLIP text embedding) or "attributes" (learned vectors)
    cond_dim: int = 64  #: size of the learned attribute vectors (the CLIP embedding has its own size)
    prediction_type: str = "epsilon"  #: "epsilon" (lesson 04) or "v_prediction" (lesson 05's choice for Shapes v2)
    version: str = "v2"  #: the Shapes version it learns from (v2: 32×32 images, captions that leave things out)
    seed: int = 0


# The lesson samples at 32 px, where a guided DDIM-50 sample costs about a second of a 2-core CPU: in `cpu` the
# sweep scores two scales with DDIM-25 over 3 seeds × 6 kinds of caption × 16 samples; `gpu` scores all six with 50.
PRESETS: dict[str, GuidanceSettings] = {
    "ci": GuidanceSettings(n_train=2_000, steps=20, batch_size=16, lr=2e-3, n_eval=8, k=4, n_compare=4, n_heldout=2,
                           sample_steps=5),
    "cpu": GuidanceSettings(n_train=20_000, steps=80, batch_size=64, lr=2e-3, n_eval=16, k=16, n_compare=16,
                            n_heldout=16, sample_steps=25),
    "gpu": GuidanceSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=64, k=16, n_compare=128,
                            n_heldout=128, n_per_type=4, lesson_scales=(0.0, 1.0, 2.0, 3.0, 5.0, 8.0)),
}


def build(cfg: GuidanceSettings, device: str | torch.device = "cpu", *, clip: CLIP | None = None,
          eval_every: int | None = None, n_eval: int = 128, eval_scale: float = 3.0, progress: bool = True) -> Built:
    """Train a text-conditional U-Net with ``cfg``, conditioned on ``clip``'s text embeddings (default: the course
    CLIP) or, with ``cfg.condition == "attributes"``, on learned attribute vectors.

    With ``eval_every``, the EMA model is judged every so many steps on ``n_eval`` test captions (DDIM-50, guidance
    ``eval_scale``; sampling time is not counted as training time), which gives the accuracy-vs-minutes curve.
    """
    profiles.seed_everything(cfg.seed)
    if cfg.condition == "clip":
        data, clip, get_cond = paraphrase_training_set(cfg.n_train, cfg.version, clip)
        cond_dim = clip.config.embed_dim
    else:
        data, clip = shapes.ShapesDataset("train", n=cfg.n_train, version=cfg.version), None
        get_cond, cond_dim = make_condition_sampler("attributes", data.attrs), cfg.cond_dim
    model = ConditionalUNet(ConditionalConfig(unet_config(cond_dim, data.images.shape[-1]), cfg.condition,
                                              prediction_type=cfg.prediction_type))
    schedule = diffusion.cosine_schedule()
    images = data.images.to(device)

    def loss_fn(m, idx, gen):
        return conditional_loss(m, images[idx.to(device)], get_cond(idx, gen).to(device), schedule, cfg.p_uncond, gen)

    eval_cond = eval_attrs = None
    if eval_every:
        eval_cond, eval_attrs, _ = eval_conditions(cfg.condition, n_eval, clip, version=cfg.version)
    curve = Curve(cfg.steps, eval_every, lambda m: evaluate(m, schedule, eval_cond, eval_attrs, eval_scale,
                                                            device=device, version=cfg.version).as_dict())
    ema, losses = train(model, loss_fn, data.images, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        desc=f"text-conditional U-Net ({cfg.condition})", progress=progress, callback=curve)
    return Built(ema.module.eval(), {"loss": losses}, curve.train_seconds, curve.points, cfg)


def load_text_diffusion(
    profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP, version: str = "v2"
) -> ConditionalUNet:
    """The text-conditional U-Net of Shapes ``version`` trained on ``clip``'s text embeddings: yours of ``profile``
    (from lesson 05) if it is, else the course checkpoint if it is; a
    :class:`~dalle2_lessons.checkpoints.CheckpointError` if neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: ConditionalUNet(ConditionalConfig.from_dict(config)), profile, device,
                                  {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser(
        "Train the course's text-to-pixels U-Net, conditioned on the caption's CLIP text embedding, and save it.",
        "judge the model every N steps (the accuracy-vs-minutes curve)", 256,
        "test captions for the final guidance sweep and the DDPM/DDIM comparison", versioned=True)
    p.add_argument("--condition", default="clip", choices=("clip", "attributes"))
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: the profile's)")
    p.add_argument("--prediction-type", choices=("epsilon", "v_prediction"), default=None,
                   help="what the U-Net predicts (default epsilon)")
    args, cfg, clip, built = builders.run_builder(
        p, PRESETS, build, argv, needs_clip=lambda cfg: cfg.condition == "clip"
    )
    model = built.model
    schedule = diffusion.cosine_schedule()
    cond, attrs, _ = eval_conditions(cfg.condition, args.n_eval, clip, version=cfg.version)
    results = {}
    for scale in cfg.scales:
        results[f"ddim50_s{scale:g}"] = evaluate(model, schedule, cond, attrs, scale, version=cfg.version).as_dict()
        print(f"DDIM-50, guidance {scale:g}: {results[f'ddim50_s{scale:g}']}", flush=True)
    best, validation = pick_scale(model, clip, cfg.scales, condition=cfg.condition, version=cfg.version)
    print(f"guidance scale picked on validation captions (all right at each scale: {validation}): {best:g}")
    if cfg.condition == "clip":  # the lesson's DDIM-vs-DDPM target concerns the CLIP model (this takes the longest)
        t0 = time.perf_counter()
        results[f"ddpm1000_s{best:g}"] = evaluate(model, schedule, cond, attrs, best, steps=None,
                                                   version=cfg.version).as_dict()
        print(f"DDPM-1000, guidance {best:g}: {results[f'ddpm1000_s{best:g}']} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    rebuild = checkpoints.command("guidance", profile=args.profile, steps=args.steps,
                                  condition=cfg.condition if cfg.condition != "clip" else None,
                                  eval_every=args.eval_every, version=args.version, batch_size=args.batch_size,
                                  prediction_type=args.prediction_type)
    name = checkpoints.versioned(CHECKPOINT if cfg.condition == "clip" else f"{CHECKPOINT}-attributes", cfg.version)
    picked_on = (f"validation captions: guidance.pick_scale, {VALIDATION_N} full captions (guidance.VALIDATION_SEED), "
                 f"DDIM-{VALIDATION_STEPS}")
    builders.save_build(name, built, args, {"eval": results, "best_scale": best, "best_scale_validation": validation,
                                            "best_scale_on": picked_on}, rebuild,
                        parents={"clip": clip} if clip is not None else None)


if __name__ == "__main__":
    main()
