"""The input of ``bench/recovery.py``: its users, their purchases as the input topic's
records, and the probe users whose states a recovered worker must answer with again."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

from agents.testing.kafka_io import Out
from agents.testing.workers import PARTITIONS
from streams.core.partitioning import partition_for


def rfc3339(t: float) -> str:
    # Not streams.core.timefmt's ("Z") nor kafka_io's (microseconds): the events keep the
    # text earlier runs fed.
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def user_id(i: int) -> str:
    return f"u{i:08d}"


def purchase(uid: str, n: int, at: float, amount: float) -> Out:
    body = {"event_id": f"{uid}-p{n}", "user_id": uid, "type": "purchase",
            "occurred_at": rfc3339(at), "source": "bench",
            "properties": {"amount": amount, "currency": "EUR", "order_id": f"{uid}-o{n}"}}
    return Out(orjson.dumps(body), uid.encode(), int(at * 1000))


def first_purchases(users: int, now: float) -> Iterator[Out]:
    """One purchase per user within the last hour, in time order."""
    start = now - 3600.0
    for i in range(users):
        yield purchase(user_id(i), 1, start + 3000.0 * i / users, 10.0 + i % 90)


def choose_probes(users: int, count: int, seed: int) -> list[str]:
    """``count`` users spread evenly over the partitions, the last user among them (its
    state is in the changelog's newest batch, the one a short recovery misses)."""
    rng = random.Random(seed)
    per: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    want = max(1, count // PARTITIONS)
    tries = 0
    while any(len(v) < want for v in per.values()) and tries < 100 * count:
        tries += 1
        uid = user_id(rng.randrange(users))
        p = partition_for(uid, PARTITIONS)
        if len(per[p]) < want and uid not in per[p]:
            per[p].append(uid)
    chosen = {u for v in per.values() for u in v}
    chosen.add(user_id(users - 1))
    for p in range(PARTITIONS):  # and each partition's last user
        for i in range(users - 1, max(-1, users - 1000), -1):
            if partition_for(user_id(i), PARTITIONS) == p:
                chosen.add(user_id(i))
                break
    return sorted(chosen)
