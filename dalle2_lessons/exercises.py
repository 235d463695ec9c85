"""The exercise checker: compare a learner's function with the reference on random inputs.

In a lesson::

    def q_sample(x0, t, noise, schedule):
        raise NotImplementedError("Exercise 2: q_sample")   # the learner replaces this

    q_sample = check_exercise("Exercise 2: q_sample", q_sample, reference=diffusion.q_sample,
                              make_inputs=lambda g: (torch.randn(4, 3, 16, 16, generator=g), ...))

:func:`check_exercise` prints one clear verdict and returns the function the rest of the lesson should
use: the learner's when it passes, otherwise the reference, so an unfinished or wrong exercise never
stops the lesson. :func:`summary` lists every verdict so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Verdicts in the order they were given: ``{exercise name: "passed" | "not done" | "failed"}``.
RESULTS: dict[str, str] = {}


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
        return None if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol) else Mismatch(label, f"expected {expected!r}, got {got!r}")
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


def check_exercise(
    name: str,
    fn: Callable,
    reference: Callable,
    make_inputs: Callable[[torch.Generator], tuple],
    trials: int = 5,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> Callable:
    """Run ``fn`` and ``reference`` on the same random inputs and print a verdict.

    Args:
        name: how the lesson names the exercise, e.g. ``"Exercise 1: caption template"``.
        fn: the learner's function.
        reference: the course's implementation (usually the package's function of the same name).
        make_inputs: ``generator → tuple of positional arguments``; called once per trial.
        trials: how many random inputs to try.
    Returns:
        ``fn`` if it matched on every trial, otherwise ``reference`` (so the lesson can continue).
    """
    gen = torch.Generator().manual_seed(seed)
    for trial in range(trials):
        args = make_inputs(gen)
        try:
            got = fn(*args)
        except NotImplementedError:
            RESULTS[name] = "not done"
            print(f"… {name}: not done yet. The lesson continues with the reference implementation;")
            print("  come back, fill in the function, and re-run its cell to check your version.")
            return reference
        except Exception as e:  # the learner's bug, reported in words instead of a stack trace
            RESULTS[name] = "failed"
            print(f"✗ {name}: your function raised {type(e).__name__}: {e}")
            print(f"  on inputs {_describe(args)} (trial {trial + 1}). Using the reference implementation for now.")
            return reference
        expected = reference(*args)
        mismatch = compare(expected, got, rtol, atol)
        if mismatch:
            RESULTS[name] = "failed"
            print(f"✗ {name}: your result differs from the reference on inputs {_describe(args)} (trial {trial + 1}).")
            print(f"  {mismatch}")
            print("  Using the reference implementation for now; fix your function and re-run its cell.")
            return reference
    RESULTS[name] = "passed"
    print(f"✓ {name}: matches the reference on {trials} random inputs.")
    return fn


def summary() -> dict[str, str]:
    """Print and return every exercise's verdict so far."""
    if not RESULTS:
        print("No exercises checked yet.")
    for name, verdict in RESULTS.items():
        mark = {"passed": "✓", "not done": "…", "failed": "✗"}[verdict]
        print(f"{mark} {name}: {verdict}")
    return dict(RESULTS)
