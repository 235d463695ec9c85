"""The training loop the diffusion lessons share: AdamW, warm-up and cosine decay, an exponential
moving average (EMA) of the weights, a progress bar, and the loss of every step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm


def ema_update(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The EMA rule ``avg ← d·avg + (1 − d)·param`` with a warm-up: ``d = min(decay, (1 + n) / (10 + n))``
    after ``n`` updates. Without the warm-up the random initial weights keep a share ``decay**n`` of the
    average (22% after 300 steps at 0.995), which ruins short runs."""

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        return averaged + (1 - d) * (current - averaged)

    return update


def warmup_cosine(steps: int, warmup: int | None = None, max_warmup: int = 200) -> Callable[[int], float]:
    """The course's learning-rate rule, as the multiplier of step ``s`` (counted from 0) that
    ``torch.optim.lr_scheduler.LambdaLR`` wants: a linear warm-up over the first ``warmup`` steps times a cosine
    that falls from 1 at step 0 to 0 at step ``steps``.

    The warm-up keeps Adam's first, badly estimated steps small; the decay lets the weights settle at the end.
    ``warmup`` defaults to a tenth of ``steps``, at least 1 and at most ``max_warmup``.
    """
    warmup = warmup or max(1, min(max_warmup, steps // 10))

    def factor(s: int) -> float:
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))

    return factor


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    data: torch.Tensor,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    ema_decay: float = 0.995,
    seed: int = 0,
    device: str | torch.device = "cpu",
    desc: str = "training",
    progress: bool = True,
    callback: Callable[[int, AveragedModel], None] | None = None,
) -> tuple[AveragedModel, list[float]]:
    """Train ``model`` in place on random batches of ``data`` (indices into it are what ``loss_fn`` gets).

    Args:
        loss_fn: ``(model, batch_indices, generator) → scalar loss``; it fetches what it needs by index,
            so images, captions and embeddings can all travel together.
        data: ``(N, ...)`` anything with a length; only ``len(data)`` is used here.
        ema_decay: the EMA of the weights is what samplers should use: diffusion samples from an EMA
            are markedly cleaner than from the last step's weights.
        callback: called as ``callback(step, ema_model)`` after every step (``step`` counts from 1),
            e.g. to measure the model during training.
    Returns:
        ``(ema_model, losses)``; ``ema_model.module`` is the averaged network.
    """
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    ema = AveragedModel(model, avg_fn=ema_update(ema_decay))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps))
    losses: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        idx = torch.randint(len(data), (batch_size,), generator=gen)
        loss = loss_fn(model, idx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update_parameters(model)
        losses.append(loss.item())
        if len(losses) % 25 == 0:
            bar.set_postfix(loss=f"{sum(losses[-25:]) / 25:.4f}")
        if callback is not None:
            callback(step + 1, ema)
    return ema.eval(), losses


class Curve:
    """A ``train`` callback that measures the EMA model every ``every`` steps (and at the last step),
    so a course checkpoint records quality against *training* minutes: the time spent measuring is
    not counted. ``measure(model) → {name: value}``; with ``every=None`` it only keeps time.
    """

    def __init__(self, steps: int, every: int | None, measure: Callable[[torch.nn.Module], dict[str, float]]):
        self.steps, self.every, self.measure = steps, every, measure
        self.points: list[dict] = []
        self.t0 = self.last = time.perf_counter()
        self.measuring = 0.0

    @property
    def train_seconds(self) -> float:
        return self.last - self.t0 - self.measuring

    def __call__(self, step: int, model: torch.nn.Module) -> None:
        """``model``: the network to measure, or the :class:`AveragedModel` holding it (what :func:`train` passes)."""
        net = model.module if isinstance(model, AveragedModel) else model
        now = time.perf_counter()
        if self.every and (step % self.every == 0 or step == self.steps):
            minutes = (now - self.t0 - self.measuring) / 60
            values = self.measure(net)
            net.train()
            self.points.append(
                {"step": step, "train_minutes": round(minutes, 2), **{k: round(float(v), 4) for k, v in values.items()}}
            )
            print(
                f"step {step:5d}  {minutes:5.1f} train-min  " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()),
                flush=True,
            )
            self.measuring += time.perf_counter() - now
        self.last = time.perf_counter()
