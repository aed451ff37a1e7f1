"""What the worker's callbacks share (:class:`Runtime`), and how the worker stops on a
fault it must not carry on from."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.kafka.logsafe import exception_summary
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.progress import Progress
from agents.kafka.table import Staged
from agents.kafka.topics import Topics
from streams.settings import Settings

if TYPE_CHECKING:
    import faust
    from aiokafka.structs import TopicPartition

log = logging.getLogger("journey.worker")

EXIT_FATAL = 3
FATAL_GRACE_SECONDS = 2.0  # long enough for a probe to see /health answer 503


@dataclass
class Runtime:
    """Everything the app's callbacks share."""

    settings: Settings
    topics: Topics
    metrics: Metrics
    app: faust.App
    table: Any
    pipeline: Pipeline
    bootstrap: str = ""
    probe: Any = None  # a metadata client of our own for the watchdog
    broker_lost_since: float = 0.0
    fatal: list[str] = field(default_factory=list)
    seen_topics: set[str] = field(default_factory=set)
    acked: dict[tuple[str, int], int] = field(default_factory=dict)
    pending_changelog: list[Staged] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    progress: Progress = field(default_factory=Progress)
    ready: bool = False  # started (the process is sound while not fatal)
    serving: bool = False  # partitions restored since the last rebalance: /users can answer

    @property
    def processed_batches(self) -> int:
        return self.progress.batches

    def deadline(self) -> float:
        """The monotonic instant by which what the broker is asked now must be done."""
        return time.monotonic() + self.settings.broker_outage_seconds


def owned(app: faust.App, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` assigned to this worker, in order."""
    try:
        assignment = set(app.consumer.assignment())
    except Exception:  # noqa: BLE001 - not started, or rebalancing: nothing is ours
        assignment = set()
    return sorted((tp for tp in assignment if tp.topic == topic), key=lambda tp: tp.partition)


async def fatal(rt: Runtime, message: str) -> None:
    """Report unhealthy, then leave with exit code 3. There is nothing safe to commit
    when the broker lost our data, so no graceful shutdown is attempted (faust's own
    shutdown against a wiped broker can hang or crash with another exit code)."""
    fatal_soon(rt, message, asyncio.get_running_loop())


def fatal_soon(rt: Runtime, message: str, loop: asyncio.AbstractEventLoop) -> None:
    """:func:`fatal` for code that is not a coroutine on ``loop``, the worker's loop: a
    crash faust reports from a service, maybe in its consumer thread. Only the first
    fault schedules the exit; later ones are logged (they are often its consequences)."""
    first = not rt.fatal
    rt.fatal.append(message)
    rt.metrics.healthy.set(0)
    log.critical("FATAL: %s; exiting with code %d", message, EXIT_FATAL)
    if first:
        loop.call_soon_threadsafe(loop.call_later, FATAL_GRACE_SECONDS, _hard_exit)


def guarded(rt: Runtime, what: str,
            step: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """``step`` (a timer's body) made fatal when it raises: faust would otherwise crash
    the app with its own exit code 1 and no FATAL line, after a shutdown that can hang
    against a broker that is gone."""
    @functools.wraps(step)
    async def run() -> None:
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - any failure of a timer is a fault
            await fatal(rt, f"{what} failed: {exception_summary(exc)}")

    return run


def _hard_exit() -> None:
    from agents.kafka.logrepeats import flush_installed

    # the held client lines of the outage that is ending us, counted; the exit must
    # happen whatever logging does
    with contextlib.suppress(Exception):
        flush_installed()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_FATAL)
