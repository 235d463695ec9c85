"""What makes a Shapes image hard to read: the corruptions the attribute judge is trained with.

Two kinds. :func:`augment` makes a clean render look like an imperfect *but readable* sample (a little blur, colour
jitter, noise), so the judge reads a slightly soft sample by its content. The strict v2 judge also learns what it must
*refuse*: :func:`unreadable_versions` makes blobs out of renders (a wide blur, a squeeze through a quarter of the side
and back, a blend of two shapes, a crisp-edged blob), and :func:`blur` and :func:`squeeze` are the two degradations
its test measures. Every function maps ``(B, 3, R, R)`` images in [-1, 1] to the same shape.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import shapes


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Make clean renders look like imperfect samples: blur, colour jitter and Gaussian noise.

    ``(B, 3, R, R)`` in [-1, 1] → same shape. A quarter of the batch stays clean.
    """
    b = len(images)
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    out = images.clone()
    blurred = u(b) < 0.5
    if blurred.any():  # a 3×3 Gaussian with a random width, as a softer sample would look
        sigma = 0.3 + 0.7 * u(int(blurred.sum()))
        k = torch.exp(-torch.tensor([1.0, 0.0, 1.0])[None] / (2 * sigma[:, None] ** 2))
        k = k / k.sum(1, keepdim=True)
        kernel = (k[:, :, None] * k[:, None, :])[:, None]  # (n, 1, 3, 3)
        x = out[blurred]
        n, c, h, w = x.shape
        x = F.conv2d(F.pad(x.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="replicate"), kernel.repeat_interleave(c, 0),
                     groups=n * c)
        out[blurred] = x.reshape(n, c, h, w)
    gain = 1 + 0.2 * (u(b, 3, 1, 1) - 0.5)
    shift = 0.2 * (u(b, 3, 1, 1) - 0.5)
    out = (out + 1) * gain - 1 + shift
    out = out + torch.randn(out.shape, generator=generator) * 0.15 * u(b, 1, 1, 1)
    clean = u(b) < 0.25
    out[clean] = images[clean]
    return out.clamp(-1, 1)


def blur(images: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Gaussian blur of each image ``(B, C, H, W)`` with its own width ``sigma`` (``(B,)`` or a float, in pixels;
    the kernel reaches 3σ of the widest)."""
    sigma = torch.as_tensor(sigma, dtype=images.dtype).expand(len(images)).clamp_min(1e-3)
    r = max(1, int(np.ceil(3 * float(sigma.max()))))
    x = torch.arange(-r, r + 1, dtype=images.dtype)
    k = torch.exp(-x[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(images.shape[1], 0)  # (B*C, 2r+1)
    b, c, h, w = images.shape
    y = F.pad(images.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def squeeze(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, R, R)`` through ``size`` pixels and back (anti-aliased down, bilinear up): what a model that drew at
    ``size`` px and then smoothly enlarged its picture would show."""
    r = images.shape[-1]
    small = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=r, mode="bilinear", align_corners=False)


def unreadable_versions(batch: shapes.Scenes, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What the v2 judge must refuse, made from clean 64-px renders ``images`` ``(B, 3, 64, 64)`` of ``batch``: a
    quarter each blurred with σ in [1.25, 3.5] px (a margin below the 1.5 px it must refuse), squeezed through 10–16 px
    (at most a quarter of the side), a half-and-half blend with the same scene drawn as another shape, and blobs (the
    render blurred hard, then pushed back to saturated colours: a crisp-edged shape that is none of the four)."""
    b = len(images)
    kind = torch.randint(4, (b,), generator=generator)
    out = images.clone()
    i = kind == 0
    if i.any():
        out[i] = blur(images[i], 1.25 + 2.25 * torch.rand(int(i.sum()), generator=generator))
    i = kind == 1
    for j in i.nonzero()[:, 0].tolist():
        out[j] = squeeze(images[j:j + 1], int(torch.randint(10, 17, (1,), generator=generator)))[0]
    i = (kind == 2).numpy()
    if i.any():
        other = batch[i]
        other.shapes = (other.shapes + np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
                        .integers(1, len(shapes.SHAPES), size=other.shapes.shape)) % len(shapes.SHAPES)
        out[torch.from_numpy(i)] = 0.5 * (images[torch.from_numpy(i)] + shapes.render(other, images.shape[-1]))
    i = kind == 3
    if i.any():
        soft = blur(images[i], 2.5 + 1.5 * torch.rand(int(i.sum()), generator=generator))
        background = images[i][..., :1, :1]
        mass = (soft - background).abs().amax(1, keepdim=True)
        out[i] = torch.where(mass > 0.3 * mass.amax((2, 3), keepdim=True), soft / soft.abs().amax((2, 3), keepdim=True)
                             .clamp_min(1e-3) * images[i].abs().amax((2, 3), keepdim=True), background)
    return out.clamp(-1, 1)
