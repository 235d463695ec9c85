"""The attribute judge: a small CNN that reads back what a Shapes image shows.

Generative models are hard to evaluate by eye, and "looks good" is not a number. Our data has a
ground truth, so we train a classifier to read every attribute (colour, shape, size, position; or
the two objects and their relation) and ask it whether a generated image shows what its caption
asked for. Every generative lesson reports :func:`AttributeJudge.score` next to its pictures.

The judge is a measuring instrument, so it is trained on *every* attribute combination (including
the held-out ones that generative models never see) and with blur, noise and colour jitter, so
that a slightly soft or noisy sample is still judged on its content. It looks at images at 32×32:
smaller images are upsampled first, so a 16-px image that lost the shape is judged as such.

The shipped checkpoints are ``judge-single`` and ``judge-relation``; the commands that rebuild them are in
:data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoints, shapes

JUDGE_RESOLUTION = 32


class AttributeJudge(nn.Module):
    """CNN: ``(B, 3, R, R)`` images in [-1, 1] (any ``R``) → one logit vector per attribute.

    Three conv stages at 32, 16 and 8 px, then a fully connected layer over the 4×4 map (not global
    pooling: position is an attribute, so *where* a feature fires matters).

    Args:
        tier: ``"single"`` or ``"relation"``; fixes which attributes the heads predict.
        width: channels of the first stage (doubled at each later stage).
    """

    def __init__(self, tier: str = "single", width: int = 24):
        super().__init__()
        self.tier, self.width = tier, width
        self.attribute_names = shapes.TIERS[tier]
        layers: list[nn.Module] = []
        c_in = 3
        for c in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * width * 16, 256), nn.ReLU())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(256, len(shapes.ATTRIBUTE_VALUES[name])) for name in self.attribute_names}
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, R, R)`` → ``{attribute: (B, n_classes) logits}``."""
        h = self.features(to_judge_resolution(images))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, A)`` int64 predicted class per attribute (on the judge's device)."""
        self.eval()
        device = next(self.parameters()).device
        preds = []
        for chunk in images.split(batch_size):
            logits = self(chunk.to(device))
            preds.append(torch.stack([logits[n].argmax(-1) for n in self.attribute_names], dim=1).cpu())
        return torch.cat(preds) if preds else torch.empty(0, len(self.attribute_names), dtype=torch.long)

    @torch.no_grad()
    def confidence(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B,)``: the judge's probability for its answer on the *least* certain
        attribute. Near 1 on renders; off the training distribution it is not to be trusted, which is
        why :meth:`readable` also asks whether the image is :func:`plausible`."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for chunk in images.split(batch_size):
            logits = self(chunk.to(device))
            out.append(torch.stack([v.softmax(-1).max(-1).values for v in logits.values()], dim=1).min(1).values.cpu())
        return torch.cat(out) if out else torch.empty(0)

    def readable(self, images: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B,)`` bool: the judge is sure of every attribute (:meth:`confidence`
        ≥ ``threshold``) *and* the image is :func:`plausible`. The second test is needed because a
        classifier's confidence means nothing far from its training data: on pure Gaussian noise this
        judge is "sure" about 80% of the time."""
        return (self.confidence(images) >= threshold) & plausible(images)

    def score(self, images: torch.Tensor, attrs: torch.Tensor) -> JudgeReport:
        """How many images show what they were asked for.

        Args:
            images: ``(B, 3, R, R)`` generated images in [-1, 1].
            attrs: ``(B, A)`` int64 the requested attributes (as from the dataset).
        """
        return judge_report(self.predict(images), attrs, self.attribute_names)


def plausible(images: torch.Tensor, tolerance: float = 0.25) -> torch.Tensor:
    """``(B, 3, R, R)`` in [-1, 1] → ``(B,)`` bool: does the image look like a Shapes render at all?

    Every render is mostly black background with one or two small objects: between 60% and 99.5% of
    its pixels are within ``tolerance`` of black in every channel (the largest object covers under 10%
    of the image, the smallest about 1%). Noise, blank images and smears fail.
    """
    background = ((images.cpu() + 1).abs() <= tolerance).all(dim=1).float().mean(dim=(1, 2))
    return (background >= 0.6) & (background <= 0.995)


def soft_pixels(images: torch.Tensor) -> float:
    """Fraction of pixels that are neither background nor a saturated colour: edges and blur.

    ``(B, 3, R, R)`` in [-1, 1]. A clean 16-px render has a few percent (its anti-aliased edges); a
    blurry sample has many more.
    """
    peak = images.amax(1)
    return float(((peak > -0.5) & (peak < 0.5)).float().mean())


def to_judge_resolution(images: torch.Tensor) -> torch.Tensor:
    """Resize ``(B, 3, R, R)`` to ``(B, 3, 32, 32)`` (bilinear; anti-aliased when shrinking)."""
    if images.shape[-1] == JUDGE_RESOLUTION:
        return images
    return F.interpolate(images, size=JUDGE_RESOLUTION, mode="bilinear", align_corners=False, antialias=True)


@dataclass
class JudgeReport:
    """Per-attribute accuracy and the fraction of images with *every* attribute right."""

    accuracy: dict[str, float]
    all_correct: float
    n: int

    def __str__(self) -> str:
        cells = "  ".join(f"{k} {v:6.1%}" for k, v in self.accuracy.items())
        return f"judge on {self.n} images: {cells}  | all correct {self.all_correct:6.1%}"

    def as_dict(self) -> dict[str, float]:
        return {**self.accuracy, "all": self.all_correct}


def accuracies(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-attribute accuracy and the all-attributes-correct rate.

    Args:
        predicted, target: ``(B, A)`` int64 class indices.
    Returns:
        ``(A,)`` float32 fraction of rows where column ``j`` matches, and a float32 scalar: the
        fraction of rows where *every* column matches (an image is only right if all of it is).
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predictions {tuple(predicted.shape)} and targets {tuple(target.shape)} differ in shape")
    hits = predicted.cpu() == target.cpu()
    return hits.float().mean(0), hits.all(1).float().mean()


def judge_report(predicted: torch.Tensor, target: torch.Tensor, names: tuple[str, ...]) -> JudgeReport:
    """Compare ``(B, A)`` predicted and requested class indices, column ``j`` named ``names[j]``."""
    per_attribute, all_correct = accuracies(predicted, target)
    return JudgeReport(
        accuracy={name: float(per_attribute[j]) for j, name in enumerate(names)},
        all_correct=float(all_correct),
        n=len(target),
    )


# ----------------------------------------------------------------------------------------------
# Training.


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


def train_judge(
    tier: str = "single",
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 24,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[AttributeJudge, list[float]]:
    """Train a judge on fresh renders every step (16 and 32 px, augmented). Returns ``(judge, losses)``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    judge = AttributeJudge(tier, width).to(device)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    scenes = shapes.sample_scenes(steps * batch_size, "judge", tier, seed)
    losses = []
    judge.train()
    for step in tqdm(range(steps), desc=f"judge ({tier})", disable=not progress):
        batch = scenes[step * batch_size : (step + 1) * batch_size]
        resolution = (16, 32)[step % 2]
        x = augment(shapes.render(batch, resolution), gen).to(device)
        y = torch.from_numpy(batch.attrs).to(device)
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[n], y[:, j]) for j, n in enumerate(judge.attribute_names))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return judge.eval(), losses


