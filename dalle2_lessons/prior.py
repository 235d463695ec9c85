"""The diffusion prior of unCLIP (lesson 06): from a caption's CLIP text embedding to a CLIP *image* embedding.

unCLIP (Ramesh et al. 2022, section 2.2) generates an image in two steps: the prior samples an image
embedding ``z_i`` given the caption, and the decoder (lesson 07) paints an image given ``z_i``. The
prior is a diffusion model too, but in CLIP's embedding space instead of pixel space, and its network
is a transformer, not a U-Net. Following the paper, it is a decoder-only (causal) transformer over the
sequence, in this order::

    [caption token features ×L] [CLIP text embedding] [timestep embedding] [noised image embedding z_t] [query]

and the output at the final *query* token predicts the **clean** image embedding directly (x0-prediction,
mean-squared error), which the paper found better than predicting the noise. The caption (tokens and
text embedding) is dropped 10% of the time, so the prior can be sampled with classifier-free guidance.
At sampling time the paper draws two candidates and keeps the one with the larger dot product with
the text embedding.

Scale: CLIP embeddings have unit norm, so their entries are about ±1/√D. The prior diffuses them
multiplied by √D (entries about ±1, the scale the noise schedule was designed for), and divides again
at the end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checkpoints, diffusion, profiles, shapes, tokenizer
from .clip import CLIP, CaptionBank, builder_clip, caption_tokens, embed_images, encode_captions, load_clip
from .training import Curve, train
from .unet import timestep_embedding


@dataclass(frozen=True)
class PriorConfig:
    """Everything needed to rebuild a :class:`DiffusionPrior` (stored in its checkpoint)."""

    embed_dim: int = 64  #: size of CLIP's embedding space
    token_width: int = 128  #: width of the CLIP text encoder's per-token features
    context_length: int = 16  #: caption tokens
    width: int = 128
    layers: int = 4
    heads: int = 4


class PriorBlock(nn.Module):
    """Pre-norm transformer block with a boolean attention mask: ``(B, S, W)`` → same."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` ``(B, 1, S, S)`` bool: True where query ``i`` may attend to key ``j``."""
        b, s, w = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # lesson 01 wrote this by hand
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, w))
        return x + self.mlp(self.ln_2(x))


