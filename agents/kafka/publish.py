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
    futures = [await producer.send(s.topic, s.key, s.value, s.partition, None, s.headers)
               for s in items]
    return list(await asyncio.gather(*futures, return_exceptions=True))


def _topics(items: Sequence[Outgoing]) -> str:
    return ", ".join(sorted({s.topic for s in items}))
