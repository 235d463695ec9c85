"""Profiles, devices and seeds: how big each lesson runs, where, and reproducibly.

Every size and step count a lesson uses lives in one :class:`Profile`, so a lesson reads
``profile.welcome.n_tour`` instead of a magic number, and the same notebook runs as

* ``ci``:  a smoke run, seconds per notebook (what the continuous-integration machine runs);
* ``cpu``: a 2-core laptop, at most 10 minutes per notebook, results good enough to learn from;
* ``gpu``: a Colab T4-class GPU, at most 10 minutes per notebook, the best results.

The profile is picked from the device (CUDA → ``gpu``, otherwise ``cpu``; Apple's ``mps`` device is
used when present but gets the ``cpu`` profile's sizes); the environment variable
``DALLE2_LESSONS_PROFILE`` overrides the choice.

Each lesson adds one frozen settings class below and one field to :class:`Profile`.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass

import numpy as np
import torch

PROFILE_ENV = "DALLE2_LESSONS_PROFILE"
DEVICE_ENV = "DALLE2_LESSONS_DEVICE"


@dataclass(frozen=True)
class WelcomeSettings:
    """Lesson 00."""

    n_tour: int  #: scenes shown in each dataset grid
    n_stats: int  #: training scenes counted for the attribute histograms
    n_judge_eval: int  #: clean renders per split and resolution on which the judge's accuracy is measured


@dataclass(frozen=True)
class ClipSettings:
    """Lesson 01 (and ``python -m dalle2_lessons.clip``, which builds the course checkpoint)."""

    resolution: int  #: image side the CLIP image encoder reads (the decoder's resolution)
    n_train: int  #: training scenes
    steps: int  #: optimiser steps (the library CLIP in the comparison gets the same)
    batch_size: int
    lr: float
    embed_dim: int  #: size of the shared embedding space
    n_eval: int  #: test / held-out images for zero-shot accuracy
    n_retrieval: int  #: images among which retrieval recall is measured
    n_probe: int  #: training embeddings for the linear probes
    seed: int = 0


@dataclass(frozen=True)
class TextEncoderSettings:
    """Lesson 02: five text encoders inside the same CLIP, on two-object relation captions."""

    n_train: int  #: relation training scenes
    steps: int  #: optimiser steps, the same for every encoder
    batch_size: int
    lr: float
    n_eval: int  #: test scenes for the pair tests (each gets a swapped twin)
    n_retrieval: int  #: test captions and pictures for retrieval recall@1
    resolution: int = 16
    seed: int = 0


@dataclass(frozen=True)
class ForwardSettings:
    """Lesson 03."""

    n_judge: int  #: test images the judge reads at each noise level
    n_levels: int  #: noise levels on the judge-vs-t curve


@dataclass(frozen=True)
class DDPMSettings:
    """Lesson 04."""

    n_train: int  #: training images (16×16)
    steps: int  #: optimiser steps
    batch_size: int
    lr: float
    n_samples: int  #: samples per DDIM setting in the speed/quality table
    n_ddpm: int  #: samples drawn with 1000-step DDPM (the slow one)
    ddim_steps: tuple[int, ...] = (50, 25, 10)


@dataclass(frozen=True)
class GuidanceSettings:
    """Lesson 05 (and ``python -m dalle2_lessons.guidance``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16) with their captions
    steps: int  #: optimiser steps of the model the lesson trains (the course checkpoint trained longer)
    batch_size: int
    lr: float
    n_eval: int  #: test captions per guidance scale in the sweep
    n_per_caption: int  #: samples per caption for the diversity measurement
    n_compare: int  #: test captions for the sampler-bug and condition comparisons
    n_ddpm: int  #: captions sampled with 1000-step DDPM (the slow one)
    scales: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
    p_uncond: float = 0.1  #: condition dropout: how often the null condition replaces the caption
    cond_dim: int = 64  #: size of the learned attribute vectors (the CLIP embedding has its own size)
    seed: int = 0


