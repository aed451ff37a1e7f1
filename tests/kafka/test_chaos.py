"""Short chaos runs: workers SIGKILLed at random points, the end compared with replay.

``bench/chaos.py`` runs the same thing longer (more users, more kills) as a soak.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.testing.chaos import run_chaos
from agents.testing.kafka_io import topic_suffixes
from agents.testing.workers import PARTITIONS, Workers
from streams.settings import Settings


@pytest.mark.parametrize("pair, kills, seed, segment",
                         [(False, 3, 41, False), (True, 2, 43, False), (False, 2, 45, True)],
                         ids=["one-worker-restarted", "two-workers-failover",
                              "segment-stitching-restarted"])
def test_random_kills_lose_nothing_and_count_nothing_twice(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path, pair: bool, kills: int, seed: int, segment: bool) -> None:
    """With ``segment``, anonymous visitors are stitched into their users through the
    repartition topic while the kills land; only what users did is compared there (see
    ``agents.testing.chaos.DONE_FIELDS``)."""
    make_topics(*topic_suffixes(kafka_settings), partitions=PARTITIONS)
    report = run_chaos(kafka_settings, workers, tmp_path, users=400, kills=kills, pair=pair,
                       seed=seed, segment=segment)
    print(report.line())
    assert len(report.recovery_seconds) == kills
    assert (report.lost, report.double) == (0, 0), report.line()
    assert not report.diffs, (f"{report.line()}; {report.diffs[:10]}; {report.examples}; "
                              f"{report.details}")
    assert report.wrong_alerts == 0, f"{report.line()}; {report.alerts}; {report.examples}"
