import pytest
import torch

from dalle2_lessons import shapes
from dalle2_lessons.tokenizer import CONTEXT_LENGTH, VOCAB, PromptError, Tokenizer, vocabulary_table

tok = Tokenizer()


@pytest.mark.parametrize("tier", list(shapes.TIERS))
def test_round_trip_every_caption(tier):
    captions = shapes.sample_scenes(3_000, "train", tier).captions
    for c in captions:
        ids = tok.encode(c)
        assert ids.shape == (CONTEXT_LENGTH,) and ids.dtype == torch.long
        assert tok.decode(ids) == c


def test_layout_and_end_positions():
    ids = tok.encode_batch(["a red circle", "top left: small blue cross"])
    assert ids.shape == (2, CONTEXT_LENGTH)
    assert ids[0, 0] == tok.start_id and ids[0, 4] == tok.end_id and (ids[0, 5:] == tok.pad_id).all()
    assert tok.end_positions(ids).tolist() == [4, 7] == ids.argmax(-1).tolist()  # <end> is the largest id, as in CLIP


def test_normalisation_and_aliases():
    assert tok.normalise("Top-Left:  small RED circle") == "top left: small red circle"
    assert tok.normalise("a red circle in the center") == "a red circle in the centre"
    assert tok.normalise("a small circle colored red") == "a small circle coloured red"


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt(prompt):
    with pytest.raises(PromptError, match="empty"):
        tok.encode(prompt)


def test_unknown_words_are_listed_with_the_vocabulary():
    with pytest.raises(PromptError) as e:
        tok.encode("a red dog beside a giraffe")
    msg = str(e.value)
    assert "3 word(s) the model has never seen: 'beside', 'dog', 'giraffe'." in msg
    assert "circle" in msg and "triangle" in msg  # the known vocabulary is shown
    with pytest.raises(PromptError, match="never seen"):
        tok.encode("a red circle <end>")  # special tokens cannot be typed


def test_too_long():
    with pytest.raises(PromptError, match=f"at most {CONTEXT_LENGTH - 2}"):
        tok.encode("a small red circle " * 4)


def test_not_a_string():
    with pytest.raises(PromptError, match="string"):
        tok.encode(None)


def test_vocabulary_is_documented_and_complete():
    table = vocabulary_table()
    assert all(w in table for w in VOCAB)
    for word in (*shapes.COLOURS, *shapes.SHAPES, *shapes.SIZES, "above", "below", "left", "right"):
        assert word in VOCAB
    assert len(set(VOCAB)) == len(VOCAB)
