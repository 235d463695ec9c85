"""DALL·E 1's image tokenizer (lesson 12): a VQ-VAE that turns an image into a grid of discrete tokens and back.

DALL·E 1 (Ramesh et al., 2021) used a **discrete VAE**: a 256×256 image becomes a 32×32 grid of tokens from a
vocabulary of 8192 (a Gumbel-softmax dVAE). We use its close cousin, the **VQ-VAE** (van den Oord et al., 2017): an
encoder maps a 16×16 (or 32×32) image to an 8×8 grid of vectors, each replaced by its nearest codebook entry
(:func:`quantise`), and a decoder paints the image back. The nearest-neighbour lookup has no gradient, so the
**straight-through estimator** (:func:`straight_through`) copies the decoder's gradient to the encoder; a
commitment loss keeps the encoder near its entries, and the entries follow the encoder as moving averages of the
vectors assigned to them (the codebook update of the VQ-VAE paper's appendix, also used by VQ-VAE-2). Entries nobody
uses are restarted on encoder outputs, so the vocabulary does not collapse to a few words.

The transformer that writes these tokens, and the two stages together, are in :mod:`~dalle2_lessons.dalle1`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .training import train
from .vae import conv_block


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
        up = [m for i in reversed(range(n_down))
              for m in (nn.Upsample(scale_factor=2), conv_block(chans[i + 1], chans[i]))]
        self.encoder = nn.Sequential(conv_block(3, w), *down, conv_block(chans[-1], chans[-1]),
                                     nn.Conv2d(chans[-1], c.code_dim, 1))
        self.decoder = nn.Sequential(conv_block(c.code_dim, chans[-1]), conv_block(chans[-1], chans[-1]), *up,
                                     nn.Conv2d(w, 3, 3, 1, 1))
        self.register_buffer("codebook", torch.randn(c.codebook_size, c.code_dim))
        # the moving averages behind the codebook: how many vectors each entry received, and their sum
        self.register_buffer("code_count", torch.ones(c.codebook_size))
        self.register_buffer("code_sum", self.codebook.clone())

    @property
    def grid(self) -> int:
        return self.config.resolution // self.config.downsample

    def forward(self, x: torch.Tensor, quantise_fn: Callable = quantise,
                straight_through_fn: Callable = straight_through,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction (B, 3, R, R), indices (B, G, G), commitment loss, z (B, D, G, G))``.

        In training mode the codebook moves towards this batch's encoder outputs. ``quantise_fn`` and
        ``straight_through_fn`` replace :func:`quantise` and :func:`straight_through` (lesson 12 passes the learner's).
        """
        z = self.encoder(x)
        indices, q = quantise_fn(z, self.codebook)
        if self.training:
            self.update_codebook(z, indices)
        return self.decoder(straight_through_fn(z, q)), indices, commitment_loss(z, q, self.config.beta), z

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


def train_tokenizer(
    model: VQVAE,
    images: torch.Tensor,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    restart_every: int | None = 50,
    init_from_data: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    callback: Callable | None = None,
    desc: str = "VQ-VAE tokenizer",
    quantise_fn: Callable = quantise,
    straight_through_fn: Callable = straight_through,
) -> dict[str, list[float]]:
    """Train the tokenizer in place on ``images`` ``(N, 3, R, R)``: loss = reconstruction MSE + commitment.

    With ``init_from_data`` the codebook starts on encoder outputs of the first batch (else on its random
    initialisation); every ``restart_every`` steps (until 80% of training; ``None`` = never) the entries that
    received less than 1% of their fair share of recent batches are restarted. Returns per-step
    ``{"loss", "reconstruction", "codes_used"}`` (distinct ids in the batch). ``quantise_fn`` and
    ``straight_through_fn``: what the forward pass quantises with (see :meth:`VQVAE.forward`).
    """
    log: dict[str, list[float]] = {"reconstruction": [], "codes_used": []}
    usage = torch.full((model.config.codebook_size,), 1.0)  # a moving average of each entry's share of a batch
    step = 0

    def loss_fn(m: VQVAE, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        nonlocal step, usage
        x = images[idx].to(device)
        if step == 0 and init_from_data:
            m.reset_codes(torch.ones(m.config.codebook_size, dtype=torch.bool), m.encoder(x), gen)
        reconstruction, indices, commitment, z = m(x, quantise_fn, straight_through_fn)
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


def tokenize_images(tok: VQVAE, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """``(N, 3, R, R)`` → ``(N, G·G)`` image-token ids, row by row (the transformer's reading order)."""
    return torch.cat([tok.encode(images[i : i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)])
