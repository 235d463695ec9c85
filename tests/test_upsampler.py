import torch
import torch.nn.functional as F

from dalle2_lessons import diffusion, shapes, training, upsampler
from dalle2_lessons.unet import UNet, UNetConfig


def test_blur_keeps_the_mean_and_zero_width_is_the_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    torch.testing.assert_close(upsampler.gaussian_blur(x, torch.zeros(3)), x)
    y = upsampler.gaussian_blur(x, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(y[:, :, 4:-4, 4:-4].mean(), x.mean(), atol=0.02, rtol=0)
    assert y[2].std() < y[1].std() < y[0].std() < x[0].std()  # wider blur, smoother image
    assert upsampler.degrade(torch.rand(2, 3, 32, 32), 0.6, g).shape == (2, 3, 16, 16)


def test_downsampling_a_render_gives_the_render_the_decoder_learns_to_draw():
    # The upsampler trains on downsampled 64-px renders and upsamples the decoder's 32-px samples, which imitate 32-px
    # renders: the two must be the same kind of image. Area averaging matches the renderer's anti-aliasing (mean
    # |difference| 0.0027-0.0029 on seeds 0-2, left by the renderer's finer supersampling at 64 px); the bilinear
    # anti-aliased filter the upsampler used to train on is blurrier (0.0053-0.0055, about a Gaussian of σ = 0.5 px).
    scenes = shapes.sample_scenes(256, "test", "single", seed=0, version="v2")
    high, low = shapes.render(scenes, 64), shapes.render(scenes, 32)
    area = float((upsampler.downsample(high) - low).abs().mean())
    bilinear = float((F.interpolate(high, size=32, mode="bilinear", antialias=True) - low).abs().mean())
    assert area < 0.004 and area < 0.7 * bilinear, (area, bilinear)
    # each low pixel is the mean of the 2×2 block it covers
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(upsampler.downsample(x)[:, :, 1, 2], x[:, :, 2:4, 4:6].mean((-1, -2)))


def test_random_crops_take_the_same_window_of_both_images():
    g = torch.Generator().manual_seed(0)
    a = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    ca, cb = upsampler.random_crops(a, -a, 4, g)
    assert ca.shape == cb.shape == (2, 1, 4, 4)
    torch.testing.assert_close(ca, -cb)
    for i in range(2):  # each crop is a contiguous window of its own image
        y, x = divmod(int(ca[i, 0, 0, 0]) - 64 * i, 8)
        torch.testing.assert_close(ca[i, 0], a[i, 0, y:y + 4, x:x + 4])


def test_the_upsampler_network_is_fully_convolutional():
    torch.manual_seed(0)
    net = UNet(upsampler.upsampler_config(base_channels=16))
    t = torch.tensor([5, 500])
    assert net(torch.randn(2, 6, 16, 16), t).shape == (2, 3, 16, 16)  # trained on crops ...
    assert net(torch.randn(2, 6, 32, 32), t).shape == (2, 3, 32, 32)  # ... run on whole images


def test_a_tiny_upsampler_trains_and_samples():
    torch.manual_seed(0)
    high = shapes.ShapesDataset("train", n=64, resolution=32).images
    net = UNet(UNetConfig(resolution=16, in_channels=6, out_channels=3, base_channels=16, channel_mults=(1, 2),
                          attention_levels=(), mid_attention=False))
    sched = diffusion.cosine_schedule(100)
    ema, losses = training.train(net, lambda m, idx, g: upsampler.upsampler_loss(m, high[idx], sched, 0.6, 16, g), high,
                                 steps=40, batch_size=16, progress=False)
    assert sum(losses[-10:]) < sum(losses[:10])
    out = upsampler.sample(ema.module, upsampler.downsample(high[:2]), steps=5, schedule=sched,
                           generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    # input_blur is the same sampler on a blurred copy of its input (same noise), and 0 leaves the input alone
    low = upsampler.downsample(high[:2])
    run = lambda x, **kw: upsampler.sample(ema.module, x, steps=3, schedule=sched,  # noqa: E731
                                           generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(run(low, input_blur=0.5), run(upsampler.gaussian_blur(low, torch.full((2,), 0.5))))
    assert torch.equal(run(low, input_blur=0.0), run(low))
    assert not torch.equal(run(low, input_blur=0.5), run(low))


def test_the_learners_functions_are_what_trains_and_samples():
    """Lesson 08 passes the learner's blur, crops, noise prediction and low-frequency step: they must be used."""
    torch.manual_seed(0)
    net = UNet(upsampler.upsampler_config(base_channels=16)).eval()
    high, used = torch.rand(2, 3, 32, 32) * 2 - 1, []

    def spy(name, fn):
        return lambda *args: used.append(name) or fn(*args)

    upsampler.upsampler_loss(net, high, diffusion.cosine_schedule(100), 0.6, 16, torch.Generator().manual_seed(0),
                             blur_fn=spy("blur", upsampler.gaussian_blur),
                             crops_fn=spy("crops", upsampler.random_crops))
    upsampler.sample(net, upsampler.downsample(high), steps=2, schedule=diffusion.cosine_schedule(100),
                     keep_fn=spy("keep", upsampler.keep_low_frequencies),
                     eps_fn=spy("eps", lambda m, x, t, low: m(torch.cat([x, upsampler.upsample(low)], 1), t)))
    assert used == ["blur", "crops", "eps", "keep", "eps", "keep"]


def test_the_course_upsampler_keeps_colour_size_and_position_and_mostly_shape(test_seed, measured):
    # Measured when it was built (512 clean test downsamples): shape 99.2% keeping the low frequencies, 97.7% free,
    # against bicubic's 99.8% — the judge reads 16-px images well, and a free diffusion upsampler commits to a shape
    # where the low-resolution blob is ambiguous.
    model = upsampler.load_upsampler()
    reports = upsampler.compare(model, n=64, steps=25, seed=3 + test_seed).reports
    # 6 runs (seeds 0-2, AVX-512/AVX2/SSE kernels, one thread: tests/conftest.py) measured colour, size and position
    # 1.0, shape 0.984-1.0, and keeping the low frequencies one image of 64 better on shape every time: the last bound
    # claims "does not lose shape", with two images of slack for other processors.
    worst = min(reports["diffusion"].accuracy[a] for a in ("colour", "size", "position"))
    assert measured("min colour size position", worst) >= 0.95, reports
    assert measured("shape", reports["diffusion"].accuracy["shape"]) >= 0.95, reports
    kept = measured("shape: kept - free",
                    reports["diffusion"].accuracy["shape"] - reports["diffusion, free"].accuracy["shape"])
    assert kept >= -2 / 64, reports


def test_keeping_low_frequencies_pulls_the_downsample_back_to_the_input():
    # a 32×32 prediction of the wrong scene is pulled towards the scene its 16×16 input shows
    truth = shapes.render(shapes.sample_scenes(8, "test", "single", seed=0), 32)
    wrong = shapes.render(shapes.sample_scenes(8, "test", "single", seed=1), 32)
    low = upsampler.downsample(truth)
    error = lambda x: float((upsampler.downsample(x) - low).abs().mean())  # noqa: E731
    once = upsampler.keep_low_frequencies(wrong, low)
    twice = upsampler.keep_low_frequencies(once, low)
    assert error(twice) < error(once) < 0.5 * error(wrong), (error(wrong), error(once), error(twice))
    assert once.shape == wrong.shape and once.abs().max() <= 1
    # a right guess barely moves
    torch.testing.assert_close(upsampler.keep_low_frequencies(truth, low), truth, atol=0.35, rtol=0)
