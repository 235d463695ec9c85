"""The benchmark entry point runs in its tiny mode, so it cannot rot (the full run is documented, not part of CI)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_benchmark_writes_every_section(tmp_path):
    env = {**os.environ, "DALLE2_LESSONS_PROFILE": "ci"}
    subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--out", str(tmp_path)], cwd=ROOT, env=env,
                   check=True, timeout=3600)  # a hang guard, not a speed test
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Tiny mode" in text and "## Machine" in text and "torch" in text
    for heading in ("Training throughput", "Sampling", "Quality per training minute", "Against libraries",
                    "Course run time"):
        assert f"## {heading}" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["matmul_gflops"] > 0
    assert all(r["images / s"] > 0 and r["GFLOP / step"] > 0 for r in results["throughput"])
    assert [r["sampler"] for r in results["sampling"]] == ["DDPM-1000", "DDIM-50", "DDIM-25"]
    assert all(r["s / image"] > 0 for r in results["sampling"])
    assert [(r["notebook"], r["error"]) for r in results["runtime"]] == [("00_welcome.ipynb", "")]
    assert set(results["quality"]) == {"CLIP", "text → pixels diffusion", "unCLIP prior", "unCLIP decoder"}
    assert all(len(points) >= 1 and "train_minutes" in points[0] for points in results["quality"].values())
    assert set(results["quality"]["unCLIP prior"][0]) == {"step", "train_minutes", "prior", "no_prior", "floor"}
    assert results["quality_data"] == "v2" and "Stale" not in text
    assert (tmp_path / "quality_per_minute.png").stat().st_size > 1000
    decoders, priors = results["decoder_vs_libraries"], results["prior_vs_dalle2_pytorch"]
    assert [r["model"].split(":")[0] for r in decoders] == [
        "ours", "diffusers UNet2DModel + DDPM/DDIMScheduler", "dalle2-pytorch Decoder + Unet"]
    assert [r["model"].split(":")[0] for r in priors] == ["ours", "dalle2-pytorch DiffusionPrior", "reference"]
    ran = [r for r in decoders + priors if "not installed" not in r["model"]]
    assert len(ran) == 6 - 2 * (importlib.util.find_spec("dalle2_pytorch") is None)
    for r in ran:
        judged = r.get("judge: all correct", r.get("judge: all correct (course decoder)"))
        assert 0 <= judged <= 1 and (r["steps"] >= 1 or r["model"].startswith("reference")), r
    assert all(-1 <= r["cosine to true image embedding"] <= 1 for r in priors if r in ran)
    for r in decoders + priors:  # a library that is missing says how to get it
        assert r in ran or "pip install" in r["model"]
    assert all(0 <= r["zero-shot (mean of 4)"] <= 1 for r in results["clip_vs_transformers"])
    assert set(results["runs"]) == {"throughput", "sampling", "quality", "libraries", "runtime"}
    assert results["budgets_s"] == {"decoder": 1, "prior": 1, "clip": 1} and "**Prior**, 1 s of training each" in text
    assert "## Runs" in text and "--tiny" in text

    # Sections run apart land in the same file: a second run keeps the other sections and restamps its own; notebook
    # times merge by (profile, notebook).
    before = results["runs"]
    subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--only", "runtime", "--notebooks", "03",
                    "--out", str(tmp_path)], cwd=ROOT, env=env, check=True, timeout=3600)
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["sampling"] == results["sampling"] and again["quality"] == results["quality"]
    assert again["runs"]["runtime"]["command"] == "python -m benchmarks --tiny --only runtime --notebooks 03"
    assert again["runs"]["sampling"] == before["sampling"]
    assert [r["notebook"] for r in again["runtime"]] == ["00_welcome.ipynb", "03_forward_diffusion.ipynb"]
    assert again["runtime"][0] == results["runtime"][0] and again["runtime"][1]["error"] == ""
    assert "`ci`: 2 notebooks in" in (tmp_path / "RESULTS.md").read_text()


def test_a_quality_run_on_other_data_is_reported_as_stale():
    from benchmarks import __main__ as bench
    from benchmarks import quality

    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    results["quality_data"] = quality.DATA
    current = bench.report(results, bench.FULL)
    assert "Stale" not in current and "energy distance" in current
    del results["quality_data"]  # what a run from before the v2 rewrite stored
    stale = bench.report(results, bench.FULL)
    assert "**Stale: the tables below were measured on Shapes v1**" in stale and "energy distance" not in stale


def test_an_interrupted_quality_run_is_taken_up_where_it_stopped(tmp_path, monkeypatch):
    from benchmarks import quality

    trained = []

    def fake(name):
        def curve(*args, **kwargs):
            trained.append(name)
            return [{"step": 1, "train_minutes": 0.1, "all": 0.5}]
        return curve

    monkeypatch.setattr(quality, "clip_curve", fake("CLIP"))
    monkeypatch.setattr(quality, "prior_curve", fake("unCLIP prior"))
    monkeypatch.setattr(quality, "diffusion_curve", lambda module, *a, **k: fake(module.__name__)())
    partial = tmp_path / "quality.partial.json"
    kept = {"curves": {"CLIP": [{"step": 7, "train_minutes": 1.0, "zero-shot": 0.9}],
                       "text → pixels diffusion": [{"step": 9, "train_minutes": 2.0, "all": 0.8}]},
            "seconds": {"CLIP": 60.0, "text → pixels diffusion": 120.0}}
    partial.write_text(json.dumps(kept))
    curves, seconds = quality.run(tiny=True, partial=partial)
    assert trained == ["unCLIP prior", "dalle2_lessons.decoder"], "only the curves the partial run did not finish"
    assert list(curves) == ["CLIP", "text → pixels diffusion", "unCLIP prior", "unCLIP decoder"]
    assert curves["CLIP"] == kept["curves"]["CLIP"] and seconds >= 180.0
    assert set(json.loads(partial.read_text())["curves"]) == set(curves), "each finished curve is kept as it ends"
    trained.clear()
    quality.run(tiny=True, partial=None)
    assert trained == ["CLIP", "dalle2_lessons.guidance", "unCLIP prior", "dalle2_lessons.decoder"]


def test_race_gives_each_contender_the_steps_that_fit_its_budget():
    import time

    import torch

    from benchmarks.libraries import race

    made, trained = [], []

    def make():
        made.append(torch.nn.Linear(2, 2))
        return made[-1]

    def train(model, steps):
        trained.append((model, steps))
        return model

    model, steps, _ = race(make, lambda m, opt: time.sleep(0.02), train, budget_s=0.2)
    assert len(made) == 2 and trained == [(made[1], steps)] and model is made[1], "train a fresh model, not the probe"
    assert 4 <= steps <= 10, steps  # 0.2 s of 0.02 s steps (sleep can only overshoot)


def test_ratios_are_ours_over_each_library_that_ran():
    from benchmarks.libraries import ratios

    nan = float("nan")
    rows = [{"model": "ours: x", "rate": 6.0, "s": 1.0}, {"model": "lib A", "rate": 3.0, "s": 4.0},
            {"model": "lib B: not installed: pip install b", "rate": nan, "s": nan},
            {"model": "reference: y", "rate": 1.0, "s": 1.0}]
    assert ratios(rows, ("rate", "s")) == [{"ours ÷": "lib A", "rate": 2.0, "s": 0.25}]


def test_dalle2_pytorch_prior_leaves_its_inputs_alone_and_samples_unit_vectors():
    pytest.importorskip("dalle2_pytorch")
    import torch

    from benchmarks.libraries import Dalle2PytorchPrior

    torch.manual_seed(0)
    prior = Dalle2PytorchPrior(embed_dim=8, token_width=16, context_length=4, depth=1)
    z = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    tokens, mask = torch.randn(3, 4, 16), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    before = z.clone()
    loss = prior.loss(z, text, tokens, mask)
    assert torch.equal(z, before), "the library scales image embeddings in place; the wrapper must hand it a copy"
    loss.backward()
    assert prior.token_proj.weight.grad is not None and prior.token_proj.weight.grad.abs().sum() > 0
    padding = prior.encodings(tokens, mask)[0, 2:]
    assert torch.equal(padding, torch.zeros(2, 8)), "padding must stay zero: the library finds it so"
    sample = prior.eval().sample(text, tokens, mask, steps=3, candidates=2)
    assert sample.shape == (3, 8) and torch.allclose(sample.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_decoder_prediction_benchmark_runs_in_its_tiny_mode(tmp_path, prediction_type):
    from benchmarks import decoder_prediction

    out = tmp_path / "decoder_prediction.json"
    decoder_prediction.main(["--tiny", "--steps", "2", "--only", prediction_type, "--out", str(out)])
    row = json.loads(out.read_text())[prediction_type]
    assert row["steps"] == 2 and row["real"]["border_std"] >= 0
    for scale in ("s1", "s3"):
        assert 0 <= row[scale]["background_right"] <= 1 and 0 <= row[scale]["all"] <= 1


def test_shapes_v2_benchmark_runs_in_its_tiny_mode(tmp_path):
    from benchmarks import shapes_v2
    from dalle2_lessons import scorecard, unclip

    shapes_v2.main(["--tiny", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "shapes_v2.json").read_text())
    assert result["sizes"]["seeds"] == [0, 1] and set(result["checkpoints"]) >= {"clip-v2", "prior-v2", "decoder-v2"}
    assert set(result["scorecard"]) == {"unCLIP (prior)", "no prior (text embedding)"}
    for card in result["scorecard"].values():
        assert {"full", "partial"} <= set(card) and 0 <= card["full"]["fidelity"]["mean"] <= 1
    text = (tmp_path / "SHAPES_V2.md").read_text()
    assert "## 1. Prior ablation in embedding space" in text and "## 2. End to end at 64×64" in text
    # section 2 runs the pipeline as it ships: its upsampler reads the decoder's samples through the default blur
    assert result["sampling"]["upsampler input blur"] == f"σ = {unclip.UPSAMPLER_INPUT_BLUR:g} px"
    # section 4 scores the pipeline's images with no input blur (one shared run), then the same decoder samples other
    # ways: its first row is exactly what the pipeline makes with upsampler_input_blur=0
    assert "## 4. Where the cascade loses its Shapes FID" in text
    assert list(result["stages"])[:2] == ["decoder + upsampler", "decoder + bicubic"]
    pipe = unclip.UnCLIP.load(version="v2")
    plain = scorecard.pipeline_generator(pipe, decoder_steps=2, upsampler_steps=2, upsampler_input_blur=0.0,
                                         decoder_scale=shapes_v2.STAGES_DECODER_SCALE)
    assert result["stages"]["decoder + upsampler"] == json.loads(json.dumps(scorecard.scorecard(plain, (0, 1), 1, 4)))
    pick = result["validation"]["pick"]
    assert pick in (0.0, *shapes_v2.CANDIDATE_BLURS) and shapes_v2.blurred_row(pick) in result["stages"]
    assert set(result["validation"]["seeds"]).isdisjoint(result["sizes"]["seeds"])  # picked on captions not scored
    # section 5: the pipeline as it ships but for the decoder's guidance, on the same validation captions
    assert "## 5. The decoder's guidance scale" in text
    assert result["sampling"]["decoder guidance"] == f"{unclip.DECODER_SCALE:g}"
    guidance = result["guidance"]
    assert guidance["seeds"] == result["validation"]["seeds"] and guidance["pick"] in shapes_v2.CANDIDATE_SCALES
    assert list(guidance["cards"]) == [f"decoder guidance {g:g}" for g in shapes_v2.CANDIDATE_SCALES]
    at_2 = scorecard.pipeline_generator(pipe, decoder_steps=2, upsampler_steps=2, decoder_scale=2.0)
    assert guidance["cards"]["decoder guidance 2"] == json.loads(json.dumps(scorecard.scorecard(at_2, (10, 11), 1, 4)))
    # section 6: full captions only, more of them than section 2's, the pipeline as it ships and section 3's rows
    assert "## 6. Full captions at a larger set" in text and "As ratios to this floor" in text
    full_set = result["full_set"]
    assert full_set["captions"] == shapes_v2.FULL_CAPTIONS["tiny"] > result["sizes"]["card_captions"]
    assert "partial" not in full_set["card"] and list(full_set["calibration"]) == ["full"]
    assert {"floor", "upsampler from 32", "decoder + upsampler from real embeddings"} <= set(
        full_set["calibration"]["full"])
    shipped = scorecard.pipeline_generator(pipe, decoder_steps=2, upsampler_steps=2)
    assert full_set["card"] == json.loads(json.dumps(scorecard.scorecard(shipped, (0, 1), 2, 4, kinds=("full",))))


def test_the_decoder_scale_is_picked_by_partial_fid_among_the_scales_that_meet_the_fidelity_targets(monkeypatch):
    from benchmarks import shapes_v2
    from dalle2_lessons import scorecard

    # (full fidelity, partial fidelity, partial FID) per scale: 1 has the lowest FID but misses a target
    made = {1.0: (0.99, 0.85, 100.0), 1.25: (0.99, 0.95, 300.0), 1.5: (0.96, 0.97, 250.0), 2.0: (1.0, 0.98, 400.0)}
    assert set(made) == set(shapes_v2.CANDIDATE_SCALES)

    def card(full, partial, fid):
        iv = lambda v: {"mean": v, "low": v, "high": v, "n": 3}  # noqa: E731
        return {"full": {"fidelity": iv(full), "fid": iv(50.0)}, scorecard.PARTIAL: {"fidelity": iv(partial),
                                                                                      "fid": iv(fid)}}

    monkeypatch.setattr(scorecard, "pipeline_generator", lambda pipe, **kwargs: kwargs["decoder_scale"])
    monkeypatch.setattr(scorecard, "scorecard", lambda scale, *args: card(*made[scale]))
    assert shapes_v2.pick_decoder_scale(None, shapes_v2.TINY, (10, 11))[0] == 1.5
    made = {g: (0.5, 0.5, fid) for g, (_, _, fid) in made.items()}  # none meets them: the lowest FID of all
    assert shapes_v2.pick_decoder_scale(None, shapes_v2.TINY, (10, 11))[0] == 1.0


def test_shapes_v2_benchmark_reuses_sections_it_stored(tmp_path, capsys):
    from benchmarks import shapes_v2

    shapes_v2.main(["--tiny", "--out", str(tmp_path)])
    first = json.loads((tmp_path / "shapes_v2.json").read_text())
    capsys.readouterr()
    reuse_all = ["--tiny", "--out", str(tmp_path), "--reuse-ablation", "--reuse-scorecard", "--reuse-calibration",
                 "--reuse-stages", "--reuse-guidance", "--reuse-full-set"]
    shapes_v2.main(reuse_all)
    out = capsys.readouterr().out
    assert all(f"section {n} reused" in out for n in (1, 2, 3, 5, 6))
    assert "section 4's validation reused" in out and "section 4's rows reused" in out
    second = json.loads((tmp_path / "shapes_v2.json").read_text())
    assert all(second[k] == first[k] for k in ("ablation", "scorecard", "calibration", "stages", "validation",
                                               "guidance", "full_set"))
    # a run made with another default input blur: sections 2, 3 and 5 (the pipeline's blur) are measured again,
    # section 4 (whose rows name their blur) is kept
    (tmp_path / "shapes_v2.json").write_text(json.dumps({**second, "sampling": {
        **second["sampling"], "upsampler input blur": "σ = 0 px"}}))
    shapes_v2.main(reuse_all)
    out = capsys.readouterr().out
    assert "section 1 reused" in out and "section 4's rows reused" in out
    assert not any(f"section {n} reused" in out for n in (2, 3, 5, 6))
    third = json.loads((tmp_path / "shapes_v2.json").read_text())
    assert third["scorecard"] == first["scorecard"] and third["sampling"] == first["sampling"]  # deterministic
    assert third["guidance"] == first["guidance"]
    # another default decoder guidance: section 2 is measured again; 3 has no decoder, 4 and 5 set their own guidance
    (tmp_path / "shapes_v2.json").write_text(json.dumps({**third, "sampling": {
        **third["sampling"], "decoder guidance": "7"}}))
    shapes_v2.main(reuse_all)
    out = capsys.readouterr().out
    assert all(f"section {n} reused" in out for n in (1, 3, 5)) and "section 4's rows reused" in out
    assert "section 2 reused" not in out and "section 6 reused" not in out
    # a run split over two sittings: --stop-after keeps what it measured, --resume takes it up and measures no more
    split = tmp_path / "split"
    split.mkdir()
    shapes_v2.main(["--tiny", "--out", str(split), "--stop-after", "2"])
    assert "stopped after section 2" in capsys.readouterr().out and not (split / "shapes_v2.json").exists()
    partial = json.loads((split / "shapes_v2.partial.json").read_text())
    assert list(partial["sections"]) == ["ablation", "scorecard"] and partial["sections"]["scorecard"] == first[
        "scorecard"]  # the same numbers as one sitting
    shapes_v2.main(["--tiny", "--out", str(split), "--resume", "--stop-after", "2"])
    out = capsys.readouterr().out
    assert "ablation reused from shapes_v2.partial.json" in out and "scorecard reused from" in out
    assert json.loads((split / "shapes_v2.partial.json").read_text()) == partial
    # sections measured with another pipeline are not taken up
    partial["key"]["sampling"]["upsampler input blur"] = "σ = 9 px"
    (split / "shapes_v2.partial.json").write_text(json.dumps(partial))
    shapes_v2.main(["--tiny", "--out", str(split), "--resume", "--stop-after", "1"])
    out = capsys.readouterr().out
    assert "measuring everything again" in out and "reused from" not in out


def test_claims_benchmark_runs_in_its_tiny_mode_and_reuses_what_it_stored(tmp_path, capsys):
    from benchmarks import claims as bench

    bench.main(["--tiny", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "claims.json").read_text())
    assert list(result["sweep"]) == ["unCLIP decoder", "GLIDE-like"]
    for model in result["sweep"].values():
        assert set(model["results"]) == {"1.0", "8.0"} and model["sizes"]["seeds"] == [0, 1]
        assert len(model["results"]["8.0"]["per_seed"]["diversity"]) == 2
    assert set(result["variations"]["results"]["kept"]) == {"colour", "shape", "size", "position", "background"}
    assert set(result["text_diffs"]["results"]) == {"0.0", "0.5"}
    assert set(result["binding"]["results"]) == {"unCLIP", "unCLIP + caption pathway", "GLIDE-like"}
    assert len(result["binding"]["results"]["GLIDE-like"]["colour swap share"]) == 2  # per seed, for paired verdicts
    text = (tmp_path / "CLAIMS.md").read_text()
    assert "## 1. Diversity against guidance" in text and "## 3. Text diffs" in text and "## 4. Binding" in text
    assert "## Summary" in text and text.count("| §") == 6  # one row per claim, every part measured
    capsys.readouterr()
    bench.main(["--tiny", "--out", str(tmp_path), "--only", "variations"])  # only that section is measured again
    again = json.loads((tmp_path / "claims.json").read_text())
    assert again["sweep"] == result["sweep"] and again["text_diffs"] == result["text_diffs"]


def test_the_claims_summary_draws_binding_verdicts_from_intervals_and_says_when_it_cannot():
    from benchmarks.claims import summary_rows

    def seeds(share):
        return {"colour swap share": share, "both colours": [0.3, 0.3, 0.3], "correct": [0.1, 0.1, 0.1]}

    nan = float("nan")
    worse = {"binding": {"results": {"unCLIP": seeds([0.3, 0.35, 0.4]), "GLIDE-like": seeds([0.1, 0.12, 0.08])}}}
    assert summary_rows(worse)[0]["course"] == "yes"  # unCLIP swaps more often, as the paper found
    better = {"binding": {"results": {"unCLIP": seeds([0.1, 0.12, 0.08]), "GLIDE-like": seeds([0.3, 0.35, 0.4])}}}
    assert summary_rows(better)[0]["course"] == "no"
    chance = {"binding": {"results": {"unCLIP": seeds([0.45, 0.55, 0.5]), "GLIDE-like": seeds([0.5, 0.45, 0.55])}}}
    assert summary_rows(chance)[0]["course"] == "not told apart; neither binds"  # both at 0.5: colours at random
    empty = {"binding": {"results": {"unCLIP": seeds([nan, 0.2, 0.3]), "GLIDE-like": seeds([0.4, 0.45, 0.5])}}}
    assert summary_rows(empty)[0]["course"] == "not measurable" and "both colours: unCLIP 30%" in \
        summary_rows(empty)[0]["measured"]
    assert summary_rows({}) == []
