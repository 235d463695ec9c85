"""Your own unCLIP (lesson 14): the four stages of lessons 01 and 06–08 trained, in order, on any captioned images,
and the CLIP-based scores that replace the judge where there is no judge.

Nothing here is new maths: every stage calls the loss its own lesson wrote (:func:`clip.train_clip`,
:func:`prior.prior_loss`, :func:`decoder.decoder_loss`, :func:`upsampler.upsampler_loss`) on a
:class:`~dalle2_lessons.own_data.CaptionedImages` instead of Shapes, with the dataset's own word-level tokenizer.
The data flows one way, as in the course: images → CLIP → (prior, decoder) → upsampler.

Why CLIP scores, and what they do not measure: the judge (lesson 00) was trained on Shapes and knows four
attributes; real pictures have none it could check. CLIP, trained on the same data, can say how well a picture and
a caption agree (the *CLIP score*, 100·max(cos, 0) as in Hessel et al. 2021) and which class prompt a picture is
closest to. But the prior and decoder were trained to produce what *this* CLIP associates with a caption, so a
sample can score well by pleasing the CLIP rather than by looking right: read the scores beside the pictures and
beside the same scores of real images, never alone. :func:`score_samples` also reports a second CLIP, trained with
another seed (the *referee*), which the generator never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import diffusion, profiles, training
from . import upsampler as upsampler_lib
from .clip import CLIP, CaptionBank, CLIPConfig, embed_images, embed_texts, train_clip
from .decoder import Decoder, decoder_config, decoder_loss
from .own_data import CaptionedImages
from .prior import DiffusionPrior, PriorConfig, prior_loss
from .tokenizer import Tokenizer
from .unclip import UnCLIP
from .unet import UNet

LOW = upsampler_lib.LOW  #: the decoder draws LOW × LOW images; the upsampler doubles them


def clip_view(clip_model: CLIP, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 32, 32)`` pictures as this CLIP reads them: downsampled to its resolution where that is smaller."""
    r = clip_model.config.resolution
    return images if images.shape[-1] == r else upsampler_lib.downsample(images, r)


