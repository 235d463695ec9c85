"""CLIP from scratch: a transformer text encoder, a CNN image encoder, and the contrastive loss.

CLIP (Radford et al., 2021) learns one embedding space for captions and images: a batch of ``B``
(image, caption) pairs gives a ``B × B`` matrix of cosine similarities, and the loss asks each image to
pick its own caption out of the ``B`` (and each caption its image). Nothing else: no labels, no
reconstruction. What the embedding ends up keeping is whatever helps tell the captions of a batch apart.

This file follows the paper's design at toy scale:

* text: token + position embeddings, pre-norm transformer blocks with *causal* multi-head self-attention
  (:mod:`~dalle2_lessons.transformer`, shared with the prior and DALL·E 1), a final LayerNorm, the features at
  the ``<end>`` token, and a linear projection;
* image: a small ResNet-style CNN finished, as CLIP's ResNets are, by *attention pooling* (one query that
  attends over the spatial grid with position embeddings), then a linear projection. A CNN rather than a
  ViT because at 16–32 px and a few thousand training steps on a CPU its built-in locality learns faster;
* both embeddings L2-normalised; a learnable temperature initialised at 1/0.07 and clamped at 100.

What a trained CLIP's embeddings know (zero-shot, retrieval, probes) is measured in
:mod:`~dalle2_lessons.clip_embeddings`; ``transformers``' CLIP, next to ours, is in :mod:`~dalle2_lessons.clip_hf`.

The command that rebuilds the course checkpoint ``clip`` is in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import builders, checkpoints, profiles, shapes, tokenizer
# re-exported: the lessons and the later stages use a frozen CLIP through clip.embed_images, clip.CaptionBank, ...
from .clip_embeddings import CaptionBank, embed_images, embed_texts, encode_captions, evaluate_clip  # noqa: F401
from .training import warmup_cosine
from .transformer import Block, MultiHeadAttention

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # the paper's initial temperature τ = 0.07
LOGIT_SCALE_MAX = math.log(100.0)  # "clipped to prevent scaling the logits by more than 100"


class TextEncoder(nn.Module):
    """Tokens ``(B, L)`` int64 → text features ``(B, embed_dim)`` (not normalised).

    The caption's summary is read at its ``<end>`` token, the largest id in every row (as in CLIP):
    thanks to the causal mask, that is the one position that has seen the whole caption.
    """

    def __init__(
        self, vocab_size: int, context_length: int, width: int = 128, layers: int = 3, heads: int = 4,
        embed_dim: int = 64,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.blocks = nn.Sequential(*[Block(width, heads, causal=True) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width)
        self.projection = nn.Linear(width, embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor, return_tokens: bool = False) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.blocks(x))  # (B, L, width)
        if return_tokens:  # every position's features, for models that condition on the whole caption
            return x
        return self.projection(x[torch.arange(len(tokens)), tokens.argmax(dim=-1)])


class ResidualBlock(nn.Module):
    """Two 3×3 convs with BatchNorm and a skip; ``stride=2`` halves the resolution."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class AttentionPool(nn.Module):
    """CLIP's attention pooling: ``(B, C, H, W)`` → ``(B, C)``.

    The mean of the grid is the query; it attends over the grid and itself, each with a learned position
    embedding, so the result can say *where* things are (a global average pool could not).
    """

    def __init__(self, channels: int, grid: int, heads: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, channels) / channels**0.5)
        self.attn = MultiHeadAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding
        return self.attn(x[:, :1], context=x)[:, 0]


