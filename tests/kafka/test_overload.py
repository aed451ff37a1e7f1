"""A burst far above the worker's throughput, with one user of ~30,000 events on one
partition: absorbed without a crash, a lost event or unbounded memory.

Structural checks only (the worker stays up and healthy, the backlog drains, every order
is counted, the poison user's stored state stays within the caps, memory stays under a
generous bound); the figures are printed. ``bench/overload.py`` runs the same scenario
with a 1,000,000-event user and reports the timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.kafka import codec
from agents.testing.kafka_io import topic_suffixes
from agents.testing.overload import (
    Burst,
    orders_by_user,
    run_burst,
    start_worker,
    state_record,
    tag,
)
from agents.testing.workers import PARTITIONS, Workers
from streams.core.state import UserState
from streams.settings import Settings
from streams.testing import CAPS, state_ceiling

USERS = 2_000
EVENTS = 70_000  # ordinary users' events
POISON_EVENTS = 30_000  # one user's, all on one partition, interleaved with the rest
RSS_BOUND_MIB = 1536.0  # generous: the worker holds ~200 MiB after this burst
DRAIN_ALLOWANCE = 240.0  # seconds; a slow CI box drains this burst in well under that


@pytest.mark.kafka
def test_a_burst_with_a_poison_user_is_absorbed(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    s = kafka_settings
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = start_worker(s, tmp_path)
    workers.started.append(worker)  # killed, and its log shown on failure, at teardown
    worker.wait_ready(partitions=PARTITIONS)

    burst = Burst(tag(), USERS, EVENTS, POISON_EVENTS)
    report = run_burst(s, worker, burst, drain_timeout=DRAIN_ALLOWANCE)
    print("\n" + "\n".join(report.lines()))

    # the worker rode it out: never exited, always healthy, and caught up
    if report.exited is not None:
        worker.fail(f"the worker exited with {report.exited} during the burst")
    assert set(report.health_codes) == {200}, report.health_codes
    assert report.peak_lag > 0, "no backlog was seen: the burst did not overload the worker"
    assert report.drain_seconds is not None, (
        f"the backlog did not drain (canaries behind it applied, journey_consumer_lag 0) "
        f"within {DRAIN_ALLOWANCE:.0f}s: "
        f"{report.readings[-1] if report.readings else 'no readings'}")
    assert report.canaries_unseen == 0 and report.canary_others and report.canary_poison

    # nothing lost, nothing counted twice, nothing refused
    assert worker.metric("journey_dead_letters_total") == 0
    users = sorted({burst.user(i) for i in range(USERS)} | {burst.poison})
    got = orders_by_user(worker, users)
    wrong = {u: (got[u], burst.purchases[u]) for u in users if got[u] != burst.purchases[u]}
    assert not wrong, f"{len(wrong)} users' orders differ (shown, produced): " \
                      f"{list(wrong.items())[:5]}"

    # the poison user's stored state is bounded by the caps
    raw = state_record(s, burst.poison)
    assert raw is not None, "no changelog record of the poison user"
    state = codec.loads(raw)
    assert isinstance(state, UserState) and state.orders == burst.purchases[burst.poison]
    for name, cap in CAPS.items():
        assert len(getattr(state, name)) <= cap(s), (name, len(getattr(state, name)))
    assert len(raw) <= state_ceiling(s), (len(raw), state_ceiling(s))
    print(f"poison user: {len(raw):,} bytes encoded (ceiling {state_ceiling(s):,}), "
          f"orders {state.orders:,}")

    assert report.peak_rss_mib < RSS_BOUND_MIB, report.lines()
    assert report.rss_after_mib < RSS_BOUND_MIB, report.lines()
    assert worker.returncode is None and worker.health()[0] == 200
