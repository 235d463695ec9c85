"""dalle2_lessons: the helper package of *DALL·E 2 from Scratch*.

Importing the package is instant and offline: submodules (which import PyTorch) load on first use,
so ``import dalle2_lessons as dl; dl.shapes`` works, and so does ``from dalle2_lessons import shapes``.

Modules, in the order the course meets them:

* :mod:`~dalle2_lessons.profiles`     the ``ci`` / ``cpu`` / ``gpu`` profiles, device, seeds, lesson setup
* :mod:`~dalle2_lessons.shapes`       the captioned Shapes dataset (rendering, captions, splits)
* :mod:`~dalle2_lessons.captions`     the Shapes caption templates and phrases (also read as ``shapes.<name>``)
* :mod:`~dalle2_lessons.tokenizer`    the caption tokenizer and its vocabulary
* :mod:`~dalle2_lessons.judge`        the attribute judge that scores generated images
* :mod:`~dalle2_lessons.metrics`      Shapes FID, diversity, energy distance, 95% intervals over seeds
* :mod:`~dalle2_lessons.checkpoints`  safetensors + JSON checkpoints, shipped and your own
* :mod:`~dalle2_lessons.builders`     how every course checkpoint is built: one command line, ``Built``, saving
* :mod:`~dalle2_lessons.exercises`    the exercise checker
* :mod:`~dalle2_lessons.exercise_inputs` each exercise's checker inputs: random ones and the lesson's edge cases
* :mod:`~dalle2_lessons.transformer`  attention and the one transformer block (CLIP's text encoder, the prior, DALL·E 1)
* :mod:`~dalle2_lessons.clip`         CLIP: the encoders, the contrastive loss, its training loop
* :mod:`~dalle2_lessons.clip_embeddings` a trained CLIP's embeddings in batches; zero-shot, retrieval, linear probes
* :mod:`~dalle2_lessons.clip_hf`      ``transformers``' CLIP behind our interface; OpenAI's pretrained CLIP
* :mod:`~dalle2_lessons.text_encoders` stop words, bags of words vs transformers, the word-order pair tests
* :mod:`~dalle2_lessons.diffusion`    noise schedules, q(x_t | x_0), the DDPM and DDIM steps, DDIM inversion
* :mod:`~dalle2_lessons.unet`         the U-Net of every diffusion lesson (optional condition and context tokens)
* :mod:`~dalle2_lessons.training`     the shared training loop (AdamW, warm-up, EMA, progress bar)
* :mod:`~dalle2_lessons.guidance`     text conditioning and classifier-free guidance (the GLIDE-like baseline)
* :mod:`~dalle2_lessons.prior`        unCLIP's diffusion prior and its baselines
* :mod:`~dalle2_lessons.decoder`      unCLIP's decoder: CLIP image embedding → 32×32 image
* :mod:`~dalle2_lessons.upsampler`    the 32 → 64 diffusion upsampler
* :mod:`~dalle2_lessons.unclip`       the whole pipeline, variations, interpolations, text diffs, inversion
* :mod:`~dalle2_lessons.generate`     the same pipeline from the command line
* :mod:`~dalle2_lessons.vae`          the family tree: a conditional VAE (ELBO, reparameterisation)
* :mod:`~dalle2_lessons.gan`          the family tree: a conditional GAN (two losses, spectral norm)
* :mod:`~dalle2_lessons.vqvae`        the family tree: DALL·E 1's image tokenizer (a VQ-VAE)
* :mod:`~dalle2_lessons.dalle1`       the family tree: DALL·E 1 (VQ-VAE tokens, a transformer, CLIP reranking)
* :mod:`~dalle2_lessons.families`     the family tree: every family measured on the same captions
* :mod:`~dalle2_lessons.own_data`     your own data: torchvision datasets and a folder of pictures, with captions
* :mod:`~dalle2_lessons.own_unclip`   the four stages trained on your data, and CLIP scores instead of the judge
* :mod:`~dalle2_lessons.widgets`      ipywidgets for the lessons' sliders
* :mod:`~dalle2_lessons.plotting`     image grids, loss curves, the unCLIP map
* :mod:`~dalle2_lessons.notebooks`    generates ``notebooks/`` from ``solutions/``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = (
    "profiles", "shapes", "captions", "tokenizer", "judge", "metrics", "checkpoints", "builders", "exercises",
    "exercise_inputs", "plotting", "widgets", "notebooks", "course", "transformer", "clip", "clip_embeddings",
    "clip_hf", "text_encoders",
    "diffusion", "unet", "training", "guidance", "prior", "decoder", "upsampler", "unclip", "vae", "gan", "vqvae",
    "dalle1", "families", "own_data", "own_unclip",
)  # fmt: skip
_SHORTCUTS = {"setup_lesson": "profiles", "get_profile": "profiles", "get_device": "profiles",
              "seed_everything": "profiles"}

if TYPE_CHECKING:  # for editors and type checkers; at run time everything below loads lazily
    from . import (  # noqa: F401
        builders, captions, checkpoints, clip, clip_embeddings, clip_hf, course, dalle1, decoder, diffusion,
        exercise_inputs, exercises, families, gan, guidance, judge, metrics, notebooks, own_data, own_unclip, plotting,
        prior, profiles, shapes,
        text_encoders, tokenizer, training, transformer, unclip, unet, upsampler, vae, vqvae, widgets,
    )
    from .profiles import get_device, get_profile, seed_everything, setup_lesson  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f".{_SHORTCUTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, *_SHORTCUTS])
