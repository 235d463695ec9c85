"""Why the Shapes v2 decoder predicts v: ``python -m benchmarks.decoder_prediction [--steps 600]`` trains the v2
decoder twice from the same seed, data and budget, once predicting the noise ε and once the velocity v, and reads
64 test reconstructions of each (guidance 1 and 3, DDIM-50): the background's level and noise (its border pixels
against the renders'), how often the background shade comes back, and the strict judge's verdict. Writes
``benchmarks/decoder_prediction.json``. About 15 minutes per model on one thread (run the two as two processes with
``--only epsilon`` / ``--only v_prediction`` on a 2-core machine; ``--tiny``: a smoke run of seconds whose numbers
mean nothing)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from dalle2_lessons import decoder, judge, shapes
from dalle2_lessons.clip import embed_images, load_clip

HERE = Path(__file__).resolve().parent


def measure(prediction_type: str, steps: int, tiny: bool = False) -> dict:
    base = dataclasses.replace(decoder.PRESETS["ci"], n_train=64, batch_size=8) if tiny else decoder.PRESETS["cpu"]
    cfg = dataclasses.replace(base, steps=steps, batch_size=8 if tiny else 64, version="v2",
                              prediction_type=prediction_type)
    clip = load_clip(version="v2")
    t0 = time.time()
    model = decoder.build(cfg, clip=clip, progress=False).model
    out = {"train_minutes": round((time.time() - t0) / 60, 1)}
    ds = shapes.ShapesDataset("test", n=4 if tiny else 64, resolution=32, seed=5, version="v2")
    z = embed_images(clip, ds.images)
    jd = judge.load_judge("single", version="v2")
    real_border = shapes.border_pixels(ds.images)
    out["real"] = {"border_mean": real_border.mean().item(), "border_std": real_border.std(-1).mean().item()}
    for scale in (1.0, 3.0):
        x = decoder.sample(model, z, scale=scale, steps=2 if tiny else 50, generator=torch.Generator().manual_seed(0))
        border = shapes.border_pixels(x)
        same = (shapes.read_background(x) == torch.as_tensor(ds.scenes.backgrounds)).float().mean().item()
        out[f"s{scale:g}"] = {"border_mean": border.mean().item(), "border_std": border.std(-1).mean().item(),
                              "background_right": same, **jd.score(x, ds.attrs).as_dict()}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--only", choices=("epsilon", "v_prediction"), default=None)
    p.add_argument("--out", default=str(HERE / "decoder_prediction.json"))
    p.add_argument("--tiny", action="store_true", help="a smoke run: 64 images, 4 reconstructions, 2 DDIM steps")
    args = p.parse_args(argv)
    kinds = [args.only] if args.only else ["epsilon", "v_prediction"]
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.is_file() else {}
    for kind in kinds:
        results[kind] = {"steps": args.steps, **measure(kind, args.steps, args.tiny)}
        print(kind, json.dumps(results[kind]), flush=True)
        path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
