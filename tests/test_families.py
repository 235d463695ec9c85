"""Lesson 13's comparison: the Pareto test, the common measurement, every family behind one signature."""

import torch

from dalle2_lessons import families, guidance, shapes


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


def test_measure_reports_every_number_and_real_renders_are_the_yardstick():
    def copy_the_real_thing(captions, generator):  # a "model" that renders the caption's first test scenes
        return shapes.render(shapes.sample_scenes(len(captions), "test", "single", seed=1))

    out = families.measure(copy_the_real_thing, n_eval=8, groups=2, per_caption=3)
    assert set(out) >= {"test", "heldout", "soft_pixels", "diversity", "seconds_per_image", "test_colour", "test_shape"}
    assert out["test"] == 1.0  # the judge reads real renders of the captions
    assert 0 <= out["heldout"] <= 1 and out["seconds_per_image"] > 0
    real = families.real_renders(2, 3)
    assert real.shape == (6, 3, 16, 16)
    assert guidance.diversity(real, 2) > 0  # fresh placement: renders of one caption differ


def test_every_family_draws_one_16px_image_per_caption():
    contestants = families.load_families(None, "cpu", diffusion_steps=2, prior_steps=2, candidates=2)
    assert len(contestants) == 6 and any("unCLIP" in n for n in contestants)
    captions = ["a small red circle in the top left", "a large blue square in the centre"]
    for f in contestants.values():
        images = f.sample(captions, torch.Generator().manual_seed(0))
        assert images.shape == (2, 3, 16, 16), f.name
        assert images.min() >= -1 - 1e-4 and images.max() <= 1 + 1e-4, f.name
        assert families.train_minutes(f) > 0, f.name
