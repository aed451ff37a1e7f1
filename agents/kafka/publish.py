"""Sending records and waiting for their acknowledgements, with a bound.

The producer's own request timeout (``broker_request_timeout_seconds``) makes a request
the broker never answers fail instead of hang; a record that failed is sent again until
``deadline``. Past it, :class:`PublishTimeout` is raised and the worker treats it as a
fault wherever it is raised (``agents.kafka.runtime.fatal``, exit 3): an orchestrator
restart is better than a worker that holds a batch forever while its health check says
it is fine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger("journey.publish")

RETRY_PAUSE_SECONDS = 0.5


class PublishTimeout(RuntimeError):
    """Records still unacknowledged when their deadline passed."""

    log_safe = True  # the message holds a count and topic names, never a record


class Outgoing(Protocol):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None


async def send_acknowledged(producer: Any, items: Sequence[Outgoing], deadline: float,
                            on_ack: Callable[[Outgoing], None] | None = None) -> list[Any]:
    """Send ``items`` and return their acknowledgements (record metadata), in no set order.

    ``deadline`` is a ``time.monotonic()`` instant. Records that fail are sent again, the
    others are not: a key is written at most once per batch, so a re-send cannot reorder
    two writes of one key.
    """
    acks: list[Any] = []
    pending = list(items)
    attempt = 0
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PublishTimeout(f"{len(pending)} records unacknowledged "
                                 f"({_topics(pending)}) after {attempt} attempts")
        try:
            results = await asyncio.wait_for(_send_all(producer, pending), remaining)
        except TimeoutError:
            raise PublishTimeout(f"{len(pending)} records unacknowledged "
                                 f"({_topics(pending)}) when the deadline passed") from None
        failed = []
        for item, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failed.append((item, result))
            else:
                acks.append(result)
                if on_ack is not None:
                    on_ack(item)
        attempt += 1
        if failed:
            log.warning("%d of %d records not acknowledged (%s: %s); sending them again",
                        len(failed), len(pending), type(failed[0][1]).__name__,
                        failed[0][1])
            await asyncio.sleep(min(RETRY_PAUSE_SECONDS,
                                    max(0.0, deadline - time.monotonic())))
        pending = [item for item, _ in failed]
    return acks


async def _send_all(producer: Any, items: Sequence[Outgoing]) -> list[Any]:
    """Per item (in order) its record metadata, or the exception its batch failed with.

    Records go out as one aiokafka batch per topic-partition (as many as the producer's
    batch size needs) rather than one ``send()`` and future each: about a fifth of the
    client's CPU per record on the embedded broker. Offsets within a batch are
    consecutive, so each record's is its batch's first plus its place in it, as aiokafka
    itself reports for ``send()``. Partition and timestamp are chosen as ``send()``
    chooses them."""
    # faust's Producer wraps aiokafka's (which the tests may hand in directly)
    client = producer._ensure_producer() if hasattr(producer, "_ensure_producer") else producer
    by_tp: dict[tuple[str, int], list[int]] = {}
    known: set[str] = set()  # topics whose partitions the client has looked up
    for n, s in enumerate(items):
        partition = s.partition
        if partition is None:
            if s.topic not in known:
                await client.client._wait_on_metadata(s.topic)
                known.add(s.topic)
            partition = client._partition(s.topic, None, s.key, s.value, s.key, s.value)
        by_tp.setdefault((s.topic, partition), []).append(n)
    def add(batch: Any, s: Outgoing) -> bool:  # False: the batch is full
        return batch.append(timestamp=None, key=s.key, value=s.value,
                            headers=s.headers) is not None

    sent: list[tuple[Any, list[int]]] = []
    for (topic, partition), members in by_tp.items():
        batch = client.create_batch()
        taken: list[int] = []
        for n in members:
            if not add(batch, items[n]):  # full: send it, start the next
                sent.append((await client.send_batch(batch, topic, partition=partition),
                             taken))
                batch, taken = client.create_batch(), []  # (a new list: the old one is sent)
                if not add(batch, items[n]):
                    raise ValueError(f"a record of {len(items[n].value or b'')} bytes does "
                                     f"not fit in an empty producer batch ({topic})")
            taken.append(n)
        if taken:
            sent.append((await client.send_batch(batch, topic, partition=partition), taken))
    results: list[Any] = [None] * len(items)
    done = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
    for (_, taken), got in zip(sent, done, strict=True):
        for k, n in enumerate(taken):
            results[n] = got if isinstance(got, BaseException) \
                else got._replace(offset=got.offset + k)
    return results


def _topics(items: Sequence[Outgoing]) -> str:
    return ", ".join(sorted({s.topic for s in items}))
