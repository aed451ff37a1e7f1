"""What the demo prints: a live ANSI frame on a terminal, status lines otherwise, and the
closing summary. Pure text functions of a :class:`Snapshot`; no terminal library."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agents.demo.watch import Tally, WorkerMetrics
from streams.core.state import STAGES

DAY = 86400.0
ALERT_TYPES = ("churn_warning", "recall_trigger")

CLEAR = "\x1b[H\x1b[2J"
ENTER_ALT, LEAVE_ALT = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"
_BOLD, _DIM, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
_TYPE_COLOUR = {"churn_warning": "\x1b[33m", "recall_trigger": "\x1b[31m"}


@dataclass(slots=True)
class Snapshot:
    """Everything one frame shows."""

    phase: str  # starting | running | storefront closed | stopping | stopped
    elapsed: float  # wall seconds since the demo started
    speed: float  # simulated days per wall second
    sim_start: float
    sim_now: float | None  # None until the simulated clock runs
    users: int  # synthetic shoppers in the storefront
    produced: int  # storefront events sent (malformed lines and re-sends included)
    malformed: int
    produced_rate: float
    applied_rate: float
    metrics: WorkerMetrics | None
    tally: Tally
    metrics_url: str
    state_url: str
    worker_pid: int | None
    broker_pid: int | None
    workdir: str
    duration: float | None = None  # None: until Ctrl-C
    ready_after: float | None = None  # wall seconds until the worker owned its partitions
    notes: list[str] = field(default_factory=list)


def _n(x: float) -> str:
    return f"{int(x):,}"


def sim_date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def sim_day(s: Snapshot) -> float:
    return 0.0 if s.sim_now is None else (s.sim_now - s.sim_start) / DAY


def _stages(m: WorkerMetrics | None) -> str:
    if m is None or not m.users:
        return "(waiting for the worker's first census)"
    return "  ".join(f"{stage} {_n(m.users.get(stage, 0))}" for stage in STAGES)


def _alert_counts(s: Snapshot) -> str:
    parts = []
    for kind in ALERT_TYPES:
        first = s.tally.first_after.get(kind)
        when = f" (first after {first:.1f}s)" if first is not None else ""
        parts.append(f"{kind} {_n(s.tally.alerts.get(kind, 0))}{when}")
    return "   ".join(parts)


def _dead(s: Snapshot) -> str:
    total = sum(s.tally.dead.values())
    if not total:
        return "0"
    reasons = ", ".join(f"{r} {_n(c)}" for r, c in s.tally.dead.most_common())
    return f"{_n(total)}  ({reasons})"


def alert_lines(alert: dict[str, Any]) -> tuple[str, str]:
    """Two lines: who and what to do; then the evidence in a sentence."""
    strategy = alert.get("strategy") or {}
    evidence = alert.get("evidence") or {}
    control = "  CONTROL" if alert.get("control") else ""
    head = (f"{alert.get('type', '?'):<15} {alert.get('user_id', '?'):<9} "
            f"{alert.get('priority', '?')!s:<6} {alert.get('churn_type', '?')!s:<12} "
            f"strategy {strategy.get('kind', '?')}/{strategy.get('incentive', '?')}"
            f"  at {str(alert.get('detected_at', '?'))[:16]}{control}")
    return head, str(evidence.get("summary") or "(no evidence summary)")


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


def render_frame(s: Snapshot, width: int = 120, colour: bool = True) -> str:
    """The live terminal view (without the clear-screen prefix)."""
    b, d, r = (_BOLD, _DIM, _RESET) if colour else ("", "", "")
    m = s.metrics
    applied = m.applied if m else 0.0
    lag = max(0.0, s.produced - (m.settled if m else 0.0))
    clock = ("simulated clock starts when the worker owns its partitions" if s.sim_now is None
             else f"{sim_date(s.sim_now)}  (day {sim_day(s):.1f}, {s.speed:g} days per second)")
    lines = [
        f"{b}journey demo{r}  {d}{s.phase} · {s.elapsed:.0f}s · {s.users} synthetic shoppers{r}",
        "",
        f"{b}simulated{r}   {clock}",
        (f"{b}events{r}      produced {_n(s.produced)} ({s.produced_rate:,.0f}/s)   "
         f"applied {_n(applied)} ({s.applied_rate:,.0f}/s)   "
         f"repeats {_n(m.duplicates if m else 0)}   behind {_n(lag)}"),
        f"{b}users{r}       {_stages(m)}",
        f"{b}alerts{r}      {_alert_counts(s)}",
        f"{b}dead letters{r} {_dead(s)}",
        "",
        f"{b}latest alerts{r}",
    ]
    latest = s.tally.latest()
    if not latest:
        lines.append(f"  {d}(none yet){r}")
    for alert in latest:
        head, summary = alert_lines(alert)
        c = _TYPE_COLOUR.get(str(alert.get("type")), "") if colour else ""
        lines.append(f"  {c}{_clip(head, width - 2)}{r}")
        lines.append(f"      {d}{_clip(summary, width - 6)}{r}")
    lines += [
        "",
        f"{b}metrics{r}     {s.metrics_url}",
        f"{b}state{r}       {s.state_url}",
        f"{b}logs{r}        {s.workdir}  (worker pid {s.worker_pid}, broker pid {s.broker_pid})",
        *s.notes,
        f"{d}Ctrl-C to stop" + (f" (stops by itself after {s.duration:.0f}s)" if s.duration
                                else "") + r,
    ]
    return "\n".join(lines) + "\n"


def render_status(s: Snapshot) -> str:
    """One plain line for a log (stdout is not a terminal)."""
    m = s.metrics
    return (f"[{s.elapsed:5.1f}s] {s.phase}; simulated day {sim_day(s):.1f}; "
            f"produced {s.produced} ({s.produced_rate:.0f}/s), "
            f"applied {int(m.applied) if m else 0} ({s.applied_rate:.0f}/s); "
            f"churn_warning {s.tally.alerts.get('churn_warning', 0)}, "
            f"recall_trigger {s.tally.alerts.get('recall_trigger', 0)}; "
            f"dead letters {sum(s.tally.dead.values())}")


def render_summary(s: Snapshot, produced_per_s: float) -> str:
    """The closing report, plain text."""
    m = s.metrics
    t = s.tally
    lines = [
        "journey demo summary",
        (f"  wall time            {s.elapsed:.1f}s; simulated {sim_day(s):.1f} days at "
         f"{s.speed:g} days per second"),
        (f"  events produced      {s.produced} ({s.malformed} malformed on purpose), "
         f"{produced_per_s:.0f}/s while the clock ran"),
        (f"  events applied       {int(m.applied)} (journey's own referral credits "
         f"included); repeats skipped {int(m.duplicates)}" if m else
         "  events applied       unknown (the worker's /metrics never answered)"),
        "  alerts by type       " + ", ".join(f"{k} {t.alerts.get(k, 0)}" for k in ALERT_TYPES),
    ]
    if s.ready_after is not None:
        lines.append(f"  worker ready         {s.ready_after:.1f}s after start (the simulated "
                     "clock starts then)")
    for kind in ALERT_TYPES:
        if kind in t.first_after:
            lines.append(f"  first {kind:<15}{t.first_after[kind]:.1f}s after start")
    lines.append("  users by stage       " + _stages(m))
    lines.append("  dead letters         " + _dead(s))
    if t.last_dead is not None:
        lines.append(f"    e.g. {t.last_dead.get('reason')}: {t.last_dead.get('message')}")
    shown = [a for kind in ALERT_TYPES for a in t.examples.get(kind, [])[:2]]
    if shown:
        lines.append("  example alerts")
        for alert in shown:
            head, summary = alert_lines(alert)
            lines += [f"    {head}", f"        {summary}"]
    lines += [f"  worker pid {s.worker_pid}, broker pid {s.broker_pid} (both stopped)",
              f"  logs in {s.workdir}", *s.notes]
    return "\n".join(lines) + "\n"
