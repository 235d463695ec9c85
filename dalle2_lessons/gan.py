"""A conditional GAN: the second "wrong answer" of the family tree (lesson 11).

Articles that call DALL·E 2 a GAN often show a discriminator that cannot work (a Keras ``Model(x, x)``
that maps the image to itself). A real one is a classifier: real (image, caption) pairs versus the
generator's. The two networks play a game (Goodfellow et al., 2014):

* generator ``G(z, c)``: noise ``z`` and the caption's CLIP text embedding ``c`` → an image at the Shapes version's
  base resolution (16×16 in v1, 32×32 in v2)
  in DCGAN's style (Radford et al., 2016: transposed convolutions, BatchNorm, ReLU, a final tanh);
* discriminator ``D(x, c)``: a CNN that scores how real the pair looks, conditioned by *projection*
  (Miyato & Koyama, 2018): ``D(x, c) = w·φ(x) + (V c)·φ(x)``, so a real picture with the wrong caption
  scores low too;
* losses on the logits ``D(x, c)`` (no sigmoid inside the network):

  - **non-saturating** (the original paper's practical choice):
    ``L_D = softplus(−D(real)) + softplus(D(fake))``, ``L_G = softplus(−D(fake))``;
  - **hinge** (a common stabiliser, used with spectral normalisation in SN-GAN and BigGAN):
    ``L_D = relu(1 − D(real)) + relu(1 + D(fake))``, ``L_G = −D(fake)``.

  ``softplus(−s) = −log σ(s)``, so the non-saturating losses are the binary cross-entropies written on
  logits, which is numerically safe.

The stabiliser the lesson adds is **spectral normalisation** of the discriminator's layers (Miyato et
al., 2018, ``torch.nn.utils.parametrizations.spectral_norm``) together with the hinge loss.

Two options give the GAN the training care the course's other families get (issue #23): an exponential moving
average of the generator (``ema_decay``; BigGAN and StyleGAN sample from one) and the course's warm-up and cosine
learning-rate decay (``lr_schedule="cosine"``). Both course checkpoints were trained without: retrained with both
(``--ema-decay 0.999 --lr-schedule cosine``, 2000 steps), ``gan-v2`` drew fewer readable pictures, not more, so the
shipped one stayed; lesson 11 leaves the experiment to the learner.

The commands that rebuild the course checkpoints are in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS` (the
lesson's runs in the ``cpu`` profile are much shorter; it studies ``gan-v2`` for what needs a trained GAN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import builders, checkpoints, judge, profiles
from .clip import CLIP
from .guidance import eval_conditions, judge_caption_samples, paraphrase_training_set
from .builders import Built
from .training import Curve, ema_update, warmup_cosine

CHECKPOINT = "gan"
LOSSES = ("non-saturating", "hinge")


@dataclass(frozen=True)
class GANConfig:
    """Everything needed to rebuild a :class:`Generator` (stored in the checkpoint's JSON)."""

    cond_dim: int = 64
    latent_dim: int = 32
    width: int = 64
    resolution: int = 16


class Generator(nn.Module):
    """``G(z, c)``: ``(B, latent_dim)`` noise and ``(B, cond_dim)`` conditions → ``(B, 3, R, R)`` in [-1, 1]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = c = config
        w, g = c.width, c.resolution // 4
        self.project = nn.Sequential(
            nn.Linear(c.latent_dim + c.cond_dim, 2 * w * g * g), nn.Unflatten(1, (2 * w, g, g)),
            nn.BatchNorm2d(2 * w), nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),  # R/4 → R/2
            nn.ConvTranspose2d(w, w // 2, 4, 2, 1), nn.BatchNorm2d(w // 2), nn.ReLU(),  # R/2 → R
            nn.Conv2d(w // 2, 3, 3, 1, 1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # a unit-norm CLIP embedding has entries of about 1/√cond_dim; scaled by √cond_dim they are as large
        # as z's, so the caption is not drowned by the noise at the start of training
        return self.net(self.project(torch.cat([z, c * self.config.cond_dim**0.5], dim=1)))

    @torch.no_grad()
    def sample(self, c: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One image per condition ``(B, cond_dim)`` with fresh noise: ``(B, 3, R, R)`` on the CPU (eval mode)."""
        self.eval()
        device = next(self.parameters()).device
        z = torch.randn(len(c), self.config.latent_dim, generator=generator).to(device)
        return self(z, c.to(device)).cpu()

    def config_dict(self) -> dict:
        return asdict(self.config)


class Discriminator(nn.Module):
    """``D(x, c)``: ``(B, 3, R, R)`` images and ``(B, cond_dim)`` conditions → ``(B,)`` logits (real > 0)."""

    def __init__(self, config: GANConfig, use_spectral_norm: bool = True):
        super().__init__()
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        w = config.width
        self.features = nn.Sequential(
            sn(nn.Conv2d(3, w // 2, 3, 1, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(w // 2, w, 4, 2, 1)), nn.LeakyReLU(0.2),  # R → R/2
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2),  # R/2 → R/4
            nn.Flatten(),
        )  # fmt: skip
        n = 2 * w * (config.resolution // 4) ** 2
        self.to_feature = sn(nn.Linear(n, 4 * w))
        self.real_score = sn(nn.Linear(4 * w, 1))
        self.embed_condition = nn.Linear(config.cond_dim, 4 * w, bias=False)  # V, not normalised: it only reads c
        self.cond_scale = config.cond_dim**0.5

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.to_feature(self.features(x)), 0.2)  # (B, 4w): φ(x)
        # w·φ(x) + (Vc)·φ(x)
        return self.real_score(h).squeeze(1) + (self.embed_condition(c * self.cond_scale) * h).sum(1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The discriminator's loss on ``(B,)`` logits of real and generated pairs (a scalar, mean over the batch)."""
    if kind == "non-saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The generator's loss on ``(B,)`` logits of its own pairs (a scalar)."""
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")


def train_gan(
    gen: Generator, disc: Discriminator, images: torch.Tensor, get_cond, steps: int, batch_size: int = 128,
    lr: float = 2e-4, loss: str = "hinge", seed: int = 0, device: str | torch.device = "cpu",
    progress: bool = True, callback=None, desc: str = "GAN", ema_decay: float = 0.0, lr_schedule: str = "constant",
    d_loss_fn: Callable[..., torch.Tensor] | None = None, g_loss_fn: Callable[..., torch.Tensor] | None = None,
) -> tuple[Generator, dict[str, list[float]]]:
    """Alternate one discriminator step and one generator step, ``steps`` times (Adam, β = (0.5, 0.999)).

    Args:
        images: ``(N, 3, R, R)`` real images in [-1, 1]; get_cond: ``(indices, generator) → (B, cond_dim)``.
        callback: ``callback(step, generator)`` after every step with the generator to sample from (e.g. a
            :class:`~dalle2_lessons.training.Curve`).
        ema_decay: > 0 keeps an exponential moving average of the generator's weights and BatchNorm statistics
            (as the course's diffusion models do, and as BigGAN and StyleGAN sample from); 0 samples the last step.
        lr_schedule: ``"constant"`` (DCGAN's), or ``"cosine"`` (the course's warm-up and cosine decay, both players).
        d_loss_fn, g_loss_fn: the two losses, ``(real_logits, fake_logits, kind)`` and ``(fake_logits, kind)`` →
            a scalar (default :func:`discriminator_loss`, :func:`generator_loss`; lesson 11 passes the learner's).
    Returns:
        ``(generator to sample from, log)``: the EMA copy (or ``gen`` itself without EMA), in eval mode; the log is
        per step ``{"d_loss", "g_loss", "d_real", "d_fake"}``: the two losses and the discriminator's mean
        probability that real and generated pairs are real.
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    d_loss_fn, g_loss_fn = d_loss_fn or discriminator_loss, g_loss_fn or generator_loss
    g = torch.Generator().manual_seed(seed)
    gen.to(device).train()
    disc.to(device).train()
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    schedules = ([torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps)) for opt in (opt_g, opt_d)]
                 if lr_schedule == "cosine" else [])
    # BatchNorm's running statistics are buffers: average them too, or the EMA copy keeps its initial ones
    ema = AveragedModel(gen, avg_fn=ema_update(ema_decay), use_buffers=True) if ema_decay > 0 else None
    log: dict[str, list[float]] = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": []}
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        idx = torch.randint(len(images), (batch_size,), generator=g)
        real, c = images[idx].to(device), get_cond(idx, g).to(device)
        z = torch.randn(batch_size, gen.config.latent_dim, generator=g).to(device)
        fake = gen(z, c)
        # the discriminator learns on a detached fake: its step must not move the generator
        real_logits, fake_logits = disc(real, c), disc(fake.detach(), c)
        d_loss = d_loss_fn(real_logits, fake_logits, loss)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = g_loss_fn(disc(fake, c), loss)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for sched in schedules:
            sched.step()
        if ema is not None:
            ema.update_parameters(gen)
        log["d_loss"].append(d_loss.item())
        log["g_loss"].append(g_loss.item())
        log["d_real"].append(torch.sigmoid(real_logits).mean().item())
        log["d_fake"].append(torch.sigmoid(fake_logits).mean().item())
        if (step + 1) % 25 == 0:
            bar.set_postfix(d=f"{sum(log['d_loss'][-25:]) / 25:.3f}", g=f"{sum(log['g_loss'][-25:]) / 25:.3f}")
        if callback is not None:
            callback(step + 1, gen if ema is None else ema.module)
    sampler = gen if ema is None else ema.module
    return sampler.eval(), log


@torch.no_grad()
def evaluate(gen: Generator, cond: torch.Tensor, attrs: torch.Tensor, seed: int = 0,
             version: str = "v2") -> judge.JudgeReport:
    """One sample per condition, read by the judge of Shapes ``version``."""
    images = gen.sample(cond, torch.Generator().manual_seed(seed))
    return judge.load_judge("single", version=version).score(images, attrs)


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class GANSettings:
    """Lesson 11 (and ``python -m dalle2_lessons.gan``, which builds the course checkpoint)."""

    n_train: int  #: training images (the version's base resolution: 16×16 in v1, 32×32 in v2) with their captions
    steps: int  #: alternating discriminator + generator steps
    batch_size: int
    lr: float
    n_eval: int  #: test / held-out captions judged per table row
    latent_dim: int = 32
    loss: str = "hinge"  #: "hinge" or "non-saturating"
    spectral_norm: bool = True  #: spectral normalisation of the discriminator's layers (the stabiliser)
    ema_decay: float = 0.0  #: > 0: sample from an EMA of the generator (0: the last step's weights, as DCGAN)
    lr_schedule: str = "constant"  #: "constant" (DCGAN) or "cosine" (warm-up and cosine decay, both players)
    version: str = "v2"  #: the Shapes version it learns from (v2: 32×32 images, captions that leave things out)
    seed: int = 0
    card_captions: int = 2  #: captions per kind in lesson 11's scorecard (each drawn 16 times)
    seeds: tuple[int, ...] = (0, 1, 2)  #: evaluation seeds of the scorecard (95% intervals over them)


PRESETS: dict[str, GANSettings] = {
    "ci": GANSettings(n_train=2_000, steps=12, batch_size=32, lr=2e-4, n_eval=32, card_captions=1),
    # a GAN step at 32×32 costs about a second on two cores: the lesson's runs show the game, not a trained GAN
    "cpu": GANSettings(n_train=20_000, steps=200, batch_size=64, lr=2e-4, n_eval=256, card_captions=8),
    "gpu": GANSettings(n_train=20_000, steps=15_000, batch_size=128, lr=2e-4, n_eval=1_000, card_captions=16),
}


def build(cfg: GANSettings, device: str | torch.device = "cpu", *, clip: CLIP | None = None,
          eval_every: int | None = None, n_eval: int = 256, progress: bool = True,
          d_loss_fn: Callable[..., torch.Tensor] | None = None,
          g_loss_fn: Callable[..., torch.Tensor] | None = None) -> Built:
    """Train a conditional GAN with ``cfg`` (its ``loss``, ``spectral_norm`` and ``lr`` are the knobs lesson 11
    turns), conditioned on ``clip``'s text embeddings (default: the course CLIP), with the losses ``d_loss_fn`` and
    ``g_loss_fn`` (default: this module's; see :func:`train_gan`). ``Built.model`` is the generator to sample from,
    ``Built.losses`` the per-step log of :func:`train_gan` (``"loss"``: the generator's); the curve judges ``n_eval``
    test captions every ``eval_every`` steps (judging time is not counted as training time)."""
    profiles.seed_everything(cfg.seed)
    data, clip, get_cond = paraphrase_training_set(cfg.n_train, cfg.version, clip)
    config = GANConfig(latent_dim=cfg.latent_dim, resolution=data.resolution)
    gen = Generator(config)
    disc = Discriminator(config, cfg.spectral_norm)
    eval_cond, eval_attrs, _ = eval_conditions("clip", n_eval, clip, version=cfg.version)
    curve = Curve(cfg.steps, eval_every, lambda m: evaluate(m, eval_cond, eval_attrs, version=cfg.version).as_dict())
    sampler, log = train_gan(gen, disc, data.images, get_cond, cfg.steps, cfg.batch_size, cfg.lr, cfg.loss, cfg.seed,
                             device, progress, callback=curve, desc=f"GAN ({cfg.loss})", ema_decay=cfg.ema_decay,
                             lr_schedule=cfg.lr_schedule, d_loss_fn=d_loss_fn, g_loss_fn=g_loss_fn)
    return Built(sampler, {"loss": log["g_loss"], **log}, curve.train_seconds, curve.points, cfg)


def load_gan(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP,
             version: str = "v2") -> Generator:
    """The generator of Shapes ``version`` conditioned on ``clip``'s text embeddings: yours of ``profile`` (from
    lesson 11) if it is, else the course checkpoint if it is (eval mode); a
    :class:`~dalle2_lessons.checkpoints.CheckpointError` if neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: Generator(GANConfig(**config)), profile, device, {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser(
        "Train the course's conditional GAN (hinge loss, spectral norm) and save its generator.",
        "judge the generator every N steps (the accuracy-vs-minutes curve)", 512,
        "test / held-out captions judged at the end", versioned=True,
    )
    p.add_argument("--ema-decay", type=float, default=None, help="sample from an EMA of the generator (0: no EMA)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None)
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (default: the profile's)")
    args, cfg, clip, built = builders.run_builder(p, PRESETS, build, argv)
    results = judge_caption_samples(built.model.sample, clip, args.n_eval, version=cfg.version)
    rebuild = checkpoints.command("gan", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version, batch_size=args.batch_size, ema_decay=args.ema_decay,
                                  lr_schedule=args.lr_schedule)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, {"eval": results}, rebuild,
                        parents={"clip": clip})


if __name__ == "__main__":
    main()
