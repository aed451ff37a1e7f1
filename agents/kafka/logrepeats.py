"""Kafka client log lines, each kind at most once per window.

While the broker is unreachable, aiokafka logs the same few errors from every connection
attempt, fetch and coordinator call: about 100 lines a second on the embedded broker,
3,000 before the worker gives up. That buries journey's own lines, and what shippers
charge for. Each kind of line (logger, level and message template, not its arguments)
passes once per window; the next one to pass after that says how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

WINDOW_SECONDS = 30.0
MAX_KINDS = 1024  # past this, kinds quiet for a whole window are forgotten
CLIENT_LOGGERS = ("aiokafka", "kafka")


class RepeatLimiter(logging.Filter):
    """Passes the first record of each kind per ``window`` seconds from the loggers named
    in ``prefixes`` (and their children); records of other loggers always pass."""

    def __init__(self, prefixes: Iterable[str] = CLIENT_LOGGERS, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}  # -> passed at, held

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._limited(record.name):
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.window:
            self._kinds[kind] = (seen[0], seen[1] + 1)
            return False
        held = seen[1] if seen is not None else 0
        if seen is None and len(self._kinds) >= MAX_KINDS:
            self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.window}
        self._kinds[kind] = (now, 0)
        if held:
            # appended to the template, so no "%" of ours meets the record's arguments
            record.msg = f"{record.msg} [{held} more like this held back in the last " \
                f"{self.window:g} s]"
        return True


def limit_client_repeats(handlers: Iterable[logging.Handler] | None = None) -> RepeatLimiter:
    """Put one limiter on ``handlers`` (default: the root logger's), where every
    client logger's records arrive."""
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        handler.addFilter(limiter)
    return limiter
