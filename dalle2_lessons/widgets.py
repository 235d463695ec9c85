"""Interactive pieces for the lessons (ipywidgets). Each returns a widget to display; the drawing
function behind it is an ordinary function too, so tests and non-interactive runs can call it."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from . import diffusion
from .plotting import to_display


def draw_noised(
    image: torch.Tensor, t: int, schedules: dict[str, diffusion.NoiseSchedule], seed: int = 0
) -> plt.Figure:
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


def prompt_explorer(
    generate: Callable[[str, float, int], torch.Tensor],
    prompt: str = "a small red circle in the top left",
    scale: float = 3.0,
    max_scale: float = 10.0,
    describe: Callable[[torch.Tensor, str], str] | None = None,
) -> widgets.Widget:
    """Type a prompt, pick a guidance scale and a seed, see the samples.

    Args:
        generate: ``(prompt, scale, seed) → (B, 3, R, R)`` images in [-1, 1]; it may raise
            :class:`~dalle2_lessons.tokenizer.PromptError`, whose message is shown instead of a picture.
        describe: optional ``(images, prompt) → str`` printed under the grid (e.g. the judge's verdict).
    """
    from .plotting import show_grid
    from .tokenizer import PromptError

    def show(prompt: str, scale: float, seed: int) -> None:
        try:
            images = generate(prompt, scale, seed)
        except PromptError as err:
            print(f"That prompt cannot be read: {err}")
            return
        show_grid(images, nrow=min(8, len(images)), size=0.9, title=f"“{prompt}”, guidance {scale:g}, seed {seed}")
        plt.show()
        if describe is not None:
            print(describe(images, prompt))

    return widgets.interactive(
        show,
        {"manual": True, "manual_name": "generate"},
        prompt=widgets.Text(value=prompt, description="prompt", layout=widgets.Layout(width="32em")),
        scale=widgets.FloatSlider(value=scale, min=0.0, max=max_scale, step=0.5, description="guidance"),
        seed=widgets.IntText(value=0, description="seed"),
    )
