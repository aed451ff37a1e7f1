"""The worker's sends (``agents.kafka.publish``): records go out as aiokafka batches, and
the metadata each record gets back names exactly where the broker put it.

The checkpoint and the RocksDB store trust those offsets (``changelog_offsets``), so a
record's reported offset must hold that record, across batch splits and partitions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from agents.kafka.publish import _send_all
from agents.kafka.records import Send
from agents.testing.kafka_io import consume
from streams.core.partitioning import partition_for

pytestmark = pytest.mark.kafka


def _items(topic: str, other: str) -> list[Send]:
    items = []
    for n in range(240):
        key = f"user-{n % 37}".encode()
        value = (f"{n:04d}:" + "x" * (150 + n % 90)).encode()
        partition = None if n % 3 else n % 4  # the default partitioner's and explicit ones
        items.append(Send(other if n % 5 == 0 else topic, key, value, [("n", str(n).encode())],
                          partition))
    items.append(Send(topic, b"user-gone", None, [], 1))  # a tombstone
    return items


def test_each_records_metadata_names_where_the_broker_put_it(broker: Any,
                                                             make_topics: Any) -> None:
    topic, other = make_topics("out", "other", partitions=4)
    items = _items(topic, other)

    async def send() -> list[Any]:
        # small batches, so that one partition's records span several
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=2048,
                                    acks="all")
        await producer.start()
        try:
            return await _send_all(producer, items)
        finally:
            await producer.stop()

    started = time.time()
    results = asyncio.run(send())
    assert not [r for r in results if isinstance(r, BaseException)]
    # all acknowledged already: read each topic until nothing more comes
    stored = {(r.topic, r.partition, r.offset): r
              for t in (topic, other) for r in consume(broker.bootstrap, t, timeout=30.0)}
    assert len(stored) == len(items)
    for s, md in zip(items, results, strict=True):
        # the default partitioner's, as journey's own producers use it (``partition_for``)
        want = s.partition if s.partition is not None else partition_for(
            (s.key or b"").decode(), 4)
        assert (md.topic, md.partition) == (s.topic, want)
        got = stored[(md.topic, md.partition, md.offset)]
        assert (got.key, got.value, list(got.headers)) == (s.key, s.value, s.headers)
        assert started - 5 <= got.timestamp / 1000 <= time.time() + 5  # stamped when sent
    per_partition: dict[tuple[str, int], list[int]] = {}
    for md in results:
        per_partition.setdefault((md.topic, md.partition), []).append(md.offset)
    for offsets in per_partition.values():  # in the order given, one after another
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert max(len(v) for v in per_partition.values()) * 200 > 2048  # batches were split

