"""A GLIDE-like text-to-image diffusion model, the baseline unCLIP is measured against (issue #22, lesson 15).

GLIDE (Nichol et al. 2022) reads the caption with **its own text transformer**, trained with the diffusion model, and
hands the result to the U-Net in two ways:

* the transformer's output at the **final token** is projected and added to the timestep embedding (here: the
  U-Net's ``cond``, which also scales and shifts each residual block, as in lesson 05);
* **every token's** output is attention context in the U-Net's attention layers (pixels query, tokens answer), so a
  word can steer the part of the picture it is about.

That is what lets GLIDE bind attributes to objects better than unCLIP, whose decoder sees the caption only through
one 64-number CLIP embedding (the paper's Figs. 14-15); it also keeps every token's information, so under guidance
it may give up diversity that unCLIP keeps (its Fig. 9). The course's other text-to-pixels model
(:mod:`~dalle2_lessons.guidance`, lesson 05) reads only the pooled CLIP text embedding: unCLIP's bottleneck without
its prior, so it cannot show either effect. This one can.

Classifier-free guidance as in GLIDE: the caption is replaced by the **empty caption** (``<start> <end>``) 10% of the
time in training, and sampling mixes the two predictions. Toy differences: 32×32 (Shapes v2's base resolution; the
course upsampler takes it to 64×64), a 3-block transformer of width 128, v-prediction (lesson 07) and trailing DDIM
spacing (lesson 04), like the unCLIP decoder it is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn

from . import builders, checkpoints, diffusion, judge, profiles, shapes, tokenizer
from .builders import Built
from .clip import caption_tokens
from .training import Curve, train
from .transformer import Block
from .unet import UNet, UNetConfig

CHECKPOINT = "glide"
SCHEDULE = diffusion.cosine_schedule()  #: the noise schedule it is trained and sampled with
SPACING: diffusion.Spacing = "trailing"  #: as the decoder's (lesson 04: leading spacing collapses the background)


@dataclass(frozen=True)
class GlideConfig:
    """Everything needed to rebuild a :class:`Glide` (stored in its checkpoint)."""

    unet: UNetConfig
    vocab_size: int
    context_length: int
    pad_id: int  #: the tokenizer's ``<pad>``: hidden from attention
    start_id: int
    end_id: int  #: the final token, whose output is added to the timestep embedding
    width: int = 128  #: the text transformer's width (= the U-Net's ``cond_dim`` and ``context_dim``)
    depth: int = 3
    heads: int = 4
    prediction_type: str = "v_prediction"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GlideConfig:
        return cls(UNetConfig.from_dict(d["unet"]), **{k: v for k, v in d.items() if k != "unet"})


def glide_config(tok: tokenizer.Tokenizer, resolution: int = 32, width: int = 128, depth: int = 3) -> GlideConfig:
    """The unCLIP decoder's U-Net at ``resolution`` (lesson 07: attention on the 8×8 and 4×4 maps) with the text
    transformer's width as its condition and context width."""
    unet = UNetConfig(resolution=resolution, base_channels=32, channel_mults=(1, 2, 3, 3), attention_levels=(2, 3),
                      cond_dim=width, scale_shift=True, position_embedding=True, context_dim=width)
    return GlideConfig(unet, tok.vocab_size, tok.context_length, tok.pad_id, tok.start_id, tok.end_id, width, depth)


class TextTransformer(nn.Module):
    """``(B, L)`` token ids → ``(features (B, L, W), final (B, W))``: every token's output and the output at the
    ``<end>`` token. Bidirectional self-attention over the caption's tokens (padding hidden)."""

    def __init__(self, c: GlideConfig):
        super().__init__()
        self.config = c
        self.token_embedding = nn.Embedding(c.vocab_size, c.width)
        self.position_embedding = nn.Parameter(torch.randn(c.context_length, c.width) * 0.02)
        self.blocks = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.depth))
        self.ln_final = nn.LayerNorm(c.width)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = tokens != self.config.pad_id  # (B, L)
        x = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x, mask=keep[:, None, None, :])  # every query may look at every real token
        x = self.ln_final(x)
        end = (tokens == self.config.end_id).float().argmax(dim=1)  # each caption has exactly one <end>
        return x, x[torch.arange(len(x)), end]


