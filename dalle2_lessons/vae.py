"""A conditional VAE: the first "wrong answer" of the family tree (lesson 10).

Popular articles say DALL·E 2 "is a VAE". It is not (it is CLIP + a diffusion prior + diffusion decoders),
but a text-conditional VAE is a fine generative model to build and measure, and its most famous
weakness — blurry samples — is exactly what diffusion fixed.

The model (Kingma & Welling 2014; conditional form: Sohn et al. 2015):

* encoder ``q(z | x, c)``: a small CNN reads the image ``x`` and the caption's CLIP text embedding ``c``
  and returns the **mean and the log-variance** of a Gaussian over the latent ``z`` (two heads);
* reparameterisation: ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)``, so gradients flow through ``μ`` and ``σ``;
* decoder ``p(x | z, c)``: a Gaussian with mean ``decoder(z, c)`` and a fixed standard deviation
  ``pixel_sigma`` per pixel;
* loss: the negative ELBO, per image, summed over pixels and latent dimensions::

      −ELBO = E_q[ −log p(x | z, c) ] + KL( q(z | x, c) ‖ N(0, I) )
            = Σ_pixels (x − x̂)² / (2 σ_x²)  +  ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)   (+ a constant)

The condition is the frozen course CLIP's text embedding of a random paraphrase, as for the GLIDE-like
model of lesson 05, so every family of lessons 10–13 reads the same captions the same way.

Sampling draws ``z`` from a prior and decodes it. ``N(0, I)``, the prior the KL term trains towards, works when the
caption fixes the picture (Shapes v1). When captions leave attributes out (v2), the encoder writes them into ``z``
and ``N(0, I)`` contradicts the caption; :func:`fit_prior` then fits a Gaussian **per caption**, ``p(z | c)``
(:class:`LatentPrior`), to the codes the frozen encoder uses — unCLIP's two-stage recipe in its smallest form.

The command that rebuilds the course checkpoint ``vae`` is in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn

from . import builders, checkpoints, judge, profiles
from .clip import CLIP
from .guidance import eval_conditions, judge_caption_samples, paraphrase_training_set
from .builders import Built
from .training import Curve, train

CHECKPOINT = "vae"


@dataclass(frozen=True)
class VAEConfig:
    """Everything needed to rebuild a :class:`ConditionalVAE` (stored in its checkpoint's JSON)."""

    cond_dim: int = 64  #: size of the condition (the CLIP text embedding)
    latent_dim: int = 16  #: size of z
    width: int = 32  #: channels of the first conv layer (doubled at each downsampling)
    resolution: int = 16
    pixel_sigma: float = 0.3  #: the decoder's assumed pixel noise σ_x, in [-1, 1] units
    learned_prior: bool = False  #: carries a :class:`LatentPrior` ``p(z | c)`` fitted after training (v2)


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class LatentPrior(nn.Module):
    """``p(z | c) = N(μ(c), diag σ²(c))``: a caption's own Gaussian over the latents, instead of ``N(0, I)`` for all.

    An MLP from the condition ``(B, cond_dim)`` to ``(mean, log_variance)``, each ``(B, latent_dim)`` — the same two
    heads as the encoder, without the image. It is unCLIP's idea in its smallest form: a model from the caption to
    the latent the decoder reads (unCLIP's prior is a diffusion model, so it can hold many modes; this is one
    Gaussian, so it cannot — lesson 10 measures what that costs).
    """

    def __init__(self, cond_dim: int, latent_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cond_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.net(c).chunk(2, dim=1)
        return mean, log_var


class ConditionalVAE(nn.Module):
    """Images ``(B, 3, R, R)`` in [-1, 1] and conditions ``(B, cond_dim)`` ↔ latents ``(B, latent_dim)``."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        w, g = c.width, c.resolution // 4  # two stride-2 stages: R → R/4
        self.encoder = nn.Sequential(
            conv_block(3, w), conv_block(w, 2 * w, 2), conv_block(2 * w, 4 * w, 2), nn.Flatten()
        )
        self.to_stats = nn.Sequential(
            nn.Linear(4 * w * g * g + c.cond_dim, 256), nn.SiLU(), nn.Linear(256, 2 * c.latent_dim)
        )
        self.from_latent = nn.Sequential(
            nn.Linear(c.latent_dim + c.cond_dim, 256), nn.SiLU(), nn.Linear(256, 4 * w * g * g), nn.SiLU()
        )
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (4 * w, g, g)),
            nn.Upsample(scale_factor=2), conv_block(4 * w, 2 * w),
            nn.Upsample(scale_factor=2), conv_block(2 * w, w),
            nn.Conv2d(w, 3, 3, 1, 1),
        )  # fmt: skip
        self.prior = LatentPrior(c.cond_dim, c.latent_dim) if c.learned_prior else None

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x, c)``: ``(mean, log_variance)``, each ``(B, latent_dim)``."""
        mean, log_var = self.to_stats(torch.cat([self.encoder(x), c], dim=1)).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The mean of ``p(x | z, c)``: ``(B, 3, R, R)``, roughly in [-1, 1] (not clamped)."""
        return self.decoder(self.from_latent(torch.cat([z, c], dim=1)))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, noise: torch.Tensor, reparameterise_fn: Callable | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, reparameterise with ``noise`` ``(B, latent_dim)``, decode: ``(reconstruction, mean, log_var)``.
        ``reparameterise_fn`` replaces :func:`reparameterise` (lesson 10 passes the learner's)."""
        mean, log_var = self.encode(x, c)
        return self.decode((reparameterise_fn or reparameterise)(mean, log_var, noise), c), mean, log_var

    @torch.no_grad()
    def sample(
        self, c: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0,
        use_prior: bool = True,
    ) -> torch.Tensor:
        """Draw ``z`` from the prior and decode it for each condition: ``(B, 3, R, R)`` clamped to [-1, 1].

        The prior is the fitted ``p(z | c)`` if the model has one and ``use_prior``, else ``N(0, I)``, the prior the
        ELBO's KL term trained towards; ``temperature`` scales its standard deviation."""
        device = next(self.parameters()).device
        c = c.to(device)
        noise = torch.randn(len(c), self.config.latent_dim, generator=generator).to(device) * temperature
        if self.prior is not None and use_prior:
            mean, log_var = self.prior(c)
            noise = reparameterise(mean, log_var, noise)
        return self.decode(noise, c).clamp(-1, 1).cpu()

    def config_dict(self) -> dict:
        return asdict(self.config)


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``z = μ + σ ⊙ ε`` with ``σ = exp(½ log σ²)``: a sample of ``N(μ, σ²)`` that is differentiable in μ and σ."""
    return mean + torch.exp(0.5 * log_var) * noise


def elbo_terms(
    x: torch.Tensor, reconstruction: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, pixel_sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of the negative ELBO, each averaged over the batch (nats per image).

    Args:
        x, reconstruction: ``(B, 3, R, R)``; mean, log_var: ``(B, latent_dim)``.
    Returns:
        ``(reconstruction_term, kl_term)``: ``Σ_pixels (x − x̂)² / (2σ_x²)`` (the Gaussian negative
        log-likelihood without its constant) and ``½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)``.
    """
    reconstruction_term = ((x - reconstruction) ** 2).flatten(1).sum(1) / (2 * pixel_sigma**2)
    kl_term = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(1)
    return reconstruction_term.mean(), kl_term.mean()


def gaussian_kl(
    mean: torch.Tensor, log_var: torch.Tensor, prior_mean: torch.Tensor, prior_log_var: torch.Tensor
) -> torch.Tensor:
    """``KL(N(μ, σ²) ‖ N(μ_p, σ_p²))`` for diagonal Gaussians, summed over the latent: ``(B,)`` nats.

    ``½ Σ_j (log σ_p,j² − log σ_j² + (σ_j² + (μ_j − μ_p,j)²) / σ_p,j² − 1)``; with ``μ_p = 0, σ_p = 1`` it is the KL
    term of :func:`elbo_terms`. Every argument ``(B, latent_dim)``.
    """
    return 0.5 * (prior_log_var - log_var + (log_var.exp() + (mean - prior_mean) ** 2) / prior_log_var.exp() - 1).sum(1)


def gaussian_nll_constant(n_pixels: int, pixel_sigma: float) -> float:
    """The constant ``n · log(σ_x √(2π))`` that :func:`elbo_terms` leaves out (it does not affect training)."""
    return n_pixels * math.log(pixel_sigma * math.sqrt(2 * math.pi))


# ----------------------------------------------------------------------------------------------
# Training, evaluation, the course checkpoint.


def vae_loss(
    model: ConditionalVAE, x: torch.Tensor, c: torch.Tensor, generator: torch.Generator, beta: float = 1.0,
    reparameterise_fn: Callable | None = None, elbo_terms_fn: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, reconstruction_term, kl_term)`` for one batch; ``beta = 1`` is the ELBO (β-VAE otherwise).
    ``reparameterise_fn`` and ``elbo_terms_fn`` replace :func:`reparameterise` and :func:`elbo_terms`."""
    noise = torch.randn(len(x), model.config.latent_dim, generator=generator).to(x.device)
    reconstruction, mean, log_var = model(x, c, noise, reparameterise_fn)
    rec, kl = (elbo_terms_fn or elbo_terms)(x, reconstruction, mean, log_var, model.config.pixel_sigma)
    return rec + beta * kl, rec, kl


def fit_prior(
    model: ConditionalVAE, images: torch.Tensor, get_cond: Callable, steps: int, batch_size: int = 256,
    lr: float = 2e-3, seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
    kl: Callable[..., torch.Tensor] = gaussian_kl,
) -> list[float]:
    """Give a trained ``model`` a :class:`LatentPrior` ``p(z | c)`` fitted to the codes its encoder uses (in place).

    The encoder and decoder stay frozen; the prior minimises ``E_(x, c) KL(q(z | x, c) ‖ p(z | c))`` — the ELBO's KL
    term with the prior set free, i.e. the maximum-likelihood Gaussian for the codes of each caption. The same
    two-stage recipe as unCLIP: first the latent space (there: CLIP's image embeddings), then a prior into it.

    Args:
        images: ``(N, 3, R, R)`` training images; ``get_cond``: ``(indices, generator) → (B, cond_dim)`` conditions.
        kl: ``(mean, log_var, prior_mean, prior_log_var) → (B,)``, :func:`gaussian_kl` (lesson 10 passes yours).
    Returns:
        the per-step loss (nats per image).
    """
    model.to(device).eval()  # frozen: it runs under no_grad, and only the prior's parameters reach the optimiser
    torch.manual_seed(seed)  # the prior's initial weights depend on the seed alone, not on what ran before
    prior = LatentPrior(model.config.cond_dim, model.config.latent_dim)

    def loss_fn(m, idx, gen):
        c = get_cond(idx, gen).to(device)
        with torch.no_grad():
            mean, log_var = model.encode(images[idx].to(device), c)
        return kl(mean, log_var, *m(c)).mean()

    ema, losses = train(prior, loss_fn, images, steps, batch_size, lr, seed=seed, device=device,
                        desc="the prior p(z | c)", progress=progress)
    model.prior = ema.module.eval()
    model.config = replace(model.config, learned_prior=True)
    return losses


@torch.no_grad()
def evaluate(model: ConditionalVAE, cond: torch.Tensor, attrs: torch.Tensor, seed: int = 0,
             version: str = "v2") -> judge.JudgeReport:
    """One sample per condition, read by the judge of Shapes ``version``."""
    model.eval()
    images = model.sample(cond, torch.Generator().manual_seed(seed))
    return judge.load_judge("single", version=version).score(images, attrs)


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class VAESettings:
    """Lesson 10 (and ``python -m dalle2_lessons.vae``, which builds the course checkpoint)."""

    n_train: int  #: training images (the version's base resolution: 16×16 in v1, 32×32 in v2) with their captions
    steps: int  #: optimiser steps
    batch_size: int
    lr: float
    n_eval: int  #: test / held-out captions judged per table row
    prior_steps: int  #: steps of :func:`fit_prior` after training (0: keep ``N(0, I)``, as the v1 checkpoint does)
    latent_dim: int = 16
    pixel_sigma: float = 0.3  #: the decoder's assumed pixel noise: it sets the balance of the ELBO's two terms
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.0)  #: the prior's spreads lesson 10 scores (0: its mean)
    card_captions: int = 2  #: captions per kind in lesson 10's scorecard (each drawn 16 times)
    seeds: tuple[int, ...] = (0, 1, 2)  #: evaluation seeds of the scorecard (95% intervals over them)
    version: str = "v2"  #: the Shapes version it learns from (v2: 32×32 images, captions that leave things out)
    seed: int = 0


PRESETS: dict[str, VAESettings] = {
    "ci": VAESettings(n_train=2_000, steps=40, batch_size=64, lr=2e-3, n_eval=32, prior_steps=20, card_captions=1),
    "cpu": VAESettings(n_train=20_000, steps=200, batch_size=128, lr=2e-3, n_eval=256, prior_steps=1_000,
                       card_captions=8),
    "gpu": VAESettings(n_train=20_000, steps=10_000, batch_size=128, lr=2e-3, n_eval=1_000, prior_steps=4_000,
                       card_captions=16),
}


def build(cfg: VAESettings, device: str | torch.device = "cpu", *, clip: CLIP | None = None,
          eval_every: int | None = None, n_eval: int = 256, progress: bool = True,
          reparameterise_fn: Callable | None = None, elbo_terms_fn: Callable | None = None) -> Built:
    """Train the course VAE with ``cfg``, conditioned on ``clip``'s text embeddings (default: the course CLIP of
    ``cfg.version``), then fit its prior ``p(z | c)`` for ``cfg.prior_steps`` (:func:`fit_prior`). ``Built.losses``:
    ``"loss"`` (the negative ELBO), its two terms ``"reconstruction"`` and ``"kl"``, and ``"prior"`` (the prior's KL),
    per step; the curve judges ``n_eval`` test captions every ``eval_every`` steps (with ``N(0, I)``: the prior comes
    after). ``reparameterise_fn``, ``elbo_terms_fn``: see :func:`vae_loss` (lesson 10 trains with the learner's)."""
    profiles.seed_everything(cfg.seed)
    data, clip, get_cond = paraphrase_training_set(cfg.n_train, cfg.version, clip)
    model = ConditionalVAE(VAEConfig(latent_dim=cfg.latent_dim, resolution=data.resolution,
                                     pixel_sigma=cfg.pixel_sigma))
    images = data.images.to(device)
    terms: dict[str, list[float]] = {"reconstruction": [], "kl": []}

    def loss_fn(m, idx, gen):
        loss, rec, kl = vae_loss(m, images[idx.to(device)], get_cond(idx, gen).to(device), gen,
                                 reparameterise_fn=reparameterise_fn, elbo_terms_fn=elbo_terms_fn)
        terms["reconstruction"].append(rec.item())
        terms["kl"].append(kl.item())
        return loss

    eval_cond, eval_attrs, _ = eval_conditions("clip", n_eval, clip, version=cfg.version)
    curve = Curve(cfg.steps, eval_every, lambda m: evaluate(m, eval_cond, eval_attrs, version=cfg.version).as_dict())
    ema, losses = train(model, loss_fn, data.images, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        desc=f"conditional VAE (σ_x = {model.config.pixel_sigma:g})", progress=progress, callback=curve)
    built = Built(ema.module.eval(), {"loss": losses, **terms}, curve.train_seconds, curve.points, cfg)
    if cfg.prior_steps:
        built.losses["prior"] = fit_prior(built.model, images, get_cond, cfg.prior_steps, seed=cfg.seed, device=device,
                                          progress=progress)
    return built


def load_vae(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP,
             version: str = "v2") -> ConditionalVAE:
    """The VAE of Shapes ``version`` conditioned on ``clip``'s text embeddings: yours of ``profile`` (from lesson 10)
    if it is, else the course checkpoint if it is (eval mode); a
    :class:`~dalle2_lessons.checkpoints.CheckpointError` if neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: ConditionalVAE(VAEConfig(**config)), profile, device, {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser("Train the course's conditional VAE and save it.",
                                 "judge the model every N steps (the accuracy-vs-minutes curve)", 512,
                                 "test / held-out captions judged at the end", versioned=True)
    p.add_argument("--prior-steps", type=int, default=None, help="steps fitting p(z | c) (0: keep N(0, I))")
    args, cfg, clip, built = builders.run_builder(p, PRESETS, build, argv)
    results = {"eval": judge_caption_samples(built.model.sample, clip, args.n_eval, version=cfg.version),
               "final_terms": {k: sum(v[-50:]) / len(v[-50:]) for k, v in built.losses.items() if k != "loss"}}
    if built.model.prior is not None:  # the same captions drawn with N(0, I), the prior the ELBO trained towards
        results["eval_standard_normal"] = judge_caption_samples(
            lambda c, g: built.model.sample(c, g, use_prior=False), clip, args.n_eval, version=cfg.version)
    rebuild = checkpoints.command("vae", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version, prior_steps=args.prior_steps)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, results, rebuild,
                        parents={"clip": clip})


if __name__ == "__main__":
    main()
