"""Bring your own data (lesson 14): real image datasets with captions, for the same unCLIP pipeline.

Three of torchvision's datasets become captioned datasets, each image with a few paraphrased captions of its class
("a handwritten seven", "a photo of a cat"), and a plain folder format takes your own pictures::

    my_pictures/
        captions.csv        file,caption              (several rows for one file = paraphrases)
                            cat1.jpg,a cat on a sofa
                            cat1.jpg,a sleeping cat
        cat1.jpg ...
    or captions.jsonl       {"file": "cat1.jpg", "caption": "a cat on a sofa"}   ("captions": [...] also works)

Everything becomes a :class:`CaptionedImages`: ``(N, 3, 32, 32)`` images in [-1, 1] (grey images get three equal
channels; other sizes are centre-cropped and resized) with their captions. The course's models then train on it with
the same losses as lessons 01 and 06–08 (:func:`train_stages`).

**Nothing is downloaded unless you ask** (``download=True``) and the network is there; otherwise a clear
:class:`DataNotFound` says where the files should be and how to get them. :func:`write_standin` writes small
*stand-in* files in exactly the formats torchvision reads (MNIST's IDX files, CIFAR-10's pickled batches) with a
digit glyph per class instead of real pictures: the tests and the ``ci`` profile run the whole lesson on them,
offline. :func:`write_folder_standin` writes a folder of Shapes renders with their captions.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import pickle
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoints
from . import tokenizer as tokenizer_lib

#: Where torchvision's files go by default (git ignores it): ``data/downloads`` in the course checkout.
DOWNLOADS = checkpoints.REPO_ROOT / "data" / "downloads"
SIZE = 32  #: every image becomes SIZE × SIZE: the upsampler's output; the decoder works at SIZE / 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class DataNotFound(FileNotFoundError):
    """A dataset's files are missing (or could not be downloaded); the message says what to do."""


@dataclass(frozen=True)
class TorchvisionDataset:
    """How one torchvision dataset becomes captioned images."""

    key: str  #: our name: ``mnist``, ``fashion_mnist``, ``cifar10``
    torchvision_class: str  #: the class in ``torchvision.datasets``
    folder: str  #: where torchvision keeps its files under ``root``
    classes: tuple[str, ...]  #: class names *as words in a caption*, in torchvision's label order
    templates: tuple[str, ...]  #: caption paraphrases; ``{}`` is the class name
    megabytes: int  #: download size
    grey: bool = True


