"""The records the worker reads and writes, without faust: what a consumed record and a
record to publish hold, journey's own control records (ticks, and news for another
partition: referral credits, identity stitches and merges, events forwarded from a merged
id), and the holes between what the table holds and what the consumer delivers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from streams.core.event import Event, event_from_dict, event_to_dict

TICK = b"tick"  # the kind header of a clock tick
FEEDBACK = b"feedback"  # the kind header of journey's own news on the repartition topic
Gap = tuple[str, int, int, int]  # topic, partition, first offset missing, offset after the hole


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds: the broker's record time (when it was produced)
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Send:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None
    source_time: float | None = None  # deadline or event receipt, for the latency metric


def in_offset_order(records: Iterable[Record]) -> list[Record]:
    """Each topic-partition's records in offset order, each offset once (the first copy),
    topic-partitions in order of first appearance."""
    groups: dict[tuple[str, int], dict[int, Record]] = {}
    for rec in records:
        groups.setdefault((rec.topic, rec.partition), {}).setdefault(rec.offset, rec)
    return [rec for group in groups.values() for _, rec in sorted(group.items())]


def tick_value(now: float) -> bytes:
    """The body of a tick record: the instant, in epoch seconds, that it stands for.
    Producers that keep their own clock (the demo's simulator) write ticks too."""
    return repr(float(now)).encode()


def encode_feedback(e: Event) -> bytes:
    return orjson.dumps(event_to_dict(e))


def decode_feedback(raw: bytes) -> Event:
    return event_from_dict(orjson.loads(raw))


def find_gaps(held: Callable[[str, int], int], records: Iterable[Record],
              committed: Mapping[tuple[str, int], int] | None = None) -> list[Gap]:
    """Input never applied that lies before ``records``: (topic, partition, start, stop)
    ranges, ``start <= offset < stop``. ``held(topic, partition)`` is the newest offset
    whose effects the table holds; ``committed`` adds the group's committed offsets,
    which catch a hole on a topic that has no record in this batch."""
    expected: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    out: list[Gap] = []
    for (topic, p), offset in (committed or {}).items():
        nxt = held(topic, p) + 1
        if offset > nxt:
            starts[(topic, p)] = nxt
        expected[(topic, p)] = max(nxt, offset)
    for rec in records:
        key = (rec.topic, rec.partition)
        known = expected.get(key)
        nxt = held(rec.topic, rec.partition) + 1 if known is None else known
        if rec.offset > nxt:
            start = starts.pop(key, nxt)
            out.append((rec.topic, rec.partition, start, rec.offset))
        elif key in starts:
            out.append((rec.topic, rec.partition, starts.pop(key), nxt))
        expected[key] = max(nxt, rec.offset + 1)
    out.extend((topic, p, start, expected[(topic, p)])
               for (topic, p), start in starts.items())
    return out
