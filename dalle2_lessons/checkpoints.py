"""Checkpoints: safetensors weights + a JSON config, never pickles.

A checkpoint named ``clip`` is two files, ``clip.safetensors`` (tensors only: nothing in it can run
code when loaded) and ``clip.json``::

    {"name": "clip", "config": {...constructor arguments...}, "metrics": {...},
     "rebuild": "python -m dalle2_lessons.clip --profile cpu --steps 1000", "sha256": "...", ...}

Where checkpoints live:

* **shipped**: ``data/checkpoints/`` in the repository: the course's own, trained once with the
  ``rebuild`` command and committed, so every lesson can run on its own.
* **yours**: ``runs/<profile>/`` (ignored by git): what you train in a lesson. Later lessons in the
  same profile load yours when it exists and the shipped one otherwise, and say which.

Lineage: a prior or decoder trained on one CLIP's embeddings means nothing when fed another's (two CLIPs
trained from different seeds put the same caption in unrelated directions). So a checkpoint records the
sha256 of each checkpoint it was trained on (``"parents": {"clip": "<sha256>"}``, see :data:`PARENTS`), and
loading a stage for a given CLIP only ever picks one trained on that CLIP: yours if it fits, else the
course's if it fits, else a :class:`CheckpointError` naming what to retrain.

Both folders can be moved with ``DALLE2_LESSONS_DATA`` and ``DALLE2_LESSONS_RUNS``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[1]

#: How to rebuild each course checkpoint (also stored in its JSON). Later lessons add theirs here.
REBUILD_COMMANDS: dict[str, str] = {
    "judge-single-v2": "python -m dalle2_lessons.judge --tier single --steps 3000 --batch-size 64 --width 16 --seed 0 "
                       "--version v2",
    "judge-relation-v2": "python -m dalle2_lessons.judge --tier relation --steps 3000 --batch-size 64 --width 16 "
                         "--seed 0 --version v2",
    "clip-v2": "python -m dalle2_lessons.clip --profile cpu --steps 1000 --version v2 --resolution 32",
    "prior-v2": "python -m dalle2_lessons.prior --profile cpu --steps 5000 --version v2",
    # trained in two runs: 2600 steps, then 4000 more from those weights (a second warm-up and cosine decay, issue #21)
    "decoder-v2": "python -m dalle2_lessons.decoder --profile cpu --steps 2600 --version v2 --batch-size 64 "
                  "--out runs/decoder-stage1 && python -m dalle2_lessons.decoder --profile cpu --steps 4000 "
                  "--version v2 --batch-size 64 --lr 0.001 --seed 1 --init runs/decoder-stage1/decoder-v2",
    "upsampler-v2": "python -m dalle2_lessons.upsampler --profile cpu --steps 1800 --version v2 --crop 16 "
                    "--max-sigma 0.8",
    "text-diffusion-v2": "python -m dalle2_lessons.guidance --profile cpu --steps 2600 --eval-every 500 --version v2 "
                         "--batch-size 64 --prediction-type v_prediction",
    "vae-v2": "python -m dalle2_lessons.vae --profile cpu --steps 2000 --eval-every 500 --version v2 "
              "--prior-steps 1000",
    "gan-v2": "python -m dalle2_lessons.gan --profile cpu --steps 1500 --eval-every 500 --version v2 --batch-size 128 "
              "--ema-decay 0.0 --lr-schedule constant",
    "dalle1-v2": "python -m dalle2_lessons.dalle1 --profile cpu --tokenizer-steps 1500 --tokenizer-batch-size 128 "
                 "--steps 2000 --eval-every 500 --version v2",
    # 8100 steps cost what prior-v2's 5000 steps and decoder-v2's 6600 (both its runs) cost together at the step times
    # of glide.step_seconds on this 2-core CPU (four measurements on 2026-12-05: 7943 to 8217 matched steps), which
    # lesson 15 prints. The 4700-step checkpoint before it (matched to the 2600-step decoder; 57 to 59% of today's
    # budget) judged 44.9% all right at guidance 3 on 256 test captions; these 8100 steps judge 91.4% (the
    # accuracy-vs-minutes curve in the JSON: 46% at 4500 steps, 80% at 6000; session 34's closing note, #21).
    "glide-v2": "python -m dalle2_lessons.glide --profile cpu --steps 8100 --eval-every 500 --version v2 "
                "--batch-size 64",
    # The binding experiment (binding.py, lesson 15): every stage that reads captions, on two-object scenes, built in
    # this order. Smaller budgets than the single-object stages' (prior 4000 steps, decoder 1600), so that the four
    # fit one session; the GLIDE-like model's 3300 steps cost what those two cost together at the medians of
    # glide.step_seconds (0.339, 1.050, 0.916 s per step on two threads, session 21).
    "clip-relation-v2": "python -m dalle2_lessons.binding --stage clip --profile cpu --steps 1000",
    "prior-relation-v2": "python -m dalle2_lessons.binding --stage prior --profile cpu --steps 4000",
    "decoder-relation-v2": "python -m dalle2_lessons.binding --stage decoder --profile cpu --steps 1600",
    "glide-relation-v2": "python -m dalle2_lessons.binding --stage glide --profile cpu --steps 3300",
}


#: The checkpoints whose outputs each stage reads. The prior, decoder, CLIP-conditioned text diffusion, VAE and
#: GAN read CLIP embeddings; the upsampler reads pixels (it is trained on downsampled real renders, so it fits any
#: decoder) and DALL·E 1 reads caption tokens (it uses a CLIP only to rerank, which any CLIP can do).
PARENTS: dict[str, tuple[str, ...]] = {"prior-v2": ("clip",), "decoder-v2": ("clip",), "text-diffusion-v2": ("clip",),
                                       "vae-v2": ("clip",), "gan-v2": ("clip",)}


def versioned(name: str, version: str = "v2") -> str:
    """The checkpoint name of stage ``name`` trained on Shapes ``version``: ``"clip-v2"`` for v2, the course's data
    (every shipped checkpoint); ``"clip"`` for v1, whose checkpoints no longer ship (lesson 00 shows why)."""
    return name if version == "v1" else f"{name}-{version}"


def command(module: str, **flags: object) -> str:
    """The shell command that rebuilds a checkpoint: ``command("prior", profile="cpu", eval_every=250)`` →
    ``python -m dalle2_lessons.prior --profile cpu --eval-every 250`` (flags that are ``None`` are left out)."""
    return f"python -m dalle2_lessons.{module}" + "".join(
        f" --{name.replace('_', '-')} {value}" for name, value in flags.items() if value is not None)


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

    @property
    def origin(self) -> Origin:
        return Origin(self.name, self.path, self.meta.get("sha256") or _sha256(self.path),
                      dict(self.meta.get("parents") or {}))


@dataclass(frozen=True)
class Origin:
    """Which file a loaded model came from: :func:`load_model` sets it as ``model.origin``, so a stage saved after
    training on this model can name it as a parent, and a stage loaded for it can be checked against it."""

    name: str
    path: Path | None
    sha256: str  #: of the ``.safetensors`` file: the checkpoint's identity
    parents: dict[str, str]  #: name → sha256 of each checkpoint this one was trained on


def origin(model: torch.nn.Module) -> Origin:
    """``model.origin``, or a :class:`CheckpointError` saying that a model never saved has no identity to pair with."""
    found = getattr(model, "origin", None)
    if not isinstance(found, Origin):
        raise CheckpointError(
            f"This {type(model).__name__} was not loaded from a checkpoint, so nothing can tell which stages were "
            "trained on it. Save it with checkpoints.save_checkpoint and load it back (e.g. clip.load_clip) "
            "before training on it.")
    return found


def _parent_shas(parents: Mapping[str, torch.nn.Module | str] | None) -> dict[str, str]:
    """``{"clip": clip_model}`` or ``{"clip": "<sha256>"}`` → ``{"clip": "<sha256>"}``."""
    return {k: v if isinstance(v, str) else origin(v).sha256 for k, v in (parents or {}).items()}


def _short(sha: str | None) -> str:
    return f"{sha[:8]}…" if sha else "none recorded"


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
    parents: Mapping[str, torch.nn.Module | str] | None = None,
) -> Path:
    """Write ``<directory>/<name>.safetensors`` and ``<name>.json``; return the weights' path.

    Args:
        state_dict: ``model.state_dict()``; tensors are copied to the CPU and made contiguous.
        config: JSON-serialisable constructor arguments, so ``Model(**config)`` rebuilds the model.
        metrics: measured numbers worth keeping beside the weights (accuracy, training seconds, ...).
        rebuild: the command that reproduces this file; defaults to :data:`REBUILD_COMMANDS`.
        parents: the checkpoints whose outputs the model was trained on, as loaded models (``{"clip": clip_model}``)
            or sha256 strings; required for the stages in :data:`PARENTS`, so they are only ever paired with them.
    """
    shas = _parent_shas(parents)
    missing = set(PARENTS.get(name, ())) - set(shas)
    if missing:
        raise CheckpointError(f"Checkpoint {name!r} must record what it was trained on: "
                              f"pass parents={{'{min(missing)}': model}}, "
                              "the loaded model whose embeddings it learnt from.")
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
        "parents": shas,
        "torch": torch.__version__.split("+")[0],
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return weights


def read_meta(name: str, directory: str | Path) -> dict[str, Any]:
    """The JSON beside ``<directory>/<name>.safetensors`` (config, metrics, sha256, parents), without the weights.

    Raises:
        CheckpointError: either file missing, or the JSON unreadable or without a config.
    """
    directory = Path(directory)
    weights, config_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    for path in (weights, config_path):
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {name!r} is missing: {path} does not exist. {_rebuild_hint(name)}")
    try:
        meta = json.loads(config_path.read_text())
        meta["config"]  # noqa: B018 (must exist)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"Checkpoint {name!r} has a corrupt config {config_path} ({e}). {_rebuild_hint(name)}") from e
    return meta


def load_checkpoint(name: str, directory: str | Path | None = None) -> Checkpoint:
    """Load ``<name>.safetensors`` + ``<name>.json`` from ``directory`` (default: shipped).

    Raises:
        CheckpointError: missing files, unreadable JSON, a checksum mismatch (a truncated or edited
            file), or an unreadable safetensors file; the message names the rebuild command.
    """
    directory = Path(directory) if directory is not None else shipped_dir()
    weights, config_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    meta = read_meta(name, directory)
    config = meta["config"]
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


def _mismatch(meta: dict[str, Any], required: dict[str, str]) -> str | None:
    """Why a checkpoint's recorded parents do not fit ``required`` (name → sha256), or None if they do."""
    recorded = meta.get("parents")
    if recorded is None:
        return "records no parents (saved before checkpoints did): save it again"
    wrong = [f"{k} {_short(recorded.get(k))} (not {_short(sha)})" for k, sha in required.items()
             if recorded.get(k) != sha]
    return f"was trained on {', '.join(wrong)}" if wrong else None


