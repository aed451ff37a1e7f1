"""Every fault of the live worker ends through ``agents.kafka.runtime.fatal``: a FATAL
line, ``journey_healthy`` 0, then exit code 3. Here with fakes, no broker: a tick the
broker never acknowledges (``PublishTimeout`` in the ticker timer), a timer that raises,
and a crash faust reports from any other service. Before, the first two crashed the
faust app instead: exit 1 after faust's own shutdown, with no FATAL line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

import agents.kafka.runtime as runtime
import agents.kafka.worker as worker
from agents.kafka.runtime import EXIT_FATAL, Runtime
from streams.settings import Settings

PARTITIONS = 4


class SilentBroker:
    """A producer whose records are never acknowledged (the broker is gone): aiokafka's
    batch API, as ``agents.kafka.publish`` uses it, counting the records sent."""

    def __init__(self) -> None:
        self.sent = 0

    def create_batch(self) -> list[Any]:
        return _Batch()

    async def send_batch(self, batch: list[Any], topic: str, *,
                         partition: int) -> asyncio.Future[Any]:
        self.sent += len(batch)
        return asyncio.get_running_loop().create_future()


class _Batch(list[Any]):
    def append(self, **record: Any) -> object:  # type: ignore[override]
        super().append(record)
        return record  # aiokafka returns None only when the batch is full


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The hard exit, recorded instead of taken, and after a short grace."""
    taken: list[int] = []
    monkeypatch.setattr(runtime, "FATAL_GRACE_SECONDS", 0.01)
    monkeypatch.setattr(runtime, "_hard_exit", lambda: taken.append(EXIT_FATAL))
    return taken


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    settings = Settings().with_overrides(
        broker="127.0.0.1:9", data_dir=str(tmp_path / "data"), partitions=PARTITIONS,
        broker_outage_seconds=0.2, tick_interval_seconds=1.0)
    built = worker.build(settings, settings.broker)
    mine = [TopicPartition(built.topics.events, p) for p in range(PARTITIONS)]
    monkeypatch.setattr(worker, "owned",
                        lambda _app, topic: mine if topic == built.topics.events else [])
    built.ready = True
    built.metrics.healthy.set(1)
    yield built


def timer_body(rt: Runtime, name: str) -> Callable[[], Awaitable[None]]:
    """What ``_wire`` gave faust as the timer ``name``: the outermost function of the
    registered task that is not faust's own timer loop."""
    for task in rt.app._app_tasks:
        chain = [task]
        while hasattr(chain[-1], "__wrapped__"):
            chain.append(chain[-1].__wrapped__)
        if chain[-1].__name__ == name:
            return next(f for f in chain if "/faust/" not in f.__code__.co_filename)
    raise AssertionError(f"no timer {name!r} registered")


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for ``condition``, at most about ``within`` seconds."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


def healthy(rt: Runtime) -> float:
    return rt.metrics.registry.get_sample_value("journey_healthy") or 0.0


def test_a_tick_never_acknowledged_is_fatal(rt: Runtime, exits: list[int],
                                            caplog: pytest.LogCaptureFixture) -> None:
    producer = SilentBroker()
    rt.app.producer = producer  # type: ignore[assignment]
    ticker = timer_body(rt, "ticker")

    async def run() -> None:
        await ticker()  # returns: the fault is reported, not raised into faust
        await until(lambda: bool(exits))  # the exit comes after the grace period

    with caplog.at_level(logging.CRITICAL, logger="journey.worker"):
        asyncio.run(run())
    assert producer.sent == PARTITIONS
    assert len(rt.fatal) == 1, rt.fatal
    assert rt.fatal[0].startswith("the ticker failed: PublishTimeout (4 records "
                                  f"unacknowledged ({rt.topics.events})"), rt.fatal
    assert any(r.getMessage().startswith("FATAL: the ticker failed") for r in caplog.records)
    assert healthy(rt) == 0
    assert exits == [EXIT_FATAL]


@pytest.mark.parametrize("name", ["gauges", "watchdog"])
def test_a_failing_timer_is_fatal(rt: Runtime, exits: list[int], name: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr(rt.pipeline, "refresh_gauges", broken)
    monkeypatch.setattr(worker, "check_broker", broken)
    body = timer_body(rt, name)

    async def run() -> None:
        await body()
        await until(lambda: bool(exits))  # the exit comes after the grace period

    asyncio.run(run())
    assert [m.split(":")[0] for m in rt.fatal] == [f"the {name} failed"], rt.fatal
    assert exits == [EXIT_FATAL]


def test_a_crash_faust_reports_is_fatal_once(rt: Runtime, exits: list[int]) -> None:
    async def run() -> None:
        rt.app.loop = asyncio.get_running_loop()
        rt.app._crash(ConnectionError("the consumer thread died"))
        rt.app._crash(ConnectionError("and its consequence"))  # already fatal: no more
        await until(lambda: bool(exits))  # the exit comes after the grace period

    asyncio.run(run())
    assert rt.fatal == ["faust crashed: ConnectionError"], rt.fatal
    assert rt.app.crash_reason is not None  # faust's own handling goes on as before
    assert healthy(rt) == 0
    assert exits == [EXIT_FATAL]


def test_a_crash_while_stopping_on_a_signal_is_faust_s_own(rt: Runtime,
                                                           exits: list[int]) -> None:
    async def run() -> None:
        rt.app.loop = asyncio.get_running_loop()
        rt.app._stopped.set()  # what stop() sets first, on SIGTERM
        rt.app._crash(RuntimeError("Event loop is closed"))
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert rt.fatal == [] and exits == []
