import torch

from dalle2_lessons import decoder, diffusion, training
from dalle2_lessons.decoder import Decoder, DecoderConfig
from dalle2_lessons.unet import UNetConfig

CFG = DecoderConfig(
    UNetConfig(resolution=8, base_channels=16, channel_mults=(1, 2), attention_levels=(1,), cond_dim=8,
               scale_shift=True, position_embedding=True, context_dim=16),
    embed_dim=8, n_context=2, token_width=12,
)


def _wake(net: torch.nn.Module) -> torch.nn.Module:
    for p in net.parameters():  # zero-initialised output layers hide the conditions at init: wake them
        p.data.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 8, 8, generator=g)
    t = torch.tensor([1, 400, 900])[:b]
    z = torch.nn.functional.normalize(torch.randn(b, 8, generator=g), dim=-1)
    tokens = torch.randn(b, 5, 12, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)[:b]
    return x, t, z, tokens, mask


def test_config_round_trip_and_shapes():
    cfg = decoder.decoder_config()
    assert DecoderConfig.from_dict(cfg.to_dict()) == cfg
    torch.manual_seed(0)
    net = Decoder(CFG)
    x, t, z, tokens, mask = _inputs()
    assert net(x, t, z, tokens, mask).shape == x.shape
    assert net(x, t, z).shape == x.shape


def test_the_embedding_and_the_caption_both_reach_the_pixels_and_padding_does_not():
    torch.manual_seed(0)
    net = _wake(Decoder(CFG))
    x, t, z, tokens, mask = _inputs()
    base = net(x, t, z, tokens, mask)
    assert not torch.allclose(base, net(x, t, torch.roll(z, 1, 0), tokens, mask), atol=1e-4)  # the embedding matters
    other = tokens.clone()
    other[mask] += 1.0
    assert not torch.allclose(base, net(x, t, z, other, mask), atol=1e-4)  # the caption's real tokens matter
    padded = tokens.clone()
    padded[~mask] = 100.0
    torch.testing.assert_close(base, net(x, t, z, padded, mask))  # its padding does not
    hidden = torch.zeros_like(mask)  # a dropped caption is the same as no caption at all
    torch.testing.assert_close(net(x, t, z, tokens, hidden), net(x, t, z), atol=1e-5, rtol=1e-5)


def test_hand_written_context_attention_replaces_the_fused_kernel_exactly():
    """Lesson 07 trains and samples with the learner's attention (unet.use_context_attention) and dropouts."""
    import torch.nn.functional as F

    from dalle2_lessons.unet import use_context_attention

    calls = []

    def by_hand(q, k, v, ck, cv, context_mask):
        calls.append(1)
        visible = torch.cat([torch.ones(q.shape[0], k.shape[2], dtype=torch.bool), context_mask], dim=1)
        scores = (q @ torch.cat([k, ck], 2).transpose(-1, -2) / q.shape[-1] ** 0.5)
        return F.softmax(scores.masked_fill(~visible[:, None, None, :], float("-inf")), -1) @ torch.cat([v, cv], 2)

    torch.manual_seed(0)
    net = _wake(Decoder(CFG))
    x, t, z, tokens, mask = _inputs()
    fused = net(x, t, z, tokens, mask)
    torch.testing.assert_close(use_context_attention(net, by_hand)(x, t, z, tokens, mask), fused, atol=1e-5, rtol=1e-5)
    assert calls
    use_context_attention(net, None)
    drops = []
    decoder.decoder_loss(net, x, z, tokens, mask, diffusion.cosine_schedule(100),
                         drop_fn=lambda *a: drops.append(1) or decoder.drop_conditions(*a))
    assert drops == [1]