class ImageEncoder(nn.Module):
    """Images ``(B, 3, R, R)`` in [-1, 1] → image features ``(B, embed_dim)`` (not normalised)."""

    def __init__(self, resolution: int = 16, width: int = 32, embed_dim: int = 64, heads: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            ResidualBlock(width, width),
            ResidualBlock(width, 2 * width, stride=2),
            ResidualBlock(2 * width, 4 * width, stride=2),
        )
        self.pool = AttentionPool(4 * width, resolution // 4, heads)
        self.projection = nn.Linear(4 * width, embed_dim, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.pool(self.stages(self.stem(images))))


@dataclass(frozen=True)
class CLIPConfig:
    """Everything needed to rebuild a :class:`CLIP` (stored in its checkpoint's JSON)."""

    vocab_size: int
    context_length: int
    resolution: int = 16
    embed_dim: int = 64
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    image_width: int = 32
    image_heads: int = 4


class CLIP(nn.Module):
    """The two encoders and the temperature. ``encode_*`` return L2-normalised embeddings."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        c = config
        self.text = TextEncoder(c.vocab_size, c.context_length, c.text_width, c.text_layers, c.text_heads, c.embed_dim)
        self.image = ImageEncoder(c.resolution, c.image_width, c.embed_dim, c.image_heads)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` int64 → ``(B, E)`` unit vectors."""
        return F.normalize(self.text(tokens), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` in [-1, 1] → ``(B, E)`` unit vectors."""
        return F.normalize(self.image(images), dim=-1)

    def temperature_scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, clamped to at most 100 as in the paper."""
        return self.logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The contrastive loss of a batch of matching pairs (a scalar)."""
        return contrastive_loss(self.image(images), self.text(tokens), self.temperature_scale())

    def config_dict(self) -> dict:
        return asdict(self.config)


def contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy (InfoNCE) loss.

    Args:
        image_features, text_features: ``(B, E)``; row ``i`` of each is a matching pair. Normalised here.
        scale: ``exp(logit_scale)``, i.e. 1 / temperature.
    Returns:
        scalar: the mean of image→text and text→image cross-entropies over the ``B × B`` logits.
    """
    image_features = F.normalize(image_features, dim=-1)
    text_features = F.normalize(text_features, dim=-1)
    logits = scale * image_features @ text_features.T  # (B, B): row i = image i against every caption
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def hard_negative_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, negative_features: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """CLIP's loss with one extra, hard negative caption per image (NegCLIP, Yuksekgonul et al., 2023).

    Each image must now pick its caption among the batch's ``B`` captions *and* ``B`` near-misses (e.g.
    its own caption with the two objects swapped), so words alone no longer suffice. The captions'
    side of the loss is unchanged: a near-miss has no image of its own.

    Args:
        image_features, text_features: ``(B, E)``, row ``i`` a matching pair; negative_features:
            ``(B, E)``, row ``i`` a caption that does *not* describe image ``i``. Normalised here.
    Returns:
        scalar.
    """
    u, v, w = (F.normalize(f, dim=-1) for f in (image_features, text_features, negative_features))
    logits = scale * u @ torch.cat([v, w]).T  # (B, 2B): every caption, then every near-miss
    labels = torch.arange(len(u), device=u.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, : len(u)].T, labels)) / 2


# ----------------------------------------------------------------------------------------------
# Training.


def caption_tokens(tokenizer, tier: str, attrs: torch.Tensor, mentions: np.ndarray | None = None) -> torch.Tensor:
    """Every paraphrase of every scene, tokenised once: ``(N, n_templates, L)`` int64. ``mentions``: ``(N,
    n_templates, A)`` bool, which attributes each paraphrase names (:attr:`~.shapes.Scenes.mentions`; default all)."""
    n_t = shapes.n_templates(tier)
    if mentions is None:
        texts = [shapes.caption(tier, a, t) for a in attrs.tolist() for t in range(n_t)]
    else:
        texts = [shapes.caption(tier, a, t, m[t]) for a, m in zip(attrs.tolist(), mentions) for t in range(n_t)]
    unique = sorted(set(texts))  # a few thousand distinct captions: encode each once
    index = {text: i for i, text in enumerate(unique)}
    ids = torch.tensor([index[t] for t in texts])
    return tokenizer.encode_batch(unique)[ids].view(len(attrs), n_t, -1)


def train_clip(
    model: CLIP,
    images: torch.Tensor,
    tokens: torch.Tensor,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    negatives: torch.Tensor | None = None,
    desc: str = "CLIP",
    callback: Callable[[int, nn.Module], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on matching pairs; returns the loss of every step.

    Args:
        images: ``(N, 3, R, R)`` in [-1, 1].
        tokens: ``(N, n_templates, L)``: each step picks a random paraphrase of each scene's caption,
            so the text encoder must learn that they mean the same thing.
        steps, batch_size, lr, weight_decay: AdamW with linear warm-up then cosine decay to zero.
        warmup: warm-up steps (default: a tenth of ``steps``, at most 100).
        negatives: optional ``(N, n_templates, L)`` near-miss captions, one per scene and paraphrase;
            when given, the loss is :func:`hard_negative_loss` (lesson 02).
        desc: the progress bar's label.
        callback: called as ``callback(step, model)`` after every step (``step`` counts from 1), e.g. to measure it.
    """
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup, max_warmup=100))
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        idx = torch.randint(len(images), (batch_size,), generator=gen)
        which = torch.randint(tokens.shape[1], (batch_size,), generator=gen)
        if negatives is None:
            loss = model(images[idx].to(device), tokens[idx, which].to(device))
        else:
            text = model.text(torch.cat([tokens[idx, which], negatives[idx, which]]).to(device))
            loss = hard_negative_loss(model.image(images[idx].to(device)), *text.chunk(2), model.temperature_scale())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 25 == 0:
            bar.set_postfix(loss=f"{sum(losses[-25:]) / 25:.3f}", T=f"{1 / model.temperature_scale().item():.3f}")
        if callback is not None:
            callback(len(losses), model)
    return losses


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


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
    version: str = "v2"  #: the Shapes version it learns from (:data:`~.shapes.VERSIONS`)


# Lesson 01 trains at 32 px (Shapes v2), where a step of 128 costs the better part of a second on two cores: in
# `cpu` it trains 250 steps (and the library's CLIP as many); the course checkpoints pin `--steps 1000`.
PRESETS: dict[str, ClipSettings] = {
    "ci": ClipSettings(16, n_train=2_000, steps=80, batch_size=64, lr=2e-3, embed_dim=64,
                       n_eval=256, n_retrieval=128, n_probe=1_000),
    "cpu": ClipSettings(16, n_train=20_000, steps=250, batch_size=128, lr=2e-3, embed_dim=64,
                        n_eval=2_000, n_retrieval=256, n_probe=5_000),
    "gpu": ClipSettings(16, n_train=20_000, steps=3_000, batch_size=128, lr=2e-3, embed_dim=64,
                        n_eval=2_000, n_retrieval=256, n_probe=5_000),
}


def build(cfg: ClipSettings, device: str | torch.device = "cpu", *, clip: object = None,
          eval_every: int | None = None, n_eval: int | None = None, progress: bool = True,
          callback: Callable[[int, nn.Module], None] | None = None) -> builders.Built:
    """Train the course CLIP with ``cfg`` on Shapes scenes (``clip`` is ignored: this *is* the CLIP; ``eval_every``
    and ``n_eval`` too: CLIP is measured after training, by :func:`evaluate_clip`). ``callback`` as in
    :func:`train_clip`, e.g. to measure it as it learns; ``train_seconds`` include what the callback spent."""
    profiles.seed_everything(cfg.seed)
    tok = tokenizer.for_version(cfg.version)
    train = shapes.ShapesDataset("train", n=cfg.n_train, resolution=cfg.resolution, version=cfg.version)
    model = CLIP(CLIPConfig(tok.vocab_size, tok.context_length, cfg.resolution, cfg.embed_dim))
    t0 = time.perf_counter()
    tokens = caption_tokens(tok, "single", train.attrs, train.scenes.mentions)
    losses = train_clip(model, train.images, tokens, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        progress=progress, callback=callback)
    return builders.Built(model.eval(), {"loss": losses}, time.perf_counter() - t0, [], cfg)


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser("Train the course CLIP and save it as a checkpoint.", None, 0,
                                 "unused: the profile's n_eval and n_retrieval set the evaluation", versioned=True)
    p.add_argument("--resolution", type=int, default=None, help="image side (default: the profile's)")
    args, cfg, _, built = builders.run_builder(p, PRESETS, build, argv, needs_clip=lambda cfg: False)
    model = built.model
    results = evaluate_clip(model, tokenizer.for_version(cfg.version), cfg.resolution, cfg.n_eval, cfg.n_retrieval,
                            version=cfg.version)
    for split, row in results.items():
        print(f"{split:8s} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    rebuild = checkpoints.command("clip", profile=args.profile, steps=args.steps, version=args.version,
                                  resolution=args.resolution)
    builders.save_build(checkpoints.versioned("clip", cfg.version), built, args, {"eval": results}, rebuild)


def builder_clip(args) -> CLIP:
    """The CLIP a checkpoint builder trains on: the course's, or with ``--clip yours`` yours of ``--profile``."""
    return load_clip(args.profile if args.clip == "yours" else None, version=getattr(args, "version", None) or "v2")


def load_clip(profile: str | None = None, device: str | torch.device = "cpu", for_stages: Sequence[str] = (),
              version: str = "v2") -> CLIP:
    """Your CLIP of ``profile`` if you trained one in lesson 01, else the course checkpoint (eval mode).

    ``for_stages`` names the stages a lesson will feed this CLIP's embeddings to (``("prior", "decoder")``): your
    CLIP is then used only if each of them has a checkpoint trained on it, and otherwise the course CLIP, with a
    message saying why. The course stages were trained on the course CLIP; fed another CLIP's embeddings they draw
    nonsense, however good that CLIP is.
    """
    name = checkpoints.versioned("clip", version)  # clip (v1) or clip-v2: lesson 01 saves yours under that name
    own = profile is not None and (checkpoints.runs_dir(profile) / f"{name}.safetensors").is_file()
    if for_stages and own:
        stages = [checkpoints.versioned(stage, version) for stage in for_stages]
        missing = checkpoints.stages_without(name, profile, stages, role="clip")
        if missing:
            print(f"Your CLIP ({checkpoints.runs_dir(profile) / name}.safetensors) is not used here: no "
                  f"{' or '.join(missing)} was trained on its embeddings yet. This lesson uses the course CLIP and the "
                  f"stages built on it (to use yours, train them on it with --clip yours; see checkpoints.PARENTS).")
            profile = None
    return checkpoints.load_model(checkpoints.versioned("clip", version), lambda config: CLIP(CLIPConfig(**config)),
                                  profile, device)


if __name__ == "__main__":
    main()
