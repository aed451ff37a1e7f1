"""The whole bad-input corpus (tests/support/bad_corpus.py) through a live worker on Kafka: every
case lands on the dead-letter topic with its reason, and the worker goes on."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest

from agents.testing.kafka_io import (
    Out,
    all_topics,
    dead_letters,
    produce_with_sentinels,
    topic_suffixes,
)
from agents.testing.workers import PARTITIONS, Workers
from streams.settings import Settings
from tests.support.bad_corpus import CASES


@pytest.mark.kafka
def test_every_corpus_case_is_dead_lettered_and_the_worker_goes_on(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        ) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = workers.start(s)  # default limits: the corpus is written against them
    worker.wait_ready()
    tag = uuid.uuid4().hex[:6]
    cases = {f"bad-{tag}-{i:03d}": case for i, case in enumerate(CASES)}
    now = time.time()
    records = [Out(case.raw, key.encode(), int(now * 1000)) for key, case in cases.items()]
    after = produce_with_sentinels(s.broker, topics.events, records, prefix=f"after-{tag}")

    worker.wait_users(after, 120, "the valid events after the corpus applied on every partition")
    letters = dead_letters(s.broker, topics, len(cases), timeout=90)
    by_key = {letter["origin"]["key"]: letter for letter in letters}
    wrong = {cases[k].name: (cases[k].reason, by_key.get(k, {}).get("reason"))
             for k in cases if by_key.get(k, {}).get("reason") != cases[k].reason}
    assert wrong == {}, "case: (expected, got)"
    assert len(letters) == len(cases)  # one each, and nothing else dead-lettered

    m = worker.metrics()
    for reason, n in Counter(c.reason for c in CASES).items():
        assert worker.metric("journey_dead_letters_total", m, reason=reason) == n, reason
    assert worker.metric("journey_dead_letters_total", m) == len(cases)
    status, _ = worker.health()
    crashes = (worker.returncode is not None) + worker.log_tail(100_000).count("Traceback")
    print(f"bad input: {len(cases)} cases, {len(by_key)} dead-lettered, {crashes} crashes")
    assert crashes == 0 and status == 200
