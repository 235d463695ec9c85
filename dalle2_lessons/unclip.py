"""The whole unCLIP system (lesson 09): text → CLIP text embedding → prior → image embedding → decoder
(32×32) → upsampler (64×64), plus what a CLIP image embedding makes possible: variations,
interpolations, text diffs, and DDIM inversion.

Every stage is a course checkpoint of an earlier lesson (or the learner's own): :func:`UnCLIP.load`
puts them together. ``python -m dalle2_lessons.generate`` is the same pipeline from the command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import decoder as decoder_lib
from . import diffusion
from . import prior as prior_lib
from . import upsampler as upsampler_lib
from .clip import CLIP, embed_images, encode_captions, load_clip
from .decoder import Decoder, load_decoder
from .prior import DiffusionPrior, load_prior
from .tokenizer import Tokenizer, for_version
from .unet import UNet
from .upsampler import load_upsampler

#: σ (px at the decoder's resolution) of the Gaussian blur the pipeline applies to the decoder's samples before the
#: upsampler reads them: conditioning augmentation at sampling time, inside the range of blurs the upsampler was
#: trained to undo. With the upsampler retrained on area-averaged downsamples (issue #21), picked among 0, 0.3 and 0.5
#: on 8 full validation captions × 16 samples, seeds 10-12, by Shapes FID end to end: 77, 73 and 367 (a likely reason,
#: not measured apart: the sampler holds its output's low frequencies to the input's, and a wide blur softens those).
#: 0.5 had been picked for the earlier upsampler. ``benchmarks/SHAPES_V2.md`` section 4 picks it on partial validation
#: captions (its rule; the 6,600-step decoder at guidance 3): none 382 ± 97, 0.15 381 ± 96, 0.3 373 ± 88, 0.5 646 ± 224
#: (floor 283): 0.3 again, by a margin its intervals cannot confirm; 0.5 worst by far on the mean (the intervals of
#: 0.5 and 0.3 only just overlap).
UPSAMPLER_INPUT_BLUR = 0.3

#: Classifier-free guidance of the decoder when the pipeline draws from text (:meth:`UnCLIP.generate`). Picked on
#: validation captions (``benchmarks/SHAPES_V2.md`` section 5) by Shapes FID among the scales that keep the fidelity
#: targets: guidance trades a caption's spread of samples for fidelity, and a distribution distance sees both.
#: The 2,600-step decoder's pick was 2 (among 1.5-3); the 6,600-step decoder's, among 1-2 on partial captions of seeds
#: 10-12: 1 349, 1.25 344, 1.5 348, 2 358 (fidelity 99.4-99.6% at all four). On 8 full captions × 16 of the same seeds,
#: 1.25 against 2: Shapes FID 32.0 ± 17.5 against 52.9 ± 20.8 (floor 16.7; paired −20.9, interval −25.5 to −16.3).
DECODER_SCALE = 1.25


def slerp(a: torch.Tensor, b: torch.Tensor, w: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between unit vectors ``a`` and ``b`` ``(..., D)``: ``w = 0`` gives ``a``,
    ``1`` gives ``b``, and every point in between is a unit vector on the great circle through them
    (a straight line would cut through the sphere, where no CLIP embedding lives)."""
    w = torch.as_tensor(w, dtype=a.dtype)
    theta = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - w) * theta) * a + torch.sin(w * theta) * b) / torch.sin(theta)


def text_diff(z_image: torch.Tensor, text_from: torch.Tensor, text_to: torch.Tensor, w: float) -> torch.Tensor:
    """unCLIP's text diff (section 3.3): the direction ``z_d = normalise(z_t(to) − z_t(from))`` between two
    caption embeddings, and the image embedding rotated towards it by ``w`` (``slerp(z_i, z_d, w)``)."""
    z_d = F.normalize(text_to - text_from, dim=-1)
    return slerp(z_image, z_d.expand_as(z_image), w)


