"""The machine the numbers come from, and its float32 matmul rate: the yardstick for "achieved GFLOP/s"."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

import torch


def facts(device: str = "cpu") -> dict[str, str]:
    """What RESULTS.md states about the run: date, CPU, cores, torch threads, versions, device."""
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "none used"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "gpu": gpu,
    }


def matmul_gflops(n: int = 1024, repeats: int = 10, device: str = "cpu") -> float:
    """Best-of-``repeats`` rate of one ``n × n`` float32 matrix product, counted as ``2 n³`` floating-point
    operations (a multiply and an add per term): the most this machine's BLAS delivers on the op that dominates
    our networks."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9
