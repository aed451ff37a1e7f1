"""How well does journey's churn score foresee who never buys again? A real-log test.

CDNOW (see ``real_data.py``) is cut after its first 39 weeks, the split the
buy-till-you-die literature uses. journey replays the calibration weeks and its state
at the cut is read back; a customer counts as churned when they buy nothing in the
39 holdout weeks. Scores are compared by AUC (higher = ranks the lost customers above
the kept ones better):

- journey's ``churn_risk`` (and ``1 - p_alive``) from the replay CLI;
- days since the last purchase at the cut;
- plain BG/NBD P(alive), fitted here on every calibration customer (it calls every
  one-time buyer alive, whatever their silence);
- MBG/NBD P(alive) fitted here on every calibration customer with ``streams.core.btyd``,
  i.e. journey's model without its per-partition sample and streamed refits;
- MBG/NBD at journey's prior, never fitted;
- MBG/NBD's probability of no purchase in the holdout weeks (fitted) or in the next
  purchase cycle (prior): the quantity the label asks about (``btyd.p_no_purchase``).

The model baselines count purchase *days* (several orders on one day are one repeat
purchase, the usual convention for this data); journey sees every order.

Usage: ``.venv/bin/python bench/churn_eval.py [--journey PATH] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import orjson
from real_data import (
    CDNOW_CUSTOMERS,
    DEFAULT_CACHE,
    Transaction,
    cdnow_transactions,
    purchase_events,
    write_jsonl,
)
from scipy import optimize, special

from streams.core import btyd
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent
CALIBRATION_WEEKS = 39
LOG_START = dt.date(1997, 1, 1)
DAY = 86400.0


# --- customers at the cut ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cohort:
    """Calibration summaries in days and the holdout label, one row per customer."""

    user_ids: list[str]
    x: np.ndarray  # repeat purchase days
    t_x: np.ndarray  # days from first to last purchase day
    T: np.ndarray  # days from first purchase to the cut
    recency: np.ndarray  # days from last purchase to the cut
    lost: np.ndarray  # True: bought nothing in the holdout


def noon_epoch(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp()


def build_cohort(transactions: Sequence[Transaction], cut: dt.date) -> Cohort:
    days: dict[str, set[dt.date]] = {}
    returned: set[str] = set()
    for t in transactions:
        if t.day < cut:
            days.setdefault(t.customer_id, set()).add(t.day)
        else:
            returned.add(t.customer_id)
    cut_epoch = dt.datetime(cut.year, cut.month, cut.day, tzinfo=dt.UTC).timestamp()
    ids = sorted(days)
    first = np.array([noon_epoch(min(days[u])) for u in ids])
    last = np.array([noon_epoch(max(days[u])) for u in ids])
    return Cohort(
        user_ids=ids,
        x=np.array([len(days[u]) - 1 for u in ids], dtype=float),
        t_x=(last - first) / DAY,
        T=(cut_epoch - first) / DAY,
        recency=(cut_epoch - last) / DAY,
        lost=np.array([u not in returned for u in ids]),
    )


# --- AUC ------------------------------------------------------------------------------

def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Tie groups are the runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    mean_rank = (starts + 1 + ends) / 2.0  # mean of starts+1 .. ends
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > that of a random negative), ties counting half."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = average_ranks(np.asarray(score, dtype=float))[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# --- BG/NBD, the baseline ---------------------------------------------------------------

def bgnbd_log_likelihood(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                         T: np.ndarray) -> float:
    """BG/NBD: drop-out only after repeat purchases, so x = 0 has one branch."""
    r, alpha, a, b = np.exp(theta)
    n = r + x
    base = (special.gammaln(n) - special.gammaln(r) + r * math.log(alpha)
            + special.betaln(a, b + x) - special.betaln(a, b) - n * np.log(alpha + T))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = math.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300)) \
            + n * (np.log(alpha + T) - np.log(alpha + t_x))
    return float((base + np.where(x > 0, np.logaddexp(0.0, c), 0.0)).sum())


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    start = np.log([1.0, float(np.mean(T)) / 10.0, 1.0, 1.0])
    result = optimize.minimize(lambda th: -bgnbd_log_likelihood(th, x, t_x, T) / x.size,
                               start, method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
    return np.exp(result.x)


def bgnbd_p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                  T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(a / (b + x - 1.0)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, special.expit(-z), 1.0)


# --- journey ------------------------------------------------------------------------------

def run_replay(journey: str, events: Path, until: str, state_out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([journey, "replay", str(events), "--until", until,
                    "--state-out", str(state_out)], check=True)
    return time.perf_counter() - started


def read_state(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                out[str(row["user_id"])] = row
    return out


def state_column(state: dict[str, dict], ids: list[str], key: str) -> np.ndarray:
    return np.array([_number(state.get(u, {}).get(key)) for u in ids])


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


# --- report -------------------------------------------------------------------------------

def decile_table(score: np.ndarray, lost: np.ndarray) -> list[tuple[int, int, float, float,
                                                                   float, float]]:
    """(decile, n, lowest score, highest score, mean score, observed lost rate)."""
    order = np.argsort(score, kind="mergesort")
    rows = []
    for k, part in enumerate(np.array_split(order, 10), start=1):
        s = score[part]
        rows.append((k, part.size, float(s.min()), float(s.max()), float(s.mean()),
                     float(lost[part].mean())))
    return rows


def markdown(n: int, base_rate: float, aucs: list[tuple[str, float]],
             deciles: list[tuple[int, int, float, float, float, float]],
             stages: list[tuple[str, int, float]], cut: str, weeks: int,
             holdout_days: float) -> str:
    lines = [
        "### Churn score on a real purchase log (CDNOW)",
        "",
        (f"{n:,} customers of the CD shop CDNOW who first bought in Q1 1997; journey replayed "
         f"their purchases up to {cut} ({weeks} weeks) and its state at that moment was scored "
         f"against whether each customer bought again in the remaining {holdout_days:.0f} "
         "days of the log. "
         f"{base_rate:.1%} did not. Reproduce with `.venv/bin/python bench/churn_eval.py`."),
        "",
        "| score for \"will not buy again\" | AUC |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in aucs]
    lines += ["", "Deciles of journey's `churn_risk` against what happened:", "",
              "| decile | customers | churn_risk range | mean churn_risk | did not return |",
              "|---|---|---|---|---|"]
    lines += [f"| {k} | {m:,} | {lo:.3f}–{hi:.3f} | {mean:.3f} | {rate:.1%} |"  # noqa: RUF001 - a range
              for k, m, lo, hi, mean, rate in deciles]
    if stages:
        lines += ["", "| lifecycle stage at the cut | customers | did not return |",
                  "|---|---|---|"]
        lines += [f"| {stage} | {m:,} | {rate:.1%} |" for stage, m, rate in stages]
    return "\n".join(lines)


R = TypeVar("R")


def timed(label: str, fn: Callable[[], R]) -> R:
    started = time.perf_counter()
    value = fn()
    print(f"  {label}: {time.perf_counter() - started:.2f} s")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journey", default=str(REPO / ".venv" / "bin" / "journey"),
                        help="the journey executable whose replay is evaluated")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_CACHE / "churn_eval",
                        help="where calib.jsonl and state.jsonl are written")
    parser.add_argument("--weeks", type=int, default=CALIBRATION_WEEKS,
                        help="calibration weeks from 1997-01-01")
    args = parser.parse_args(argv)

    cut_day = LOG_START + dt.timedelta(weeks=args.weeks)
    cut = f"{cut_day:%Y-%m-%d}T00:00:00Z"
    args.workdir.mkdir(parents=True, exist_ok=True)
    calib, state_path = args.workdir / "calib.jsonl", args.workdir / "state.jsonl"

    print("CDNOW churn evaluation")
    transactions = cdnow_transactions()
    before = [t for t in transactions if t.day < cut_day]
    written = write_jsonl(purchase_events(before), calib)
    print(f"  calibration events: {written:,} (transactions before {cut}); "
          f"holdout transactions: {len(transactions) - len(before):,}")
    cohort = build_cohort(transactions, cut_day)
    seconds = run_replay(args.journey, calib, cut, state_path)
    state = read_state(state_path)
    ids = cohort.user_ids
    missing = sum(u not in state for u in ids)
    print(f"  journey replay: {seconds:.1f} s, {len(state):,} users in state, "
          f"{missing:,} calibration customers missing")

    n, lost = len(ids), cohort.lost
    base_rate = float(lost.mean())
    x, t_x, T = cohort.x, cohort.t_x, cohort.T
    bg = timed("BG/NBD fit (all customers)", lambda: fit_bgnbd(x, t_x, T))
    mbg = timed("MBG/NBD fit (all customers)", lambda: btyd.fit(x, t_x, T))
    cycle = Settings().purchase_cycle_days
    prior = btyd.prior_for_cycle(cycle)
    print(f"  BG/NBD  r={bg[0]:.3f} alpha={bg[1]:.2f} d a={bg[2]:.3f} b={bg[3]:.3f}")
    print(f"  MBG/NBD r={mbg.r:.3f} alpha={mbg.alpha:.2f} d a={mbg.a:.3f} b={mbg.b:.3f}")

    def mbg_lost(params: btyd.MBGParams) -> np.ndarray:
        return np.array([1.0 - btyd.p_alive(params, int(a), b, c)
                         for a, b, c in zip(x, t_x, T, strict=True)])

    horizon = float((max(t.day for t in transactions) - cut_day).days + 1)
    churn_risk = state_column(state, ids, "churn_risk")
    journey_alive = state_column(state, ids, "p_alive")
    scores: list[tuple[str, np.ndarray]] = [
        ("journey `churn_risk`", churn_risk),
        ("journey `1 - p_alive`", 1.0 - journey_alive),
        ("days since last purchase", cohort.recency),
        ("BG/NBD 1 - P(alive), fitted on all customers", 1.0 - bgnbd_p_alive(bg, x, t_x, T)),
        ("MBG/NBD 1 - P(alive), fitted on all customers", mbg_lost(mbg)),
        ("MBG/NBD 1 - P(alive) at journey's prior (no fit)", mbg_lost(prior)),
        ("MBG/NBD P(no purchase in the holdout), fitted on all customers",
         np.array([btyd.p_no_purchase(mbg, horizon, int(a), b, c)
                   for a, b, c in zip(x, t_x, T, strict=True)])),
        (f"MBG/NBD P(no purchase in the next {cycle:g} days) at journey's prior (no fit)",
         np.array([btyd.p_no_purchase(prior, cycle, int(a), b, c)
                   for a, b, c in zip(x, t_x, T, strict=True)])),
    ]
    aucs = []
    for name, score in scores:
        known = np.isfinite(score)
        if not known.all():
            print(f"  {name}: {int((~known).sum()):,} customers without a value, scored alone")
        if known.sum() > 0:
            aucs.append((name, auc(score[known], lost[known])))

    print(f"\n  customers: {n:,}   did not return in the holdout: {base_rate:.1%}")
    for name, value in aucs:
        print(f"  AUC {value:.3f}  {name}")

    known = np.isfinite(churn_risk)
    deciles = decile_table(churn_risk[known], lost[known]) if known.any() else []
    print("\n  decile  n      churn_risk range   mean   not returned")
    for k, m, lo, hi, mean, rate in deciles:
        print(f"  {k:>6}  {m:<6} {lo:.3f}-{hi:.3f}        {mean:.3f}  {rate:.3f}")

    stage_of = [str(state.get(u, {}).get("lifecycle_stage", "(missing)")) for u in ids]
    stages = []
    for stage in sorted(set(stage_of)):
        mask = np.array([s == stage for s in stage_of])
        stages.append((stage, int(mask.sum()), float(lost[mask].mean())))
    print("\n  stage        n      not returned")
    for stage, m, rate in stages:
        print(f"  {stage:<12} {m:<6} {rate:.3f}")

    if n != CDNOW_CUSTOMERS:
        print(f"  note: {n} calibration customers, expected {CDNOW_CUSTOMERS}")
    print("\n--- markdown for the README ---\n")
    print(markdown(n, base_rate, aucs, deciles, stages, cut, args.weeks, horizon))
    return 0


if __name__ == "__main__":
    sys.exit(main())