@dataclass
class Generation:
    """What one call of :meth:`UnCLIP.generate` made, for ``N`` = prompts × samples per prompt."""

    prompts: list[str]  #: ``N`` prompts, each repeated for its samples
    image_embeddings: torch.Tensor  #: ``(N, D)`` what the prior (or the baseline) handed the decoder
    low: torch.Tensor  #: ``(N, 3, R, R)`` the decoder's images (v2: R = 32)
    images: torch.Tensor  #: ``(N, 3, 2R, 2R)`` the upsampler's images, in [-1, 1]
    seconds: dict[str, float] = field(default_factory=dict)  #: wall time per stage


@dataclass
class UnCLIP:
    """The four trained networks and the tokenizer. All sampling is DDIM (deterministic for η = 0)."""

    clip: CLIP
    prior: DiffusionPrior
    decoder: Decoder
    upsampler: UNet
    tokenizer: Tokenizer = field(default_factory=Tokenizer)
    schedule: diffusion.NoiseSchedule = field(default_factory=diffusion.cosine_schedule)

    @classmethod
    def load(cls, profile: str | None = None, device: str | torch.device = "cpu", clip: CLIP | None = None,
             version: str = "v2") -> UnCLIP:
        """Your checkpoints of ``profile`` where you trained them, else the course's, chosen so that the prior and
        decoder were trained on the CLIP they are fed: ``clip`` if given, else yours only if both were trained on it
        (see :func:`~dalle2_lessons.clip.load_clip`). The upsampler reads pixels only, so any fits. ``version``: the
        Shapes version the course checkpoints were trained on (v2: 32-px decoder, 64-px upsampler)."""
        clip = clip or load_clip(profile, device, for_stages=("prior", "decoder"), version=version)
        return cls(clip, load_prior(profile, device, clip=clip, version=version),
                   load_decoder(profile, device, clip=clip, version=version),
                   load_upsampler(profile, device, version=version), for_version(version))

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompts → ``(embeddings (B, D), token features (B, L, W), mask (B, L))``; raises the tokenizer's
        :class:`~dalle2_lessons.tokenizer.PromptError` for a word it does not know or a prompt too long."""
        return encode_captions(self.clip, self.tokenizer.encode_batch(prompts))

    def image_embeddings(self, text, tokens, mask, scale: float = 1.0, steps: int = 64, candidates: int = 2,
                         generator: torch.Generator | None = None, use_prior: bool = True) -> torch.Tensor:
        """Stage 2: CLIP image embeddings ``(B, D)`` for the captions (``use_prior=False``: the text
        embedding itself, the "no prior" baseline)."""
        if not use_prior:
            return text.clone()
        d = self.device
        return prior_lib.sample(self.prior, text.to(d), tokens.to(d), mask.to(d), self.schedule, scale, steps,
                                candidates, generator).cpu()

    def decode(self, z: torch.Tensor, scale: float = 3.0, steps: int = 50, generator: torch.Generator | None = None,
               x_T: torch.Tensor | None = None, tokens: torch.Tensor | None = None, mask: torch.Tensor | None = None,  # noqa: N803
               eta: float = 0.0) -> torch.Tensor:
        """Stage 3: image embeddings ``(B, D)`` → ``(B, 3, R, R)``, R the decoder's (v2: 32), tokens optional."""
        return decoder_lib.sample(self.decoder, z, tokens, mask, self.schedule, scale, steps, eta, generator, x_T)

    def upsample(self, low: torch.Tensor, steps: int = 25, generator: torch.Generator | None = None,
                 eta: float = 1.0, input_blur: float = UPSAMPLER_INPUT_BLUR) -> torch.Tensor:
        """Stage 4: ``(B, 3, R, R)`` → ``(B, 3, 2R, 2R)`` (η = 1 by default: it measured better here, lesson 08).
        ``input_blur``: σ px of a Gaussian blur on ``low`` first (default :data:`UPSAMPLER_INPUT_BLUR`; 0 reads ``low``
        as it is; see :func:`~dalle2_lessons.upsampler.sample`)."""
        return upsampler_lib.sample(self.upsampler, low, steps, eta, schedule=self.schedule, generator=generator,
                                    input_blur=input_blur)

    @torch.no_grad()
    def generate(
        self, prompts: str | list[str], n: int = 1, seed: int = 0, prior_scale: float = 1.0,
        decoder_scale: float = DECODER_SCALE, prior_steps: int = 64, decoder_steps: int = 50, upsampler_steps: int = 25,
        candidates: int = 2, use_prior: bool = True, caption: bool = False, progress: bool = True,
        decoder_eta: float = 0.0, upsampler_eta: float = 1.0, upsampler_input_blur: float = UPSAMPLER_INPUT_BLUR,
    ) -> Generation:
        """``n`` images per prompt: text → prior → decoder → upsampler, with a progress bar over the stages.

        ``decoder_scale``: the decoder's classifier-free guidance (default :data:`DECODER_SCALE`).
        ``decoder_eta`` / ``upsampler_eta``: DDIM's η for those stages (η = 1 with all 1000 steps is DDPM's sampler).
        ``upsampler_input_blur``: σ px of a Gaussian blur on the decoder's samples before the upsampler reads them
        (default :data:`UPSAMPLER_INPUT_BLUR`; ``benchmarks/SHAPES_V2.md`` section 4 measures it).

        ``caption=True`` also gives the decoder the caption's tokens (GLIDE's pathway, which unCLIP kept);
        by default the decoder sees only the image embedding, so every word reaches the picture through CLIP.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        gen = torch.Generator().manual_seed(seed)
        seconds: dict[str, float] = {}
        bar = tqdm(total=4, desc="unCLIP", disable=not progress)

        def stage(name: str, t0: float) -> None:
            seconds[name] = round(time.perf_counter() - t0, 3)
            bar.set_postfix_str(f"{name} {seconds[name]:.1f} s")
            bar.update()

        t0 = time.perf_counter()
        text, tokens, mask = (x.repeat_interleave(n, 0) for x in self.encode_text(prompts))
        stage("text", t0)
        t0 = time.perf_counter()
        z = self.image_embeddings(text, tokens, mask, prior_scale, prior_steps, candidates, gen, use_prior)
        stage("prior", t0)
        t0 = time.perf_counter()
        low = self.decode(z, decoder_scale, decoder_steps, gen, tokens=tokens if caption else None,
                          mask=mask if caption else None, eta=decoder_eta)
        stage("decoder", t0)
        t0 = time.perf_counter()
        images = self.upsample(low, upsampler_steps, gen, upsampler_eta, upsampler_input_blur)
        stage("upsampler", t0)
        bar.close()
        return Generation([p for p in prompts for _ in range(n)], z, low, images, seconds)

    # ------------------------------------------------------------------------------------------
    # What an image embedding makes possible.

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings ``(B, D)`` of ``(B, 3, R, R)`` images at any R (resized to CLIP's resolution first)."""
        if images.shape[-1] != self.clip.config.resolution:
            images = upsampler_lib.downsample(images, self.clip.config.resolution)
        return embed_images(self.clip, images)

    def variations(self, images: torch.Tensor, n: int = 4, seed: int = 0, scale: float = 3.0,
                   steps: int = 50) -> torch.Tensor:
        """``n`` new final-resolution images per input image: encode it with CLIP, decode the embedding with fresh
        noise. Returns ``(B·n, 3, 2R, 2R)``, image-major (R: the decoder's resolution)."""
        gen = torch.Generator().manual_seed(seed)
        z = self.embed(images).repeat_interleave(n, 0)
        return self.upsample(self.decode(z, scale, steps, gen), generator=gen)

    def interpolate(self, image_a: torch.Tensor, image_b: torch.Tensor, n: int = 8, seed: int = 0, scale: float = 3.0,
                    steps: int = 50, slerp_fn: Callable = slerp) -> torch.Tensor:
        """``n`` final-resolution images along the slerp between two images' embeddings, all decoded from the *same*
        starting noise, so only the embedding changes along the row. ``image_a``/``image_b``: ``(3, R, R)``;
        ``slerp_fn`` replaces :func:`slerp` (lesson 09 passes the learner's)."""
        gen = torch.Generator().manual_seed(seed)
        za, zb = self.embed(torch.stack([image_a, image_b]))
        z = torch.stack([slerp_fn(za, zb, float(w)) for w in torch.linspace(0, 1, n)])
        r = self.decoder.config.unet.resolution
        x_T = torch.randn(1, 3, r, r, generator=gen).expand(n, -1, -1, -1).contiguous()
        low = self.decode(z, scale, steps, x_T=x_T)
        up_gen = torch.Generator().manual_seed(seed + 1)
        return self.upsample(low, generator=up_gen)

    def text_diff(self, image: torch.Tensor, source: str, target: str,
                  weights: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6), seed: int = 0, scale: float = 3.0,
                  steps: int = 50, text_diff_fn: Callable = text_diff) -> torch.Tensor:
        """Edit an image ``(3, R, R)`` by words: move its embedding towards ``target − source`` by each weight,
        decoding every edit from the same noise. Returns ``(len(weights), 3, 2R, 2R)``. ``text_diff_fn`` replaces
        :func:`text_diff` (lesson 09 passes the learner's)."""
        gen = torch.Generator().manual_seed(seed)
        z = self.embed(image[None])
        t_from, t_to = self.encode_text([source, target])[0]
        z_edit = torch.cat([text_diff_fn(z, t_from, t_to, w) for w in weights])
        r = self.decoder.config.unet.resolution
        x_T = torch.randn(1, 3, r, r, generator=gen).expand(len(weights), -1, -1, -1).contiguous()
        return self.upsample(self.decode(z_edit, scale, steps, x_T=x_T),
                             generator=torch.Generator().manual_seed(seed + 1))

    def invert(self, images: torch.Tensor, steps: int = 50, scale: float = 1.0,
               refine: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """DDIM inversion of base-resolution images ``(B, 3, R, R)`` under their own CLIP embeddings: returns
        ``(x_T, reconstruction)``, where the reconstruction is η = 0 DDIM from ``x_T`` (no clamping, so the
        round trip is exact up to the inversion's error). ``refine``: fixed-point refinements of every inversion step
        (:func:`~dalle2_lessons.diffusion.ddim_invert`); with 0, one of the eight test pictures of
        ``tests/test_unclip.py`` came back with the other background shade."""
        z = self.embed(images).to(self.device)
        eps = decoder_lib.eps_model(self.decoder, z, scale=scale, schedule=self.schedule)
        x_T = diffusion.ddim_invert(eps, images.to(self.device), self.schedule, steps, refine=refine,  # noqa: N806
                                     spacing=decoder_lib.SPACING)
        shape = tuple(images.shape)
        back = diffusion.sample_ddim(eps, shape, self.schedule, steps, 0.0, device=self.device, x_T=x_T, clip_x0=False,
                                     progress=False, spacing=decoder_lib.SPACING)
        return x_T.cpu(), back.cpu()


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between matching rows of two ``(B, D)`` batches, in degrees."""
    return torch.rad2deg(torch.arccos(F.cosine_similarity(a, b, dim=-1).clamp(-1, 1)))


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class PipelineSettings:
    """Lesson 09: the whole system."""

    decoder_steps: int = 50  #: DDIM steps of the decoder
    upsampler_steps: int = 25  #: DDIM steps of the upsampler
    card_captions: int = 4  #: captions per caption kind in lesson 09's scorecard (per seed; three seeds)
    card_k: int = 16  #: samples per caption in the scorecard (the diversity of K samples vs K real renders)


PRESETS: dict[str, PipelineSettings] = {
    "ci": PipelineSettings(decoder_steps=10, upsampler_steps=5, card_captions=1, card_k=4),
    "cpu": PipelineSettings(decoder_steps=20, upsampler_steps=10, card_captions=1),
    "gpu": PipelineSettings(),
}
