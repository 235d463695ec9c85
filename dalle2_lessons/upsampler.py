"""The unCLIP upsampler (lesson 08): a diffusion model that doubles an image's side (Shapes v2: 32×32 → 64×64).

unCLIP (Ramesh et al. 2022, section 2.1 and appendix C) follows the decoder with two diffusion
upsamplers (64→256→1024). Each is a U-Net that sees the noisy high-resolution image *and* the
low-resolution image (upsampled to the same size and stacked as extra input channels), and predicts
the noise. Three details from the paper, all reproduced here:

* **no caption**: the low-resolution image already says what to draw; the upsampler adds detail;
* **training on random crops** (a quarter of the image's area) with a network of only convolutions
  (no attention, no position embedding), which then runs on the whole image at sampling time;
* **corrupting the conditioning image** in training (Gaussian blur for the first upsampler), so the
  upsampler is robust to the slightly soft images the decoder produces instead of clean downsamples.

Here: 32→64, 16×16 crops of 64×64 renders (a quarter of the side), a blur of random width on the 32×32 conditioning
image (v1: 16→32, crops of half the side). One addition the paper does not need at 64→256 but a small upsampler
does: at sampling time every predicted clean image is made to agree
with the input's low frequencies (:func:`keep_low_frequencies`, after ILVR), so that an invented edge cannot turn a
small circle into a square.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import builders, checkpoints, diffusion, judge, profiles, shapes
from .builders import Built
from .training import Curve, train
from .unet import UNet, UNetConfig

CHECKPOINT = "upsampler"
LOW, HIGH = 16, 32


def upsampler_config(base_channels: int = 48) -> UNetConfig:
    """A fully convolutional U-Net: 3 noisy channels + 3 low-resolution channels in, 3 noise channels out."""
    return UNetConfig(resolution=HIGH // 2, in_channels=6, out_channels=3, base_channels=base_channels,
                      attention_levels=(), mid_attention=False)


def downsample(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """``(B, 3, R, R)`` → ``(B, 3, size, size)`` (default half the side): each low-resolution pixel is the mean of the
    block of pixels it covers (area averaging, what a camera with fewer pixels would see).

    This is also how :func:`~dalle2_lessons.shapes.render` anti-aliases, so a downsampled 64-px render is the 32-px
    render of the same scene, the kind of image the decoder learns to draw and hands to the upsampler. Why it matters:
    trained on a softer filter (bilinear with anti-aliasing, about a Gaussian of σ = 0.5 px softer), an earlier course
    upsampler learnt to sharpen by that much and over-sharpened crisp 32-px renders (issue #21)."""
    return F.adaptive_avg_pool2d(images, size or images.shape[-1] // 2)


def upsample(images: torch.Tensor, size: int | None = None, mode: str = "bicubic") -> torch.Tensor:
    """``(B, 3, r, r)`` → ``(B, 3, size, size)`` (default twice the side) by interpolation (``bicubic``: the baseline
    to beat; ``nearest``: enlarged pixels, for showing), in [-1, 1]."""
    size = size or 2 * images.shape[-1]
    align = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(images, size=size, mode=mode, **align).clamp(-1, 1)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image ``(B, C, H, W)`` with its own Gaussian width ``sigma`` ``(B,)`` in pixels (5×5 kernel;
    ``sigma = 0`` leaves an image unchanged)."""
    x = torch.arange(-2, 3, dtype=images.dtype, device=images.device)
    s = sigma.to(images).clamp_min(1e-3)[:, None]
    k = torch.exp(-x[None] ** 2 / (2 * s**2))
    k = k / k.sum(1, keepdim=True)  # (B, 5)
    b, c, h, w = images.shape
    kernel = (k[:, :, None] * k[:, None, :]).repeat_interleave(c, 0)[:, None]  # (B·C, 1, 5, 5)
    out = F.conv2d(F.pad(images.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="replicate"), kernel, groups=b * c)
    return out.reshape(b, c, h, w)


def degrade(high: torch.Tensor, max_sigma: float, generator: torch.Generator | None = None,
            blur_fn: Callable = gaussian_blur) -> torch.Tensor:
    """The training corruption: downsample ``(B, 3, R, R)`` to half the side, then blur each image with a random
    width in ``[0, max_sigma]`` pixels (``blur_fn``: :func:`gaussian_blur`, or the learner's). Returns
    ``(B, 3, R/2, R/2)``."""
    sigma = torch.rand(len(high), generator=generator) * max_sigma
    return blur_fn(downsample(high), sigma.to(high.device))


def random_crops(
    a: torch.Tensor, b: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``size × size`` window of each image in two aligned batches ``(B, C, R, R)``."""
    n, r = len(a), a.shape[-1]
    ys = torch.randint(r - size + 1, (n,), generator=generator)
    xs = torch.randint(r - size + 1, (n,), generator=generator)
    rows = (ys[:, None] + torch.arange(size))[:, :, None].to(a.device)  # (B, size, 1)
    cols = (xs[:, None] + torch.arange(size))[:, None, :].to(a.device)  # (B, 1, size)
    idx = torch.arange(n, device=a.device)[:, None, None]
    crop = lambda x: x.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)  # noqa: E731
    return crop(a), crop(b)


def upsampler_loss(
    model: UNet, high: torch.Tensor, schedule: diffusion.NoiseSchedule, max_sigma: float = 0.6, crop: int = HIGH // 2,
    generator: torch.Generator | None = None, blur_fn: Callable = gaussian_blur, crops_fn: Callable = random_crops,
) -> torch.Tensor:
    """ε-prediction on random crops of high-resolution images ``(B, 3, 2r, 2r)`` (v2: 64×64), conditioned on the same
    crop of their degraded, re-upsampled r×r version. ``blur_fn`` and ``crops_fn`` replace :func:`gaussian_blur` and
    :func:`random_crops` (lesson 08 trains with the learner's)."""
    cond = upsample(degrade(high, max_sigma, generator, blur_fn))
    target, cond = crops_fn(high, cond, crop, generator)
    return diffusion.diffusion_loss(lambda x_t, t: model(torch.cat([x_t, cond], dim=1), t), target, schedule, generator)


def keep_low_frequencies(x0: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Make a predicted image ``x0`` ``(B, 3, 2r, 2r)`` (v2: 64×64) agree with its input ``low`` ``(B, 3, r, r)``:
    replace what survives downsampling (its low frequencies) with the input's and keep the network's detail,
    ``x0 + up(low − down(x0))``, clamped to [-1, 1].

    This is ILVR's idea (Choi et al. 2021), applied to x̂0 at every DDIM step: the network invents edges, and near a
    small shape an invented edge can turn a circle into a square; the low-resolution pixels say which it was.
    unCLIP's upsamplers do not do this (at 64→256 they have pixels to spare); lesson 08 measures what it does at
    32→64.
    """
    return (x0 + upsample(low - downsample(x0, low.shape[-1]), x0.shape[-1])).clamp(-1, 1)


def consistent_ddim_step(low: torch.Tensor, keep_fn: Callable | None = None):
    """A :func:`~dalle2_lessons.diffusion.ddim_step` that passes x̂0 through ``keep_fn`` first (default: this module's
    :func:`keep_low_frequencies`, looked up when the step runs, so lesson 08 can put the learner's in its place)."""

    def step(eps, t, t_prev, x_t, schedule, eta=0.0, noise=None, clip_x0=True):
        x0 = (keep_fn or keep_low_frequencies)(diffusion.predict_x0(x_t, t, eps, schedule).clamp(-1, 1), low)
        return diffusion.ddim_step(diffusion.predict_eps(x_t, t, x0, schedule), t, t_prev, x_t, schedule, eta, noise)

    return step


def predict_eps(model: UNet, x_t: torch.Tensor, t: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """The upsampler's noise prediction for noisy images ``x_t`` ``(B, 3, 2r, 2r)`` at timesteps ``t`` ``(B,)`` given
    their low-resolution input ``low`` ``(B, 3, r, r)``: the U-Net reads six channels, ``x_t`` and ``low`` brought to
    its size (bicubic), as in training. Returns ``(B, 3, 2r, 2r)``."""
    return model(torch.cat([x_t, upsample(low, x_t.shape[-1])], dim=1), t)


@torch.no_grad()
def sample(
    model: UNet, low: torch.Tensor, steps: int = 25, eta: float = 1.0, schedule: diffusion.NoiseSchedule | None = None,
    generator: torch.Generator | None = None, progress: bool = False, batch_size: int = 128, consistent: bool = True,
    keep_fn: Callable | None = None, eps_fn: Callable | None = None, input_blur: float = 0.0,
) -> torch.Tensor:
    """Low-resolution images ``(B, 3, r, r)`` in [-1, 1] → ``(B, 3, 2r, 2r)`` (DDIM, whole images; v2: 32 → 64).

    ``input_blur``: a Gaussian blur of σ px applied to ``low`` first, a fixed level of the corruption the upsampler
    was trained to undo (conditioning augmentation at sampling time, as in cascaded diffusion models, Ho et al.
    2021). It moves a *generated* input — the decoder's samples, whose edges wobble at the pixel scale — towards what
    the upsampler saw in training; ``benchmarks/SHAPES_V2.md`` section 4 measures it.

    ``consistent``: keep every step's x̂0 faithful to the input's low frequencies (``keep_fn``, default
    :func:`keep_low_frequencies`). ``eps_fn(model, x_t, t, low)`` replaces :func:`predict_eps`. Both defaults are
    looked up when the sampler runs, so the learner's functions from lesson 08 are used in their place.
    ``eta = 1`` (fresh noise at every step) because it measured better than the deterministic ``eta = 0`` here: on
    256 clean test downsamples the course upsampler got the shape right 100.0% vs 99.6% with the correction, 97.7% vs
    95.3% without it (lesson 08)."""
    device = next(model.parameters()).device
    schedule = schedule or diffusion.cosine_schedule()
    out = []
    if input_blur > 0:
        low = gaussian_blur(low, torch.full((len(low),), float(input_blur)))
    for chunk in low.split(batch_size):
        chunk = chunk.to(device)
        fn = lambda x, t, chunk=chunk: (eps_fn or predict_eps)(model, x, t, chunk)  # noqa: E731
        step = consistent_ddim_step(chunk, keep_fn) if consistent else diffusion.ddim_step
        side = 2 * chunk.shape[-1]
        out.append(diffusion.sample_ddim(fn, (len(chunk), 3, side, side), schedule, steps, eta, generator, device,
                                         progress=progress, step=step).cpu())
    return torch.cat(out)


@dataclass
class Comparison:
    """Judge reports on the same 32×32 test scenes, upsampled from 16×16 in each way."""

    reports: dict[str, judge.JudgeReport]

    def table(self) -> str:
        return "\n".join(f"{name:12s} {report}" for name, report in self.reports.items())


def compare(model: UNet, n: int, split: str = "test", steps: int = 25, seed: int = 0, low: torch.Tensor | None = None,
            attrs: torch.Tensor | None = None, eta: float = 1.0, version: str = "v2") -> Comparison:
    """Judge bicubic vs diffusion upsampling at 32×32. By default the 16×16 inputs are clean downsampled
    renders of ``n`` fresh ``split`` scenes (and the true 32×32 render is judged too); pass ``low`` and
    ``attrs`` to upsample other images, e.g. the decoder's samples. Two diffusion rows: ``diffusion`` keeps the
    input's low frequencies (:func:`keep_low_frequencies`), ``diffusion, free`` does not."""
    reports = {}
    jd = judge.load_judge("single", version=version)
    if low is None:
        high = shapes.get_version(version).final_resolution
        ds = shapes.ShapesDataset(split, n=n, resolution=high, seed=seed + 1, version=version)
        low, attrs = downsample(ds.images), ds.attrs
        reports[f"true {high}×{high}"] = jd.score(ds.images, attrs)
    reports["bicubic"] = jd.score(upsample(low), attrs)
    for name, consistent in (("diffusion", True), ("diffusion, free", False)):
        out = sample(model, low, steps, eta, generator=torch.Generator().manual_seed(seed), consistent=consistent)
        reports[name] = jd.score(out, attrs)
    return Comparison(reports)


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class UpsamplerSettings:
    """Lesson 08 (and ``python -m dalle2_lessons.upsampler``, which builds the course checkpoint)."""

    n_train: int  #: training images (32×32)
    steps: int  #: optimiser steps of the upsampler the lesson trains
    batch_size: int
    lr: float
    n_eval: int  #: test images per row of the bicubic-vs-diffusion table
    crop: int = 16  #: side of the random training crops (a quarter of the 32×32 image's area, as in the paper)
    max_sigma: float = 0.8  #: widest Gaussian blur (in low-resolution pixels) applied to the condition in training
    sample_steps: int = 25  #: DDIM steps when upsampling
    seed: int = 0
    version: str = "v2"  #: the Shapes version it learns from (v1: 16→32; v2: 32→64, crops of a quarter of the side)


PRESETS: dict[str, UpsamplerSettings] = {
    "ci": UpsamplerSettings(n_train=2_000, steps=40, batch_size=32, lr=2e-3, n_eval=16, sample_steps=10),
    "cpu": UpsamplerSettings(n_train=20_000, steps=150, batch_size=128, lr=2e-3, n_eval=64, sample_steps=15),
    "gpu": UpsamplerSettings(n_train=20_000, steps=6_000, batch_size=128, lr=2e-3, n_eval=1_000),
}


def train_upsampler(cfg: UpsamplerSettings, images: torch.Tensor, device: str | torch.device = "cpu",
                    progress: bool = True, callback: Callable | None = None, blur_fn: Callable = gaussian_blur,
                    crops_fn: Callable = random_crops) -> tuple[UNet, list[float]]:
    """Train a 2× upsampler from scratch on ``images`` ``(N, 3, R, R)`` in [-1, 1] with ``cfg``. Returns
    ``(ema_upsampler, losses)``: what lesson 08, the course checkpoint and lesson 14 (other data) all train with.
    ``blur_fn``, ``crops_fn``: see :func:`upsampler_loss`."""
    profiles.seed_everything(cfg.seed)
    model = UNet(upsampler_config())
    schedule = diffusion.cosine_schedule()
    images = images.to(device)

    def loss_fn(m, idx, gen):
        return upsampler_loss(m, images[idx.to(device)], schedule, cfg.max_sigma, cfg.crop, gen, blur_fn, crops_fn)

    ema, losses = train(model, loss_fn, images, cfg.steps, cfg.batch_size, cfg.lr, seed=cfg.seed, device=device,
                        desc=f"upsampler {images.shape[-1] // 2}→{images.shape[-1]}", progress=progress,
                        callback=callback)
    return ema.module.eval(), losses


def build(cfg: UpsamplerSettings, device: str | torch.device = "cpu", *, clip: object = None,
          eval_every: int | None = None, n_eval: int = 128, progress: bool = True) -> Built:
    """The course upsampler: :func:`train_upsampler` on ``cfg.n_train`` Shapes scenes at 32×32 (``clip`` is ignored:
    the upsampler reads pixels only). The curve judges clean test downsamples upsampled by the EMA model with the
    plain deterministic sampler (``eta = 0``, no :func:`keep_low_frequencies`): what the network itself learnt."""
    data = shapes.ShapesDataset("train", n=cfg.n_train, resolution=shapes.get_version(cfg.version).final_resolution,
                                version=cfg.version)
    curve = Curve(cfg.steps, eval_every, lambda m: compare(m, n_eval, steps=cfg.sample_steps, eta=0.0,
                                                           version=cfg.version).reports["diffusion, free"].as_dict())
    model, losses = train_upsampler(cfg, data.images, device, progress, curve)
    return Built(model, {"loss": losses}, curve.train_seconds, curve.points, cfg)


def load_upsampler(profile: str | None = None, device: str | torch.device = "cpu", version: str = "v2") -> UNet:
    """Your upsampler of ``profile`` (from lesson 08) if present, else the course checkpoint of Shapes ``version``
    (eval mode)."""
    return checkpoints.load_model(checkpoints.versioned(CHECKPOINT, version),
                                  lambda config: UNet(UNetConfig.from_dict(config)), profile, device)


def main(argv: list[str] | None = None) -> None:
    p = builders.build_parser(
        "Train the course's diffusion upsampler (Shapes v2: 32→64) and save it.",
        "judge upsampled test images every N steps", 512, "test scenes for the final bicubic-vs-diffusion table",
        versioned=True)
    p.add_argument("--crop", type=int, default=None, help="side of the training crops (default: the profile's)")
    p.add_argument("--max-sigma", type=float, default=None, help="widest blur of the conditioning image")
    args, cfg, _, built = builders.run_builder(p, PRESETS, build, argv, needs_clip=lambda cfg: False)
    model = built.model
    results = {}
    for split in ("test", "heldout"):
        comparison = compare(model, args.n_eval, split, cfg.sample_steps, version=cfg.version)
        results[split] = {k: r.as_dict() for k, r in comparison.reports.items()}
        print(f"{split}:\n{comparison.table()}", flush=True)
    rebuild = checkpoints.command("upsampler", profile=args.profile, steps=args.steps, eval_every=args.eval_every,
                                  version=args.version, crop=args.crop, max_sigma=args.max_sigma)
    builders.save_build(checkpoints.versioned(CHECKPOINT, cfg.version), built, args, {"eval": results}, rebuild)


if __name__ == "__main__":
    main()
