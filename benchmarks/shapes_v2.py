"""Issue #21's measurements on Shapes v2 with the shipped v2 checkpoints: ``python -m benchmarks.shapes_v2 [--tiny]``
writes ``benchmarks/shapes_v2.json`` and ``benchmarks/SHAPES_V2.md``.

1. **The prior ablation in embedding space** (:mod:`dalle2_lessons.prior_ablation`): prior (best of 2, and 1
   candidate) vs no prior vs nearest neighbour, energy distance to K = 64 real image embeddings per caption and spread
   ratio, by caption kind, 95% intervals over 3 evaluation seeds.
2. **End to end at 64×64** (:mod:`dalle2_lessons.scorecard`): text → prior (or the text embedding: "no prior") →
   32-px decoder (guidance :data:`~dalle2_lessons.unclip.DECODER_SCALE`, section 5's pick) → 64-px upsampler
   (reading the decoder's samples through the blur of :data:`~dalle2_lessons.unclip.UPSAMPLER_INPUT_BLUR`, section 4's
   pick); fidelity (all mentioned attributes read right by the strict judge), diversity of the free attributes and
   the background, Shapes FID next to its real-vs-real floor; 3 seeds.
3. **What a Shapes FID means** (:func:`~dalle2_lessons.scorecard.fid_calibration`): the same FID, on the same
   captions and set sizes as section 2, for real renders made worse in known ways (a Gaussian blur of σ px; rendered
   at the decoder's 32 px and enlarged by bicubic interpolation or by the course upsampler, the cascade's ceiling:
   what a perfect decoder would score).
4. **Where the cascade loses its FID** (:func:`~dalle2_lessons.scorecard.stage_generators`): unCLIP's own decoder
   samples, scored after the upsampler reading them as they are, enlarged by bicubic interpolation instead, and
   upsampled after a Gaussian blur of their input (the corruption the upsampler was trained to undo), its σ picked on
   the captions of other evaluation seeds (:func:`pick_input_blur`) and made the pipeline's default.
5. **The decoder's guidance scale** (:func:`pick_decoder_scale`): the pipeline end to end at each of
   :data:`CANDIDATE_SCALES` on the captions of the same other seeds, and the scale picked there made the pipeline's
   default (:data:`~dalle2_lessons.unclip.DECODER_SCALE`).
6. **Full captions at a larger set** (:func:`full_caption_set`): section 2's unCLIP row and section 3's rows on
   full captions only, :data:`FULL_CAPTIONS` of them per seed instead of section 2's two, where the floor is far from
   0; with one more row, the decoder fed the CLIP embeddings of real renders (a perfect prior), so the gap to the
   floor splits into what the upsampler, the decoder and the prior each add.

About two hours on 2 CPU cores (6,740 s with the shipped checkpoints, 2026-12-05); every section can be kept from
the last run with its ``--reuse-…`` flag when what it depends on is unchanged (``--tiny``: a smoke run of minutes
whose numbers mean nothing). Too long for one sitting? ``--stop-after N`` ends after section N, keeping what it
measured in ``shapes_v2.partial.json`` with the checkpoints, sizes and sampling it ran with; ``--resume`` later takes
up those sections (when those still match) and measures the rest.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

import torch

from dalle2_lessons import checkpoints, decoder, diffusion, prior, prior_ablation, scorecard
from dalle2_lessons.unclip import DECODER_SCALE, UPSAMPLER_INPUT_BLUR, UnCLIP

HERE = Path(__file__).resolve().parent
FULL = {"seeds": (0, 1, 2), "ablation_captions": 2, "ablation_k": 64, "card_captions": 2, "card_k": 16,
        "decoder_steps": 25, "upsampler_steps": 15}
TINY = {"seeds": (0, 1), "ablation_captions": 1, "ablation_k": 8, "card_captions": 1, "card_k": 4,
        "decoder_steps": 2, "upsampler_steps": 2}
#: Section 4 picks the blur of the upsampler's input on captions of these evaluation seeds (none of the scored ones)
VALIDATION_SEEDS = {"full": (10, 11, 12), "tiny": (10, 11)}
#: σ (px at 32) tried besides none (the "input as it is" row); the upsampler trained on blurs in [0, 0.8]. Since it
#: learnt from area-averaged downsamples (what the renderer, and so the decoder, draws), 0.5 and more cost more than
#: they give (section 4's validation, 2,600- and 6,600-step decoders: 537 and 646 at 0.5 against 491 and 373 at 0.3).
CANDIDATE_BLURS = (0.15, 0.3, 0.5)
#: Section 4's decoder guidance: the pipeline's when σ was picked, kept so its rows stay what they measured
STAGES_DECODER_SCALE = 3.0
#: Decoder guidance scales section 5 tries. The 2,600-step decoder's run tried 1.5-3 and found 1.5 and 2 tied, 2.5 and
#: 3 worse; the 6,600-step decoder draws well with less guidance (DECODER_PREDICTION.md: 93% of reconstructions all
#: correct at guidance 1), so the range moved down to 1 (no guidance).
CANDIDATE_SCALES = (1.0, 1.25, 1.5, 2.0)
TARGETS = {"full": 0.95, scorecard.PARTIAL: 0.90}  #: issue #21's fidelity targets, which a picked scale must meet
#: Section 6's full captions per seed (section 2 scores two of each kind: a floor of 32 renders is mostly noise)
FULL_CAPTIONS = {"full": 8, "tiny": 2}


def pick_input_blur(pipe, size: dict, seeds: tuple[int, ...]) -> tuple[float, dict[str, dict]]:
    """Score unCLIP's decoder samples of ``seeds``' captions through the upsampler with each of
    :data:`CANDIDATE_BLURS` on its input and without, and pick the σ with the lowest mean Shapes FID on partial
    captions (whose floor, unlike full captions', is well above 0). Returns ``(σ, {row: scorecard})``."""
    gens = scorecard.stage_generators(pipe, CANDIDATE_BLURS, size["upsampler_steps"],
                                      decoder_steps=size["decoder_steps"], upsampler_input_blur=0.0,
                                      decoder_scale=STAGES_DECODER_SCALE)
    cards = {name: scorecard.scorecard(gen, seeds, size["card_captions"], size["card_k"]) for name, gen in gens.items()
             if name != "decoder + bicubic"}
    fid = {b: cards[blurred_row(b)][scorecard.PARTIAL]["fid"]["mean"] for b in (0.0, *CANDIDATE_BLURS)}
    return min(fid, key=fid.get), cards


def blurred_row(blur: float) -> str:
    """The name :func:`~dalle2_lessons.scorecard.stage_generators` gives the row of input blur σ = ``blur``."""
    return f"decoder + upsampler, input blurred σ={blur:g}" if blur else "decoder + upsampler"


def pick_decoder_scale(pipe, size: dict, seeds: tuple[int, ...]) -> tuple[float, dict[str, dict]]:
    """Score the pipeline end to end (its input blur, section 2's DDIM steps) with each of :data:`CANDIDATE_SCALES` as
    the decoder's guidance on ``seeds``' captions, and pick, among the scales whose mean fidelity meets
    :data:`TARGETS` on both caption groups, the one with the lowest mean Shapes FID on partial captions (the same
    rule as :func:`pick_input_blur`; if none meets them, among all). Returns ``(scale, {row: scorecard})``."""
    cards = {f"decoder guidance {g:g}": scorecard.scorecard(
        scorecard.pipeline_generator(pipe, decoder_steps=size["decoder_steps"], upsampler_steps=size["upsampler_steps"],
                                     decoder_scale=g), seeds, size["card_captions"], size["card_k"])
        for g in CANDIDATE_SCALES}
    card_of = {g: cards[f"decoder guidance {g:g}"] for g in CANDIDATE_SCALES}
    meets = [g for g, card in card_of.items() if all(card[k]["fidelity"]["mean"] >= t for k, t in TARGETS.items())]
    return min(meets or CANDIDATE_SCALES, key=lambda g: card_of[g][scorecard.PARTIAL]["fid"]["mean"]), cards


def upsampler_alone(pipe, size: dict):
    """Sections 3 and 6's ``upsample_fn``: real 32-px renders ``low`` → the pipeline's upsampler (its input blur, the
    DDIM steps of ``size``), noise seeded from the evaluation seed."""
    return lambda low, seed: pipe.upsample(low, size["upsampler_steps"], torch.Generator().manual_seed(seed))


def full_caption_set(pipe, size: dict, n_captions: int) -> dict[str, dict]:
    """Section 6: on ``n_captions`` full captions per seed (``size``'s seeds, K and DDIM steps), the pipeline's
    scorecard (:func:`~dalle2_lessons.scorecard.scorecard` of its defaults, as section 2) and the rows of
    :func:`~dalle2_lessons.scorecard.fid_calibration`, with the cascade run from real 32-px renders (the upsampler
    alone: a perfect decoder) and from their CLIP image embeddings (decoder and upsampler: a perfect prior).
    Returns ``{"card": scorecard, "calibration": {"full": {row: interval}}}``."""

    def from_embeddings(low: torch.Tensor, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1000 * seed)
        decoded = pipe.decode(pipe.embed(low), DECODER_SCALE, size["decoder_steps"], gen)
        return pipe.upsample(decoded, size["upsampler_steps"], gen)

    gen = scorecard.pipeline_generator(pipe, decoder_steps=size["decoder_steps"],
                                       upsampler_steps=size["upsampler_steps"])
    card = scorecard.scorecard(gen, size["seeds"], n_captions, size["card_k"], kinds=("full",))
    cal = scorecard.fid_calibration(size["seeds"], n_captions, size["card_k"], base=pipe.decoder.config.unet.resolution,
                                    upsample_fn=upsampler_alone(pipe, size), groups=("full",),
                                    reconstruct_fn=from_embeddings)
    return {"card": card, "calibration": cal}


class Partial:
    """The sections an unfinished run (``--stop-after``) measured, in ``shapes_v2.partial.json`` beside the
    checkpoints, sizes and sampling they ran with; ``--resume`` takes them up only while those are unchanged."""

    def __init__(self, path: Path, key: dict, resume: bool):
        self.path, self.key = path, json.loads(json.dumps(key))  # as it reads back (tuples become lists)
        old = json.loads(path.read_text()) if resume and path.is_file() else None
        fits = old is not None and old.get("key") == self.key
        if old is not None and not fits:
            print(f"{path.name} ran with other checkpoints, sizes or sampling: measuring everything again")
        self.sections: dict = old["sections"] if fits else {}
        self.seconds: dict = old["seconds"] if fits else {}

    def get(self, name: str):
        """What the partial run measured for section ``name`` (None if it did not)."""
        if name in self.sections:
            print(f"{name} reused from {self.path.name} ({self.seconds[name]} s when measured)")
        return self.sections.get(name)

    def put(self, name: str, value, seconds: int) -> None:
        self.sections[name], self.seconds[name] = value, seconds
        self.path.write_text(json.dumps({"key": self.key, "sections": self.sections, "seconds": self.seconds},
                                        indent=1) + "\n")


def sampling() -> dict[str, str]:
    """How the pictures were sampled, beside the checkpoints' hashes: the DDIM timestep spacing of each stage, the
    blur the pipeline puts on the decoder's samples before the upsampler reads them, and the decoder's guidance."""
    default = inspect.signature(diffusion.sample_ddim).parameters["spacing"].default  # the upsampler's and prior's
    return {"decoder spacing": decoder.SPACING, "upsampler spacing": default, "prior spacing": default,
            "upsampler input blur": f"σ = {UPSAMPLER_INPUT_BLUR:g} px", "decoder guidance": f"{DECODER_SCALE:g}"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--reuse-ablation", action="store_true",
                   help="keep section 1 from the last run's shapes_v2.json if it used the same CLIP, prior and sizes "
                        "(section 1 reads no decoder or upsampler)")
    p.add_argument("--reuse-scorecard", action="store_true",
                   help="keep section 2 from the last run's shapes_v2.json if it used the same checkpoints, sizes "
                        "and sampling")
    p.add_argument("--reuse-stages", action="store_true",
                   help="keep section 4 (its validation pick, and its rows if the pick is the same) from the last run "
                        "if it used the same checkpoints, sizes and DDIM spacings")
    p.add_argument("--reuse-guidance", action="store_true",
                   help="keep section 5 from the last run if it used the same checkpoints, sizes and sampling other "
                        "than the decoder's guidance (which section 5 sets itself)")
    p.add_argument("--reuse-full-set", action="store_true",
                   help="keep section 6 from the last run if it used the same checkpoints, sizes and sampling")
    p.add_argument("--reuse-calibration", action="store_true",
                   help="keep section 3 from the last run's shapes_v2.json if it used the same checkpoints, sizes "
                        "and sampling but for the decoder's guidance (section 3 has no decoder)")
    p.add_argument("--stop-after", type=int, choices=range(1, 7), default=None,
                   help="end after this section, keeping what was measured in shapes_v2.partial.json")
    p.add_argument("--resume", action="store_true",
                   help="take up the sections shapes_v2.partial.json holds, if they ran with the same checkpoints, "
                        "sizes and sampling")
    args = p.parse_args(argv)
    size = TINY if args.tiny else FULL
    out = Path(args.out)
    shas = {n: checkpoints.read_meta(n, checkpoints.shipped_dir())["sha256"][:12]
            for n in ("clip-v2", "prior-v2", "decoder-v2", "upsampler-v2", "judge-single-v2")}
    start = t0 = time.time()
    seconds: dict[str, int] = {}  # per section: measured now, or the last run's for a reused one
    pipe = UnCLIP.load(version="v2")
    how = sampling()  # section 2 runs the pipeline with its defaults, section 3 its upsampler with its input blur
    part = Partial(out / "shapes_v2.partial.json", {"checkpoints": shas, "sizes": size, "sampling": how}, args.resume)

    def done(section: int, name: str, value) -> bool:
        """Keep section ``section``'s result for ``--resume``; True if the run stops here."""
        part.put(name, value, seconds[name])
        if args.stop_after == section:
            print(f"stopped after section {section} ({time.time() - start:.0f} s); "
                  f"`python -m benchmarks.shapes_v2 --resume` measures the rest")
        return args.stop_after == section

    last = json.loads((out / "shapes_v2.json").read_text()) if (out / "shapes_v2.json").is_file() else None
    same = last is not None and all(last["checkpoints"].get(n) == shas[n] for n in ("clip-v2", "prior-v2")) and all(
        last["sizes"][k] == size[k] for k in ("ablation_captions", "ablation_k")) and tuple(
        last["sizes"]["seeds"]) == size["seeds"]
    if args.reuse_ablation and same:
        ablation, seconds["ablation"] = last["ablation"], last["seconds"]["ablation"]
        print("section 1 reused from the last run (same CLIP, prior and sizes)")
    elif (ablation := part.get("ablation")) is not None:
        seconds["ablation"] = part.seconds["ablation"]
    else:
        cfg = prior.PriorSettings(**{**vars(prior.PRESETS["ci" if args.tiny else "cpu"]), "version": "v2"})
        data = prior.PriorData.build(pipe.clip, cfg.n_train, version="v2")
        rows = prior_ablation.ablation(pipe.prior, pipe.clip, data, cfg, size["seeds"], size["ablation_captions"],
                                       size["ablation_k"])
        ablation = prior_ablation.summary_table(rows)
    print(prior_ablation.format_summary(ablation), flush=True)
    seconds.setdefault("ablation", round(time.time() - t0))
    if done(1, "ablation", ablation):
        return
    t0 = time.time()
    same_sampling = last is not None and last.get("sampling") == how
    # section 4 names its rows' input blur and decoder guidance; section 5 sets the guidance of its own
    without = lambda d, *keys: {k: v for k, v in d.items() if k not in keys}  # noqa: E731
    same_steps = last is not None and without(last.get("sampling", {}), "upsampler input blur", "decoder guidance") \
        == without(how, "upsampler input blur", "decoder guidance")
    same_but_guidance = last is not None and without(last.get("sampling", {}), "decoder guidance") == without(
        how, "decoder guidance")
    same_run = last is not None and last["checkpoints"] == shas and last["sizes"] == {
        **size, "seeds": list(size["seeds"])}
    if args.reuse_scorecard and same_run and same_sampling:
        cards, seconds["scorecard"] = last["scorecard"], last["seconds"]["scorecard"]
        print("section 2 reused from the last run (same checkpoints, sizes and sampling)")
    elif (cards := part.get("scorecard")) is not None:
        seconds["scorecard"] = part.seconds["scorecard"]
    else:
        cards = {}
        for name, kwargs in (("unCLIP (prior)", {}), ("no prior (text embedding)", {"use_prior": False})):
            gen = scorecard.pipeline_generator(pipe, decoder_steps=size["decoder_steps"],
                                               upsampler_steps=size["upsampler_steps"], **kwargs)
            cards[name] = scorecard.scorecard(gen, size["seeds"], size["card_captions"], size["card_k"])
            print(f"{name}\n{scorecard.format_scorecard(cards[name])}", flush=True)
    seconds.setdefault("scorecard", round(time.time() - t0))
    if done(2, "scorecard", cards):
        return
    t0 = time.time()
    if args.reuse_calibration and same_run and same_but_guidance and "calibration" in last:  # no decoder in it
        cal, seconds["calibration"] = last["calibration"], last["seconds"]["calibration"]
        print("section 3 reused from the last run (same checkpoints, sizes and upsampler sampling)")
    elif (cal := part.get("calibration")) is not None:
        seconds["calibration"] = part.seconds["calibration"]
    else:
        cal = scorecard.fid_calibration(size["seeds"], size["card_captions"], size["card_k"],
                                        base=pipe.decoder.config.unet.resolution,
                                        upsample_fn=upsampler_alone(pipe, size))
    print(scorecard.format_calibration(cal, cards), flush=True)
    seconds.setdefault("calibration", round(time.time() - t0))
    if done(3, "calibration", cal):
        return
    t0 = time.time()
    reuse = args.reuse_stages and same_run and same_steps
    kept = part.get("stages")
    if kept is not None:
        blur, validation, stages, seconds["stages"] = kept["pick"], kept["validation"], kept["rows"], \
            part.seconds["stages"]
        reuse = False
    elif reuse and "validation" in last:
        blur, validation = last["validation"]["pick"], last["validation"]["cards"]
        print(f"section 4's validation reused from the last run: σ = {blur:g}")
    else:
        blur, validation = pick_input_blur(pipe, size, VALIDATION_SEEDS["tiny" if args.tiny else "full"])
        print(f"picked on validation captions: σ = {blur:g}\n{format_stages(validation)}", flush=True)
    if kept is None and reuse and blurred_row(blur) in last.get("stages", {}):
        stages = last["stages"]
        if "validation" in last:  # nothing of section 4 measured now: its time is the last run's
            seconds["stages"] = last["seconds"]["stages"]
        print("section 4's rows reused from the last run (same checkpoints, sizes and σ)")
    elif kept is None:  # σ = 0 is the row of the input as it is, which every run has
        stage_gens = scorecard.stage_generators(pipe, (blur,) if blur else (), size["upsampler_steps"],
                                                decoder_steps=size["decoder_steps"], upsampler_input_blur=0.0,
                                                decoder_scale=STAGES_DECODER_SCALE)
        stages = {name: scorecard.scorecard(gen, size["seeds"], size["card_captions"], size["card_k"])
                  for name, gen in stage_gens.items()}
    print(format_stages(stages), flush=True)
    seconds.setdefault("stages", round(time.time() - t0))
    if done(4, "stages", {"pick": blur, "validation": validation, "rows": stages}):
        return
    t0 = time.time()
    validation_seeds = VALIDATION_SEEDS["tiny" if args.tiny else "full"]
    if args.reuse_guidance and same_run and same_but_guidance and "guidance" in last:
        guidance, seconds["guidance"] = last["guidance"], last["seconds"]["guidance"]
        print(f"section 5 reused from the last run: decoder guidance {guidance['pick']:g}")
    elif (guidance := part.get("guidance")) is not None:
        seconds["guidance"] = part.seconds["guidance"]
    else:
        scale, scale_cards = pick_decoder_scale(pipe, size, validation_seeds)
        guidance = {"seeds": validation_seeds, "pick": scale, "cards": scale_cards}
    print(format_stages(guidance["cards"], "decoder guidance"), flush=True)
    seconds.setdefault("guidance", round(time.time() - t0))
    if done(5, "guidance", guidance):
        return
    t0 = time.time()
    n_full = FULL_CAPTIONS["tiny" if args.tiny else "full"]
    if args.reuse_full_set and same_run and same_sampling and last.get("full_set", {}).get("captions") == n_full:
        full_set, seconds["full_set"] = last["full_set"], last["seconds"]["full_set"]
        print("section 6 reused from the last run (same checkpoints, sizes and sampling)")
    elif (full_set := part.get("full_set")) is not None:
        seconds["full_set"] = part.seconds["full_set"]
    else:
        full_set = {"captions": n_full, **full_caption_set(pipe, size, n_full)}
    full_table = scorecard.format_calibration(full_set["calibration"], {"unCLIP (prior)": full_set["card"]})
    print(full_table, flush=True)
    seconds.setdefault("full_set", round(time.time() - t0))
    if done(6, "full_set", full_set):
        return
    result = {"sizes": size, "checkpoints": shas, "sampling": how, "ablation": ablation, "scorecard": cards,
              "calibration": cal, "stages": stages, "validation": {
                  "seeds": validation_seeds, "pick": blur, "cards": validation}, "guidance": guidance,
              "full_set": full_set, "seconds": seconds,
              "threads": torch.get_num_threads()}
    (out / "shapes_v2.json").write_text(json.dumps(result, indent=1) + "\n")
    cell = lambda iv: f"{iv['mean']:.0f} ± {(iv['high'] - iv['low']) / 2:.0f}"  # noqa: E731
    floor2, floor6 = cards["unCLIP (prior)"]["full"]["fid_floor"], full_set["calibration"]["full"]["floor"]["mean"]
    ratio = lambda iv: f"{iv['mean'] / floor6:.1f}×" if floor6 > 0 else "— (a floor of 0)"  # noqa: E731
    md = ["# Shapes v2: what the prior is for, measured (issue #21)\n",
          f"Checkpoints (sha256 prefixes): {', '.join(f'`{k}` {v}' for k, v in shas.items())}. Sizes: {size}. "
          f"Sampling: {', '.join(f'{k} {v}' for k, v in how.items())}. "
          f"{torch.get_num_threads()} threads; {' + '.join(f'{v} s' for v in seconds.values())} "
          "(sections 1, 2, 3, 4, 5, 6).\n",
          "## 1. Prior ablation in embedding space\n",
          "Energy distance to K real image embeddings of each caption (lower is better; `floor` = K other real "
          "renders), mean ± half-width of the 95% interval over seeds; last column the prior's spread ratio.\n",
          "```\n" + prior_ablation.format_summary(ablation) + "\n```\n",
          "## 2. End to end at 64×64\n"]
    for name, card in cards.items():
        md += [f"**{name}**\n", "```\n" + scorecard.format_scorecard(card) + "\n```\n"]
    md += ["## 3. What a Shapes FID means\n",
           "The same Shapes FID against the same real renders as section 2, for real renders of the same captions "
           "made worse in known ways: a Gaussian blur of σ pixels at 64×64; rendered at the decoder's resolution and "
           "enlarged by bicubic interpolation, or by the course upsampler (what the cascade would score with a "
           "perfect decoder). Mean ± half-width of the 95% interval over seeds.\n",
           "```\n" + scorecard.format_calibration(cal, cards) + "\n```\n",
           "## 4. Where the cascade loses its Shapes FID\n",
           f"unCLIP's own 32-px decoder samples (the prior, decoder guidance {STAGES_DECODER_SCALE:g}, the DDIM "
           "steps of section 2), brought to 64 px "
           "three ways and scored as in section 2: by the course upsampler reading them as they are (the pipeline "
           "as it was before this section: `upsampler_input_blur=0`); by bicubic interpolation; by the upsampler "
           "after a Gaussian blur of its input (σ px at 32 px, inside the range of the blur it was trained to "
           "undo; conditioning augmentation at sampling time). Mean ± half-width of the 95% interval over seeds; "
           "the floor is section 2's.\n",
           "```\n" + format_stages(stages) + "\n```\n",
           f"σ = {blur:g} was picked from {', '.join(f'{b:g}' for b in (0.0, *CANDIDATE_BLURS))} by the lowest "
           "Shapes FID on partial captions of other evaluation seeds "
           f"({', '.join(map(str, result['validation']['seeds']))}), "
           "none of those scored above:\n",
           "```\n" + format_stages(validation) + "\n```\n",
           (f"The pipeline reads its decoder's samples through this blur by default (`unclip.UPSAMPLER_INPUT_BLUR` = "
            f"{UPSAMPLER_INPUT_BLUR:g}): sections 2 and 3 ran with it.\n" if blur == UPSAMPLER_INPUT_BLUR else
            f"**The pick differs from the pipeline's default** (`unclip.UPSAMPLER_INPUT_BLUR` = "
            f"{UPSAMPLER_INPUT_BLUR:g}, with which sections 2 and 3 ran).\n"),
           "## 5. The decoder's guidance scale\n",
           "The pipeline end to end, as in section 2 (the prior, the upsampler's input blur σ = "
           f"{UPSAMPLER_INPUT_BLUR:g}), with each decoder guidance scale, on the captions of the validation seeds "
           f"({', '.join(map(str, validation_seeds))}); none of them scored in sections 2–4. Classifier-free guidance "
           "trades the spread of a caption's samples for their fidelity (lesson 05); a Shapes FID sees both. The pick: "
           "among the scales whose mean fidelity meets the targets (≥ "
           f"{TARGETS['full']:.0%} on full, ≥ {TARGETS[scorecard.PARTIAL]:.0%} on partial captions), the lowest "
           "Shapes FID on partial captions, the rule of section 4. Mean ± half-width of the 95% interval over seeds.\n",
           "```\n" + format_stages(guidance["cards"], "decoder guidance") + "\n```\n",
           (f"Picked: {guidance['pick']:g}, the pipeline's default (`unclip.DECODER_SCALE`); section 2 ran with "
            "it.\n" if guidance["pick"] == DECODER_SCALE else
            f"**The pick ({guidance['pick']:g}) differs from the pipeline's default** (`unclip.DECODER_SCALE` = "
            f"{DECODER_SCALE:g}, with which section 2 ran).\n"),
           "## 6. Full captions at a larger set\n",
           f"Section 2 scores {size['card_captions']} full captions per seed ({size['card_captions'] * size['card_k']} "
           "samples against as many real renders, in a 256-wide feature space); its full-caption floor reads "
           f"{cell(floor2)}{' (an interval that reaches 0: no ratio to it means much)' if floor2['low'] <= 0 else ''}. "
           f"Here {n_full} full captions "
           f"per seed (K = {size['card_k']} each, the same seeds, sampling and judge), unCLIP end to end (fidelity "
           f"{full_set['card']['full']['fidelity']['mean']:.1%}) and the rows of section 3 on the same captions, with "
           "the cascade run from real renders twice: the upsampler on the 32-px renders (a perfect decoder), and the "
           "decoder fed the CLIP image embeddings of those renders, then the upsampler (a perfect prior). Mean ± "
           "half-width of the 95% interval over seeds.\n",
           "```\n" + full_table + "\n```\n",
           "As ratios to this floor (issue #21's target for unCLIP: within 2×): " + ", ".join(
               f"{name} {ratio(full_set['calibration']['full'][row])}" for name, row in (
                   ("the upsampler alone", "upsampler from 32"),
                   ("decoder + upsampler", "decoder + upsampler from real embeddings")))
           + f", unCLIP end to end {ratio(full_set['card']['full']['fid'])}.\n"]
    (out / "SHAPES_V2.md").write_text("\n".join(md))
    part.path.unlink(missing_ok=True)  # every section is in shapes_v2.json now
    print(f"wrote {out / 'SHAPES_V2.md'} ({time.time() - start:.0f} s)")


SHOWN = {"decoder + upsampler": "decoder + upsampler, input as it is"}  #: section 4 runs it with no input blur


def format_stages(stages: dict[str, dict], label: str = "32 px → 64 px") -> str:
    """Sections 4 and 5's tables: per row (a way of reaching 64 px, or a decoder guidance scale: ``label``), fidelity
    and Shapes FID (with its floor) on full and partial captions, ``mean±half-width`` of the 95% interval."""

    def cell(iv: dict[str, float], pct: bool = False) -> str:
        half = (iv["high"] - iv["low"]) / 2
        return f"{iv['mean']:.1%}±{half:.1%}" if pct else f"{iv['mean']:.0f}±{half:.0f}"

    width = max(len(SHOWN.get(name, name)) for name in stages) + 2
    groups = ("full", scorecard.PARTIAL)
    head = f"{label:{width}s}" + "".join(f"{f'{m} {g}':>18s}" for g in groups for m in ("fidelity", "FID"))
    lines = [head, "-" * len(head)]
    lines += [f"{SHOWN.get(name, name):{width}s}" + "".join(
        f"{cell(card[g]['fidelity'], True):>18s}{cell(card[g]['fid']):>18s}" for g in groups)
        for name, card in stages.items()]
    card = next(iter(stages.values()))
    lines.append(f"{'floor (real vs real)':{width}s}" + "".join(f"{'':>18s}{cell(card[g]['fid_floor']):>18s}"
                                                               for g in groups))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