class Glide(nn.Module):
    """``(x_t, t, tokens)`` → the U-Net's prediction ``(B, 3, R, R)`` (v, or ε for ``prediction_type="epsilon"``).

    Args of :meth:`forward`: ``x_t`` ``(B, 3, R, R)`` noisy images; ``t`` ``(B,)`` int64 timesteps; ``tokens``
    ``(B, L)`` int64 caption ids from the course tokenizer (:meth:`empty_caption` for the unconditional branch).
    """

    def __init__(self, config: GlideConfig):
        super().__init__()
        self.config = config
        self.text = TextTransformer(config)
        self.unet = UNet(config.unet)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        features, final = self.text(tokens)
        return self.unet(x_t, t, final, features, tokens != self.config.pad_id)

    def empty_caption(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(n, L)`` ids of the empty caption ``<start> <end>``: GLIDE's unconditional input."""
        c = self.config
        out = torch.full((n, c.context_length), c.pad_id, dtype=torch.long, device=device)
        out[:, 0], out[:, 1] = c.start_id, c.end_id
        return out

    def config_dict(self) -> dict:
        return self.config.to_dict()


def drop_captions(model: Glide, tokens: torch.Tensor, p_uncond: float = 0.1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each caption ``(B, L)`` by the empty caption with probability ``p_uncond`` (GLIDE: 20%; unCLIP's
    decoder drops its caption 50% of the time but keeps the image embedding for 90%)."""
    drop = (torch.rand(len(tokens), generator=generator) < p_uncond).to(tokens.device)
    return torch.where(drop[:, None], model.empty_caption(len(tokens), tokens.device), tokens)


def glide_loss(model: Glide, x0: torch.Tensor, tokens: torch.Tensor, schedule: diffusion.NoiseSchedule,
               p_uncond: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lesson 04's loss (on v for a v-prediction model) with the caption sometimes emptied, for guidance."""
    tokens = drop_captions(model, tokens, p_uncond, generator)
    return diffusion.diffusion_loss(lambda x_t, t: model(x_t, t, tokens), x0, schedule, generator,
                                    model.config.prediction_type)


def eps_model(model: Glide, tokens: torch.Tensor, scale: float = 3.0,
              schedule: diffusion.NoiseSchedule | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``(x_t, t) → ε`` function the samplers call: ``out(∅) + s·(out(caption) − out(∅))`` in one batched call,
    turned into ε (guiding v or ε is the same: ε is affine in v at fixed x_t)."""
    empty = model.empty_caption(len(tokens), tokens.device)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = diffusion.guide(model, (x, t, tokens), (x, t, empty), scale)
        return diffusion.x0_and_eps(out, t, x, schedule or SCHEDULE, model.config.prediction_type)[1]

    return fn


@torch.no_grad()
def sample(model: Glide, tokens: torch.Tensor, scale: float = 3.0, steps: int = 25, eta: float = 0.0,
           generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,  # noqa: N803
           progress: bool = False) -> torch.Tensor:
    """One image per caption ``(B, L)``: ``(B, 3, R, R)`` in [-1, 1], DDIM with ``steps``, ``eta`` and guidance
    ``scale`` (trailing spacing)."""
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    r = model.config.unet.resolution
    return diffusion.sample_ddim(eps_model(model, tokens, scale), (len(tokens), 3, r, r), SCHEDULE, steps, eta,
                                 generator, device, x_T=x_T, progress=progress, spacing=SPACING).cpu()


def evaluate(model: Glide, n: int, split: str = "test", scale: float = 3.0, steps: int = 25, seed: int = 0,
             version: str = "v2") -> judge.JudgeReport:
    """Draw one picture for each of ``n`` fresh ``split`` scenes' full captions; the strict judge reads them (the
    pictures are enlarged to its 64 px) against the scenes' attributes."""
    scenes = shapes.sample_scenes(n, split, "single", seed=seed + 1, version=version)
    tokens = tokenizer.for_version(version).encode_batch(scenes.full_captions)
    images = sample(model, tokens, scale, steps, generator=torch.Generator().manual_seed(seed))
    return judge.load_judge("single", version=version).score(images, torch.as_tensor(scenes.attrs))


# ----------------------------------------------------------------------------------------------
# Settings, training and the course checkpoint.


@dataclass(frozen=True)
class GlideSettings:
    """``python -m dalle2_lessons.glide`` (the capstone lesson loads the course checkpoint)."""

    n_train: int  #: training scenes (32×32), each with every paraphrase of its caption, full and partial
    steps: int
    batch_size: int
    lr: float
    n_eval: int = 128
    sample_steps: int = 25
    p_uncond: float = 0.1
    seed: int = 0
    version: str = "v2"


PRESETS: dict[str, GlideSettings] = {
    "ci": GlideSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_eval=16, sample_steps=10),
    "cpu": GlideSettings(n_train=20_000, steps=300, batch_size=64, lr=2e-3, n_eval=64),
    "gpu": GlideSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=512),
}


