"""Lesson 10's conditional VAE: shapes, the reparameterisation, the ELBO's two terms, training, the checkpoint."""

import math

import pytest
import torch

from dalle2_lessons import checkpoints, judge, shapes, vae
from dalle2_lessons.clip import load_clip

CONFIG = vae.VAEConfig(cond_dim=8, latent_dim=4, width=8)


def test_encoder_has_two_heads_and_decoder_inverts_the_shapes():
    torch.manual_seed(0)
    model = vae.ConditionalVAE(CONFIG)
    x, c = torch.randn(5, 3, 16, 16), torch.randn(5, 8)
    mean, log_var = model.encode(x, c)
    assert mean.shape == log_var.shape == (5, 4)
    recon, m2, lv2 = model(x, c, torch.zeros(5, 4))
    assert recon.shape == x.shape and torch.equal(m2, mean) and torch.equal(lv2, log_var)
    assert torch.allclose(recon, model.decode(mean, c)), "zero noise decodes the mean"
    samples = model.sample(c, torch.Generator().manual_seed(0))
    assert samples.shape == x.shape and samples.min() >= -1 and samples.max() <= 1


def test_reparameterise_has_the_right_distribution_and_gradients():
    mean = torch.tensor([1.0, -2.0], requires_grad=True)
    log_var = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    noise = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    z = vae.reparameterise(mean, log_var, noise)
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 2.0]), atol=0.02)
    z.sum().backward()
    assert mean.grad is not None and log_var.grad is not None


def test_elbo_terms_match_the_formulas_and_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x, xr = torch.randn(2, 4, 3, 16, 16, generator=g)
    mean, log_var = torch.randn(2, 4, 6, generator=g)
    rec, kl = vae.elbo_terms(x, xr, mean, log_var, pixel_sigma=0.2)
    normal = torch.distributions.Normal
    nll = -normal(xr, 0.2).log_prob(x).flatten(1).sum(1).mean()
    assert torch.allclose(rec + vae.gaussian_nll_constant(3 * 16 * 16, 0.2), nll, rtol=1e-5)
    q, p = normal(mean, (0.5 * log_var).exp()), normal(torch.zeros(6), torch.ones(6))
    assert torch.allclose(kl, torch.distributions.kl_divergence(q, p).sum(1).mean(), rtol=1e-5)
    _, kl0 = vae.elbo_terms(x, xr, torch.zeros(4, 6), torch.zeros(4, 6), 0.2)
    assert kl0 == 0, "the posterior equal to the prior costs nothing"


def test_the_tuple_unpacking_bug_of_popular_articles_fails_loudly():
    """`mean, log_var = encoder(x)` on an encoder that returns one tensor unpacks the *batch*."""
    single_head = torch.nn.Linear(10, 8)
    with pytest.raises(ValueError, match="too many values to unpack"):
        mean, log_var = single_head(torch.randn(5, 10))


def test_a_tiny_vae_learns_to_reconstruct(measured):
    torch.manual_seed(0)
    data = shapes.ShapesDataset("train", n=256)
    c = torch.nn.functional.one_hot(data.attrs[:, 0], 8).float()
    model = vae.ConditionalVAE(CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(150):
        loss, rec, kl = vae.vae_loss(model, data.images, c, g)
        first = first or rec.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # measured 0.022, every kernel set
    assert measured("reconstruction ratio", rec.item() / first) < 0.5 and kl.item() > 0


def test_soft_pixels_tells_blur_from_a_clean_render():
    images = shapes.ShapesDataset("test", n=64).images
    blurred = torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    sharp, soft = judge.soft_pixels(images), judge.soft_pixels(blurred)
    assert sharp < 0.04 and soft > 1.5 * sharp, (sharp, soft)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_course_checkpoint_loads_and_meets_its_recorded_numbers(version):
    ckpt = checkpoints.load_checkpoint(checkpoints.versioned(vae.CHECKPOINT, version))
    model = vae.load_vae(clip=load_clip(version=version), version=version)
    assert isinstance(model, vae.ConditionalVAE) and ckpt.config["latent_dim"] == model.config.latent_dim
    for split in ("test", "heldout"):
        assert set(ckpt.metrics["eval"][split]) >= {"all", "colour", "shape", "size", "position"}
    assert checkpoints.versioned("vae", version) in checkpoints.REBUILD_COMMANDS