def test_dropout_rates_and_guidance_formula():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(20_000, 4), dim=-1)
    zd, md = decoder.drop_conditions(z, torch.ones(20_000, 3, dtype=torch.bool), 0.1, 0.5, g)
    assert abs((zd.abs().sum(-1) == 0).float().mean() - 0.1) < 0.01
    assert abs((~md.any(-1)).float().mean() - 0.5) < 0.015
    torch.manual_seed(0)
    net = _wake(Decoder(CFG))
    x, t, z, tokens, mask = _inputs()
    cond, uncond = net(x, t, z, tokens, mask), net(x, t, torch.zeros_like(z), tokens, torch.zeros_like(mask))
    torch.testing.assert_close(decoder.guided_eps(net, x, t, z, tokens, mask, 3.0), uncond + 3 * (cond - uncond),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(decoder.guided_eps(net, x, t, z, tokens, mask, 1.0), cond)


def test_a_tiny_decoder_learns_to_tell_two_embeddings_apart(measured):
    torch.manual_seed(0)
    images = torch.full((64, 3, 8, 8), -1.0)
    images[:32, 0, 1:4, 1:4] = 1  # red square top left ...
    images[32:, 2, 4:7, 4:7] = 1  # ... or blue square bottom right
    z = torch.zeros(64, 8)
    z[:32, 0], z[32:, 1] = 1, 1
    tokens, mask = torch.zeros(64, 5, 12), torch.zeros(64, 5, dtype=torch.bool)
    sched = diffusion.cosine_schedule(100)
    net = Decoder(CFG)
    loss = lambda m, idx, g: decoder.decoder_loss(m, images[idx], z[idx], tokens[idx], mask[idx], sched, 0.1, 0.5, g)  # noqa: E731
    ema, losses = training.train(net, loss, images, steps=300, batch_size=32, lr=3e-3, progress=False)
    assert measured("loss ratio", sum(losses[-10:]) / sum(losses[:10])) < 0.5  # measured 0.034-0.035 over kernel sets
    out = decoder.sample(ema.module.eval(), z[[0, 63]], schedule=sched, scale=2.0, steps=20,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 8, 8)
    red_top_left = out[:, 0, 1:4, 1:4].mean((1, 2))
    blue_bottom_right = out[:, 2, 4:7, 4:7].mean((1, 2))
    assert red_top_left[0] > red_top_left[1] + 0.5, red_top_left  # the first embedding draws the red square ...
    assert blue_bottom_right[1] > blue_bottom_right[0] + 0.5, blue_bottom_right  # ... the second the blue one
    again = decoder.sample(ema.module, z[[0, 63]], schedule=sched, scale=2.0, steps=20,
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)


def test_the_course_decoder_reconstructs_test_images_from_their_clip_embeddings(test_seed, measured):
    from dalle2_lessons.clip import load_clip

    clip_model = load_clip()
    model = decoder.load_decoder(clip=clip_model)
    report = decoder.evaluate(model, clip_model, n=48, scale=3.0, steps=25, seed=5 + test_seed)
    assert measured("all correct", report.all_correct) >= 0.8, report  # measured 0.979-1.0 (6 runs: tests/conftest.py)


def test_the_course_decoder_draws_both_background_shades(test_seed, measured):
    """No caption names the background and CLIP's embedding barely keeps it, so the decoder should draw each shade about
    as often as the renders have it. With "leading" DDIM spacing it drew grey on 98-100% of pictures (the mean of its
    first x_t still told dark from light in training; see decoder.SPACING)."""
    from dalle2_lessons import shapes
    from dalle2_lessons.clip import embed_images, load_clip

    clip_model = load_clip()
    model = decoder.load_decoder(clip=clip_model)
    scenes = shapes.sample_scenes(48, "test", "single", seed=20 + test_seed)
    z = embed_images(clip_model, shapes.render(scenes, clip_model.config.resolution))
    drawn = decoder.sample(model, z, scale=3.0, steps=25, generator=torch.Generator().manual_seed(test_seed))
    grey = measured("grey share", shapes.read_background(drawn).float().mean())
    assert 0.2 <= grey <= 0.8, grey  # measured 0.52-0.58 (seeds 0-2, one thread); the renders 0.50


def test_training_goes_on_from_a_saved_decoder_and_leaves_it_as_it_was(tmp_path):
    """``--init``: the course decoder is trained in two runs (a second warm-up and cosine decay from the first's
    weights); the second must start from the saved weights, not fresh ones, and its rebuild command must rebuild
    both."""
    from dalle2_lessons.checkpoints import save_checkpoint

    class Bank:  # one caption of padding for every scene: this test is about weights, not captions
        def random_paraphrase(self, idx, gen):
            return None, torch.zeros(len(idx), 5, 12), torch.ones(len(idx), 5, dtype=torch.bool)

    init = _wake(Decoder(CFG))
    before = {k: v.clone() for k, v in init.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    images, z = torch.rand(16, 3, 8, 8, generator=g) * 2 - 1, torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    cfg = decoder.DecoderSettings(n_train=16, steps=1, batch_size=4, lr=0.0, n_eval=1)
    model, _ = decoder.train_decoder(cfg, images, z, Bank(), progress=False, init=init)
    assert model is not init
    for k, v in before.items():  # lr 0: one step moves nothing, so these are init's weights ...
        torch.testing.assert_close(model.state_dict()[k], v, msg=k)
        torch.testing.assert_close(init.state_dict()[k], v, msg=k)  # ... and init itself was not trained
    model, _ = decoder.train_decoder(decoder.DecoderSettings(n_train=16, steps=2, batch_size=4, lr=1e-2, n_eval=1),
                                     images, z, Bank(), progress=False, init=init)
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in before.items())  # with a learning rate it learns
    assert all(torch.equal(init.state_dict()[k], v) for k, v in before.items())

    save_checkpoint("decoder-v2", init.state_dict(), init.config_dict(), tmp_path / "first",
                    metrics={"steps": 2600, "train_seconds": 12.5},
                    rebuild="python -m dalle2_lessons.decoder --steps 2600", parents={"clip": "c" * 64})
    command, record = decoder.continued(str(tmp_path / "first" / "decoder-v2"), "python -m dalle2_lessons.decoder --x")
    assert command == (f"python -m dalle2_lessons.decoder --steps 2600 --out {tmp_path / 'first'} && "
                       "python -m dalle2_lessons.decoder --x")
    assert record["steps"] == 2600 and record["train_seconds"] == 12.5 and len(record["sha256"]) == 64


def test_going_on_from_a_decoder_of_another_clip_says_so(tmp_path):
    """A decoder learnt what *its* CLIP's embeddings mean; ``--init`` with another CLIP must stop before training."""
    import pytest

    from dalle2_lessons.checkpoints import CheckpointError, save_checkpoint
    from dalle2_lessons.clip import load_clip

    other = Decoder(CFG)
    save_checkpoint("decoder-v2", other.state_dict(), other.config_dict(), tmp_path, rebuild="python -m x",
                    parents={"clip": "c" * 64})
    cfg = decoder.DecoderSettings(n_train=16, steps=1, batch_size=4, lr=0.0, n_eval=1,
                                  init=str(tmp_path / "decoder-v2"))
    with pytest.raises(CheckpointError, match=r"--init .*was trained on clip cccc"):
        decoder.build(cfg, clip=load_clip(version="v2"), progress=False)
