"""DALL·E 1 in miniature (lesson 12): a discrete image tokenizer, a transformer over text and image tokens,
and CLIP reranking.

DALL·E 1 (Ramesh et al., 2021) is the model popular articles mix up with DALL·E 2. It has two stages:

1. a **discrete VAE** turns a 256×256 image into a 32×32 grid of tokens from a vocabulary of 8192 (a
   Gumbel-softmax dVAE). We use its close cousin, the **VQ-VAE** (van den Oord et al., 2017): an encoder
   maps a 16×16 image to an 8×8 grid of vectors, each replaced by its nearest codebook entry, and a decoder
   paints the image back. The nearest-neighbour lookup has no gradient, so the **straight-through
   estimator** copies the decoder's gradient to the encoder; a commitment loss keeps the encoder near its
   entries, and the entries follow the encoder as moving averages of the vectors assigned to them
   (the codebook update of the VQ-VAE paper's appendix, also used by VQ-VAE-2). Entries nobody uses are
   restarted on encoder outputs, so the vocabulary does not collapse to a few words.
2. a **decoder-only transformer** reads ``[caption tokens, image tokens]`` as one sequence and learns to
   predict each image token from everything before it. Sampling writes the image token by token (here with
   top-k), and DALL·E 1 drew many samples per caption and kept the ones a CLIP model scored highest
   (**reranking**).

Rebuild the course checkpoint: ``python -m dalle2_lessons.dalle1 --profile cpu``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoints, judge, profiles, shapes, tokenizer
from .clip import Block, builder_clip, caption_tokens
from .guidance import judge_caption_samples, make_condition_sampler
from .training import Curve, train
from .vae import conv_block

CHECKPOINT = "dalle1"


# ----------------------------------------------------------------------------------------------
# Stage 1: the VQ-VAE image tokenizer.


@dataclass(frozen=True)
class VQConfig:
    codebook_size: int = 128  #: K, the image-token vocabulary
    code_dim: int = 32  #: D, the size of each codebook vector
    width: int = 32  #: channels of the first conv layer (doubled at each downsampling)
    resolution: int = 16  #: images are R×R
    downsample: int = 2  #: the token grid is (R/downsample)×(R/downsample); 2 or 4
    beta: float = 0.25  #: weight of the commitment loss (the paper's value)
    codebook_decay: float = 0.95  #: moving-average rate of the codebook update


def quantise(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each vector of ``z`` by its nearest codebook entry (Euclidean distance).

    Args:
        z: ``(B, D, H, W)`` encoder outputs; codebook: ``(K, D)``.
    Returns:
        ``(indices (B, H, W) int64, quantised (B, D, H, W))``; the quantised vectors are codebook rows,
        with no gradient path to ``z`` (see :func:`straight_through`).
    """
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B·H·W, D)
    # |a − b|² = |a|² − 2 a·b + |b|², for every (vector, entry) pair at once: (B·H·W, K)
    distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)
    indices = distances.argmin(1)
    quantised = codebook[indices].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
    return indices.view(z.shape[0], z.shape[2], z.shape[3]), quantised


def straight_through(z: torch.Tensor, quantised: torch.Tensor) -> torch.Tensor:
    """The forward value of ``quantised`` with the gradient of ``z``: ``z + (q − z).detach()``.

    ``argmin`` has no useful derivative, so the decoder's gradient at ``q`` is handed to ``z`` unchanged.
    """
    return z + (quantised - z).detach()


def commitment_loss(z: torch.Tensor, quantised: torch.Tensor, beta: float) -> torch.Tensor:
    """``β ‖z − sg[q]‖²`` (mean over elements): pulls the encoder towards the entries it was given."""
    return beta * F.mse_loss(z, quantised.detach())


