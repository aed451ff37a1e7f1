"""A purchase log cut in two for ``churn_eval.py``: the customers at the cut with their
calibration summaries and holdout label, journey's replay of the calibration part, and
the measures the evaluation prints."""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streams.core.churn import fit
from streams.core.timefmt import rfc3339

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: str
    at: float  # epoch seconds
    order_id: str
    amount: float


@dataclass(frozen=True, slots=True)
class Cohort:
    """Calibration summaries in days and the holdout label, one row per customer."""

    ids: list[str]
    x: np.ndarray  # repeat purchase days
    t_x: np.ndarray  # days from the first to the last purchase day
    T: np.ndarray  # days from the first purchase day to the cut
    recency: np.ndarray  # days from the last purchase to the cut
    lost: np.ndarray  # True: bought nothing in the holdout
    holdout_days: float


def build_cohort(purchases: Iterable[Purchase], cut: float) -> Cohort:
    days: dict[str, set[int]] = {}
    last: dict[str, float] = {}
    returned: set[str] = set()
    end = cut
    for p in purchases:
        end = max(end, p.at)
        if p.at < cut:
            days.setdefault(p.customer, set()).add(int(p.at // DAY))
            last[p.customer] = max(last.get(p.customer, p.at), p.at)
        else:
            returned.add(p.customer)
    ids = sorted(days)
    first = np.array([min(days[u]) for u in ids], dtype=float)
    final = np.array([max(days[u]) for u in ids], dtype=float)
    # a purchase day counts from its middle, as the cut falls at a midnight
    return Cohort(ids, np.array([len(days[u]) - 1 for u in ids], dtype=float),
                  final - first, cut / DAY - (first + 0.5),
                  np.array([(cut - last[u]) / DAY for u in ids]),
                  np.array([u not in returned for u in ids]),
                  float(math.ceil((end - cut) / DAY)))


def write_events(purchases: Iterable[Purchase], path: Path, source: str) -> int:
    """Purchases as canonical journey events, in time order."""
    count = 0
    with open(path, "wb") as fh:
        for p in sorted(purchases, key=lambda p: (p.at, p.customer, p.order_id)):
            fh.write(orjson.dumps({
                "event_id": f"{source}-{p.order_id}", "user_id": p.customer, "type": "purchase",
                "occurred_at": rfc3339(p.at), "source": source,
                "properties": {"amount": p.amount, "currency": "USD", "order_id": p.order_id}}))
            fh.write(b"\n")
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    state: dict[str, dict[str, Any]]
    summary: dict[str, Any]


def run_replay(journey: str, events: Path, until: str, state_out: Path,
               summary_out: Path | None, settings: Mapping[str, str]) -> Run:
    """``journey replay`` on its defaults, but for ``settings`` (JOURNEY_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env.update(settings)
    cmd = [journey, "replay", str(events), "--until", until, "--state-out", str(state_out),
           "--no-progress"]
    if summary_out is not None:
        cmd += ["--summary-json", str(summary_out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    summary = orjson.loads(summary_out.read_bytes()) if summary_out is not None else {}
    return Run(seconds, read_state(state_out), summary)


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                out[str(row["user_id"])] = row
    return out


def state_column(state: Mapping[str, Mapping[str, Any]], ids: list[str], key: str) -> np.ndarray:
    return np.array([_number(state.get(u, {}).get(key)) for u in ids])


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half, as the
    churn model's own live quality computes it; nan with one class or a missing score."""
    score = np.asarray(score, dtype=float)
    if not np.isfinite(score).all():
        return math.nan
    area = fit.auc(score, positive)
    return math.nan if area is None else area


def precision_recall(flagged: np.ndarray, lost: np.ndarray) -> tuple[int, float, float]:
    n = int(flagged.sum())
    hits = int((flagged & lost).sum())
    return n, hits / n if n else math.nan, hits / max(int(lost.sum()), 1)


def feature_ceiling(purchases: Iterable[Purchase], cut: float, ids: list[str],
                    lost: np.ndarray, folds: int = 5) -> float:
    """AUC of journey's own churn features at ``cut`` in a logistic regression trained on
    the holdout labels themselves (``folds``-fold cross-validation, journey's fit and
    regularisation). No live system has those labels: this is the most these features
    can tell, against which the learned score's AUC is read. The features come from
    journey's core, each customer's calibration purchases folded into a fresh state."""
    from streams.core.apply import apply_event
    from streams.core.churn import features
    from streams.core.event import Event
    from streams.core.state import UserState
    from streams.settings import Settings

    settings = Settings()
    states: dict[str, UserState] = {}
    for p in sorted((p for p in purchases if p.at < cut), key=lambda p: p.at):
        s = states.get(p.customer)
        if s is None:
            s = states[p.customer] = UserState(p.customer, p.at, p.at, p.at)
        apply_event(s, Event(event_id=p.order_id, user_id=p.customer, type="purchase",
                             occurred_at=p.at, amount=p.amount, currency="USD",
                             order_id=p.order_id), settings)
    x = features.feature_matrix(np.array([features.row(states[u], cut) for u in ids]))
    y = lost.astype(np.float64)
    fold = np.arange(len(ids)) % folds  # ids are sorted; the split is fixed, not tuned
    scores = np.empty(len(ids))
    for k in range(folds):
        model = fit.fit(x[fold != k], y[fold != k])
        scores[fold == k] = x[fold == k] @ model.weights + model.bias
    return auc(scores, lost)
