"""A word-level tokenizer for Shapes captions, with errors that say what is wrong with a prompt.

CLIP itself uses byte-pair encoding over 49,408 sub-words so that it can read any English text.
Our captions use a few dozen words, so one token per word is enough and far easier to inspect:
``tokenizer.encode("a red circle")`` is a row of integers you can read.

Layout of an encoded prompt, ``context_length`` ids::

    <start> a small red circle in the top left <end> <pad> <pad> ...

The text encoder reads the whole row and, as CLIP does, takes its summary at the ``<end>`` token;
:meth:`Tokenizer.end_positions` finds it (``<end>`` has the largest id, as in CLIP, so
``tokens.argmax(-1)`` finds it too).

Rules a prompt must follow (each gives a :class:`PromptError` naming the problem):
lower or upper case are the same; hyphens read as spaces ("top-left" = "top left"); a sentence's closing
marks are dropped ("A red circle." = "a red circle"); the words must be in :data:`VOCAB` (plus the spellings in
:data:`ALIASES`); at most ``context_length - 2`` tokens.
"""

from __future__ import annotations

import re

import torch

from . import shapes

PAD, START, END = "<pad>", "<start>", "<end>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, START, END)


def _caption_words() -> list[str]:
    """Every word and punctuation mark that any caption template can produce, in first-seen order."""
    words: list[str] = []
    texts = [t for t in shapes.SINGLE_TEMPLATES + shapes.RELATION_TEMPLATES]
    texts += list(shapes.LOCATION_PHRASES.values()) + list(shapes.POSITIONS)
    texts += list(shapes.COLOURS) + list(shapes.SHAPES) + list(shapes.SIZES)
    texts += [phrase for pair in shapes._RELATION_PHRASES.values() for phrase in pair] + ["an"]
    for text in texts:
        for w in _split(re.sub(r"\{\w+\}", " ", text)):
            if w not in words:
                words.append(w)
    return words


def _split(text: str) -> list[str]:
    """Lower-case words and single punctuation marks; hyphens count as spaces."""
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower().replace("-", " "))


#: Every token the text encoder knows: ``<pad>`` = 0, ``<start>`` = 1, the caption words, and ``<end>``
#: last, so that, as in CLIP, the end of a prompt is also its largest id (``tokens.argmax(-1)``).
VOCAB: tuple[str, ...] = (PAD, START, *_caption_words(), END)
#: Shapes v2's vocabulary: v1's words and the nouns of partial captions ("something red", "a large thing"), before
#: ``<end>``. A CLIP trained on v2 reads :data:`VOCAB_V2`; one trained on v1, :data:`VOCAB`.
VOCAB_V2: tuple[str, ...] = (*VOCAB[:-1], *(w for w in shapes.NOUNS if w not in VOCAB), END)
VOCABS: dict[str, tuple[str, ...]] = {"v1": VOCAB, "v2": VOCAB_V2}
#: Other spellings accepted in prompts, mapped to the word in :data:`VOCAB`.
ALIASES: dict[str, str] = {"center": "centre", "colored": "coloured", "middle": "centre"}
#: Longest caption in the dataset is 12 words; 16 leaves room for <start>, <end> and a spare word.
CONTEXT_LENGTH = 16


class PromptError(ValueError):
    """A prompt the model cannot read: empty, too long, or with words it has never seen."""


