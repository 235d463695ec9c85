import pytest
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
    right = _own(reference)
    assert check_exercise("ddim right", right, reference, random_inner_steps, edge_cases=last) is right
    assert "and 1 edge case(s): the last step, t_prev = -1" in capsys.readouterr().out


def _own(reference):
    """The reference, written out by a learner: a function of their notebook that calls nothing of the course."""
    return lambda *args: reference(*args)


def test_the_course_function_under_another_name_does_not_pass(capsys):
    from dalle2_lessons import diffusion

    my_q_sample = diffusion.q_sample  # "import it under my name"
    inputs = lambda g: (torch.randn(2, 3, 4, 4, generator=g), torch.tensor([3, 500]),  # noqa: E731
                        torch.randn(2, 3, 4, 4, generator=g), diffusion.cosine_schedule(1000))
    assert check_exercise("ex borrowed", my_q_sample, diffusion.q_sample, inputs) is diffusion.q_sample
    assert exercises.RESULTS["ex borrowed"] == "failed"
    assert "course's own q_sample, not yours" in capsys.readouterr().out


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


# ----------------------------------------------------------------------------------------------
# Each lesson's edge cases (dalle2_lessons.exercise_inputs, the very inputs the lesson's checker uses) catch a
# plausible bug that random inputs miss or catch only by luck; the reference passes them.


def _strict_shape_mask(shape, x, y):  # "<" where the definition says "<=": every outline point is left out
    ax, ay = x.abs(), y.abs()
    if shape == "circle":
        return x**2 + y**2 < 1.0
    if shape == "square":
        return torch.maximum(ax, ay) < 0.85
    if shape == "triangle":
        return (y < 0.8) & (ax < (y + 1.0) / 1.8)
    return ((ax < 0.33) & (ay < 1.0)) | ((ay < 0.33) & (ax < 1.0))


def _at_the_centre(colour, shape, size, position):  # "at the top", so surely "at the centre"?
    from dalle2_lessons import shapes

    phrase = "at the centre" if position == "centre" else shapes.LOCATION_PHRASES[position]
    return f"a {size} {colour} {shape} {phrase}"


def _four_attributes(predicted, target):  # an image is right when its 4 attributes are: the single tier's count
    hits = predicted == target
    return hits.float().mean(0), (hits.sum(1) == 4).float().mean()


_SIX_TOKENS = torch.ones(6, 6, dtype=torch.bool).tril()  # a causal mask sized once, for the 6 tokens of the trials


def _fixed_size_causal(q, k, v, causal=False):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        t = scores.shape[-1]
        scores = scores.masked_fill(~_SIX_TOKENS[:t, :t], float("-inf"))
    return scores.softmax(-1) @ v


def _pad_the_last_n(tokens, stop_ids, pad_id=0):  # row[-n:] = pad: with n = 0 that is the whole row
    out = tokens.clone()
    for i, row in enumerate(tokens):
        kept = row[~torch.isin(row, stop_ids)]
        out[i, : len(kept)] = kept
        out[i, -(len(row) - len(kept)):] = pad_id
    return out


def _unclamped_mean(x, mask):  # 0 / 0 for a row with nothing to average
    weight = mask.unsqueeze(-1).to(x.dtype)
    return (x * weight).sum(1) / weight.sum(1)


def _ties_lose(similarity):  # a tie counted as a miss instead of half
    own, other = similarity[:, [0, 1], [0, 1]], similarity[:, [0, 1], [1, 0]]
    return float((own > other).float().mean())


def _toy_model(x, t, c):  # lesson 05's
    return torch.tanh(x * c.mean(1)[:, None, None, None] + t[:, None, None, None] / 1000) + c[:, :1, None, None]


def _sin_cos_swapped(v, t, x_t, schedule):  # the roles of √ᾱ and √(1 − ᾱ) exchanged: right only where ᾱ = 1/2
    a = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    return (1 - a).sqrt() * x_t - a.sqrt() * v, a.sqrt() * x_t + (1 - a).sqrt() * v


