"""The attribute judge: a small CNN that reads back what a Shapes image shows.

Generative models are hard to evaluate by eye, and "looks good" is not a number. Our data has a
ground truth, so we train a classifier to read every attribute (colour, shape, size, position; or
the two objects and their relation) and ask it whether a generated image shows what its caption
asked for. Every generative lesson reports :func:`AttributeJudge.score` next to its pictures.

The judge is a measuring instrument, so it is trained on *every* attribute combination (including
the held-out ones that generative models never see). It is **strict**: it reads the 64-px final images (smaller ones
are upsampled first, so a 32-px image that lost the shape is judged as such), and it is trained with blurred,
squeezed, blended and blob-like renders as negatives of a ``readable`` head, so that it calls an image it cannot read
*unreadable* (:meth:`AttributeJudge.verdict` gives -1) instead of guessing a shape for a blob.

The shipped checkpoints are ``judge-single-v2`` and ``judge-relation-v2``; the commands that rebuild them are in
:data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`. (The course's first judges, for Shapes v1, guessed on every
image; the ``version="v1"`` code paths that build such a judge remain, but no such checkpoint ships.)
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
from .degrade import augment, blur, squeeze, unreadable_versions  # noqa: F401  (judge.blur etc., as lessons use them)

JUDGE_RESOLUTION = 32
#: The resolution each version's judge reads: v2's reads the 64-px final images, where a blob cannot pass as a shape.
JUDGE_RESOLUTIONS: dict[str, int] = {"v1": 32, "v2": 64}


class AttributeJudge(nn.Module):
    """CNN: ``(B, 3, R, R)`` images in [-1, 1] (any ``R``) → one logit vector per attribute.

    Three conv stages at 32, 16 and 8 px, then a fully connected layer over the 4×4 map (not global
    pooling: position is an attribute, so *where* a feature fires matters).

    The v2 judge (``version="v2"``) reads 64×64 through a stride-2 stem into the same three stages, and has one
    more head, ``readable``: one logit, trained to say whether the image is crisp enough to read at all (clean
    renders yes; renders blurred by σ ≥ 1.5 px or squeezed through a quarter of their side, no). Its verdict on an
    image it cannot read is "unreadable", not its best guess (:meth:`verdict`).

    Args:
        tier: ``"single"`` or ``"relation"``; fixes which attributes the heads predict.
        width: channels of the first stage (doubled at each later stage).
        version: the Shapes version it reads (``"v1"``: 32 px, guesses; ``"v2"``: 64 px, may refuse).
    """

    def __init__(self, tier: str = "single", width: int = 24, version: str = "v2"):
        super().__init__()
        self.tier, self.width, self.version = tier, width, version
        self.resolution = JUDGE_RESOLUTIONS[version]
        self.attribute_names = shapes.TIERS[tier]
        layers: list[nn.Module] = []
        c_in = 3
        if version != "v1":  # 64 → 32 px; a 4×4 stride-2 kernel still sees every pixel
            layers += [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        for c in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * width * 16, 256), nn.ReLU())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(256, len(shapes.ATTRIBUTE_VALUES[name])) for name in self.attribute_names}
        )
        if version != "v1":
            self.heads["readable"] = nn.Linear(256, 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, 3, R, R)`` → ``{attribute: (B, n_classes) logits}`` (v2: and ``"readable"``: ``(B, 1)``)."""
        h = self.features(to_judge_resolution(images, self.resolution))
        return {name: head(h) for name, head in self.heads.items()}

    def config_dict(self) -> dict:
        return {"tier": self.tier, "width": self.width, "version": self.version}

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """One pass over ``(B, 3, R, R)`` in chunks: ``{head: (B, n) logits}`` on the CPU. Everything the judge says
        about a batch (classes, confidence, crispness) is read from this one pass."""
        self.eval()
        device = next(self.parameters()).device
        outs = [self(chunk.to(device)) for chunk in images.split(batch_size)]
        return {name: torch.cat([o[name].cpu() for o in outs]) if outs else torch.empty(0, head.out_features)
                for name, head in self.heads.items()}

    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, A)`` int64 predicted class per attribute."""
        return self._classes(self.logits(images, batch_size))

    def confidence(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B,)``: the judge's probability for its answer on the *least* certain
        attribute. Near 1 on renders; off the training distribution it is not to be trusted, which is
        why :meth:`readable` also asks whether the image is :func:`plausible`."""
        return self._confidence(self.logits(images, batch_size))

    def crisp(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """v2 only: ``(B, 3, R, R)`` → ``(B,)`` the ``readable`` head's probability that the image is sharp enough to
        read (clean renders ≈ 1; blurred or squeezed ones ≈ 0)."""
        if "readable" not in self.heads:
            raise ValueError("only the v2 judge has a readable head; the v1 judge guesses on every image")
        return torch.sigmoid(self.logits(images, batch_size)["readable"][:, 0])

    def readable(self, images: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B,)`` bool: the judge is sure of every attribute (:meth:`confidence`
        ≥ ``threshold``) *and* the image is :func:`plausible` (v2: and the ``readable`` head says it is crisp). The
        plausibility test is needed because a classifier's confidence means nothing far from its training data: on
        pure Gaussian noise the v1 judge is "sure" about 80% of the time."""
        return self._readable(images, self.logits(images), threshold)

    def verdict(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, A)`` int64: the class it reads for every attribute, or -1 for every attribute of
        an image it cannot read (:meth:`readable`). The v1 judge never refuses."""
        logits = self.logits(images)
        pred = self._classes(logits)
        if self.version != "v1":
            pred[~self._readable(images, logits)] = -1
        return pred

    def verdict_on(self, images: torch.Tensor, names: tuple[str, ...], threshold: float = 0.9) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, len(names))`` int64: only the attributes ``names`` (e.g. the colours and the
        relation of a two-object scene), or -1 for all of them where the judge is not sure of every one of *those*
        (confidence ≥ ``threshold``) or the image is not :func:`plausible`. Unlike :meth:`verdict` it does not ask the
        ``readable`` head: that head refuses soft edges, which hide a shape but not a colour or which object is on
        top, so a blob can still be read for what a blob shows."""
        logits = self.logits(images)
        pred = self._classes(logits, names)
        pred[~((self._confidence(logits, names) >= threshold) & plausible(images, around=self.version != "v1"))] = -1
        return pred

    # what the public methods read from one pass of :meth:`logits`
    def _classes(self, logits: dict[str, torch.Tensor], names: tuple[str, ...] | None = None) -> torch.Tensor:
        return torch.stack([logits[n].argmax(-1) for n in names or self.attribute_names], dim=1)

    def _confidence(self, logits: dict[str, torch.Tensor], names: tuple[str, ...] | None = None) -> torch.Tensor:
        """The least certain of the attributes ``names`` (default: all)."""
        return torch.stack([logits[n].softmax(-1).max(-1).values for n in names or self.attribute_names],
                           dim=1).min(1).values

    def _readable(self, images: torch.Tensor, logits: dict[str, torch.Tensor], threshold: float = 0.9) -> torch.Tensor:
        sure = self._confidence(logits) >= threshold
        if self.version == "v1":
            return sure & plausible(images)
        return sure & (torch.sigmoid(logits["readable"][:, 0]) >= 0.5) & plausible(images, around=True)

    def score(self, images: torch.Tensor, attrs: torch.Tensor, mentioned: torch.Tensor | None = None) -> JudgeReport:
        """How many images show what they were asked for.

        Args:
            images: ``(B, 3, R, R)`` generated images in [-1, 1].
            attrs: ``(B, A)`` int64 the requested attributes (as from the dataset).
            mentioned: ``(B, A)`` bool, the attributes each caption named (default all): only those are scored,
                the others were left free. An unreadable image (v2) is wrong on every attribute it was asked for.
        """
        return judge_report(self.verdict(images), attrs, self.attribute_names, mentioned)


def plausible(images: torch.Tensor, tolerance: float = 0.25, around: bool = False) -> torch.Tensor:
    """``(B, 3, R, R)`` in [-1, 1] → ``(B,)`` bool: does the image look like a Shapes render at all?

    Every render is mostly black background with one or two small objects: between 60% and 99.5% of
    its pixels are within ``tolerance`` of black in every channel (the largest object covers under 10%
    of the image, the smallest about 1%). Noise, blank images and smears fail. ``around=True`` (v2, whose
    background may be grey) measures the distance to each image's own background, the median of its border.
    """
    images = images.cpu()
    reference = -1.0
    if around:
        reference = shapes.border_pixels(images).median(dim=-1).values[:, :, None, None]  # (B, 3, 1, 1)
    background = ((images - reference).abs() <= tolerance).all(dim=1).float().mean(dim=(1, 2))
    return (background >= 0.6) & (background <= 0.995)


def soft_pixels(images: torch.Tensor) -> float:
    """Fraction of pixels that are neither background nor a saturated colour: edges and blur.

    ``(B, 3, R, R)`` in [-1, 1]. A pixel is soft when its brightest channel lies more than 0.5 above the background's
    (each image's own, the median of its border: black or grey) and below 0.5, where every saturated colour is. A
    clean render has a few percent (its anti-aliased edges); a blurry sample has many more.
    """
    peak = images.amax(1)  # (B, R, R)
    background = shapes.border_pixels(images).median(dim=-1).values.amax(1)  # (B,) the background's brightest channel
    return float(((peak > background[:, None, None] + 0.5) & (peak < 0.5)).float().mean())


def to_judge_resolution(images: torch.Tensor, size: int = JUDGE_RESOLUTION) -> torch.Tensor:
    """Resize ``(B, 3, R, R)`` to ``(B, 3, size, size)`` (bilinear; anti-aliased when shrinking)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


@dataclass
class JudgeReport:
    """Per-attribute accuracy and the fraction of images with *every* attribute right."""

    accuracy: dict[str, float]
    all_correct: float
    n: int
    unreadable: float = 0.0  #: fraction of images the (v2) judge refused to read

    def __str__(self) -> str:
        cells = "  ".join(f"{k} {v:6.1%}" for k, v in self.accuracy.items())
        refused = f"  | unreadable {self.unreadable:6.1%}" if self.unreadable else ""
        return f"judge on {self.n} images: {cells}  | all correct {self.all_correct:6.1%}{refused}"

    def as_dict(self) -> dict[str, float]:
        refused = {"unreadable": self.unreadable} if self.unreadable else {}
        return {**self.accuracy, "all": self.all_correct, **refused}


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


def judge_report(predicted: torch.Tensor, target: torch.Tensor, names: tuple[str, ...],
                 mentioned: torch.Tensor | np.ndarray | None = None) -> JudgeReport:
    """Compare ``(B, A)`` predicted (-1: unreadable) and requested class indices, column ``j`` named ``names[j]``.
    With ``mentioned`` ``(B, A)`` bool, an attribute's accuracy counts only the images whose caption named it (nan if
    none did), and "all correct" asks for every *mentioned* attribute."""
    if mentioned is None:
        per_attribute, all_correct = accuracies(predicted, target)
        accuracy = {name: float(per_attribute[j]) for j, name in enumerate(names)}
    else:
        mentioned = torch.as_tensor(np.asarray(mentioned), dtype=torch.bool)
        if mentioned.shape != target.shape:
            raise ValueError(f"mentioned {tuple(mentioned.shape)} and targets {tuple(target.shape)} differ in shape")
        hits = predicted.cpu() == target.cpu()
        counts = mentioned.sum(0)
        accuracy = {name: float((hits[:, j] & mentioned[:, j]).sum() / counts[j]) if counts[j] else float("nan")
                    for j, name in enumerate(names)}
        all_correct = (hits | ~mentioned).all(1).float().mean()
    unreadable = float((predicted.cpu() < 0).all(1).float().mean()) if len(predicted) else 0.0
    return JudgeReport(accuracy=accuracy, all_correct=float(all_correct), n=len(target), unreadable=unreadable)


# ----------------------------------------------------------------------------------------------
# Training.


def train_judge(
    tier: str = "single",
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 24,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    version: str = "v2",
    p_unreadable: float = 0.3,
) -> tuple[AttributeJudge, list[float]]:
    """Train a judge on fresh renders every step, augmented. Returns ``(judge, losses)``.

    v1: renders at 16 and 32 px. v2: renders at 64 px and at 32 px enlarged to 64 (a clean base-resolution sample
    must read as clean), and a fraction ``p_unreadable`` of each batch replaced by :func:`unreadable_versions`,
    which train the ``readable`` head to say no and the attribute heads nothing (so they never learn to read a
    blob)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    judge = AttributeJudge(tier, width, version).to(device)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    scenes = shapes.sample_scenes(steps * batch_size, "judge", tier, seed, version)
    losses = []
    judge.train()
    for step in tqdm(range(steps), desc=f"judge ({tier}, {version})", disable=not progress):
        batch = scenes[step * batch_size : (step + 1) * batch_size]
        y = torch.from_numpy(batch.attrs).to(device)
        if version == "v1":
            x = augment(shapes.render(batch, (16, 32)[step % 2]), gen).to(device)
            logits = judge(x)
            keep = torch.ones(len(y), dtype=torch.bool, device=device)
        else:
            clean = shapes.render(batch, 64) if step % 2 else to_judge_resolution(shapes.render(batch, 32), 64)
            bad = torch.rand(len(y), generator=gen) < p_unreadable
            x = clean.clone()
            if bad.any():
                x[bad] = unreadable_versions(batch[bad.numpy()], shapes.render(batch[bad.numpy()], 64), gen)
            x = augment(x, gen).to(device)
            keep = ~bad.to(device)
            logits = judge(x)
        loss = sum(F.cross_entropy(logits[n][keep], y[keep, j]) for j, n in enumerate(judge.attribute_names))
        if "readable" in logits:
            loss = loss + F.binary_cross_entropy_with_logits(logits["readable"][:, 0], keep.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return judge.eval(), losses


def evaluate_judge(
    judge: AttributeJudge,
    n: int = 2000,
    resolutions: tuple[int, ...] | None = None,
    splits: tuple[str, ...] = ("test", "heldout"),
) -> dict[str, dict[str, float]]:
    """Accuracy on clean renders it never saw: ``{"test@16": {"colour": 0.998, ..., "all": ...}, ...}`` (default
    resolutions: 16 and 32 for v1, 32 and 64 for v2)."""
    resolutions = resolutions or ((16, 32) if judge.version == "v1" else (32, 64))
    results = {}
    for split in splits:
        scenes = shapes.sample_scenes(n, split, judge.tier, version=judge.version)
        for r in resolutions:
            results[f"{split}@{r}"] = judge.score(shapes.render(scenes, r), torch.from_numpy(scenes.attrs)).as_dict()
    return results


def degraded_readable(judge: AttributeJudge, n: int = 1000, split: str = "test") -> dict[str, float]:
    """How often the v2 judge calls an image readable (:meth:`AttributeJudge.readable`): clean 64-px renders, clean
    32-px renders enlarged, and the degradations it must refuse (blur σ = 1.5 and 2 px at 64 px, a squeeze through
    16 and 12 px and back). The judge's strictness, in one row."""
    scenes = shapes.sample_scenes(n, split, judge.tier, version=judge.version)
    x64 = shapes.render(scenes, 64)
    cases = {"clean@64": x64, "clean@32": to_judge_resolution(shapes.render(scenes, 32), 64),
             "blur1.5": blur(x64, 1.5), "blur2": blur(x64, 2.0), "squeeze16": squeeze(x64, 16),
             "squeeze12": squeeze(x64, 12)}
    return {k: float(judge.readable(v).float().mean()) for k, v in cases.items()}


def load_judge(tier: str = "single", device: str | torch.device = "cpu", version: str = "v2") -> AttributeJudge:
    """The shipped judge for ``tier`` and Shapes ``version``, in eval mode. Raises
    :class:`~.checkpoints.CheckpointError` if missing."""
    ckpt = checkpoints.load_checkpoint(checkpoints.versioned(f"judge-{tier}", version))
    judge = AttributeJudge(**ckpt.config)
    return checkpoints.load_into(judge, ckpt).to(device).eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the attribute judge and save it as a course checkpoint.")
    p.add_argument("--tier", choices=tuple(shapes.TIERS), default="single")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version", choices=tuple(shapes.VERSIONS), default="v2")
    p.add_argument("--out", default=None, help="folder for the checkpoint (default: the shipped data/checkpoints)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    t0 = time.time()
    judge, losses = train_judge(args.tier, args.steps, args.batch_size, width=args.width, seed=args.seed,
                                device=args.device, version=args.version)
    minutes = (time.time() - t0) / 60
    judge = judge.cpu()
    results = evaluate_judge(judge)
    for key, acc in results.items():
        print(f"{key:12s} " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    metrics = {"clean_accuracy": results, "train_minutes": round(minutes, 2),
               "final_loss": float(np.mean(losses[-50:]))}
    if args.version != "v1":
        metrics["readable"] = degraded_readable(judge)
        print("readable:", "  ".join(f"{k} {v:.4f}" for k, v in metrics["readable"].items()))
    config = {"tier": args.tier, "width": args.width, **({"version": args.version} if args.version != "v1" else {})}
    rebuild = f"python -m dalle2_lessons.judge --tier {args.tier}"
    if (args.steps, args.batch_size, args.width, args.seed) != (3000, 128, 24, 0):
        rebuild += f" --steps {args.steps} --batch-size {args.batch_size} --width {args.width} --seed {args.seed}"
    if args.version != "v1":
        rebuild += f" --version {args.version}"
    out = checkpoints.save_checkpoint(checkpoints.versioned(f"judge-{args.tier}", args.version), judge.state_dict(),
                                      config, args.out or checkpoints.shipped_dir(), metrics, rebuild)
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
