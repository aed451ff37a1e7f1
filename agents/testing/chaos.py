"""Chaos runs: SIGKILL workers at random points of a stream with a known answer.

Used by ``tests/kafka/test_chaos.py`` (short runs in ``make test``) and ``bench/chaos.py`` (a
longer soak). A history is produced up front; workers are killed and replaced while they
work through it; at the end every user's state and the set of alerts are compared with
``journey replay`` of the same history.

Progress is read from the consumer group's committed offsets, which survive the kills,
so a kill point means "this share of the input has been committed".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.kafka.heal import committed_offsets
from agents.testing.kafka_io import (
    all_topics,
    consume,
    event_time,
    produce_events,
    sentinels,
    values,
)
from agents.testing.replay_check import field_diffs, run_replay
from agents.testing.segment_stream import segment_stream
from agents.testing.workers import Worker, Workers, replay_env
from streams.settings import Settings
from streams.synth import SynthConfig, generate, write_jsonl

DAY = 86400.0
# what must match replay exactly, per user
CORE_FIELDS = ("orders", "monetary", "lifecycle_stage", "frequency", "refunds", "funnel_stage",
               "first_seen_at", "last_event_at", "alerts_sent", "last_alert_id")
# What each user did, which a stitched history must carry over whenever its merges land.
# A worker working off a backlog judges a merge at its partition's clock, later than
# replay does, so stages and alerts of stitched users may differ from replay's (see
# docs/producing.md); these may not.
DONE_FIELDS = ("orders", "monetary", "frequency", "refunds", "funnel_stage", "first_seen_at",
               "last_event_at", "last_purchase_at")


def old_history(users: int, seed: int, segment: bool = False
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Synthetic events that ended long ago (every inactivity deadline is past, so a
    user's stage no longer depends on the instant), and one sentinel per partition.
    ``segment``: as a Segment source sends them, with anonymous visitors stitched into
    their users at login (``agents.testing.segment_stream``)."""
    start = time.time() - 330 * DAY
    history, _ = generate(SynthConfig(users=users, days=60, start=start, seed=seed))
    events = [e for e in history if isinstance(e, dict)]
    done = sentinels(max(event_time(e) for e in events) + 1.0)
    if segment:
        events = [e for e in segment_stream(events, seed=seed) if isinstance(e, dict)]
    return events, done