def _halves_swapped(model, x, t, c, scale):  # the unconditional half first: right only where scale = 0.5
    eps_u, eps_c = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)])).chunk(2)
    return eps_u + scale * (eps_c - eps_u)


def _no_self(token_mask):  # the prior's mask without "every position may see itself"
    b, n = token_mask.shape
    keys = torch.cat([token_mask, torch.ones(b, 4, dtype=torch.bool)], 1)
    return (torch.ones(n + 4, n + 4, dtype=torch.bool).tril() & keys[:, None, :])[:, None]


def _squeezed_pick(candidates, text_emb):
    best = (candidates * text_emb[:, None]).sum(-1).squeeze().argmax(dim=1)  # (B, K) → (K,) or (B,) when one is 1
    return candidates[torch.arange(len(candidates)), best]


def _reference_attention(q, k, v, ck, cv, context_mask):  # lesson 07's
    import torch.nn.functional as F

    visible = torch.cat([torch.ones(q.shape[0], k.shape[2], dtype=torch.bool), context_mask], dim=1)
    keys, values = torch.cat([k, ck], 2), torch.cat([v, cv], 2)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible[:, None, None, :])


def _context_unmasked(q, k, v, ck, cv, context_mask):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, torch.cat([k, ck], 2), torch.cat([v, cv], 2))


