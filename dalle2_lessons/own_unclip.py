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

from . import profiles
from . import upsampler as upsampler_lib
from .clip import CLIP, CaptionBank, CLIPConfig, ClipSettings, embed_images, embed_texts, train_clip
from .decoder import DecoderSettings, train_decoder
from .own_data import CaptionedImages
from .prior import PriorSettings, train_prior
from .tokenizer import Tokenizer
from .unclip import UnCLIP
from .upsampler import UpsamplerSettings, train_upsampler

LOW = upsampler_lib.LOW  #: the decoder draws LOW × LOW images; the upsampler doubles them


def clip_view(clip_model: CLIP, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 32, 32)`` pictures as this CLIP reads them: downsampled to its resolution where that is smaller."""
    r = clip_model.config.resolution
    return images if images.shape[-1] == r else upsampler_lib.downsample(images, r)


def embed(clip_model: CLIP, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``(N, D)`` of ``(N, 3, 32, 32)`` pictures, whatever resolution the CLIP reads."""
    return embed_images(clip_model, clip_view(clip_model, images))


# ----------------------------------------------------------------------------------------------
# Settings: each stage's own settings class, combined (profiles.py picks the preset).


@dataclass(frozen=True)
class OwnDataSettings:
    """Lesson 14: the four stages trained on a torchvision dataset (or your folder), each with its own settings."""

    n_train: int  #: training images taken from the dataset (stand-in files are written with this many)
    n_test: int  #: test images for zero-shot accuracy and the real-image scores
    n_per_class: int  #: samples per class in the grid and the scores
    #: ``clip.resolution``: CLIP reads the 32×32 pictures downsampled to this (32 on a GPU: CIFAR-10 needs the pixels)
    clip: ClipSettings
    prior: PriorSettings
    decoder: DecoderSettings
    upsampler: UpsamplerSettings
    decoder_sample_steps: int = 50  #: DDIM steps of the decoder when generating
    dataset: str = "fashion_mnist"
    seed: int = 0
    referee_seed: int = 1  #: the second CLIP, which scores the samples without having shaped them


def _own(n_train: int, n_test: int, n_per_class: int, clip_steps: int, prior_steps: int, decoder_steps: int,
         upsampler_steps: int, batch: int, clip_batch: int = 128, clip_resolution: int = 16,
         sample_steps: tuple[int, int, int] = (64, 50, 25)) -> OwnDataSettings:
    """A preset. ``batch``: the diffusion stages' batch (on a CPU, more small steps beat fewer big ones); the prior,
    whose examples are single vectors, takes twice as many. ``clip_batch``: CLIP's, larger, since contrastive
    learning wants many negatives."""
    prior_steps_sample, decoder_sample_steps, upsampler_sample_steps = sample_steps
    return OwnDataSettings(
        n_train, n_test, n_per_class,
        clip=ClipSettings(clip_resolution, n_train=n_train, steps=clip_steps, batch_size=clip_batch,
                          lr=2e-3, embed_dim=64, n_eval=n_test, n_retrieval=min(256, n_test), n_probe=n_train),
        prior=PriorSettings(n_train=n_train, steps=prior_steps, batch_size=2 * batch, lr=1e-3, n_eval=n_test,
                            sample_steps=prior_steps_sample),
        # lesson 14 was measured with the v1 course's ε-prediction decoder and its upsampler's blur of 0.6 px
        decoder=DecoderSettings(n_train=n_train, steps=decoder_steps, batch_size=batch, lr=2e-3, n_eval=n_test,
                                prediction_type="epsilon"),
        upsampler=UpsamplerSettings(n_train=n_train, steps=upsampler_steps, batch_size=batch, lr=2e-3, n_eval=n_test,
                                    sample_steps=upsampler_sample_steps, max_sigma=0.6),
        decoder_sample_steps=decoder_sample_steps,
    )


PRESETS: dict[str, OwnDataSettings] = {
    "ci": _own(500, 100, 2, clip_steps=40, prior_steps=30, decoder_steps=30, upsampler_steps=20, batch=32,
               clip_batch=32, sample_steps=(8, 8, 5)),
    "cpu": _own(10_000, 1_000, 8, clip_steps=400, prior_steps=400, decoder_steps=600, upsampler_steps=300, batch=64),
    "gpu": _own(50_000, 5_000, 16, clip_steps=2_000, prior_steps=2_000, decoder_steps=4_000, upsampler_steps=2_000,
                batch=128, clip_resolution=32),
}


# ----------------------------------------------------------------------------------------------
# Training: the stages' own trainers, on this data.


def train_clip_stage(data: CaptionedImages, tok: Tokenizer, cfg: ClipSettings, device: str | torch.device = "cpu",
                     progress: bool = True) -> tuple[CLIP, list[float]]:
    """Lesson 01 on this data: a CLIP reading ``cfg.resolution`` pixels and this dataset's words (``tok``), trained
    with :func:`~dalle2_lessons.clip.train_clip`. Returns ``(clip, losses)``."""
    profiles.seed_everything(cfg.seed)
    model = CLIP(CLIPConfig(tok.vocab_size, tok.context_length, resolution=cfg.resolution, embed_dim=cfg.embed_dim))
    losses = train_clip(model, clip_view(model, data.images), data.tokens(tok), cfg.steps, cfg.batch_size, cfg.lr,
                        seed=cfg.seed, device=device, progress=progress, desc=f"CLIP (seed {cfg.seed})")
    return model.eval(), losses


def caption_bank(clip_model: CLIP, data: CaptionedImages, tok: Tokenizer) -> CaptionBank:
    """Every distinct caption through the frozen text encoder (what the prior and decoder read)."""
    return CaptionBank.build(clip_model, data.tokens(tok))


def train_all(data: CaptionedImages, s: OwnDataSettings, device: str | torch.device = "cpu",
              progress: bool = True) -> tuple[UnCLIP, dict[str, list[float]]]:
    """All four stages in order, each with its own lesson's trainer (lessons 01, 06, 07, 08); returns the assembled
    :class:`~dalle2_lessons.unclip.UnCLIP` and every stage's losses. The decoder paints LOW × LOW pictures and the
    upsampler doubles them."""
    tok = data.tokenizer()
    clip_model, clip_losses = train_clip_stage(data, tok, s.clip, device, progress)
    bank = caption_bank(clip_model, data, tok)
    z_images = embed(clip_model, data.images)  # once, for both stages
    prior, prior_losses = train_prior(s.prior, z_images, bank, device, progress)
    low = upsampler_lib.downsample(data.images, LOW)
    dec, decoder_losses = train_decoder(s.decoder, low, z_images, bank, device, progress)
    up, upsampler_losses = train_upsampler(s.upsampler, data.images, device, progress)
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