@dataclass(frozen=True)
class PriorSettings:
    """Lesson 06 (and ``python -m dalle2_lessons.prior``, which builds the course checkpoint)."""

    n_train: int  #: training scenes whose (caption, image embedding) pairs the prior learns from
    steps: int  #: optimiser steps
    batch_size: int
    lr: float
    n_eval: int  #: test captions for the cosine table
    sample_steps: int = 64  #: DDIM steps when sampling an embedding (the paper uses 64)
    candidates: int = 2  #: samples per caption, of which the one closest to the text embedding is kept
    p_uncond: float = 0.1  #: caption dropout (tokens and text embedding together)
    seed: int = 0


@dataclass(frozen=True)
class DecoderSettings:
    """Lesson 07 (and ``python -m dalle2_lessons.decoder``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16) with their CLIP image embeddings and captions
    steps: int  #: optimiser steps of the decoder the lesson trains (the course checkpoint trained longer)
    batch_size: int
    lr: float
    n_eval: int  #: test images reconstructed per setting in the lesson's tables
    p_image: float = 0.1  #: how often the image embedding is zeroed in training (for guidance)
    p_caption: float = 0.5  #: how often the caption is dropped in training
    seed: int = 0


@dataclass(frozen=True)
class UpsamplerSettings:
    """Lesson 08 (and ``python -m dalle2_lessons.upsampler``, which builds the course checkpoint)."""

    n_train: int  #: training images (32×32)
    steps: int  #: optimiser steps of the upsampler the lesson trains
    batch_size: int
    lr: float
    n_eval: int  #: test images per row of the bicubic-vs-diffusion table
    crop: int = 16  #: side of the random training crops (a quarter of the 32×32 image's area, as in the paper)
    max_sigma: float = 0.6  #: widest Gaussian blur (in 16×16 pixels) applied to the conditioning image in training
    sample_steps: int = 25  #: DDIM steps when upsampling
    seed: int = 0


@dataclass(frozen=True)
class PipelineSettings:
    """Lesson 09: the whole system."""

    n_eval: int  #: captions per split in the final evaluation table
    decoder_steps: int = 50  #: DDIM steps of the decoder
    upsampler_steps: int = 25  #: DDIM steps of the upsampler


@dataclass(frozen=True)
class VAESettings:
    """Lesson 10 (and ``python -m dalle2_lessons.vae``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16) with their captions
    steps: int  #: optimiser steps
    batch_size: int
    lr: float
    n_eval: int  #: test / held-out captions judged per table row
    latent_dim: int = 16
    pixel_sigma: float = 0.3  #: the decoder's assumed pixel noise: it sets the balance of the ELBO's two terms
    sharp_sigma: float = 0.1  #: the smaller σ_x of the lesson's second VAE (sharper reconstructions, worse samples)
    seed: int = 0


