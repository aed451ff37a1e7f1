"""``observe_many`` gives a histogram exactly what ``observe`` one amount at a time would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from agents.kafka.metrics import EVENT_AGE_BUCKETS, observe_many


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples
            if not s.name.endswith("_created")}


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_observed_at_once_equals_one_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    # amounts on the bounds themselves, between them, past the last and zero
    amounts = [rng.choice([*EVENT_AGE_BUCKETS, 0.0, 1e7, rng.uniform(0, 90000)])
               for _ in range(rng.randrange(1, 400))]
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("age_seconds", "x", buckets=EVENT_AGE_BUCKETS, registry=one)
    h2 = Histogram("age_seconds", "x", buckets=EVENT_AGE_BUCKETS, registry=many)
    for a in amounts:
        h1.observe(a)
    observe_many(h2, amounts[:len(amounts) // 2])
    observe_many(h2, amounts[len(amounts) // 2:])
    observe_many(h2, [])
    assert _samples(many) == pytest.approx(_samples(one))
    assert _samples(many)[("age_seconds_count", ())] == len(amounts)
