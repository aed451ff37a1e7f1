"""``journey replay --report FILE.html``: one self-contained HTML page about a backtest.

What went in and came out of the replay, how the stage populations and alert volumes
moved day by day, how the learned churn model fared at each refit and what recalls did
against the control group, and, when the log runs past ``--until``, how well
``churn_risk`` at the cut foresaw who never came back. No scripts, styles or fonts from
elsewhere: the charts are inline SVG, so the file opens offline and can be mailed around.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from html import escape
from pathlib import Path
from typing import Any

from streams.core.state import FUNNEL, STAGES
from streams.core.timefmt import rfc3339
from streams.replay.calibration import auc, reliability
from streams.replay.engine import DAY, Replay, Summary
from streams.replay.report_churn import churn_section
from streams.replay.svg import PALETTE, Series, day_axis, line_chart, stacked_bar_chart, value_axis
from streams.settings import Settings

STAGE_COLORS = {"new": PALETTE[0], "growing": PALETTE[2], "mature": PALETTE[4],
                "declining": PALETTE[1], "churned": PALETTE[3]}
TIERS = ("top", "middle", "base", "none")
SETTING_SECTIONS = ("lifecycle", "population", "churn", "alerts")  # the ones that shape the result
RISKIEST_SHOWN = 20

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{padding:.2em .7em;text-align:left}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}td.n{text-align:right}
.note{color:#555;max-width:50em}.cols{display:flex;flex-wrap:wrap;gap:2em}
svg{max-width:100%;height:auto}
"""


