"""Issue #21's first measurement: does unCLIP's prior beat "no prior" on the *distribution* of image embeddings once
captions leave attributes out? ``python -m benchmarks.partial_captions OUT.json`` (about 13 minutes on 2 cores).

Today's Shapes pictures (16 px for CLIP); each of a scene's 4 paraphrases is a full caption with p = 0.5, else it
names a random non-empty proper subset of {colour, shape, size, position} ("a pink thing", "something large in the top
left"). A CLIP (``cpu`` preset) and a prior (``cpu`` preset) are trained on that; per caption, K = 64 real image
embeddings of scenes matching the caption are compared with K prior samples (energy distance, spread ratio; 3
sampling seeds), with the text embedding itself ("no prior"), the nearest training caption's image embedding, and a
second set of K real embeddings (the floor). A prototype: Shapes v2 (issue #21) makes these captions part of the data.
"""

import itertools
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from dalle2_lessons import clip, diffusion, metrics, prior, shapes, tokenizer
from dalle2_lessons.captions import SINGLE_TEMPLATES, _fix_articles, location_phrase
from dalle2_lessons.clip_embeddings import CaptionBank, embed_images, encode_captions

ATTRS = ("colour", "shape", "size", "position")
SUBSETS = [set(c) for r in (1, 2, 3) for c in itertools.combinations(ATTRS, r)]  # 14 proper non-empty subsets
NOUNS = ("shape", "thing", "object")


def partial_caption(names: dict, mentioned: set, rng: np.random.Generator) -> str:
    if mentioned == set(ATTRS):
        return shapes.caption_single(names["colour"], names["shape"], names["size"], names["position"],
                                     int(rng.integers(len(SINGLE_TEMPLATES))))
    adj = " ".join(names[k] for k in ("size", "colour") if k in mentioned)
    loc = location_phrase(names["position"]) if "position" in mentioned else ""
    if "shape" in mentioned:
        text = f"a {adj} {names['shape']} {loc}"
    elif rng.random() < 0.5:
        text = f"something {adj} {loc}"
    else:
        text = f"a {adj} {NOUNS[int(rng.integers(3))]} {loc}"
    return _fix_articles(" ".join(text.split()))


def mixed_captions(attrs: np.ndarray, per_scene: int, seed: int, p_full: float = 0.5) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    out = []
    for a in attrs:
        names = shapes.attribute_names("single", tuple(int(v) for v in a))
        caps = []
        for _ in range(per_scene):
            m = set(ATTRS) if rng.random() < p_full else SUBSETS[int(rng.integers(len(SUBSETS)))]
            caps.append(partial_caption(names, m, rng))
        out.append(caps)
    return out


