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
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import builders, checkpoints, diffusion, profiles, shapes, tokenizer
from .clip import CLIP, CaptionBank, caption_tokens, embed_images, encode_captions, load_clip
from .builders import Built
from .training import Curve, train
from .transformer import Block
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


def _rename_old_block_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Let checkpoints saved before the prior shared :class:`~dalle2_lessons.transformer.Block` load: their blocks
    named the attention's two layers ``qkv`` and ``proj`` (``blocks.0.qkv.weight``), the shared block calls them
    ``attn.qkv`` and ``attn.out``. The tensors and their layout are the same, so renaming the keys is all it takes
    (for the shipped prior and for learners' own in ``runs/``). :class:`DiffusionPrior`'s ``load_state_dict`` pre-hook.
    """
    old = re.compile(rf"^{re.escape(prefix)}blocks\.(\d+)\.(qkv|proj)\.")
    for key in [k for k in state_dict if old.match(k)]:
        new = old.sub(lambda m: f"{prefix}blocks.{m[1]}.attn.{'qkv' if m[2] == 'qkv' else 'out'}.", key)
        state_dict[new] = state_dict.pop(key)


def attention_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """The prior's attention mask for captions ``token_mask`` ``(B, L)`` (True: a real token) followed by the four
    positions the prior appends (text embedding, timestep, noisy embedding, query): ``(B, 1, L + 4, L + 4)`` bool,
    True where a query (row) may attend to a key (column). Causal, padding keys hidden, and every position may always
    see itself (so no row of the softmax is empty when the whole caption is dropped)."""
    b, n_tok = token_mask.shape
    s = n_tok + 4
    keys = torch.cat([token_mask, torch.ones(b, 4, dtype=torch.bool, device=token_mask.device)], dim=1)
    causal = torch.ones(s, s, dtype=torch.bool, device=token_mask.device).tril()
    eye = torch.eye(s, dtype=torch.bool, device=token_mask.device)
    return ((causal & keys[:, None, :]) | eye)[:, None]


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
        # not causal by itself: attention_mask() says who sees whom (causal, and the caption's padding hidden)
        self.blocks = nn.ModuleList(Block(c.width, c.heads) for _ in range(c.layers))
        self.ln_final = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.embed_dim)
        self.register_load_state_dict_pre_hook(_rename_old_block_keys)

    def sequence(
        self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
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
        """This network's mask: the module's :func:`attention_mask`, looked up when called (lesson 06 puts the
        learner's in its place)."""
        return attention_mask(token_mask)

    def forward(
        self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor
    ) -> torch.Tensor:
        x = self.sequence(z_t, t, text_emb, tokens)
        mask = self.attention_mask(token_mask)
        for block in self.blocks:
            x = block(x, mask)
        return self.out(self.ln_final(x[:, -1]))

    def config_dict(self) -> dict:
        return asdict(self.config)


# ----------------------------------------------------------------------------------------------
# Training and sampling.


def drop_caption(
    text_emb: torch.Tensor, token_mask: torch.Tensor, p_uncond: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the whole caption (embedding → zeros, every token hidden) for a fraction ``p_uncond`` of rows."""
    keep = (torch.rand(len(text_emb), generator=generator) >= p_uncond).to(text_emb.device)
    return text_emb * keep[:, None].to(text_emb.dtype), token_mask & keep[:, None]


def prior_loss(
    prior: DiffusionPrior, z_image: torch.Tensor, text_emb: torch.Tensor, tokens: torch.Tensor,
    token_mask: torch.Tensor, schedule: diffusion.NoiseSchedule, p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise the (√D-scaled) image embeddings ``(B, D)`` to a random step and regress the clean ones (MSE)."""
    x0 = z_image * math.sqrt(z_image.shape[-1])
    t = torch.randint(schedule.T, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    text_emb, token_mask = drop_caption(text_emb, token_mask, p_uncond, generator)
    return (prior(diffusion.q_sample(x0, t, noise, schedule), t, text_emb, tokens, token_mask) - x0).pow(2).mean()


def guided_x0(prior: DiffusionPrior, z_t, t, text_emb, tokens, token_mask, scale: float) -> torch.Tensor:
    """Classifier-free guidance on the x0 prediction: ``x̂0(∅) + s·(x̂0(c) − x̂0(∅))`` ``(B, D)`` (one batched call,
    :func:`~dalle2_lessons.diffusion.guide`), where ∅ zeroes the text embedding and hides every caption token."""
    null = (z_t, t, torch.zeros_like(text_emb), tokens, torch.zeros_like(token_mask))
    return diffusion.guide(prior, (z_t, t, text_emb, tokens, token_mask), null, scale)


def x0_ddim_step(
    x0: torch.Tensor, t: int, t_prev: int, z_t: torch.Tensor, schedule: diffusion.NoiseSchedule
) -> torch.Tensor:
    """A deterministic DDIM step (η = 0) for a network that predicts x̂0 instead of ε: recover the
    noise that ``z_t`` ``(B, D)`` must contain given ``x̂0`` ``(B, D)``, then re-noise ``x̂0`` to level ``t_prev``
    with it.

    This is the step :func:`sample` takes (:func:`~dalle2_lessons.diffusion.ddim_step` with
    ``prediction_type="sample"``, η = 0)."""
    return diffusion.ddim_step(x0, t, t_prev, z_t, schedule, eta=0.0, prediction_type="sample")[0]


def pick_best(candidates: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """unCLIP's choice among a caption's candidate embeddings (section 2.2): ``candidates`` ``(B, K, D)``,
    ``text_emb`` ``(B, D)`` → ``(B, D)``, for each caption the candidate with the largest dot product with it."""
    best = (candidates * text_emb[:, None]).sum(-1).argmax(dim=1)
    return candidates[torch.arange(len(candidates)), best]


@torch.no_grad()
def sample(
    prior: DiffusionPrior, text_emb: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
    schedule: diffusion.NoiseSchedule, scale: float = 1.0, steps: int = 64, candidates: int = 2,
    generator: torch.Generator | None = None, x0_step: Callable | None = None, pick: Callable | None = None,
) -> torch.Tensor:
    """Image embeddings for captions: ``(B, D)`` unit vectors, on ``text_emb``'s device (drawn on the prior's).

    Draws ``candidates`` embeddings per caption with ``steps`` DDIM steps (η = 0, each one ``x0_step``) and keeps,
    for each caption, the one ``pick`` chooses. By default these are this module's :func:`x0_ddim_step` and
    :func:`pick_best` (the largest dot product with the caption's text embedding, unCLIP section 2.2), looked up when
    called: lesson 06 puts the learner's in their place, so every sample of the lesson goes through them.
    ``x0_step(x0, t, t_prev, z_t, schedule) → z_{t_prev}``; ``pick(candidates (B, K, D), text_emb (B, D)) → (B, D)``.
    """
    x0_step, pick = x0_step or x0_ddim_step, pick or pick_best
    device = next(prior.parameters()).device  # sampled where the prior is; returned where the captions came from
    out_device, text_emb = text_emb.device, text_emb.to(device)
    b, d = text_emb.shape
    k = candidates
    rep = lambda x: x.repeat_interleave(k, 0)  # noqa: E731
    te, tk, tm = rep(text_emb), rep(tokens.to(device)), rep(token_mask.to(device))
    x0_model = lambda z_t, t: guided_x0(prior, z_t, t, te, tk, tm, scale)  # noqa: E731

    def step(x0, t, t_prev, z_t, schedule, **_):  # lesson 04's step contract: (z_{t_prev}, x̂0)
        return x0_step(x0, t, t_prev, z_t, schedule), x0

    # lesson 04's sampler; the network predicts x̂0, and √D-scaled embeddings are not images: nothing to clamp
    z = diffusion.sample_ddim(x0_model, (b * k, d), schedule, steps, 0.0, generator, device, progress=False,
                              prediction_type="sample", clip_x0=False, clip_output=False, step=step)
    return pick(F.normalize(z, dim=-1).view(b, k, d), text_emb).to(out_device)


# ----------------------------------------------------------------------------------------------
# Baselines, measurement and the course checkpoint.

CHECKPOINT = "prior"


def nearest_neighbour(
    text_emb: torch.Tensor, train_text_emb: torch.Tensor, train_image_emb: torch.Tensor
) -> torch.Tensor:
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
    def build(cls, clip_model, n: int, split: str = "train", seed: int = 0, version: str = "v2") -> PriorData:
        ds = shapes.ShapesDataset(split, n=n, resolution=clip_model.config.resolution, seed=seed, version=version)
        tokens = caption_tokens(tokenizer.for_version(version), "single", ds.attrs, ds.scenes.mentions)
        return cls(embed_images(clip_model, ds.images), CaptionBank.build(clip_model, tokens))

    def first_captions(self) -> torch.Tensor:
        """``(N, D)`` the text embedding of each scene's first paraphrase (what nearest-neighbour searches)."""
        return self.bank.embeddings[self.bank.index[:, 0]]


def compare(
    prior: DiffusionPrior, clip_model, train: PriorData, n: int, split: str = "test", scale: float = 1.0,
    steps: int = 64, candidates: int = 2, seed: int = 0, version: str = "v2",
) -> dict[str, float]:
    """Mean cosine to the true CLIP image embedding of ``n`` fresh ``split`` scenes, for each way of
    guessing it from the caption: ``no_prior`` (the text embedding itself), ``nearest`` (the image
    embedding of the most similar training caption), ``prior`` (a sample), and two references that know
    the true attributes: ``another_render`` (the embedding of a second render of the *same* caption,
    which is what a perfect *sampler* scores: the caption does not say where exactly the object sits)
    and ``cloud_centre`` (the normalised mean embedding of eight such renders, the best single *guess*
    under this metric; a sampler that drifts towards it trades diversity for cosine). Every caption is a full
    one, even in v2: a partial caption's cosine to one image says little (:mod:`~.prior_ablation` compares
    distributions instead)."""
    scenes = shapes.sample_scenes(n, split, "single", seed=seed + 1, version=version)
    again = shapes.rejitter(scenes, seed=seed + 2)  # same attributes, fresh size and place within the cell
    r = clip_model.config.resolution
    z_true = embed_images(clip_model, shapes.render(scenes, r))
    text, feats, mask = encode_captions(clip_model, tokenizer.for_version(version).encode_batch(scenes.full_captions))
    device = next(prior.parameters()).device
    z_prior = sample(prior.eval(), text.to(device), feats.to(device), mask.to(device), diffusion.cosine_schedule(),
                     scale, steps, candidates, torch.Generator().manual_seed(seed)).cpu()
    return {
        "no_prior": mean_cosine(text, z_true),
        "nearest": mean_cosine(nearest_neighbour(text, train.first_captions(), train.image_emb), z_true),
        "prior": mean_cosine(z_prior, z_true),
        "another_render": mean_cosine(embed_images(clip_model, shapes.render(again, r)), z_true),
        "cloud_centre": mean_cosine(
            F.normalize(
                sum(
                    embed_images(clip_model, shapes.render(shapes.rejitter(scenes, seed=seed + 3 + k), r))
                    for k in range(8)
                ),
                dim=-1,
            ),
            z_true,
        ),
    }


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class PriorSettings:
    """Lesson 06 (and ``python -m dalle2_lessons.prior``, which builds the course checkpoint)."""

    n_train: int  #: training scenes whose (caption, image embedding) pairs the prior learns from
    steps: int  #: optimiser steps
    batch_size: int
    lr: float
    n_eval: int  #: test captions for the cosine table
    sample_steps: int = 64  #: DDIM steps when sampling an embedding (the paper uses 64)
    candidates: int = 2  #: samples per caption, of which the one closest to the text embedding is kept
    p_uncond: float = 0.1  #: caption dropout (tokens and text embedding together)
    weight_decay: float = 1e-2  #: AdamW's
    seed: int = 0
    version: str = "v2"  #: the Shapes version it learns from (:data:`~.shapes.VERSIONS`)
    ablation_captions: int = 4  #: evaluation captions per kind in lesson 06's distribution table (prior_ablation)
    ablation_k: int = 64  #: prior samples and real renders per caption in that table


PRESETS: dict[str, PriorSettings] = {
    "ci": PriorSettings(n_train=2_000, steps=40, batch_size=64, lr=1e-3, n_eval=32, sample_steps=16,
                        ablation_captions=1, ablation_k=16),
    "cpu": PriorSettings(n_train=20_000, steps=500, batch_size=256, lr=1e-3, n_eval=250, ablation_captions=2,
                         ablation_k=32),
    "gpu": PriorSettings(n_train=20_000, steps=3_000, batch_size=256, lr=1e-3, n_eval=2_000),
}


def train_prior(cfg: PriorSettings, image_emb: torch.Tensor, bank: CaptionBank, device: str | torch.device = "cpu",
                progress: bool = True, callback: Callable | None = None) -> tuple[DiffusionPrior, list[float]]:
    """Train a prior from scratch on ``image_emb`` ``(N, D)`` (unit CLIP image embeddings) and the captions of the same
    ``N`` scenes in ``bank``, with ``cfg``. Returns ``(ema_prior, losses)``: what lesson 06, the course checkpoint
    and lesson 14 (other data) all train with. ``callback`` as in :func:`~dalle2_lessons.training.train`."""
    profiles.seed_everything(cfg.seed)
    feats = bank.features
    model = DiffusionPrior(PriorConfig(embed_dim=image_emb.shape[-1], token_width=feats.shape[-1],
                                       context_length=feats.shape[1]))
    schedule = diffusion.cosine_schedule()

    def loss_fn(m, idx, gen):
        text, tokens, mask = bank.random_paraphrase(idx, gen)
        return prior_loss(m, image_emb[idx].to(device), text.to(device), tokens.to(device), mask.to(device), schedule,
                          cfg.p_uncond, gen)

    ema, losses = train(model, loss_fn, image_emb, cfg.steps, cfg.batch_size, cfg.lr, weight_decay=cfg.weight_decay,
                        seed=cfg.seed, device=device, desc="diffusion prior", progress=progress, callback=callback)
    return ema.module.eval(), losses


def build(cfg: PriorSettings, device: str | torch.device = "cpu", *, clip: CLIP | None = None,
          eval_every: int | None = None, n_eval: int = 500, progress: bool = True) -> Built:
    """The course prior: :func:`train_prior` on ``cfg.n_train`` Shapes scenes embedded by ``clip`` (default: the
    course CLIP). With ``eval_every``, the EMA prior's mean cosine to the true image embedding on ``n_eval`` test
    captions is measured every so many steps. ``Built.extra["data"]`` is the :class:`PriorData` it trained on."""
    clip = clip or load_clip(version=cfg.version)
    data = PriorData.build(clip, cfg.n_train, version=cfg.version)
    curve = Curve(cfg.steps, eval_every, lambda m: compare(m, clip, data, n_eval, steps=cfg.sample_steps,
                                                           candidates=cfg.candidates, version=cfg.version))
    model, losses = train_prior(cfg, data.image_emb, data.bank, device, progress, curve)
    return Built(model, {"loss": losses}, curve.train_seconds, curve.points, cfg, {"data": data})


def load_prior(profile: str | None = None, device: str | torch.device = "cpu", *, clip: CLIP,
               version: str = "v2") -> DiffusionPrior:
    """The prior trained on ``clip``'s embeddings: yours of ``profile`` (from lesson 06) if it is, else the course
    checkpoint of Shapes ``version`` if it is (eval mode); a :class:`~dalle2_lessons.checkpoints.CheckpointError` if
    neither."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: DiffusionPrior(PriorConfig(**config)), profile, device, {"clip": clip})


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser(
        "Train the course's diffusion prior (CLIP text embedding → CLIP image embedding) and save it.",
        "measure the cosine table every N steps", 1000, "captions per split for the final cosine table", versioned=True)
    args, cfg, clip, built = builders.run_builder(p, PRESETS, build, argv)
    model = built.model
    results = {}
    for split in ("test", "heldout"):
        for scale in (1.0, 2.0):
            key = f"{split}_s{scale:g}"
            table = compare(model, clip, built.extra["data"], args.n_eval, split, scale, cfg.sample_steps,
                            cfg.candidates, version=cfg.version)
            results[key] = {k: round(v, 4) for k, v in table.items()}
            print(f"{key}: {results[key]}", flush=True)
    if cfg.version != "v1":  # what the prior is for: the distribution of images a partial caption leaves open
        from .prior_ablation import ablation, format_summary, summary_table

        rows = ablation(model, clip, built.extra["data"], cfg, version=cfg.version)
        results["distribution"] = summary_table(rows)
        print(format_summary(results["distribution"]), flush=True)
    rebuild = checkpoints.command("prior", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, {"cosine": results}, rebuild,
                        parents={"clip": clip})


if __name__ == "__main__":
    main()
