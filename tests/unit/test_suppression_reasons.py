"""The reasons an alert is suppressed (streams/core/suppression.py) are the ones the core
reports, and the ones ``journey_alerts_suppressed_total``'s help (and so the metrics
table in docs/operations.md) lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from agents.kafka.metrics import Metrics
from streams.core.suppression import SUPPRESSION_REASONS

CORE = Path(__file__).resolve().parents[2] / "streams" / "core"


def _reported_in_core() -> dict[str, str]:
    """Each reason written in the core as a literal, with where: returned by a function
    that gives a ``SuppressionReason``, or appended to ``suppressed`` directly."""
    found: dict[str, str] = {}
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.returns is not None \
                    and "SuppressionReason" in ast.unparse(node.returns):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        for c in ast.walk(ret.value):
                            if isinstance(c, ast.Constant) and isinstance(c.value, str):
                                found[c.value] = f"{path.name}:{ret.lineno}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "append" \
                    and ast.unparse(node.func.value).endswith("suppressed") and node.args \
                    and isinstance(node.args[0], ast.Tuple):
                reason = node.args[0].elts[1]
                if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
                    found[reason.value] = f"{path.name}:{node.lineno}"
    return found


def test_the_core_reports_exactly_the_listed_reasons() -> None:
    reported = _reported_in_core()
    unlisted = {r: where for r, where in reported.items() if r not in SUPPRESSION_REASONS}
    assert not unlisted, f"reasons the core reports but suppression.py lacks: {unlisted}"
    assert set(reported) == set(SUPPRESSION_REASONS), \
        f"listed but never reported: {set(SUPPRESSION_REASONS) - set(reported)}"


def test_the_metric_help_lists_every_reason() -> None:
    help_text = Metrics().alerts_suppressed._documentation
    listed = re.search(r"\(([^)]*)\)", help_text)
    assert listed is not None, help_text
    assert listed.group(1).split(", ") == list(SUPPRESSION_REASONS), help_text
