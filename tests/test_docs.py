"""Every link of the README and docs/ leads somewhere: a file of the repository, and the heading
its #anchor names (GitHub's anchor rule); the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens,
    '-1', '-2' for repeated ones."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"(#{1,6}) (.*)", line)
        if m and not in_code:
            slug = re.sub(r"[^\w\- ]", "", m.group(2).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    """'page: target (why)' for each relative link of ``page`` that leads nowhere."""
    text = page.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto:: not followed (no network)
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{page.relative_to(REPO)}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{page.relative_to(REPO)}: {target} (no heading with that anchor)")
    return problems


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_link_resolves():
    assert [p for page in pages() for p in broken_links(page)] == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    assert [p.name for p in sorted((REPO / "docs").glob("*.md")) if f"docs/{p.name}" not in readme] == []


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two words, here\n\n## Two words, here\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#two-words-here) [again](docs/a.md#two-words-here-1) [web](https://x.org/y)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#three) [self](#nothing)\n```\n[in code](nowhere.md)\n```\n"
    )
    assert broken_links(page) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#three (no heading with that anchor)",
        "README.md: #nothing (no heading with that anchor)",
    ]