def embed(clip_model: CLIP, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``(N, D)`` of ``(N, 3, 32, 32)`` pictures, whatever resolution the CLIP reads."""
    return embed_images(clip_model, clip_view(clip_model, images))


def train_clip_stage(data: CaptionedImages, tok: Tokenizer, s: profiles.OwnDataSettings, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool = True, steps: int | None = None) -> tuple[CLIP, list[float]]:
    """Lesson 01 on this data: a CLIP reading ``s.clip_resolution`` pixels and this dataset's words (``steps``
    overrides the profile's). Returns ``(clip, losses)``."""
    profiles.seed_everything(seed)
    model = CLIP(CLIPConfig(tok.vocab_size, tok.context_length, resolution=s.clip_resolution, embed_dim=s.embed_dim))
    losses = train_clip(model, clip_view(model, data.images), data.tokens(tok), steps or s.clip_steps, s.batch_size, s.clip_lr,
                        seed=seed, device=device, progress=progress, desc="CLIP" if seed == s.seed else f"CLIP (seed {seed})")
    return model.eval(), losses


def caption_bank(clip_model: CLIP, data: CaptionedImages, tok: Tokenizer) -> CaptionBank:
    """Every distinct caption through the frozen text encoder (what the prior and decoder read)."""
    return CaptionBank.build(clip_model, data.tokens(tok))


def train_prior_stage(clip_model: CLIP, data: CaptionedImages, bank: CaptionBank, s: profiles.OwnDataSettings,
                      device: str | torch.device = "cpu", progress: bool = True,
                      z_images: torch.Tensor | None = None) -> tuple[DiffusionPrior, list[float]]:
    """Lesson 06 on this data: caption → CLIP image embedding. ``z_images`` ``(N, D)``: the images' CLIP embeddings if
    already computed (else they are). Returns ``(ema_prior, losses)``."""
    profiles.seed_everything(s.seed)
    z_images = embed(clip_model, data.images) if z_images is None else z_images
    model = DiffusionPrior(PriorConfig(embed_dim=z_images.shape[-1], token_width=bank.features.shape[-1],
                                       context_length=bank.features.shape[1]))
    schedule = diffusion.cosine_schedule()

    def loss_fn(m, idx, gen):
        text, feats, mask = bank.random_paraphrase(idx, gen)
        return prior_loss(m, z_images[idx].to(device), text.to(device), feats.to(device), mask.to(device), schedule, 0.1, gen)

    ema, losses = training.train(model, loss_fn, z_images, s.prior_steps, 2 * s.diffusion_batch_size, 1e-3, weight_decay=1e-2, seed=s.seed,
                                 device=device, desc="diffusion prior", progress=progress)
    return ema.module.eval(), losses


def train_decoder_stage(clip_model: CLIP, data: CaptionedImages, bank: CaptionBank, s: profiles.OwnDataSettings,
                        device: str | torch.device = "cpu", progress: bool = True,
                        z_images: torch.Tensor | None = None) -> tuple[Decoder, list[float]]:
    """Lesson 07 on this data: CLIP image embedding (+ caption) → a 16×16 picture. ``z_images`` as in
    :func:`train_prior_stage`. Returns ``(ema_decoder, losses)``."""
    profiles.seed_everything(s.seed)
    z_images = embed(clip_model, data.images) if z_images is None else z_images
    low = upsampler_lib.downsample(data.images, LOW).to(device)
    model = Decoder(decoder_config(z_images.shape[-1]))  # lesson 07's decoder: lesson 05's U-Net at 16×16
    schedule = diffusion.cosine_schedule()

    def loss_fn(m, idx, gen):
        _, feats, mask = bank.random_paraphrase(idx, gen)
        return decoder_loss(m, low[idx.to(device)], z_images[idx].to(device), feats.to(device), mask.to(device), schedule, 0.1, 0.5, gen)

    ema, losses = training.train(model, loss_fn, low, s.decoder_steps, s.diffusion_batch_size, 2e-3, seed=s.seed, device=device,
                                 desc="unCLIP decoder", progress=progress)
    return ema.module.eval(), losses


def train_upsampler_stage(data: CaptionedImages, s: profiles.OwnDataSettings, device: str | torch.device = "cpu",
                          progress: bool = True) -> tuple[UNet, list[float]]:
    """Lesson 08 on this data: 16×16 → 32×32 (no caption). Returns ``(ema_upsampler, losses)``."""
    profiles.seed_everything(s.seed)
    model = UNet(upsampler_lib.upsampler_config())
    schedule = diffusion.cosine_schedule()
    images = data.images.to(device)

    def loss_fn(m, idx, gen):
        return upsampler_lib.upsampler_loss(m, images[idx.to(device)], schedule, 0.6, LOW, gen)

    ema, losses = training.train(model, loss_fn, images, s.upsampler_steps, s.diffusion_batch_size, 2e-3, seed=s.seed, device=device,
                                 desc="upsampler 16→32", progress=progress)
    return ema.module.eval(), losses


def train_all(data: CaptionedImages, s: profiles.OwnDataSettings, device: str | torch.device = "cpu",
              progress: bool = True) -> tuple[UnCLIP, dict[str, list[float]]]:
    """All four stages in order; returns the assembled :class:`~dalle2_lessons.unclip.UnCLIP` and every stage's losses."""
    tok = data.tokenizer()
    clip_model, clip_losses = train_clip_stage(data, tok, s, s.seed, device, progress)
    bank = caption_bank(clip_model, data, tok)
    z_images = embed(clip_model, data.images)  # once, for both stages
    prior, prior_losses = train_prior_stage(clip_model, data, bank, s, device, progress, z_images)
    dec, decoder_losses = train_decoder_stage(clip_model, data, bank, s, device, progress, z_images)
    up, upsampler_losses = train_upsampler_stage(data, s, device, progress)
    losses = {"CLIP": clip_losses, "prior": prior_losses, "decoder": decoder_losses, "upsampler": upsampler_losses}
    return UnCLIP(clip_model, prior, dec, up, tok), losses


# ----------------------------------------------------------------------------------------------
# Measuring without a judge.


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """CLIP score of matching rows ``(N, D)`` and ``(N, D)``: ``100 · max(cos, 0)``, ``(N,)``
    (Hessel et al. 2021 without their 2.5 weight; the scale ``torchmetrics`` uses)."""
    return 100 * F.cosine_similarity(image_emb, text_emb, dim=-1).clamp(min=0)


def class_embeddings(clip_model: CLIP, tok: Tokenizer, data: CaptionedImages) -> torch.Tensor:
    """Prompt ensembling (lesson 01): each class's normalised mean text embedding over its templates, ``(K, D)``."""
    prompts = data.class_prompts()
    emb = embed_texts(clip_model, tok.encode_batch([p for ps in prompts for p in ps]))
    return F.normalize(emb.view(len(prompts), len(prompts[0]), -1).mean(1), dim=-1)


def zero_shot_predict(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """The class whose embedding is nearest each image's: ``(N, D)``, ``(K, D)`` → ``(N,)`` int64."""
    return (F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T).argmax(-1)


def zero_shot_accuracy(clip_model: CLIP, tok: Tokenizer, data: CaptionedImages) -> float:
    """Share of ``data``'s images whose nearest class prompt is their label (chance: 1 / classes)."""
    pred = zero_shot_predict(embed(clip_model, data.images), class_embeddings(clip_model, tok, data))
    return float((pred == data.labels).float().mean())


def retrieval_recall(clip_model: CLIP, tok: Tokenizer, data: CaptionedImages, k: int = 5) -> tuple[float, float]:
    """Caption → image retrieval among ``data``'s images (first caption of each): recall at 1 and at ``k``. A hit is
    an image with the same first caption (several images may share one). For data without class labels."""
    text = embed_texts(clip_model, tok.encode_batch([c[0] for c in data.captions]))
    order = (text @ embed(clip_model, data.images).T).argsort(dim=1, descending=True)
    ids = {}
    caption_id = torch.tensor([ids.setdefault(c[0], len(ids)) for c in data.captions])
    ranked = (caption_id[:, None] == caption_id[None, :]).gather(1, order)
    return float(ranked[:, :1].any(1).float().mean()), float(ranked[:, :k].any(1).float().mean())


@dataclass
class Scores:
    """CLIP-based scores of some images against the captions they were meant to show."""

    clip_score: float  #: mean CLIP score with the pipeline's CLIP
    referee_score: float  #: the same with the referee CLIP (trained with another seed; the generator never saw it)
    class_accuracy: float | None  #: share classified (zero-shot, referee CLIP) as the class they were meant to show

    def __str__(self) -> str:
        acc = "" if self.class_accuracy is None else f"   referee's zero-shot class {self.class_accuracy:6.1%}"
        return f"CLIP score {self.clip_score:5.1f}   referee CLIP score {self.referee_score:5.1f}{acc}"


def score_samples(images: torch.Tensor, captions: list[str], clip_model: CLIP, referee: CLIP, tok: Tokenizer,
                  labels: torch.Tensor | None = None, data: CaptionedImages | None = None) -> Scores:
    """Score ``(N, 3, 32, 32)`` images against their ``N`` captions with both CLIPs; with ``labels`` and a labelled
    ``data`` (for its class prompts), also the referee's zero-shot class accuracy."""
    tokens = tok.encode_batch(captions)
    own = clip_score(embed(clip_model, images), embed_texts(clip_model, tokens)).mean()
    ref_img = embed(referee, images)
    ref = clip_score(ref_img, embed_texts(referee, tokens)).mean()
    acc = None
    if labels is not None and data is not None and data.classes is not None:
        acc = float((zero_shot_predict(ref_img, class_embeddings(referee, tok, data)) == labels).float().mean())
    return Scores(float(own), float(ref), acc)
