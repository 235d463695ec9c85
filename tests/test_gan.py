"""Lesson 11's conditional GAN: shapes, the two losses, projection conditioning, a training step, the checkpoint."""

import pytest
import torch
import torch.nn.functional as F

from dalle2_lessons import checkpoints, gan
from dalle2_lessons.clip import load_clip

CONFIG = gan.GANConfig(cond_dim=8, latent_dim=4, width=16)


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    g, d = gan.Generator(CONFIG), gan.Discriminator(CONFIG)
    c = torch.randn(6, 8)
    x = g(torch.randn(6, 4), c)
    assert x.shape == (6, 3, 16, 16) and x.abs().max() <= 1
    assert d(x, c).shape == (6,)
    assert g.sample(c, torch.Generator().manual_seed(0)).shape == (6, 3, 16, 16)


def test_discriminator_is_a_classifier_not_an_identity():
    """The articles' `Model(x, x)` returns the image; a discriminator returns one score per pair."""
    d = gan.Discriminator(CONFIG)
    out = d(torch.randn(2, 3, 16, 16), torch.randn(2, 8))
    assert out.ndim == 1 and out.numel() == 2


def test_losses_match_binary_cross_entropy_and_the_hinge_formula():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 32, generator=g)
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(gan.discriminator_loss(real, fake, "non-saturating"),
                          bce(real, torch.ones(32)) + bce(fake, torch.zeros(32)))
    assert torch.allclose(gan.generator_loss(fake, "non-saturating"), bce(fake, torch.ones(32)))
    assert torch.allclose(gan.discriminator_loss(real, fake, "hinge"),
                          (1 - real).clamp(min=0).mean() + (1 + fake).clamp(min=0).mean())
    assert torch.allclose(gan.generator_loss(fake, "hinge"), -fake.mean())
    with pytest.raises(ValueError, match="hinge"):
        gan.generator_loss(fake, "wasserstein")


def test_spectral_norm_bounds_the_discriminator_layers():
    torch.manual_seed(0)
    d = gan.Discriminator(CONFIG, use_spectral_norm=True)
    for _ in range(20):  # power iteration converges while the model runs in training mode
        d(torch.randn(4, 3, 16, 16), torch.randn(4, 8))
    w = d.real_score.weight.detach()
    assert torch.linalg.matrix_norm(w, ord=2) <= 1.05


def test_one_training_run_moves_both_players():
    torch.manual_seed(0)
    g, d = gan.Generator(CONFIG), gan.Discriminator(CONFIG)
    images = torch.rand(64, 3, 16, 16) * 2 - 1
    before = [p.detach().clone() for p in g.parameters()]
    sampler, log = gan.train_gan(g, d, images, lambda idx, gen: torch.zeros(len(idx), 8), steps=3, batch_size=8,
                                 progress=False)
    assert sampler is g and not g.training, "without EMA the trained generator itself samples"
    assert set(log) == {"d_loss", "g_loss", "d_real", "d_fake"} and len(log["d_loss"]) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters()))


def test_the_ema_generator_averages_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    g, d = gan.Generator(CONFIG), gan.Discriminator(CONFIG)
    images = torch.rand(64, 3, 16, 16) * 2 - 1
    start = {k: v.clone() for k, v in g.state_dict().items()}
    sampler, _ = gan.train_gan(g, d, images, lambda idx, gen: torch.zeros(len(idx), 8), steps=20, batch_size=8,
                               progress=False, ema_decay=0.9, lr_schedule="cosine")
    assert sampler is not g and isinstance(sampler, gan.Generator) and not sampler.training
    averaged, last = sampler.state_dict(), g.state_dict()
    for name in ("project.2.running_mean", "project.0.weight"):  # a BatchNorm statistic and a weight
        assert not torch.equal(averaged[name], last[name]) and not torch.equal(averaged[name], start[name]), name
        # an average of the path lies between where it started and where it ended, closer to the end
        assert (averaged[name] - last[name]).norm() < (start[name] - last[name]).norm(), name
    with pytest.raises(ValueError, match="lr_schedule"):
        gan.train_gan(g, d, images, lambda idx, gen: torch.zeros(len(idx), 8), steps=1, lr_schedule="linear")


@pytest.mark.parametrize("version", ["v2"])  # v1's checkpoints no longer ship
def test_course_checkpoint_loads_with_its_numbers(version):
    ckpt = checkpoints.load_checkpoint(checkpoints.versioned(gan.CHECKPOINT, version))
    assert isinstance(gan.load_gan(clip=load_clip(version=version), version=version), gan.Generator)
    for split in ("test", "heldout"):
        assert set(ckpt.metrics["eval"][split]) >= {"all", "colour", "shape", "size", "position"}
    assert checkpoints.versioned("gan", version) in checkpoints.REBUILD_COMMANDS
