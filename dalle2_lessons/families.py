"""Every family of the course on the same captions, the same judge and the same CPU (lesson 13).

Each family is a course checkpoint (or the learner's own) behind one signature: a list of captions and a
random generator in, one image per caption out at the Shapes version's base resolution (16×16 in v1, 32×32 in v2:
every family is compared before any upsampler), in [-1, 1]. They are all measured the same way: lesson 09's
scorecard (:func:`score`: fidelity to what a caption names, diversity of what it leaves free, Shapes FID next to its
floor, on full and partial captions), accuracy on held-out colour–shape pairs (:func:`heldout`), each as a 95%
interval over seeds; and their cost: parameters, training minutes (recorded in the checkpoints when they were
built) and sampling seconds per image (measured now).

Every family reads captions through the same frozen CLIP (the course's, unless every stage was trained on
yours), except DALL·E 1, which reads the caption's tokens itself (as it did) and uses CLIP only to rerank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from . import checkpoints, dalle1, gan, guidance, judge, metrics, scorecard, shapes, unclip, vae
from .clip import embed_texts, load_clip
from .diffusion import cosine_schedule
from .tokenizer import for_version

Sampler = Callable[[list[str], torch.Generator], torch.Tensor]


@dataclass
class Family:
    """One generative model behind the common signature."""

    name: str
    sample: Sampler  #: ``(captions (B), generator) → (B, 3, R, R)`` in [-1, 1], ``R`` the base resolution
    checkpoints: tuple[str, ...]  #: the checkpoints it is made of (their training minutes add up)
    note: str = ""  #: how it samples, in a few words
    #: the loaded checkpoints, by stage name (with the CLIP it reads, ``"clip"``)
    parts: dict[str, nn.Module] = field(default_factory=dict)


def load_families(profile: str | None = None, device: str | torch.device = "cpu", diffusion_steps: int = 50,
                  prior_steps: int = 64, candidates: int = 8, version: str = "v2") -> dict[str, Family]:
    """Load every family of Shapes ``version`` (``profile=None``: the course checkpoints; a profile name prefers
    your own).

    ``diffusion_steps``: DDIM steps of the diffusion decoders; ``prior_steps``: DDIM steps of unCLIP's prior;
    ``candidates``: samples per caption that CLIP reranks for "DALL·E 1 + reranking".
    """
    clip_model = load_clip(profile, device, for_stages=("prior", "decoder", "text-diffusion", "vae", "gan"),
                           version=version)
    system = unclip.UnCLIP.load(profile, device, clip=clip_model, version=version)  # the upsampler is not used
    tok, schedule = for_version(version), cosine_schedule()
    vae_model = vae.load_vae(profile, device, clip=clip_model, version=version)
    gan_model = gan.load_gan(profile, device, clip=clip_model, version=version)
    dalle = dalle1.load_dalle1(profile, device, version=version)
    glide = guidance.load_text_diffusion(profile, device, clip=clip_model, version=version)
    glide_scale = float(checkpoints.metrics_of(glide).get("best_scale", 3.0))

    def embed(captions: list[str]) -> torch.Tensor:
        return embed_texts(clip_model, tok.encode_batch(captions))

    def tokens(captions: list[str]) -> torch.Tensor:
        return tok.encode_batch(captions).to(device)

    def unclip_sample(captions: list[str], g: torch.Generator) -> torch.Tensor:
        text, token_features, mask = system.encode_text(captions)
        z = system.image_embeddings(text, token_features, mask, steps=prior_steps, generator=g)
        # the pipeline's decoder guidance, picked on validation captions (SHAPES_V2 section 5) as GLIDE's was
        return system.decode(z, scale=unclip.DECODER_SCALE, steps=diffusion_steps, generator=g)

    reads_clip = {"clip": clip_model}
    v = lambda name: checkpoints.versioned(name, version)  # noqa: E731  (the checkpoint names of this version)
    families = [
        Family("VAE", lambda c, g: vae_model.sample(embed(c), g), (v("vae"),),
               "p(z | c), one decoder pass" if vae_model.prior is not None else "one decoder pass",
               {**reads_clip, "vae": vae_model}),
        Family("GAN", lambda c, g: gan_model.sample(embed(c), g), (v("gan"),), "one generator pass",
               {**reads_clip, "gan": gan_model}),
        Family("DALL·E 1", lambda c, g: dalle.sample(tokens(c), g), (v("dalle1"),),
               f"{dalle.tokenizer.grid ** 2} tokens, top-k 32",
               {"dalle1": dalle}),
        Family(f"DALL·E 1 + CLIP best of {candidates}",
               lambda c, g: dalle.sample_reranked(tokens(c), clip_model, candidates, g),
               (v("dalle1"),), f"{candidates} candidates, CLIP keeps 1", {**reads_clip, "dalle1": dalle}),
        Family("text → pixels diffusion",
               lambda c, g: guidance.sample(glide, embed(c), schedule, glide_scale, diffusion_steps,
                                            generator=g, device=device),
               (v("text-diffusion"),), f"DDIM {diffusion_steps}, guidance {glide_scale:g}",
               {**reads_clip, "text-diffusion": glide}),
        Family("unCLIP (prior + decoder)", unclip_sample, (v("prior"), v("decoder")),
               f"prior DDIM {prior_steps} ×2 candidates, decoder DDIM {diffusion_steps}, guidance "
               f"{unclip.DECODER_SCALE:g}",
               {**reads_clip, "prior": system.prior, "decoder": system.decoder}),
    ]
    return {f.name: f for f in families}


def train_minutes(family: Family) -> float:
    """The training minutes recorded in the family's checkpoints (the shared CLIP not included), a checkpoint that
    went on from another's weights (``--init``: the shipped decoder) counted with that run's minutes
    (:func:`~.checkpoints.trained_in_all`); NaN where a checkpoint recorded none (a lesson's own run)."""
    seconds = [checkpoints.trained_in_all(checkpoints.metrics_of(m))[1] for name, m in family.parts.items()
               if name != "clip"]
    return float("nan") if None in seconds else sum(seconds) / 60


def generator(family: Family) -> scorecard.Generator:
    """The family as a :data:`~.scorecard.Generator`: ``(captions, seed) → images``, seeded from ``seed``."""
    return lambda captions, seed: family.sample(captions, torch.Generator().manual_seed(seed)).cpu()


@torch.no_grad()
def score(family: Family, seeds: tuple[int, ...] = (0, 1, 2), n_per_type: int = 1, k: int = 16,
          version: str = "v2") -> dict[str, dict[str, dict[str, float]]]:
    """Lesson 09's scorecard of one family at the base resolution: fidelity, readable, diversity and Shapes FID
    (with its real-vs-real floor) per caption kind, full and partial, as 95% intervals over ``seeds``."""
    the_judge = judge.load_judge("single", version=version)
    return scorecard.scorecard(generator(family), seeds, n_per_type, k, the_judge,
                               resolution=shapes.get_version(version).resolution)


@torch.no_grad()
def heldout(family: Family, n: int, seeds: tuple[int, ...] = (0, 1, 2), version: str = "v2",
            ) -> tuple[metrics.Interval, float]:
    """All four attributes right on ``n`` held-out full captions (colour–shape pairs no model trained on) per seed,
    each seed its own captions and noise: ``(95% interval over seeds, sampling seconds per image)``."""
    the_judge = judge.load_judge("single", version=version)
    rates, seconds = [], 0.0
    for seed in seeds:
        scenes = shapes.sample_scenes(n, "heldout", "single", seed=100 + seed, version=version)
        t0 = time.perf_counter()
        pictures = family.sample(scenes.full_captions, torch.Generator().manual_seed(seed)).cpu()
        seconds += time.perf_counter() - t0
        rates.append(the_judge.score(pictures, torch.as_tensor(scenes.attrs)).all_correct)
    return metrics.interval95(rates), seconds / (n * len(seeds))


def parameters(family: Family) -> int:
    """Trainable numbers of the family's own checkpoints (the shared CLIP not counted, as in :func:`train_minutes`)."""
    return sum(p.numel() for name, m in family.parts.items() if name != "clip" for p in m.parameters())


def dominated(scores: torch.Tensor) -> torch.Tensor:
    """Which rows are beaten outright: ``scores (N, M)``, higher is better in every column → ``(N,)`` bool.

    Row ``i`` is dominated when some row ``j`` is at least as good in every column and better in one. The rows
    that are not dominated form the **Pareto front**: the only sensible choices, whatever the weights.
    """
    at_least = (scores[None, :, :] >= scores[:, None, :]).all(-1)  # [i, j]: j is at least as good as i everywhere
    better = (scores[None, :, :] > scores[:, None, :]).any(-1)  # [i, j]: j is better than i somewhere
    return (at_least & better).any(1)


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class FamilySettings:
    """Lesson 13: every family measured on the same captions."""

    n_heldout: int  #: held-out full captions per seed, one sample each
    card_captions: int = 1  #: captions per caption kind per seed in each family's scorecard
    card_k: int = 16  #: samples per caption in the scorecard (diversity of K samples vs K real renders)
    seeds: tuple[int, ...] = (0, 1, 2)  #: every number is a 95% interval over these
    diffusion_steps: int = 50  #: DDIM steps of the diffusion decoders
    prior_steps: int = 64  #: DDIM steps of unCLIP's prior
    candidates: int = 8  #: DALL·E 1 samples per caption that CLIP reranks


PRESETS: dict[str, FamilySettings] = {
    "ci": FamilySettings(n_heldout=8, card_k=4, diffusion_steps=5, prior_steps=5, candidates=2),
    "cpu": FamilySettings(n_heldout=64, diffusion_steps=25, prior_steps=32),
    "gpu": FamilySettings(n_heldout=256, card_captions=4),
}
