"""Profiles, devices and seeds: how big each lesson runs, where, and reproducibly.

Every size and step count a lesson uses lives in one :class:`Profile`, so a lesson reads
``profile.welcome.n_tour`` instead of a magic number, and the same notebook runs as

* ``ci``:  a smoke run, seconds per notebook (what the continuous-integration machine runs);
* ``cpu``: a 2-core laptop, at most 10 minutes per notebook, results good enough to learn from;
* ``gpu``: a Colab T4-class GPU, at most 10 minutes per notebook, the best results.

The profile is picked from the device (CUDA → ``gpu``, otherwise ``cpu``; Apple's ``mps`` device is
used when present but gets the ``cpu`` profile's sizes); the environment variable
``DALLE2_LESSONS_PROFILE`` overrides the choice.

Each stage module owns its settings: a frozen dataclass and its ``PRESETS`` for ``ci``, ``cpu`` and ``gpu``
(``prior.PriorSettings`` and ``prior.PRESETS``, and so on), and its functions take a settings object, never a
profile name. This module only picks the device and the profile, and combines the presets into one
:class:`Profile`, so a lesson reads ``cfg = profile.prior``. A new lesson adds its presets to its module and one
field to :class:`Profile`.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # the stage modules import this one (for seeding), so their settings are imported lazily
    from .claims import ClaimsSettings
    from .clip import ClipSettings
    from .dalle1 import DALLE1Settings
    from .decoder import DecoderSettings
    from .diffusion import DDPMSettings, ForwardSettings
    from .families import FamilySettings
    from .gan import GANSettings
    from .guidance import GuidanceSettings
    from .judge import WelcomeSettings
    from .own_unclip import OwnDataSettings
    from .prior import PriorSettings
    from .text_encoders import TextEncoderSettings
    from .unclip import PipelineSettings
    from .upsampler import UpsamplerSettings
    from .vae import VAESettings

PROFILE_ENV = "DALLE2_LESSONS_PROFILE"
DEVICE_ENV = "DALLE2_LESSONS_DEVICE"


@dataclass(frozen=True)
class Profile:
    """Every size and step count of every lesson, for one kind of machine."""

    name: str
    description: str
    welcome: WelcomeSettings
    clip: ClipSettings
    text_encoders: TextEncoderSettings
    forward: ForwardSettings
    ddpm: DDPMSettings
    guidance: GuidanceSettings
    prior: PriorSettings
    decoder: DecoderSettings
    upsampler: UpsamplerSettings
    pipeline: PipelineSettings
    vae: VAESettings
    gan: GANSettings
    dalle1: DALLE1Settings
    families: FamilySettings
    own_data: OwnDataSettings
    claims: ClaimsSettings


#: The profiles, in order of size, and what each is for.
DESCRIPTIONS: dict[str, str] = {
    "ci": "smoke run: seconds per notebook, numbers too small to mean much",
    "cpu": "2-core laptop: each notebook in at most 10 minutes",
    "gpu": "Colab T4-class GPU: each notebook in at most 10 minutes, best results",
}
PROFILE_NAMES: tuple[str, ...] = tuple(DESCRIPTIONS)


@cache
def _combine(name: str) -> Profile:
    """One profile from every module's presets."""
    from . import claims, clip, dalle1, decoder, diffusion, families, gan, guidance, judge, own_unclip, prior
    from . import text_encoders, unclip, upsampler, vae

    return Profile(
        name=name, description=DESCRIPTIONS[name], welcome=judge.WELCOME_PRESETS[name], clip=clip.PRESETS[name],
        text_encoders=text_encoders.PRESETS[name], forward=diffusion.FORWARD_PRESETS[name],
        ddpm=diffusion.DDPM_PRESETS[name], guidance=guidance.PRESETS[name], prior=prior.PRESETS[name],
        decoder=decoder.PRESETS[name], upsampler=upsampler.PRESETS[name], pipeline=unclip.PRESETS[name],
        vae=vae.PRESETS[name], gan=gan.PRESETS[name], dalle1=dalle1.PRESETS[name], families=families.PRESETS[name],
        own_data=own_unclip.PRESETS[name], claims=claims.PRESETS[name],
    )


def __getattr__(name: str) -> dict[str, Profile]:
    """``profiles.PROFILES``: every profile by name, combined on first use (a module-level ``__getattr__``)."""
    if name == "PROFILES":
        return {n: _combine(n) for n in PROFILE_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_device() -> torch.device:
    """CUDA if available, else Apple's MPS, else the CPU; ``DALLE2_LESSONS_DEVICE`` overrides."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_profile(name: str | None = None, device: torch.device | None = None) -> Profile:
    """The profile named ``name``, else ``$DALLE2_LESSONS_PROFILE``, else the one for ``device``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    name = name or os.environ.get(PROFILE_ENV) or None
    if name is None:
        device = device or get_device()
        name = "gpu" if device.type == "cuda" else "cpu"
    key = name.strip().lower()
    if key not in PROFILE_NAMES:
        raise ValueError(
            f"Unknown profile {name!r} "
            f"(from {'the argument' if name != os.environ.get(PROFILE_ENV) else PROFILE_ENV}). "
            f"Choose one of {', '.join(PROFILE_NAMES)}."
        )
    return _combine(key)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices), so the same profile on the same CPU gives the
    same numbers. GPUs may still differ in the last digits: some CUDA kernels are not deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_lesson(seed: int = 0, profile: str | None = None) -> tuple[Profile, torch.device]:
    """What the first code cell of every lesson calls: seeds, picks device and profile, prints them.

    Returns:
        ``(profile, device)``.
    """
    from . import exercises

    exercises.start_lesson()  # a lesson re-run in the same kernel starts clean
    seed_everything(seed)
    device = get_device()
    prof = get_profile(profile, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device : {device} ({where}; {torch.get_num_threads()} CPU threads)")
    print(f"profile: {prof.name} — {prof.description}")
    if prof.name != "gpu" and device.type == "cuda":
        print(f"         (a GPU is here; set {PROFILE_ENV}=gpu or remove the override for the best results)")
    print(f"torch  : {torch.__version__}, seed {seed}")
    return prof, device
