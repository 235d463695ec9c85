import pytest
import torch

from dalle2_lessons import judge, shapes

N = 1_000  # clean renders per split and resolution


@pytest.fixture(scope="module", params=list(shapes.TIERS))
def tier_judge(request):
    return request.param, judge.load_judge(request.param)


def test_accuracy_at_least_99_percent_on_clean_heldout_renders(tier_judge, measured):
    tier, j = tier_judge
    results = judge.evaluate_judge(j, n=N, resolutions=(16, 32), splits=("test", "heldout"))
    for key, acc in results.items():
        print(f"judge-{tier} {key}: " + "  ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    for key, acc in results.items():  # lowest measured 0.996 over kernel sets (tests/conftest.py)
        for name in shapes.TIERS[tier]:
            assert measured(f"{key} {name}", acc[name]) >= 0.99, (
                f"judge-{tier} {key}: {name} accuracy {acc[name]:.4f} < 0.99")


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
    assert measured("loss ratio", sum(losses[-5:]) / sum(losses[:5])) < 0.8  # measured 0.631-0.632 over kernel sets


def test_readable_on_renders_not_on_noise_or_blank_images(measured):
    j = judge.load_judge("single")
    clean = shapes.render(shapes.sample_scenes(256, "test"), 16)
    noise = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    blank = -torch.ones(8, 3, 16, 16)
    assert j.confidence(clean).shape == (256,)
    # measured 0.996 (1 of 256) with every kernel set
    assert measured("readable", j.readable(clean).float().mean()) > 0.98
    assert judge.plausible(shapes.render(shapes.sample_scenes(256, "test", "relation"), 16)).all()
    assert not j.readable(noise).any() and not j.readable(blank).any()
    # why the plausibility test is needed: confidence alone is fooled by noise
    print(f"judge 'sure' on {(j.confidence(noise) >= 0.9).float().mean():.0%} of pure-noise images")
