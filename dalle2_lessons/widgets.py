"""Interactive pieces for the lessons (ipywidgets). Each returns a widget to display; the drawing
function behind it is an ordinary function too, so tests and non-interactive runs can call it."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from . import diffusion
from .plotting import to_display


def draw_noised(image: torch.Tensor, t: int, schedules: dict[str, diffusion.NoiseSchedule], seed: int = 0) -> plt.Figure:
    """The clean ``(3, H, W)`` image and x_t under each schedule (one noise, from ``seed``), titled with ᾱ_t."""
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(1, len(schedules) + 1, figsize=(2.4 * (len(schedules) + 1), 2.7))
    axes[0].imshow(to_display(image[None])[0], interpolation="nearest")
    axes[0].set_title("x_0", fontsize=9)
    for ax, (name, s) in zip(axes[1:], schedules.items()):
        x_t = diffusion.q_sample(image[None], torch.tensor([t]), noise[None], s)
        ax.imshow(to_display(x_t)[0], interpolation="nearest")
        ax.set_title(f"{name}: t={t}, ᾱ={s.alphas_cumprod[t]:.3f}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def noising_slider(image: torch.Tensor, schedules: dict[str, diffusion.NoiseSchedule], seed: int = 0) -> widgets.Widget:
    """A slider over t that shows ``image`` noised to step t by each schedule, with one fixed noise."""
    T = next(iter(schedules.values())).T  # noqa: N806

    def show(t: int) -> None:
        draw_noised(image, t, schedules, seed)
        plt.show()

    slider = widgets.IntSlider(value=T // 4, min=0, max=T - 1, step=1, description="t", continuous_update=False)
    return widgets.interactive(show, t=slider)
