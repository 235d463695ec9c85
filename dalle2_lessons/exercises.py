"""The exercise checker: compare a learner's function with the reference on random inputs.

In a lesson::

    def q_sample(x0, t, noise, schedule):
        raise NotImplementedError("Exercise 2: q_sample")   # the learner replaces this

    q_sample = check_exercise("Exercise 2: q_sample", q_sample, reference=diffusion.q_sample,
                              make_inputs=lambda g: (torch.randn(4, 3, 16, 16, generator=g), ...))

:func:`check_exercise` prints one clear verdict and returns the function the rest of the lesson should
use: the learner's when it passes, otherwise the reference, so an unfinished or wrong exercise never
stops the lesson. :func:`summary` lists every verdict so far.

Random inputs rarely hit the cases a sampler always hits (its first and last step, ``t = 0``, ``t_prev = -1``, a
batch of one), and a bug there can pass every random trial and still ruin every sample. So a checker also takes
``edge_cases``, named inputs tried first, each reported by its name when it fails.

A function can be right on the CPU and still fail on a GPU: ``torch.ones(n)`` or ``torch.rand(n, generator=g)`` makes
a CPU tensor, and adding it to a CUDA one raises. The checker finds this without a GPU by running both functions once
more on PyTorch's ``meta`` device (tensors with a shape and no values): a tensor the learner made on the CPU meets
the meta inputs and raises, as it would meet CUDA ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: This lesson's verdicts in the order they were given: ``{exercise name: "passed" | "not done" | "failed"}``.
RESULTS: dict[str, str] = {}
#: What :func:`use_in_package` replaced, to put back: ``(module, attribute, original)``.
_REPLACED: list[tuple[Any, str, Any]] = []


def use_in_package(module: Any, name: str, fn: Callable) -> None:
    """Make the package call ``fn`` wherever it calls ``module.name`` (e.g. CLIP's attention layers calling your
    attention), until the next lesson starts (:func:`start_lesson`), so re-running lessons in one kernel never
    leaves a learner's function inside another lesson."""
    _REPLACED.append((module, name, getattr(module, name)))
    setattr(module, name, fn)


def start_lesson() -> None:
    """Put back everything :func:`use_in_package` replaced and forget earlier verdicts, so each lesson's
    :func:`summary` is its own. :func:`~dalle2_lessons.profiles.setup_lesson` calls it."""
    while _REPLACED:
        module, name, original = _REPLACED.pop()
        setattr(module, name, original)
    RESULTS.clear()


