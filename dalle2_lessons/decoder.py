"""The unCLIP decoder (lesson 07): a diffusion U-Net that paints a 16×16 image from a CLIP *image* embedding.

unCLIP (Ramesh et al. 2022, section 2.1) inverts CLIP's image encoder with a diffusion model: GLIDE's
U-Net, conditioned on the CLIP image embedding ``z_i`` in two ways, both reproduced here at toy size:

* ``z_i`` is projected and **added to the timestep embedding** (here it also scales and shifts each
  residual block's features, as in lesson 05);
* ``z_i`` is projected into **four extra context tokens**, placed in front of the caption's token
  features; the U-Net's attention layers attend to these tokens (pixels query, tokens answer).

The paper keeps GLIDE's caption pathway but found it helped little; we keep it as an option so the
lesson can measure that. For classifier-free guidance the decoder is trained with the image embedding
zeroed 10% of the time and the caption dropped 50% of the time; the null condition is both dropped.

Toy differences: 16×16 instead of 64×64, the course CLIP's per-token features stand in for GLIDE's own
text transformer, and one attention level (4×4) instead of several.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from . import checkpoints, diffusion, judge, profiles, shapes, tokenizer
from .clip import CLIP, CaptionBank, builder_clip, caption_tokens, embed_images, encode_captions, load_clip
from .training import Curve, train
from .unet import UNet, UNetConfig

CHECKPOINT = "decoder"


@dataclass(frozen=True)
class DecoderConfig:
    """Everything needed to rebuild a :class:`Decoder` (stored in its checkpoint)."""

    unet: UNetConfig
    embed_dim: int = 64  #: size of CLIP's embedding space
    n_context: int = 4  #: context tokens made from the image embedding (the paper uses four)
    token_width: int = 128  #: width of the CLIP text encoder's per-token features
    caption: bool = True  #: whether the caption's tokens are context too (GLIDE's pathway, kept by unCLIP)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DecoderConfig:
        unet = {k: tuple(v) if isinstance(v, list) else v for k, v in d["unet"].items()}
        return cls(UNetConfig(**unet), **{k: v for k, v in d.items() if k != "unet"})


def decoder_config(embed_dim: int = 64, context_dim: int = 128, caption: bool = True) -> DecoderConfig:
    """Lesson 05's U-Net (scale-shift, position embedding) with context tokens for its attention."""
    unet = UNetConfig(cond_dim=embed_dim, scale_shift=True, position_embedding=True, context_dim=context_dim)
    return DecoderConfig(unet, embed_dim=embed_dim, caption=caption)


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

    def context(self, z: torch.Tensor, tokens: torch.Tensor | None, token_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
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
    schedule: diffusion.NoiseSchedule, p_image: float = 0.1, p_caption: float = 0.5, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Lesson 04's ε-prediction loss with both conditions randomly dropped."""
    z, mask = drop_conditions(z_image, token_mask, p_image, p_caption, generator)
    return diffusion.diffusion_loss(lambda x_t, t: decoder(x_t, t, z, tokens, mask), x0, schedule, generator)


def guided_eps(decoder: Decoder, x, t, z_image, tokens, token_mask, scale: float) -> torch.Tensor:
    """``ε(∅) + s·(ε(z, caption) − ε(∅))`` in one batched call, where ∅ drops the embedding *and* the caption."""
    if scale == 1.0:
        return decoder(x, t, z_image, tokens, token_mask)
    tokens2 = None if tokens is None else torch.cat([tokens, tokens])
    mask2 = None if token_mask is None else torch.cat([token_mask, torch.zeros_like(token_mask)])
    eps_c, eps_u = decoder(torch.cat([x, x]), torch.cat([t, t]), torch.cat([z_image, torch.zeros_like(z_image)]), tokens2, mask2).chunk(2)
    return eps_u + scale * (eps_c - eps_u)


def eps_model(decoder: Decoder, z_image: torch.Tensor, tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
              scale: float = 3.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``(x_t, t) → ε`` function the samplers of :mod:`~dalle2_lessons.diffusion` call, for fixed conditions."""
    return lambda x, t: guided_eps(decoder, x, t, z_image, tokens, token_mask, scale)


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
    schedule = schedule or diffusion.cosine_schedule()
    z_image = z_image.to(device)
    if tokens is not None:
        tokens, token_mask = tokens.to(device), token_mask.to(device)
    r = decoder.config.unet.resolution
    fn = eps_model(decoder, z_image, tokens, token_mask, scale)
    return diffusion.sample_ddim(fn, (len(z_image), 3, r, r), schedule, steps, eta, generator, device, x_T=x_T, progress=progress).cpu()


def reconstruct(decoder: Decoder, clip_model, images: torch.Tensor, scale: float = 3.0, steps: int = 50, seed: int = 0,
                batch_size: int = 256) -> torch.Tensor:
    """Encode real images with CLIP and decode their embeddings (no caption): ``(N, 3, R, R)``."""
    z = embed_images(clip_model, images)
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([sample(decoder, chunk, scale=scale, steps=steps, generator=gen) for chunk in z.split(batch_size)])


def evaluate(decoder: Decoder, clip_model, n: int, split: str = "test", scale: float = 3.0, steps: int = 50,
             caption: bool = False, seed: int = 0) -> judge.JudgeReport:
    """Reconstruct ``n`` fresh images of ``split`` from their CLIP embeddings and let the judge read the
    result against the *original* attributes (with ``caption``, the caption's tokens are given too)."""
    ds = shapes.ShapesDataset(split, n=n, resolution=decoder.config.unet.resolution, seed=seed + 1)
    z = embed_images(clip_model, ds.images)
    tokens = mask = None
    if caption:
        _, tokens, mask = encode_captions(clip_model, tokenizer.Tokenizer().encode_batch(ds.captions))
    images = sample(decoder, z, tokens, mask, scale=scale, steps=steps, generator=torch.Generator().manual_seed(seed))
    return judge.load_judge("single").score(images, ds.attrs)


# ----------------------------------------------------------------------------------------------
# The course checkpoint.


def build(profile_name: str, steps: int | None = None, device: str | torch.device = "cpu", progress: bool = True,
          eval_every: int | None = None, n_eval: int = 128, eval_scale: float = 3.0,
          clip_model: CLIP | None = None) -> tuple[Decoder, list[float], float, list[dict]]:
    """Train the decoder with a profile's settings (``steps`` overrides) on ``clip_model``'s image embeddings
    (default: the course CLIP). With ``eval_every``, the EMA
    model's reconstructions of ``n_eval`` test images are judged every so many steps (sampling time is not
    training time). Returns ``(ema_decoder, losses, train_seconds, curve)``."""
    s = profiles.get_profile(profile_name).decoder
    steps = steps or s.steps
    profiles.seed_everything(s.seed)
    data = shapes.ShapesDataset("train", n=s.n_train, resolution=16)
    clip_model = clip_model or load_clip()
    z_images = embed_images(clip_model, data.images)
    bank = CaptionBank.build(clip_model, caption_tokens(tokenizer.Tokenizer(), "single", data.attrs))
    model = Decoder(decoder_config(z_images.shape[-1]))
    schedule = diffusion.cosine_schedule()
    images = data.images.to(device)

    def loss_fn(m, idx, gen):
        _, feats, mask = bank.random_paraphrase(idx, gen)
        return decoder_loss(m, images[idx.to(device)], z_images[idx].to(device), feats.to(device), mask.to(device),
                            schedule, s.p_image, s.p_caption, gen)

    curve = Curve(steps, eval_every, lambda m: evaluate(m, clip_model, n_eval, scale=eval_scale).as_dict())
    ema, losses = train(model, loss_fn, data.images, steps, s.batch_size, s.lr, seed=s.seed, device=device,
                        desc="unCLIP decoder", progress=progress, callback=curve)
    seconds, curve = curve.train_seconds, curve.points
    return ema.module, losses, seconds, curve


def load_decoder(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP) -> Decoder:
    """The decoder trained on ``clip``'s embeddings: yours of ``profile`` (from lesson 07) if it is, else the course
    checkpoint if it is (eval mode); a :class:`~dalle2_lessons.checkpoints.CheckpointError` if neither."""
    return checkpoints.load_model(CHECKPOINT, lambda config: Decoder(DecoderConfig.from_dict(config)), profile, device, {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = checkpoints.build_parser(
        "Train the course's unCLIP decoder (CLIP image embedding → 16×16 image) and save it.",
        "judge reconstructions every N steps (the accuracy-vs-minutes curve)", 256, "images for the final reconstruction table")
    args = p.parse_args(argv)
    clip_model = builder_clip(args)
    model, losses, seconds, curve = build(args.profile, args.steps, args.device, eval_every=args.eval_every, clip_model=clip_model)
    model.cpu()
    s = profiles.get_profile(args.profile).decoder
    results = {}
    for split, scale, caption in [("test", 1.0, False), ("test", 2.0, False), ("test", 3.0, False), ("test", 5.0, False),
                                  ("test", 3.0, True), ("heldout", 3.0, False)]:
        key = f"{split}_s{scale:g}" + ("_caption" if caption else "")
        results[key] = evaluate(model, clip_model, args.n_eval, split, scale, caption=caption).as_dict()
        print(f"reconstruction {key}: {results[key]}", flush=True)
    rebuild = checkpoints.command("decoder", profile=args.profile, steps=args.steps, eval_every=args.eval_every)
    checkpoints.save_build(CHECKPOINT, model, args, {"eval": results}, losses, seconds, curve, args.steps or s.steps, rebuild,
                           parents={"clip": clip_model})


if __name__ == "__main__":
    main()