class VQVAE(nn.Module):
    """Images ``(B, 3, R, R)`` in [-1, 1] ↔ token grids ``(B, G, G)`` of ids in ``[0, K)``, ``G = R / downsample``.

    The codebook is a buffer, not a parameter: like BatchNorm's running statistics it is updated in
    training mode by :meth:`update_codebook`, not by the optimiser.
    """

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = c = config
        w = c.width
        n_down = {2: 1, 4: 2}[c.downsample]
        chans = [w * 2**i for i in range(n_down + 1)]  # e.g. 32 → 64
        down = [conv_block(chans[i], chans[i + 1], stride=2) for i in range(n_down)]
        up = [m for i in reversed(range(n_down)) for m in (nn.Upsample(scale_factor=2), conv_block(chans[i + 1], chans[i]))]
        self.encoder = nn.Sequential(conv_block(3, w), *down, conv_block(chans[-1], chans[-1]), nn.Conv2d(chans[-1], c.code_dim, 1))
        self.decoder = nn.Sequential(conv_block(c.code_dim, chans[-1]), conv_block(chans[-1], chans[-1]), *up, nn.Conv2d(w, 3, 3, 1, 1))
        self.register_buffer("codebook", torch.randn(c.codebook_size, c.code_dim))
        # the moving averages behind the codebook: how many vectors each entry received, and their sum
        self.register_buffer("code_count", torch.ones(c.codebook_size))
        self.register_buffer("code_sum", self.codebook.clone())

    @property
    def grid(self) -> int:
        return self.config.resolution // self.config.downsample

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction (B, 3, R, R), indices (B, G, G), commitment loss, z (B, D, G, G))``.

        In training mode the codebook moves towards this batch's encoder outputs.
        """
        z = self.encoder(x)
        indices, q = quantise(z, self.codebook)
        if self.training:
            self.update_codebook(z, indices)
        return self.decoder(straight_through(z, q)), indices, commitment_loss(z, q, self.config.beta), z

    @torch.no_grad()
    def update_codebook(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Each entry becomes the moving average of the encoder vectors assigned to it (k-means, online)."""
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N, D)
        onehot = F.one_hot(indices.flatten(), self.config.codebook_size).to(flat.dtype)  # (N, K)
        d = self.config.codebook_decay
        self.code_count.mul_(d).add_(onehot.sum(0), alpha=1 - d)
        self.code_sum.mul_(d).add_(onehot.T @ flat, alpha=1 - d)
        self.codebook.copy_(self.code_sum / self.code_count.clamp_min(1e-5)[:, None])

    @torch.no_grad()
    def reset_codes(self, which: torch.Tensor, z: torch.Tensor, generator: torch.Generator) -> None:
        """Set the entries ``which`` ((K,) bool) to randomly chosen encoder vectors of ``z`` ``(B, D, G, G)``.

        Used to start the codebook on the data (not on noise far from every encoder output) and to restart
        dead entries, which would otherwise never be chosen again and never move.
        """
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        pick = flat[torch.randint(len(flat), (int(which.sum()),), generator=generator).to(flat.device)]
        self.codebook[which] = pick
        self.code_sum[which] = pick
        self.code_count[which] = 1.0

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, G, G)`` token ids."""
        return quantise(self.encoder(x), self.codebook)[0]

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, G, G)`` token ids → ``(B, 3, R, R)`` images clamped to [-1, 1]."""
        return self.decoder(self.codebook[indices].permute(0, 3, 1, 2)).clamp(-1, 1)

    def config_dict(self) -> dict:
        return asdict(self.config)