def evaluate_judge(
    judge: AttributeJudge,
    n: int = 2000,
    resolutions: tuple[int, ...] = (16, 32),
    splits: tuple[str, ...] = ("test", "heldout"),
) -> dict[str, dict[str, float]]:
    """Accuracy on clean renders it never saw: ``{"test@16": {"colour": 0.998, ..., "all": ...}, ...}``."""
    results = {}
    for split in splits:
        scenes = shapes.sample_scenes(n, split, judge.tier)
        for r in resolutions:
            results[f"{split}@{r}"] = judge.score(shapes.render(scenes, r), torch.from_numpy(scenes.attrs)).as_dict()
    return results


def load_judge(tier: str = "single", device: str | torch.device = "cpu") -> AttributeJudge:
    """The shipped judge for ``tier``, in eval mode. Raises :class:`~.checkpoints.CheckpointError` if missing."""
    ckpt = checkpoints.load_checkpoint(f"judge-{tier}")
    judge = AttributeJudge(**ckpt.config)
    return checkpoints.load_into(judge, ckpt).to(device).eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the attribute judge and save it as a course checkpoint.")
    p.add_argument("--tier", choices=tuple(shapes.TIERS), default="single")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for the checkpoint (default: the shipped data/checkpoints)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    t0 = time.time()
    judge, losses = train_judge(args.tier, args.steps, args.batch_size, width=args.width, seed=args.seed,
                                device=args.device)
    minutes = (time.time() - t0) / 60
    judge = judge.cpu()
    results = evaluate_judge(judge)
    for key, acc in results.items():
        print(f"{key:12s} " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    metrics = {"clean_accuracy": results, "train_minutes": round(minutes, 2),
               "final_loss": float(np.mean(losses[-50:]))}
    config = {"tier": args.tier, "width": args.width}
    rebuild = f"python -m dalle2_lessons.judge --tier {args.tier}"
    if (args.steps, args.batch_size, args.width, args.seed) != (3000, 128, 24, 0):
        rebuild += f" --steps {args.steps} --batch-size {args.batch_size} --width {args.width} --seed {args.seed}"
    out = checkpoints.save_checkpoint(
        f"judge-{args.tier}", judge.state_dict(), config, args.out or checkpoints.shipped_dir(), metrics, rebuild
    )
    print(f"saved {out} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------------------------
# Settings: the sizes and step counts of the ci / cpu / gpu profiles (profiles.py combines them).


@dataclass(frozen=True)
class WelcomeSettings:
    """Lesson 00."""

    n_tour: int  #: scenes shown in each dataset grid
    n_stats: int  #: training scenes counted for the attribute histograms
    n_judge_eval: int  #: clean renders per split and resolution on which the judge's accuracy is measured


WELCOME_PRESETS: dict[str, WelcomeSettings] = {
    "ci": WelcomeSettings(n_tour=16, n_stats=2_000, n_judge_eval=256),
    "cpu": WelcomeSettings(n_tour=32, n_stats=20_000, n_judge_eval=2_000),
    "gpu": WelcomeSettings(n_tour=32, n_stats=20_000, n_judge_eval=2_000),
}