@dataclass
class Mismatch:
    """Where two outputs first differ, in words a learner can act on."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


def compare(expected: Any, got: Any, rtol: float = 1e-4, atol: float = 1e-5, where: str = "") -> Mismatch | None:
    """Compare two outputs (tensors, arrays, numbers, strings, and lists/tuples/dicts of those).

    Returns ``None`` when they agree, else the first :class:`Mismatch` (type, shape, dtype or values).
    """
    label = where or "output"
    if isinstance(expected, torch.Tensor) or isinstance(expected, np.ndarray):
        if not isinstance(got, (torch.Tensor, np.ndarray)):
            return Mismatch(label, f"expected a {type(expected).__name__}, got {type(got).__name__}")
        e, g = torch.as_tensor(expected), torch.as_tensor(got)
        if tuple(e.shape) != tuple(g.shape):
            return Mismatch(label, f"shape: expected {tuple(e.shape)}, got {tuple(g.shape)}")
        if e.dtype.is_floating_point != g.dtype.is_floating_point or (e.dtype == torch.bool) != (g.dtype == torch.bool):
            return Mismatch(label, f"dtype: expected {e.dtype}, got {g.dtype}")
        if e.numel() == 0:
            return None
        if e.dtype.is_floating_point:
            e64, g64 = e.detach().cpu().double(), g.detach().cpu().double()
            if torch.isnan(g64).any() and not torch.isnan(e64).any():
                return Mismatch(label, f"values: {int(torch.isnan(g64).sum())} NaN value(s) where none were expected")
            bad = ~torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
        else:
            e64, g64 = e.detach().cpu(), g.detach().cpu()
            bad = g64 != e64
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            diff = (g64.double() - e64.double()).abs()
            return Mismatch(
                label,
                f"values: {int(bad.sum())} of {e.numel()} differ; first at index {idx}: expected "
                f"{e64[idx].item():.6g}, got {g64[idx].item():.6g} (largest difference {diff.max().item():.3g})",
            )
        return None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return Mismatch(label, f"expected a dict, got {type(got).__name__}")
        if set(expected) != set(got):
            return Mismatch(label, f"keys: expected {sorted(map(str, expected))}, got {sorted(map(str, got))}")
        for k in expected:
            m = compare(expected[k], got[k], rtol, atol, f"{label}[{k!r}]")
            if m:
                return m
        return None
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        if not isinstance(got, Sequence) or isinstance(got, str):
            return Mismatch(label, f"expected a {type(expected).__name__}, got {type(got).__name__}")
        if len(expected) != len(got):
            return Mismatch(label, f"length: expected {len(expected)}, got {len(got)}")
        for i, (e, g) in enumerate(zip(expected, got)):
            m = compare(e, g, rtol, atol, f"{label}[{i}]")
            if m:
                return m
        return None
    if isinstance(expected, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return None
        return Mismatch(label, f"expected {expected!r}, got {got!r}")
    if expected != got:
        return Mismatch(label, f"expected {expected!r}, got {got!r}")
    return None


def _describe(args: tuple) -> str:
    def one(a: Any) -> str:
        if isinstance(a, (torch.Tensor, np.ndarray)):
            return f"{type(a).__name__}{tuple(a.shape)} {a.dtype}"
        text = repr(a)
        return text if len(text) <= 60 else text[:57] + "..."

    return "(" + ", ".join(one(a) for a in args) + ")"


def _on_meta(a: Any) -> Any:
    """``a`` with every tensor in it (also inside tuples and lists) moved to the ``meta`` device."""
    if isinstance(a, torch.Tensor):
        return a.to("meta")
    if isinstance(a, (tuple, list)):
        return type(a)(_on_meta(x) for x in a)
    return a


def _tensors(a: Any) -> list[torch.Tensor]:
    if isinstance(a, torch.Tensor):
        return [a]
    if isinstance(a, (tuple, list)):
        return [t for x in a for t in _tensors(x)]
    return []


def device_problem(fn: Callable, reference: Callable, args: tuple) -> str | None:
    """Why ``fn``, right on the CPU, would fail when its inputs live on a GPU; None if it would not (or if it cannot be
    told: the reference itself needs real values, through ``.item()`` or a Python ``if`` on a tensor).

    Both run on ``args`` moved to the ``meta`` device, which mixes with CPU tensors exactly as CUDA does: a CPU scalar
    or a CPU index is fine, a CPU tensor in arithmetic, ``torch.cat`` or ``torch.where`` is an error."""
    moved = _on_meta(args)
    if not _tensors(moved):
        return None
    try:
        expected = reference(*moved)
    except Exception:  # noqa: BLE001 - the reference needs values on this input: nothing to compare
        return None
    try:
        got = fn(*moved)
    except Exception as e:  # noqa: BLE001 - only a device error is this check's business
        return str(e) if "device" in str(e).lower() else None
    exp_devices = [t.device.type for t in _tensors(expected)]
    got_devices = [t.device.type for t in _tensors(got)]
    if len(exp_devices) == len(got_devices) and exp_devices != got_devices:
        return "it returns a tensor made on the CPU, where the reference's output stays on its inputs' device"
    return None


def check_exercise(
    name: str,
    fn: Callable,
    reference: Callable,
    make_inputs: Callable[[torch.Generator], tuple],
    trials: int = 5,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    edge_cases: Mapping[str, Callable[[torch.Generator], tuple]] | None = None,
) -> Callable:
    """Run ``fn`` and ``reference`` on the same random inputs and print a verdict.

    Args:
        name: how the lesson names the exercise, e.g. ``"Exercise 1: caption template"``.
        fn: the learner's function.
        reference: the course's implementation (usually the package's function of the same name).
        make_inputs: ``generator → tuple of positional arguments``; called once per trial.
        trials: how many random inputs to try.
        edge_cases: ``{"the last step (t_prev = -1)": generator → arguments, ...}``: boundary inputs tried before the
            random ones (the random parts of their arguments still come from the generator).
    Returns:
        ``fn`` if it matched on every trial, otherwise ``reference`` (so the lesson can continue); for a probe that
        carries a function as ``.wraps`` (:func:`~.exercise_inputs.dropout_statistics`), the function it carries. A
        function of the course package itself (``fn = diffusion.q_sample``) is not the learner's work: it fails.
    """
    own = getattr(fn, "wraps", fn)  # a probe (exercise_inputs.dropout_statistics) carries the learner's function
    fallback = getattr(reference, "wraps", reference)
    borrowed = getattr(own, "__module__", "").split(".")[0] == "dalle2_lessons"
    if own is fallback or borrowed:
        RESULTS[name] = "failed"
        print(f"✗ {name}: that is the course's own {getattr(own, '__qualname__', 'function')}, not yours. Write it in "
              "the cell above: building it is the exercise. Using the reference implementation for now.")
        return fallback
    gen = torch.Generator().manual_seed(seed)
    cases = [(f"the edge case {label!r}", make) for label, make in (edge_cases or {}).items()]
    cases += [(f"random trial {k + 1}", make_inputs) for k in range(trials)]
    for case, make in cases:
        args = make(gen)
        try:
            got = fn(*args)
        except NotImplementedError:
            RESULTS[name] = "not done"
            print(f"… {name}: not done yet. The lesson continues with the reference implementation;")
            print("  come back, fill in the function, and re-run its cell to check your version.")
            return fallback
        except Exception as e:  # the learner's bug, reported in words instead of a stack trace
            RESULTS[name] = "failed"
            print(f"✗ {name}: your function raised {type(e).__name__}: {e}")
            print(f"  on inputs {_describe(args)} ({case}). Using the reference implementation for now.")
            return fallback
        expected = reference(*args)
        mismatch = compare(expected, got, rtol, atol)
        if mismatch:
            RESULTS[name] = "failed"
            print(f"✗ {name}: your result differs from the reference on inputs {_describe(args)} ({case}).")
            print(f"  {mismatch}")
            print("  Using the reference implementation for now; fix your function and re-run its cell.")
            return fallback
    # a probe (exercise_inputs.dropout_statistics) names the raw arguments its function takes, for this check
    device_args = getattr(fn, "device_args", None)
    problem = (device_problem(own, fallback, device_args(gen)) if device_args is not None
               else device_problem(fn, reference, args))
    if problem:
        RESULTS[name] = "failed"
        print(f"✗ {name}: right on the CPU, but it would fail on a GPU. Tried with its inputs on PyTorch's")
        print(f"  'meta' device, which stands in for one: {problem}")
        print("  A tensor you create (torch.ones, torch.arange, torch.rand(..., generator=g), ...) is made on the CPU")
        print("  unless you say otherwise: pass device=x.device, or move it with .to(x.device). Using the reference")
        print("  implementation for now; fix your function and re-run its cell.")
        return fallback
    RESULTS[name] = "passed"
    edges = f" and {len(edge_cases)} edge case(s): {', '.join(edge_cases)}" if edge_cases else ""
    print(f"✓ {name}: matches the reference on {trials} random inputs{edges}.")
    return own


def summary() -> dict[str, str]:
    """Print and return every verdict of this lesson so far."""
    if not RESULTS:
        print("No exercises checked yet.")
    for name, verdict in RESULTS.items():
        mark = {"passed": "✓", "not done": "…", "failed": "✗"}[verdict]
        print(f"{mark} {name}: {verdict}")
    return dict(RESULTS)
