"""The docs hold together: every link to a section of a doc page lands on a heading, and
CHOICES.md's contents table lists every decision."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_anchor(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_section_links_land_on_a_heading(page) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./]*\.md)?#([\w\-]+)\)", text):
        linked = (page.parent / target) if target else page
        if anchor not in _anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}#{anchor}")
    assert broken == []


def test_choices_contents_lists_every_decision() -> None:
    text = (ROOT / "docs" / "CHOICES.md").read_text(encoding="utf-8")
    decisions = {_anchor(h) for h in re.findall(r"^### (.+)$", text, re.M)}
    listed = set(re.findall(r"\]\(#([\w\-]+)\)", text.split("\n## ", 2)[1]))
    assert decisions == listed
    for section in text.split("\n### ")[1:]:
        assert all(f"**{part}.**" in section for part in ("Choice", "Why", "Where")), section[:60]