def train_tokenizer(model: VQVAE, images: torch.Tensor, steps: int, batch_size: int = 128, lr: float = 2e-3,
                    restart_every: int | None = 50, init_from_data: bool = True, seed: int = 0, device: str | torch.device = "cpu",
                    progress: bool = True, callback: Callable | None = None, desc: str = "VQ-VAE tokenizer") -> dict[str, list[float]]:
    """Train the tokenizer in place on ``images`` ``(N, 3, R, R)``: loss = reconstruction MSE + commitment.

    With ``init_from_data`` the codebook starts on encoder outputs of the first batch (else on its random
    initialisation); every ``restart_every`` steps (until 80% of training; ``None`` = never) the entries that
    received less than 1% of their fair share of recent batches are restarted. Returns per-step
    ``{"loss", "reconstruction", "codes_used"}`` (distinct ids in the batch).
    """
    log: dict[str, list[float]] = {"reconstruction": [], "codes_used": []}
    usage = torch.full((model.config.codebook_size,), 1.0)  # a moving average of each entry's share of a batch
    step = 0

    def loss_fn(m: VQVAE, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        nonlocal step, usage
        x = images[idx].to(device)
        if step == 0 and init_from_data:
            m.reset_codes(torch.ones(m.config.codebook_size, dtype=torch.bool), m.encoder(x), gen)
        reconstruction, indices, commitment, z = m(x)
        counts = torch.bincount(indices.flatten().cpu(), minlength=m.config.codebook_size).float()
        usage = 0.9 * usage + 0.1 * counts * m.config.codebook_size / indices.numel()  # 1.0 = a fair share
        step += 1
        if restart_every and step % restart_every == 0 and step < 0.8 * steps:
            dead = usage < 0.01
            if dead.any():
                m.reset_codes(dead.to(z.device), z, gen)
                usage[dead] = 1.0
        rec = F.mse_loss(reconstruction, x)
        log["reconstruction"].append(rec.item())
        log["codes_used"].append(float((counts > 0).sum()))
        return rec + commitment

    # ema_decay = 0: the tokenizer keeps its last weights; its codebook is a buffer that an average of
    # the *weights* would not follow
    _, losses = train(model, loss_fn, images, steps, batch_size, lr, ema_decay=0.0, seed=seed, device=device,
                      desc=desc, progress=progress, callback=callback)
    model.eval()
    return {"loss": losses, **log}


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
    def sample(self, text: torch.Tensor, top_k: int = 32, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Write the image token by token: ``(B, L_t)`` captions → ``(B, L_i)`` image ids.

        Each step keeps the ``top_k`` most likely tokens (:func:`top_k_filter`), divides by ``temperature``,
        renormalises and samples. A key/value cache keeps every layer's keys and values of the positions
        already read, so each step runs the network on one new position instead of the whole prefix
        (:meth:`forward` on the prefix gives the same logits, ~5× slower here; a test checks they agree).
        """
        self.eval()
        c = self.config
        start = torch.full_like(text[:, :1], self.start_of_image)
        x = torch.cat([self.text_embedding(text), self.image_embedding(start)], dim=1) + self.position[: text.shape[1] + 1]
        caches: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.blocks)
        image = torch.zeros(len(text), 0, dtype=torch.long, device=text.device)
        for j in range(c.image_length):
            for i, block in enumerate(self.blocks):
                x, caches[i] = _cached_block(block, x, caches[i])
            logits = top_k_filter(self.head(self.ln_final(x[:, -1])) / temperature, top_k)
            nxt = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator).to(text.device)
            image = torch.cat([image, nxt], dim=1)
            x = self.image_embedding(nxt) + self.position[text.shape[1] + 1 + j : text.shape[1] + 2 + j]
        return image

    def config_dict(self) -> dict:
        return asdict(self.config)


def _cached_block(block: Block, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One pre-norm block (:class:`~dalle2_lessons.clip.Block`, same weights) on the ``T`` new positions
    ``x (B, T, C)`` that follow the cached ones; returns the block's output and the grown key/value cache
    ``(B, heads, past + T, C / heads)`` each."""
    attn = block.attn
    b, t, c = x.shape
    q, k, v = attn.qkv(block.ln_1(x)).split(c, dim=-1)
    split = lambda y: y.view(b, t, attn.heads, c // attn.heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    past = k.shape[2] - t
    # causal: new position i sees every cached position and the new ones up to itself
    mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    x = x + attn.out(y.transpose(1, 2).reshape(b, t, c))
    return x + block.mlp(block.ln_2(x)), (k, v)


# ----------------------------------------------------------------------------------------------
# The two stages together, CLIP reranking, the course checkpoint.


class DALLE1(nn.Module):
    """The tokenizer and the transformer in one module (one checkpoint): captions → images."""

    def __init__(self, tokenizer_config: VQConfig, transformer_config: TransformerConfig):
        super().__init__()
        self.tokenizer = VQVAE(tokenizer_config)
        self.transformer = TextImageTransformer(transformer_config)

    @torch.no_grad()
    def sample(self, text: torch.Tensor, generator: torch.Generator | None = None, top_k: int = 32, temperature: float = 1.0) -> torch.Tensor:
        """``(B, L_t)`` tokenised captions → ``(B, 3, R, R)`` images in [-1, 1] (one per caption)."""
        self.eval()
        ids = self.transformer.sample(text, top_k, temperature, generator)
        g = self.tokenizer.grid
        return self.tokenizer.decode(ids.view(-1, g, g))

    @torch.no_grad()
    def sample_reranked(self, text: torch.Tensor, clip_model, candidates: int = 8, generator: torch.Generator | None = None,
                        top_k: int = 32) -> torch.Tensor:
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


def tokenize_images(tok: VQVAE, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, G·G)`` image-token ids, row by row (the transformer's reading order)."""
    return torch.cat([tok.encode(images[i : i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)])


def build(profile_name: str, tokenizer_steps: int | None = None, steps: int | None = None, device: str | torch.device = "cpu",
          progress: bool = True, eval_every: int | None = None, n_eval: int = 256) -> tuple[DALLE1, dict[str, dict[str, list[float]]], dict[str, float], list[dict]]:
    """Train the tokenizer, then the transformer on the tokenised training set, with a profile's settings.

    Returns ``(model, {"tokenizer": per-step log, "transformer": {"loss": ...}}, {"tokenizer": s, "transformer": s}
    training seconds, curve)``; the curve judges ``n_eval`` test captions (one sample each) every ``eval_every``
    transformer steps.
    """
    s = profiles.get_profile(profile_name).dalle1
    profiles.seed_everything(s.seed)
    data = shapes.ShapesDataset("train", n=s.n_train, resolution=16)
    tok = tokenizer.Tokenizer()
    model = DALLE1(VQConfig(codebook_size=s.codebook_size),
                   TransformerConfig(tok.vocab_size, tok.context_length, image_vocab=s.codebook_size, width=s.width, layers=s.layers))
    timer = Curve(tokenizer_steps or s.tokenizer_steps, None, dict)
    tok_log = train_tokenizer(model.tokenizer, data.images, tokenizer_steps or s.tokenizer_steps, s.tokenizer_batch_size, s.lr,
                              seed=s.seed, device=device, progress=progress, callback=timer)
    model.tokenizer.cpu()
    codes = tokenize_images(model.tokenizer, data.images).to(device)
    get_text = make_condition_sampler("tokens", data.attrs, caption_tokens(tok, "single", data.attrs))
    scenes = shapes.sample_scenes(n_eval, "test", "single", seed=1)
    eval_text, eval_attrs = tok.encode_batch(scenes.captions), torch.as_tensor(scenes.attrs)

    def measure(transformer: TextImageTransformer) -> dict[str, float]:
        ids = transformer.sample(eval_text.to(device), s.top_k, generator=torch.Generator().manual_seed(0)).cpu()
        images = model.tokenizer.decode(ids.view(-1, model.tokenizer.grid, model.tokenizer.grid))
        return judge.load_judge("single").score(images, eval_attrs).as_dict()

    steps = steps or s.steps
    curve = Curve(steps, eval_every, measure)
    ema, losses = train(model.transformer, lambda m, idx, g: m.loss(get_text(idx, g).to(device), codes[idx.to(device)]),
                        codes, steps, s.batch_size, s.lr, seed=s.seed, device=device, desc="transformer", progress=progress, callback=curve)
    model.transformer = ema.module.cpu()
    return model.cpu().eval(), {"tokenizer": tok_log, "transformer": {"loss": losses}}, \
        {"tokenizer": timer.train_seconds, "transformer": curve.train_seconds}, curve.points


def load_dalle1(profile: str | None = None, device: str | torch.device = "cpu") -> DALLE1:
    """Your DALL·E 1 of ``profile`` (from lesson 12) if present, else the course checkpoint (eval mode)."""
    return checkpoints.load_model(CHECKPOINT, DALLE1.from_config, profile, device)


def main(argv: list[str] | None = None) -> None:
    p = checkpoints.build_parser("Train the course's DALL·E 1 (VQ-VAE tokenizer + transformer) and save it.",
                                 "judge the transformer's samples every N steps (the accuracy-vs-minutes curve)", 512,
                                 "test / held-out captions judged at the end")
    p.add_argument("--tokenizer-steps", type=int, default=None, help="tokenizer steps (default: the profile's)")
    args = p.parse_args(argv)
    model, logs, seconds, curve = build(args.profile, args.tokenizer_steps, args.steps, args.device, eval_every=args.eval_every)
    clip_model = builder_clip(args)  # reads no embedding; reranks with this CLIP
    results = judge_caption_samples(model.sample, clip_model, args.n_eval, condition="tokens")
    s = profiles.get_profile(args.profile).dalle1
    reranked = judge_caption_samples(lambda text, g: model.sample_reranked(text, clip_model, s.candidates, g), clip_model,
                                     args.n_eval, condition="tokens")
    test = shapes.ShapesDataset("test", n=args.n_eval, resolution=16)
    reconstructions = judge.load_judge("single").score(model.tokenizer.decode(model.tokenizer.encode(test.images)), test.attrs)
    rebuild = checkpoints.command("dalle1", profile=args.profile, tokenizer_steps=args.tokenizer_steps, steps=args.steps,
                                  eval_every=args.eval_every)
    extra = {"eval": results, f"eval_best_of_{s.candidates}": reranked, "reconstructions": reconstructions.as_dict(),
             "tokenizer_train_seconds": round(seconds["tokenizer"], 1), "tokenizer_steps": args.tokenizer_steps or s.tokenizer_steps,
             "tokenizer_final_reconstruction_mse": sum(logs["tokenizer"]["reconstruction"][-50:]) / 50}
    checkpoints.save_build(CHECKPOINT, model, args, extra, logs["transformer"]["loss"], sum(seconds.values()), curve,
                           args.steps or s.steps, rebuild)


if __name__ == "__main__":
    main()
