"""Restart scenarios beyond random kills, each ending caught up or loudly unhealthy.

- A flood of old history into a running worker (every event older than the partition
  clock, so dead-lettered as ``too_late``), with a SIGKILL while it dead-letters.
- A crash loop: SIGKILL within the first seconds after the worker is ready, several times
  in a row, so kills land in table recovery, the heal and the first batches.
- Kills at start: SIGKILL at a random moment from the process's start on, several times in
  a row, with a table already behind it: before the web server answers, while the table
  is restored (``/health`` 503), and just after it is ready.

Like an orchestrator, the runs restart a worker that exits (a fault it reported, code 3)
and count it; a worker that neither progresses nor exits is the failure they look for.
Used by ``tests/kafka/test_restarts.py`` and ``bench/stall.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.testing.chaos import (
    ChaosReport,
    committed_share,
    compare_with_replay,
    send_old_history,
)
from agents.testing.kafka_io import all_topics, produce_events, sentinels
from agents.testing.workers import Worker, Workers
from streams.settings import Settings


@dataclass
class FloodReport:
    events: int
    dead_letters_at_kill: float = 0.0
    exits: list[int | None] = field(default_factory=list)  # of workers that stopped by themselves
    caught_up_seconds: float | None = None  # from the restart after the kill

    def line(self) -> str:
        ended = (f"caught up {self.caught_up_seconds:.1f}s after the restart"
                 if self.caught_up_seconds is not None else "NOT caught up")
        return (f"history flood: {self.events} old events into a running worker, killed "
                f"after {self.dead_letters_at_kill:.0f} dead letters; {ended}; worker exits "
                f"on the way {self.exits or 'none'}")


def _supervised(workers: Workers, settings: Settings, current: Worker,
                exits: list[int | None], until: float, done: list[str]) -> Worker | None:
    """Restart ``current`` whenever it exits, as an orchestrator would, until every user
    in ``done`` answers on /users or ``until`` (monotonic) passes; the worker that got
    there, or None."""
    while time.monotonic() < until:
        if current.returncode is not None:
            exits.append(current.returncode)
            current = workers.start(settings)
            continue
        if all(current.user_when_up(u) for u in done):
            return current
        time.sleep(0.5)
    return None


def run_history_flood(settings: Settings, workers: Workers, events: list[dict[str, Any]], *,
                      seed: int, kill_share: float | None = 0.3,
                      kill_after: float | None = None, bound: float = 300.0) -> FloodReport:
    """Send a history that ended long ago into a worker whose clock is now, SIGKILL it
    once ``kill_share`` of the history is dead-lettered (or ``kill_after`` seconds after
    the sending began), and supervise its replacement until fresh sentinels behind the
    history are applied."""
    topics = all_topics(settings)
    report = FloodReport(events=len(events))
    worker = workers.start(settings)
    worker.wait_ready()
    # the partition clocks at now first, as in a shop that has been live for a while
    live = sentinels(time.time(), prefix=f"live-{seed}")
    produce_events(settings.broker, topics.events, live)
    worker.wait_for(lambda: all(worker.user(e["user_id"]) for e in live), 120,
                    "every partition's clock at now")
    sending = time.monotonic()
    produce_events(settings.broker, topics.events, events)
    if kill_after is not None:
        time.sleep(max(0.0, kill_after - (time.monotonic() - sending)))
    else:
        share = kill_share or 0.0
        worker.wait_for(lambda: worker.metric("journey_dead_letters_total")
                        >= share * len(events), 240, f"{share:.0%} dead-lettered")
    report.dead_letters_at_kill = worker.metric("journey_dead_letters_total")
    worker.kill()
    fresh = sentinels(time.time(), prefix=f"flood-{seed}")
    produce_events(settings.broker, topics.events, fresh)
    started = time.monotonic()
    last = _supervised(workers, settings, workers.start(settings), report.exits,
                       started + bound, [e["user_id"] for e in fresh])
    if last is not None:
        report.caught_up_seconds = time.monotonic() - started
    return report


def _ready(worker: Worker) -> Callable[[], bool]:
    return lambda: worker.health()[0] == 200


def run_crash_loop(settings: Settings, workers: Workers, tmp_path: Path, *, users: int,
                   kills: int, seed: int, partitions: int = 4,
                   within: float = 3.0) -> ChaosReport:
    """SIGKILL a worker 0..``within`` s after it reports ready, ``kills`` times in a row,
    then let the last one work through the history and compare with replay."""
    rng = random.Random(seed)
    path, done, total = send_old_history(settings, users, seed, tmp_path)
    report = ChaosReport(events=total, kills=kills, workers=1)
    worker = workers.start(settings)
    for _ in range(kills):
        worker.wait_for(_ready(worker), 120, "/health/ready")
        time.sleep(rng.uniform(0.0, within))
        worker.kill()
        killed = time.monotonic()
        worker = workers.start(settings)
        worker.wait_for(_ready(worker), 120, "ready after a kill")
        report.recovery_seconds.append(time.monotonic() - killed)
    compare_with_replay(settings, [worker], path, done, tmp_path, report, partitions)
    return report


def run_start_kills(settings: Settings, workers: Workers, tmp_path: Path, *, users: int,
                    kills: int, seed: int, store: str = "memory://",
                    partitions: int = 4) -> tuple[ChaosReport, list[int | None]]:
    """Once a worker has committed 30% of the history, SIGKILL it and its replacements
    ``kills`` times, each at a random moment up to 1.5 times as long after its start as
    the first worker took to get ready; then let the last one finish and compare with
    replay. Also returns each victim's ``/health`` status just before its kill (None:
    nothing answered yet), to show where the kills landed."""
    rng = random.Random(seed)
    path, done, total = send_old_history(settings, users, seed, tmp_path)
    report = ChaosReport(events=total, kills=kills, workers=1)
    events_topic = all_topics(settings).events
    worker = workers.start(settings, store=store)
    began = time.monotonic()
    worker.wait_for(_ready(worker), 120, "/health/ready")
    to_ready = time.monotonic() - began
    worker.wait_for(lambda: committed_share(settings, events_topic, partitions, total) >= 0.3,
                    240, "30% of the input committed")
    statuses: list[int | None] = []
    for _ in range(kills):
        worker.kill()
        worker = workers.start(settings, store=store)
        time.sleep(rng.uniform(0.0, 1.5 * to_ready))
        statuses.append(worker.health()[0])
    killed = time.monotonic()
    worker.wait_for(_ready(worker), 120, "ready after the last kill")
    report.recovery_seconds.append(time.monotonic() - killed)
    compare_with_replay(settings, [worker], path, done, tmp_path, report, partitions)
    return report, statuses
