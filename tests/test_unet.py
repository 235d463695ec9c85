import torch

from dalle2_lessons import diffusion, training
from dalle2_lessons.unet import UNet, UNetConfig, timestep_embedding


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 1, 999]), 32)
    assert e.shape == (3, 32)
    torch.testing.assert_close(e[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    assert (e[1] - e[2]).abs().sum() > 1


def test_unet_shapes_size_and_conditioning():
    torch.manual_seed(0)
    net = UNet(UNetConfig())
    n = sum(p.numel() for p in net.parameters())
    assert 1_000_000 <= n <= 2_000_000, n
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    assert net(x, t).shape == x.shape
    cond_net = UNet(UNetConfig(cond_dim=8, base_channels=16))
    a = cond_net(x, t, torch.zeros(2, 8))
    b = cond_net(x, t, torch.ones(2, 8))
    assert a.shape == x.shape
    for p in cond_net.parameters():  # zero-initialised output convs hide the condition at init: wake them
        p.data.add_(0.01 * torch.randn_like(p))
    assert not torch.allclose(cond_net(x, t, torch.zeros(2, 8)), cond_net(x, t, torch.ones(2, 8)))
    del a, b


def test_training_lowers_the_diffusion_loss_and_samplers_run(measured):
    torch.manual_seed(0)
    images = torch.zeros(64, 3, 8, 8) - 1
    images[:, :, 2:6, 2:6] = 1  # one white square: easy to learn
    net = UNet(UNetConfig(resolution=8, base_channels=16, channel_mults=(1, 2), attention_levels=(1,)))
    sched = diffusion.cosine_schedule(100)
    ema, losses = training.train(net, lambda m, idx, g: diffusion.diffusion_loss(m, images[idx], sched, g), images,
                                 steps=60, batch_size=32, lr=3e-3, progress=False)
    assert measured("loss ratio", sum(losses[-10:]) / sum(losses[:10])) < 0.7  # measured 0.208 with every kernel set
    g = torch.Generator().manual_seed(0)
    x = diffusion.sample_ddim(ema.module, (4, 3, 8, 8), sched, steps=10, generator=g, progress=False)
    y = diffusion.sample_ddpm(ema.module, (4, 3, 8, 8), sched, generator=g, progress=False)
    assert x.shape == y.shape == (4, 3, 8, 8) and x.abs().max() <= 1 and y.abs().max() <= 1
    # DDIM with eta = 0 is deterministic given the starting noise
    z = torch.randn(4, 3, 8, 8, generator=g)
    a = diffusion.sample_ddim(ema.module, (4, 3, 8, 8), sched, steps=10, x_T=z, progress=False)
    b = diffusion.sample_ddim(ema.module, (4, 3, 8, 8), sched, steps=10, x_T=z, progress=False)
    torch.testing.assert_close(a, b)


def test_ema_warms_up_so_early_averages_forget_the_initial_weights():
    from torch.optim.swa_utils import AveragedModel

    net = torch.nn.Linear(1, 1, bias=False)
    net.weight.data.fill_(0.0)
    ema = AveragedModel(net, avg_fn=training.ema_update(0.995))
    for _ in range(300):
        net.weight.data.fill_(1.0)  # the weights jump away from their initial value and stay there
        ema.update_parameters(net)
    # a plain 0.995 EMA would still hold 0.995**300 ≈ 22% of the initial 0; the warmed-up one almost none
    assert ema.module.weight.item() > 0.97
    avg = torch.tensor(0.0)
    # d = 0.9 once warm
    assert abs(training.ema_update(0.9)(avg, torch.tensor(1.0), torch.tensor(10_000)).item() - 0.1) < 1e-6


def test_curve_measures_on_schedule_and_does_not_count_measuring_as_training():
    import time

    from torch.optim.swa_utils import AveragedModel

    ema = AveragedModel(torch.nn.Linear(1, 1))
    calls = []

    def measure(model):
        calls.append(model)
        time.sleep(0.2)  # slow measuring must not show up as training time
        return {"score": len(calls)}

    curve = training.Curve(steps=5, every=2, measure=measure)
    for step in range(1, 6):
        curve(step, ema)
    assert [p["step"] for p in curve.points] == [2, 4, 5] and curve.points[-1]["score"] == 3
    assert curve.train_seconds < 0.3  # three measurements slept 0.6 s; the loop itself takes about a millisecond
    assert calls[0] is ema.module
