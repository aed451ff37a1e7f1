"""Restarts that used to stall a worker for good: each run must end caught up, with every
restart after a loud exit counted (``bench/stall.py`` repeats them as a soak)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.testing.chaos import old_history
from agents.testing.kafka_io import topic_suffixes
from agents.testing.restarts import run_crash_loop, run_history_flood, run_start_kills
from agents.testing.workers import PARTITIONS, Workers
from streams.settings import Settings

pytestmark = pytest.mark.kafka
FATAL = 3


def test_old_history_into_a_running_worker_killed_while_it_dead_letters(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    make_topics(*topic_suffixes(kafka_settings), partitions=PARTITIONS)
    events, _ = old_history(users=500, seed=51)
    report = run_history_flood(kafka_settings, workers, events, seed=51)
    print(report.line())
    assert report.caught_up_seconds is not None, report.line()
    # a worker that stopped by itself did so loudly, with the fault code
    assert all(code == FATAL for code in report.exits), report.line()


def test_kills_in_the_first_seconds_after_ready_lose_nothing(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    make_topics(*topic_suffixes(kafka_settings), partitions=PARTITIONS)
    report = run_crash_loop(kafka_settings, workers, tmp_path, users=300, kills=4, seed=53)
    print(report.line().replace("chaos:", "crash loop:"))
    assert (report.lost, report.double) == (0, 0), report.line()
    assert not report.diffs, f"{report.line()}; {report.diffs[:10]}; {report.details}"
    assert report.wrong_alerts == 0, f"{report.line()}; {report.alerts}; {report.examples}"


def test_kills_at_any_moment_of_the_start_lose_nothing_with_rocksdb(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    """rocksdb:// writes its local files while it restores: a kill there must not leave
    them ahead of or behind the changelog."""
    make_topics(*topic_suffixes(kafka_settings), partitions=PARTITIONS)
    report, statuses = run_start_kills(kafka_settings, workers, tmp_path, users=300, kills=4,
                                       seed=57, store="rocksdb://")
    print(report.line().replace("chaos:", "kills at start:"), "/health at each kill:", statuses)
    assert (report.lost, report.double) == (0, 0), report.line()
    assert not report.diffs, f"{report.line()}; {report.diffs[:10]}; {report.details}"
    assert report.wrong_alerts == 0, f"{report.line()}; {report.alerts}; {report.examples}"