def lost_and_double(live: dict[str, dict[str, Any] | None],
                    truth: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Events missing from, and counted twice in, the live states (orders and activity)."""
    lost = double = 0
    for uid, want in truth.items():
        got = live.get(uid)
        if got is None:
            lost += 1
            continue
        lost += max(0, want["orders"] - got["orders"]) + (got["last_event_at"]
                                                          < want["last_event_at"])
        double += max(0, got["orders"] - want["orders"]) + (got["monetary"]
                                                            > want["monetary"] + 0.005)
    return lost, double


# An alert's role (and the strategy that follows from it) counts referral credits, which
# cross partitions through the repartition topic and may arrive before a re-sent alert
# was computed again but after its first copy: the only fields a re-send may change.
CREDIT_DEPENDENT = frozenset({"role", "strategy"})


def alert_differences(live: list[dict[str, Any]], truth: list[dict[str, Any]]
                      ) -> tuple[dict[str, int], list[str]]:
    """Counts of alerts replay has and live lacks, live has and replay lacks, re-sent
    copies that differ from the first beyond the credit-dependent fields, and those that
    differ only there; plus a few examples of differing copies."""
    first: dict[str, dict[str, Any]] = {}
    inexact = credit = 0
    examples: list[str] = []
    for a in live:
        seen = first.setdefault(a["alert_id"], a)
        changed = {k for k in a if a[k] != seen.get(k)}
        if not changed:
            continue
        if changed <= CREDIT_DEPENDENT:
            credit += 1
        else:
            inexact += 1
        if len(examples) < 3:
            examples.append(f"{a['alert_id']}: " + ", ".join(
                f"{k} {seen.get(k)!r} -> {a[k]!r}" for k in sorted(changed)))
    want = {a["alert_id"] for a in truth}
    counts = {"missing": len(want - first.keys()), "unexpected": len(first.keys() - want),
              "inexact_resends": inexact, "credit_dependent_resends": credit,
              "resent": len(live) - len(first)}
    return counts, examples


@dataclass
class ChaosReport:
    events: int
    kills: int
    workers: int
    lost: int = 0
    double: int = 0
    wrong_states: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    recovery_seconds: list[float] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # the alerts of users that differ
    segment: bool = False  # a stitched history: only what users did is compared

    @property
    def wrong_alerts(self) -> int:
        if self.segment:
            return 0  # not compared: see DONE_FIELDS
        a = self.alerts
        return a.get("missing", 0) + a.get("unexpected", 0) + a.get("inexact_resends", 0)

    def line(self) -> str:
        rec = ", ".join(f"{s:.1f}" for s in self.recovery_seconds)
        if self.segment:
            alerts = "alerts not compared (a stitched history worked off as a backlog)"
        else:
            alerts = (f"wrong alerts={self.wrong_alerts} (re-sent copies "
                      f"{self.alerts.get('resent', 0)}, of which differing only in "
                      f"credit-dependent fields {self.alerts.get('credit_dependent_resends', 0)})")
        return (f"chaos: M={self.events} events, N={self.kills} kills, {self.workers} "
                f"worker(s){', Segment source' if self.segment else ''}: lost={self.lost}, "
                f"double-counted={self.double}, wrong states={self.wrong_states}, {alerts}, "
                f"recovery per kill [{rec}] s")


def committed_share(settings: Settings, topic: str, partitions: int, total: int) -> float:
    """Share of the input topic the group has committed (0..1)."""
    got = asyncio.run(committed_offsets(settings, settings.broker, settings.app_id,
                                        [(topic, p) for p in range(partitions)]))
    return sum(got.values()) / total if total else 1.0


def _wait(predicate: Callable[[], bool], timeout: float, what: str,
          alive: list[Worker]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [w for w in alive if w.returncode is not None]
        if dead:
            dead[0].fail(f"a worker exited with {dead[0].returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            alive[0].fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def send_old_history(settings: Settings, users: int, seed: int, tmp_path: Path,
                     segment: bool = False) -> tuple[Path, list[dict[str, Any]], int]:
    """Write ``old_history`` to a file for replay and send it to the input topic: the
    file, the closing events and how many events were sent."""
    events, done = old_history(users, seed, segment)
    path = tmp_path / "history.jsonl"
    total = write_jsonl([*events, *done], path)
    produce_events(settings.broker, all_topics(settings).events, [*events, *done])
    return path, done, total


def run_chaos(settings: Settings, workers: Workers, tmp_path: Path, *, users: int,
              kills: int, pair: bool, seed: int, partitions: int = 4,
              segment: bool = False) -> ChaosReport:
    """Produce a history, kill workers ``kills`` times at random committed shares while
    they work through it, and compare the end with replay. ``pair``: two workers share
    the partitions and the survivor takes over the killed one's until its replacement
    joins; otherwise one worker is killed and restarted. ``segment``: the history as
    Segment calls, anonymous visitors stitched into their users."""
    rng = random.Random(seed)
    topics = all_topics(settings)
    path, done, total = send_old_history(settings, users, seed, tmp_path, segment)
    report = ChaosReport(events=total, kills=kills, workers=2 if pair else 1, segment=segment)

    alive = [workers.start(settings) for _ in range(2 if pair else 1)]
    for w in alive:
        w.wait_ready(partitions=0)
    points = sorted(rng.uniform(0.1, 0.85) for _ in range(kills))

    def share() -> float:
        return committed_share(settings, topics.events, partitions, total)

    for i, point in enumerate(points):
        _wait(lambda p=point: share() >= p, 240, f"{point:.0%} of the input committed", alive)
        victim = alive.pop(rng.randrange(len(alive)))
        at_kill = share()
        victim.kill()
        killed = time.monotonic()
        alive.append(workers.start(settings))
        # recovered: the group commits past what was committed at the kill, or (at the
        # end of the input) everything is committed
        _wait(lambda a=at_kill: share() > a or share() >= 1.0, 240,
              f"progress after kill {i + 1}", alive)
        report.recovery_seconds.append(time.monotonic() - killed)
    compare_with_replay(settings, alive, path, done, tmp_path, report, partitions)
    return report


def compare_with_replay(settings: Settings, alive: list[Worker], path: Path,
                        done: list[dict[str, Any]], tmp_path: Path, report: ChaosReport,
                        partitions: int) -> None:
    """Once the workers have handled ``path``'s history (up to the sentinels ``done``),
    fill ``report`` with how their states and alerts differ from replay's."""
    topics = all_topics(settings)
    # Every worker stays up: /users on one is routed to the partition's owner.
    last = alive[0]

    def restored() -> int:
        return sum(len(w.health()[1].get("partitions") or []) for w in alive)

    _wait(lambda: restored() >= partitions, 90, "every partition restored", alive)
    last.wait_users(done, 240, "every partition's sentinel")
    for w in alive:
        w.wait_quiet()

    replay = run_replay(path, time.time(), replay_env(settings), tmp_path / "replay")
    live = {uid: last.user(uid) for uid in replay.states}
    report.lost, report.double = lost_and_double(live, replay.states)
    report.diffs = field_diffs(live, replay.states,
                               DONE_FIELDS if report.segment else CORE_FIELDS)
    report.wrong_states = len({d.split(".")[0].split(":")[0] for d in report.diffs})
    live_alerts = [a for t in (topics.churn_warnings, topics.recall_triggers)
                   for a in values(consume(settings.broker, t, timeout=30, idle=2.0))]
    report.alerts, report.examples = alert_differences(live_alerts, replay.alerts)
    differing = sorted({d.split(".")[0].split(":")[0] for d in report.diffs})[:3]
    report.details = [f"{uid}: worker {_alerts_of(uid, live_alerts)}; replay "
                      f"{_alerts_of(uid, replay.alerts)}" for uid in differing]
    if differing:
        try:
            report.details += _changelog_history(settings, differing)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the report
            report.details.append(f"changelog history unavailable: {exc!r}")


def _changelog_history(settings: Settings, users: list[str]) -> list[str]:
    """Every version of these users' state records in the changelog, and the partition
    checkpoints around them: how a wrong state came about."""
    from agents.kafka.codec import loads
    from agents.kafka.table import CTX_PREFIX

    wanted = {u.encode() for u in users}
    records = consume(settings.broker, f"{settings.app_id}-users-changelog", timeout=60,
                      idle=2.0)
    out: list[str] = []
    last_checkpoint: dict[int, str] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        key = r.key or b""
        where = f"  [{r.partition}@{r.offset}]"
        if key.startswith(CTX_PREFIX.encode()):
            c = loads(r.value)
            last_checkpoint[r.partition] = (f"{where} checkpoint clock {c.get('clock')} "
                                            f"consumed {c.get('consumed')}/"
                                            f"{c.get('consumed_repartition')}")
        elif key in wanted:
            v = loads(r.value)
            if r.partition in last_checkpoint:
                out.append(last_checkpoint.pop(r.partition))
            out.append(f"{where} {v.user_id} alerts_sent {v.alerts_sent} stage {v.stage} "
                       f"since {v.stage_since} last_event {v.last_event_at} max_position "
                       f"{v.max_position} wake_at {v.wake_at} last_alert {v.last_alert_id}")
    return out


def _alerts_of(user_id: str, alerts: list[dict[str, Any]]) -> list[str]:
    return [f"{a['type']} {a['alert_id'][:11]} at {a['detected_at']}"
            for a in alerts if a["user_id"] == user_id]
