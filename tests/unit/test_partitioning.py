"""Replay must put each user on the partition Kafka's default partitioner would."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from streams.core.partitioning import murmur2, partition_for


def kafka_partition(key: bytes, partitions: int) -> int:
    """kafka-python's DefaultPartitioner arithmetic on a serialized key."""
    return (kafka_murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafka_python_on_many_keys() -> None:
    rng = random.Random(2026)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde"]
    keys += [f"user-{i}".encode() for i in range(5000)]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) for _ in range(3000)]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF, key


@hyp_settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_murmur2_matches_kafka_python_on_any_bytes(key: bytes) -> None:
    assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 7, 12, 64, 1000])
def test_partition_for_matches_the_default_partitioner(partitions: int) -> None:
    users = [f"u{i}" for i in range(2000)] + ["ünïcödé-üser", "用户-42", "🙂", ""]
    seen = set()
    for user in users:
        p = partition_for(user, partitions)
        assert p == kafka_partition(user.encode("utf-8"), partitions)
        assert 0 <= p < partitions
        seen.add(p)
    if partitions <= 64:
        assert len(seen) == partitions  # every partition gets users


@hyp_settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.integers(1, 500))
def test_partition_for_any_user_id(user: str, partitions: int) -> None:
    assert partition_for(user, partitions) == kafka_partition(user.encode("utf-8"), partitions)
