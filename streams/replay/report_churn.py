"""The backtest report's section on the learned churn model and the recall uplift: how
each partition's model ranked, at every snapshot refit, the users it had scored one
horizon earlier, and what the recalls did against the control group."""

from __future__ import annotations

from html import escape

from streams.core.churn.model import ChurnModel
from streams.core.timefmt import rfc3339
from streams.replay.engine import Summary
from streams.replay.svg import PALETTE, Series, day_axis, line_chart, value_axis


def churn_section(s: Summary) -> str:
    head = "<h2>Churn model quality over time</h2>"
    rated = [(p, m.fitted_at, m.quality.auc) for p, m in s.churn_models
             if m.quality is not None and m.quality.auc is not None]
    if not rated:
        return head + _p("No snapshot refit had matured scores to check yet: the first "
                         "comes one churn horizon after the first snapshot.") + _uplift(s)
    partitions = sorted({p for p, _, _ in rated})
    series = [Series(f"partition {p}", [(t, a) for q, t, a in rated if q == p],
                     PALETTE[i % len(PALETTE)]) for i, p in enumerate(partitions)]
    times = [t for _, t, _ in rated]
    chart = line_chart("Live AUC of each partition's churn scores, at each snapshot refit",
                       day_axis(min(times), max(times)), value_axis(0.4, 1.0, "AUC"),
                       series, markers=True)
    rows = "".join(_row(p, m) for p, m in s.churn_models if m.quality is not None)
    table = ("<table><tr><th>refit</th><th>partition</th><th>model</th><th>labelled rows"
             "</th><th>declining at</th><th>churned at</th><th>scores checked</th>"
             "<th>by</th><th>AUC</th><th>Brier</th><th>did not buy</th></tr>"
             f"{rows}</table>")
    return head + _p(
        "At each snapshot refit a partition compares the scores it made one horizon earlier "
        "with what those users then did: AUC (0.5 is guessing), Brier score and the share "
        "who made no purchase. Scores by 'btyd' are the buy-till-you-die fallback, before "
        "the learned model ('logit') had enough matured labels. These AUCs are not the "
        "ones above: they score only the sampled buyers, against the score's own question "
        "(no purchase within the horizon), which is harder to foresee than whether a user "
        "shows up at all after the cut, so they are lower.") + chart + table + _uplift(s)


def _row(p: int, m: ChurnModel) -> str:
    q = m.quality
    learned = m.learned
    cells = [rfc3339(m.fitted_at)[:10], str(p), m.kind, f"{m.rows:,}",
             f"{m.declining_threshold:.3f}" if learned else "-",
             f"{m.churned_threshold:.3f}" if learned else "-"]
    if q is None:
        cells += ["-"] * 5
    else:
        cells += [f"{q.n:,}", q.scorer, "-" if q.auc is None else f"{q.auc:.3f}",
                  f"{q.brier:.3f}", f"{q.base_rate:.1%}"]
    first = f'<td style="white-space:nowrap">{escape(cells[0])}</td>'
    return "<tr>" + first + "".join(f"<td>{escape(c)}</td>" for c in cells[1:]) + "</tr>"


def _uplift(s: Summary) -> str:
    head = "<h3>Uplift of recalls</h3>"
    u = s.uplift
    if u is None or (u.treated.settled == 0 and u.control.settled == 0):
        return head + _p("No recall has settled yet (come back, or its return window closed).")

    def rate(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    table = ("<table><tr><th>group</th><th>recalls settled</th><th>returned in the window"
             "</th><th>return rate</th></tr>"
             f"<tr><td>treated</td><td>{u.treated.settled:,}</td><td>{u.treated.returned:,}"
             f"</td><td>{rate(u.treated.rate)}</td></tr>"
             f"<tr><td>control</td><td>{u.control.settled:,}</td><td>{u.control.returned:,}"
             f"</td><td>{rate(u.control.rate)}</td></tr></table>")
    if u.estimate is None or u.low is None or u.high is None:
        verdict = "Uplift needs settled recalls in both groups."
    else:
        verdict = (f"Uplift (treated minus control return rate): {u.estimate:+.1%}, 95% "
                   f"interval {u.low:+.1%} to {u.high:+.1%}.")
    return head + table + _p(verdict)


def _p(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'
