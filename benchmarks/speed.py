"""How fast our code runs: U-Net training throughput against the machine's matmul rate, and seconds per image of the
whole text-to-image pipeline with DDPM-1000, DDIM-50 and DDIM-25.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` over one full training step (forward and
backward): it counts the matrix products and convolutions (2 FLOPs per multiply-add) and nothing else, so norms,
activations and the optimiser, which are memory-bound rather than compute-bound, are left out. Achieved GFLOP/s is
that count over the measured step time; the ratio to :func:`benchmarks.machine.matmul_gflops` says how much of the
machine's best matmul rate the network reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dalle2_lessons import checkpoints, diffusion, upsampler
from dalle2_lessons.decoder import Decoder, DecoderConfig, decoder_loss
from dalle2_lessons.unclip import UnCLIP
from dalle2_lessons.unet import UNet, UNetConfig


def _networks(batch: int) -> dict[str, tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]]:
    """unCLIP's two U-Nets as the course trains them on Shapes v2 (the configurations stored with the shipped
    ``decoder-v2`` and ``upsampler-v2``), each with its training loss on random inputs of the right shapes (speed does
    not depend on values): the decoder on 32×32 images with a CLIP embedding and caption tokens, the upsampler on
    16×16 crops of 64×64 images (its command's ``--crop 16``)."""
    schedule = diffusion.cosine_schedule()
    gen = torch.Generator().manual_seed(0)
    shipped = checkpoints.shipped_dir()
    dec = Decoder(DecoderConfig.from_dict(checkpoints.read_meta("decoder-v2", shipped)["config"]))
    r = dec.config.unet.resolution
    x_low = torch.rand(batch, 3, r, r) * 2 - 1
    z = torch.nn.functional.normalize(torch.randn(batch, dec.config.embed_dim), dim=-1)
    feats, mask = torch.randn(batch, 16, dec.config.token_width), torch.ones(batch, 16, dtype=torch.bool)
    up = UNet(UNetConfig.from_dict(checkpoints.read_meta("upsampler-v2", shipped)["config"]))
    x_high = torch.rand(batch, 3, 2 * r, 2 * r) * 2 - 1
    crop = up.config.resolution
    return {
        f"decoder U-Net ({r}×{r}, CLIP context)": (
            dec, lambda m: decoder_loss(m, x_low, z, feats, mask, schedule, generator=gen)),
        f"upsampler U-Net ({crop}×{crop} crops of {2 * r}×{2 * r})": (
            up, lambda m: upsampler.upsampler_loss(m, x_high, schedule, crop=crop, generator=gen)),
    }


def parameters(model: torch.nn.Module) -> float:
    """Millions of parameters."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def training_throughput(
    batch: int = 128, steps: int = 20, warmup: int = 3, matmul_rate: float | None = None
) -> list[dict]:
    """Images per second and achieved GFLOP/s of full training steps (AdamW) of each U-Net, on the CPU."""
    rows = []
    for name, (model, loss_fn) in _networks(batch).items():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model=model, loss_fn=loss_fn, opt=opt):
            loss = loss_fn(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        for _ in range(warmup):
            step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - t0) / steps
        gflops = flops / seconds / 1e9
        rows.append({"network": name, "parameters (M)": parameters(model), "batch": batch,
                     "s / step": seconds, "images / s": batch / seconds, "GFLOP / step": flops / 1e9,
                     "achieved GFLOP/s": gflops,
                     "of matmul rate": gflops / matmul_rate if matmul_rate else float("nan")})
    return rows


@torch.no_grad()
def sampling_seconds(
    n_images: int = 16, samplers: dict[str, tuple[int, float]] | None = None, prior_steps: int = 64
) -> list[dict]:
    """Seconds per image of the course pipeline (``UnCLIP.generate`` with the course checkpoints) for ``n_images`` test
    captions, per stage.

    ``samplers`` maps a name to ``(steps, eta)`` used by both the decoder and the upsampler: DDPM-1000 is DDIM with
    all 1000 steps and η = 1, which is exactly DDPM's ancestral sampler. The prior keeps its 64 DDIM steps
    (x0-prediction, two candidates) throughout, as in lesson 09.
    """
    from dalle2_lessons import shapes

    samplers = samplers or {"DDPM-1000": (1000, 1.0), "DDIM-50": (50, 0.0), "DDIM-25": (25, 0.0)}
    system = UnCLIP.load()
    prompts = shapes.sample_scenes(n_images, "test", "single", seed=0).captions
    rows = []
    for name, (steps, eta) in samplers.items():
        out = system.generate(prompts, prior_steps=prior_steps, decoder_steps=steps, upsampler_steps=steps,
                              decoder_eta=eta, upsampler_eta=eta, progress=False)
        rows.append({"sampler": name, "images": n_images, **{f"{k} s": v for k, v in out.seconds.items()},
                     "s / image": sum(out.seconds.values()) / n_images})
    return rows
