"""Pictures from the command line, for people who just want them::

    python -m dalle2_lessons.generate "a small red circle in the top left" -n 8 -o out.png

Runs the whole unCLIP pipeline of lesson 09 (CLIP text encoder → prior → decoder → upsampler) with the
course checkpoints (or yours, with ``--profile``) and saves a grid: one row per prompt under its caption, ``n``
columns, each 64×64 picture enlarged with nearest neighbour to at least 128 pixels so that a person can see it
(every enlarged block is one pixel the model drew; nothing is smoothed or invented).

Everything a user can get wrong is checked before anything slow happens, and reported in one line with exit
status 2: a prompt with a word the course's tokenizer does not know (naming the word and the prompt), an output
path that cannot be written, a step count below 1, a device that is not there. A missing or corrupt checkpoint is
one line naming the command that rebuilds it (exit status 1). ``--help`` answers at once: PyTorch is imported only
after the arguments are read.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

PROFILE_NAMES = ("ci", "cpu", "gpu")  #: :data:`dalle2_lessons.profiles.PROFILES`, named here so --help needs no torch
MIN_SIZE = 128  #: the smallest size, in screen pixels, a picture is shown at
PAD = 4  #: grey pixels between pictures
GREY = 0.35  #: the background, in [0, 1]
CAPTION_HEIGHT = 18  #: pixels of caption band above each row


class UsageError(ValueError):
    """A mistake in the command line, reported in one line with exit status 2."""


def picture_grid(images, prompts: list[str], n: int, min_size: int = MIN_SIZE):
    """One picture to look at: a row of ``n`` images per prompt, under the prompt.

    Args:
        images: ``(P·n, 3, R, R)`` tensor in [-1, 1], prompt by prompt (what :meth:`UnCLIP.generate` returns).
        prompts: the ``P`` prompts, one per row.
        min_size: each image is enlarged by the whole factor ``ceil(min_size / R)`` with nearest neighbour.
    Returns:
        a PIL RGB image ``n·(R·k + PAD) + PAD`` wide and ``P·(CAPTION_HEIGHT + R·k + PAD)`` high.
    """
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageDraw, ImageFont

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
    p = argparse.ArgumentParser(prog="python -m dalle2_lessons.generate",
                                description="Draw pictures from captions with the course's unCLIP "
                                            "(CLIP → prior → decoder → upsampler) and save them as one grid, "
                                            "a row per caption.")
    p.add_argument("prompts", nargs="+", help="one or more captions, e.g. \"a small red circle in the top left\"")
    p.add_argument("-n", "--num", type=int, default=8, help="images per prompt (default: 8)")
    p.add_argument("-o", "--out", default="unclip.png",
                   help="the picture to write, in the format its extension names (.png, .jpg, ...; "
                        f"default: unclip.png); each image is shown at {MIN_SIZE} px or more")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed and arguments draw the same pictures (default: 0)")
    p.add_argument("--prior-scale", type=float, default=1.0,
                   help="classifier-free guidance of the prior (default: 1.0)")
    p.add_argument("--decoder-scale", type=float, default=None,
                   help="classifier-free guidance of the decoder (default: the pipeline's, unclip.DECODER_SCALE, "
                        "picked in benchmarks/SHAPES_V2.md section 5)")
    p.add_argument("--prior-steps", type=int, default=64, help="DDIM steps of the prior (default: 64)")
    p.add_argument("--decoder-steps", type=int, default=50, help="DDIM steps of the decoder (default: 50)")
    p.add_argument("--upsampler-steps", type=int, default=25, help="DDIM steps of the upsampler (default: 25)")
    p.add_argument("--upsampler-input-blur", type=float, default=None, metavar="SIGMA",
                   help="blur the decoder's 32-px samples by SIGMA px before the upsampler reads them (0: not at all; "
                        "default: the pipeline's, unclip.UPSAMPLER_INPUT_BLUR, picked in benchmarks/SHAPES_V2.md "
                        "section 4)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images drawn at once; more is faster and takes more memory (default: 64)")
    p.add_argument("--no-prior", action="store_true",
                   help="decode the text embedding itself (the baseline of lesson 06)")
    p.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                   help="use your own checkpoints saved under runs/<profile>/ where present, each only with the CLIP "
                        "it was trained on (default: the course's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    args = p.parse_args(argv)
    for flag in ("num", "prior_steps", "decoder_steps", "upsampler_steps", "batch_size"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.upsampler_input_blur is not None and not 0 <= args.upsampler_input_blur <= 2:
        p.error(f"--upsampler-input-blur is a blur width in pixels between 0 and 2, got {args.upsampler_input_blur}")
    return args


def check_out(path: str) -> Path:
    """The output path, checked before any work: an extension Pillow can write, and a folder that is (or can be
    made) writable. Raises :class:`UsageError`."""
    from PIL import Image

    out = Path(path)
    if out.is_dir():
        raise UsageError(f"-o {path}: is a folder; name a file inside it, e.g. {out / 'unclip.png'}")
    if out.suffix.lower() not in Image.registered_extensions():
        raise UsageError(f"-o {path}: name the picture with an image extension such as .png or .jpg "
                         f"(got {out.suffix or 'none'})")
    parent = out.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"-o {path}: {ancestor} is a file, not a folder")
            if not os.access(ancestor, os.W_OK):
                raise UsageError(f"-o {path}: cannot write in {ancestor}")
            break
    return out


def check_prompts(prompts: list[str]) -> None:
    """Every prompt through the tokenizer; the first that cannot be read raises :class:`UsageError` naming it."""
    from .tokenizer import PromptError, Tokenizer

    tok = Tokenizer()
    for i, prompt in enumerate(prompts, 1):
        try:
            tok.words(prompt)
        except PromptError as err:
            which = f"prompt {i} of {len(prompts)}" if len(prompts) > 1 else "prompt"
            raise UsageError(f"{which} ({prompt!r}): {err}") from err


def pick_device(name: str | None):
    """``--device`` as a torch device that exists here. Raises :class:`UsageError`."""
    import torch

    from . import profiles

    if name is None:
        return profiles.get_device()
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name}: not a device name; use cpu, cuda, cuda:N or mps ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: PyTorch sees no CUDA GPU here; leave --device out to use the best "
                         "available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: Apple's MPS is not available here; leave --device out to use the best "
                         "available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: the course runs on cpu, cuda or mps")
    return device


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:  # everything a user can get wrong, before anything slow
        out = check_out(args.out)
        check_prompts(args.prompts)
        device = pick_device(args.device)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch
    from tqdm.auto import tqdm

    from .checkpoints import CheckpointError
    from .unclip import UnCLIP

    try:
        model = UnCLIP.load(args.profile, device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    wanted = [p for p in args.prompts for _ in range(args.num)]
    # options left unset keep the pipeline's defaults (unclip.py's constants, which this module does not import)
    defaults = {k: v for k, v in (("upsampler_input_blur", args.upsampler_input_blur),
                                  ("decoder_scale", args.decoder_scale)) if v is not None}
    t0 = time.perf_counter()
    images = []
    # no_grad, not set_grad_enabled(False): main() may run inside another program (the tests) whose autograd must work
    with tqdm(total=len(wanted), desc="unCLIP", unit="image") as bar, torch.no_grad():
        for k, start in enumerate(range(0, len(wanted), args.batch_size)):
            batch = wanted[start:start + args.batch_size]
            result = model.generate(batch, n=1, seed=args.seed + k, prior_scale=args.prior_scale,
                                    prior_steps=args.prior_steps, decoder_steps=args.decoder_steps,
                                    upsampler_steps=args.upsampler_steps, use_prior=not args.no_prior,
                                    progress=False, **defaults)
            images.append(result.images.cpu())
            bar.update(len(batch))
    seconds = time.perf_counter() - t0
    images = torch.cat(images)
    grid = picture_grid(images, args.prompts, args.num)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    print(f"drew {len(images)} images ({len(args.prompts)} prompt(s) × {args.num}) in {seconds:.1f} s "
          f"({seconds / len(images):.2f} s per image on {device})")
    print(f"wrote {out.resolve()} ({grid.width}×{grid.height} px: each {images.shape[-1]}-px image enlarged to "
          f"{math.ceil(MIN_SIZE / images.shape[-1]) * images.shape[-1]} px, nearest neighbour)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