class DiffusionPrior(nn.Module):
    """x0-predicting transformer: ``(z_t, t, text_emb, tokens, token_mask)`` → predicted clean ``z`` ``(B, D)``.

    Args of :meth:`forward`:
        z_t: ``(B, D)`` noised image embeddings (in the √D-scaled space).
        t: ``(B,)`` int64 timesteps.
        text_emb: ``(B, D)`` unit-norm CLIP text embeddings (zeros: no caption).
        tokens: ``(B, L, token_width)`` the CLIP text encoder's per-token features.
        token_mask: ``(B, L)`` bool, True for real tokens (False for padding and for a dropped caption).
    """

    def __init__(self, config: PriorConfig = PriorConfig()):
        super().__init__()
        self.config = c = config
        self.token_proj = nn.Linear(c.token_width, c.width)
        self.text_proj = nn.Linear(c.embed_dim, c.width)
        self.time_mlp = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.z_proj = nn.Linear(c.embed_dim, c.width)
        self.query = nn.Parameter(torch.randn(c.width) * 0.02)
        self.pos = nn.Parameter(torch.randn(c.context_length + 4, c.width) * 0.01)
        self.blocks = nn.ModuleList(PriorBlock(c.width, c.heads) for _ in range(c.layers))
        self.ln_final = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.embed_dim)

    def sequence(self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The input sequence ``(B, L + 4, W)``: caption tokens, text embedding, timestep, noised embedding, query."""
        b = len(z_t)
        parts = [
            self.token_proj(tokens),
            self.text_proj(text_emb * math.sqrt(self.config.embed_dim))[:, None],
            self.time_mlp(timestep_embedding(t, self.config.width))[:, None],
            self.z_proj(z_t)[:, None],
            self.query.expand(b, 1, -1),
        ]
        return torch.cat(parts, dim=1) + self.pos

    def attention_mask(self, token_mask: torch.Tensor) -> torch.Tensor:
        """``(B, 1, S, S)`` bool: causal, padding keys hidden, and every position may always see itself
        (so no row of the softmax is empty when the whole caption is dropped)."""
        b, n_tok = token_mask.shape
        s = n_tok + 4
        keys = torch.cat([token_mask, torch.ones(b, 4, dtype=torch.bool, device=token_mask.device)], dim=1)
        causal = torch.ones(s, s, dtype=torch.bool, device=token_mask.device).tril()
        eye = torch.eye(s, dtype=torch.bool, device=token_mask.device)
        return ((causal & keys[:, None, :]) | eye)[:, None]

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        x = self.sequence(z_t, t, text_emb, tokens)
        mask = self.attention_mask(token_mask)
        for block in self.blocks:
            x = block(x, mask)
        return self.out(self.ln_final(x[:, -1]))

    def config_dict(self) -> dict:
        return asdict(self.config)


# ----------------------------------------------------------------------------------------------
# Training and sampling.


def drop_caption(text_emb: torch.Tensor, token_mask: torch.Tensor, p_uncond: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the whole caption (embedding → zeros, every token hidden) for a fraction ``p_uncond`` of rows."""
    keep = (torch.rand(len(text_emb), generator=generator) >= p_uncond).to(text_emb.device)
    return text_emb * keep[:, None].to(text_emb.dtype), token_mask & keep[:, None]


def prior_loss(
    prior: DiffusionPrior, z_image: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
    schedule: diffusion.NoiseSchedule, p_uncond: float = 0.1, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise the (√D-scaled) image embeddings ``(B, D)`` to a random step and regress the clean ones (MSE)."""
    x0 = z_image * math.sqrt(z_image.shape[-1])
    t = torch.randint(schedule.T, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    text_emb, token_mask = drop_caption(text_emb, token_mask, p_uncond, generator)
    return (prior(diffusion.q_sample(x0, t, noise, schedule), t, text_emb, tokens, token_mask) - x0).pow(2).mean()


def guided_x0(prior: DiffusionPrior, z_t, t, text_emb, tokens, token_mask, scale: float) -> torch.Tensor:
    """Classifier-free guidance on the x0 prediction: ``x̂0(∅) + s·(x̂0(c) − x̂0(∅))`` (one batched call)."""
    if scale == 1.0:
        return prior(z_t, t, text_emb, tokens, token_mask)
    both = prior(
        torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([text_emb, torch.zeros_like(text_emb)]),
        torch.cat([tokens, tokens]), torch.cat([token_mask, torch.zeros_like(token_mask)]),
    )
    x0_c, x0_u = both.chunk(2)
    return x0_u + scale * (x0_c - x0_u)


def x0_ddim_step(x0: torch.Tensor, t: int, t_prev: int, z_t: torch.Tensor, schedule: diffusion.NoiseSchedule) -> torch.Tensor:
    """A deterministic DDIM step (η = 0) for a network that predicts x̂0 instead of ε: recover the
    noise that ``z_t`` must contain given ``x̂0``, then re-noise ``x̂0`` to level ``t_prev`` with it."""
    eps = diffusion.predict_eps(z_t, t, x0, schedule)
    return diffusion.ddim_step(eps, t, t_prev, z_t, schedule, eta=0.0)[0]


@torch.no_grad()
def sample(
    prior: DiffusionPrior, text_emb: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
    schedule: diffusion.NoiseSchedule, scale: float = 1.0, steps: int = 64, candidates: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Image embeddings for captions: ``(B, D)`` unit vectors.

    Draws ``candidates`` embeddings per caption with ``steps`` DDIM steps and keeps, for each caption,
    the one with the largest dot product with its text embedding (unCLIP, section 2.2).
    """
    device = text_emb.device
    b, d = text_emb.shape
    k = candidates
    rep = lambda x: x.repeat_interleave(k, 0)  # noqa: E731
    te, tk, tm = rep(text_emb), rep(tokens), rep(token_mask)
    z = torch.randn(b * k, d, generator=generator).to(device)
    ts = diffusion.ddim_timesteps(schedule.T, steps)
    for i, t in enumerate(ts):
        x0 = guided_x0(prior, z, torch.full((b * k,), t, device=device), te, tk, tm, scale)
        z = x0_ddim_step(x0, t, ts[i + 1] if i + 1 < len(ts) else -1, z, schedule)
    z = F.normalize(z, dim=-1).view(b, k, d)
    best = (z * text_emb[:, None]).sum(-1).argmax(dim=1)
    return z[torch.arange(b), best]


# ----------------------------------------------------------------------------------------------
# Baselines, measurement and the course checkpoint.

CHECKPOINT = "prior"


def nearest_neighbour(text_emb: torch.Tensor, train_text_emb: torch.Tensor, train_image_emb: torch.Tensor) -> torch.Tensor:
    """The retrieval baseline: for each caption ``(B, D)``, the image embedding of the training scene
    whose caption embedding ``(N, D)`` is most similar. Returns ``(B, D)`` (copies of ``train_image_emb`` rows)."""
    return train_image_emb[(text_emb @ train_text_emb.T).argmax(dim=1)]


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity of matching rows of ``(B, D)`` and ``(B, D)``."""
    return float(F.cosine_similarity(a, b, dim=-1).mean())


@dataclass
class PriorData:
    """What the prior learns from: each training scene's CLIP image embedding and its captions."""

    image_emb: torch.Tensor  #: ``(N, D)`` unit vectors
    bank: CaptionBank  #: the scenes' paraphrases through the frozen text encoder

    @classmethod
    def build(cls, clip_model, n: int, split: str = "train", seed: int = 0) -> PriorData:
        ds = shapes.ShapesDataset(split, n=n, resolution=clip_model.config.resolution, seed=seed)
        bank = CaptionBank.build(clip_model, caption_tokens(tokenizer.Tokenizer(), "single", ds.attrs))
        return cls(embed_images(clip_model, ds.images), bank)

    def first_captions(self) -> torch.Tensor:
        """``(N, D)`` the text embedding of each scene's first paraphrase (what nearest-neighbour searches)."""
        return self.bank.embeddings[self.bank.index[:, 0]]


def compare(
    prior: DiffusionPrior, clip_model, train: PriorData, n: int, split: str = "test", scale: float = 1.0,
    steps: int = 64, candidates: int = 2, seed: int = 0,
) -> dict[str, float]:
    """Mean cosine to the true CLIP image embedding of ``n`` fresh ``split`` scenes, for each way of
    guessing it from the caption: ``no_prior`` (the text embedding itself), ``nearest`` (the image
    embedding of the most similar training caption), ``prior`` (a sample), and two references that know
    the true attributes: ``another_render`` (the embedding of a second render of the *same* caption,
    which is what a perfect *sampler* scores: the caption does not say where exactly the object sits)
    and ``cloud_centre`` (the normalised mean embedding of eight such renders, the best single *guess*
    under this metric; a sampler that drifts towards it trades diversity for cosine)."""
    scenes = shapes.sample_scenes(n, split, "single", seed=seed + 1)
    again = shapes.rejitter(scenes, seed=seed + 2)  # same attributes, fresh size and place within the cell
    r = clip_model.config.resolution
    z_true = embed_images(clip_model, shapes.render(scenes, r))
    text, feats, mask = encode_captions(clip_model, tokenizer.Tokenizer().encode_batch(scenes.captions))
    device = next(prior.parameters()).device
    z_prior = sample(prior.eval(), text.to(device), feats.to(device), mask.to(device), diffusion.cosine_schedule(), scale,
                     steps, candidates, torch.Generator().manual_seed(seed)).cpu()
    return {
        "no_prior": mean_cosine(text, z_true),
        "nearest": mean_cosine(nearest_neighbour(text, train.first_captions(), train.image_emb), z_true),
        "prior": mean_cosine(z_prior, z_true),
        "another_render": mean_cosine(embed_images(clip_model, shapes.render(again, r)), z_true),
        "cloud_centre": mean_cosine(F.normalize(sum(embed_images(clip_model, shapes.render(shapes.rejitter(scenes, seed=seed + 3 + k), r))
                                                    for k in range(8)), dim=-1), z_true),
    }


def build(profile_name: str, steps: int | None = None, device: str | torch.device = "cpu", progress: bool = True,
          eval_every: int | None = None, n_eval: int = 500,
          clip_model: CLIP | None = None) -> tuple[DiffusionPrior, list[float], float, list[dict], PriorData]:
    """Train the prior with a profile's settings (``steps`` overrides) on ``clip_model``'s embeddings (default: the
    course CLIP). With ``eval_every``, the EMA prior's mean cosine to the true image embedding on ``n_eval`` test
    captions is measured every so many steps. Returns ``(ema_prior, losses, train_seconds, curve, training_data)``."""
    s = profiles.get_profile(profile_name).prior
    steps = steps or s.steps
    profiles.seed_everything(s.seed)
    clip_model = clip_model or load_clip()
    data = PriorData.build(clip_model, s.n_train)
    feats = data.bank.features
    model = DiffusionPrior(PriorConfig(embed_dim=data.image_emb.shape[-1], token_width=feats.shape[-1], context_length=feats.shape[1]))
    schedule = diffusion.cosine_schedule()

    def loss_fn(m, idx, gen):
        text, tokens, mask = data.bank.random_paraphrase(idx, gen)
        return prior_loss(m, data.image_emb[idx].to(device), text.to(device), tokens.to(device), mask.to(device), schedule, s.p_uncond, gen)

    curve = Curve(steps, eval_every, lambda m: compare(m, clip_model, data, n_eval, steps=s.sample_steps, candidates=s.candidates))
    ema, losses = train(model, loss_fn, data.image_emb, steps, s.batch_size, s.lr, weight_decay=1e-2, seed=s.seed, device=device,
                        desc="diffusion prior", progress=progress, callback=curve)
    seconds, curve = curve.train_seconds, curve.points
    return ema.module.eval(), losses, seconds, curve, data


def load_prior(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP) -> DiffusionPrior:
    """The prior trained on ``clip``'s embeddings: yours of ``profile`` (from lesson 06) if it is, else the course
    checkpoint if it is (eval mode); a :class:`~dalle2_lessons.checkpoints.CheckpointError` if neither."""
    return checkpoints.load_model(CHECKPOINT, lambda config: DiffusionPrior(PriorConfig(**config)), profile, device, {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = checkpoints.build_parser(
        "Train the course's diffusion prior (CLIP text embedding → CLIP image embedding) and save it.",
        "measure the cosine table every N steps", 1000, "captions per split for the final cosine table")
    args = p.parse_args(argv)
    clip_model = builder_clip(args)
    model, losses, seconds, curve, data = build(args.profile, args.steps, args.device, eval_every=args.eval_every, clip_model=clip_model)
    model.cpu()
    s = profiles.get_profile(args.profile).prior
    results = {}
    for split in ("test", "heldout"):
        for scale in (1.0, 2.0):
            key = f"{split}_s{scale:g}"
            results[key] = {k: round(v, 4) for k, v in compare(model, clip_model, data, args.n_eval, split, scale, s.sample_steps, s.candidates).items()}
            print(f"{key}: {results[key]}", flush=True)
    rebuild = checkpoints.command("prior", profile=args.profile, steps=args.steps, eval_every=args.eval_every)
    checkpoints.save_build(CHECKPOINT, model, args, {"cosine": results}, losses, seconds, curve, args.steps or s.steps, rebuild,
                           parents={"clip": clip_model})


if __name__ == "__main__":
    main()
