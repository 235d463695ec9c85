"""The scorecard (issue #21) tells a perfect generator from a collapsed one and from one that draws blobs."""

import numpy as np
import pytest
import torch

from dalle2_lessons import judge, metrics, prior_ablation, scorecard, shapes

K, PER_TYPE, SEEDS = 16, 2, (0, 1, 2)


def fake(kind: str):
    """A "generator" made of real renders: fresh scenes fitting each caption (``perfect``), one scene repeated
    (``collapsed``), or fresh scenes blurred by σ = 2 px at 64 px (``blobs``)."""

    def generate(texts: list[str], seed: int) -> torch.Tensor:
        caps = prior_ablation.evaluation_captions(PER_TYPE, K, seed=seed)  # the captions behind ``texts``, K each
        assert texts == [c.text for c in caps for _ in range(K)]
        out = []
        for i, cap in enumerate(caps):
            fresh = shapes.matching_scenes(cap.attrs, cap.mentioned, K, seed=50 + 7 * seed + i)
            if kind == "collapsed":
                fresh = fresh[np.zeros(K, dtype=int)]
            images = shapes.render(fresh, 64)
            out.append(judge.blur(images, 2.0) if kind == "blobs" else images)
        return torch.cat(out)

    return generate


@pytest.fixture(scope="module")
def cards():
    strict = judge.load_judge("single", version="v2")
    return {kind: scorecard.scorecard(fake(kind), SEEDS, PER_TYPE, K, strict) for kind in ("perfect", "collapsed",
                                                                                          "blobs")}


def test_real_renders_score_as_real(cards):
    card = cards["perfect"]
    print(scorecard.format_scorecard(card))
    for kind in (*prior_ablation.MENTION_TYPES, scorecard.PARTIAL):
        assert card[kind]["fidelity"]["mean"] >= 0.97 and card[kind]["readable"]["mean"] >= 0.97
        assert card[kind]["fid"]["mean"] <= 2.0 * card[kind]["fid_floor"]["mean"] + 1e-6
    assert 0.8 <= card[scorecard.PARTIAL]["diversity"]["mean"] <= 1.25


def test_a_collapsed_generator_is_faithful_but_not_diverse(cards):
    card = cards["collapsed"]
    assert card[scorecard.PARTIAL]["fidelity"]["mean"] >= 0.97
    assert card[scorecard.PARTIAL]["diversity"]["mean"] <= 0.05
    assert card[scorecard.PARTIAL]["fid"]["low"] > cards["perfect"][scorecard.PARTIAL]["fid"]["high"]


def test_blobs_are_refused(cards):
    card = cards["blobs"]
    assert card[scorecard.PARTIAL]["readable"]["mean"] <= 0.1 and card["full"]["fidelity"]["mean"] <= 0.1
    assert card["full"]["fid"]["low"] > cards["perfect"]["full"]["fid"]["high"]


def test_verdicts_are_computed_from_the_intervals(cards):
    verdict = scorecard.compare(cards, "perfect", "collapsed", scorecard.PARTIAL, "diversity", "diversity")
    assert "perfect is higher" in verdict and "intervals apart" in verdict
    same = scorecard.compare(cards, "perfect", "perfect", "full", "fidelity", "fidelity")
    assert "cannot be told apart" in same
    table = scorecard.format_table(cards).splitlines()
    assert len(table) == 4 and table[2].startswith("collapsed")


def test_the_unconditional_scorecard_tells_real_pictures_from_one_repeated_and_from_blobs():
    """Lesson 04's measure of a set of unconditional samples, on real renders (a perfect model), one render repeated
    (a collapsed one) and blurred renders (blobs)."""
    strict = judge.load_judge("single", version="v2")
    real = shapes.render(shapes.sample_scenes(48, "test", seed=7, version="v2"), 32)
    perfect = scorecard.score_unconditional(real, seed=0, judge=strict, resolution=32)
    collapsed = scorecard.score_unconditional(real[[0] * 48], seed=0, judge=strict, resolution=32)
    blobs = scorecard.score_unconditional(judge.blur(real, 1.5), seed=0, judge=strict, resolution=32)
    assert perfect["readable"] > 0.9 and 0.8 < perfect["diversity"] < 1.2, perfect
    assert perfect["fid"] < 2 * perfect["fid_floor"], perfect
    assert collapsed["diversity"] == 0 and collapsed["fid"] > 2 * perfect["fid"], collapsed
    assert blobs["readable"] < 0.2 and blobs["fid"] > 2 * perfect["fid"], blobs


def test_a_paired_verdict_separates_what_an_unpaired_one_cannot():
    hard_seed = [0.2, 0.5, 0.8]  # how readable each seed's noise happens to be, shared by both settings
    a = [{"m": h + 0.1} for h in hard_seed]
    b = [{"m": h} for h in hard_seed]
    assert "a is higher than b by 0.10" in scorecard.compare_paired(a, b, "m", ("a", "b"), "m")
    noisy = [{"m": h + 0.1 + e} for h, e in zip(hard_seed, (-0.2, 0.3, -0.1))]
    assert "cannot be told apart" in scorecard.compare_paired(a, noisy, "m", ("a", "b"), "m")
    assert "a is higher than b" in scorecard.compare_paired(b, a, "m", ("b", "a"), "m")  # either order
    unpaired = [metrics.interval95([r["m"] for r in rows]) for rows in (a, b)]
    assert metrics.overlaps(*unpaired), "seed to seed, the two settings' own intervals overlap"


