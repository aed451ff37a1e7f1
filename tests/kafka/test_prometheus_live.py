"""A real Prometheus (Debian's ``prometheus``, see ``tools/ensure-promtool``) scrapes a live
worker on the embedded broker while a synthetic storefront's history flows in three waves;
the journey series are then read back through Prometheus' own query API.

What a unit test of ``agents.kafka.metrics`` cannot show: that the worker's ``/metrics`` page
parses for a real scraper, that counters only go up between scrapes, and that the values
a dashboard would see agree with the input and with the worker itself.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agents.testing.kafka_io import (
    all_topics,
    event_record,
    event_time,
    produce,
    tick_record,
    topic_suffixes,
)
from agents.testing.workers import PARTITIONS, Workers
from streams.core.apply import REFERRAL_CONVERTED
from streams.core.event import PURCHASE, REFUND, REVIEW
from streams.core.state import FUNNEL, STAGES
from streams.settings import Settings
from streams.synth import SynthConfig, generate
from tests.support.deploy import PrometheusServer, PromTools, prometheus_server

pytestmark = pytest.mark.kafka

DAY = 86400.0
USERS = 240
WAVES = 3
WAIT = 60.0  # generous: the CI box is a busy 2-core machine


def _waves(users: int, seed: int) -> list[list[dict[str, Any]]]:
    """A synthetic history cut into ``WAVES`` consecutive stretches of time.

    The worker runs on a simulated clock (its own ticker off, ticks produced after each
    wave): a wall-clock tick would move every partition to today, and the next wave of
    this old history would then be too late to apply.
    """
    history, _ = generate(SynthConfig(users=users, days=60, start=time.time() - 70 * DAY,
                                      seed=seed))
    events = [e for e in history if isinstance(e, dict)]  # already in time order
    cut = [round(len(events) * w / WAVES) for w in range(WAVES + 1)]
    return [events[a:b] for a, b in itertools.pairwise(cut)]


def _total(prom: PrometheusServer, expr: str) -> float:
    """``sum(expr)``; 0 when no series matches (a labelled counter born later)."""
    return prom.value(f"sum({expr})") or 0.0


def test_prometheus_scrapes_a_live_worker_while_events_flow(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        prom_tools: PromTools, tmp_path: Path) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    waves = _waves(USERS, seed=23)
    consumed = f'journey_events_consumed_total{{job="journey",topic="{topics.events}"}}'
    applied_inputs = f'journey_events_applied_total{{type!="{REFERRAL_CONVERTED}"}}'

    worker = workers.start(s, tick_interval_seconds=0)
    with prometheus_server(prom_tools, tmp_path / "prometheus",
                           [f"127.0.0.1:{worker.port}"], job="journey",
                           scrape_interval="1s") as prom:
        worker.wait_ready(partitions=0)
        prom.wait_for(lambda: prom.value('up{job="journey"}') == 1, WAIT,
                      'up{job="journey"} == 1')
        prom.wait_for(lambda: prom.value("journey_assigned_partitions") == PARTITIONS, WAIT,
                      f"journey_assigned_partitions == {PARTITIONS}")
        # the gauge is set once the app has started, which may come a scrape after the
        # partitions were assigned: wait for it, as for the others
        prom.wait_for(lambda: prom.value("journey_healthy") == 1, WAIT, "journey_healthy == 1")

        # --- three waves: each one fully counted before the next is produced ---
        produced = 0
        users: set[str] = set()
        seen_applied: list[float] = []
        for n, wave in enumerate(waves, 1):
            # stamped by the producer's clock, as live traffic is; then the clock moves
            # to the wave's end (ticks are input records, but not consumed events)
            end = max(event_time(e) for e in wave) + 1.0
            records = [*(event_record(e, stamp=None) for e in wave),
                       *(tick_record(end, p) for p in range(PARTITIONS))]
            produced += produce(s.broker, topics.events, records) - PARTITIONS
            users |= {e["user_id"] for e in wave}
            prom.wait_for(lambda: _total(prom, consumed) == produced, WAIT,  # noqa: B023
                          f"wave {n}: {consumed} to reach {produced}")
            if n > 1:
                # The last scrape before this wave held the previous total, so counters
                # rose within the window: what a throughput panel shows while events flow.
                for expr in (consumed, "journey_events_applied_total",
                             "journey_processing_latency_seconds_count"):
                    rate = _total(prom, f"rate({expr}[1m])")
                    assert rate > 0, f"wave {n}: rate({expr}[1m]) = {rate}"
            seen_applied.append(_total(prom, "journey_events_applied_total"))
            assert _total(prom, applied_inputs) <= produced
            # the stage gauges are refreshed every 2 s
            prom.wait_for(lambda: _total(prom, "journey_users") == len(users),  # noqa: B023
                          WAIT, f"wave {n}: sum(journey_users) == {len(users)}")
        assert seen_applied == sorted(set(seen_applied)), f"not increasing: {seen_applied}"

        # --- quiet: every input applied, the gauges settled ---
        worker.wait_quiet()
        assert _total(prom, applied_inputs) == produced
        resets = prom.samples("resets(journey_events_applied_total[5m])")
        assert resets and set(resets.values()) == {0.0}, resets
        assert prom.value("sum(journey_dead_letters_total)") in (None, 0.0)

        stages = prom.samples("journey_users")
        assert {dict(k)["stage"] for k in stages} == set(STAGES)
        assert all(v >= 0 for v in stages.values()), stages
        funnel = prom.samples("journey_funnel_users")
        assert {dict(k)["stage"] for k in funnel} == set(FUNNEL)
        assert sum(funnel.values()) == len(users)
        first_seen = _total(prom, 'journey_lifecycle_transitions_total{from_stage="none"}')
        assert first_seen == len(users)

        # Operating rates: shares in [0, 1]; conversion and repeat follow from the input.
        orders: Counter[str] = Counter(e["user_id"] for wave in waves for e in wave
                                       if e["type"] == PURCHASE)
        buyers = sum(1 for c in orders.values() if c >= 1)
        rates = {dict(k)["rate"]: v for k, v in prom.samples("journey_operating_rate").items()}
        assert set(rates) == {"retention", "conversion", "repeat", "referral", "satisfaction"}
        assert all(0.0 <= v <= 1.0 for v in rates.values()), rates
        assert rates["conversion"] == pytest.approx(buyers / len(users))
        assert rates["repeat"] == pytest.approx(
            sum(1 for c in orders.values() if c >= 2) / buyers)
        # satisfied: a buyer with no refund and no average rating of 2.5 or below
        refunded = {e["user_id"] for wave in waves for e in wave if e["type"] == REFUND}
        ratings: dict[str, list[float]] = {}
        for e in (e for wave in waves for e in wave if e["type"] == REVIEW):
            ratings.setdefault(e["user_id"], []).append(float(e["properties"]["rating"]))
        satisfied = [u for u in orders if u not in refunded
                     and (u not in ratings or sum(ratings[u]) / len(ratings[u]) > 2.5)]
        assert 0 < len(satisfied) < buyers  # the history has unhappy buyers to count
        assert rates["satisfaction"] == pytest.approx(len(satisfied) / buyers)

        # Consumer lag: one non-negative series per owned partition, back to 0 once quiet.
        lag = prom.samples("journey_consumer_lag")
        assert sorted(dict(k)["partition"] for k in lag) == [str(p) for p in range(PARTITIONS)]
        assert all(v >= 0 for v in lag.values()), lag
        prom.wait_for(lambda: prom.value("max(journey_consumer_lag)") == 0, WAIT,
                      "max(journey_consumer_lag) == 0 once quiet")

        # Histograms: cumulative buckets ending in +Inf == _count, observed more than once.
        for family in ("journey_processing_latency_seconds", "journey_event_age_seconds",
                       "journey_sweep_duration_seconds", "journey_alert_latency_seconds"):
            count = prom.value(f"{family}_count")
            assert count is not None and count > 0, family
            buckets = sorted((float(dict(k)["le"]), v)
                             for k, v in prom.samples(f"{family}_bucket").items())
            assert buckets[-1] == (float("inf"), count), (family, buckets[-1], count)
            cumulative = [v for _, v in buckets]
            assert cumulative == sorted(cumulative), (family, buckets)
            total = prom.value(f"{family}_sum")
            assert total is not None and total >= 0, family
        # what each histogram observes, counted elsewhere (one query: one scrape):
        # an age per applied event, a latency per published alert, a sweep per tick
        for expr in ("sum(journey_event_age_seconds_count) - sum(journey_events_applied_total)",
                     "sum(journey_alert_latency_seconds_count) - sum(journey_alerts_total)",
                     f"sum(journey_sweep_duration_seconds_count) - {WAVES * PARTITIONS}"):
            assert prom.value(expr) == 0, expr

        # --- what Prometheus stored is what the worker exports ---
        def counters_agree() -> bool:
            mine = {(name, labels): v for (name, labels), v in worker.metrics().items()
                    if name.startswith("journey_") and name.endswith("_total")}
            names = sorted({name for name, _ in mine})
            theirs = {(name, labels): v for name in names
                      for labels, v in prom.samples(name).items()}
            return bool(mine) and mine == theirs

        prom.wait_for(counters_agree, WAIT, "every journey counter in Prometheus to equal the "
                      "worker's own /metrics")
        peak_lag = prom.value("max(max_over_time(journey_consumer_lag[5m]))")
        print(f"prometheus saw {produced} events in {WAVES} waves from {len(users)} users; "
              f"applied after each wave {seen_applied}; peak lag {peak_lag}; rates {rates}")