def write_report(path: Path, replay: Replay, as_of: float,
                 run: Mapping[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(replay, as_of, run), encoding="utf-8")


def render_report(replay: Replay, as_of: float, run: Mapping[str, Any] | None = None) -> str:
    """The page; ``run``: what the backtest ran on (``agents.cli.replay.run_facts``)."""
    users = [_user_row(s) for s in replay.snapshots(as_of)]
    s = replay.summary
    title = (f"<h1>journey backtest report</h1><p>State as of <b>{escape(rfc3339(as_of))}</b>"
             f" ({len(users):,} users).</p>")
    body = [title, _run(run),
            _inputs(s), _settings(replay.settings), _stages_over_time(s), _alerts_per_day(s),
            _calibration(s, users), churn_section(s), _distributions(users),
            _riskiest(s, users)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>journey backtest report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _user_row(snap: dict[str, Any]) -> dict[str, Any]:
    keep = ("user_id", "churn_risk", "recency_days", "lifecycle_stage", "value_tier",
            "funnel_stage", "role", "monetary")
    return {k: snap.get(k) for k in keep}


# --- small HTML pieces ------------------------------------------------------------------

def _cell(v: Any, tag: str = "td") -> str:
    if isinstance(v, bool) or v is None:
        return f"<{tag}>{escape('-' if v is None else ('yes' if v else 'no'))}</{tag}>"
    if isinstance(v, int):
        return f'<{tag} class="n">{v:,}</{tag}>'
    if isinstance(v, float):
        return f'<{tag} class="n">{v:,.3f}</{tag}>'
    return f"<{tag}>{escape(str(v))}</{tag}>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(_cell(h, "th") for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _counts(c: Counter[str] | dict[str, int], order: Sequence[str] = ()) -> str:
    keys = [k for k in order if k in c] + sorted(k for k in c if k not in order)
    return ", ".join(f"{k} {c[k]:,}" for k in keys) or "none"


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


# --- sections ---------------------------------------------------------------------------

def _run(run: Mapping[str, Any] | None) -> str:
    if not run:
        return ""
    rows: list[tuple[str, Any]] = [("journey", run["journey"])]
    rows += [("input", f"{i['file']} ({i['bytes']:,} bytes)") for i in run["inputs"]]
    rows.append(("partitions", str(run["partitions"])))
    rows += [(f"--{k.replace('_', '-')}", v) for k, v in run.items()
             if k in ("until", "cut_over", "live_from") and v is not None]
    rows.append(("replay started (bounds future event times)",
                 run["received_at"]))
    return "<h2>Run</h2>" + _table((), rows)


def _inputs(s: Summary) -> str:
    react = Counter({"treated": 0, "control": 0, "none": 0})
    react.update(s.reactivations)
    rows = [
        ("events read", f"{s.read:,}"), ("applied", f"{s.applied:,}"),
        ("duplicates", f"{s.duplicates:,}"), ("after the cut (--until)", f"{s.after_until:,}"),
        ("dead letters", f"{sum(s.dead_letters.values()):,}: {_counts(s.dead_letters)}"),
        ("users", f"{s.users:,}: {_counts(s.stages, STAGES)}"),
        ("stage transitions", f"{s.transitions:,}"),
        ("alerts", f"{sum(s.alerts.values()):,}: {_counts(s.alerts)}"),
        ("suppressed alerts", f"{sum(s.suppressed.values()):,}: {_counts(s.suppressed)}"),
        ("reactivations",
         f"{sum(react.values()):,}: {_counts(react, ('treated', 'control', 'none'))}"),
        ("model refits", f"{s.refits:,}"),
    ]
    return "<h2>Inputs and outputs</h2>" + _table((), rows)


def _settings(settings: Settings) -> str:
    values = settings.public_dict()
    tables = [_table((f"{section} setting", "value"),
                     [(f.name, _setting_text(f.name, values[f.name])) for f in fields(settings)
                      if f.metadata.get("section") == section])
              for section in SETTING_SECTIONS]
    return "<h2>Settings</h2>" + '<div class="cols">' + "".join(tables) + "</div>"


# settings whose 0 means "not pinned": say what happens instead
_UNPINNED = {"churn_declining_threshold": "0 (set at each fit from the model)",
             "churn_churned_threshold": "0 (set at each fit from the model)"}


def _setting_text(name: str, v: Any) -> str:
    if not v and name in _UNPINNED:
        return _UNPINNED[name]
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def _stages_over_time(s: Summary) -> str:
    head = "<h2>Stage populations over time</h2>"
    if not s.stage_series:
        return head + _note("No daily series was recorded (the replay ran without "
                            "track_series, or covered less than a day).")
    days = [t for t, _ in s.stage_series]
    names = [n for n in STAGES if any(c.get(n) for _, c in s.stage_series)]
    names += sorted({n for _, c in s.stage_series for n in c} - set(STAGES) - set(names))
    series = [Series(n, [(t, float(c.get(n, 0))) for t, c in s.stage_series],
                     STAGE_COLORS.get(n, PALETTE[(5 + i) % len(PALETTE)]))
              for i, n in enumerate(names)]
    top = max((b for x in series for _, b in x.points), default=1.0)
    chart = line_chart("Users per lifecycle stage, sampled at each UTC midnight",
                       day_axis(days[0], days[-1]), value_axis(0, top, "users"), series)
    return head + chart + _note("Counts at each UTC midnight of stream time, over all "
                                "partitions.")


def _alerts_per_day(s: Summary) -> str:
    head = "<h2>Alerts per day</h2>"
    if not s.alerts_per_day:
        return head + _note("No alerts were emitted, or no daily series was recorded.")
    days = sorted(s.alerts_per_day)
    types = sorted({k for c in s.alerts_per_day.values() for k in c})
    series = [Series(k, [(d + DAY / 2, float(s.alerts_per_day[d][k])) for d in days],
                     PALETTE[i % len(PALETTE)]) for i, k in enumerate(types)]
    top = max(sum(c.values()) for c in s.alerts_per_day.values())
    chart = stacked_bar_chart("Alerts per UTC day by type", day_axis(days[0], days[-1] + DAY),
                              value_axis(0, top, "alerts"), series, DAY)
    totals = [(k, sum(s.alerts_per_day[d][k] for d in days)) for k in types]
    return head + chart + _table(("type", "alerts"), totals)


def _calibration(s: Summary, users: list[dict[str, Any]]) -> str:
    head = "<h2>Churn risk against what users did later</h2>"
    if not s.came_back:
        return head + _note(
            "Nothing in the log came after the cut, so there is no later behaviour to check "
            "churn_risk against. Replay with --until before the end of the log to get a "
            "reliability diagram and AUC.")
    risk = [float(u["churn_risk"]) for u in users]
    lost = [u["user_id"] not in s.came_back for u in users]
    buyers = [i for i, u in enumerate(users) if u["recency_days"] is not None]
    b_risk = [risk[i] for i in buyers]
    b_lost = [lost[i] for i in buyers]
    b_recency = [float(users[i]["recency_days"]) for i in buyers]
    aucs = _table(("users scored", "users", "did not come back", "AUC churn_risk",
                   "AUC recency_days"),
                  [("all", len(users), sum(lost), _auc_text(auc(risk, lost)), "-"),
                   ("buyers (have a recency)", len(buyers), sum(b_lost),
                    _auc_text(auc(b_risk, b_lost)), _auc_text(auc(b_recency, b_lost)))])
    bins = reliability(risk, lost)
    chart = line_chart("Predicted churn risk against observed share that did not come back",
                       value_axis(0, 1, "churn_risk at the cut (mean per bin)"),
                       value_axis(0, 1, "share with no event after the cut"),
                       [Series("observed", [(b.mean_predicted, b.observed_rate) for b in bins],
                               PALETTE[3])], width=520, height=400, markers=True,
                       diagonal=True)
    table = _table(("churn_risk", "users", "mean predicted", "did not come back"),
                   [(f"{b.lo:.1f}-{b.hi:.1f}", b.users, b.mean_predicted, b.observed_rate)
                    for b in bins])
    return head + _note(
        f"A user 'came back' when the log holds any event of theirs after the cut "
        f"({s.after_until:,} events there, from {len(s.came_back):,} users). AUC is the "
        "chance that a user who did not come back was scored above one who did (0.5 is "
        "guessing, ties count half). recency_days, the days since the last purchase, is "
        "the naive baseline; it exists only for buyers, so the second row compares both "
        "scores on the same users. The dashed line is perfect calibration.") + aucs + \
        f'<div class="cols">{chart}{table}</div>'


def _auc_text(v: float | None) -> str:
    return "n/a (one class only)" if v is None else f"{v:.3f}"


def _distributions(users: list[dict[str, Any]]) -> str:
    out = ["<h2>Value tiers, funnel and roles</h2>", '<div class="cols">']
    for key, title, order in (("value_tier", "value tier", TIERS),
                              ("funnel_stage", "funnel stage", FUNNEL),
                              ("role", "role", ())):
        out.append(f"<div>{_crosstab(users, key, title, order)}</div>")
    out.append("</div>")
    return "".join(out)


def _crosstab(users: list[dict[str, Any]], key: str, title: str,
              order: Sequence[str]) -> str:
    """Users per value of ``key``, split by lifecycle stage."""
    cells = Counter((str(u[key]), str(u["lifecycle_stage"])) for u in users)
    values = Counter(str(u[key]) for u in users)
    stages = [st for st in STAGES if any(st == s for _, s in cells)]
    stages += sorted({s for _, s in cells} - set(stages))
    keys = [k for k in order if k in values] + sorted(k for k in values if k not in order)
    n = max(len(users), 1)
    rows = [[k, values[k], f"{values[k] / n:.1%}"] + [cells[(k, st)] for st in stages]
            for k in keys]
    return _table([title, "users", "share", *stages], rows)


def _at_stake(u: dict[str, Any]) -> float:
    """Value at risk, as an alert's ``priority_score``: lifetime net spend times churn risk."""
    return max(float(u["monetary"]), 0.0) * float(u["churn_risk"])


def _riskiest(s: Summary, users: list[dict[str, Any]]) -> str:
    # Not by churn risk alone: users who never bought sit at the top of that, all alike.
    ranked = sorted(users, key=lambda u: (-_at_stake(u), -float(u["churn_risk"]),
                                          str(u["user_id"])))
    known = bool(s.came_back)
    headers = ["user", "value at risk", "churn_risk", "stage", "recency_days", "net spend",
               "value tier"]
    if known:
        headers.append("came back")
    rows = []
    for u in ranked[:RISKIEST_SHOWN]:
        row = [u["user_id"], f"{_at_stake(u):,.2f}", u["churn_risk"], u["lifecycle_stage"],
               u["recency_days"], f"{float(u['monetary']):,.2f}", u["value_tier"]]
        if known:
            row.append(u["user_id"] in s.came_back)
        rows.append(row)
    return (f"<h2>Most value at risk at the cut (top {RISKIEST_SHOWN})</h2><p>Lifetime net "
            "spend times churn risk, as an alert's priority_score.</p>" + _table(headers, rows))