def test_the_fid_calibration_ladder_rises_with_the_blur_and_places_a_model_on_it():
    cal = scorecard.fid_calibration(seeds=(0, 1), n_per_type=1, k=16, judge=judge.load_judge("single", version="v2"),
                                    upsample_fn=lambda low, seed: torch.nn.functional.interpolate(low, scale_factor=2))
    for group in ("full", scorecard.PARTIAL):
        rows = cal[group]
        assert set(rows) == {"floor", *(f"blur σ={b}" for b in scorecard.BLURS), "bicubic from 32", "upsampler from 32"}
        ladder = [rows[f"blur σ={b}"]["mean"] for b in scorecard.BLURS]
        # the same renders blurred more and more: each rung further from the real renders' features than the last (on
        # partial captions half a pixel of blur is lost in the floor's sampling noise: 484 vs 484 on seeds 2-3, so the
        # floor is compared with the full captions' ladder only: 46-71 vs 93-229 on seeds 0-7)
        assert ladder == sorted(ladder), (group, ladder)
    assert cal["full"]["floor"]["mean"] < cal["full"]["blur σ=0.5"]["mean"]
    floor, top = cal["full"]["floor"]["mean"], cal["full"][f"blur σ={scorecard.BLURS[-1]}"]["mean"]
    assert scorecard.blur_equivalent(cal, floor / 2).startswith("at most the floor")
    assert scorecard.blur_equivalent(cal, top * 2).startswith("worse than renders blurred by σ = 1 px")
    middle = (cal["full"]["blur σ=0.5"]["mean"] + cal["full"]["blur σ=0.8"]["mean"]) / 2
    assert scorecard.blur_equivalent(cal, middle).startswith("between renders blurred by σ = 0.5 and 0.8 px")
    assert "samples: m" in scorecard.format_calibration(cal, {"m": {g: {"fid": cal[g]["floor"]} for g in cal}})


def test_fid_calibration_measures_the_groups_asked_for_and_scores_a_reconstruction_like_any_row():
    from dalle2_lessons import upsampler

    seen = []

    def bicubic(low, seed):  # the same images as the "bicubic from 32" row: the same distance, to the digit
        seen.append((tuple(low.shape), seed))
        return upsampler.upsample(low, 64).clamp(-1, 1)

    cal = scorecard.fid_calibration(seeds=(0, 1), n_per_type=2, k=4, judge=judge.load_judge("single", version="v2"),
                                    blurs=(0.5,), groups=("full",), reconstruct_fn=bicubic)
    assert list(cal) == ["full"]
    assert set(cal["full"]) == {"floor", "blur σ=0.5", "bicubic from 32", "decoder + upsampler from real embeddings"}
    assert cal["full"]["decoder + upsampler from real embeddings"] == cal["full"]["bicubic from 32"]
    assert seen == [((8, 3, 32, 32), 0), ((8, 3, 32, 32), 1)]  # 2 full captions × K = 4 real 32-px renders per seed


def test_stage_generators_share_one_pipeline_run_and_differ_only_after_the_decoder():
    """The rows of the stage split see the same decoder samples: the pipeline runs once per (captions, seed), the
    bicubic row is those samples enlarged, the blurred row asks the upsampler to read them through its blur."""
    from types import SimpleNamespace

    from dalle2_lessons import upsampler

    calls, upsampled = [], []

    class FakePipe:
        def generate(self, texts, n, seed, progress, upsampler_steps, **kw):
            calls.append((tuple(texts), seed))
            g = torch.Generator().manual_seed(seed)
            low = torch.rand(len(texts), 3, 8, 8, generator=g) * 2 - 1
            return SimpleNamespace(low=low, images=-torch.ones(len(texts), 3, 16, 16))

        def upsample(self, low, steps, generator, input_blur):
            upsampled.append((low, input_blur))
            return torch.zeros(len(low), 3, 16, 16)

    gens = scorecard.stage_generators(FakePipe(), blurs=(0.5,), upsampler_steps=3, batch_size=2)
    texts = ["a", "b", "c"]
    finals = gens["decoder + upsampler"](texts, 1)
    bicubic = gens["decoder + bicubic"](texts, 1)
    blurred = gens["decoder + upsampler, input blurred σ=0.5"](texts, 1)
    assert calls == [(("a", "b"), 1000), (("c",), 1001)]  # one run, batched and seeded as pipeline_generator's
    assert torch.equal(finals, -torch.ones(3, 3, 16, 16)) and blurred.shape == (3, 3, 16, 16)
    low = torch.cat([FakePipe.generate(None, ["a", "b"], 1, 1000, False, 3).low,
                     FakePipe.generate(None, ["c"], 1, 1001, False, 3).low])
    assert torch.allclose(bicubic, upsampler.upsample(low, 16))
    assert torch.equal(upsampled[0][0], low) and upsampled[0][1] == 0.5  # the upsampler blurs its input itself
    gens["decoder + bicubic"](texts, 2)
    assert len(calls) == 2 + 2 + 2  # a new seed is a new run (the two direct calls above count too)
