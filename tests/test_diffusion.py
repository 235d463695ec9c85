"""Our diffusion maths against `diffusers`' schedulers, on the same inputs."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from dalle2_lessons import diffusion

SCHEDULES = {"linear": diffusion.linear_schedule, "squaredcos_cap_v2": diffusion.cosine_schedule}


def inputs(seed=0, shape=(4, 3, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1, torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_match_diffusers(name):
    ours = SCHEDULES[name]()
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name)
    torch.testing.assert_close(ours.betas, theirs.betas, rtol=0, atol=1e-7)
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_q_sample_matches_add_noise(name):
    x0, noise, _ = inputs()
    t = torch.tensor([0, 10, 500, 999])
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name).add_noise(x0, noise, t)
    torch.testing.assert_close(diffusion.q_sample(x0, t, noise, SCHEDULES[name]()), theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_matches_diffusers(name, t):
    x_t, eps, z = inputs(t)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, variance_type="fixed_small")
    sched.set_timesteps(1000)
    # diffusers draws the step's noise itself: draw the same numbers from the same generator
    theirs = sched.step(eps, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    ours, _ = diffusion.ddpm_step(eps, t, x_t, SCHEDULES[name](), noise=noise)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1000, 64, 50, 25, 10, 3])
def test_ddim_timesteps_match_diffusers_spacings(spacing, steps):
    sched = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    assert diffusion.ddim_timesteps(1000, steps, spacing) == sched.timesteps.tolist()


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("steps", [50, 25])
def test_ddim_step_matches_diffusers(name, eta, steps):
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(steps)
    ours_t = diffusion.ddim_timesteps(1000, steps)
    assert sched.timesteps.tolist() == ours_t
    for i in (0, len(ours_t) // 2, len(ours_t) - 1):
        t = ours_t[i]
        t_prev = ours_t[i + 1] if i + 1 < len(ours_t) else -1
        x_t, eps, z = inputs(i)
        theirs = sched.step(eps, t, x_t, eta=eta, variance_noise=z).prev_sample
        ours, _ = diffusion.ddim_step(eps, t, t_prev, x_t, SCHEDULES[name](), eta=eta, noise=z)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_ddim_clipping_recomputes_eps_like_glide():
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                          set_alpha_to_one=True)
    sched.set_timesteps(50)
    x_t, eps, _ = inputs(3)
    t = sched.timesteps[10].item()
    theirs = sched.step(eps * 3, t, x_t, eta=0.0, use_clipped_model_output=True).prev_sample
    ours, x0 = diffusion.ddim_step(eps * 3, t, t - 20, x_t, diffusion.cosine_schedule(), clip_x0=True)
    assert x0.abs().max() <= 1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_x0_prediction_steps_match_diffusers(name):
    """``prediction_type="sample"`` (a network that predicts x̂0, like lesson 06's prior) in both steps."""
    x_t, x0, z = inputs(5)
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, set_alpha_to_one=True,
                         prediction_type="sample")
    ddim.set_timesteps(25)  # 40 apart: 400 → 360
    theirs = ddim.step(x0, 400, x_t, eta=0.5, variance_noise=z).prev_sample
    ours, _ = diffusion.ddim_step(x0, 400, 360, x_t, SCHEDULES[name](), eta=0.5, noise=z, prediction_type="sample")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, variance_type="fixed_small",
                         prediction_type="sample")
    ddpm.set_timesteps(1000)
    theirs = ddpm.step(x0, 500, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    ours, _ = diffusion.ddpm_step(x0, 500, x_t, SCHEDULES[name](), noise=noise, prediction_type="sample")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_v_prediction_matches_diffusers(name):
    """``prediction_type="v_prediction"`` (the Shapes v2 decoder): the target and both steps."""
    x0, noise, z = inputs(6)
    t = torch.tensor([0, 10, 500, 999])
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, variance_type="fixed_small",
                         prediction_type="v_prediction")
    torch.testing.assert_close(diffusion.velocity(x0, noise, t, SCHEDULES[name]()),
                               ddpm.get_velocity(x0, noise, t), rtol=1e-5, atol=1e-6)
    x_t, v = noise, z
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=False, set_alpha_to_one=True,
                         prediction_type="v_prediction")
    ddim.set_timesteps(25)
    theirs = ddim.step(v, 400, x_t, eta=0.0).prev_sample
    ours, _ = diffusion.ddim_step(v, 400, 360, x_t, SCHEDULES[name](), prediction_type="v_prediction")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    ddpm.set_timesteps(1000)
    theirs = ddpm.step(v, 500, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    step_noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    ours, _ = diffusion.ddpm_step(v, 500, x_t, SCHEDULES[name](), noise=step_noise, prediction_type="v_prediction")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_v_prediction_loss_is_zero_for_the_true_velocity():
    """The loss asks for v: a network that returns the true velocity (it can: it sees x_t and t, and here x_0 is
    fixed) scores zero, one that returns the noise does not."""
    s = diffusion.cosine_schedule()
    x0 = torch.rand(3, 2, 4, 4) * 2 - 1

    def oracle(x_t, t):  # recover ε from x_t and the known x_0, then v
        eps = diffusion.predict_eps(x_t, t, x0, s)
        return diffusion.velocity(x0, eps, t, s)

    gen = torch.Generator().manual_seed(0)
    assert diffusion.diffusion_loss(oracle, x0, s, gen, "v_prediction") < 1e-8
    eps_net = lambda x_t, t: diffusion.predict_eps(x_t, t, x0, s)  # noqa: E731
    assert diffusion.diffusion_loss(eps_net, x0, s, torch.Generator().manual_seed(0), "epsilon") < 1e-8
    assert diffusion.diffusion_loss(eps_net, x0, s, torch.Generator().manual_seed(0), "v_prediction") > 1e-3


def test_samplers_clamp_only_when_asked():
    """An x̂0-predicting model that always answers 3 (outside an image's range): the last DDIM step lands on x̂0."""
    s = diffusion.cosine_schedule()
    x0_model = lambda x, t: torch.full_like(x, 3.0)  # noqa: E731
    free = diffusion.sample_ddim(x0_model, (2, 5), s, 4, progress=False, prediction_type="sample", clip_x0=False,
                                 clip_output=False)
    torch.testing.assert_close(free, torch.full((2, 5), 3.0))
    image = diffusion.sample_ddim(x0_model, (2, 5), s, 4, progress=False, prediction_type="sample")
    torch.testing.assert_close(image, torch.ones(2, 5))


def test_guide_makes_one_batched_call_and_scale_one_only_the_conditional():
    calls = []

    def model(x, c, unused):
        calls.append(len(x))
        assert unused is None  # a None argument pair stays None
        return x * c

    x, c = torch.randn(3, 4), torch.randn(3, 4)
    guided = diffusion.guide(model, (x, c, None), (x, torch.zeros_like(c), None), 2.5)
    torch.testing.assert_close(guided, 2.5 * x * c)  # the null condition's output here is 0
    assert calls == [6]
    torch.testing.assert_close(diffusion.guide(model, (x, c, None), (x, torch.zeros_like(c), None), 1.0), x * c)
    assert calls == [6, 3]


def test_forward_steps_compose_to_the_closed_form():
    """Iterating q(x_t | x_{t-1}) gives the same distribution as q(x_t | x_0): compare moments."""
    s = diffusion.linear_schedule()
    x0 = torch.full((20_000, 1, 1, 1), 0.8)
    g = torch.Generator().manual_seed(0)
    x = x0
    for t in range(300):
        x = diffusion.q_step(x, t, torch.randn(x.shape, generator=g), s)
    a = s.alphas_cumprod[299]
    assert x.mean().item() == pytest.approx((a.sqrt() * 0.8).item(), abs=0.02)
    assert x.std().item() == pytest.approx((1 - a).sqrt().item(), abs=0.02)


def test_reverse_formula_needs_the_exact_noise():
    s = diffusion.linear_schedule()
    x_prev, noise, other = inputs()
    x_t = diffusion.q_step(x_prev, 100, noise, s)
    torch.testing.assert_close(diffusion.reverse_formula(x_t, 100, noise, s), x_prev, rtol=1e-5, atol=1e-5)
    wrong = diffusion.reverse_formula(x_t, 100, other, s)
    assert (wrong - x_prev).abs().mean() > 0.05


def test_predict_x0_and_eps_invert_q_sample():
    s = diffusion.cosine_schedule()
    x0, noise, _ = inputs()
    t = torch.tensor([5, 50, 500, 900])
    x_t = diffusion.q_sample(x0, t, noise, s)
    torch.testing.assert_close(diffusion.predict_x0(x_t, t, noise, s), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(diffusion.predict_eps(x_t, t, x0, s), noise, rtol=1e-4, atol=1e-4)


def test_samplers_use_the_learners_predict_x0():
    # lesson 04 puts the learner's x̂_0 into the package (exercises.use_in_package): both steps must look it up
    from dalle2_lessons import exercises

    s = diffusion.cosine_schedule()
    calls = []
    original = diffusion.predict_x0

    def yours(x_t, t, eps, schedule):
        calls.append(t)
        return original(x_t, t, eps, schedule)

    x0, noise, _ = inputs()
    try:
        exercises.use_in_package(diffusion, "predict_x0", yours)
        diffusion.ddpm_step(noise, 500, x0, s, noise)
        diffusion.ddim_step(noise, 500, 460, x0, s)
    finally:
        exercises.start_lesson()
    assert calls == [500, 500]
    assert diffusion.predict_x0 is original, "start_lesson must put the package's function back"


def test_snr_falls_and_cosine_keeps_more_signal_midway():
    lin, cos = diffusion.linear_schedule(), diffusion.cosine_schedule()
    for s in (lin, cos):
        assert (s.snr()[1:] < s.snr()[:-1]).all()
    assert cos.alphas_cumprod[500] > lin.alphas_cumprod[500]
