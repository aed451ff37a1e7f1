"""Kafka client log lines, each kind at most once per window (agents/kafka/logrepeats)."""

from __future__ import annotations

import logging
import threading

from agents.kafka.logrepeats import (
    MAX_KINDS,
    RepeatLimiter,
    flush_installed,
    limit_client_repeats,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_a_flood_of_client_errors_passes_once_a_window_and_counts_the_rest() -> None:
    clock, out = Clock(), Collect()
    out.addFilter(RepeatLimiter(window=30.0, clock=clock))
    log = _logger("aiokafka.test_flood", out)
    for i in range(300):  # 100 a second for 3 s, as in a broker outage
        clock.now = i / 100
        log.error("Unable connect to node with id %s: %s", 1, f"refused {i}")
    assert out.lines == ["aiokafka.test_flood ERROR Unable connect to node with id 1: refused 0"]
    clock.now = 30.5
    log.error("Unable connect to node with id %s: %s", 1, "refused again")
    assert out.lines[1] == ("aiokafka.test_flood ERROR Unable connect to node with id 1: "
                            "refused again [299 more like this held back over the last 30 s]")
    clock.now = 61.0  # a quiet window: the next one passes with no count
    log.error("Unable connect to node with id %s: %s", 1, "once more")
    assert out.lines[2].endswith("once more")


def test_kinds_are_told_apart_and_other_loggers_always_pass() -> None:
    clock, out = Clock(), Collect()
    out.addFilter(RepeatLimiter(window=30.0, clock=clock))
    client = _logger("kafka.test_kinds", out)
    ours = _logger("journey.test_kinds", out)
    for _ in range(3):
        client.error("Unable to update metadata from %s", 1)
        client.warning("Unable to update metadata from %s", 1)  # another level
        client.error("Failed fetch messages from %s", 1)  # another template
        ours.error("journey's own line")
    assert len(out.lines) == 3 + 3
    assert sum("journey's own line" in line for line in out.lines) == 3


def test_a_template_with_percent_signs_still_formats_after_its_count() -> None:
    clock, out = Clock(), Collect()
    out.addFilter(RepeatLimiter(window=1.0, clock=clock))
    log = _logger("aiokafka.test_percent", out)
    log.error("%d%% of fetches failed", 50)
    log.error("%d%% of fetches failed", 60)
    clock.now = 2.0
    log.error("%d%% of fetches failed", 70)
    assert out.lines[-1].endswith("70% of fetches failed [1 more like this held back over "
                                  "the last 2 s]")


def test_the_memory_of_kinds_is_bounded_even_when_every_kind_is_recent() -> None:
    clock, out = Clock(), Collect()
    limiter = RepeatLimiter(window=30.0, clock=clock)
    out.addFilter(limiter)
    log = _logger("aiokafka.test_bound", out)
    for i in range(3 * MAX_KINDS):  # all within one window: none has expired
        log.error(f"formatted before logging: {i}")
    assert len(out.lines) == 3 * MAX_KINDS
    assert len(limiter._kinds) == MAX_KINDS
    log.error(f"formatted before logging: {3 * MAX_KINDS - 1}")  # the newest is remembered
    assert len(out.lines) == 3 * MAX_KINDS


def test_one_limiter_on_two_handlers_gives_both_the_same_lines_and_counts_once() -> None:
    clock, first, second = Clock(), Collect(), Collect()
    limit_client_repeats([first, second]).clock = clock
    log = logging.getLogger("aiokafka.test_two_handlers")
    log.handlers = [first, second]
    log.propagate = False
    log.setLevel(logging.INFO)
    for i in range(10):
        clock.now = float(i)
        log.error("fail %s", i)
    clock.now = 31.0
    log.error("fail %s", 31)
    assert first.lines == second.lines == [
        "aiokafka.test_two_handlers ERROR fail 0",
        "aiokafka.test_two_handlers ERROR fail 31 [9 more like this held back over the last "
        "31 s]"]


def test_client_threads_logging_at_once_break_nothing() -> None:
    out = Collect()
    limiter = RepeatLimiter(window=30.0, clock=Clock())
    out.addFilter(limiter)
    log = _logger("kafka.test_threads", out)
    failures: list[BaseException] = []

    def flood(n: int) -> None:
        try:
            for i in range(2 * MAX_KINDS):
                log.error(f"thread {n} line {i % (MAX_KINDS // 2)}")
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failures.append(exc)

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)
    assert len(limiter._kinds) <= MAX_KINDS
    assert len(out.lines) >= 4 * (MAX_KINDS // 2)  # each kind passed at least once


def test_the_worker_puts_the_limiter_where_client_records_arrive() -> None:
    root = logging.getLogger()
    out = Collect()
    root.addHandler(out)
    try:
        limiter = limit_client_repeats()  # the root logger's handlers, as the worker does
        limiter.clock = Clock()
        assert limiter in out.filters
        log = logging.getLogger("aiokafka.consumer.test_worker")
        log.setLevel(logging.INFO)
        for _ in range(50):
            log.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
        assert [line for line in out.lines if "test_worker" in line] == [
            "aiokafka.consumer.test_worker ERROR Failed fetch messages from 1: "
            "NodeNotReadyError"]
    finally:
        root.removeHandler(out)
        for handler in root.handlers:
            handler.removeFilter(limiter)


def test_what_is_still_held_is_counted_on_the_way_out() -> None:
    """The end of an outage (the worker stops, or exits on the fault) is not followed by
    another line of its kind: ``flush`` reports the newest held line with the count."""
    clock, out = Clock(), Collect()
    limiter = RepeatLimiter(window=30.0, clock=clock)
    out.addFilter(limiter)
    log = _logger("aiokafka.test_flush", out)
    for i in range(5):
        clock.now = float(i)
        log.error("fetch failed: %s", f"refused {i}")
    log.warning("coordinator dead")  # passes, holds nothing
    clock.now = 12.0
    assert limiter.flush() == 1
    assert out.lines == [
        "aiokafka.test_flush ERROR fetch failed: refused 0",
        "aiokafka.test_flush WARNING coordinator dead",
        "aiokafka.test_flush ERROR fetch failed: refused 4 [the last of 4 like this held "
        "back over the last 12 s]"]
    assert limiter.flush() == 0  # counted once
    clock.now = 13.0
    log.error("fetch failed: %s", "refused 5")  # a new window began at the flush
    assert limiter.flush() == 1 and out.lines[-1].endswith("[the last of 1 like this held "
                                                           "back over the last 1 s]")


def test_flush_installed_reaches_each_limiter_the_worker_put_up() -> None:
    out = Collect()
    limiter = limit_client_repeats([out])
    limiter.clock = Clock()
    log = _logger("kafka.test_flush_installed", out)
    for _ in range(3):
        log.error("broker gone")
    assert flush_installed() >= 1
    assert out.lines[-1] == ("kafka.test_flush_installed ERROR broker gone [the last of 2 "
                             "like this held back over the last 0 s]")
    assert limiter.flush() == 0
