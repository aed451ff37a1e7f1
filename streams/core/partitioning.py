"""Which partition a user's events live on: Kafka's default partitioner (murmur2 of the
key bytes, positive, modulo the partition count), as the Java client, kafka-python and
aiokafka compute it. Replay uses it so each partition sees the events the live worker's
partition would."""

from __future__ import annotations

import struct
from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # little-endian 32-bit words


def murmur2(data: bytes) -> int:
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length & ~3
    n = n4 >> 2
    words = (_WORDS[n] if n < len(_WORDS) else struct.Struct(f"<{n}I")).unpack_from(data)
    for k in words:
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) ^ (k * _M)) & _MASK  # (a & m) ^ (b & m) == (a ^ b) & m
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= data[n4 + 2] << 16
        if rest >= 2:
            h ^= data[n4 + 1] << 8
        h ^= data[n4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(user_id: str, partitions: int) -> int:
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


# with a memo of the recently routed ids, not of every id: at a million users one of every
# id would hold about 150 MB
partition_for = lru_cache(maxsize=1 << 16)(partition_of)
