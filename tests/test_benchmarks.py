"""The benchmark entry point runs in its tiny mode, so it cannot rot (the full run is documented, not part of CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_benchmark_writes_every_section(tmp_path):
    env = {**os.environ, "DALLE2_LESSONS_PROFILE": "ci"}
    subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--out", str(tmp_path)], cwd=ROOT, env=env, check=True, timeout=900)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Tiny mode" in text and "## Machine" in text and "torch" in text
    for heading in ("Training throughput", "Sampling", "Quality per training minute", "Against libraries", "Course run time"):
        assert f"## {heading}" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["matmul_gflops"] > 0
    assert all(r["images / s"] > 0 and r["GFLOP / step"] > 0 for r in results["throughput"])
    assert [r["sampler"] for r in results["sampling"]] == ["DDPM-1000", "DDIM-50", "DDIM-25"]
    assert all(r["s / image"] > 0 for r in results["sampling"])
    assert [(r["notebook"], r["error"]) for r in results["runtime"]] == [("00_welcome.ipynb", "")]
    assert set(results["quality"]) == {"CLIP", "text → pixels diffusion", "unCLIP prior", "unCLIP decoder"}
    assert all(len(points) >= 1 and "train_minutes" in points[0] for points in results["quality"].values())
    assert (tmp_path / "quality_per_minute.png").stat().st_size > 1000
    assert [r["model"].split(":")[0] for r in results["unet_vs_diffusers"]] == ["ours", "diffusers UNet2DModel + DDPM/DDIMScheduler"]
    assert all(0 <= r["judge: all correct"] <= 1 and r["steps"] >= 1 for r in results["unet_vs_diffusers"])
    assert all(0 <= r["zero-shot (mean of 4)"] <= 1 for r in results["clip_vs_transformers"])
    assert set(results["runs"]) == {"throughput", "sampling", "quality", "libraries", "runtime"}
    assert "## Runs" in text and "--tiny" in text

    # Sections run apart land in the same file: a second run of one section keeps the others and restamps its own.
    before = results["runs"]
    subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--only", "sampling", "--out", str(tmp_path)], cwd=ROOT, env=env,
                   check=True, timeout=300)
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["runtime"] == results["runtime"] and again["quality"] == results["quality"]
    assert again["runs"]["sampling"]["command"] == "python -m benchmarks --tiny --only sampling"
    assert again["runs"]["runtime"] == before["runtime"]