def _choose(
    name: str, profile: str | None, prefer_own: bool, required: dict[str, str]
) -> tuple[Path | None, list[str]]:
    """The folder :func:`find_checkpoint` loads ``name`` from (None if no candidate fits ``required``), and why each
    candidate before it was passed over."""
    candidates = [("your", runs_dir(profile))] if prefer_own and profile is not None else []
    candidates.append(("the course", shipped_dir()))
    skipped = []
    for who, directory in candidates:
        if who == "your" and not (directory / f"{name}.safetensors").is_file():
            continue
        reason = _mismatch(read_meta(name, directory), required) if required else None
        if reason is None:
            return directory, skipped
        skipped.append(f"{who} {name!r} ({directory / name}.json) {reason}")
    return None, skipped


def find_checkpoint(name: str, profile: str | None = None, prefer_own: bool = True,
                    parents: Mapping[str, torch.nn.Module | str] | None = None) -> Checkpoint:
    """Your checkpoint of ``profile`` if you saved one (and ``prefer_own``), else the shipped one; with ``parents``
    (``{"clip": clip_model}``), only one that was trained on exactly those.

    Prints which one it loaded and what it passed over, so a lesson never silently depends on a file you cannot
    see, nor silently feeds a stage the embeddings of a CLIP it never saw.

    Raises:
        CheckpointError: no candidate was trained on ``parents``; the message names what to retrain.
    """
    required = _parent_shas(parents)
    directory, skipped = _choose(name, profile, prefer_own, required)
    for reason in skipped:
        print(f"skipped {reason}")
    if directory is None:
        given = ", ".join(f"{k} {_short(v)}" for k, v in required.items())
        stage, _, version = name.partition("-v")  # "text-diffusion-v2" → stage "text-diffusion", version "2"
        stage, version = (stage, f"v{version}") if version.isdigit() else (name, None)
        module = {"text-diffusion": "guidance"}.get(stage, stage)
        raise CheckpointError(
            f"No {name!r} checkpoint was trained on the {given} you passed: " + "; ".join(skipped) + f". A {name} fed "
            f"embeddings from another model than the one it learnt from draws nonsense. Either use the course CLIP "
            f"(clip.load_clip() with no profile), or train a {name} on yours:  "
            + command(module, profile=profile or "cpu", version=version, clip="yours", out=runs_dir(profile or "cpu")))
    ckpt = load_checkpoint(name, directory)
    who = "your" if directory != shipped_dir() else "the course"
    fits = f", trained on this {' and '.join(required)}" if required else ""
    print(f"loaded {who} checkpoint {name!r} from {ckpt.path}{fits}")
    return ckpt