def _unclamped_blur(images, sigma):  # exp(-x²/0) at σ = 0: NaN
    import torch.nn.functional as F

    x = torch.arange(-2, 3, dtype=images.dtype)
    k = torch.exp(-x[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)
    b, c, h, w = images.shape
    kernel = (k[:, :, None] * k[:, None, :]).repeat_interleave(c, 0)[:, None]
    padded = F.pad(images.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="replicate")
    return F.conv2d(padded, kernel, groups=b * c).reshape(b, c, h, w)


def _reference_crops(a, b, size, generator):  # lesson 08's: replay the generator from its seed
    from dalle2_lessons import upsampler

    return upsampler.random_crops(a, b, size, torch.Generator().manual_seed(generator.initial_seed()))


def _crops_off_by_one(a, b, size, generator):  # offsets 0 … R - size - 1: the window never touches the far border
    r = a.shape[-1]
    ys, xs = (torch.randint(r - size, (len(a),), generator=generator) for _ in range(2))
    crop = lambda x: torch.stack([x[i, :, y:y + size, x_:x_ + size] for i, (y, x_) in enumerate(zip(ys, xs))])  # noqa: E731
    return crop(a), crop(b)


def _direction_reversed(z_image, text_from, text_to, w):
    import torch.nn.functional as F

    from dalle2_lessons import unclip

    return unclip.slerp(z_image, F.normalize(text_from - text_to, dim=-1).expand_as(z_image), w)


def _ties_dominate(scores):  # "at least as good everywhere" taken for "better"
    return (scores[None, :, :] >= scores[:, None, :]).all(-1).sum(1) > 1


def _squeeze_pixels(pixels, size=32):  # .squeeze() to drop a channel axis of 1 drops N = 1 too
    import numpy as np

    from dalle2_lessons import own_data

    x = torch.as_tensor(np.asarray(pixels)).squeeze()
    return own_data.to_course_images(x.numpy(), size)


def _nan_at_zero(readings, n_values):
    """The entropy with log 0 left in: NaN wherever a value never occurs."""
    p = torch.nn.functional.one_hot(readings.long(), n_values).double().mean(-2)
    return -(p * p.log()).sum(-1)


def _squeezed_predict(image_emb, class_emb):
    import torch.nn.functional as F

    return (F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T).squeeze().argmax(-1)


def _inverted_condition_dropout(c, p_uncond, generator):  # keeps with probability p: right only at p = 0.5
    return c * (torch.rand(len(c), generator=generator) < p_uncond).to(c)[:, None]


def _inverted_dropouts(z, token_mask, p_image, p_caption, generator):
    keep_z = torch.rand(len(z), generator=generator) < p_image
    keep_c = torch.rand(len(z), generator=generator) < p_caption
    return z * keep_z.to(z)[:, None], token_mask & keep_c[:, None]


def test_stochastic_exercises_are_checked_by_statistics_not_by_one_order_of_draws(capsys):
    """Other right answers (torch.bernoulli, the caption's coins first) pass; one coin for both dropouts fails."""
    from dalle2_lessons import decoder, guidance
    from dalle2_lessons import exercise_inputs as ei

    def bernoulli_caption_first(z, token_mask, p_image, p_caption, generator):
        keep_c = torch.bernoulli(torch.full((len(z),), 1 - p_caption), generator=generator).bool()
        keep_z = torch.bernoulli(torch.full((len(z),), 1 - p_image), generator=generator).bool()
        return z * keep_z.to(z)[:, None], token_mask & keep_c.to(token_mask.device)[:, None]

    def one_coin(z, token_mask, p_image, p_caption, generator):
        u = torch.rand(len(z), generator=generator).to(z.device)
        return z * (u >= p_image)[:, None], token_mask & (u >= p_caption)[:, None]

    reference = ei.dropout_statistics(decoder.drop_conditions)
    assert check_exercise("07-2 bernoulli", ei.dropout_statistics(bernoulli_caption_first), reference,
                          **ei.dropout_rates()) is bernoulli_caption_first
    assert check_exercise("07-2 one coin", ei.dropout_statistics(one_coin), reference,
                          **ei.dropout_rates()) is decoder.drop_conditions
    assert "0 when independent" in capsys.readouterr().out
    assert check_exercise("07-2 borrowed", ei.dropout_statistics(decoder.drop_conditions), reference,
                          **ei.dropout_rates()) is decoder.drop_conditions
    assert exercises.RESULTS["07-2 borrowed"] == "failed"

    def per_entry(c, p, generator):  # drops entries, not whole rows
        return c * (torch.rand(c.shape, generator=generator) >= p).to(c.device)

    assert check_exercise("05-1 per entry", ei.condition_dropout_statistics(per_entry),
                          ei.condition_dropout_statistics(guidance.drop_condition),
                          **ei.condition_dropout_rates()) is guidance.drop_condition


def _chance_of_readable_only(read, truth, n_values):  # frequencies among readable images only: NaN if all refused
    out = []
    for p, n in enumerate(n_values):
        r = read[:, p][read[:, p] >= 0].double()
        out.append(sum((r == v).double().mean() * (truth[:, p] == v).double().mean() for v in range(n)))
    return torch.stack(out).float()


def _direction_of_the_mean(low, high):  # the sign of the mean, not of the interval
    return "higher" if low + high > 0 else "lower" if low + high < 0 else "cannot tell"


def _target_counted_as_rest(read, truth, target, new_value):  # "the rest" includes the edited property itself
    rows = torch.arange(len(read))
    return read[rows, target] == new_value, (read == truth).all(dim=1)


def _edge_table():
    """(exercise, its inputs, the reference, a plausible bug, extra keyword arguments of check_exercise)."""
    from dalle2_lessons import claims, decoder, diffusion, families, guidance, judge, metrics, own_data, own_unclip
    from dalle2_lessons import exercise_inputs as ei
    from dalle2_lessons import prior
    from dalle2_lessons import shapes, text_encoders
    from dalle2_lessons import tokenizer, transformer, unclip, upsampler

    tok = tokenizer.Tokenizer()
    return {
        "00-1 shape_mask": (ei.shape_mask, shapes.shape_mask, _strict_shape_mask, {"trials": 8}),
        "00-2 caption template": (ei.caption_template, shapes.caption_single, _at_the_centre, {"trials": 20}),
        "00-3 scorecard": (ei.scorecard, judge.accuracies, _four_attributes, {}),
        "01-1 attention": (ei.attention, transformer.scaled_dot_product_attention, _fixed_size_causal, {"trials": 8}),
        "02-1 stop words": (lambda: ei.stop_word_filter(tok, text_encoders.stop_word_ids(tok)),
                            text_encoders.drop_stop_words, _pad_the_last_n, {}),
        "02-2 masked mean": (ei.masked_mean, text_encoders.masked_mean, _unclamped_mean, {}),
        "02-3 pair accuracy": (ei.pair_accuracy, text_encoders.pair_accuracy, _ties_lose, {}),
        "05-2 from v": (lambda: ei.x0_and_eps_from_v(diffusion.cosine_schedule()), guidance.x0_and_eps_from_v,
                        _sin_cos_swapped, {}),
        "05-3 guidance": (lambda: ei.guided_eps(_toy_model), guidance.guided_eps, _halves_swapped, {"trials": 8}),
        "06-1 prior mask": (ei.prior_attention_mask, prior.attention_mask,
                            _no_self, {}),
        "06-3 pick best": (ei.pick_best, prior.pick_best, _squeezed_pick, {}),
        "07-1 context attention": (ei.context_attention, _reference_attention, _context_unmasked, {}),
        "08-1 blur": (ei.gaussian_blur, upsampler.gaussian_blur, _unclamped_blur, {}),
        "05-1 condition dropout": (ei.condition_dropout_rates, ei.condition_dropout_statistics(guidance.drop_condition),
                                   ei.condition_dropout_statistics(_inverted_condition_dropout), {}),
        "07-2 dropouts": (ei.dropout_rates, ei.dropout_statistics(decoder.drop_conditions),
                          ei.dropout_statistics(_inverted_dropouts), {}),
        "08-2 crops": (ei.random_crops, _reference_crops, _crops_off_by_one, {}),
        "09-2 text diff": (ei.text_diff, unclip.text_diff, _direction_reversed, {}),
        "13-1 entropy": (ei.attribute_entropy, metrics.attribute_entropy, _nan_at_zero, {"trials": 8}),
        "13-2 dominated": (ei.dominated, families.dominated, _ties_dominate, {"trials": 12}),
        "14-1 pixels": (ei.to_course_images, own_data.to_course_images, _squeeze_pixels, {"trials": 8}),
        "14-2 zero-shot": (ei.zero_shot_predict, own_unclip.zero_shot_predict, _squeezed_predict, {"trials": 8}),
        "15-1 chance": (ei.chance_agreement, claims.agreement_by_chance, _chance_of_readable_only, {}),
        "15-2 direction": (ei.direction, claims.direction, _direction_of_the_mean, {}),
        "15-3 edit outcomes": (ei.edit_outcomes, claims.edit_outcomes, _target_counted_as_rest, {}),
    }


EDGE_EXERCISES = ["00-1 shape_mask", "00-2 caption template", "00-3 scorecard", "01-1 attention", "02-1 stop words",
                  "02-2 masked mean", "02-3 pair accuracy", "05-1 condition dropout", "05-2 from v", "05-3 guidance",
                  "07-2 dropouts", "06-1 prior mask", "06-3 pick best",
                  "07-1 context attention", "08-1 blur", "08-2 crops", "09-2 text diff", "13-1 entropy",
                  "13-2 dominated", "14-1 pixels", "14-2 zero-shot", "15-1 chance", "15-2 direction",
                  "15-3 edit outcomes"]


@pytest.mark.parametrize("exercise", EDGE_EXERCISES)
def test_the_lessons_edge_cases_catch_a_boundary_bug(exercise, capsys):
    inputs, reference, bug, kwargs = _edge_table()[exercise]
    assert check_exercise(f"{exercise} (bug)", bug, reference, **inputs(), **kwargs) is getattr(reference, "wraps",
                                                                                                reference)
    out = capsys.readouterr().out
    assert f"✗ {exercise} (bug)" in out and "(the edge case " in out, out
    assert check_exercise(f"{exercise} (right)", _own(reference), reference, **inputs(), **kwargs) is not reference
    assert exercises.RESULTS[f"{exercise} (right)"] == "passed"
    assert "edge case(s): " in capsys.readouterr().out


def test_the_table_covers_every_exercise_with_edge_cases():
    from dalle2_lessons import exercise_inputs

    assert sorted(_edge_table()) == sorted(EDGE_EXERCISES)
    public = [n for n, f in vars(exercise_inputs).items() if callable(f) and f.__module__ == exercise_inputs.__name__
              and not n.startswith("_") and not n.endswith("_statistics")]  # probes, not inputs
    assert len(public) == len(EDGE_EXERCISES), public


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "cross"])
def test_every_outline_point_is_inside_and_a_strict_test_misses_it(shape):
    from dalle2_lessons import shapes
    from dalle2_lessons.exercise_inputs import OUTLINES

    x, y = torch.tensor(OUTLINES[shape]).T
    assert shapes.shape_mask(shape, x, y).all() and not _strict_shape_mask(shape, x, y).any()