def train_glide(cfg: GlideSettings, images: torch.Tensor, tokens: torch.Tensor, device: str | torch.device = "cpu",
                progress: bool = True, callback: Callable | None = None) -> tuple[Glide, list[float]]:
    """Train from scratch on ``images`` ``(N, 3, R, R)`` in [-1, 1] and every paraphrase of their captions, ``tokens``
    ``(N, n_templates, L)`` (one drawn at random per image and step). Returns ``(ema_model, losses)``."""
    profiles.seed_everything(cfg.seed)
    model = Glide(glide_config(tokenizer.for_version(cfg.version), images.shape[-1]))
    images, tokens = images.to(device), tokens.to(device)

    def loss_fn(m, idx, gen):
        idx = idx.to(device)
        which = torch.randint(tokens.shape[1], (len(idx),), generator=gen).to(device)
        return glide_loss(m, images[idx], tokens[idx, which], SCHEDULE, cfg.p_uncond, gen)

    ema, losses = train(model, loss_fn, images, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        desc="GLIDE-like", progress=progress, callback=callback)
    return ema.module.eval(), losses


def step_seconds(clip_model, n_steps: int = 6, device: str | torch.device = "cpu",
                 batch_sizes: tuple[int, int, int] = (256, 64, 64)) -> dict[str, float]:
    """Seconds per optimiser step of unCLIP's prior and decoder and of this model, measured here, one after another,
    with the trainers that built their course checkpoints and those checkpoints' batch sizes (prior, decoder, GLIDE),
    on 512 training scenes (a step's cost does not depend on how many there are). The median over ``n_steps`` steps
    after the first: the first pays for allocations that the rest reuse."""
    from . import decoder, prior  # both import what this module does; importing them here keeps glide light
    from .clip_embeddings import CaptionBank, embed_images

    data = shapes.ShapesDataset("train", n=512)
    tokens = caption_tokens(tokenizer.for_version("v2"), "single", data.attrs, data.scenes.mentions)
    bank = CaptionBank.build(clip_model, tokens)
    z = embed_images(clip_model, data.images)

    def median_step(run: Callable[[Callable], object]) -> float:
        stamps: list[float] = []
        run(lambda step, ema: stamps.append(time.perf_counter()))
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
        return gaps[len(gaps) // 2]

    p_cfg, d_cfg, g_cfg = (replace(presets["cpu"], steps=n_steps + 1, batch_size=b)
                           for presets, b in zip((prior.PRESETS, decoder.PRESETS, PRESETS), batch_sizes, strict=True))
    return {"prior": median_step(lambda cb: prior.train_prior(p_cfg, z, bank, device, False, cb)),
            "decoder": median_step(lambda cb: decoder.train_decoder(d_cfg, data.images, z, bank, device, False, cb)),
            "glide": median_step(lambda cb: train_glide(g_cfg, data.images, tokens, device, False, cb))}


def matched_steps(seconds: dict[str, float], prior_steps: int, decoder_steps: int) -> int:
    """The GLIDE-like model's steps that cost what ``prior_steps`` of the prior and ``decoder_steps`` of the decoder
    cost together, at :func:`step_seconds`' ``seconds`` per step."""
    return round((prior_steps * seconds["prior"] + decoder_steps * seconds["decoder"]) / seconds["glide"])


def build(cfg: GlideSettings, device: str | torch.device = "cpu", *, clip: object = None,
          eval_every: int | None = None, n_eval: int = 128, progress: bool = True) -> Built:
    """The course model: :func:`train_glide` on ``cfg.n_train`` Shapes scenes at the version's base resolution (``clip``
    is ignored: GLIDE reads the caption with its own transformer). With ``eval_every``, the EMA model's samples for
    ``n_eval`` test captions are judged every so many steps."""
    data = shapes.ShapesDataset("train", n=cfg.n_train, version=cfg.version)
    tokens = caption_tokens(tokenizer.for_version(cfg.version), "single", data.attrs, data.scenes.mentions)
    curve = Curve(cfg.steps, eval_every,
                  lambda m: evaluate(m, n_eval, steps=cfg.sample_steps, version=cfg.version).as_dict())
    model, losses = train_glide(cfg, data.images, tokens, device, progress, curve)
    return Built(model, {"loss": losses}, curve.train_seconds, curve.points, cfg)


def load_glide(profile: str | None = None, device: str | torch.device = "cpu", version: str = "v2") -> Glide:
    """Your GLIDE-like model of ``profile`` if you trained one, else the course checkpoint (eval mode); a
    :class:`~dalle2_lessons.checkpoints.CheckpointError` naming the command that builds it if neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: Glide(GlideConfig.from_dict(config)), profile, device)


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser("Train the course's GLIDE-like text-to-image baseline (caption → 32×32) and save it.",
                              "judge samples for test captions every N steps", 256,
                              "test captions for the final table", versioned=True)
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: the profile's)")
    args, cfg, _, built = builders.run_builder(p, PRESETS, build, argv, needs_clip=lambda cfg: False)
    results = {f"test_s{s:g}": evaluate(built.model, args.n_eval, scale=s, version=cfg.version).as_dict()
               for s in (1.0, 3.0)}
    print(results, flush=True)
    rebuild = checkpoints.command("glide", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version, batch_size=args.batch_size)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, {"eval": results}, rebuild)


if __name__ == "__main__":
    main()
