"""CLIP from scratch: a transformer text encoder, a CNN image encoder, and the contrastive loss.

CLIP (Radford et al., 2021) learns one embedding space for captions and images: a batch of ``B``
(image, caption) pairs gives a ``B × B`` matrix of cosine similarities, and the loss asks each image to
pick its own caption out of the ``B`` (and each caption its image). Nothing else: no labels, no
reconstruction. What the embedding ends up keeping is whatever helps tell the captions of a batch apart.

This file follows the paper's design at toy scale:

* text: token + position embeddings, pre-norm transformer blocks with *causal* multi-head self-attention,
  a final LayerNorm, the features at the ``<end>`` token, and a linear projection;
* image: a small ResNet-style CNN finished, as CLIP's ResNets are, by *attention pooling* (one query that
  attends over the spatial grid with position embeddings), then a linear projection. A CNN rather than a
  ViT because at 16–32 px and a few thousand training steps on a CPU its built-in locality learns faster;
* both embeddings L2-normalised; a learnable temperature initialised at 1/0.07 and clamped at 100.

Rebuild the course checkpoint: ``python -m dalle2_lessons.clip`` (see :func:`main`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoints, profiles, shapes, tokenizer

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # the paper's initial temperature τ = 0.07
LOGIT_SCALE_MAX = math.log(100.0)  # "clipped to prevent scaling the logits by more than 100"


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / √d + mask) v.

    Args:
        q: ``(..., T, d)`` queries; k, v: ``(..., S, d)`` keys and values.
        causal: if True, position ``t`` may only attend to positions ``≤ t`` (needs ``T == S``).
    Returns:
        ``(..., T, d)``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """``(B, T, C)`` → ``(B, T, C)``: ``heads`` attentions of width ``C / heads`` side by side."""

    def __init__(self, width: int, heads: int, causal: bool = False):
        super().__init__()
        assert width % heads == 0, "width must be divisible by heads"
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over ``x``; with ``context`` ``(B, S, C)``, queries from ``x`` attend to it."""
        b, t, c = x.shape
        source = x if context is None else context
        wq, wk, wv = self.qkv.weight.chunk(3)
        bq, bk, bv = self.qkv.bias.chunk(3)
        split = lambda y: y.view(b, y.shape[1], self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(F.linear(x, wq, bq)), split(F.linear(source, wk, bk)), split(F.linear(source, wv, bv))
        y = scaled_dot_product_attention(q, k, v, causal=self.causal)  # (B, heads, T, C/heads)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``. ``(B, T, C)`` → same."""

    def __init__(self, width: int, heads: int, causal: bool):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = MultiHeadAttention(width, heads, causal)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TextEncoder(nn.Module):
    """Tokens ``(B, L)`` int64 → text features ``(B, embed_dim)`` (not normalised).

    The caption's summary is read at its ``<end>`` token, the largest id in every row (as in CLIP):
    thanks to the causal mask, that is the one position that has seen the whole caption.
    """

    def __init__(self, vocab_size: int, context_length: int, width: int = 128, layers: int = 3, heads: int = 4, embed_dim: int = 64):
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
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

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


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
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


def hard_negative_loss(image_features: torch.Tensor, text_features: torch.Tensor, negative_features: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
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


def caption_tokens(tokenizer, tier: str, attrs: torch.Tensor) -> torch.Tensor:
    """Every paraphrase of every scene, tokenised once: ``(N, n_templates, L)`` int64."""
    n_t = shapes.n_templates(tier)
    texts = [shapes.caption(tier, a, t) for a in attrs.tolist() for t in range(n_t)]
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
    warmup = warmup or max(1, min(100, steps // 10))

    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
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


@torch.no_grad()
def embed_images(model: CLIP, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, E)`` unit vectors (eval mode, on the model's device, returned on the CPU)."""
    model.eval()
    device = model.logit_scale.device
    return torch.cat([model.encode_image(x.to(device)).cpu() for x in images.split(batch_size)])


@torch.no_grad()
def embed_texts(model: CLIP, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``(N, L)`` → ``(N, E)`` unit vectors."""
    model.eval()
    device = model.logit_scale.device
    return torch.cat([model.encode_text(t.to(device)).cpu() for t in tokens.split(batch_size)])


@torch.no_grad()
def encode_captions(model: CLIP, tokens: torch.Tensor, pad_id: int = 0, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What unCLIP's prior and decoder read of a caption: ``(N, L)`` ids → ``(embeddings (N, E) unit norm,
    per-token features (N, L, width), token mask (N, L) bool, True for real tokens)``."""
    model.eval()
    device = model.logit_scale.device
    emb, feats = [], []
    for chunk in tokens.split(batch_size):
        chunk = chunk.to(device)
        emb.append(model.encode_text(chunk).cpu())
        feats.append(model.text(chunk, return_tokens=True).cpu())
    return torch.cat(emb), torch.cat(feats), tokens != pad_id


@dataclass
class CaptionBank:
    """Every distinct caption of a dataset through the frozen text encoder, once.

    ``index[i, k]`` is the row of scene ``i``'s ``k``-th paraphrase in ``embeddings`` ``(U, E)``,
    ``features`` ``(U, L, width)`` and ``mask`` ``(U, L)``; a few thousand rows serve 20 000 scenes.
    """

    embeddings: torch.Tensor
    features: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor

    @classmethod
    def build(cls, model: CLIP, tokens: torch.Tensor) -> CaptionBank:
        """``tokens`` ``(N, T, L)``: ``T`` paraphrases of each of ``N`` scenes (as from :func:`caption_tokens`)."""
        unique, inverse = torch.unique(tokens.flatten(0, 1), dim=0, return_inverse=True)
        emb, feats, mask = encode_captions(model, unique)
        return cls(emb, feats, mask, inverse.view(tokens.shape[:2]))

    def random_paraphrase(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For scenes ``idx`` ``(B,)``: one random paraphrase each, as ``(embeddings, features, mask)``."""
        k = torch.randint(self.index.shape[1], (len(idx),), generator=generator)
        rows = self.index[idx, k]
        return self.embeddings[rows], self.features[rows], self.mask[rows]


# ----------------------------------------------------------------------------------------------
# What the embedding knows: zero-shot classification, retrieval, linear probes.


def prompt_bank(tokenizer, tier: str = "single") -> tuple[torch.Tensor, torch.Tensor]:
    """Every caption of every attribute combination (held-out pairs included: they are just words).

    Returns:
        ``(tokens (P, L), attrs (P, A))`` with ``P = combinations × templates``.
    """
    names = shapes.TIERS[tier]
    combos = [c for c in itertools.product(*(range(len(shapes.ATTRIBUTE_VALUES[n])) for n in names))]
    if tier == "relation":  # a scene's two objects always differ
        combos = [c for c in combos if (c[0], c[1]) != (c[3], c[4])]
    attrs = torch.tensor(combos).repeat_interleave(shapes.n_templates(tier), dim=0)
    texts = [shapes.caption(tier, a, t % shapes.n_templates(tier)) for t, a in enumerate(attrs)]
    return tokenizer.encode_batch(texts), attrs


def zero_shot_classifiers(text_embeddings: torch.Tensor, attrs: torch.Tensor, tier: str = "single") -> dict[str, torch.Tensor]:
    """Prompt ensembling: class ``k`` of an attribute is the normalised mean embedding of every prompt
    that states ``k`` (whatever the other attributes and the paraphrase).

    Args:
        text_embeddings: ``(P, E)`` unit vectors of a :func:`prompt_bank`; attrs: its ``(P, A)``.
    Returns:
        ``{attribute: (n_classes, E)}`` unit vectors.
    """
    return {
        name: class_embeddings(text_embeddings, attrs[:, j], len(shapes.ATTRIBUTE_VALUES[name]))
        for j, name in enumerate(shapes.TIERS[tier])
    }


def class_embeddings(text_embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One embedding per class: the mean of the prompts that state it, renormalised to unit length.

    Args:
        text_embeddings: ``(P, E)`` unit vectors of ``P`` prompts.
        labels: ``(P,)`` int64, the class each prompt states.
    Returns:
        ``(n_classes, E)`` unit vectors.
    """
    sums = torch.zeros(n_classes, text_embeddings.shape[1], dtype=text_embeddings.dtype).index_add_(0, labels, text_embeddings)
    return F.normalize(sums, dim=-1)  # the mean and the sum point the same way


def zero_shot_accuracy(image_embeddings: torch.Tensor, attrs: torch.Tensor, classifiers: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of images whose nearest class embedding is the true class, per attribute."""
    return {
        name: float(((image_embeddings @ w.T).argmax(-1) == attrs[:, j]).float().mean())
        for j, (name, w) in enumerate(classifiers.items())
    }


def recall_at_k(similarity: torch.Tensor, query_attrs: torch.Tensor, item_attrs: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Retrieval recall: a query scores a hit at ``k`` if one of its ``k`` most similar items has exactly
    the attributes it asked for (several images can match one caption, so "its own image" is too strict).

    Args:
        similarity: ``(Q, I)`` query-by-item scores.
        query_attrs: ``(Q, A)``; item_attrs: ``(I, A)``.
    """
    matches = (query_attrs[:, None, :] == item_attrs[None, :, :]).all(-1)  # (Q, I)
    order = similarity.argsort(dim=1, descending=True)
    ranked = matches.gather(1, order)
    return {k: float(ranked[:, :k].any(1).float().mean()) for k in ks}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, n_classes: int, weight_decay: float = 1e-3, iters: int = 100) -> float:
    """Multinomial logistic regression on frozen embeddings (L-BFGS); returns test accuracy.

    Args:
        train_x: ``(N, E)``; train_y: ``(N,)`` int64 (and the same for test).
    """
    torch.manual_seed(0)
    probe = nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(train_x), train_y) + weight_decay * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((probe(test_x).argmax(-1) == test_y).float().mean())


# ----------------------------------------------------------------------------------------------
# The same job done by a library: a tiny transformers.CLIPModel, built from a config (no download).


def hf_clip_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """``transformers``' own CLIP loss on a ``(B, B)`` text-by-image logit matrix (its name changed in v5)."""
    from transformers.models.clip import modeling_clip

    loss = getattr(modeling_clip, "clip_loss", None) or modeling_clip.image_text_contrastive_loss
    return loss(logits_per_text)


class HFCLIPAdapter(nn.Module):
    """A ``transformers.CLIPModel`` of about our size behind our CLIP's interface (``forward`` returns
    the loss, ``encode_*`` unit vectors), so the same training and evaluation code runs on both.

    The library's image tower is a ViT (4×4-pixel patches) and its temperature is not clamped.
    """

    def __init__(self, config: CLIPConfig, pad_id: int, start_id: int, end_id: int):
        super().__init__()
        import transformers

        width = 4 * config.image_width
        hf_config = transformers.CLIPConfig(
            text_config=dict(
                vocab_size=config.vocab_size, hidden_size=config.text_width, intermediate_size=4 * config.text_width,
                num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                max_position_embeddings=config.context_length, pad_token_id=pad_id, bos_token_id=start_id, eos_token_id=end_id,
            ),
            vision_config=dict(
                image_size=config.resolution, patch_size=4, hidden_size=width, intermediate_size=4 * width,
                num_hidden_layers=3, num_attention_heads=config.image_heads, num_channels=3,
            ),
            projection_dim=config.embed_dim,
        )  # fmt: skip
        self.hf = transformers.CLIPModel(hf_config)
        self.pad_id = pad_id

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.hf.logit_scale

    def temperature_scale(self) -> torch.Tensor:
        return self.hf.logit_scale.exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        out = self.hf(input_ids=tokens, pixel_values=images, attention_mask=(tokens != self.pad_id).long(), return_loss=True)
        return out.loss

    @staticmethod
    def _features(out) -> torch.Tensor:  # transformers < 5 returns the tensor, ≥ 5 an output object
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._features(self.hf.get_image_features(pixel_values=images)), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.hf.get_text_features(input_ids=tokens, attention_mask=(tokens != self.pad_id).long())
        return F.normalize(self._features(out), dim=-1)


# ----------------------------------------------------------------------------------------------
# Optional: OpenAI's pretrained CLIP, when it is in the local cache or may be downloaded.

PRETRAINED = "openai/clip-vit-base-patch32"
#: The pixel statistics OpenAI's CLIP was trained with (RGB in [0, 1]).
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def load_pretrained_clip(name: str = PRETRAINED, allow_download: bool = False):
    """``(transformers.CLIPModel, tokenizer)`` from the local Hugging Face cache, or downloaded (~600 MB)
    when ``allow_download``. Returns ``None``, with a message saying why, when neither works (offline,
    say): the optional pretrained sections of the lessons skip, they never fail."""
    import transformers

    try:
        model = transformers.CLIPModel.from_pretrained(name, local_files_only=not allow_download)
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=not allow_download)
    except Exception as e:  # noqa: BLE001 - offline, not cached, or a hub error: every one means "skip"
        why = "it is not in the local cache" if not allow_download else "it could not be downloaded"
        print(f"Skipping the pretrained CLIP {name!r}: {why} ({type(e).__name__}).")
        if not allow_download:
            print("Set allow_download=True (TRY_PRETRAINED = True in the lesson) on a machine with internet to fetch it.")
        return None
    return model.eval(), hf_tokenizer


@torch.no_grad()
def pretrained_zero_shot(model, hf_tokenizer, images: torch.Tensor, class_names: tuple[str, ...], template: str = "a photo of a {}") -> torch.Tensor:
    """Zero-shot classification with a ``transformers.CLIPModel``.

    Args:
        images: ``(B, 3, R, R)`` in [-1, 1]; resized to the model's input size and normalised as it expects.
        class_names: one prompt per class, ``template.format(name)``.
    Returns:
        ``(B,)`` int64 index of the most similar class prompt.
    """
    size = model.config.vision_config.image_size
    pixels = F.interpolate((images + 1) / 2, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    pixels = (pixels - torch.tensor(OPENAI_MEAN)[:, None, None]) / torch.tensor(OPENAI_STD)[:, None, None]
    text = hf_tokenizer([template.format(c) for c in class_names], padding=True, return_tensors="pt")
    image_emb = F.normalize(HFCLIPAdapter._features(model.get_image_features(pixel_values=pixels)), dim=-1)
    text_emb = F.normalize(HFCLIPAdapter._features(model.get_text_features(**text)), dim=-1)
    return (image_emb @ text_emb.T).argmax(dim=-1)


# ----------------------------------------------------------------------------------------------
# Evaluation in one call, and the command that rebuilds the course checkpoint.


def evaluate_clip(model: nn.Module, tokenizer, resolution: int, n: int = 2000, n_retrieval: int = 256, splits: tuple[str, ...] = ("test", "heldout")) -> dict[str, dict[str, float]]:
    """Zero-shot accuracy per attribute and retrieval recall@1/5 (text→image and image→text among
    ``n_retrieval`` images), for each split. Returns ``{split: {"colour": ..., "t2i@1": ..., ...}}``."""
    prompts, prompt_attrs = prompt_bank(tokenizer)
    classifiers = zero_shot_classifiers(embed_texts(model, prompts), prompt_attrs)
    results = {}
    for split in splits:
        ds = shapes.ShapesDataset(split, n=n, resolution=resolution)
        image_emb = embed_images(model, ds.images)
        row = zero_shot_accuracy(image_emb, ds.attrs, classifiers)
        k = min(n_retrieval, n)
        sim = embed_texts(model, tokenizer.encode_batch(ds.captions[:k])) @ image_emb[:k].T  # (captions, images)
        a = ds.attrs[:k]
        row.update({f"t2i@{r}": v for r, v in recall_at_k(sim, a, a).items()})
        row.update({f"i2t@{r}": v for r, v in recall_at_k(sim.T, a, a).items()})
        results[split] = row
    return results


def build_clip(
    profile_name: str,
    device: str | torch.device = "cpu",
    progress: bool = True,
    steps: int | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> tuple[CLIP, list[float], float]:
    """Train the course CLIP with a profile's settings (``steps`` overrides the profile's; ``callback`` as in
    :func:`train_clip`, e.g. to measure it as it learns). Returns ``(model, losses, seconds)``; the seconds include
    whatever the callback spent."""
    s = profiles.get_profile(profile_name).clip
    profiles.seed_everything(s.seed)
    tok = tokenizer.Tokenizer()
    train = shapes.ShapesDataset("train", n=s.n_train, resolution=s.resolution)
    model = CLIP(CLIPConfig(tok.vocab_size, tok.context_length, s.resolution, s.embed_dim))
    t0 = time.perf_counter()
    losses = train_clip(model, train.images, caption_tokens(tok, "single", train.attrs), steps or s.steps, s.batch_size, s.lr,
                        seed=s.seed, device=device, progress=progress, callback=callback)
    return model, losses, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Train the course CLIP and save it as a checkpoint.")
    p.add_argument("--profile", default="cpu", choices=tuple(profiles.PROFILES))
    p.add_argument("--out", default=None, help="folder (default: data/checkpoints, the shipped course checkpoint)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    model, losses, seconds = build_clip(args.profile, args.device)
    model.cpu()
    s = profiles.get_profile(args.profile).clip
    results = evaluate_clip(model, tokenizer.Tokenizer(), s.resolution, s.n_eval, s.n_retrieval)
    for split, row in results.items():
        print(f"{split:8s} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    metrics = {"eval": results, "train_seconds": round(seconds, 1), "final_loss": sum(losses[-50:]) / len(losses[-50:]), "profile": args.profile}
    out = checkpoints.save_checkpoint(
        "clip", model.state_dict(), model.config_dict(), args.out or checkpoints.shipped_dir(), metrics,
        rebuild=f"python -m dalle2_lessons.clip --profile {args.profile}",
    )
    print(f"saved {out} (trained {seconds / 60:.1f} min)")


def builder_clip(args) -> CLIP:
    """The CLIP a checkpoint builder trains on: the course's, or with ``--clip yours`` yours of ``--profile``."""
    return load_clip(args.profile if args.clip == "yours" else None)


def load_clip(profile: str | None = None, device: str | torch.device = "cpu", for_stages: Sequence[str] = ()) -> CLIP:
    """Your CLIP of ``profile`` if you trained one in lesson 01, else the course checkpoint (eval mode).

    ``for_stages`` names the stages a lesson will feed this CLIP's embeddings to (``("prior", "decoder")``): your
    CLIP is then used only if each of them has a checkpoint trained on it, and otherwise the course CLIP, with a
    message saying why. The course stages were trained on the course CLIP; fed another CLIP's embeddings they draw
    nonsense, however good that CLIP is.
    """
    if profile is not None and for_stages and (checkpoints.runs_dir(profile) / "clip.safetensors").is_file():
        missing = checkpoints.stages_without("clip", profile, for_stages)
        if missing:
            print(f"Your CLIP ({checkpoints.runs_dir(profile) / 'clip.safetensors'}) is not used here: no "
                  f"{' or '.join(missing)} was trained on its embeddings yet. This lesson uses the course CLIP and the "
                  f"stages built on it (to use yours, train them on it with --clip yours; see checkpoints.PARENTS).")
            profile = None
    return checkpoints.load_model("clip", lambda config: CLIP(CLIPConfig(**config)), profile, device)


if __name__ == "__main__":
    main()