def test_a_function_right_on_the_cpu_but_wrong_on_a_gpu_fails_without_a_gpu(capsys):
    """What a GPU run of lessons 05 and 07 found: the coins drawn with the (CPU) generator multiplied a CUDA tensor.
    The checker runs on the CPU, so it tries both functions once more on the meta device, which mixes with CPU
    tensors as CUDA does."""
    from dalle2_lessons import guidance
    from dalle2_lessons import exercise_inputs as ei

    def cpu_only(c, p_uncond, generator):  # lesson 05's first solution: right values, the coins left on the CPU
        keep = torch.rand(len(c), generator=generator) >= p_uncond
        return c * keep.to(c.dtype)[:, None]

    def anywhere(c, p_uncond, generator):
        keep = torch.rand(len(c), generator=generator) >= p_uncond
        return c * keep.to(c.device, c.dtype)[:, None]

    reference = ei.condition_dropout_statistics(guidance.drop_condition)
    assert check_exercise("05-1 cpu only", ei.condition_dropout_statistics(cpu_only), reference,
                          **ei.condition_dropout_rates()) is guidance.drop_condition
    out = capsys.readouterr().out
    assert "✗ 05-1 cpu only: right on the CPU, but it would fail on a GPU" in out and "device=x.device" in out
    assert check_exercise("05-1 anywhere", ei.condition_dropout_statistics(anywhere), reference,
                          **ei.condition_dropout_rates()) is anywhere

    def mask_on_cpu(x, keep):  # a new tensor made without device=
        return torch.where(torch.cat([torch.ones(len(x), 1, dtype=torch.bool), keep], 1), x, 0.0)

    def mask_here(x, keep):
        return torch.where(torch.cat([torch.ones(len(x), 1, dtype=torch.bool, device=x.device), keep], 1), x, 0.0)

    inputs = lambda g: (torch.randn(3, 4, generator=g), torch.rand(3, 3, generator=g) < 0.5)  # noqa: E731
    assert check_exercise("mask cpu", mask_on_cpu, _own(mask_here), inputs) is not mask_on_cpu
    assert check_exercise("mask here", mask_here, _own(mask_here), inputs) is mask_here

    def returns_cpu(x):
        return torch.zeros(x.shape) + 1.0

    assert exercises.device_problem(returns_cpu, lambda x: torch.zeros_like(x) + 1.0, (torch.ones(2),)) is not None

    def needs_values(x):  # .item() has no value on the meta device: the check cannot tell, so it says nothing
        return x * float(x.sum().item())

    assert exercises.device_problem(needs_values, needs_values, (torch.ones(2),)) is None
