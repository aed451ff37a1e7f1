"""What replay says a live worker should end with, and how the two differ: the
``live = replay`` checks of the Kafka tests, the chaos run and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agents.testing.kafka_io import rfc3339
from agents.testing.workers import ROOT


@dataclass
class ReplayResult:
    states: dict[str, dict[str, Any]]
    alerts: list[dict[str, Any]]
    transitions: list[dict[str, Any]]


def run_replay(history: Path, until: float, env: dict[str, str], out_dir: Path,
               timeout: float = 300.0, extra: Sequence[str] = ()) -> ReplayResult:
    """``journey replay HISTORY --until T [EXTRA...]`` in a subprocess; its state, alerts
    and transitions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state, alerts, transitions = (out_dir / n for n in ("state.jsonl", "alerts.jsonl",
                                                        "transitions.jsonl"))
    proc = subprocess.run(
        [sys.executable, "-m", "agents.cli", "replay", str(history), "--until", rfc3339(until),
         "--state-out", str(state), "--alerts-out", str(alerts),
         "--transitions-out", str(transitions), "--no-progress", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"journey replay failed ({proc.returncode}):\n{proc.stderr}"

    def lines(p: Path) -> list[dict[str, Any]]:
        return [dict(orjson.loads(x)) for x in p.read_bytes().splitlines() if x.strip()]

    return ReplayResult({s["user_id"]: s for s in lines(state)}, lines(alerts),
                        lines(transitions))


def field_diffs(worker: dict[str, dict[str, Any] | None], truth: dict[str, dict[str, Any]],
                fields: Sequence[str], tolerance: dict[str, float] | None = None,
                ) -> list[str]:
    """Human-readable differences of ``fields`` between two {user: state} views."""
    tolerance = tolerance or {}
    out = []
    for uid in sorted(truth):
        got = worker.get(uid)
        if got is None:
            out.append(f"{uid}: unknown to the worker")
            continue
        for f in fields:
            a, b = got.get(f), truth[uid].get(f)
            tol = tolerance.get(f)
            same = (a == b) if tol is None or a is None or b is None else abs(a - b) <= tol
            if not same:
                out.append(f"{uid}.{f}: worker {a!r} != replay {b!r}")
    return out
