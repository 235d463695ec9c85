"""Facts about the course itself: where it lives and which lessons it has.

The repository address is written here and nowhere else: the Open-in-Colab badges and the Colab
setup cells of every notebook are generated from it by ``python -m dalle2_lessons.notebooks``.
A fork changes :data:`REPO` and re-runs that command.
"""

from __future__ import annotations

from dataclasses import dataclass

#: GitHub ``owner/name`` of the course repository.
REPO = "dalle2-from-scratch/dalle2-from-scratch"
REPO_URL = f"https://github.com/{REPO}"
BRANCH = "main"
#: Where the Colab setup cell clones the repository.
COLAB_CHECKOUT = "/content/dalle2-from-scratch"


@dataclass(frozen=True)
class Lesson:
    number: str
    slug: str
    title: str
    builds: str
    #: measured minutes of the whole notebook in the ``cpu`` and ``gpu`` profiles (None: not measured yet)
    cpu_minutes: float | None = None
    gpu_minutes: float | None = None

    @property
    def filename(self) -> str:
        return f"{self.number}_{self.slug}.ipynb"


#: The lessons that exist, in course order (see COURSE_MAP.md for the ones still to come).
LESSONS: tuple[Lesson, ...] = (
    Lesson("00", "welcome", "Welcome: the unCLIP map, the Shapes dataset and the judge",
           "the dataset tour (captions that leave things out, a background no caption names), a shape renderer, "
           "the strict judge and its scorecard", cpu_minutes=1.1),
    Lesson("01", "clip", "CLIP from scratch",
           "attention, the contrastive loss on Shapes v2's full and partial captions, zero-shot classification, "
           "retrieval, the modality gap, linear probes (the unnamed background too), a race with transformers",
           cpu_minutes=7.6),
    Lesson("02", "text_encoders", "What the text encoder must understand",
           "the stop-word filter, bags of words vs transformers inside CLIP, word-order and binding pair tests on "
           "two-object scenes, hard negatives",
           cpu_minutes=7.7),
    Lesson("03", "forward_diffusion", "The forward process: how diffusion destroys an image",
           "a noise schedule, one-step and closed-form noising, the judge's verdict on noise, "
           "the reverse-formula myth",
           cpu_minutes=1.7),
    Lesson("04", "ddpm_ddim", "Reverse diffusion: a U-Net, DDPM and DDIM",
           "a CPU-sized U-Net on 32-px Shapes, ε-prediction training, the DDPM and DDIM steps run on the course's "
           "U-Net, steps vs seconds vs readability, diversity and Shapes FID (paired 95% intervals), where a few-step "
           "sampler starts (leading vs trailing spacing)",
           cpu_minutes=5.7),
    Lesson("05", "guidance", "Conditioning and classifier-free guidance",
           "a caption-conditioned U-Net on Shapes v2, condition dropout, v-prediction, guidance, fidelity against the "
           "diversity of what partial captions leave free (95% intervals), a prompt widget",
           cpu_minutes=8.4),
    Lesson("06", "prior", "The diffusion prior: from a caption's embedding to an image's",
           "Shapes v2's partial captions, the modality gap they create, the prior's causal transformer, x0-prediction, "
           "two-candidate sampling, the paper's ablation on distributions (energy distance, spread, 95% intervals), "
           "guidance against variety",
           cpu_minutes=7.3),
    Lesson("07", "decoder", "The decoder: painting a picture from a CLIP image embedding",
           "context tokens in the U-Net's attention, two condition dropouts, v-prediction, reconstructions judged per "
           "attribute and background, the prior's samples drawn",
           cpu_minutes=8.4),
    Lesson("08", "upsampler", "The upsampler: more pixels, by diffusion",
           "a blurred low-resolution condition, random crops, a fully convolutional 32→64 upsampler, "
           "keeping the input's low frequencies, judged against bicubic",
           cpu_minutes=5.2),
    Lesson("09", "unclip_pipeline", "The whole system: text → CLIP → prior → decoder → upsampler",
           "the pipeline and its timing, variations, slerp interpolations, text diffs, DDIM inversion, "
           "a prompt widget, the paper's prior ablation end to end (fidelity, diversity, Shapes FID, 95% intervals), "
           "what an FID means (a blur ladder)",
           cpu_minutes=6.3),
    Lesson("10", "vae", "The family tree I: a conditional VAE, and why it needs a prior",
           "two encoder heads, the reparameterisation trick, the ELBO term by term, where the caption went (the swap "
           "test), a prior per caption fitted with your KL, fidelity against diversity with 95% intervals",
           cpu_minutes=7.6),
    Lesson("11", "gan", "The family tree II: a conditional GAN",
           "a generator and a real discriminator trained with your non-saturating and hinge losses, both players' "
           "curves, spectral norm, mode collapse measured as the variety of what captions leave free",
           cpu_minutes=5.1),
    Lesson("12", "dalle1", "The family tree III: DALL·E 1 — image tokens, a transformer, CLIP reranking",
           "vector quantisation, the straight-through estimator, codebook collapse and its fixes, "
           "a transformer over caption and image tokens, top-k, a key/value cache, CLIP reranking and what it does "
           "to captions that leave things out",
           cpu_minutes=8.2),
    Lesson("13", "family_comparison", "The family tree IV: every family, measured on the same captions",
           "VAE, GAN, DALL·E 1, text-to-pixels diffusion and unCLIP on Shapes v2's captions: the scorecard "
           "(fidelity, diversity, Shapes FID and its floor) and held-out pairs with 95% intervals, parameters, "
           "minutes, seconds, the entropy behind diversity, the Pareto front",
           cpu_minutes=4.8),
    Lesson("14", "your_own_data", "Bring your own data: the whole pipeline on real pictures",
           "captioned datasets from MNIST, Fashion-MNIST, CIFAR-10 or a folder, offline stand-ins, "
           "the four stages retrained, CLIP scores with a referee instead of the judge",
           cpu_minutes=8.1),
    Lesson("15", "paper_claims", "Capstone: the unCLIP paper's claims, measured in miniature",
           "variations against chance (what the embedding keeps), text diffs from DDIM-inverted noise, a GLIDE-like "
           "model that reads words, diversity against guidance, binding on two-object scenes, the paper's results "
           "beside the course's",
           cpu_minutes=5.6),
)


def colab_url(folder: str, filename: str) -> str:
    """Open-in-Colab address of ``folder/filename`` (``folder`` is ``notebooks`` or ``solutions``)."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{folder}/{filename}"


def colab_badge(folder: str, filename: str) -> str:
    """The Markdown badge that opens ``folder/filename`` in Colab."""
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(folder, filename)})")
