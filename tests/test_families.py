"""Lesson 13's comparison: the Pareto test, the common measurement, every family behind one signature."""

import pytest
import torch

from dalle2_lessons import checkpoints, families, shapes


def test_dominated_by_hand():
    scores = torch.tensor([
        [0.9, 1.0],  # best on the first column
        [0.5, 2.0],  # best on the second
        [0.5, 1.0],  # beaten by both
        [0.9, 1.0],  # a tie with row 0 is not a defeat
    ])  # fmt: skip
    assert families.dominated(scores).tolist() == [False, False, True, False]
    assert families.dominated(torch.tensor([[1.0]])).tolist() == [False]


def test_dominated_matches_a_double_loop():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = torch.randint(0, 3, (6, 3), generator=g).float()
        expected = [any(bool((s[j] >= s[i]).all() and (s[j] > s[i]).any()) for j in range(6)) for i in range(6)]
        assert families.dominated(s).tolist() == expected


def _copy_the_real_thing(captions, generator):
    """A "model" that renders a real picture of every v2 caption it is given (at the 32-px base resolution)."""
    scenes = shapes.sample_scenes(2000, "test", "single", seed=1, version="v2")
    held = shapes.sample_scenes(2000, "heldout", "single", seed=1, version="v2")
    by_text = {}
    for s in (scenes, held):
        for i, texts in enumerate(zip(s.captions, s.full_captions)):
            for text in texts:
                by_text.setdefault(text, s[i:i + 1])
    picked = [by_text.get(c) for c in captions]
    assert all(p is not None for p in picked), "a caption the stand-in cannot draw"
    rng = int(torch.randint(1 << 30, (1,), generator=generator))
    return torch.cat([shapes.render(shapes.rejitter(p, seed=rng + i), 32) for i, p in enumerate(picked)])


def test_heldout_and_parameters_of_a_family_that_draws_real_pictures():
    fake = families.Family("renders", _copy_the_real_thing, ("none",), parts={"clip": torch.nn.Linear(2, 2),
                                                                              "model": torch.nn.Linear(3, 4)})
    interval, seconds = families.heldout(fake, n=8, seeds=(0, 1, 2), version="v2")
    assert interval.n == 3 and interval.low <= interval.mean <= interval.high and seconds > 0
    assert interval.mean >= 0.95, "the strict judge reads real 32-px renders of held-out captions"
    assert families.parameters(fake) == 3 * 4 + 4  # the CLIP is not counted


def test_every_v2_family_draws_one_32px_image_per_caption():
    contestants = families.load_families(None, "cpu", diffusion_steps=2, prior_steps=2, candidates=2, version="v2")
    assert len(contestants) == 6 and any("unCLIP" in n for n in contestants)
    captions = ["a small red circle in the top left", "something blue"]
    for f in contestants.values():
        images = f.sample(captions, torch.Generator().manual_seed(0))
        assert images.shape == (2, 3, 32, 32), f.name
        assert images.min() >= -1 - 1e-4 and images.max() <= 1 + 1e-4, f.name
        assert families.train_minutes(f) > 0 and families.parameters(f) > 0, f.name
        assert all(name.endswith("-v2") for name in f.checkpoints), f.name
    unclip_parts = [checkpoints.metrics_of(m) for part, m in contestants["unCLIP (prior + decoder)"].parts.items()
                    if part != "clip"]
    assert any("init" in r for r in unclip_parts), "the shipped decoder went on from an earlier run"
    both_runs = sum(r["train_seconds"] + r.get("init", {}).get("train_seconds", 0.0) for r in unclip_parts) / 60
    assert families.train_minutes(contestants["unCLIP (prior + decoder)"]) == pytest.approx(both_runs)
