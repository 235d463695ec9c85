"""The unCLIP decoder (lesson 07): a diffusion U-Net that paints a 32×32 image (Shapes v2; v1: 16×16) from a CLIP
*image* embedding.

unCLIP (Ramesh et al. 2022, section 2.1) inverts CLIP's image encoder with a diffusion model: GLIDE's
U-Net, conditioned on the CLIP image embedding ``z_i`` in two ways, both reproduced here at toy size:

* ``z_i`` is projected and **added to the timestep embedding** (here it also scales and shifts each
  residual block's features, as in lesson 05);
* ``z_i`` is projected into **four extra context tokens**, placed in front of the caption's token
  features; the U-Net's attention layers attend to these tokens (pixels query, tokens answer).

The paper keeps GLIDE's caption pathway but found it helped little; we keep it as an option so the
lesson can measure that. For classifier-free guidance the decoder is trained with the image embedding
zeroed 10% of the time and the caption dropped 50% of the time; the null condition is both dropped.

Toy differences: 32×32 instead of 64×64, the course CLIP's per-token features stand in for GLIDE's own
text transformer, attention at 8×8 and 4×4 only, and the v2 network predicts the velocity v rather than the noise
(``prediction_type``; lesson 07 explains why: its backgrounds).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from . import builders, checkpoints, diffusion, judge, profiles, shapes, tokenizer
from .clip import CLIP, CaptionBank, caption_tokens, embed_images, encode_captions, load_clip
from .builders import Built
from .training import Curve, train
from .unet import UNet, UNetConfig, use_context_attention

CHECKPOINT = "decoder"
SCHEDULE = diffusion.cosine_schedule()  #: the noise schedule every decoder is trained and sampled with


@dataclass(frozen=True)
class DecoderConfig:
    """Everything needed to rebuild a :class:`Decoder` (stored in its checkpoint)."""

    unet: UNetConfig
    embed_dim: int = 64  #: size of CLIP's embedding space
    n_context: int = 4  #: context tokens made from the image embedding (the paper uses four)
    token_width: int = 128  #: width of the CLIP text encoder's per-token features
    caption: bool = True  #: whether the caption's tokens are context too (GLIDE's pathway, kept by unCLIP)
    prediction_type: str = "epsilon"  #: what the U-Net outputs: the noise ε, or the velocity v ("v_prediction")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DecoderConfig:
        return cls(UNetConfig.from_dict(d["unet"]), **{k: v for k, v in d.items() if k != "unet"})


def decoder_config(embed_dim: int = 64, context_dim: int = 128, caption: bool = True,
                   resolution: int = 16, prediction_type: str = "epsilon") -> DecoderConfig:
    """Lesson 05's U-Net (scale-shift, position embedding) with context tokens for its attention. At 32 px (Shapes
    v2) it has one more level, so that attention still runs on an 8×8 map, and fewer channels at full resolution,
    where a 2-core CPU spends most of its time."""
    if resolution == 16:
        unet = UNetConfig(cond_dim=embed_dim, scale_shift=True, position_embedding=True, context_dim=context_dim)
    else:
        unet = UNetConfig(resolution=resolution, base_channels=32, channel_mults=(1, 2, 3, 3), attention_levels=(2, 3),
                          cond_dim=embed_dim, scale_shift=True, position_embedding=True, context_dim=context_dim)
    return DecoderConfig(unet, embed_dim=embed_dim, caption=caption, prediction_type=prediction_type)


class Decoder(nn.Module):
    """``(x_t, t, z_image, tokens, token_mask)`` → predicted noise ``(B, 3, R, R)``.

    Args of :meth:`forward`:
        x_t: ``(B, 3, R, R)`` noisy images; ``t``: ``(B,)`` int64 timesteps.
        z_image: ``(B, D)`` unit-norm CLIP image embeddings (zeros: the null condition).
        tokens: ``(B, L, token_width)`` caption token features, or ``None`` for no caption.
        token_mask: ``(B, L)`` bool, True for tokens the decoder may see (all False: caption dropped).
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = c = config
        if c.unet.cond_dim != c.embed_dim or c.unet.context_dim is None:
            raise ValueError("the decoder's U-Net needs cond_dim = embed_dim and a context_dim")
        self.unet = UNet(c.unet)
        self.to_context = nn.Linear(c.embed_dim, c.n_context * c.unet.context_dim)
        self.caption_proj = nn.Linear(c.token_width, c.unet.context_dim) if c.caption else None

    def context(
        self, z: torch.Tensor, tokens: torch.Tensor | None, token_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens the attention layers see: ``(B, n_context [+ L], context_dim)`` and their mask."""
        b = len(z)
        ctx = self.to_context(z).view(b, self.config.n_context, -1)
        mask = torch.ones(b, self.config.n_context, dtype=torch.bool, device=z.device)
        if self.caption_proj is not None and tokens is not None:
            ctx = torch.cat([ctx, self.caption_proj(tokens)], dim=1)
            mask = torch.cat([mask, token_mask], dim=1)
        return ctx, mask

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z_image: torch.Tensor, tokens: torch.Tensor | None = None,
                token_mask: torch.Tensor | None = None) -> torch.Tensor:
        z = z_image * math.sqrt(self.config.embed_dim)  # unit vectors have entries ~±1/√D; scale them to ~±1
        ctx, mask = self.context(z, tokens, token_mask)
        return self.unet(x_t, t, z, ctx, mask)

    def config_dict(self) -> dict:
        return self.config.to_dict()


# ----------------------------------------------------------------------------------------------
# Training (two dropouts) and sampling (guidance against the fully dropped condition).


def drop_conditions(
    z_image: torch.Tensor, token_mask: torch.Tensor, p_image: float = 0.1, p_caption: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero each image embedding with probability ``p_image`` and hide each whole caption with
    probability ``p_caption``, independently (unCLIP: 10% and 50%)."""
    keep_z = torch.rand(len(z_image), generator=generator) >= p_image
    keep_c = torch.rand(len(z_image), generator=generator) >= p_caption
    return z_image * keep_z.to(z_image)[:, None], token_mask & keep_c.to(token_mask.device)[:, None]


def decoder_loss(
    decoder: Decoder, x0: torch.Tensor, z_image: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
    schedule: diffusion.NoiseSchedule, p_image: float = 0.1, p_caption: float = 0.5,
    generator: torch.Generator | None = None, drop_fn: Callable = drop_conditions,
) -> torch.Tensor:
    """Lesson 04's loss (ε, or v for a v-prediction decoder) with both conditions randomly dropped (``drop_fn``:
    :func:`drop_conditions`, or the learner's)."""
    z, mask = drop_fn(z_image, token_mask, p_image, p_caption, generator)
    return diffusion.diffusion_loss(lambda x_t, t: decoder(x_t, t, z, tokens, mask), x0, schedule, generator,
                                    decoder.config.prediction_type)


def guided_eps(decoder: Decoder, x, t, z_image, tokens, token_mask, scale: float,
               schedule: diffusion.NoiseSchedule | None = None) -> torch.Tensor:
    """``ε(∅) + s·(ε(z, caption) − ε(∅))`` in one batched call, where ∅ drops the embedding *and* the caption.

    A v-prediction decoder is guided on v and its ε returned (ε is affine in v at fixed x_t, so guiding either
    is the same), so that every sampler of :mod:`~dalle2_lessons.diffusion` drives both kinds unchanged."""
    null_mask = None if token_mask is None else torch.zeros_like(token_mask)  # every caption token hidden
    cond = (x, t, z_image, tokens, token_mask)
    out = diffusion.guide(decoder, cond, (x, t, torch.zeros_like(z_image), tokens, null_mask), scale)
    return diffusion.x0_and_eps(out, t, x, schedule or SCHEDULE, decoder.config.prediction_type)[1]


def eps_model(
    decoder: Decoder, z_image: torch.Tensor, tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
    scale: float = 3.0, schedule: diffusion.NoiseSchedule | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``(x_t, t) → ε`` function the samplers of :mod:`~dalle2_lessons.diffusion` call, for fixed conditions."""
    return lambda x, t: guided_eps(decoder, x, t, z_image, tokens, token_mask, scale, schedule)


#: Where the decoder's DDIM steps start (:func:`~dalle2_lessons.diffusion.ddim_timesteps`). With "leading" spacing
#: (t = 960 first for 25 steps) it drew the grey background on 98-100% of pictures whatever the embedding, because the
#: mean of x_960 still carries the picture's brightness in training and pure noise's mean reads as grey; "trailing"
#: (t = 999 first) drew grey on 48-50% of 64 test embeddings, as the renders have it (Lin et al. 2024).
SPACING: diffusion.Spacing = "trailing"


@torch.no_grad()
def sample(
    decoder: Decoder, z_image: torch.Tensor, tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
    schedule: diffusion.NoiseSchedule | None = None, scale: float = 3.0, steps: int = 50, eta: float = 0.0,
    generator: torch.Generator | None = None, x_T: torch.Tensor | None = None, progress: bool = False,  # noqa: N803
) -> torch.Tensor:
    """One image per image embedding ``(B, D)``: ``(B, 3, R, R)`` in [-1, 1] (DDIM with ``steps`` and ``eta``).

    Pass ``tokens``/``token_mask`` to also condition on the caption, ``x_T`` to fix the starting noise.
    """
    device = next(decoder.parameters()).device
    schedule = schedule or SCHEDULE
    z_image = z_image.to(device)
    if tokens is not None:
        tokens, token_mask = tokens.to(device), token_mask.to(device)
    r = decoder.config.unet.resolution
    fn = eps_model(decoder, z_image, tokens, token_mask, scale, schedule)
    return diffusion.sample_ddim(
        fn, (len(z_image), 3, r, r), schedule, steps, eta, generator, device, x_T=x_T, progress=progress,
        spacing=SPACING,
    ).cpu()


def reconstruct(decoder: Decoder, clip_model, images: torch.Tensor, scale: float = 3.0, steps: int = 50, seed: int = 0,
                batch_size: int = 256) -> torch.Tensor:
    """Encode real images with CLIP and decode their embeddings (no caption): ``(N, 3, R, R)``."""
    z = embed_images(clip_model, images)
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([sample(decoder, chunk, scale=scale, steps=steps, generator=gen) for chunk in z.split(batch_size)])


def evaluate(decoder: Decoder, clip_model, n: int, split: str = "test", scale: float = 3.0, steps: int = 50,
             caption: bool = False, seed: int = 0, version: str = "v2") -> judge.JudgeReport:
    """Reconstruct ``n`` fresh images of ``split`` from their CLIP embeddings and let the judge of ``version`` read
    the result against the *original* attributes (with ``caption``, the scene's full caption's tokens are given
    too)."""
    ds = shapes.ShapesDataset(split, n=n, resolution=decoder.config.unet.resolution, seed=seed + 1, version=version)
    z = embed_images(clip_model, ds.images)
    tokens = mask = None
    if caption:
        tokens_in = tokenizer.for_version(version).encode_batch(ds.scenes.full_captions)
        _, tokens, mask = encode_captions(clip_model, tokens_in)
    images = sample(decoder, z, tokens, mask, scale=scale, steps=steps, generator=torch.Generator().manual_seed(seed))
    return judge.load_judge("single", version=version).score(images, ds.attrs)


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class DecoderSettings:
    """Lesson 07 (and ``python -m dalle2_lessons.decoder``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16 in v1, 32×32 in v2) with their CLIP image embeddings and captions
    steps: int  #: optimiser steps of the decoder the lesson trains (the course checkpoint trained longer)
    batch_size: int
    lr: float
    n_eval: int  #: test images reconstructed per setting in the lesson's tables
    sample_steps: int = 50  #: DDIM steps of the lesson's reconstructions
    p_image: float = 0.1  #: how often the image embedding is zeroed in training (for guidance)
    p_caption: float = 0.5  #: how often the caption is dropped in training
    seed: int = 0
    version: str = "v2"  #: the Shapes version it learns from (v2: 32×32 images)
    prediction_type: str = "v_prediction"  #: what the U-Net learns to output ("epsilon": the v1 checkpoint)
    #: a saved decoder (``folder/name``, no suffix) to go on training instead of starting from random weights: a
    #: second warm-up and cosine decay, "more steps" without retraining the first ones (the course checkpoint's recipe)
    init: str | None = None


PRESETS: dict[str, DecoderSettings] = {
    "ci": DecoderSettings(n_train=2_000, steps=80, batch_size=32, lr=2e-3, n_eval=16, sample_steps=10),
    "cpu": DecoderSettings(n_train=20_000, steps=120, batch_size=64, lr=2e-3, n_eval=64, sample_steps=25),
    "gpu": DecoderSettings(n_train=20_000, steps=6_600, batch_size=128, lr=2e-3, n_eval=512),
}


# ----------------------------------------------------------------------------------------------
# The course checkpoint.


def train_decoder(cfg: DecoderSettings, images: torch.Tensor, z_images: torch.Tensor, bank: CaptionBank,
                  device: str | torch.device = "cpu", progress: bool = True,
                  callback: Callable | None = None, drop_fn: Callable = drop_conditions,
                  context_attention: Callable | None = None,
                  init: Decoder | None = None) -> tuple[Decoder, list[float]]:
    """Train a decoder from scratch to paint ``images`` ``(N, 3, R, R)`` in [-1, 1] from their CLIP image embeddings
    ``z_images`` ``(N, D)`` and the captions of the same ``N`` scenes in ``bank``, with ``cfg``. Returns
    ``(ema_decoder, losses)``: what lesson 07, the course checkpoint and lesson 14 (other data) all train with.
    ``drop_fn`` (see :func:`decoder_loss`) and ``context_attention`` (see :func:`~.unet.use_context_attention`;
    the returned decoder keeps it) are where lesson 07 puts the learner's functions. ``init``: a trained decoder to
    go on training (a copy; it is left as it is) instead of random weights."""
    profiles.seed_everything(cfg.seed)
    if init is not None:
        model = Decoder(init.config)
        model.load_state_dict(init.state_dict())
    else:
        model = Decoder(decoder_config(z_images.shape[-1], resolution=images.shape[-1],
                                       prediction_type=cfg.prediction_type))
    use_context_attention(model, context_attention)
    schedule = SCHEDULE
    images = images.to(device)

    def loss_fn(m, idx, gen):
        _, feats, mask = bank.random_paraphrase(idx, gen)
        return decoder_loss(m, images[idx.to(device)], z_images[idx].to(device), feats.to(device), mask.to(device),
                            schedule, cfg.p_image, cfg.p_caption, gen, drop_fn)

    ema, losses = train(model, loss_fn, images, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        desc="unCLIP decoder", progress=progress, callback=callback)
    return ema.module.eval(), losses


def build(cfg: DecoderSettings, device: str | torch.device = "cpu", *, clip: CLIP | None = None,
          eval_every: int | None = None, n_eval: int = 128, eval_scale: float = 3.0, progress: bool = True) -> Built:
    """The course decoder: :func:`train_decoder` on ``cfg.n_train`` Shapes scenes at the version's base resolution
    and ``clip``'s embeddings of them (default: the course CLIP). With ``eval_every``, the EMA model's reconstructions
    of ``n_eval`` test images are judged every so many steps (sampling time is not training time). With
    ``cfg.init``, training goes on from that saved decoder, which must have been trained on ``clip``."""
    clip = clip or load_clip(version=cfg.version)
    init = None
    if cfg.init is not None:
        saved = checkpoints.load_checkpoint(Path(cfg.init).name, Path(cfg.init).parent)
        wrong = checkpoints._mismatch(saved.meta, checkpoints._parent_shas({"clip": clip}))
        if wrong:  # its embeddings would mean something else to it
            raise checkpoints.CheckpointError(f"--init {cfg.init}: that decoder {wrong}; train on the CLIP it was "
                                              "trained on (--clip), or start afresh without --init")
        init = checkpoints.load_into(Decoder(DecoderConfig.from_dict(saved.config)), saved)
    data = shapes.ShapesDataset("train", n=cfg.n_train, version=cfg.version)
    z_images = embed_images(clip, data.images)
    tokens = caption_tokens(tokenizer.for_version(cfg.version), "single", data.attrs, data.scenes.mentions)
    bank = CaptionBank.build(clip, tokens)
    curve = Curve(cfg.steps, eval_every,
                  lambda m: evaluate(m, clip, n_eval, scale=eval_scale, version=cfg.version).as_dict())
    model, losses = train_decoder(cfg, data.images, z_images, bank, device, progress, curve, init=init)
    return Built(model, {"loss": losses}, curve.train_seconds, curve.points, cfg)


def load_decoder(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP,
                 version: str = "v2") -> Decoder:
    """The decoder trained on ``clip``'s embeddings: yours of ``profile`` (from lesson 07) if it is, else the course
    checkpoint of Shapes ``version`` if it is (eval mode); a :class:`~dalle2_lessons.checkpoints.CheckpointError` if
    neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: Decoder(DecoderConfig.from_dict(config)), profile, device,
                                  {"clip": clip})


def continued(init: str, command: str) -> tuple[str, dict]:
    """The rebuild command and record of a decoder trained by ``command`` from the saved decoder ``init``
    (``folder/name``): the command that built ``init``, writing it to that folder, then ``command``; and what ``init``
    was (its sha256, steps and training seconds), so the JSON says how many steps the decoder has had in all."""
    folder, name = Path(init).parent, Path(init).name
    first = checkpoints.read_meta(name, folder)
    record = {"sha256": first.get("sha256"), "steps": first["metrics"].get("steps"),
              "train_seconds": first["metrics"].get("train_seconds")}
    return f"{first['rebuild']} --out {folder} && {command}", record


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser(
        "Train the course's unCLIP decoder (CLIP image embedding → 32×32 image) and save it.",
        "judge reconstructions every N steps (the accuracy-vs-minutes curve)", 256,
        "images for the final reconstruction table", versioned=True)
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: the profile's)")
    p.add_argument("--prediction-type", choices=("epsilon", "v_prediction"), default=None,
                   help="what the U-Net predicts (default v_prediction)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the profile's)")
    p.add_argument("--seed", type=int, default=None, help="seed of the weights and batches (default 0)")
    p.add_argument("--init", default=None,
                   help="go on training this saved decoder (folder/name, no suffix) instead of starting afresh")
    args, cfg, clip, built = builders.run_builder(p, PRESETS, build, argv)
    model = built.model
    results = {}
    for split, scale, caption in [("test", 1.0, False), ("test", 2.0, False), ("test", 3.0, False),
                                  ("test", 5.0, False), ("test", 3.0, True), ("heldout", 3.0, False)]:
        key = f"{split}_s{scale:g}" + ("_caption" if caption else "")
        results[key] = evaluate(model, clip, args.n_eval, split, scale, caption=caption, version=cfg.version).as_dict()
        print(f"reconstruction {key}: {results[key]}", flush=True)
    rebuild = checkpoints.command("decoder", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version, batch_size=args.batch_size,
                                  prediction_type=args.prediction_type, lr=args.lr, seed=args.seed, init=args.init)
    record = {"eval": results, "n_eval": args.n_eval}
    if cfg.init is not None:
        rebuild, record["init"] = continued(cfg.init, rebuild)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, record, rebuild,
                        parents={"clip": clip})


if __name__ == "__main__":
    main()
