"""The documentation stays true to the code: generated pages are current, links resolve,
and every alert rule's runbook link lands on a section of docs/operations.md."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import schemas
from agents.kafka.metrics import Metrics
from streams.settings_doc import settings_markdown

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TOOLS = REPO / "tools"
RULES = REPO / "deploy" / "prometheus" / "journey-rules.yml"
RUNBOOK_HEADINGS = ("Consumer lag growing", "No events consumed", "Dead-letter rate high",
                    "Timer backlog growing", "Worker down", "Worker unhealthy",
                    "Alert volume spike", "Alert volume collapse")
REGENERATE = "run .venv/bin/python tools/gen_docs.py"


def _tool(name: str) -> ModuleType:
    """A script in tools/ as a module (tools/ is not a package)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen_docs() -> ModuleType:
    return _tool("gen_docs")


@pytest.fixture(scope="module")
def gen_contracts() -> ModuleType:
    return _tool("gen_contract_docs")


# --- GitHub-style anchors ---------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)


def without_code(text: str) -> str:
    """Markdown with fenced blocks and inline code spans blanked out."""
    text = _FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "``", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped except ``-`` and
    ``_``, each space a hyphen (link text and backticks count as their text)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers: heading slugs (repeats get -1, -2, ...) and
    explicit ``id``/``name`` attributes."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.MULTILINE):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found |= set(re.findall(r'(?:id|name)="([^"]+)"', text))
    return found


def test_slug_follows_github() -> None:
    assert slug("Consumer lag growing") == "consumer-lag-growing"
    assert slug("Dead-letter rate high") == "dead-letter-rate-high"
    assert slug("Ordering and --until") == "ordering-and---until"
    assert slug("Scaling: partitions, workers, standby replicas") == \
        "scaling-partitions-workers-standby-replicas"
    assert slug("P(alive) and the churn score") == "palive-and-the-churn-score"
    assert slug("From a file: `journey produce`") == "from-a-file-journey-produce"
    assert slug("user-event (v1)") == "user-event-v1"


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A\n## Examples\n```\n# not a heading\n```\n## Examples\n")
    assert anchors(page) == {"a", "examples", "examples-1"}


# --- generated pages -----------------------------------------------------------------------

def test_configuration_doc_is_current() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert text == settings_markdown(), REGENERATE


def test_contracts_doc_is_current(gen_contracts: ModuleType) -> None:
    text = (DOCS / "contracts.md").read_text(encoding="utf-8")
    assert text == gen_contracts.render_contracts(), REGENERATE


def test_metrics_table_is_current(gen_docs: ModuleType) -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    assert gen_docs.render_metrics() in text, REGENERATE


def test_generator_check_mode_agrees(gen_docs: ModuleType) -> None:
    assert gen_docs.main(["--check"]) == 0, REGENERATE


def _property_paths(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, child in node.get("properties", {}).items():
        yield prefix + name
        yield from _property_paths(child, prefix + name + ".")


@pytest.mark.parametrize("name", schemas.names())
def test_contracts_render_every_field_and_example(gen_contracts: ModuleType,
                                                  name: str) -> None:
    doc = schemas.load(name)
    section = "\n".join(gen_contracts.render_schema(name))
    rows = set(re.findall(r"^ *\| `([^`]+)` \|", section, re.MULTILINE))
    missing = [p for p in _property_paths(doc) if p not in rows]
    for branch in doc.get("allOf", ()):  # per-type fields sit under the `then` rules
        missing += [p for p in _property_paths(branch.get("then", {})) if p not in rows
                    and p != "properties"]
    assert missing == []
    assert section.count("```json") == len(doc.get("examples", ()))


def test_contracts_cover_every_schema(gen_contracts: ModuleType) -> None:
    text = (DOCS / "contracts.md").read_text(encoding="utf-8")
    for name in schemas.names():
        assert f"## {name} (v1)" in text


def test_metrics_table_lists_every_series(gen_docs: ModuleType) -> None:
    families = {f.name for f in Metrics().registry.collect()}
    listed = {row[0].removesuffix("_total") for row in gen_docs.metric_rows()}
    assert listed == families


# --- links ------------------------------------------------------------------------------------

def pages() -> list[Path]:
    return [p for p in [REPO / "README.md", *sorted(DOCS.glob("*.md"))] if p.exists()]


def relative_links(path: Path) -> Iterator[str]:
    """Targets of inline links and images that point inside the repository."""
    text = without_code(path.read_text(encoding="utf-8"))
    for target in re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, ...
            continue
        yield target


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor}")
    assert broken == []


def test_link_checker_sees_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](#top) [file](page.md#top) [web](https://example.com)\n"
                    "[gone](missing.md) [bad](#nowhere) `[code](ignored.md)`\n")
    assert list(relative_links(page)) == ["#top", "page.md#top", "missing.md", "#nowhere"]
    assert "nowhere" not in anchors(page) and "top" in anchors(page)


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {t.partition("#")[0] for t in relative_links(DOCS / "index.md")}
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert page.name in linked, page.name
    assert index.startswith("# ")


# --- runbook ----------------------------------------------------------------------------------

def runbook_urls() -> list[str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["annotations"]["runbook_url"] for group in doc["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_every_runbook_url_has_its_section() -> None:
    urls = runbook_urls()
    assert urls
    have = anchors(DOCS / "operations.md")
    missing = []
    for url in urls:
        file_part, _, anchor = url.partition("#")
        assert file_part.endswith("}}/operations.md"), url  # <runbook_base>/operations.md
        if anchor not in have:
            missing.append(url)
    assert missing == []


def test_runbook_has_the_agreed_headings() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    runbook = text.split("\n## Alert runbook\n", 1)
    assert len(runbook) == 2
    headings = re.findall(r"^### (.+)$", runbook[1], re.MULTILINE)
    assert tuple(headings) == RUNBOOK_HEADINGS
    assert {u.partition("#")[2] for u in runbook_urls()} == {slug(h) for h in headings}
