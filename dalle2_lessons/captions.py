"""The words of the Shapes dataset: caption templates and phrases, from attribute names to a sentence.

Each scene is described by one of several paraphrases, so that a text encoder must learn what the words mean
rather than one fixed string: "a small red circle in the top left", "top left: small red circle", … A relation may
be read either way round: "a red circle above a blue square" and "a blue square below a red circle" describe the
same scene. :mod:`~dalle2_lessons.shapes` owns the attributes and turns class indices into names
(:func:`~dalle2_lessons.shapes.caption`); every name here is also reachable as ``shapes.<name>``.
"""

from __future__ import annotations

import re

SINGLE_TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {shape} {location}",
    "{position}: {size} {colour} {shape}",
    "a {colour} {shape}, {size}, {location}",
    "there is a {size} {colour} {shape} {location}",
    "{location} there is a {size} {colour} {shape}",
    "a {size} {shape} coloured {colour} {location}",
)
#: ``{a}`` and ``{b}`` are "colour shape"; ``{rel}``/``{inv}`` the relation read forwards/backwards.
RELATION_TEMPLATES: tuple[str, ...] = (
    "a {a} {rel} a {b}",
    "a {b} {inv} a {a}",
    "there is a {a} {rel} a {b}",
    "{b} {inv} {a}",
)
#: Each canonical relation read forwards ("A above B") and backwards ("B below A").
RELATION_PHRASES: dict[str, tuple[str, str]] = {
    "above": ("above", "below"),
    "left of": ("to the left of", "to the right of"),
}


def location_phrase(position: str) -> str:
    """How a grid position (e.g. ``"top left"``, ``"top"``, ``"left"``) reads inside a sentence: ``"in the top left"``,
    ``"at the top"``, ``"on the left"``."""
    return ("in the " if " " in position or position == "centre" else "at the " if position in ("top", "bottom")
            else "on the ") + position


def caption_single(colour: str, shape: str, size: str, position: str, template: int = 0) -> str:
    """One caption of a single-object scene, e.g. ``"a small red circle in the top left"``."""
    text = SINGLE_TEMPLATES[template].format(
        colour=colour, shape=shape, size=size, position=position, location=location_phrase(position)
    )
    return _fix_articles(text)


def caption_relation(
    colour_a: str, shape_a: str, relation: str, colour_b: str, shape_b: str, template: int = 0
) -> str:
    """One caption of "A <relation> B", e.g. ``"a blue square below a red circle"`` for template 1."""
    rel, inv = RELATION_PHRASES[relation]
    text = RELATION_TEMPLATES[template].format(a=f"{colour_a} {shape_a}", b=f"{colour_b} {shape_b}", rel=rel,
                                               inv=inv)
    return _fix_articles(text)


#: How a partial caption names an object whose shape it leaves out, chosen by the paraphrase index:
#: "something red", "a red thing", "a red object", "a red shape".
NOUNS: tuple[str, ...] = ("something", "thing", "object", "shape")


def caption_partial(colour: str, shape: str, size: str, position: str, mentioned: tuple[bool, ...],
                    template: int = 0) -> str:
    """A caption naming only the ``mentioned`` attributes (flags in the order colour, shape, size, position), e.g.
    ``"a red thing"``, ``"something large in the top left"``, ``"a small circle"``. With every flag set it is
    :func:`caption_single`'s ``template``; otherwise ``template`` picks the noun from :data:`NOUNS` when the shape is
    left out. The attributes not mentioned are *free*: any value fits the caption."""
    m_colour, m_shape, m_size, m_position = (bool(f) for f in mentioned)
    if m_colour and m_shape and m_size and m_position:
        return caption_single(colour, shape, size, position, template)
    if not (m_colour or m_shape or m_size or m_position):
        raise ValueError("a caption must mention at least one attribute")
    adjectives = " ".join(word for word, keep in ((size, m_size), (colour, m_colour)) if keep)
    noun = shape if m_shape else NOUNS[template % len(NOUNS)]
    where = location_phrase(position) if m_position else ""
    text = f"something {adjectives} {where}" if noun == "something" else f"a {adjectives} {noun} {where}"
    return _fix_articles(" ".join(text.split()))


def _fix_articles(text: str) -> str:
    """"a orange cross" → "an orange cross"."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def n_templates(tier: str) -> int:
    """How many paraphrases a scene of ``tier`` (``"single"`` or ``"relation"``) has."""
    return len(SINGLE_TEMPLATES if tier == "single" else RELATION_TEMPLATES)
