"""How every course checkpoint is built: one command line, one result, one way to save.

Each stage module has ``build(cfg, device, *, clip, eval_every, n_eval, progress) -> Built`` (train on Shapes with
the settings ``cfg``) and a ``main`` that :func:`run_builder` starts and :func:`save_build` ends, so
``python -m dalle2_lessons.<stage> --profile cpu`` works the same for every stage. The commands that built the
shipped checkpoints are in :data:`~dalle2_lessons.checkpoints.REBUILD_COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoints import save_checkpoint, shipped_dir


def build_parser(description: str, eval_help: str | None, n_eval: int, n_eval_help: str,
                 versioned: bool = False) -> argparse.ArgumentParser:
    """The command line every course-checkpoint builder shares: ``--profile --steps --eval-every --n-eval --out
    --device --clip`` (``eval_help=None``: a builder without a training curve, no ``--eval-every``), and ``--version``
    for a stage that has a checkpoint per Shapes version (``versioned``). A builder adds its own flags to the
    returned parser."""
    from .profiles import PROFILE_NAMES
    from .shapes import VERSIONS

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the profile's)")
    if eval_help is not None:
        p.add_argument("--eval-every", type=int, default=None, help=eval_help)
    p.add_argument("--n-eval", type=int, default=n_eval, help=n_eval_help)
    p.add_argument("--out", default=None, help="folder (default: data/checkpoints, the shipped course checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clip", default="course", choices=("course", "yours"),
                   help="the CLIP whose embeddings the stage learns from: the course's, or yours in runs/<profile>/ "
                        "(stages that read none ignore it)")
    if versioned:
        p.add_argument("--version", choices=tuple(VERSIONS), default=None,
                       help="the Shapes version to learn from (default: the settings', v2)")
    return p


#: The flags :func:`build_parser` adds; any other flag a builder adds names a field of its settings.
COMMON_FLAGS = ("profile", "steps", "eval_every", "n_eval", "out", "device", "clip")


def run_builder(parser: argparse.ArgumentParser, presets: Mapping[str, Any], build: Callable[..., Built],
                argv: list[str] | None = None, needs_clip: Callable[[Any], bool] = lambda cfg: True,
                ) -> tuple[argparse.Namespace, Any, torch.nn.Module | None, Built]:
    """What every builder's ``main`` starts with: parse the command line, take the profile's preset with ``--steps``
    and the builder's own flags applied (``--condition`` sets ``cfg.condition``), load the CLIP the stage learns from
    (``--clip``; none where ``needs_clip(cfg)`` is false), and train. Returns ``(args, cfg, clip, built)``, the model
    moved to the CPU for measuring and saving."""
    from .clip import builder_clip  # clip.py imports this module

    args = parser.parse_args(argv)
    own_flags = {k: v for k, v in vars(args).items() if k not in COMMON_FLAGS}
    changes = {k: v for k, v in {"steps": args.steps, **own_flags}.items() if v is not None}
    cfg = replace(presets[args.profile], **changes)
    clip = builder_clip(args) if needs_clip(cfg) else None
    built = build(cfg, args.device, clip=clip, eval_every=getattr(args, "eval_every", None))
    built.model.cpu()
    return args, cfg, clip, built


@dataclass
class Built:
    """What every course-checkpoint builder (``<stage>.build(settings, device, ...)``) returns."""

    model: torch.nn.Module  #: the trained network (the EMA average where the stage keeps one), on its training device
    losses: dict[str, list[float]]  #: per-step training curves by name; ``"loss"`` is what the optimiser minimised
    train_seconds: float  #: wall time of training only (measuring the curve is not counted)
    curve: list[dict]  #: what was measured every ``eval_every`` steps (empty without)
    settings: Any  #: the settings object it was trained with
    extra: dict[str, Any] = field(default_factory=dict)  #: what else a stage returns (the prior: the data it learnt)

    @property
    def loss(self) -> list[float]:
        return self.losses["loss"]


def save_build(name: str, built: Built, args: argparse.Namespace, results: dict[str, Any], rebuild: str,
               parents: Mapping[str, torch.nn.Module | str] | None = None) -> Path:
    """Save a builder's model (its command line parsed by :func:`build_parser`) with the metrics every course
    checkpoint records next to its own ``results``: the curve, training seconds and steps, the final loss, the
    profile; and the ``parents`` it was trained on (see :func:`save_checkpoint`)."""
    loss = built.loss
    metrics = {**results, "n_eval": args.n_eval, "curve": built.curve, "train_seconds": round(built.train_seconds, 1),
               "steps": built.settings.steps, "final_loss": sum(loss[-50:]) / len(loss[-50:]), "profile": args.profile}
    if getattr(args, "clip", "course") != "course":
        rebuild += f" --clip {args.clip}"
    model = built.model.cpu()
    out = save_checkpoint(name, model.state_dict(), model.config_dict(), args.out or shipped_dir(), metrics,
                          rebuild=rebuild, parents=parents)
    print(f"saved {out} (trained {built.train_seconds / 60:.1f} min)")
    return out
