"""The glossary (English / 中文) is linked from the README, well formed, and points at lessons that exist."""

import re
from pathlib import Path

from dalle2_lessons import course

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "GLOSSARY.md").read_text()


def rows() -> list[list[str]]:
    """Every table row of the glossary but the header and separator rows, as its cells."""
    lines = [line for line in TEXT.splitlines() if line.startswith("|") and not re.fullmatch(r"[-| ]+", line)]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return [c for c in cells if c[0] not in ("English", "claim · 说法")]


def test_the_readme_links_the_glossary():
    assert "(GLOSSARY.md)" in (ROOT / "README.md").read_text()


def test_every_term_has_chinese_a_meaning_and_existing_lessons():
    known = {lesson.number for lesson in course.LESSONS}
    terms = rows()
    assert len(terms) >= 50
    for cells in terms:
        assert all(cells) and len(cells) in (3, 4), cells
        assert re.search(r"[\u4e00-\u9fff]", " ".join(cells[:-1])), f"no Chinese in {cells[0]!r}"
        cited = re.findall(r"\d\d", cells[-1])
        assert cited and set(cited) <= known, (cells[0], cited)


def test_the_core_terms_are_there():
    english = {cells[0] for cells in rows()}
    for term in ("unCLIP", "CLIP", "prior", "decoder", "upsampler", "classifier-free guidance", "DDIM",
                 "VAE (variational autoencoder)", "GAN (generative adversarial network)", "modality gap",
                 "under-specified (partial) caption"):
        assert term in english, term
