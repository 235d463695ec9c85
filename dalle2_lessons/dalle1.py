"""DALL·E 1 in miniature (lesson 12): a discrete image tokenizer, a transformer over text and image tokens,
and CLIP reranking.

DALL·E 1 (Ramesh et al., 2021) is the model popular articles mix up with DALL·E 2. It has two stages:

1. a **discrete VAE** turns a 256×256 image into a 32×32 grid of tokens from a vocabulary of 8192 (a
   Gumbel-softmax dVAE). We use its close cousin, the **VQ-VAE** (:mod:`~dalle2_lessons.vqvae`): an encoder
   maps a 16×16 image to an 8×8 grid of vectors, each replaced by its nearest codebook entry, and a decoder
   paints the image back.
2. a **decoder-only transformer** reads ``[caption tokens, image tokens]`` as one sequence and learns to
   predict each image token from everything before it. Sampling writes the image token by token (here with
   top-k), and DALL·E 1 drew many samples per caption and kept the ones a CLIP model scored highest
   (**reranking**).

The command that rebuilds the course checkpoint ``dalle1`` is in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import builders, checkpoints, judge, profiles, shapes, tokenizer
from .clip import caption_tokens
from .guidance import eval_conditions, judge_caption_samples, make_condition_sampler
from .builders import Built
from .training import Curve, train
from .transformer import Block, KVCache

# stage 1, the image tokenizer; lesson 12 reads it here too (dalle1.quantise, dalle1.VQVAE, ...)
from .vqvae import VQVAE, VQConfig, quantise, straight_through, tokenize_images, train_tokenizer  # noqa: F401

CHECKPOINT = "dalle1"


# ----------------------------------------------------------------------------------------------
# Stage 2: one transformer over [caption tokens, image tokens].


@dataclass(frozen=True)
class TransformerConfig:
    text_vocab: int
    text_length: int  #: caption tokens per sequence (the tokenizer's context length)
    image_vocab: int = 128
    image_length: int = 64  #: image tokens per sequence (an 8×8 grid, row by row)
    width: int = 128
    layers: int = 4
    heads: int = 4


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row and set the rest to −∞ (``k = 0`` keeps all).

    ``(B, V)`` → ``(B, V)``; ties with the k-th value are kept. Sampling from the softmax of the result
    draws only among the k most likely tokens, renormalised.
    """
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


class TextImageTransformer(nn.Module):
    """A GPT over ``[caption (L_t), image (L_i)]``: returns logits over the image vocabulary for every image
    position, each predicted from the caption and the image tokens before it (teacher forcing).

    Text and image tokens have separate embeddings, as in DALL·E 1; one learned position embedding runs
    over the whole sequence. Only the image tokens are predicted (DALL·E 1 also modelled the text, with a
    small weight; we always have the caption).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.text_embedding = nn.Embedding(c.text_vocab, c.width)
        self.image_embedding = nn.Embedding(c.image_vocab + 1, c.width)  # + a <start of image> token
        self.position = nn.Parameter(torch.randn(c.text_length + c.image_length, c.width) * 0.01)
        self.blocks = nn.Sequential(*[Block(c.width, c.heads, causal=True) for _ in range(c.layers)])
        self.ln_final = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.image_vocab)

    @property
    def start_of_image(self) -> int:
        return self.config.image_vocab

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``text (B, L_t)``, ``image (B, n ≤ L_i)`` ids → logits ``(B, n, image_vocab)``: position ``j``
        predicts image token ``j`` from the caption and image tokens ``< j``."""
        start = torch.full_like(image[:, :1], self.start_of_image)
        shifted = torch.cat([start, image[:, :-1]], dim=1)  # the input at image position j is token j − 1
        x = torch.cat([self.text_embedding(text), self.image_embedding(shifted)], dim=1)
        x = self.blocks(x + self.position[: x.shape[1]])
        return self.head(self.ln_final(x[:, text.shape[1] :]))

    def loss(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the image tokens ``(B, L_i)`` given the caption (nats per token)."""
        return F.cross_entropy(self(text, image).flatten(0, 1), image.flatten())

    @torch.no_grad()
    def sample(
        self, text: torch.Tensor, top_k: int = 32, temperature: float = 1.0, generator: torch.Generator | None = None,
        filter_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Write the image token by token: ``(B, L_t)`` captions → ``(B, L_i)`` image ids.

        Each step keeps the ``top_k`` most likely tokens (``filter_fn``, by default this module's :func:`top_k_filter`
        as it is at call time, so lesson 12 can put the learner's in its place), divides by ``temperature``,
        renormalises and samples. A key/value cache keeps every layer's keys and values of the positions
        already read, so each step runs the network on one new position instead of the whole prefix
        (:meth:`forward` on the prefix gives the same logits, ~5× slower here; a test checks they agree).
        """
        self.eval()
        filter_fn = filter_fn or top_k_filter
        c = self.config
        start = torch.full_like(text[:, :1], self.start_of_image)
        x = (
            torch.cat([self.text_embedding(text), self.image_embedding(start)], dim=1)
            + self.position[: text.shape[1] + 1]
        )
        caches = [KVCache() for _ in self.blocks]  # each block's keys and values of the positions read so far
        image = torch.zeros(len(text), 0, dtype=torch.long, device=text.device)
        for j in range(c.image_length):
            for block, cache in zip(self.blocks, caches):
                x = block(x, cache=cache)  # only the new positions go through; the cache remembers the rest
            logits = filter_fn(self.head(self.ln_final(x[:, -1])) / temperature, top_k)
            nxt = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator).to(text.device)
            image = torch.cat([image, nxt], dim=1)
            x = self.image_embedding(nxt) + self.position[text.shape[1] + 1 + j : text.shape[1] + 2 + j]
        return image

    def config_dict(self) -> dict:
        return asdict(self.config)


