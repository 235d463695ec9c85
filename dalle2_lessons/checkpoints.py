"""Checkpoints: safetensors weights + a JSON config, never pickles.

A checkpoint named ``clip`` is two files, ``clip.safetensors`` (tensors only: nothing in it can run
code when loaded) and ``clip.json``::

    {"name": "clip", "config": {...constructor arguments...}, "metrics": {...},
     "rebuild": "python -m dalle2_lessons.clip --profile cpu", "sha256": "...", ...}

Where checkpoints live:

* **shipped**: ``data/checkpoints/`` in the repository: the course's own, trained once with the
  ``rebuild`` command and committed, so every lesson can run on its own.
* **yours**: ``runs/<profile>/`` (ignored by git): what you train in a lesson. Later lessons in the
  same profile load yours when it exists and the shipped one otherwise, and say which.

Both folders can be moved with ``DALLE2_LESSONS_DATA`` and ``DALLE2_LESSONS_RUNS``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[1]

#: How to rebuild each course checkpoint (also stored in its JSON). Later lessons add theirs here.
REBUILD_COMMANDS: dict[str, str] = {
    "judge-single": "python -m dalle2_lessons.judge --tier single",
    "judge-relation": "python -m dalle2_lessons.judge --tier relation",
    "clip": "python -m dalle2_lessons.clip --profile cpu",
    "text-diffusion": "python -m dalle2_lessons.guidance --profile cpu --steps 1500 --eval-every 250",
    "text-diffusion-attributes": "python -m dalle2_lessons.guidance --profile cpu --steps 1500 --condition attributes",
    "prior": "python -m dalle2_lessons.prior --profile cpu --eval-every 250",
    "decoder": "python -m dalle2_lessons.decoder --profile cpu --steps 1500 --eval-every 250",
    "upsampler": "python -m dalle2_lessons.upsampler --profile cpu --steps 1000 --eval-every 250",
    "vae": "python -m dalle2_lessons.vae --profile cpu --eval-every 500",
    "gan": "python -m dalle2_lessons.gan --profile cpu --steps 3000 --eval-every 500",
    "dalle1": "python -m dalle2_lessons.dalle1 --profile cpu --tokenizer-steps 1500 --steps 2000 --eval-every 500",
}


def command(module: str, **flags: object) -> str:
    """The shell command that rebuilds a checkpoint: ``command("prior", profile="cpu", eval_every=250)`` →
    ``python -m dalle2_lessons.prior --profile cpu --eval-every 250`` (flags that are ``None`` are left out)."""
    return f"python -m dalle2_lessons.{module}" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in flags.items() if value is not None)


def build_parser(description: str, eval_help: str, n_eval: int, n_eval_help: str) -> argparse.ArgumentParser:
    """The command line every course-checkpoint builder shares: ``--profile --steps --eval-every --n-eval --out
    --device`` (a builder adds its own flags to the returned parser)."""
    from .profiles import PROFILES

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", default="cpu", choices=tuple(PROFILES))
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the profile's)")
    p.add_argument("--eval-every", type=int, default=None, help=eval_help)
    p.add_argument("--n-eval", type=int, default=n_eval, help=n_eval_help)
    p.add_argument("--out", default=None, help="folder (default: data/checkpoints, the shipped course checkpoint)")
    p.add_argument("--device", default="cpu")
    return p


def save_build(name: str, model: torch.nn.Module, args: argparse.Namespace, results: dict[str, Any], losses: list[float],
               seconds: float, curve: list[dict], steps: int, rebuild: str) -> Path:
    """Save a checkpoint builder's model (parsed by :func:`build_parser`) with the metrics every course checkpoint
    records next to its own ``results``: the curve, training seconds and steps, the final loss, the profile."""
    metrics = {**results, "n_eval": args.n_eval, "curve": curve, "train_seconds": round(seconds, 1), "steps": steps,
               "final_loss": sum(losses[-50:]) / len(losses[-50:]), "profile": args.profile}
    out = save_checkpoint(name, model.state_dict(), model.config_dict(), args.out or shipped_dir(), metrics, rebuild=rebuild)
    print(f"saved {out} (trained {seconds / 60:.1f} min)")
    return out


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model; the message says how to rebuild it."""


def shipped_dir() -> Path:
    """``data/checkpoints`` of the repository (or ``$DALLE2_LESSONS_DATA/checkpoints``)."""
    return Path(os.environ.get("DALLE2_LESSONS_DATA", REPO_ROOT / "data")) / "checkpoints"