#: The datasets :func:`load_torchvision` knows. Fashion-MNIST's "T-shirt/top" becomes "t-shirt", "Trouser" "pair of
#: trousers", CIFAR-10's "automobile" "car": words people write in captions.
DATASETS: dict[str, TorchvisionDataset] = {
    "mnist": TorchvisionDataset(
        "mnist", "MNIST", "MNIST/raw",
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
        ("a handwritten {}", "the digit {} written by hand", "a picture of the number {}", "a {} in handwriting"), 12),
    "fashion_mnist": TorchvisionDataset(
        "fashion_mnist", "FashionMNIST", "FashionMNIST/raw",
        ("t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
        ("a photo of a {}", "a picture of a {}", "a {} on a plain background", "a product photo of a {}"), 31),
    "cifar10": TorchvisionDataset(
        "cifar10", "CIFAR10", "cifar-10-batches-py",
        ("airplane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        ("a photo of a {}", "a small photo of a {}", "a blurry photo of a {}", "a picture of a {}"), 163, grey=False),
}


def caption(template: str, name: str) -> str:
    """``("a photo of a {}", "airplane")`` → ``"a photo of an airplane"`` (the article follows the sound, roughly)."""
    text = template.format(name)
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


@dataclass
class CaptionedImages:
    """Images and their captions: what every stage of the pipeline trains on.

    ``labels``, ``classes`` and ``templates`` are there for labelled datasets (zero-shot classification needs them);
    a folder of your own pictures has captions only.
    """

    name: str
    images: torch.Tensor  #: ``(N, 3, 32, 32)`` float32 in [-1, 1]
    captions: list[list[str]]  #: ``N`` lists of paraphrases (at least one each)
    labels: torch.Tensor | None = None  #: ``(N,)`` int64 class indices
    classes: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: slice | torch.Tensor) -> CaptionedImages:
        idx = torch.arange(len(self))[index]
        return CaptionedImages(self.name, self.images[idx], [self.captions[i] for i in idx.tolist()],
                               None if self.labels is None else self.labels[idx], self.classes, self.templates)

    def __repr__(self) -> str:
        kind = f"{len(self.classes)} classes" if self.classes else "captions only"
        return f"CaptionedImages({self.name!r}, {len(self)} images {tuple(self.images.shape[1:])}, {kind})"

    def split(self, n_test: int, seed: int = 0) -> tuple[CaptionedImages, CaptionedImages]:
        """A random ``(train, test)`` split with ``n_test`` test images."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self[order[n_test:]], self[order[:n_test]]

    def class_prompts(self) -> list[list[str]]:
        """For each class, its caption under every template (the prompts of zero-shot classification)."""
        if self.classes is None or self.templates is None:
            raise ValueError(f"{self.name!r} has no class labels, so there is nothing to classify; "
                             "use retrieval instead.")
        return [[caption(t, c) for t in self.templates] for c in self.classes]

    def all_texts(self) -> list[str]:
        texts = [c for caps in self.captions for c in caps]
        return texts + ([p for ps in self.class_prompts() for p in ps] if self.classes else [])

    def tokenizer(self) -> tokenizer_lib.Tokenizer:
        """A word-level tokenizer whose vocabulary is every word of this dataset's captions and prompts."""
        return tokenizer_lib.Tokenizer.from_texts(self.all_texts(), source=f"{self.name} captions")

    def tokens(self, tok: tokenizer_lib.Tokenizer) -> torch.Tensor:
        """``(N, P, L)`` int64: every image's paraphrases, tokenised (images with fewer than ``P`` repeat theirs)."""
        p = max(len(c) for c in self.captions)
        unique = sorted({c for caps in self.captions for c in caps})
        ids = tok.encode_batch(unique)
        row = {text: i for i, text in enumerate(unique)}
        index = torch.tensor([[row[caps[k % len(caps)]] for k in range(p)] for caps in self.captions])
        return ids[index]


def to_course_images(pixels: np.ndarray | torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Raw uint8 pixels, ``(N, H, W)`` grey or ``(N, H, W, C)`` with C = 1, 3 or 4, → ``(N, 3, size, size)`` float32
    in [-1, 1]: scaled, grey repeated to three channels (alpha dropped), centre-cropped to a square and resized with
    anti-aliasing."""
    x = torch.tensor(np.asarray(pixels)).float() / 127.5 - 1  # a copy: torchvision arrays may be read-only
    if x.ndim == 3:
        x = x[..., None]
    x = x[..., :3].permute(0, 3, 1, 2)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    return x.clamp(-1, 1).contiguous()


def _captions_for(labels: torch.Tensor, info: TorchvisionDataset) -> list[list[str]]:
    by_class = [[caption(t, c) for t in info.templates] for c in info.classes]
    return [by_class[i] for i in labels.tolist()]


@contextlib.contextmanager
def _skip_checksums(module) -> Iterator[None]:
    """torchvision compares some files' MD5 with the real dataset's; stand-in files cannot match, so while this is
    active a file only has to exist."""
    original = module.check_integrity
    module.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)
    try:
        yield
    finally:
        module.check_integrity = original


def load_torchvision(
    name: str, root: str | Path = DOWNLOADS, train: bool = True, download: bool = False, n: int | None = None,
    seed: int = 0, verify: bool = True,
) -> CaptionedImages:
    """One of :data:`DATASETS` as captioned images, through torchvision.

    Args:
        root: the folder torchvision reads (and downloads into), e.g. ``root/MNIST/raw/...``.
        train: the training or the test split.
        download: fetch the files if they are missing (needs the network; offline this fails with a clear message).
        n: keep a random ``n`` images (seeded), e.g. to make a CPU run fast.
        verify: check the files' MD5 against the real dataset's (torchvision does this for CIFAR-10);
            ``False`` only for :func:`write_standin`'s files.
    Raises:
        DataNotFound: the files are not there (and were not downloaded); the message says how to get them.
    """
    import torchvision.datasets as tvd

    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or use load_folder() "
                         "for your own pictures.")
    info = DATASETS[name]
    cls = getattr(tvd, info.torchvision_class)
    module = importlib.import_module(cls.__module__)  # where torchvision's check_integrity is looked up
    where = Path(root) / info.folder
    how = (f"get it with load_torchvision({name!r}, root={str(root)!r}, download=True) on a machine with internet "
           f"(about {info.megabytes} MB), or copy torchvision's files for it into {where}")
    try:
        with contextlib.nullcontext() if verify else _skip_checksums(module):
            ds = cls(str(root), train=train, download=download)
    except (RuntimeError, OSError) as e:  # OSError: no network (URLError, socket and DNS errors)
        said = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if download or isinstance(e, OSError):
            raise DataNotFound(f"{info.torchvision_class} could not be downloaded into {root} ({said}). Is the network "
                               f"there? Otherwise {how}.") from e
        raise DataNotFound(f"{info.torchvision_class} is not in {where} (torchvision says: {said}). To use it, {how}. "
                           "Offline, write_standin() makes stand-in files in the same format.") from e
    pixels, labels = np.asarray(ds.data), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    if n is not None and n < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        pixels, labels = pixels[keep.numpy()], labels[keep]
    return CaptionedImages(name, to_course_images(pixels), _captions_for(labels, info), labels, info.classes,
                           info.templates)


def load_folder(folder: str | Path, name: str | None = None) -> CaptionedImages:
    """Your own pictures: a folder with images and a ``captions.csv`` (columns ``file``, ``caption``) or a
    ``captions.jsonl`` (``{"file": ..., "caption": ...}`` or ``"captions": [...]`` per line). Several captions
    for one file become its paraphrases; images without a caption are skipped (and counted in the message of an
    empty result)."""
    from PIL import Image

    folder = Path(folder)
    captions: dict[str, list[str]] = {}
    if (folder / "captions.csv").is_file():
        with open(folder / "captions.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "caption"} <= set(reader.fieldnames):
                raise ValueError(f"{folder / 'captions.csv'} needs a header with the columns 'file' and 'caption', "
                                 f"got {reader.fieldnames}.")
            for row in reader:
                captions.setdefault(row["file"], []).append(row["caption"].strip())
    elif (folder / "captions.jsonl").is_file():
        for i, line in enumerate((folder / "captions.jsonl").read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                record = json.loads(line)
                if "file" not in record or not ("caption" in record or "captions" in record):
                    raise ValueError(f"{folder / 'captions.jsonl'} line {i}: expected 'file' and 'caption' "
                                     f"(or 'captions'), got {sorted(record)}.")
                texts = record.get("captions") or [record["caption"]]
                captions.setdefault(record["file"], []).extend(t.strip() for t in texts)
    else:
        raise DataNotFound(f"No captions.csv or captions.jsonl in {folder}. Put your images there with a captions.csv "
                           "whose header is 'file,caption' (one row per caption).")
    missing = sorted(f for f in captions if not (folder / f).is_file())
    if missing:
        raise DataNotFound(f"{len(missing)} captioned file(s) are not in {folder}: {', '.join(missing[:5])}"
                           + (" ..." if len(missing) > 5 else ""))
    files = sorted(captions)
    if not files:
        raise ValueError(f"{folder} has a captions file but no captions in it.")
    pixels = [to_course_images(np.asarray(Image.open(folder / f).convert("RGB"))[None]) for f in files]
    return CaptionedImages(name or folder.name, torch.cat(pixels), [captions[f] for f in files])


# ----------------------------------------------------------------------------------------------
# Stand-in files: the real formats, made-up pictures (for tests, CI and offline machines).


def glyph_images(labels: np.ndarray, size: int, colour: bool, seed: int = 0) -> np.ndarray:
    """Class ``k`` drawn as the digit ``k``, jittered in size, place and angle: ``(N, size, size)`` uint8 (white on
    black) or ``(N, size, size, 3)`` (a class-tinted digit on a random dark background)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = []
    for k in labels.tolist():
        font_size = int(rng.integers(size * 5 // 8, size * 7 // 8 + 1))
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:  # Pillow < 10.1: one small bitmap font
            font = ImageFont.load_default()
        im = Image.new("L", (size, size))
        centre = (size / 2 + rng.uniform(-size / 10, size / 10), size / 2 + rng.uniform(-size / 10, size / 10))
        ImageDraw.Draw(im).text(centre, str(k), fill=255, font=font, anchor="mm")
        a = np.asarray(im.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR), dtype=np.float32) / 255
        if colour:
            hue = np.array([np.cos(k * 0.63), np.cos(k * 0.63 + 2.1), np.cos(k * 0.63 + 4.2)]) * 0.4 + 0.6
            background = rng.uniform(0, 0.35, 3)
            a = a[..., None] * hue + (1 - a[..., None]) * background
        out.append(np.clip(a * 255 + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: a big-endian magic (0, 0, type 0x08 = uint8, number of dimensions), the sizes, the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_standin(name: str, root: str | Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Write stand-in files for :data:`DATASETS` ``name`` under ``root``, in the format torchvision reads with
    ``download=False``: one glyph per class (:func:`glyph_images`), not the real pictures. Load them with
    ``load_torchvision(name, root, verify=False)``. Returns the folder written."""
    info = DATASETS[name]
    out = Path(root) / info.folder
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {"train": rng.integers(0, 10, n_train), "test": rng.integers(0, 10, n_test)}
    if info.grey:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            _write_idx(out / f"{prefix}-images-idx3-ubyte", glyph_images(splits[split], 28, False, seed + len(prefix)))
            _write_idx(out / f"{prefix}-labels-idx1-ubyte", splits[split])
        return out
    # CIFAR-10: five training batches and a test batch, each a pickled dict of (n, 3072) uint8 rows (R, G, B planes)
    # and a label list, plus batches.meta with the class names.
    train_parts = np.array_split(np.arange(n_train), 5)
    batches = ({f"data_batch_{i + 1}": splits["train"][part] for i, part in enumerate(train_parts)}
               | {"test_batch": splits["test"]})
    for i, (file, labels) in enumerate(batches.items()):
        pixels = glyph_images(labels, 32, True, seed + i).transpose(0, 3, 1, 2).reshape(len(labels), -1)
        with open(out / file, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels.tolist(), "batch_label": file}, f)
    with open(out / "batches.meta", "wb") as f:
        label_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle.dump({"label_names": label_names}, f)
    return out


def write_folder_standin(folder: str | Path, n: int = 64, seed: int = 0) -> Path:
    """A folder in :func:`load_folder`'s format: ``n`` Shapes renders (32×32 PNGs) and a ``captions.csv`` with two
    paraphrases each. Returns the folder."""
    from PIL import Image

    from . import shapes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = shapes.sample_scenes(n, "test", "single", seed=seed)
    pixels = shapes.to_uint8(shapes.render(scenes, SIZE)).permute(0, 2, 3, 1).numpy()
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "caption"])
        for i, attrs in enumerate(scenes.attrs):
            file = f"shape_{i:04d}.png"
            Image.fromarray(pixels[i]).save(folder / file)
            for template in (0, 1):
                writer.writerow([file, shapes.caption("single", attrs, template)])
    return folder


def load_or_standin(name: str, root: str | Path, n_train: int, n_test: int, download: bool, standin_root: str | Path,
                    seed: int = 0) -> tuple[CaptionedImages, CaptionedImages, bool]:
    """The lesson's loader: the real dataset (downloaded only if ``download``), else, with a printed reason, stand-in
    files written under ``standin_root``. Returns ``(train, test, is_real)``."""
    try:
        train = load_torchvision(name, root, True, download, n_train, seed)
        test = load_torchvision(name, root, False, download, n_test, seed)
        return train, test, True
    except DataNotFound as e:
        print(f"{e}\n\n→ Using stand-in files instead (digit glyphs in {name}'s format): the pipeline runs, "
              f"the pictures are not {name}.")
    write_standin(name, standin_root, n_train, n_test, seed)
    return (load_torchvision(name, standin_root, True, n=n_train, seed=seed, verify=False),
            load_torchvision(name, standin_root, False, n=n_test, seed=seed, verify=False), False)