# ----------------------------------------------------------------------------------------------
# The two stages together, CLIP reranking, the course checkpoint.


class DALLE1(nn.Module):
    """The tokenizer and the transformer in one module (one checkpoint): captions → images."""

    def __init__(self, tokenizer_config: VQConfig, transformer_config: TransformerConfig):
        super().__init__()
        self.tokenizer = VQVAE(tokenizer_config)
        self.transformer = TextImageTransformer(transformer_config)

    @torch.no_grad()
    def sample(
        self, text: torch.Tensor, generator: torch.Generator | None = None, top_k: int = 32, temperature: float = 1.0,
        filter_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``(B, L_t)`` tokenised captions → ``(B, 3, R, R)`` images in [-1, 1] (one per caption); ``filter_fn`` as in
        :meth:`TextImageTransformer.sample`."""
        self.eval()
        ids = self.transformer.sample(text, top_k, temperature, generator, filter_fn)
        g = self.tokenizer.grid
        return self.tokenizer.decode(ids.view(-1, g, g))

    @torch.no_grad()
    def sample_reranked(
        self, text: torch.Tensor, clip_model, candidates: int = 8, generator: torch.Generator | None = None,
        top_k: int = 32,
    ) -> torch.Tensor:
        """Draw ``candidates`` images per caption and keep the one CLIP scores highest: ``(B, 3, R, R)``."""
        images = self.sample(text.repeat_interleave(candidates, 0), generator, top_k)
        return rerank(clip_model, text, images.view(len(text), candidates, *images.shape[1:]))[:, 0]

    def config_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.config_dict(), "transformer": self.transformer.config_dict()}

    @classmethod
    def from_config(cls, config: dict) -> DALLE1:
        return cls(VQConfig(**config["tokenizer"]), TransformerConfig(**config["transformer"]))


@torch.no_grad()
def rerank(clip_model, text_tokens: torch.Tensor, images: torch.Tensor, keep: int = 1) -> torch.Tensor:
    """DALL·E 1's reranking: for each caption, keep the ``keep`` of its samples that CLIP scores highest.

    Args:
        text_tokens: ``(B, L)`` one row per caption; images: ``(B, S, 3, R, R)``, ``S`` samples per caption.
    Returns:
        ``(B, keep, 3, R, R)``, best first.
    """
    b, s = images.shape[:2]
    text = clip_model.encode_text(text_tokens)  # (B, E) unit vectors
    pictures = clip_model.encode_image(images.flatten(0, 1)).view(b, s, -1)  # (B, S, E) unit vectors
    scores = (pictures * text[:, None]).sum(-1)  # (B, S) cosine similarities
    best = scores.argsort(dim=1, descending=True)[:, :keep]
    return images[torch.arange(b)[:, None], best]


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class DALLE1Settings:
    """Lesson 12 (and ``python -m dalle2_lessons.dalle1``, which builds the course checkpoint)."""

    n_train: int  #: training images (the version's base resolution: 16×16 in v1, 32×32 in v2) with their captions
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
    token_grid: int = 8  #: the image is G×G tokens at any resolution (the tokenizer downsamples 16 px by 2, 32 px by 4)
    version: str = "v2"  #: the Shapes version it learns from (v2: 32×32 images, captions that leave things out)
    seed: int = 0
    card_captions: int = 2  #: captions per kind in lesson 12's scorecard (each drawn 16 times)
    seeds: tuple[int, ...] = (0, 1, 2)  #: evaluation seeds of the scorecard (95% intervals over them)


PRESETS: dict[str, DALLE1Settings] = {
    "ci": DALLE1Settings(n_train=2_000, tokenizer_steps=12, steps=30, batch_size=32, lr=2e-3, n_eval=16,
                         tokenizer_batch_size=16, candidates=4, card_captions=1),
    # a tokenizer step at 32×32 and batch 128 costs about a second on two cores: the lesson's tokenizers are short
    # (codebook collapse shows early) and its transformer learns from the longer-trained tokenizer's codes
    "cpu": DALLE1Settings(n_train=20_000, tokenizer_steps=200, steps=300, batch_size=64, lr=2e-3, n_eval=256,
                          tokenizer_batch_size=32, card_captions=3),
    "gpu": DALLE1Settings(n_train=20_000, tokenizer_steps=3_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=1_000,
                          card_captions=16),
}


def build(cfg: DALLE1Settings, device: str | torch.device = "cpu", *, clip: object = None,
          eval_every: int | None = None, n_eval: int = 256, progress: bool = True) -> Built:
    """Train the tokenizer, then the transformer on the tokenised training set, with ``cfg`` (``clip`` is ignored:
    DALL·E 1 reads caption tokens; a CLIP only reranks its samples afterwards). ``Built.losses``: the transformer's
    ``"loss"`` and the tokenizer's log as ``"tokenizer_<name>"``; ``Built.extra["tokenizer_seconds"]`` is the part of
    ``train_seconds`` spent on the tokenizer. The curve judges ``n_eval`` test captions (one sample each) every
    ``eval_every`` transformer steps."""
    profiles.seed_everything(cfg.seed)
    data = shapes.ShapesDataset("train", n=cfg.n_train, version=cfg.version)
    tok = tokenizer.for_version(cfg.version)
    model = DALLE1(VQConfig(codebook_size=cfg.codebook_size, resolution=data.resolution,
                            downsample=data.resolution // cfg.token_grid),
                   TransformerConfig(tok.vocab_size, tok.context_length, image_vocab=cfg.codebook_size, width=cfg.width,
                                     layers=cfg.layers))
    timer = Curve(cfg.tokenizer_steps, None, dict)
    tok_log = train_tokenizer(model.tokenizer, data.images, cfg.tokenizer_steps, cfg.tokenizer_batch_size, cfg.lr,
                              seed=cfg.seed, device=device, progress=progress, callback=timer)
    model.tokenizer.cpu()
    codes = tokenize_images(model.tokenizer, data.images).to(device)
    get_text = make_condition_sampler("tokens", data.attrs,
                                      caption_tokens(tok, "single", data.attrs, data.scenes.mentions))
    eval_text, eval_attrs, _ = eval_conditions("tokens", n_eval, version=cfg.version)

    def measure(transformer: TextImageTransformer) -> dict[str, float]:
        ids = transformer.sample(eval_text.to(device), cfg.top_k, generator=torch.Generator().manual_seed(0)).cpu()
        images = model.tokenizer.decode(ids.view(-1, model.tokenizer.grid, model.tokenizer.grid))
        return judge.load_judge("single", version=cfg.version).score(images, eval_attrs).as_dict()

    curve = Curve(cfg.steps, eval_every, measure)
    ema, losses = train(model.transformer, lambda m, idx, g: m.loss(get_text(idx, g).to(device), codes[idx.to(device)]),
                        codes, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device, desc="transformer",
                        progress=progress, callback=curve)
    model.transformer = ema.module.cpu()
    logs = {"loss": losses, **{f"tokenizer_{k}": v for k, v in tok_log.items()}}
    seconds = timer.train_seconds + curve.train_seconds
    return Built(model.cpu().eval(), logs, seconds, curve.points, cfg, {"tokenizer_seconds": timer.train_seconds})


def load_dalle1(profile: str | None = None, device: str | torch.device = "cpu", version: str = "v2") -> DALLE1:
    """Your DALL·E 1 of Shapes ``version`` and ``profile`` (from lesson 12) if present, else the course checkpoint
    (eval mode)."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version), DALLE1.from_config, profile, device)


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser("Train the course's DALL·E 1 (VQ-VAE tokenizer + transformer) and save it.",
                                 "judge the transformer's samples every N steps (the accuracy-vs-minutes curve)", 512,
                                 "test / held-out captions judged at the end", versioned=True)
    p.add_argument("--tokenizer-steps", type=int, default=None, help="tokenizer steps (default: the profile's)")
    p.add_argument("--tokenizer-batch-size", type=int, default=None, help="tokenizer batch (default: the profile's)")
    args, cfg, clip, built = builders.run_builder(p, PRESETS, build, argv)  # the CLIP only reranks
    model = built.model
    results = judge_caption_samples(model.sample, clip, args.n_eval, condition="tokens", version=cfg.version)
    reranked = judge_caption_samples(lambda text, g: model.sample_reranked(text, clip, cfg.candidates, g), clip,
                                     args.n_eval, condition="tokens", version=cfg.version)
    test = shapes.ShapesDataset("test", n=args.n_eval, version=cfg.version)
    strict = judge.load_judge("single", version=cfg.version)
    reconstructions = strict.score(model.tokenizer.decode(model.tokenizer.encode(test.images)), test.attrs)
    rebuild = checkpoints.command("dalle1", profile=args.profile, tokenizer_steps=args.tokenizer_steps,
                                  tokenizer_batch_size=args.tokenizer_batch_size, steps=args.steps,
                                  eval_every=args.eval_every, version=args.version)
    extra = {"eval": results, f"eval_best_of_{cfg.candidates}": reranked, "reconstructions": reconstructions.as_dict(),
             "tokenizer_train_seconds": round(built.extra["tokenizer_seconds"], 1),
             "tokenizer_steps": cfg.tokenizer_steps,
             "tokenizer_final_reconstruction_mse": sum(built.losses["tokenizer_reconstruction"][-50:]) / 50}
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, extra, rebuild)


if __name__ == "__main__":
    main()
