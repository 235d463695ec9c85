"""The course's transformer: scaled dot-product attention, multi-head attention, and one pre-norm block.

Every model of the course that reads a sequence is a stack of the same :class:`Block` (GPT-2's pre-norm layout):

* CLIP's text encoder (lesson 01): causal self-attention over a caption;
* the diffusion prior (lesson 06): self-attention under a mask that hides the caption's padding;
* DALL·E 1's transformer (lesson 12): causal self-attention over ``[caption, image tokens]``, sampled one token at
  a time with a :class:`KVCache`.

CLIP's image encoder uses :class:`MultiHeadAttention` on its own, as cross-attention (attention pooling).

Lesson 01 has you write :func:`scaled_dot_product_attention` and puts yours in place of this module's
(``exercises.use_in_package(transformer, "scaled_dot_product_attention", yours)``). That is why the layers below look
the function up by its name in this module at every call instead of holding on to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q kᵀ / √d + M) v, with ``M`` = −∞ where a query may not look and 0 elsewhere.

    Args:
        q: ``(..., T, d)`` queries; k, v: ``(..., S, d)`` keys and values.
        causal: if True, a query may only attend to keys at or before its own position. The ``T`` queries are the
            *last* ``T`` of the ``S`` positions (``T == S`` for a whole sequence; ``T < S`` when a key/value cache
            holds the first ``S − T``).
        mask: optional bool, broadcastable to ``(..., T, S)``: True where query ``t`` may attend to key ``s``.
            Every query must be allowed at least one key (an all-masked row would be a softmax of nothing).
    Returns:
        ``(..., T, d)``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        t, s = scores.shape[-2:]
        # query t sits at position s - t + its index, so the future starts one diagonal further right
        future = torch.ones(t, s, dtype=torch.bool, device=q.device).triu(s - t + 1)
        scores = scores.masked_fill(future, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


@dataclass
class KVCache:
    """One attention layer's keys and values of the positions it has already read, ``(B, heads, past, C / heads)``.

    Start with an empty one per block; every call of the block with ``cache=`` appends the new positions' keys and
    values, so the next call needs to run the network only on the positions that follow (incremental decoding).
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``(B, heads, T, C / heads)`` keys and values; returns all, ``(B, heads, past + T, C / heads)``."""
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v


class MultiHeadAttention(nn.Module):
    """``(B, T, C)`` → ``(B, T, C)``: ``heads`` attentions of width ``C / heads`` side by side.

    One ``qkv`` linear layer holds the query, key and value projections stacked (in that order), ``out`` mixes the
    heads back together.
    """

    def __init__(self, width: int, heads: int, causal: bool = False):
        super().__init__()
        assert width % heads == 0, "width must be divisible by heads"
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Self-attention over ``x`` ``(B, T, C)``.

        Args:
            context: ``(B, S, C)``: queries from ``x`` attend to it instead (cross-attention).
            mask: bool ``(B, 1, T, S)`` or broadcastable: True where query ``t`` may attend to key ``s``.
            cache: keys and values of earlier positions; this call attends to them too and appends its own.
        """
        b, t, c = x.shape
        source = x if context is None else context
        # the projections one at a time, so that queries and keys/values can come from different sequences
        wq, wk, wv = self.qkv.weight.chunk(3)
        bq, bk, bv = self.qkv.bias.chunk(3)
        split = lambda y: y.view(b, y.shape[1], self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(F.linear(x, wq, bq)), split(F.linear(source, wk, bk)), split(F.linear(source, wv, bv))
        if cache is not None:
            k, v = cache.extend(k, v)  # (B, heads, past + T, C/heads): the cached positions, then these
        if mask is None:  # lesson 01's own attention (swapped in there) takes no mask: pass one only when there is one
            y = scaled_dot_product_attention(q, k, v, causal=self.causal)  # (B, heads, T, C/heads)
        else:
            y = scaled_dot_product_attention(q, k, v, causal=self.causal, mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``. ``(B, T, C)`` → same.

    Args:
        causal: each position attends only to itself and the positions before it (CLIP's text encoder, DALL·E 1);
            the prior passes its own ``mask`` instead.
    """

    def __init__(self, width: int, heads: int, causal: bool = False):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = MultiHeadAttention(width, heads, causal)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        """``x`` ``(B, T, C)``; ``mask`` and ``cache`` as in :meth:`MultiHeadAttention.forward`. With a cache, ``x``
        holds only the positions after the cached ones, and the output is the block's output at those positions."""
        x = x + self.attn(self.ln_1(x), mask=mask, cache=cache)
        return x + self.mlp(self.ln_2(x))
