"""Every relative link and anchor of the documentation resolves: README.md, docs/ and ops/ point at
files that exist and at headings those files hold, so a moved section or a renamed heading fails here
instead of leaving a reader at a dead link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests import REPO_ROOT

# Hand-written rather than a Markdown parser: none is among the pinned dependencies, and these
# documents use only the CommonMark subset below (inline links and images, reference definitions,
# ATX headings, fenced code), which a few expressions read exactly.
FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:


def documents(root: Path = REPO_ROOT) -> list[Path]:
    return sorted([root / "README.md", *(root / "docs").rglob("*.md"), *(root / "ops").rglob("*.md")])


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked out."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, CODE_SPAN.sub("", line)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (code and link markup dropped) lower-cased,
    punctuation removed, spaces as hyphens (GitHub Flavored Markdown, as github-slugger does it)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a document: its headings' slugs (a repeated one numbered -1, -2, ... as
    GitHub numbers them) and explicit <a id/name> anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        found.update(HTML_ANCHOR.findall(line))
        heading = None if fenced else HEADING.match(line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in INLINE_LINK.findall(line):
            yield number, target
        if definition := REFERENCE_DEFINITION.match(line):
            yield number, definition.group(1)


def broken_links(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """`file:line: target (why)` for every relative link of `path` that does not resolve."""
    problems = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where} (no such file)")
        elif not destination.is_relative_to(root):
            problems.append(f"{where} (outside the repository)")
        elif anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
            problems.append(f"{where} (no heading with that anchor in {destination.relative_to(root)})")
    return problems


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    assert broken_links(document) == []


def test_the_readme_links_every_document_of_docs() -> None:
    """The README's "Where next" is the way in: a document of docs/ it does not name is lost."""
    readme = {target.partition("#")[0] for _, target in links(REPO_ROOT / "README.md")}
    unlinked = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted((REPO_ROOT / "docs").glob("*.md"))
        if str(path.relative_to(REPO_ROOT)) not in readme
    ]
    assert unlinked == []


def test_a_missing_file_a_missing_anchor_and_a_link_out_of_the_repository_are_reported(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "guide.md").write_text(
        '# Guide\n\n## Run it (`make lab`)\n\n## Run it (`make lab`)\n<a id="kept"></a>\n',
        encoding="utf-8",
    )
    readme = repo / "README.md"
    readme.write_text(
        "\n".join(
            [
                "# Title",
                "[ok](docs/guide.md#run-it-make-lab) [second](docs/guide.md#run-it-make-lab-1)",
                "[html](docs/guide.md#kept) [self](#title) [web](https://example.com/#x)",
                "[gone](docs/missing.md) [no anchor](docs/guide.md#run-it)",
                "![picture](docs/images/none.png) [out](../elsewhere.md)",
                "`[code](docs/missing.md)`",
                "```",
                "[fenced](docs/missing.md)",
                "```",
                "[ref]: docs/guide.md#nowhere",
            ]
        ),
        encoding="utf-8",
    )
    (tmp_path / "elsewhere.md").write_text("# Elsewhere\n", encoding="utf-8")
    assert broken_links(readme, root=repo) == [
        "README.md:4: docs/missing.md (no such file)",
        "README.md:4: docs/guide.md#run-it (no heading with that anchor in docs/guide.md)",
        "README.md:5: docs/images/none.png (no such file)",
        "README.md:5: ../elsewhere.md (outside the repository)",
        "README.md:10: docs/guide.md#nowhere (no heading with that anchor in docs/guide.md)",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Rehearse the pipeline (`make pipeline`)", "rehearse-the-pipeline-make-pipeline"),
        ("Who may call what: producers and operators", "who-may-call-what-producers-and-operators"),
        ("The stage's dashboard (`lab dashboard`)", "the-stages-dashboard-lab-dashboard"),
        ("POST /events: what the ingest accepts", "post-events-what-the-ingest-accepts"),
        ("Before any command: point your shell at a stage", "before-any-command-point-your-shell-at-a-stage"),
    ],
)
def test_headings_get_githubs_anchors(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
