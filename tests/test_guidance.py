import json
from dataclasses import replace

import pytest
import torch

from dalle2_lessons import checkpoints, diffusion, guidance, shapes
from dalle2_lessons.clip import load_clip
from dalle2_lessons.guidance import ConditionalConfig, ConditionalUNet
from dalle2_lessons.unet import UNetConfig

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), attention_levels=(1,), cond_dim=8)


def test_drop_condition_rows_are_kept_or_zeroed_at_the_right_rate():
    c = torch.randn(4000, 8)
    gen = torch.Generator().manual_seed(0)
    dropped = guidance.drop_condition(c, 0.25, gen)
    zero = (dropped == 0).all(1)
    kept = (dropped == c).all(1)
    assert bool((zero | kept).all())
    assert abs(zero.float().mean().item() - 0.25) < 0.03
    assert torch.equal(guidance.drop_condition(c, 0.0), c)
    assert bool((guidance.drop_condition(c, 1.0) == 0).all())


class _Recorder:
    """ε(x, t, c) = x + c·1: linear in the condition, and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, c):
        self.calls += 1
        return x + c.sum(1)[:, None, None, None]


def test_guided_eps_interpolates_and_extrapolates_in_one_call():
    x, t, c = torch.randn(3, 3, 4, 4), torch.tensor([5, 6, 7]), torch.randn(3, 2)
    model = _Recorder()
    eps_u, eps_c = x, x + c.sum(1)[:, None, None, None]
    torch.testing.assert_close(guidance.guided_eps(model, x, t, c, 0.0), eps_u)
    assert model.calls == 1
    torch.testing.assert_close(guidance.guided_eps(model, x, t, c, 1.0), eps_c)
    torch.testing.assert_close(guidance.guided_eps(model, x, t, c, 4.0), eps_u + 4 * (eps_c - eps_u))
    assert model.calls == 3


@pytest.mark.parametrize("condition", ["clip", "attributes"])
def test_conditional_unet_trains_and_samples(condition):
    torch.manual_seed(0)
    model = ConditionalUNet(ConditionalConfig(TINY, condition))
    for p in model.unet.parameters():  # zero-initialised output convs hide the condition at init: wake them
        p.data.add_(0.01 * torch.randn_like(p))
    attrs = torch.as_tensor(shapes.sample_scenes(6, "train").attrs)
    cond = attrs if condition == "attributes" else torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    x0 = torch.rand(6, 3, 16, 16) * 2 - 1
    loss = guidance.conditional_loss(model, x0, cond, diffusion.cosine_schedule(), 0.5,
                                     torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    if condition == "attributes":  # the learned vectors get gradients through the U-Net
        assert model.attributes.tables[0].weight.grad.abs().sum() > 0
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = guidance.sample(model, cond[:2], diffusion.cosine_schedule(), 3.0, steps=4, generator=gen())
    b = guidance.sample(model, cond[:2], diffusion.cosine_schedule(), 3.0, steps=4, generator=gen())
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_config_round_trips_through_json():
    cfg = ConditionalConfig(TINY, "attributes", prediction_type="v_prediction")
    assert ConditionalConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = ConditionalConfig(TINY).to_dict()
    del old["prediction_type"]  # a checkpoint saved before v-prediction was an ε-model
    assert ConditionalConfig.from_dict(old).prediction_type == "epsilon"


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_sampler_gets_epsilon_whatever_the_model_predicts(prediction_type):
    """A network that knows the answer (the ε, or the v, that x_t implies with x_0 = x*) must hand the samplers the
    true ε at every step, whichever it predicts; a v passed on as if it were ε is wrong by a lot at mid noise."""
    schedule = diffusion.cosine_schedule()
    target, eps = torch.rand(2, 3, 16, 16) * 1.6 - 0.8, torch.randn(2, 3, 16, 16)
    model = ConditionalUNet(ConditionalConfig(TINY, prediction_type=prediction_type))

    def oracle(x, t, c):
        x0, e = target.repeat(len(x) // 2, 1, 1, 1), eps.repeat(len(x) // 2, 1, 1, 1)
        return e if prediction_type == "epsilon" else diffusion.velocity(x0, e, t, schedule)

    model.forward = oracle
    cond = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    for t in (10, 500, 900):
        x_t = diffusion.q_sample(target, torch.full((2,), t), eps, schedule)
        got = guidance.guided_eps_model(model, model.encode(cond), 3.0, schedule)(x_t, torch.full((2,), t))
        torch.testing.assert_close(got, eps, atol=1e-4, rtol=1e-4)



def test_shipped_text_diffusion_checkpoint_meets_the_lesson_target():
    """The course checkpoint, as lesson 05 and the unCLIP lessons load it: with guidance, most samples of unseen full
    test captions show all four attributes to the strict judge (measured 0.859-0.875 on seeds 7-9 with DDIM-25 and
    trailing spacing, 0.828-0.891 with leading; 64 captions give a binomial spread of about 0.045, so the bound sits
    two of those below the lowest)."""
    ckpt = checkpoints.load_checkpoint(checkpoints.versioned(guidance.CHECKPOINT, "v2"), checkpoints.shipped_dir())
    model = checkpoints.load_into(ConditionalUNet(ConditionalConfig.from_dict(ckpt.config)), ckpt).eval()
    cond, attrs, _ = guidance.eval_conditions("clip", 64, load_clip(version="v2"), seed=7, version="v2")
    report = guidance.evaluate(model, diffusion.cosine_schedule(), cond, attrs, scale=ckpt.metrics["best_scale"],
                               steps=25, version="v2")
    assert report.all_correct >= 0.72, report


@pytest.mark.slow
def test_course_recipe_reaches_the_target_when_retrained():
    """Retrains the course checkpoint's recipe (about 18 minutes on 2 cores) and checks the lesson's target."""
    curve = guidance.build(replace(guidance.PRESETS["cpu"], steps=1500), progress=False, eval_every=1500).curve
    assert curve[-1]["all"] >= 0.8, curve


def test_the_guidance_scale_is_picked_on_validation_captions_not_the_scored_ones(monkeypatch):
    from types import SimpleNamespace

    seen = {}

    def fake_evaluate(model, schedule, cond, attrs, scale, steps=50, **kw):
        seen.setdefault("attrs", attrs)
        return SimpleNamespace(all_correct={1.0: 0.5, 3.0: 0.9, 8.0: 0.7}[scale])

    monkeypatch.setattr(guidance, "evaluate", fake_evaluate)
    best, rates = guidance.pick_scale(None, None, (1.0, 3.0, 8.0), n=32, condition="attributes")
    assert best == 3.0 and rates == {"1": 0.5, "3": 0.9, "8": 0.7}
    _, scored, _ = guidance.eval_conditions("attributes", 32)  # the test captions builders and lessons score
    assert not torch.equal(seen["attrs"], scored), "validation captions must not be the scored test captions"
