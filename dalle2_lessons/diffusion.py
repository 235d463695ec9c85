"""Diffusion maths: noise schedules, the forward process, and the DDPM and DDIM reverse steps.

As in ``diffusers``' schedulers, nothing here knows about networks: a sampler step takes the network's
prediction of the noise ``eps`` (or of the clean x̂_0 with ``prediction_type="sample"``, or of the velocity
v with ``"v_prediction"``; clamping x̂_0 to an image's [-1, 1] is optional) and returns the less noisy image.
Each function is one equation of Ho et al. (2020, "DDPM") or Song et al. (2021, "DDIM"), and
``tests/test_diffusion.py`` checks each against ``diffusers``' ``DDPMScheduler`` and ``DDIMScheduler`` on the same
inputs.

Conventions (the same as ``diffusers``): timesteps are ``t = 0 … T-1``; ``betas[t]`` is the noise added
by step ``t``, so ``x_t`` has been through steps ``0 … t`` and ``alphas_cumprod[t] = ∏_{s ≤ t} (1 - β_s)``.
Images are ``(B, C, H, W)`` in [-1, 1]; ``t`` is an int64 tensor ``(B,)`` (one timestep per image) or,
in the sampler steps, a Python int shared by the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm


@dataclass
class NoiseSchedule:
    """The variances ``betas`` ``(T,)`` of the forward steps, and what follows from them.

    Attributes:
        betas: β_t, float32.
        alphas: α_t = 1 - β_t.
        alphas_cumprod: ᾱ_t = ∏_{s ≤ t} α_s: how much of the clean image's signal (squared) is left at t.
    """

    betas: torch.Tensor
    name: str = "custom"
    alphas: torch.Tensor = field(init=False)
    alphas_cumprod: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.betas = self.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    @property
    def T(self) -> int:  # noqa: N802 - the papers' name
        return len(self.betas)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t), ``(T,)``."""
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name}, T={self.T}, β from {self.betas[0]:.2e} to {self.betas[-1]:.3f})"


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:  # noqa: N803
    """DDPM's schedule: β_t grows linearly (``diffusers``' ``beta_schedule="linear"``)."""
    return NoiseSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float32), name="linear")


