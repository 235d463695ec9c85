"""Diffusion maths: noise schedules, the forward process, and the DDPM and DDIM reverse steps.

As in ``diffusers``' schedulers, nothing here knows about networks: a sampler step takes the network's
prediction of the noise ``eps`` and returns the less noisy image. Each function is one equation of
Ho et al. (2020, "DDPM") or Song et al. (2021, "DDIM"), and ``tests/test_diffusion.py`` checks each
against ``diffusers``' ``DDPMScheduler`` and ``DDIMScheduler`` on the same inputs.

Conventions (the same as ``diffusers``): timesteps are ``t = 0 … T-1``; ``betas[t]`` is the noise added
by step ``t``, so ``x_t`` has been through steps ``0 … t`` and ``alphas_cumprod[t] = ∏_{s ≤ t} (1 - β_s)``.
Images are ``(B, C, H, W)`` in [-1, 1]; ``t`` is an int64 tensor ``(B,)`` (one timestep per image) or,
in the sampler steps, a Python int shared by the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
    """Nichol & Dhariwal's ᾱ(u) = cos²(((u + s) / (1 + s)) · π/2) for continuous time u ∈ [0, 1]."""
    return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def cosine_schedule(T: int = 1000, max_beta: float = 0.999) -> NoiseSchedule:  # noqa: N803
    """Improved DDPM's cosine schedule (``diffusers``' ``"squaredcos_cap_v2"``): choose ᾱ, derive β.

    β_t = 1 - ᾱ((t+1)/T) / ᾱ(t/T), capped at ``max_beta`` so the last steps stay finite. Noise arrives
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


def ddpm_step(
    eps: torch.Tensor, t: int, x_t: torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor | None = None, clip_x0: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral DDPM step: sample x_{t-1} from the posterior q(x_{t-1} | x_t, x̂_0).

    With x̂_0 from :func:`predict_x0`, the posterior (DDPM eq. 6–7) is Gaussian with

        mean = √ᾱ_{t-1} β_t / (1 - ᾱ_t) · x̂_0 + √α_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t
        var  = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t            ("fixed small" variance)

    and no noise is added at the last step (t = 0). ``clip_x0`` clamps x̂_0 to [-1, 1] first.

    Args:
        eps: ``(B, C, H, W)`` the network's noise prediction at ``x_t``.
        t: the current step (an int: the whole batch moves together).
        noise: the fresh N(0, I) sample for the step (drawn here if None).
    Returns:
        ``(x_{t-1}, x̂_0)``.
    """
    a_t = schedule.alphas_cumprod[t]
    a_prev = schedule.alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0)
    beta_t = 1 - a_t / a_prev
    x0 = predict_x0(x_t, t, eps, schedule)
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step from ``t`` to an earlier ``t_prev`` (``-1`` means "to the clean image").

    DDIM (eq. 12) re-noises the predicted x̂_0 to level ``t_prev`` along the predicted noise direction:

        x_{t_prev} = √ᾱ_prev · x̂_0 + √(1 - ᾱ_prev - σ²) · ε + σ · z,
        σ = η · √((1 - ᾱ_prev) / (1 - ᾱ_t)) · √(1 - ᾱ_t / ᾱ_prev)

    η = 0 is deterministic (the same noise always gives the same image, so it can be inverted);
    η = 1 with consecutive steps is DDPM. Because the step only needs ᾱ at two levels, it can skip
    from t to any earlier t_prev: 50 steps instead of 1000. With ``clip_x0``, ε is recomputed from the
    clipped x̂_0 (as GLIDE does) so the two stay consistent.

    Returns:
        ``(x_{t_prev}, x̂_0)``.
    """
    a_t = schedule.alphas_cumprod[t]
    a_prev = schedule.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = predict_x0(x_t, t, eps, schedule)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = predict_eps(x_t, t, x0, schedule)
    sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        x_prev = x_prev + sigma * (torch.randn_like(x_t) if noise is None else noise)
    return x_prev, x0


def ddim_timesteps(T: int, steps: int) -> list[int]:  # noqa: N803
    """The timesteps a ``steps``-step DDIM sampler visits, from high to low: ``diffusers``' "leading"
    spacing, ``[k · (T // steps) for k in reversed(range(steps))]``."""
    ratio = T // steps
    return [k * ratio for k in reversed(range(steps))]


def reverse_formula(x_t: torch.Tensor, t: int, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The popular "reverse formula" x_{t-1} = (x_t - √β_t · ε) / √(1 - β_t): algebraically :func:`q_step`
    solved for x_{t-1}. Exact only when ``noise`` is the very ε that step ``t`` added."""
    b = schedule.betas[t]
    return (x_t - b.sqrt() * noise) / (1 - b).sqrt()


# ----------------------------------------------------------------------------------------------
# Loops. ``eps_model(x_t, t)`` is any callable returning the predicted noise: a U-Net, or a lambda
# that adds conditioning and guidance around one.


def diffusion_loss(eps_model, x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """DDPM's simple loss: noise ``x0`` to a random step, ask for the noise back, mean squared error."""
    t = torch.randint(schedule.T, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    return (eps_model(q_sample(x0, t, noise, schedule), t) - noise).pow(2).mean()


@torch.no_grad()
def sample_ddpm(
    eps_model, shape: tuple[int, ...], schedule: NoiseSchedule, generator: torch.Generator | None = None,
    device: str | torch.device = "cpu", clip_x0: bool = True, progress: bool = True, step=ddpm_step,
) -> torch.Tensor:
    """Ancestral sampling: start from pure noise and take all ``T`` :func:`ddpm_step` s. Returns ``x_0`` clamped to [-1, 1].

    ``step`` is the step function to use (a lesson passes the learner's own, with :func:`ddpm_step`'s
    signature).
    ``clip_x0`` (the default, as ``diffusers``' ``clip_sample``) keeps x̂_0 in [-1, 1]: with the cosine
    schedule's last β of 0.999 the first step alone multiplies the network's error about 30 times.
    """
    x = torch.randn(shape, generator=generator).to(device)
    for t in tqdm(range(schedule.T - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
        eps = eps_model(x, torch.full((shape[0],), t, device=device))
        x, _ = step(eps, t, x, schedule, noise=torch.randn(shape, generator=generator).to(device), clip_x0=clip_x0)
    return x.clamp(-1, 1)


@torch.no_grad()
def sample_ddim(
    eps_model, shape: tuple[int, ...], schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0,
    generator: torch.Generator | None = None, device: str | torch.device = "cpu", x_T: torch.Tensor | None = None,  # noqa: N803
    clip_x0: bool = True, progress: bool = True, step=ddim_step,
) -> torch.Tensor:
    """DDIM sampling with ``steps`` network calls (:func:`ddim_timesteps`); ``x_T`` fixes the starting noise;
    ``clip_x0`` clamps x̂_0 and recomputes ε from it at every step (see :func:`ddim_step`); ``step`` is
    the step function, with :func:`ddim_step`'s signature."""
    x = (torch.randn(shape, generator=generator) if x_T is None else x_T).to(device)
    ts = ddim_timesteps(schedule.T, steps)
    for i, t in enumerate(tqdm(ts, desc=f"DDIM {steps}", disable=not progress, leave=False)):
        eps = eps_model(x, torch.full((shape[0],), t, device=device))
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        noise = torch.randn(shape, generator=generator).to(device) if eta > 0 else None
        x, _ = step(eps, t, t_prev, x, schedule, eta=eta, noise=noise, clip_x0=clip_x0)
    return x.clamp(-1, 1)


@torch.no_grad()
def ddim_invert(
    eps_model, x0: torch.Tensor, schedule: NoiseSchedule, steps: int = 50, progress: bool = False,
) -> torch.Tensor:
    """Run deterministic DDIM *backwards*: from a clean image ``x0`` ``(B, C, H, W)`` up the noise levels
    that :func:`sample_ddim` visits, to the ``x_T`` from which :func:`sample_ddim` (η = 0, ``clip_x0=False``,
    the same ``steps`` and model) draws ``x0`` back, up to the small error of reading ε at the lower level.

    Each step is :func:`ddim_step` read the other way: estimate ε at the current level, then place x̂_0
    at the next *higher* level along that ε: ``x_next = √ᾱ_next · x̂_0 + √(1 − ᾱ_next) · ε``.
    """
    levels = [-1, *reversed(ddim_timesteps(schedule.T, steps))]  # from clean (-1) to the noisiest step
    x = x0
    for cur, nxt in tqdm(list(zip(levels[:-1], levels[1:])), desc=f"DDIM inversion {steps}", disable=not progress, leave=False):
        eps = eps_model(x, torch.full((len(x),), max(cur, 0), device=x.device))
        a_cur = schedule.alphas_cumprod[cur] if cur >= 0 else torch.tensor(1.0)
        a_next = schedule.alphas_cumprod[nxt]
        x0_hat = (x - (1 - a_cur).sqrt() * eps) / a_cur.sqrt()
        x = a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps
    return x