def trained_in_all(metrics: Mapping[str, Any]) -> tuple[int, float | None]:
    """``(optimiser steps, training seconds)`` a checkpoint has had in all, from its ``metrics``: its own run's plus,
    for one that went on from another's weights (``--init``: the course decoder, see
    :func:`~dalle2_lessons.decoder.continued`), that run's, kept under ``metrics["init"]``. Seconds are ``None``
    where a run recorded none (a lesson's own short run)."""
    runs = [metrics, *([metrics["init"]] if "init" in metrics else [])]
    seconds = [run.get("train_seconds") for run in runs]
    return sum(run.get("steps") or 0 for run in runs), None if None in seconds else float(sum(seconds))


def metrics_of(model: torch.nn.Module) -> dict[str, Any]:
    """The metrics recorded with the checkpoint ``model`` was loaded from (``{}`` for a model never saved)."""
    found = getattr(model, "origin", None)
    if not (isinstance(found, Origin) and found.path):
        return {}
    return read_meta(found.name, found.path.parent).get("metrics", {})


def stages_without(parent: str, profile: str, stages: Iterable[str], role: str | None = None) -> list[str]:
    """The ``stages`` that have no checkpoint (yours of ``profile``, or the course's) trained on your ``parent`` of
    ``profile``: what you would have to train before your ``parent`` can feed them. ``role``: the key the stages
    record it under (default ``parent``; ``"clip"`` for ``clip-v2``, see :data:`PARENTS`)."""
    sha = read_meta(parent, runs_dir(profile))["sha256"]
    return [s for s in stages if _choose(s, profile, True, {role or parent: sha})[0] is None]


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
               device: str | torch.device = "cpu",
               parents: Mapping[str, torch.nn.Module | str] | None = None) -> torch.nn.Module:
    """The checkpoint :func:`find_checkpoint` chooses, loaded into ``make(config)`` and returned in eval mode on
    ``device`` with its :class:`Origin` as ``model.origin``: what every lesson's ``load_*`` function does."""
    if set(PARENTS.get(name, ())) - set(parents or {}):
        raise TypeError(f"loading {name!r} needs the model it reads from: parents={{'clip': clip_model}}")
    ckpt = find_checkpoint(name, profile, parents=parents)
    model = load_into(make(ckpt.config), ckpt).to(device).eval()
    model.origin = ckpt.origin
    return model
