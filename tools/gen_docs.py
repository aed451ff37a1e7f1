"""Regenerate (or check) every generated part of docs/.

    .venv/bin/python tools/gen_docs.py          # rewrite the generated docs
    .venv/bin/python tools/gen_docs.py --check  # exit 1 and name the stale ones

What is generated, and from where:

- docs/contracts.md: the JSON Schemas in schemas/ (tools/gen_contract_docs.py);
- docs/configuration.md: the fields of streams/settings.py, rendered by
  streams/settings_doc.py (the same text as ``journey config --markdown``);
- the metrics table in docs/operations.md, between the two marker comments: the series
  defined in agents/kafka/metrics.py.

tests/deploy/test_docs.py fails when any of them is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_contract_docs import render_contracts

from agents.kafka.metrics import Metrics
from streams.settings_doc import settings_markdown

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
METRICS_BEGIN = "<!-- BEGIN GENERATED: metrics (tools/gen_docs.py); do not edit by hand -->"
METRICS_END = "<!-- END GENERATED: metrics -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def metric_rows() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exposed name, type, label names, help) for every series, in definition order."""
    rows = []
    for collector in vars(Metrics()).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        kind = str(collector._type)  # prometheus_client keeps these private; long stable
        name = str(collector._name) + ("_total" if kind == "counter" else "")
        rows.append((name, kind, tuple(map(str, collector._labelnames)),
                     str(collector._documentation)))
    return rows


def render_metrics() -> str:
    """The table between the markers in docs/operations.md (markers included)."""
    out = [METRICS_BEGIN, "", "| series | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, doc in metric_rows():
        shown = f"`{name}`"
        if kind == "histogram":
            shown += " (`_bucket`, `_sum`, `_count`)"
        out.append(f"| {shown} | {kind} | {', '.join(f'`{x}`' for x in labels) or '-'} | "
                   f"{_cell(doc)} |")
    return "\n".join([*out, "", METRICS_END])


def with_metrics(text: str) -> str:
    """``text`` (docs/operations.md) with its metrics block re-rendered."""
    start = text.find(METRICS_BEGIN)
    end = text.find(METRICS_END)
    if start < 0 or end < start:
        raise ValueError("docs/operations.md lacks the metrics marker comments")
    return text[:start] + render_metrics() + text[end + len(METRICS_END):]


def targets() -> dict[Path, Callable[[str], str]]:
    """Each generated file and how to render it from its current text."""
    return {
        DOCS / "contracts.md": lambda _old: render_contracts(),
        DOCS / "configuration.md": lambda _old: settings_markdown(),
        DOCS / "operations.md": with_metrics,
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, render in targets().items():
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = render(old)
        if new == old:
            continue
        stale.append(path.relative_to(REPO))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new, encoding="utf-8")
    if check and stale:
        print("out of date (run tools/gen_docs.py): " + ", ".join(map(str, stale)),
              file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