def cosine_alpha_bar(u: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal's f(u) = cos²(((u + s) / (1 + s)) · π/2) for continuous time u ∈ [0, 1]; their ᾱ is
    f(u) / f(0), and :func:`cosine_schedule` only ever uses ratios of f, in which f(0) cancels."""
    return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def cosine_schedule(T: int = 1000, max_beta: float = 0.999) -> NoiseSchedule:  # noqa: N803
    """Improved DDPM's cosine schedule (``diffusers``' ``"squaredcos_cap_v2"``): choose ᾱ, derive β.

    β_t = 1 - f((t+1)/T) / f(t/T) (f: :func:`cosine_alpha_bar`), capped at ``max_beta`` so the last steps stay
    finite; the product of the (1 - β) then telescopes to ᾱ_t = f((t+1)/T) / f(0) for step t = 0 … T-1. Noise arrives
    more gently than with the linear schedule, which at low resolution destroys the image too early.
    """
    betas = [min(1 - cosine_alpha_bar((i + 1) / T) / cosine_alpha_bar(i / T), max_beta) for i in range(T)]
    return NoiseSchedule(torch.tensor(betas, dtype=torch.float32), name="cosine")


def _per_image(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped ``(B, 1, 1, 1)`` (or a scalar for an int ``t``) to broadcast over images."""
    v = values.to(like.device)[t]
    return v.view(-1, *([1] * (like.ndim - 1))) if v.ndim else v


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Jump straight to step ``t``: x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε, a sample of q(x_t | x_0).

    Args:
        x0: ``(B, C, H, W)`` clean images; t: ``(B,)`` int64; noise: ε ~ N(0, I), like ``x0``.
    """
    a = _per_image(schedule.alphas_cumprod, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def q_step(x_prev: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """One forward step: x_t = √(1 - β_t) · x_{t-1} + √β_t · ε, a sample of q(x_t | x_{t-1})."""
    b = _per_image(schedule.betas, t, x_prev)
    return (1 - b).sqrt() * x_prev + b.sqrt() * noise


def predict_x0(x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Invert :func:`q_sample` given the noise: x̂_0 = (x_t - √(1 - ᾱ_t) · ε) / √ᾱ_t."""
    a = _per_image(schedule.alphas_cumprod, t, x_t)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def predict_eps(x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The noise consistent with ``x_t`` and a (possibly clipped) x̂_0: ε = (x_t - √ᾱ_t · x̂_0) / √(1 - ᾱ_t)."""
    a = _per_image(schedule.alphas_cumprod, t, x_t)
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


#: What a network's output means, in ``diffusers``' words: ``"epsilon"`` the noise ε (the U-Nets of lessons 04–09),
#: ``"sample"`` the clean x̂_0 itself (the prior of lesson 06), ``"v_prediction"`` the velocity
#: v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0 (Salimans & Ho 2022; the Shapes v2 decoder of lesson 07).
PredictionType = Literal["epsilon", "sample", "v_prediction"]


def velocity(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int, schedule: NoiseSchedule) -> torch.Tensor:
    """The v-prediction target v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0 (``diffusers``' ``get_velocity``).

    Why it exists: at high noise (ᾱ_t → 0) an ε-network's x̂_0 = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t multiplies the
    network's error by 1/√ᾱ_t, so low-frequency errors (an image's overall colour) survive into the sample. v is
    mostly −x_0 there and mostly ε at low noise: the network is asked for whichever is predictable."""
    a = _per_image(schedule.alphas_cumprod, t, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def x0_and_eps(
    output: torch.Tensor, t: torch.Tensor | int, x_t: torch.Tensor, schedule: NoiseSchedule,
    prediction_type: PredictionType = "epsilon",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂_0, ε)`` at ``x_t`` from a network's ``output`` (same shape as ``x_t``): the one it predicts is
    ``output`` itself, the other follows from x_t = √ᾱ_t · x̂_0 + √(1 - ᾱ_t) · ε."""
    if prediction_type == "epsilon":
        return predict_x0(x_t, t, output, schedule), output
    if prediction_type == "sample":
        return output, predict_eps(x_t, t, output, schedule)
    if prediction_type == "v_prediction":  # x_t = √ᾱ·x_0 + √(1-ᾱ)·ε and v = √ᾱ·ε - √(1-ᾱ)·x_0, solved for x_0 and ε
        a = _per_image(schedule.alphas_cumprod, t, x_t)
        return a.sqrt() * x_t - (1 - a).sqrt() * output, (1 - a).sqrt() * x_t + a.sqrt() * output
    raise ValueError(f"prediction_type must be 'epsilon', 'sample' or 'v_prediction', not {prediction_type!r}")


def ddpm_step(
    eps: torch.Tensor, t: int, x_t: torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor | None = None,
    clip_x0: bool = False, prediction_type: PredictionType = "epsilon",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral DDPM step: sample x_{t-1} from the posterior q(x_{t-1} | x_t, x̂_0).

    With x̂_0 from :func:`predict_x0`, the posterior (DDPM eq. 6–7) is Gaussian with

        mean = √ᾱ_{t-1} β_t / (1 - ᾱ_t) · x̂_0 + √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t
        var  = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t            ("fixed small" variance)

    and no noise is added at the last step (t = 0). ``clip_x0`` clamps x̂_0 to [-1, 1] first.

    Args:
        eps: ``(B, C, H, W)`` the network's output at ``x_t``: the noise, or x̂_0 with ``prediction_type="sample"``.
        t: the current step (an int: the whole batch moves together).
        noise: the fresh N(0, I) sample for the step (drawn here if None).
    Returns:
        ``(x_{t-1}, x̂_0)``.
    """
    a_t = schedule.alphas_cumprod[t]
    a_prev = schedule.alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0)
    beta_t = 1 - a_t / a_prev
    x0, _ = x0_and_eps(eps, t, x_t, schedule, prediction_type)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * x_t
    if t == 0:
        return mean, x0
    variance = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)
    noise = torch.randn_like(x_t) if noise is None else noise
    return mean + variance.sqrt() * noise, x0


def ddim_step(
    eps: torch.Tensor,
    t: int,
    t_prev: int,
    x_t: torch.Tensor,
    schedule: NoiseSchedule,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: bool = False,
    prediction_type: PredictionType = "epsilon",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step from ``t`` to an earlier ``t_prev`` (``-1`` means "to the clean image").

    DDIM (eq. 12) re-noises the predicted x̂_0 to level ``t_prev`` along the predicted noise direction:

        x_{t_prev} = √ᾱ_prev · x̂_0 + √(1 - ᾱ_prev - σ²) · ε + σ · z,
        σ = η · √((1 - ᾱ_prev) / (1 - ᾱ_t)) · √(1 - ᾱ_t / ᾱ_prev)

    η = 0 is deterministic (the same noise always gives the same image, so it can be inverted);
    η = 1 with consecutive steps is DDPM. Because the step only needs ᾱ at two levels, it can skip
    from t to any earlier t_prev: 50 steps instead of 1000. With ``clip_x0``, ε is recomputed from the
    clipped x̂_0 (as GLIDE does) so the two stay consistent.

    ``eps`` is the network's output at ``x_t``: the noise ε, or with ``prediction_type="sample"`` the clean
    x̂_0, from which ε = (x_t - √ᾱ_t · x̂_0) / √(1 - ᾱ_t) (lesson 06's prior; its step with η = 0 is
    :func:`~dalle2_lessons.prior.x0_ddim_step`).

    Returns:
        ``(x_{t_prev}, x̂_0)``.
    """
    a_t = schedule.alphas_cumprod[t]
    a_prev = schedule.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0, eps = x0_and_eps(eps, t, x_t, schedule, prediction_type)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = predict_eps(x_t, t, x0, schedule)
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        x_prev = x_prev + sigma * (torch.randn_like(x_t) if noise is None else noise)
    return x_prev, x0


Spacing = Literal["leading", "trailing"]


def ddim_timesteps(T: int, steps: int, spacing: Spacing = "leading") -> list[int]:  # noqa: N803
    """The timesteps a ``steps``-step DDIM sampler visits, from high to low, spaced as ``diffusers`` names it:

    * ``"leading"``: ``[k · (T // steps) for k in reversed(range(steps))]``, from 0 up (DDIM's paper; 25 steps of
      1000 start at t = 960);
    * ``"trailing"``: ``[round(T − k · T / steps) − 1 for k in range(steps)]``, from T − 1 down (25 steps start at
      t = 999 and end at 39).

    Why it matters (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed"): at t = 960 the
    cosine schedule keeps √ᾱ ≈ 0.06 of the image, so in training the *mean* of x_t still tells a dark picture from a
    light one; pure noise has mean ≈ 0, which reads as one of them, and a sampler that starts there draws that one
    almost every time. Starting at T − 1 (√ᾱ ≈ 5·10⁻⁵) leaves nothing to read. The decoder and the text-to-pixels
    model sample ``"trailing"`` (``decoder.SPACING``, ``guidance.SPACING``)."""
    if spacing == "trailing":
        return [round(T - k * T / steps) - 1 for k in range(steps)]
    ratio = T // steps
    return [k * ratio for k in reversed(range(steps))]


def reverse_formula(x_t: torch.Tensor, t: int, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The popular "reverse formula" x_{t-1} = (x_t - √β_t · ε) / √(1 - β_t): algebraically :func:`q_step`
    solved for x_{t-1}. Exact only when ``noise`` is the very ε that step ``t`` added."""
    b = schedule.betas[t]
    return (x_t - b.sqrt() * noise) / (1 - b).sqrt()


# ----------------------------------------------------------------------------------------------
# Loops. ``eps_model(x_t, t)`` is any callable returning the network's prediction (the noise, unless a
# ``prediction_type`` says otherwise): a U-Net, or a lambda that adds conditioning and guidance (:func:`guide`).


def diffusion_loss(
    eps_model, x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator | None = None,
    prediction_type: PredictionType = "epsilon",
) -> torch.Tensor:
    """DDPM's simple loss: noise ``x0`` to a random step, ask for the noise back, mean squared error (or for
    x_0, or for the velocity :func:`velocity`, as ``prediction_type`` says)."""
    t = torch.randint(schedule.T, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    if prediction_type == "v_prediction":
        target = velocity(x0, noise, t, schedule)
    else:
        target = {"epsilon": noise, "sample": x0}[prediction_type]
    return (eps_model(q_sample(x0, t, noise, schedule), t) - target).pow(2).mean()


def guide(
    model: Callable[..., torch.Tensor], cond: Sequence[torch.Tensor | None], null: Sequence[torch.Tensor | None],
    scale: float,
) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2021), the one rule lessons 05–07 use: ``out(∅) + s·(out(c) − out(∅))``.

    ``model(*cond)`` is the conditional prediction (ε, or x̂_0 for the prior) for ``B`` rows and ``model(*null)`` the
    unconditional one: the same arguments with the condition replaced by the null condition (zeros, hidden tokens).
    Both come from one batched call on ``2B`` rows (each argument pair concatenated; a ``None`` pair stays ``None``),
    so that the network runs once per step; ``scale == 1`` is plain conditioning and needs only ``model(*cond)``.
    Returns ``model``'s output shape, e.g. ``(B, C, H, W)``.
    """
    if scale == 1.0:
        return model(*cond)
    both = model(*(None if c is None else torch.cat([c, n]) for c, n in zip(cond, null, strict=True)))
    out_c, out_u = both.chunk(2)
    return out_u + scale * (out_c - out_u)


def _prediction_kwargs(prediction_type: PredictionType) -> dict[str, str]:
    """The ``prediction_type`` keyword for a sampler's ``step``, left out for ``"epsilon"`` so that a learner's
    step written with the older signature (no ``prediction_type``) still drives the sampler."""
    return {} if prediction_type == "epsilon" else {"prediction_type": prediction_type}


@torch.no_grad()
def sample_ddpm(
    eps_model, shape: tuple[int, ...], schedule: NoiseSchedule, generator: torch.Generator | None = None,
    device: str | torch.device = "cpu", clip_x0: bool = True, progress: bool = True, step=ddpm_step,
    prediction_type: PredictionType = "epsilon", clip_output: bool = True,
) -> torch.Tensor:
    """Ancestral sampling: start from pure noise and take all ``T`` :func:`ddpm_step` s. Returns ``x_0`` ``shape``.

    ``step`` is the step function to use (a lesson passes the learner's own, with :func:`ddpm_step`'s
    signature).
    ``clip_x0`` (the default, as ``diffusers``' ``clip_sample``) keeps x̂_0 in [-1, 1]: with the cosine
    schedule's last β of 0.999 the first step alone multiplies the network's error about 30 times.
    ``eps_model(x_t, t)`` returns what ``prediction_type`` says (the noise, or x̂_0 for ``"sample"``).
    ``clip_output`` clamps the result to an image's [-1, 1]; turn it off with ``clip_x0`` for data that is not
    an image (lesson 06's CLIP embeddings).
    """
    x = torch.randn(shape, generator=generator).to(device)
    for t in tqdm(range(schedule.T - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
        eps = eps_model(x, torch.full((shape[0],), t, device=device))
        x, _ = step(eps, t, x, schedule, noise=torch.randn(shape, generator=generator).to(device), clip_x0=clip_x0,
                    **_prediction_kwargs(prediction_type))
    return x.clamp(-1, 1) if clip_output else x


@torch.no_grad()
def sample_ddim(
    eps_model, shape: tuple[int, ...], schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0,
    generator: torch.Generator | None = None, device: str | torch.device = "cpu", x_T: torch.Tensor | None = None,  # noqa: N803
    clip_x0: bool = True, progress: bool = True, step=ddim_step, prediction_type: PredictionType = "epsilon",
    clip_output: bool = True, spacing: Spacing = "leading",
) -> torch.Tensor:
    """DDIM sampling with ``steps`` network calls (:func:`ddim_timesteps`): returns ``x_0`` ``shape``.

    ``x_T`` fixes the starting noise; ``clip_x0`` clamps x̂_0 and recomputes ε from it at every step (see
    :func:`ddim_step`); ``step`` is the step function, with :func:`ddim_step`'s signature.
    ``eps_model(x_t, t)`` returns what ``prediction_type`` says (the noise, or x̂_0 for ``"sample"``), and
    ``clip_output`` clamps the result to an image's [-1, 1]: lesson 06's prior samples CLIP embeddings with
    ``prediction_type="sample", clip_x0=False, clip_output=False``. ``spacing``: see :func:`ddim_timesteps`.
    """
    x = (torch.randn(shape, generator=generator) if x_T is None else x_T).to(device)
    ts = ddim_timesteps(schedule.T, steps, spacing)
    for i, t in enumerate(tqdm(ts, desc=f"DDIM {steps}", disable=not progress, leave=False)):
        eps = eps_model(x, torch.full((shape[0],), t, device=device))
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        noise = torch.randn(shape, generator=generator).to(device) if eta > 0 else None
        x, _ = step(eps, t, t_prev, x, schedule, eta=eta, noise=noise, clip_x0=clip_x0,
                    **_prediction_kwargs(prediction_type))
    return x.clamp(-1, 1) if clip_output else x


@torch.no_grad()
def ddim_invert(
    eps_model, x0: torch.Tensor, schedule: NoiseSchedule, steps: int = 50, progress: bool = False, refine: int = 0,
    spacing: Spacing = "leading",
) -> torch.Tensor:
    """Run deterministic DDIM *backwards*: from a clean image ``x0`` ``(B, C, H, W)`` up the noise levels
    that :func:`sample_ddim` visits, to the ``x_T`` from which :func:`sample_ddim` (η = 0, ``clip_x0=False``,
    the same ``steps`` and model) draws ``x0`` back.

    Each step is :func:`ddim_step` read the other way: estimate ε, then place x̂_0 at the next *higher* level along
    that ε: ``x_next = √ᾱ_next · x̂_0 + √(1 − ᾱ_next) · ε``. The sampler coming down reads ε at ``x_next``, which the
    way up does not know yet, so the plain inversion reads it at the current level instead: a first-order error.
    Usually small; but near the top of the schedule, where a faint shift of the whole image decides what the sampler
    commits to (the background shade of Shapes v2), it can tip the way down to another picture. ``refine`` > 0 repeats
    each step that many times with ε read at the point just found (a fixed-point iteration of the step's own
    equation), which makes the round trip exact up to the iteration's convergence at ``refine`` more network calls a
    step. ``spacing``: the sampler's (:func:`ddim_timesteps`).
    """
    levels = [-1, *reversed(ddim_timesteps(schedule.T, steps, spacing))]  # from clean (-1) to the noisiest step
    x = x_next = x0
    for cur, nxt in tqdm(
        list(zip(levels[:-1], levels[1:])), desc=f"DDIM inversion {steps}", disable=not progress, leave=False
    ):
        a_cur = schedule.alphas_cumprod[cur] if cur >= 0 else torch.tensor(1.0)
        a_next = schedule.alphas_cumprod[nxt]
        eps = eps_model(x, torch.full((len(x),), max(cur, 0), device=x.device))
        for i in range(refine + 1):
            if i > 0:  # the sampler will read ε at x_next, the level above: move to a point consistent with that
                eps = eps_model(x_next, torch.full((len(x),), nxt, device=x.device))
            x0_hat = (x - (1 - a_cur).sqrt() * eps) / a_cur.sqrt()
            x_next = a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps
        x = x_next
    return x


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class ForwardSettings:
    """Lesson 03."""

    n_judge: int  #: test images the judge reads at each noise level
    n_levels: int  #: noise levels on the judge-vs-t curve


FORWARD_PRESETS: dict[str, ForwardSettings] = {
    "ci": ForwardSettings(n_judge=128, n_levels=8),
    "cpu": ForwardSettings(n_judge=1_000, n_levels=25),
    "gpu": ForwardSettings(n_judge=2_000, n_levels=40),
}


@dataclass(frozen=True)
class DDPMSettings:
    """Lesson 04."""

    n_train: int  #: training images (32×32, Shapes v2)
    steps: int  #: optimiser steps of the learner's own U-Net
    batch_size: int
    lr: float
    n_samples: int  #: samples per seed for each DDIM setting of the speed/quality table (the course's U-Net)
    n_ddpm: int  #: samples per seed drawn with 1000-step DDPM (the slow one)
    seeds: tuple[int, ...] = (0, 1, 2)  #: sampling seeds: every row of the table is a 95% interval over them
    ddim_steps: tuple[int, ...] = (50, 25, 10)


DDPM_PRESETS: dict[str, DDPMSettings] = {
    "ci": DDPMSettings(n_train=1_000, steps=30, batch_size=16, lr=2e-3, n_samples=8, n_ddpm=2, seeds=(0, 1)),
    "cpu": DDPMSettings(n_train=20_000, steps=150, batch_size=64, lr=2e-3, n_samples=40, n_ddpm=6),
    "gpu": DDPMSettings(n_train=20_000, steps=3_000, batch_size=128, lr=2e-3, n_samples=256, n_ddpm=64),
}