@dataclass(frozen=True)
class GANSettings:
    """Lesson 11 (and ``python -m dalle2_lessons.gan``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16) with their captions
    steps: int  #: alternating discriminator + generator steps
    batch_size: int
    lr: float
    n_eval: int  #: test / held-out captions judged per table row
    latent_dim: int = 32
    loss: str = "hinge"  #: "hinge" or "non-saturating"
    spectral_norm: bool = True  #: spectral normalisation of the discriminator's layers (the stabiliser)
    seed: int = 0


@dataclass(frozen=True)
class DALLE1Settings:
    """Lesson 12 (and ``python -m dalle2_lessons.dalle1``, which builds the course checkpoint)."""

    n_train: int  #: training images (16×16) with their captions
    tokenizer_steps: int  #: optimiser steps of the VQ-VAE
    steps: int  #: optimiser steps of the transformer
    batch_size: int  #: the transformer's (its sequences are 80 tokens long)
    lr: float
    n_eval: int  #: test / held-out captions judged per table row
    tokenizer_batch_size: int = 128
    codebook_size: int = 128  #: image-token vocabulary
    width: int = 128  #: transformer width
    layers: int = 4  #: transformer blocks
    top_k: int = 32  #: sampling keeps the k most likely image tokens
    candidates: int = 8  #: samples per caption that CLIP reranks
    seed: int = 0


@dataclass(frozen=True)
class FamilySettings:
    """Lesson 13: every family measured on the same captions."""

    n_eval: int  #: test captions and as many held-out captions, one sample each
    groups: int  #: test captions with several samples each (sharpness, diversity)
    per_caption: int  #: samples per caption of those groups
    diffusion_steps: int = 50  #: DDIM steps of the diffusion decoders
    prior_steps: int = 64  #: DDIM steps of unCLIP's prior
    candidates: int = 8  #: DALL·E 1 samples per caption that CLIP reranks


@dataclass(frozen=True)
class OwnDataSettings:
    """Lesson 14: the four stages trained on a torchvision dataset (or your folder)."""

    n_train: int  #: training images taken from the dataset (stand-in files are written with this many)
    n_test: int  #: test images for zero-shot accuracy and the real-image scores
    clip_steps: int
    prior_steps: int
    decoder_steps: int
    upsampler_steps: int
    batch_size: int  #: CLIP's batch (contrastive learning wants many negatives)
    n_per_class: int  #: samples per class in the grid and the scores
    diffusion_batch_size: int = 128  #: the prior's, decoder's and upsampler's (on a CPU, more small steps beat fewer big ones)
    dataset: str = "fashion_mnist"
    clip_resolution: int = 16  #: CLIP reads the 32×32 pictures downsampled to this (32 on a GPU: CIFAR-10 needs the pixels)
    clip_lr: float = 2e-3
    embed_dim: int = 64
    prior_sample_steps: int = 64
    decoder_sample_steps: int = 50
    upsampler_sample_steps: int = 25
    seed: int = 0
    referee_seed: int = 1  #: the second CLIP, which scores the samples without having shaped them


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


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        description="smoke run: seconds per notebook, numbers too small to mean much",
        welcome=WelcomeSettings(n_tour=16, n_stats=2_000, n_judge_eval=256),
        clip=ClipSettings(16, n_train=2_000, steps=120, batch_size=64, lr=2e-3, embed_dim=64, n_eval=256, n_retrieval=128, n_probe=1_000),
        text_encoders=TextEncoderSettings(n_train=2_000, steps=20, batch_size=64, lr=2e-3, n_eval=128, n_retrieval=64),
        forward=ForwardSettings(n_judge=128, n_levels=8),
        ddpm=DDPMSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_samples=8, n_ddpm=4),
        guidance=GuidanceSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_eval=16, n_per_caption=4, n_compare=8, n_ddpm=4),
        prior=PriorSettings(n_train=2_000, steps=40, batch_size=64, lr=1e-3, n_eval=32, sample_steps=16),
        decoder=DecoderSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_eval=16),
        upsampler=UpsamplerSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_eval=16, sample_steps=10),
        pipeline=PipelineSettings(n_eval=8, decoder_steps=10, upsampler_steps=5),
        vae=VAESettings(n_train=2_000, steps=40, batch_size=64, lr=2e-3, n_eval=32),
        gan=GANSettings(n_train=2_000, steps=40, batch_size=64, lr=2e-4, n_eval=32),
        dalle1=DALLE1Settings(n_train=2_000, tokenizer_steps=40, steps=30, batch_size=32, lr=2e-3, n_eval=16, tokenizer_batch_size=32, candidates=4),
        families=FamilySettings(n_eval=8, groups=2, per_caption=2, diffusion_steps=5, prior_steps=5, candidates=2),
        own_data=OwnDataSettings(n_train=500, n_test=100, clip_steps=40, prior_steps=30, decoder_steps=30, upsampler_steps=20,
                                 batch_size=32, n_per_class=2, prior_sample_steps=8, decoder_sample_steps=8, upsampler_sample_steps=5,
                                 diffusion_batch_size=32),
    ),
    "cpu": Profile(
        name="cpu",
        description="2-core laptop: each notebook in at most 10 minutes",
        welcome=WelcomeSettings(n_tour=32, n_stats=20_000, n_judge_eval=2_000),
        clip=ClipSettings(16, n_train=20_000, steps=1_000, batch_size=128, lr=2e-3, embed_dim=64, n_eval=2_000, n_retrieval=256, n_probe=5_000),
        text_encoders=TextEncoderSettings(n_train=20_000, steps=300, batch_size=128, lr=2e-3, n_eval=1_000, n_retrieval=256),
        forward=ForwardSettings(n_judge=1_000, n_levels=25),
        ddpm=DDPMSettings(n_train=20_000, steps=600, batch_size=128, lr=2e-3, n_samples=128, n_ddpm=32),
        guidance=GuidanceSettings(n_train=20_000, steps=400, batch_size=128, lr=2e-3, n_eval=128, n_per_caption=8, n_compare=64, n_ddpm=16),
        prior=PriorSettings(n_train=20_000, steps=500, batch_size=256, lr=1e-3, n_eval=250),
        decoder=DecoderSettings(n_train=20_000, steps=300, batch_size=128, lr=2e-3, n_eval=128),
        upsampler=UpsamplerSettings(n_train=20_000, steps=300, batch_size=128, lr=2e-3, n_eval=128),
        pipeline=PipelineSettings(n_eval=96),
        vae=VAESettings(n_train=20_000, steps=2_000, batch_size=128, lr=2e-3, n_eval=256),
        gan=GANSettings(n_train=20_000, steps=1_500, batch_size=128, lr=2e-4, n_eval=256),
        dalle1=DALLE1Settings(n_train=20_000, tokenizer_steps=1_000, steps=800, batch_size=64, lr=2e-3, n_eval=256),
        families=FamilySettings(n_eval=256, groups=16, per_caption=8),
        own_data=OwnDataSettings(n_train=10_000, n_test=1_000, clip_steps=400, prior_steps=400, decoder_steps=600,
                                 upsampler_steps=300, batch_size=128, n_per_class=8, diffusion_batch_size=64),
    ),
    "gpu": Profile(
        name="gpu",
        description="Colab T4-class GPU: each notebook in at most 10 minutes, best results",
        welcome=WelcomeSettings(n_tour=32, n_stats=20_000, n_judge_eval=2_000),
        clip=ClipSettings(16, n_train=20_000, steps=3_000, batch_size=128, lr=2e-3, embed_dim=64, n_eval=2_000, n_retrieval=256, n_probe=5_000),
        text_encoders=TextEncoderSettings(n_train=20_000, steps=1_500, batch_size=128, lr=2e-3, n_eval=2_000, n_retrieval=256),
        forward=ForwardSettings(n_judge=2_000, n_levels=40),
        ddpm=DDPMSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_samples=512, n_ddpm=256),
        guidance=GuidanceSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=512, n_per_caption=16, n_compare=256, n_ddpm=128),
        prior=PriorSettings(n_train=20_000, steps=3_000, batch_size=256, lr=1e-3, n_eval=2_000),
        decoder=DecoderSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=512),
        upsampler=UpsamplerSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=1_000),
        pipeline=PipelineSettings(n_eval=1_000),
        vae=VAESettings(n_train=20_000, steps=10_000, batch_size=128, lr=2e-3, n_eval=1_000),
        gan=GANSettings(n_train=20_000, steps=15_000, batch_size=128, lr=2e-4, n_eval=1_000),
        dalle1=DALLE1Settings(n_train=20_000, tokenizer_steps=3_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=1_000),
        families=FamilySettings(n_eval=1_000, groups=64, per_caption=16),
        own_data=OwnDataSettings(n_train=50_000, n_test=5_000, clip_steps=2_000, prior_steps=2_000, decoder_steps=4_000,
                                 upsampler_steps=2_000, batch_size=128, n_per_class=16, clip_resolution=32),
    ),
}


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
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from {'the argument' if name != os.environ.get(PROFILE_ENV) else PROFILE_ENV}). "
            f"Choose one of {', '.join(PROFILES)}."
        )
    return PROFILES[key]


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
