"""Pictures for the lessons: image grids with captions, loss curves, bar charts, the unCLIP map.

Every function draws with matplotlib and returns the figure, so a notebook shows it and a script
can ``fig.savefig(...)`` it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torchvision.utils import make_grid


def to_display(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] → ``(B, H, W, 3)`` in [0, 1] for ``imshow``."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()


def show_images(
    images: torch.Tensor,
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.4,
    title: str | None = None,
    wrap: int = 18,
) -> plt.Figure:
    """A grid of images, each with its (wrapped) caption underneath.

    Args:
        images: ``(B, 3, H, W)`` in [-1, 1].
        captions: ``B`` strings, or None.
        ncols: images per row.
        size: inches per image.
    """
    pics = to_display(images)
    n = len(pics)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    text_h = 0.6 if captions is not None else 0.0  # room for three lines of caption above each image
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + text_h)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(pics[i], interpolation="nearest")
            if captions is not None:
                ax.set_title("\n".join(textwrap.wrap(captions[i], wrap)), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_grid(images: torch.Tensor, nrow: int = 16, size: float = 0.5, title: str | None = None) -> plt.Figure:
    """Many images at once, without captions (``torchvision.utils.make_grid``); ``size`` inches each."""
    grid = make_grid((images.detach().cpu().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=1, pad_value=0.35)
    rows = -(-len(images) // nrow)
    fig, ax = plt.subplots(figsize=(min(nrow, len(images)) * size, rows * size + (0.4 if title else 0)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_losses(
    losses: Sequence[float], title: str = "training loss", smooth: int = 25, ax: plt.Axes | None = None
) -> plt.Figure:
    """The raw loss per step (faint) and its moving average over ``smooth`` steps."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    y = np.asarray(losses, dtype=float)
    ax.plot(y, alpha=0.3, lw=0.8, label="per step")
    if len(y) >= smooth > 1:
        ax.plot(np.arange(smooth - 1, len(y)), np.convolve(y, np.ones(smooth) / smooth, mode="valid"),
                label=f"mean of {smooth}")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure


def bar_counts(counts: dict[str, np.ndarray], labels: dict[str, Sequence[str]], title: str | None = None) -> plt.Figure:
    """One bar chart per attribute: ``counts[name][k]`` scenes have class ``labels[name][k]``."""
    fig, axes = plt.subplots(1, len(counts), figsize=(3.2 * len(counts), 2.8))
    for ax, (name, c) in zip(np.atleast_1d(axes), counts.items()):
        ax.bar(range(len(c)), c, color="tab:blue")
        ax.set_xticks(range(len(c)), labels[name], rotation=60, ha="right", fontsize=8)
        ax.set_title(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# The unCLIP map: (label, x, y, colour, lesson). Coordinates in an 12 × 5 box.
_NODES = {
    "caption": ('"a small red circle\nin the top left"', 0.9, 3.6, "#f5f5f5", ""),
    "text_enc": ("CLIP text\nencoder", 3.1, 3.6, "#cfe3ff", "lesson 01"),
    "z_t": ("text embedding\n$z_t$", 5.3, 3.6, "#fff2b3", ""),
    "prior": ("prior\n$P(z_i \\mid y)$", 7.5, 3.6, "#d9f2d0", "lesson 06"),
    "z_i": ("image embedding\n$z_i$", 9.7, 3.6, "#fff2b3", ""),
    "decoder": ("decoder\n$P(x \\mid z_i, y)$\n16×16", 9.7, 1.5, "#ffd9cc", "lesson 07"),
    "upsampler": ("upsampler\n16→32", 7.2, 1.5, "#ffd9cc", "lesson 08"),
    "image": ("image\n32×32", 4.9, 1.5, "#f5f5f5", ""),
    "img_enc": ("CLIP image\nencoder", 2.4, 1.5, "#cfe3ff", "lesson 01"),
}
_EDGES = [
    ("caption", "text_enc", "-"), ("text_enc", "z_t", "-"), ("z_t", "prior", "-"), ("prior", "z_i", "-"),
    ("z_i", "decoder", "-"), ("decoder", "upsampler", "-"), ("upsampler", "image", "-"),
    ("image", "img_enc", "--"),
]  # fmt: skip


def draw_unclip_map() -> plt.Figure:
    """The DALL·E 2 (unCLIP) pipeline as a diagram, each box labelled with the lesson that builds it.

    Solid arrows: generating an image from text. Dashed: the CLIP image encoder, used in training
    (it produces the ``z_i`` targets for the prior and the decoder's conditioning) and for variations.
    """
    fig, ax = plt.subplots(figsize=(11, 4.4))
    ax.set(xlim=(-0.3, 11.2), ylim=(0.3, 4.7))
    ax.axis("off")
    w, h = 1.85, 0.95
    for label, x, y, colour, lesson in _NODES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#444"))
        ax.text(x, y, label, ha="center", va="center", fontsize=9)
        if lesson:
            ax.text(x, y - h / 2 - 0.12, lesson, ha="center", va="top", fontsize=8, color="#555", style="italic")
    for a, b, style in _EDGES:
        (xa, ya), (xb, yb) = _NODES[a][1:3], _NODES[b][1:3]
        dx, dy = np.sign(xb - xa) * w / 2, np.sign(yb - ya) * h / 2
        start = (xa + dx, ya) if xa != xb else (xa, ya + dy)
        end = (xb - dx, yb) if xa != xb else (xb, yb - dy)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.4, ls=style, color="#333"))
    ax.text(2.4, 0.55, "training & variations: image → $z_i$", ha="center", fontsize=8, color="#555")
    ax.set_title("DALL·E 2 = unCLIP: CLIP embeddings, a prior, a diffusion decoder and a diffusion upsampler",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_guidance_sweep(sweep: dict[str, dict[float, dict]], kind: str = "partial") -> plt.Figure:
    """Lesson 15's diversity-against-guidance sweep (:func:`~.claims.guidance_sweep`), its scorecards' row ``kind``
    (``"partial"``: the pooled kinds). Left: fidelity against diversity, one line per model through its guidance scales
    (the trade-off of the paper's Figs. 9–10). Right: Shapes FID against the guidance scale, with the real-vs-real
    floor (its Fig. 11). Error bars: 95% intervals over seeds."""
    fig, (ax_trade, ax_fid) = plt.subplots(1, 2, figsize=(10, 3.8))

    def get(result: dict, measure: str) -> tuple[float, float]:
        iv = result["card"][kind][measure]
        return iv["mean"], (iv["high"] - iv["low"]) / 2

    for name, by_scale in sweep.items():
        scales = list(by_scale)
        div, div_err = zip(*(get(by_scale[s], "diversity") for s in scales), strict=True)
        fid, fid_err = zip(*(get(by_scale[s], "fidelity") for s in scales), strict=True)
        line = ax_trade.errorbar(div, fid, xerr=div_err, yerr=fid_err, marker="o", capsize=3, label=name)
        for s, x, y in zip(scales, div, fid, strict=True):
            ax_trade.annotate(f"{s:g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8,
                              color=line[0].get_color())
        fd, fd_err = zip(*(get(by_scale[s], "fid") for s in scales), strict=True)
        ax_fid.errorbar(scales, fd, yerr=fd_err, marker="o", capsize=3, label=name)
    floor = [get(result, "fid_floor")[0] for by_scale in sweep.values() for result in by_scale.values()]
    ax_fid.axhline(float(np.mean(floor)), color="grey", ls="--", label="real vs real (floor)")
    ax_trade.set(xlabel="diversity of the free attributes (1 = as varied as real renders)",
                 ylabel="fidelity (mentioned attributes right)", title="fidelity against diversity (numbers: scale)")
    ax_fid.set(xlabel="guidance scale", ylabel="Shapes FID", title="Shapes FID against guidance")
    ax_trade.legend()
    ax_fid.legend()
    fig.tight_layout()
    return fig
