"""How well does journey's churn score foresee who never buys again? A real-log test.

CDNOW (see ``real_data.py``) is cut after its first 39 weeks, the split the
buy-till-you-die literature uses (``--weeks`` picks other cuts, several at once).
journey replays the calibration weeks with default settings, and its state at the cut
is read back; a customer counts as lost when they buy nothing in the holdout (the rest
of the log). Printed from the same run:

- AUC (higher = ranks the lost customers above the kept ones better) of journey's
  ``churn_risk``; of journey's buy-till-you-die ``churn_risk`` as it was before the
  learned score (a second replay, on the sample size of then and with the learned model
  switched off); of days since the last purchase; of Pareto/NBD's expected purchases in
  the holdout and MBG/NBD's probability of none, both fitted offline on every customer;
  and a few more baselines;
- precision and recall of ``lifecycle_stage = churned`` at the cut, for both replays;
  and, for reference only, the best precision a threshold on ``churn_risk`` could reach
  at recall 0.80 if it could read the holdout (no live system can);
- for reference only, the AUC of journey's own features in a logistic regression trained
  on the holdout labels themselves (cross-validated): the most those features can tell,
  which the learned score, trained on the stream's past, can at best reach;
- each partition's churn model at the cut and the live quality of its scores over time.

The model baselines count purchase *days*, as journey's learned score does.

Usage: ``.venv/bin/python bench/churn_eval.py [--weeks 39 52] [--journey PATH]
[--workdir DIR] [--baskets FILE.csv --start YYYY-MM-DD]`` (``--baskets``: another log,
a CSV of ``household_id,basket_id,timestamp,amount``, one basket a line).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from baselines import bgnbd_p_alive, fit_bgnbd, fit_pnbd, pnbd_expected
from churn_cohort import (
    Cohort,
    Purchase,
    auc,
    build_cohort,
    feature_ceiling,
    precision_recall,
    run_replay,
    state_column,
    write_events,
)
from real_data import DEFAULT_CACHE, cdnow_transactions

from streams.core import btyd

REPO = Path(__file__).resolve().parent.parent
CDNOW_START = dt.date(1997, 1, 1)
TARGET_AUC = 0.770
TARGET_PRECISION, TARGET_RECALL = 0.83, 0.80
# journey before the learned score: a sample of 1000 and no learned model
BEFORE = {"JOURNEY_POPULATION_SAMPLE_SIZE": "1000", "JOURNEY_CHURN_MIN_ROWS": "2000000000"}


def cdnow_purchases() -> list[Purchase]:
    return [Purchase(t.customer_id, dt.datetime(t.day.year, t.day.month, t.day.day, 12,
                                                tzinfo=dt.UTC).timestamp(),
                     t.order_id, t.amount) for t in cdnow_transactions()]


def basket_purchases(path: Path) -> list[Purchase]:
    with open(path, newline="") as fh:
        return [Purchase(r["household_id"], float(r["timestamp"]), r["basket_id"],
                         float(r["amount"])) for r in csv.DictReader(fh)]


def best_precision(score: np.ndarray, lost: np.ndarray, recall: float) -> float:
    """The best precision of "score >= t" over thresholds t with recall >= ``recall``."""
    order = np.argsort(-score, kind="mergesort")
    hits = np.cumsum(lost[order])
    flagged = np.arange(1, score.size + 1)
    ok = hits / max(int(lost.sum()), 1) >= recall
    return float((hits[ok] / flagged[ok]).max()) if ok.any() else float("nan")


def evaluate(name: str, purchases: Sequence[Purchase], cut_day: dt.date, weeks: int,
             journey: str, workdir: Path) -> dict[str, float]:
    cut = dt.datetime(cut_day.year, cut_day.month, cut_day.day, tzinfo=dt.UTC).timestamp()
    until = f"{cut_day:%Y-%m-%d}T00:00:00Z"
    work = workdir / f"{name}-{weeks}w"
    work.mkdir(parents=True, exist_ok=True)
    calib = work / "calib.jsonl"
    n_events = write_events([p for p in purchases if p.at < cut], calib, name)
    cohort = build_cohort(purchases, cut)
    print(f"\n=== {name}, cut after {weeks} weeks ({cut_day}): {len(cohort.ids):,} customers, "
          f"{cohort.lost.mean():.1%} bought nothing in the {cohort.holdout_days:.0f}-day "
          f"holdout; {n_events:,} calibration events ===")
    now_run = run_replay(journey, calib, until, work / "state.jsonl", work / "summary.json", {})
    old_run = run_replay(journey, calib, until, work / "state-before.jsonl", None, BEFORE)
    print(f"  replays: {now_run.seconds:.1f} s (default settings), {old_run.seconds:.1f} s "
          "(before the learned score)")
    ceiling = feature_ceiling(purchases, cut, cohort.ids, cohort.lost)
    return report(cohort, now_run.state, old_run.state, now_run.summary, ceiling)


def report(co: Cohort, state: dict, before: dict, summary: dict,
           ceiling: float) -> dict[str, float]:
    lost, ids = co.lost, co.ids
    x, t_x, T = co.x, co.t_x, co.T
    risk = state_column(state, ids, "churn_risk")
    scorers = [str(state.get(u, {}).get("churn_scorer")) for u in ids]
    pnbd = fit_pnbd(x, t_x, T)
    mbg = btyd.fit(x, t_x, T)
    bg = fit_bgnbd(x, t_x, T)
    horizon = co.holdout_days
    rows = [
        (f"journey churn_risk ({scorers.count('logit'):,} by the learned model, "
         f"{scorers.count('btyd'):,} by buy-till-you-die)", auc(risk, lost)),
        ("journey churn_risk before the learned score (buy-till-you-die, sample 1000)",
         auc(state_column(before, ids, "churn_risk"), lost)),
        ("days since last purchase", auc(co.recency, lost)),
        ("Pareto/NBD -E[purchases in the holdout], fitted offline on everyone",
         auc(-pnbd_expected(pnbd, horizon, x, t_x, T), lost)),
        ("MBG/NBD P(no purchase in the holdout), fitted offline on everyone",
         auc(np.array([btyd.p_no_purchase(mbg, horizon, int(a), b, c)
                       for a, b, c in zip(x, t_x, T, strict=True)]), lost)),
        ("BG/NBD 1 - P(alive), fitted offline on everyone",
         auc(1.0 - bgnbd_p_alive(bg, x, t_x, T), lost)),
        ("journey 1 - p_alive (MBG/NBD, streamed)",
         auc(1.0 - state_column(state, ids, "p_alive"), lost)),
    ]
    print(f"  Pareto/NBD (days): r={pnbd[0]:.3f} alpha={pnbd[1]:.2f} s={pnbd[2]:.3f} "
          f"beta={pnbd[3]:.2f}")
    print(f"\n  {'AUC':>6}  score")
    for label, value in rows:
        print(f"  {value:6.4f}  {label}")
    stage = [str(state.get(u, {}).get("lifecycle_stage")) for u in ids]
    old_stage = [str(before.get(u, {}).get("lifecycle_stage")) for u in ids]
    churned = np.array([s == "churned" for s in stage])
    stages = [("journey: stage = churned", churned),
              ("journey: stage in (declining, churned)",
               np.array([s in ("declining", "churned") for s in stage])),
              ("before the learned score: stage = churned",
               np.array([s == "churned" for s in old_stage]))]
    print(f"\n  {'n':>7} {'prec':>6} {'recall':>6}  stage rule")
    for label, mask in stages:
        n, prec, rec = precision_recall(mask, lost)
        print(f"  {n:7,} {prec:6.4f} {rec:6.4f}  {label}")
    oracle = best_precision(risk, lost, TARGET_RECALL)
    print(f"  reference only (reads the holdout): best precision of churn_risk >= t at "
          f"recall >= {TARGET_RECALL:.2f}: {oracle:.4f}")
    print(f"  reference only (reads the holdout): AUC of journey's own features in a "
          f"logistic regression trained on the holdout labels (5-fold CV): {ceiling:.4f}")
    _models(summary)
    n, prec, rec = precision_recall(churned, lost)
    score_auc = rows[0][1]
    print(f"\n  targets: churn_risk AUC {score_auc:.4f} "
          f"({'met' if score_auc >= TARGET_AUC else 'NOT met'}: >= {TARGET_AUC}); "
          f"stage=churned precision {prec:.4f} at recall {rec:.4f} "
          f"({'met' if prec >= TARGET_PRECISION and rec >= TARGET_RECALL else 'NOT met'}: "
          f">= {TARGET_PRECISION} at >= {TARGET_RECALL})")
    return {"auc": score_auc, "precision": prec, "recall": rec}


def _models(summary: dict) -> None:
    models = summary.get("churn_models") or []
    latest: dict[int, dict] = {}
    for m in models:
        latest[m["partition"]] = m
    print("\n  partition models at the cut (kind, fitted, labelled rows, of which no purchase, "
          "declining and churned thresholds):")
    for p in sorted(latest):
        m = latest[p]
        print(f"    {p}: {m['kind']:<5} {m['fitted_at'][:10]} {m['rows']:>6,} "
              f"{m['positives']:>6,}  {m['declining_threshold']:.4f}  "
              f"{m['churned_threshold']:.4f}")
    print("  live quality of the scores made one horizon before each snapshot refit "
          "(AUC, Brier, base rate; mean over partitions):")
    by_at: dict[str, list[dict]] = {}
    for m in models:
        if m.get("quality"):
            by_at.setdefault(m["fitted_at"][:10], []).append(m["quality"])
    for at, qs in sorted(by_at.items()):
        aucs = [q["auc"] for q in qs if q["auc"] is not None]
        scorers = "/".join(sorted({q["scorer"] for q in qs}))
        print(f"    {at}  {scorers:<10} n={sum(q['n'] for q in qs):>6,}  "
              f"AUC {np.mean(aucs) if aucs else float('nan'):.3f}  "
              f"Brier {np.mean([q['brier'] for q in qs]):.3f}  "
              f"base {np.mean([q['base_rate'] for q in qs]):.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journey", default=str(REPO / ".venv" / "bin" / "journey"),
                        help="the journey executable whose replay is evaluated")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_CACHE / "churn_eval",
                        help="where the events and states are written")
    parser.add_argument("--weeks", type=int, nargs="+", default=[39],
                        help="calibration weeks from the start of the log")
    parser.add_argument("--baskets", type=Path, help="another log: a CSV of baskets")
    parser.add_argument("--start", type=dt.date.fromisoformat,
                        help="with --baskets: the day the cut's weeks count from")
    args = parser.parse_args(argv)
    if args.baskets is not None:
        if args.start is None:
            parser.error("--baskets needs --start")
        name, purchases, start = args.baskets.stem, basket_purchases(args.baskets), args.start
    else:
        name, purchases, start = "cdnow", cdnow_purchases(), CDNOW_START
    for weeks in args.weeks:
        evaluate(name, purchases, start + dt.timedelta(weeks=weeks), weeks, args.journey,
                 args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
