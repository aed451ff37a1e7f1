"""Kafka client log lines, each kind at most once per window.

While the broker is unreachable, aiokafka logs the same few errors from every connection
attempt, fetch and coordinator call: about 100 lines a second on the embedded broker,
3,000 before the worker gives up. That buries journey's own lines, and what shippers
charge for. Each kind of line (logger, level and message template, not its arguments)
passes once per window; the next one to pass after that says how many were held back.
What is still held when the worker stops is reported then (``RepeatLimiter.flush``), so
the last lines of an outage are counted too.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable

WINDOW_SECONDS = 30.0
MAX_KINDS = 1024  # past this, the kind that passed longest ago is forgotten
CLIENT_LOGGERS = ("aiokafka", "kafka")
_DECIDED = "journey_repeat_passes"  # set on a record once judged: every handler agrees
_INSTALLED: weakref.WeakSet[RepeatLimiter] = weakref.WeakSet()  # by limit_client_repeats


class RepeatLimiter(logging.Filter):
    """Passes the first record of each kind per ``window`` seconds from the loggers named
    in ``prefixes`` (and their children); records of other loggers always pass. One
    limiter may sit on several handlers, and clients may log from threads."""

    def __init__(self, prefixes: Iterable[str] = CLIENT_LOGGERS, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        # kind -> (when it last passed, records held since); oldest pass first
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._last_held: dict[tuple[str, int, str], logging.LogRecord] = {}

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:  # another handler's copy of this limiter judged it
            return bool(decided)
        passes = not self._limited(record.name) or self._judge(record)
        setattr(record, _DECIDED, passes)
        return passes

    def _judge(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        with self._lock:
            now = self.clock()
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.window:
                self._kinds[kind] = (seen[0], seen[1] + 1)
                self._last_held[kind] = record
                return False
            if seen is not None:
                del self._kinds[kind]  # re-inserted below as the newest
                self._last_held.pop(kind, None)
            elif len(self._kinds) >= MAX_KINDS:
                oldest = next(iter(self._kinds))
                del self._kinds[oldest]
                self._last_held.pop(oldest, None)
            self._kinds[kind] = (now, 0)
        if seen is not None and seen[1]:
            # appended to the template, so no "%" of ours meets the record's arguments
            record.msg = f"{record.msg} [{seen[1]} more like this held back over the " \
                f"last {now - seen[0]:.0f} s]"
        return True

    def flush(self) -> int:
        """Log, once per kind, what is held back and not yet counted by a later line of
        its kind (the newest held line, with the count); the worker calls this when it
        stops. Returns how many lines that logged."""
        with self._lock:
            now = self.clock()
            held = [(kind, self._kinds[kind], record)
                    for kind, record in self._last_held.items() if kind in self._kinds]
            self._last_held.clear()
            for kind, _, _ in held:
                self._kinds[kind] = (now, 0)
        for (name, level, _), (passed, count), record in held:
            try:
                text = record.getMessage()
            except (TypeError, ValueError):  # arguments that do not fit: the template
                text = str(record.msg)
            logging.getLogger(name).log(
                level, "%s [the last of %d like this held back over the last %.0f s]",
                text, count, now - passed, extra={_DECIDED: True})
        return len(held)


def limit_client_repeats(handlers: Iterable[logging.Handler] | None = None) -> RepeatLimiter:
    """Put one limiter on ``handlers`` (default: the root logger's), where every
    client logger's records arrive."""
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        handler.addFilter(limiter)
    _INSTALLED.add(limiter)
    return limiter


def flush_installed() -> int:
    """``flush`` every limiter ``limit_client_repeats`` put up: on the way out, including
    the fatal exit, which skips every ``finally``."""
    return sum(limiter.flush() for limiter in list(_INSTALLED))