class Tokenizer:
    """Maps captions to ``(context_length,)`` int64 rows and back.

    Args:
        vocab: the tokens, index = id. Default :data:`VOCAB_V2`, the course's data.
        context_length: ids per row, including ``<start>`` and ``<end>``.
        source: what the vocabulary was made from, for error messages.
    """

    def __init__(
        self, vocab: tuple[str, ...] = VOCAB_V2, context_length: int = CONTEXT_LENGTH, source: str = "Shapes captions"
    ):
        self.vocab = tuple(vocab)
        self.context_length = context_length
        self.source = source
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.start_id, self.end_id = (self.ids[t] for t in SPECIAL_TOKENS)

    @classmethod
    def from_texts(cls, texts: list[str], spare: int = 2, source: str = "your captions") -> Tokenizer:
        """A tokenizer for another dataset (lesson 14): every word of ``texts`` in first-seen order, and a context
        long enough for the longest text plus ``<start>``, ``<end>`` and ``spare`` words."""
        words: dict[str, None] = {}
        longest = 0
        for text in texts:
            split = _split(text)
            longest = max(longest, len(split))
            words.update(dict.fromkeys(w for w in split if w not in SPECIAL_TOKENS))
        return cls((PAD, START, *words, END), longest + 2 + spare, source)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def words(self, text: str) -> list[str]:
        """Validate ``text`` and return its tokens as words (aliases resolved).

        Raises:
            PromptError: if the prompt is empty, has unknown words, or is too long.
        """
        if not isinstance(text, str):
            raise PromptError(f"A prompt must be a string, got {type(text).__name__}: {text!r}.")
        words = [ALIASES.get(w, w) for w in _split(text.strip().rstrip(".!?;").rstrip())]
        if not words:
            example = ("'a small red circle in the top left'" if self.vocab in (VOCAB, VOCAB_V2)
                       else f"the words of the {self.source}")
            raise PromptError(f"The prompt is empty. Describe an image with the course's words, e.g. {example}.")
        unknown = sorted({w for w in words if w not in self.ids or w in SPECIAL_TOKENS})
        if unknown:
            known = [w for w in self.vocab if w not in SPECIAL_TOKENS and w.isalnum()]
            marks = [w for w in self.vocab if w not in SPECIAL_TOKENS and not w.isalnum()]
            raise PromptError(
                f"The prompt {text!r} contains {len(unknown)} word(s) the model has never seen: "
                f"{', '.join(repr(w) for w in unknown)}. It only knows the words of the {self.source} "
                f"({len(known)} words): {' '.join(known)}" + (f" (and the marks {' '.join(marks)})." if marks else ".")
            )
        limit = self.context_length - 2
        if len(words) > limit:
            raise PromptError(
                f"The prompt has {len(words)} tokens but the text encoder reads at most {limit} "
                f"(its context is {self.context_length} including <start> and <end>). Shorten it: {text!r}."
            )
        return words

    def encode(self, text: str) -> torch.Tensor:
        """``"a red circle"`` → ``(context_length,)`` int64: <start> ids <end> then padding."""
        ids = [self.start_id, *(self.ids[w] for w in self.words(text)), self.end_id]
        return torch.tensor(ids + [self.pad_id] * (self.context_length - len(ids)), dtype=torch.long)

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        """A list of ``B`` prompts → ``(B, context_length)`` int64."""
        if not texts:
            return torch.empty(0, self.context_length, dtype=torch.long)
        return torch.stack([self.encode(t) for t in texts])

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """``(context_length,)`` ids → the normalised text (special tokens dropped)."""
        words = [self.vocab[int(i)] for i in ids if self.vocab[int(i)] not in SPECIAL_TOKENS]
        return re.sub(r" ([:,])", r"\1", " ".join(words))

    def normalise(self, text: str) -> str:
        """What the model actually reads: ``"Top-Left:  small RED circle"`` → ``"top left: small red circle"``."""
        return self.decode(self.encode(text))

    def end_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` ids → ``(B,)`` index of each row's ``<end>`` token (where CLIP pools)."""
        return (tokens == self.end_id).int().argmax(dim=-1)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, context_length={self.context_length})"


def for_version(version: str = "v2") -> Tokenizer:
    """The tokenizer of a Shapes version (``"v1"`` or ``"v2"``)."""
    if version not in VOCABS:
        raise ValueError(f"version must be one of {tuple(VOCABS)}, got {version!r}")
    return Tokenizer(VOCABS[version])


def vocabulary_table() -> str:
    """The documented vocabulary as text: id and token, one per line."""
    return "\n".join(f"{i:3d}  {w}" for i, w in enumerate(VOCAB))
