"""Pictures from the command line, for people who just want them::

    python -m dalle2_lessons.generate "a small red circle in the top left" -n 8 -o out.png

Runs the whole unCLIP pipeline of lesson 09 (CLIP text encoder → prior → decoder → upsampler) with the
course checkpoints (or yours, with ``--profile``) and saves a grid: one row per prompt under its caption, ``n``
columns, each 32×32 picture enlarged with nearest neighbour to at least 128 pixels so that a person can see it
(every enlarged block is one pixel the model drew; nothing is smoothed or invented).
A prompt with a word the course's tokenizer does not know is refused with a message naming the word
(exit status 2).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from . import profiles
from .tokenizer import PromptError, Tokenizer


MIN_SIZE = 128  #: the smallest size, in screen pixels, a picture is shown at
PAD = 4  #: grey pixels between pictures
GREY = 0.35  #: the background, in [0, 1]
CAPTION_HEIGHT = 18  #: pixels of caption band above each row


def picture_grid(images: torch.Tensor, prompts: list[str], n: int, min_size: int = MIN_SIZE) -> Image.Image:
    """One picture to look at: a row of ``n`` images per prompt, under the prompt.

    Args:
        images: ``(P·n, 3, R, R)`` in [-1, 1], prompt by prompt (what :meth:`UnCLIP.generate` returns).
        prompts: the ``P`` prompts, one per row.
        min_size: each image is enlarged by the whole factor ``ceil(min_size / R)`` with nearest neighbour.
    Returns:
        an RGB image ``n·(R·k + PAD) + PAD`` wide and ``P·(CAPTION_HEIGHT + R·k + PAD)`` high.
    """
    k = math.ceil(min_size / images.shape[-1])
    big = F.interpolate((images.detach().float().cpu().clamp(-1, 1) + 1) / 2, scale_factor=k, mode="nearest")
    size = big.shape[-1]
    font = ImageFont.load_default()
    rows = []
    for i, prompt in enumerate(prompts):
        row = torch.full((3, size + PAD, n * (size + PAD) + PAD), GREY)
        for j, image in enumerate(big[i * n:(i + 1) * n]):
            row[:, :size, PAD + j * (size + PAD):(j + 1) * (size + PAD)] = image
        strip = Image.fromarray(row.mul(255).round().byte().permute(1, 2, 0).numpy())
        band = Image.new("RGB", (strip.width, CAPTION_HEIGHT + strip.height), (round(255 * GREY),) * 3)
        band.paste(strip, (0, CAPTION_HEIGHT))
        ImageDraw.Draw(band).text((PAD, 3), prompt, fill=(255, 255, 255), font=font)
        rows.append(band)
    grid = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    for i, band in enumerate(rows):
        grid.paste(band, (0, i * band.height))
    return grid


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dalle2_lessons.generate", description="Draw pictures from captions with the course's unCLIP (CLIP → prior → decoder → upsampler) and save them as one grid.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prompts", nargs="+", help="one or more captions, e.g. \"a small red circle in the top left\"")
    p.add_argument("-n", "--num", type=int, default=8, help="images per prompt")
    p.add_argument("-o", "--out", default="unclip.png", help=f"where to save the grid (PNG; each image shown at {MIN_SIZE}+ px)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior-scale", type=float, default=1.0, help="classifier-free guidance of the prior")
    p.add_argument("--decoder-scale", type=float, default=3.0, help="classifier-free guidance of the decoder")
    p.add_argument("--prior-steps", type=int, default=64, help="DDIM steps of the prior")
    p.add_argument("--decoder-steps", type=int, default=50, help="DDIM steps of the decoder")
    p.add_argument("--upsampler-steps", type=int, default=25, help="DDIM steps of the upsampler")
    p.add_argument("--no-prior", action="store_true", help="decode the text embedding itself (the baseline of lesson 06)")
    p.add_argument("--profile", default=None, choices=tuple(profiles.PROFILES),
                   help="use your own checkpoints saved under runs/<profile>/ where present, each only with the CLIP it was "
                        "trained on (default: the course's)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error("-n must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:  # check every prompt before loading anything, so a typo costs no time
        Tokenizer().encode_batch(args.prompts)
    except PromptError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .unclip import UnCLIP

    device = torch.device(args.device) if args.device else profiles.get_device()
    torch.set_grad_enabled(False)
    model = UnCLIP.load(args.profile, device)
    t0 = time.perf_counter()
    result = model.generate(args.prompts, n=args.num, seed=args.seed, prior_scale=args.prior_scale, decoder_scale=args.decoder_scale,
                            prior_steps=args.prior_steps, decoder_steps=args.decoder_steps, upsampler_steps=args.upsampler_steps,
                            use_prior=not args.no_prior)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = picture_grid(result.images, args.prompts, args.num)
    grid.save(out)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"saved {len(result.images)} images ({len(args.prompts)} prompt(s) × {args.num}) in {seconds:.1f} s ({stages})")
    print(f"wrote {out.resolve()} ({grid.width}×{grid.height} px: each {result.images.shape[-1]}-px image enlarged to "
          f"{math.ceil(MIN_SIZE / result.images.shape[-1]) * result.images.shape[-1]} px, nearest neighbour)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