def main(out_path: str) -> None:
    t0 = time.time()
    torch.set_num_threads(2)
    vocab = (*tokenizer.VOCAB[:-1], "something", *NOUNS, tokenizer.END)
    vocab = tuple(dict.fromkeys(vocab))
    tok = tokenizer.Tokenizer(vocab)
    ccfg = clip.PRESETS["cpu"]
    train = shapes.ShapesDataset("train", n=ccfg.n_train, resolution=16)
    caps = mixed_captions(train.attrs.numpy(), 4, seed=0)
    tokens = torch.stack([tok.encode_batch(c) for c in caps])  # (N, 4, L)
    torch.manual_seed(0)
    model = clip.CLIP(clip.CLIPConfig(tok.vocab_size, tok.context_length, 16, ccfg.embed_dim))
    losses = clip.train_clip(model, train.images, tokens, ccfg.steps, ccfg.batch_size, ccfg.lr, seed=0, progress=False)
    model.eval()
    print(f"CLIP trained {time.time() - t0:.0f} s, final loss {np.mean(losses[-50:]):.3f}", flush=True)
    z_train = embed_images(model, train.images)
    bank = CaptionBank.build(model, tokens)
    pcfg = prior.PRESETS["cpu"]
    pr, plosses = prior.train_prior(pcfg, z_train, bank, progress=False)
    print(f"prior trained {time.time() - t0:.0f} s, final loss {np.mean(plosses[-50:]):.3f}", flush=True)

    # evaluation captions: for each mentioned-subset type, 6 random test scenes' partial captions
    pool = shapes.sample_scenes(40_000, "test", "single", seed=7)
    pool_attrs = pool.attrs
    rng = np.random.default_rng(1)
    K = 64
    rows = []
    schedule = diffusion.cosine_schedule()
    eval_types = [{"colour"}, {"shape"}, {"size", "position"}, {"colour", "shape"}, {"colour", "size", "position"},
                  set(ATTRS)]
    for mentioned in eval_types:
        cols = [ATTRS.index(k) for k in sorted(mentioned, key=ATTRS.index)]
        for c in range(6):
            anchor = pool_attrs[int(rng.integers(len(pool_attrs)))]
            match = np.nonzero((pool_attrs[:, cols] == anchor[cols]).all(1))[0][:K]
            real = embed_images(model, shapes.render(pool[match], 16))
            names = shapes.attribute_names("single", tuple(int(v) for v in anchor))
            text = partial_caption(names, mentioned, np.random.default_rng(c))
            emb, feats, mask = encode_captions(model, tok.encode_batch([text]))
            per_seed = {"prior": [], "prior_k1": []}
            spread = {"prior": [], "prior_k1": []}
            for seed in range(3):
                for name, cand in (("prior", 2), ("prior_k1", 1)):
                    z = prior.sample(pr, emb.expand(K, -1), feats.expand(K, -1, -1), mask.expand(K, -1), schedule,
                                     1.0, pcfg.sample_steps, cand, torch.Generator().manual_seed(seed))
                    per_seed[name].append(float(metrics.energy_distance(z, real)))
                    spread[name].append(float(metrics.spread_ratio(z, real)))
            # baselines: the text embedding itself (a point), and nearest training caption's image embedding (a point)
            no_prior = float(metrics.energy_distance(emb, real))
            nn_idx = (bank.embeddings @ emb[0]).argmax()
            scene_of = (bank.index == nn_idx).any(1).nonzero()[0, 0]
            nearest = float(metrics.energy_distance(z_train[scene_of][None], real))
            # K independent real embeddings of the same caption: the floor
            match2 = np.nonzero((pool_attrs[:, cols] == anchor[cols]).all(1))[0][K:2 * K]
            floor = float(metrics.energy_distance(embed_images(model, shapes.render(pool[match2], 16)), real)) \
                if len(match2) == K else float("nan")
            gap = float(F.cosine_similarity(emb, real.mean(0, keepdim=True)))
            rows.append({"type": "+".join(sorted(mentioned, key=ATTRS.index)), "caption": text, "n_real": len(match),
                         "prior": per_seed["prior"], "prior_k1": per_seed["prior_k1"], "spread": spread,
                         "no_prior": no_prior, "nearest": nearest, "floor": floor, "cos_text_to_real_mean": gap})
            print(rows[-1]["type"], text, {k: np.round(v, 4).tolist() for k, v in per_seed.items()},
                  f"no prior {no_prior:.4f} nearest {nearest:.4f} floor {floor:.4f} cos {gap:.3f}", flush=True)
    json.dump(rows, open(out_path, "w"), indent=1)
    # summary per type with intervals over the 3 sampling seeds (per-seed mean over the type's captions)
    for t in dict.fromkeys(r["type"] for r in rows):
        rs = [r for r in rows if r["type"] == t]
        p = metrics.interval95([np.mean([r["prior"][s] for r in rs]) for s in range(3)])
        p1 = metrics.interval95([np.mean([r["prior_k1"][s] for r in rs]) for s in range(3)])
        sp = np.mean([np.mean(r["spread"]["prior"]) for r in rs])
        print(f"{t:22s} prior {p}  prior(k=1) {p1}  no-prior {np.mean([r['no_prior'] for r in rs]):.4f}  "
              f"nearest {np.mean([r['nearest'] for r in rs]):.4f}  floor {np.nanmean([r['floor'] for r in rs]):.4f}  "
              f"spread {sp:.2f}  cos(text, real mean) {np.mean([r['cos_text_to_real_mean'] for r in rs]):.3f}")
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1])
