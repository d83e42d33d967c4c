"""The documentation's links: every relative link names a file that exists, and a heading in it; every
docs page the code names (help texts, log lines, comments) exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS_PAGE = re.compile(r"docs/[\w.-]+\.md")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code blocks
    return {_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_relative_links_name_existing_files_and_headings():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and anchor not in _anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_anchor_rule_matches_github():
    assert _anchor(" The noisy-camera profile (`ttt_perception/profiles/noisy_camera.yaml`)") == \
        "the-noisy-camera-profile-ttt_perceptionprofilesnoisy_camerayaml"
    assert _anchor(" Quick start (a fresh machine with Python 3.10+)") == \
        "quick-start-a-fresh-machine-with-python-310"


def test_docs_pages_named_in_the_code_exist():
    sources = [*sorted((REPO / "ttt_perception").rglob("*.py")), *sorted((REPO / "test").glob("*.py")),
               *sorted((REPO / "launch").glob("*.py")), REPO / "Makefile", REPO / "config" / "ttt_perception.yaml"]
    missing = sorted({f"{source.relative_to(REPO)}: {name}" for source in sources
                      for name in DOCS_PAGE.findall(source.read_text()) if not (REPO / name).is_file()})
    assert missing == []