def runs_dir(profile: str) -> Path:
    """Where your own checkpoints of ``profile`` go: ``runs/<profile>`` (or ``$DALLE2_LESSONS_RUNS/<profile>``)."""
    return Path(os.environ.get("DALLE2_LESSONS_RUNS", REPO_ROOT / "runs")) / profile


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors, the model's constructor arguments, and what was recorded."""

    name: str
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rebuild_hint(name: str, meta: dict[str, Any] | None = None) -> str:
    command = (meta or {}).get("rebuild") or REBUILD_COMMANDS.get(name)
    return f"Rebuild it with:  {command}" if command else "Re-run the lesson that trains it to save it again."


def save_checkpoint(
    name: str,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    directory: str | Path,
    metrics: dict[str, Any] | None = None,
    rebuild: str | None = None,
) -> Path:
    """Write ``<directory>/<name>.safetensors`` and ``<name>.json``; return the weights' path.

    Args:
        state_dict: ``model.state_dict()``; tensors are copied to the CPU and made contiguous.
        config: JSON-serialisable constructor arguments, so ``Model(**config)`` rebuilds the model.
        metrics: measured numbers worth keeping beside the weights (accuracy, training seconds, ...).
        rebuild: the command that reproduces this file; defaults to :data:`REBUILD_COMMANDS`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(weights))
    meta = {
        "name": name,
        "config": config,
        "metrics": metrics or {},
        "rebuild": rebuild or REBUILD_COMMANDS.get(name),
        "sha256": _sha256(weights),
        "torch": torch.__version__.split("+")[0],
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return weights


def load_checkpoint(name: str, directory: str | Path | None = None) -> Checkpoint:
    """Load ``<name>.safetensors`` + ``<name>.json`` from ``directory`` (default: shipped).

    Raises:
        CheckpointError: missing files, unreadable JSON, a checksum mismatch (a truncated or edited
            file), or an unreadable safetensors file; the message names the rebuild command.
    """
    directory = Path(directory) if directory is not None else shipped_dir()
    weights, config_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    for path in (weights, config_path):
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {name!r} is missing: {path} does not exist. {_rebuild_hint(name)}")
    try:
        meta = json.loads(config_path.read_text())
        config = meta["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"Checkpoint {name!r} has a corrupt config {config_path} ({e}). {_rebuild_hint(name)}") from e
    expected = meta.get("sha256")
    if expected and _sha256(weights) != expected:
        raise CheckpointError(
            f"Checkpoint {name!r} is corrupt: {weights} does not match the checksum in {config_path.name} "
            f"(truncated download, or an edited file?). {_rebuild_hint(name, meta)}"
        )
    try:
        state_dict = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"Checkpoint {name!r} is unreadable: {weights} ({e}). {_rebuild_hint(name, meta)}") from e
    return Checkpoint(name, state_dict, config, meta.get("metrics", {}), meta, weights)


def find_checkpoint(name: str, profile: str | None = None, prefer_own: bool = True) -> Checkpoint:
    """Your checkpoint of ``profile`` if you saved one (and ``prefer_own``), else the shipped one.

    Prints which one it loaded, so a lesson never silently depends on a file you cannot see.
    """
    if prefer_own and profile is not None and (runs_dir(profile) / f"{name}.safetensors").is_file():
        ckpt = load_checkpoint(name, runs_dir(profile))
        print(f"loaded your checkpoint {name!r} from {ckpt.path}")
        return ckpt
    ckpt = load_checkpoint(name)
    print(f"loaded the course checkpoint {name!r} from {ckpt.path}")
    return ckpt


def recorded_metrics(name: str, profile: str | None = None) -> dict[str, Any]:
    """The metrics recorded with the checkpoint :func:`find_checkpoint` would load: reads its JSON only,
    quietly (an empty dict if the file is missing or unreadable)."""
    own = profile is not None and (runs_dir(profile) / f"{name}.safetensors").is_file()
    try:
        return json.loads(((runs_dir(profile) if own else shipped_dir()) / f"{name}.json").read_text()).get("metrics", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def load_into(model: torch.nn.Module, ckpt: Checkpoint) -> torch.nn.Module:
    """``model.load_state_dict`` with a :class:`CheckpointError` that names missing/unexpected keys."""
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as e:
        raise CheckpointError(
            f"Checkpoint {ckpt.name!r} does not fit {type(model).__name__}: {str(e).strip().rstrip('.')}. "
            f"{_rebuild_hint(ckpt.name, ckpt.meta)}"
        ) from e
    return model


def load_model(name: str, make: Callable[[dict[str, Any]], torch.nn.Module], profile: str | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Your checkpoint ``name`` of ``profile`` if present, else the shipped one, loaded into ``make(config)``
    and returned in eval mode on ``device``: what every lesson's ``load_*`` function does."""
    ckpt = find_checkpoint(name, profile)
    return load_into(make(ckpt.config), ckpt).to(device).eval()
