"""Every family of the course on the same captions, the same judge and the same CPU (lesson 13).

Each family is a course checkpoint (or the learner's own) behind one signature: a list of captions and a
random generator in, one 16×16 image per caption out, in [-1, 1]. :func:`compare` then measures them all
the same way — the judge's accuracy on test captions and on held-out colour–shape pairs, sharpness (soft
pixels), diversity (spread across samples of one caption), training minutes (recorded in the checkpoints
when they were built) and sampling seconds per image (measured now).

Every family reads captions through the same frozen CLIP (the course's, unless every stage was trained on
yours), except DALL·E 1, which reads the caption's tokens itself (as it did) and uses CLIP only to rerank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from . import checkpoints, dalle1, gan, guidance, judge, shapes, unclip, vae
from .clip import embed_texts, load_clip
from .diffusion import cosine_schedule
from .tokenizer import Tokenizer

Sampler = Callable[[list[str], torch.Generator], torch.Tensor]


@dataclass
class Family:
    """One generative model behind the common signature."""

    name: str
    sample: Sampler  #: ``(captions (B), generator) → (B, 3, 16, 16)`` in [-1, 1]
    checkpoints: tuple[str, ...]  #: the checkpoints it is made of (their training minutes add up)
    note: str = ""  #: how it samples, in a few words
    #: the loaded checkpoints, by name (with the CLIP it reads)
    parts: dict[str, nn.Module] = field(default_factory=dict)


def load_families(profile: str | None = None, device: str | torch.device = "cpu", diffusion_steps: int = 50,
                  prior_steps: int = 64, candidates: int = 8) -> dict[str, Family]:
    """Load every family (``profile=None``: the course checkpoints; a profile name prefers your own).

    ``diffusion_steps``: DDIM steps of the diffusion decoders; ``prior_steps``: DDIM steps of unCLIP's prior;
    ``candidates``: samples per caption that CLIP reranks for "DALL·E 1 + reranking".
    """
    clip_model = load_clip(profile, device, for_stages=("prior", "decoder", "text-diffusion", "vae", "gan"))
    system = unclip.UnCLIP.load(profile, device, clip=clip_model)  # the upsampler is not used
    tok, schedule = Tokenizer(), cosine_schedule()
    vae_model = vae.load_vae(profile, device, clip=clip_model)
    gan_model = gan.load_gan(profile, device, clip=clip_model)
    dalle = dalle1.load_dalle1(profile, device)
    glide = guidance.load_text_diffusion(profile, device, clip=clip_model)
    glide_scale = float(checkpoints.metrics_of(glide).get("best_scale", 3.0))

    def embed(captions: list[str]) -> torch.Tensor:
        return embed_texts(clip_model, tok.encode_batch(captions))

    def tokens(captions: list[str]) -> torch.Tensor:
        return tok.encode_batch(captions).to(device)

    def unclip_sample(captions: list[str], g: torch.Generator) -> torch.Tensor:
        text, token_features, mask = system.encode_text(captions)
        z = system.image_embeddings(text, token_features, mask, steps=prior_steps, generator=g)
        return system.decode(z, scale=3.0, steps=diffusion_steps, generator=g)

    reads_clip = {"clip": clip_model}
    families = [
        Family("VAE", lambda c, g: vae_model.sample(embed(c), g), ("vae",), "one decoder pass",
               {**reads_clip, "vae": vae_model}),
        Family("GAN", lambda c, g: gan_model.sample(embed(c), g), ("gan",), "one generator pass",
               {**reads_clip, "gan": gan_model}),
        Family("DALL·E 1", lambda c, g: dalle.sample(tokens(c), g), ("dalle1",), "64 tokens, top-k 32",
               {"dalle1": dalle}),
        Family(f"DALL·E 1 + CLIP best of {candidates}",
               lambda c, g: dalle.sample_reranked(tokens(c), clip_model, candidates, g),
               ("dalle1",), f"{candidates} candidates, CLIP keeps 1", {**reads_clip, "dalle1": dalle}),
        Family("text → pixels diffusion",
               lambda c, g: guidance.sample(glide, embed(c), schedule, glide_scale, diffusion_steps,
                                            generator=g, device=device),
               ("text-diffusion",), f"DDIM {diffusion_steps}, guidance {glide_scale:g}",
               {**reads_clip, "text-diffusion": glide}),
        Family("unCLIP (prior + decoder)", unclip_sample, ("prior", "decoder"),
               f"prior DDIM {prior_steps} ×2 candidates, decoder DDIM {diffusion_steps}",
               {**reads_clip, "prior": system.prior, "decoder": system.decoder}),
    ]
    return {f.name: f for f in families}


def train_minutes(family: Family) -> float:
    """The training minutes recorded in the family's checkpoints (the shared CLIP not included); NaN where a
    checkpoint recorded none (a lesson's own run)."""
    seconds = [checkpoints.metrics_of(family.parts[name]).get("train_seconds") for name in family.checkpoints]
    return float("nan") if None in seconds else sum(seconds) / 60


@torch.no_grad()
def measure(sample: Sampler, n_eval: int, groups: int, per_caption: int, seed: int = 0) -> dict[str, float]:
    """Judge one sample per caption on ``n_eval`` test and ``n_eval`` held-out captions, and ``per_caption``
    samples of each of ``groups`` test captions for sharpness and diversity.

    Returns ``{"test", "heldout"}`` (all four attributes right), ``"test_<attribute>"`` accuracies,
    ``"soft_pixels"``, ``"diversity"`` and ``"seconds_per_image"`` (all sampling in this call).
    """
    the_judge = judge.load_judge("single")
    out: dict[str, float] = {}
    seconds, images = 0.0, 0
    for split in ("test", "heldout"):
        scenes = shapes.sample_scenes(n_eval, split, "single", seed=1)
        t0 = time.perf_counter()
        pictures = sample(scenes.captions, torch.Generator().manual_seed(seed)).cpu()
        seconds, images = seconds + time.perf_counter() - t0, images + len(pictures)
        report = the_judge.score(pictures, torch.as_tensor(scenes.attrs))
        out[split] = report.all_correct
        if split == "test":
            out.update({f"test_{k}": v for k, v in report.as_dict().items() if k != "all"})
    captions = shapes.sample_scenes(groups, "test", "single", seed=1).captions
    t0 = time.perf_counter()
    many = sample([c for c in captions for _ in range(per_caption)], torch.Generator().manual_seed(seed + 1)).cpu()
    seconds, images = seconds + time.perf_counter() - t0, images + len(many)
    out["soft_pixels"] = judge.soft_pixels(many)
    out["diversity"] = guidance.diversity(many, groups)
    out["seconds_per_image"] = seconds / images
    return out


def real_renders(groups: int, per_caption: int) -> torch.Tensor:
    """``per_caption`` fresh renders of each of the first ``groups`` test captions (the yardstick for sharpness
    and diversity): ``(groups · per_caption, 3, 16, 16)``, caption-major like :func:`measure`'s samples."""
    scenes = shapes.sample_scenes(groups, "test", "single", seed=1)
    return torch.stack([shapes.render(shapes.rejitter(scenes, seed=j)) for j in range(per_caption)], 1).flatten(0, 1)


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

    n_eval: int  #: test captions and as many held-out captions, one sample each
    groups: int  #: test captions with several samples each (sharpness, diversity)
    per_caption: int  #: samples per caption of those groups
    diffusion_steps: int = 50  #: DDIM steps of the diffusion decoders
    prior_steps: int = 64  #: DDIM steps of unCLIP's prior
    candidates: int = 8  #: DALL·E 1 samples per caption that CLIP reranks


PRESETS: dict[str, FamilySettings] = {
    "ci": FamilySettings(n_eval=8, groups=2, per_caption=2, diffusion_steps=5, prior_steps=5, candidates=2),
    "cpu": FamilySettings(n_eval=256, groups=16, per_caption=8),
    "gpu": FamilySettings(n_eval=1_000, groups=64, per_caption=16),
}
