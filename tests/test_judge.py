import math

import pytest
import torch

from dalle2_lessons import judge, shapes

N = 1_000  # clean renders per split and resolution


@pytest.fixture(scope="module", params=list(shapes.TIERS))
def tier_judge(request):
    return request.param, judge.load_judge(request.param)


def test_accuracy_at_least_99_percent_on_clean_heldout_renders(tier_judge, measured):
    tier, j = tier_judge
    results = judge.evaluate_judge(j, n=N, resolutions=(32, 64), splits=("test", "heldout"))
    for key, acc in results.items():
        print(f"judge-{tier} {key}: " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    # at 64 px, the size it reads, every clean render is read (measured 1.000); at 32 px, upsampled, the strict judge
    # refuses a few (measured 0.977-0.994 over 256-2,000 renders per split), and a refusal is wrong on every attribute
    for key, acc in results.items():
        bound = 0.99 if key.endswith("@64") else 0.96
        for name in shapes.TIERS[tier]:
            assert measured(f"{key} {name}", acc[name]) >= bound, (
                f"judge-{tier} {key}: {name} accuracy {acc[name]:.4f} < {bound}")


def test_score_reports_every_attribute_and_all_correct(tier_judge):
    tier, j = tier_judge
    ds = shapes.ShapesDataset("test", tier, n=200, resolution=32)
    report = j.score(ds.images, ds.attrs)
    assert set(report.accuracy) == set(shapes.TIERS[tier]) and report.n == 200
    assert report.all_correct <= min(report.accuracy.values())
    shuffled = j.score(ds.images, ds.attrs.roll(1, dims=0))
    assert shuffled.all_correct < 0.2, "the judge must not agree with captions of other images"
    assert "all correct" in str(report)


def test_judge_accepts_any_resolution():
    j = judge.load_judge("single")
    for r in (16, 24, 32, 64):
        assert j.predict(torch.zeros(2, 3, r, r)).shape == (2, 4)


def test_accuracies():
    pred = torch.tensor([[0, 1], [0, 2], [1, 1], [0, 1]])
    target = torch.tensor([[0, 1], [0, 1], [0, 1], [0, 1]])
    per, all_right = judge.accuracies(pred, target)
    assert per.tolist() == [0.75, 0.75] and all_right.item() == 0.5
    with pytest.raises(ValueError, match="differ in shape"):
        judge.accuracies(pred, target[:, :1])


def test_augment_keeps_range_and_shape():
    x = shapes.render(shapes.sample_scenes(32, "judge"), 16)
    y = judge.augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def test_training_reduces_the_loss(measured):
    _, losses = judge.train_judge("single", steps=30, batch_size=32, width=8, progress=False)
    assert measured("loss ratio", sum(losses[-5:]) / sum(losses[:5])) < 0.8  # v2: measured 0.681 (v1: 0.631-0.632)


def test_readable_on_renders_not_on_noise_or_blank_images(measured):
    j = judge.load_judge("single")
    clean = shapes.render(shapes.sample_scenes(256, "test"), 64)
    noise = torch.randn(64, 3, 64, 64, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    blank = -torch.ones(8, 3, 64, 64)
    assert j.confidence(clean).shape == (256,)
    assert measured("readable", j.readable(clean).float().mean()) > 0.98  # measured 1.000
    assert judge.plausible(shapes.render(shapes.sample_scenes(256, "test", "relation"), 64), around=True).all()
    assert not j.readable(noise).any() and not j.readable(blank).any()
    # why the plausibility test is needed: confidence alone is fooled by noise
    print(f"judge 'sure' on {(j.confidence(noise) >= 0.9).float().mean():.0%} of pure-noise images")


# ----------------------------------------------------------------------------------------------
# The strict v2 judge (issue #21): it reads 64 px and refuses what it cannot read.


@pytest.fixture(scope="module")
def strict_judge():
    return judge.load_judge("single", version="v2")


def test_v2_judge_reads_clean_renders_and_refuses_blurred_or_squeezed_ones(strict_judge, measured):
    rates = judge.degraded_readable(strict_judge, n=N)
    print("readable:", "  ".join(f"{k} {v:.4f}" for k, v in rates.items()))
    # measured when it was built (this test's 1000 scenes): clean@64 1.000, clean@32 0.992, blur1.5 0.059, the rest 0
    assert measured("clean@64", rates["clean@64"]) >= 0.99 and measured("clean@32", rates["clean@32"]) >= 0.98
    for case in ("blur1.5", "blur2", "squeeze16", "squeeze12"):  # a sharp fall, not a gentle slope
        assert measured(case, rates[case]) <= 0.15, f"the strict judge reads {rates[case]:.1%} of {case} images"


def test_v2_judge_is_right_on_clean_renders_at_both_resolutions(strict_judge, measured):
    for key, acc in judge.evaluate_judge(strict_judge, n=N).items():  # measured 0.9975-1.000 when it was built
        assert measured(f"{key} all", acc["all"]) >= (0.99 if key.endswith("@64") else 0.98), f"{key}: {acc}"


def test_v2_verdict_marks_unreadable_images_and_scores_them_wrong(strict_judge):
    scenes = shapes.sample_scenes(64, "test", version="v2")
    clean, attrs = shapes.render(scenes, 64), torch.from_numpy(scenes.attrs)
    noise = torch.rand_like(clean) * 2 - 1
    verdict = strict_judge.verdict(torch.cat([clean, judge.blur(clean, 2.5), noise]))
    assert (verdict[:64] >= 0).float().mean() >= 0.95 and (verdict[64:] == -1).float().mean() >= 0.9
    report = strict_judge.score(torch.cat([clean, noise]), torch.cat([attrs, attrs]))
    assert report.all_correct <= 0.5 + 1e-6 and 0.45 <= report.unreadable <= 0.55 and "unreadable" in str(report)


def test_verdict_on_reads_the_colours_of_a_blur_the_strict_verdict_refuses():
    # Measured (256 relation test scenes at 64 px): strict readable 1.000 / 0.016 / 0 / 0 on clean, blur σ = 1.5,
    # noise, blank; the colours and arrangement alone read 1.000 / 1.000 / 0 / 0, every read one right.
    from dalle2_lessons.binding import COLOUR_READING

    relation_judge = judge.load_judge("relation", version="v2")
    scenes = shapes.sample_scenes(256, "test", "relation", seed=5, version="v2")
    clean, attrs = shapes.render(scenes, 64), torch.from_numpy(scenes.attrs)[:, [0, 2, 3]]
    blurred = judge.blur(clean, 1.5)
    assert (relation_judge.verdict(blurred)[:, 0] >= 0).float().mean() <= 0.1
    for images in (clean, blurred):
        assert (relation_judge.verdict_on(images, COLOUR_READING) == attrs).all(1).float().mean() >= 0.95
    for images in (torch.rand_like(clean) * 2 - 1, -torch.ones_like(clean)):
        assert (relation_judge.verdict_on(images, COLOUR_READING) == -1).all()


def test_judge_report_scores_only_the_mentioned_attributes():
    target = torch.tensor([[0, 1, 0, 4], [2, 3, 1, 0], [1, 1, 1, 1]])
    predicted = torch.tensor([[0, 2, 0, 4], [2, 0, 0, 0], [-1, -1, -1, -1]])
    mentioned = torch.tensor([[True, False, True, True], [True, False, False, True], [True, True, False, False]])
    report = judge.judge_report(predicted, target, shapes.TIERS["single"], mentioned)
    assert report.accuracy["colour"] == pytest.approx(2 / 3) and report.accuracy["shape"] == 0.0
    assert report.accuracy["size"] == 1.0 and report.accuracy["position"] == 1.0
    assert report.all_correct == pytest.approx(2 / 3) and report.unreadable == pytest.approx(1 / 3)
    nobody = judge.judge_report(predicted, target, shapes.TIERS["single"], torch.zeros(3, 4, dtype=torch.bool))
    assert math.isnan(nobody.accuracy["colour"]) and nobody.all_correct == 1.0


def test_blur_and_squeeze_keep_flat_images_flat_and_blur_is_a_gaussian():
    flat = torch.full((2, 3, 64, 64), 0.3)
    assert torch.allclose(judge.blur(flat, 2.0), flat, atol=1e-6) and torch.allclose(judge.squeeze(flat, 16), flat)
    dot = torch.zeros(1, 1, 33, 33)
    dot[..., 16, 16] = 1
    out = judge.blur(dot, torch.tensor([2.0]))[0, 0]
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)  # mass is kept
    xs = torch.arange(33.0) - 16
    assert float((out.sum(0) * xs**2).sum()) == pytest.approx(4.0, rel=0.02)  # variance σ² along x
    assert torch.allclose(out, out.T, atol=1e-7)  # the same along y
