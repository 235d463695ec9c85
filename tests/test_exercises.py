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
