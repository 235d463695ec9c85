"""A small U-Net that predicts the noise in a noisy image: the network of every diffusion lesson.

Designed for a CPU first: at 16×16 it has 1.86 M parameters and trains at about 270 images
per second on 2 cores, where a general-purpose library U-Net with attention at several levels is
many times slower. The parts are the ones of DDPM / improved DDPM / GLIDE, at toy size:

* residual blocks: GroupNorm → SiLU → 3×3 conv, twice, with the timestep embedding added in between;
* a sinusoidal timestep embedding (as for positions in a transformer) passed through a small MLP;
* a down path that halves the resolution, an up path that doubles it back, and skip connections
  that hand each up level the down path's features at the same resolution;
* self-attention at the lowest resolution, where a 4×4 grid is only 16 tokens;
* optionally a conditioning vector (e.g. a CLIP embedding) projected and added to the timestep
  embedding, which is how lessons 05 and 07 condition the same network; for those, two options make
  the condition usable: ``scale_shift`` (the embedding scales and shifts each block's normalised
  features, ADM's adaptive GroupNorm, instead of only being added) and ``position_embedding`` (a
  learned vector per pixel, so a caption's "top left" can refer to a place).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of the timesteps: ``(B,)`` → ``(B, dim)``, ``[cos(t·f_k), sin(t·f_k)]`` with
    frequencies ``f_k`` spaced geometrically from 1 down to 1/max_period, so nearby steps get nearby
    embeddings at every scale."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """``(B, C_in, H, W)`` and an embedding ``(B, E)`` → ``(B, C_out, H, W)``."""

    def __init__(
        self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0, groups: int = 8, scale_shift: bool = False
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: deep U-Nets train more stably
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]  # "which step is this?" (and "what to draw?") reaches every block
        if self.scale_shift:  # improved DDPM / ADM: the embedding scales and shifts the normalised features
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual: ``(B, C, H, W)`` → same.

    With ``context_dim``, the pixels also attend to a sequence of context tokens ``(B, S, context_dim)``
    (GLIDE and unCLIP's decoder do this with caption tokens and CLIP-embedding tokens): the tokens are
    projected to extra keys and values, so each pixel can look up "what should be here?" in them.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.context_kv = nn.Linear(context_dim, 2 * channels) if context_dim else None
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        #: ``(q, k, v, ck, cv, context_mask) → (B, heads, H·W, C/heads)``: attention over pixels and context tokens
        #: written by hand (lesson 07's exercise, set by :func:`use_context_attention`); None: PyTorch's fused kernel
        self.context_attention: Callable | None = None

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``context`` ``(B, S, context_dim)``; ``context_mask`` ``(B, S)`` bool, True where a token may be seen."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).permute(1, 0, 2, 4, 3)
        mask = None
        if self.context_kv is not None and context is not None:
            ck, cv = self.context_kv(context).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            if self.context_attention is not None and context_mask is not None:
                y = self.context_attention(q, k, v, ck, cv, context_mask)
                return x + self.out(y.permute(0, 1, 3, 2).reshape(b, c, h, w))
            k, v = torch.cat([k, ck], dim=2), torch.cat([v, cv], dim=2)  # keys: the H·W pixels, then the S tokens
            if context_mask is not None:  # pixels are always visible, so no softmax row is ever empty
                pixels_visible = torch.ones(b, h * w, dtype=torch.bool, device=x.device)
                mask = torch.cat([pixels_visible, context_mask], dim=1)[:, None, None, :]
        # (B, heads, HW, C/heads); lesson 01 wrote this by hand
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x + self.out(y.permute(0, 1, 3, 2).reshape(b, c, h, w))


def use_context_attention(model: nn.Module, fn: Callable | None) -> nn.Module:
    """Make every attention layer of ``model`` that reads context tokens attend with ``fn(q, k, v, ck, cv,
    context_mask)`` (``None``: back to PyTorch's fused attention). Returns ``model``."""
    for m in model.modules():
        if isinstance(m, SelfAttention2d):
            m.context_attention = fn
    return model


def _attend(
    attn: nn.Module, h: torch.Tensor, context: torch.Tensor | None, context_mask: torch.Tensor | None
) -> torch.Tensor:
    return attn(h, context, context_mask) if isinstance(attn, SelfAttention2d) else attn(h)


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a :class:`UNet` (stored in its checkpoint's JSON)."""

    resolution: int = 16
    in_channels: int = 3
    base_channels: int = 48
    channel_mults: tuple[int, ...] = (1, 2, 2)
    attention_levels: tuple[int, ...] = (2,)  #: level indices (0 = full resolution) with self-attention
    dropout: float = 0.0
    cond_dim: int | None = None  #: size of an optional conditioning vector added to the time embedding
    scale_shift: bool = False  #: the embedding scales and shifts each block's features instead of adding to them
    #: a learned per-pixel vector added after the stem: tells the network *where* it is
    position_embedding: bool = False
    context_dim: int | None = None  #: width of optional context tokens the attention layers also attend to (lesson 07)
    out_channels: int | None = None  #: channels predicted (default ``in_channels``; the upsampler reads 6, predicts 3)
    mid_attention: bool = True  #: self-attention in the middle; off for the upsampler, which only ever sees local crops

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """The inverse of ``dataclasses.asdict``, as read back from a checkpoint's JSON (which stores tuples as
        lists)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class UNet(nn.Module):
    """ε-prediction network: noisy images ``(B, C, R, R)``, timesteps ``(B,)`` (and an optional
    condition ``(B, cond_dim)``, optional context tokens ``(B, S, context_dim)``) → predicted noise
    ``(B, C_out, R, R)``. Without attention and position embedding it is fully convolutional, so it
    runs at any resolution divisible by ``2 ** (levels - 1)``."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = c = config
        chans = [c.base_channels * m for m in c.channel_mults]
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = nn.Linear(c.cond_dim, emb_dim) if c.cond_dim else None
        self.stem = nn.Conv2d(c.in_channels, chans[0], 3, padding=1)
        # Convolutions and attention are (nearly) blind to absolute position; a caption that says "top
        # left" needs it, so conditional models can add a learned position embedding, as ViTs do.
        self.pos = nn.Parameter(torch.zeros(1, chans[0], c.resolution, c.resolution)) if c.position_embedding else None

        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        prev = chans[0]
        for level, ch in enumerate(chans):
            self.down.append(ResBlock(prev, ch, emb_dim, c.dropout, scale_shift=c.scale_shift))
            self.down_attn.append(SelfAttention2d(ch, context_dim=c.context_dim) if level in c.attention_levels
                                  else nn.Identity())
            last = level == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            prev = ch
        self.mid1 = ResBlock(prev, prev, emb_dim, c.dropout, scale_shift=c.scale_shift)
        self.mid_attn = SelfAttention2d(prev, context_dim=c.context_dim) if c.mid_attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, emb_dim, c.dropout, scale_shift=c.scale_shift)

        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level, ch in reversed(list(enumerate(chans))):
            # prev + ch: the skip from the down path
            self.up.append(ResBlock(prev + ch, ch, emb_dim, c.dropout, scale_shift=c.scale_shift))
            self.up_attn.append(SelfAttention2d(ch, context_dim=c.context_dim) if level in c.attention_levels
                                else nn.Identity())
            self.upsample.append(nn.Identity() if level == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)))
            prev = ch
        self.head = nn.Sequential(nn.GroupNorm(8, prev), nn.SiLU(),
                                  nn.Conv2d(prev, c.out_channels or c.in_channels, 3, padding=1))

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
        context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if self.cond_proj is not None and cond is not None:
            emb = emb + self.cond_proj(cond)
        h = self.stem(x)
        if self.pos is not None:
            h = h + self.pos
        skips = []
        for block, attn, down in zip(self.down, self.down_attn, self.downsample):
            h = _attend(attn, block(h, emb), context, context_mask)
            skips.append(h)
            h = down(h)
        h = self.mid2(_attend(self.mid_attn, self.mid1(h, emb), context, context_mask), emb)
        for block, attn, up in zip(self.up, self.up_attn, self.upsample):
            h = _attend(attn, block(torch.cat([h, skips.pop()], dim=1), emb), context, context_mask)
            h = up(h)
        return self.head(h)

    def config_dict(self) -> dict:
        return asdict(self.config)
