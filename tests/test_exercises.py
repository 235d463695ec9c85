import torch

from dalle2_lessons import exercises
from dalle2_lessons.exercises import check_exercise, compare


def reference(x):
    return x * 2


def inputs(g):
    return (torch.randn(3, 4, generator=g),)


def test_pass_returns_learner_function(capsys):
    def mine(x):
        return x + x

    assert check_exercise("ex pass", mine, reference, inputs) is mine
    assert "✓ ex pass" in capsys.readouterr().out
    assert exercises.RESULTS["ex pass"] == "passed"


def test_not_done_hands_back_the_reference(capsys):
    def mine(x):
        raise NotImplementedError("ex todo")

    assert check_exercise("ex todo", mine, reference, inputs) is reference
    out = capsys.readouterr().out
    assert "not done yet" in out and "reference implementation" in out
    assert exercises.RESULTS["ex todo"] == "not done"


def test_wrong_shape_is_explained(capsys):
    assert check_exercise("ex shape", lambda x: (x * 2).T, reference, inputs) is reference
    out = capsys.readouterr().out
    assert "shape: expected (3, 4), got (4, 3)" in out and "✗ ex shape" in out


def test_wrong_values_are_located(capsys):
    def mine(x):
        y = x * 2
        y[1, 2] += 1
        return y

    check_exercise("ex values", mine, reference, inputs)
    assert "1 of 12 differ; first at index (1, 2)" in capsys.readouterr().out


def test_a_crash_is_reported_not_raised(capsys):
    assert check_exercise("ex crash", lambda x: x @ x, reference, inputs) is reference
    out = capsys.readouterr().out
    assert "raised RuntimeError" in out and "Tensor(3, 4)" in out


def test_compare_nested_and_dtype():
    assert compare({"a": [1.0, torch.ones(2)]}, {"a": [1.0, torch.ones(2)]}) is None
    assert "dtype" in str(compare(torch.ones(2), torch.ones(2, dtype=torch.long)))
    assert "keys" in str(compare({"a": 1}, {"b": 1}))
    assert "length" in str(compare([1, 2], [1]))
    assert "expected 'x', got 'y'" in str(compare("x", "y"))
    assert "NaN" in str(compare(torch.zeros(2), torch.tensor([0.0, float("nan")])))
    assert compare(0.1 + 0.2, 0.3) is None


def test_edge_cases_run_first_and_are_named_when_they_fail(capsys):
    """The bug that random inputs missed: a DDIM step that reads ᾱ at t_prev = -1 from the end of the table (ᾱ_999 ≈ 0)
    instead of 1. It matched the reference on random trials and gave NaN pixels on every sample."""
    from dalle2_lessons import diffusion

    schedule = diffusion.cosine_schedule(1000)

    def reference(eps, t, t_prev, x_t, eta, noise):
        return diffusion.ddim_step(eps, t, t_prev, x_t, schedule, eta=eta, noise=noise)

    def no_last_step(eps, t, t_prev, x_t, eta, noise):
        return reference(eps, t, t_prev % 1000, x_t, eta, noise)

    def random_inner_steps(g):  # what a careless checker draws: never t_prev = -1
        t = int(torch.randint(2, 1000, (1,), generator=g))
        eps, x_t, noise = torch.randn(3, 2, 3, 4, 4, generator=g)
        return eps, t, int(torch.randint(0, t, (1,), generator=g)), x_t, 0.0, noise

    assert check_exercise("ddim random only", no_last_step, reference, random_inner_steps, trials=10) is no_last_step
    last = {"the last step, t_prev = -1": lambda g: (torch.randn(2, 3, 4, 4, generator=g), 19, -1,
                                                     torch.randn(2, 3, 4, 4, generator=g), 0.0,
                                                     torch.randn(2, 3, 4, 4, generator=g))}
    capsys.readouterr()
    assert check_exercise("ddim with edges", no_last_step, reference, random_inner_steps, trials=10,
                          edge_cases=last) is reference
    out = capsys.readouterr().out
    assert "✗ ddim with edges" in out and "(the edge case 'the last step, t_prev = -1')" in out
    assert check_exercise("ddim right", reference, reference, random_inner_steps, edge_cases=last) is reference
    assert "and 1 edge case(s): the last step, t_prev = -1" in capsys.readouterr().out


def test_a_new_lesson_puts_back_what_the_last_one_replaced_and_starts_its_own_summary(capsys):
    from dalle2_lessons import clip, profiles

    original = clip.contrastive_loss
    mine = lambda u, v, s: original(u, v, s)  # noqa: E731
    exercises.use_in_package(clip, "contrastive_loss", mine)
    check_exercise("ex from lesson 01", mine, original,
                   lambda g: (torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), 10.0))
    assert clip.contrastive_loss is mine and "ex from lesson 01" in exercises.RESULTS
    profiles.setup_lesson(seed=0)  # the first cell of the next lesson
    assert clip.contrastive_loss is original and exercises.RESULTS == {}
    capsys.readouterr()
    exercises.summary()
    assert "lesson 01" not in capsys.readouterr().out
