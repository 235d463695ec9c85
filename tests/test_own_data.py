"""Lesson 14's data adapters and the pipeline on them, on small files the tests write (no network)."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from dataclasses import replace

import numpy as np
import pytest
import torch

from dalle2_lessons import own_data, own_unclip
from dalle2_lessons.tokenizer import PromptError, Tokenizer


def test_to_course_images_handles_grey_rgb_rgba_and_odd_sizes():
    grey = np.zeros((2, 28, 28), np.uint8)
    grey[:, 10:18, 10:18] = 255
    x = own_data.to_course_images(grey)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert x.min() == -1 and x.max() == 1  # 0 → -1, 255 → +1 (the flat centre survives the resize)
    rgba = np.zeros((1, 40, 64, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # red, fully transparent: alpha is dropped, not applied
    y = own_data.to_course_images(rgba)
    assert y.shape == (1, 3, 32, 32)
    assert torch.allclose(y[:, 0], torch.ones(1, 32, 32)) and torch.allclose(y[:, 1], -torch.ones(1, 32, 32))
    wide = np.zeros((1, 20, 60, 3), np.uint8)
    wide[:, :, :20] = 255  # the left third is cropped away: a centre crop, not a squash
    assert own_data.to_course_images(wide).max() == -1


def test_captions_use_an_before_vowels():
    assert own_data.caption("a photo of a {}", "airplane") == "a photo of an airplane"
    assert own_data.caption("a {} in handwriting", "eight") == "an eight in handwriting"
    assert own_data.caption("a photo of a {}", "cat") == "a photo of a cat"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_standins_load_through_torchvision_without_download(tmp_path, name):
    import torchvision

    own_data.write_standin(name, tmp_path, n_train=30, n_test=10, seed=3)
    dataset_class = getattr(torchvision.datasets, own_data.DATASETS[name].torchvision_class)
    raw = dataset_class(str(tmp_path), train=True, download=False)
    assert tuple(raw.data.shape) == (30, 28, 28) and len(raw.targets) == 30  # torchvision itself reads our files
    data = own_data.load_torchvision(name, tmp_path, train=False)
    assert len(data) == 10 and data.images.shape == (10, 3, 32, 32) and data.classes == own_data.DATASETS[name].classes
    for labels, caps in zip(data.labels.tolist(), data.captions):
        assert len(caps) == 4 and data.classes[labels] in caps[0]
    some = own_data.load_torchvision(name, tmp_path, n=7, seed=1)
    assert len(some) == 7 and torch.equal(some.labels, own_data.load_torchvision(name, tmp_path, n=7, seed=1).labels)


def test_cifar_standin_needs_verify_false_and_restores_the_checksum_check(tmp_path):
    from torchvision.datasets import cifar

    own_data.write_standin("cifar10", tmp_path, n_train=25, n_test=5)
    with pytest.raises(own_data.DataNotFound, match="download=True"):
        own_data.load_torchvision("cifar10", tmp_path)  # torchvision checks the real files' MD5: stand-ins fail it
    original = cifar.check_integrity
    data = own_data.load_torchvision("cifar10", tmp_path, verify=False)
    assert cifar.check_integrity is original
    assert len(data) == 25 and data.images.shape == (25, 3, 32, 32)
    assert data.images.std(dim=1).mean() > 0.05  # colour pictures, not grey
    assert "car" in data.classes and "automobile" not in data.classes


def test_missing_dataset_says_what_to_do(tmp_path):
    with pytest.raises(own_data.DataNotFound) as e:
        own_data.load_torchvision("mnist", tmp_path)
    msg = str(e.value)
    assert "download=True" in msg and str(tmp_path / "MNIST" / "raw") in msg and "write_standin" in msg
    with pytest.raises(ValueError, match="choose one of mnist, fashion_mnist, cifar10"):
        own_data.load_torchvision("imagenet", tmp_path)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_download_without_network_fails_clearly(tmp_path, monkeypatch, name):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(own_data.DataNotFound, match="could not be downloaded") as e:
        own_data.load_torchvision(name, tmp_path, download=True)
    assert "on a machine with internet" in str(e.value)


def test_load_or_standin_falls_back_with_a_message(tmp_path, capsys):
    train, test, real = own_data.load_or_standin("fashion_mnist", tmp_path / "none", 20, 8, False, tmp_path / "standin")
    assert not real and len(train) == 20 and len(test) == 8
    assert "stand-in" in capsys.readouterr().out


def test_folder_format_csv_and_jsonl(tmp_path):
    folder = own_data.write_folder_standin(tmp_path / "pics", n=6)
    data = own_data.load_folder(folder)
    assert len(data) == 6 and data.images.shape == (6, 3, 32, 32) and data.labels is None
    assert all(len(c) == 2 for c in data.captions)
    with open(folder / "captions.csv") as f:
        rows = list(csv.DictReader(f))
    (folder / "captions.csv").unlink()
    lines = [json.dumps({"file": row["file"], "captions": [row["caption"], "another caption"]}) for row in rows[::2]]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    again = own_data.load_folder(folder)
    assert torch.equal(again.images, data.images) and again.captions[0] == [data.captions[0][0], "another caption"]


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(own_data.DataNotFound, match="captions.csv"):
        own_data.load_folder(tmp_path)
    (tmp_path / "captions.csv").write_text("image,text\nx.png,a cat\n")
    with pytest.raises(ValueError, match="'file' and 'caption'"):
        own_data.load_folder(tmp_path)
    (tmp_path / "captions.csv").write_text("file,caption\nx.png,a cat\n")
    with pytest.raises(own_data.DataNotFound, match="x.png"):
        own_data.load_folder(tmp_path)


def test_dataset_tokenizer_tokens_and_split():
    data = own_data.CaptionedImages("toy", torch.zeros(3, 3, 32, 32),
                                    [["a red cat"], ["a blue dog", "the dog is blue"], ["a cat"]])
    tok = data.tokenizer()
    assert tok.vocab[0] == "<pad>" and tok.vocab[-1] == "<end>" and "dog" in tok.vocab
    assert tok.context_length == 4 + 2 + 2  # the longest caption, <start> and <end>, two spare words
    tokens = data.tokens(tok)
    assert tokens.shape == (3, 2, tok.context_length)
    assert torch.equal(tokens[0, 0], tokens[0, 1])  # one caption: repeated to fill the paraphrase slots
    assert tok.decode(tokens[1, 1]) == "the dog is blue"
    with pytest.raises(PromptError, match="toy captions"):
        tok.encode("a green cat")
    train, test = data.split(1)
    assert len(train) == 2 and len(test) == 1
    with pytest.raises(ValueError, match="no class labels"):
        data.class_prompts()


def test_tokenizer_from_texts_keeps_first_seen_order():
    tok = Tokenizer.from_texts(["b a", "c a"])
    assert tok.vocab == ("<pad>", "<start>", "b", "a", "c", "<end>")


def test_clip_score_and_zero_shot_predict():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    b = torch.tensor([[3.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    assert torch.allclose(own_unclip.clip_score(a, b), torch.tensor([100.0, 0.0, 0.0]))
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    scores = torch.tensor([[0.1, 0.9], [5.0, 1.0], [-1.0, -2.0]])
    assert own_unclip.zero_shot_predict(scores, classes).tolist() == [1, 0, 2]


def test_the_whole_pipeline_trains_and_generates_on_standin_files(tmp_path):
    s = own_unclip.PRESETS["ci"]
    s = replace(s, clip=replace(s.clip, steps=3, batch_size=8), prior=replace(s.prior, steps=2),
                decoder=replace(s.decoder, steps=2), upsampler=replace(s.upsampler, steps=2))
    own_data.write_standin("mnist", tmp_path, n_train=40, n_test=20)
    train = own_data.load_torchvision("mnist", tmp_path)
    test = own_data.load_torchvision("mnist", tmp_path, train=False)
    model, losses = own_unclip.train_all(train, s, progress=False)
    assert set(losses) == {"CLIP", "prior", "decoder", "upsampler"}
    assert all(np.isfinite(v).all() for v in losses.values())
    assert 0 <= own_unclip.zero_shot_accuracy(model.clip, model.tokenizer, test) <= 1
    out = model.generate(["a handwritten seven", "the digit two written by hand"], n=2, prior_steps=2, decoder_steps=2,
                         upsampler_steps=2, progress=False)
    assert out.images.shape == (4, 3, 32, 32) and out.low.shape == (4, 3, 16, 16)
    assert out.images.min() >= -1 and out.images.max() <= 1
    scores = own_unclip.score_samples(out.images, out.prompts, model.clip, model.clip, model.tokenizer,
                                      torch.tensor([7, 7, 2, 2]), train)
    assert 0 <= scores.clip_score <= 100 and 0 <= scores.class_accuracy <= 1
    with pytest.raises(PromptError, match="mnist captions"):
        model.generate("a red circle", progress=False)


def test_retrieval_recall_on_a_folder(tmp_path):
    data = own_data.load_folder(own_data.write_folder_standin(tmp_path, n=8))
    tok = data.tokenizer()
    cfg = replace(own_unclip.PRESETS["ci"].clip, steps=2, batch_size=4)
    clip_model, _ = own_unclip.train_clip_stage(data, tok, cfg, progress=False)
    r1, r5 = own_unclip.retrieval_recall(clip_model, tok, data)
    assert 0 <= r1 <= r5 <= 1
