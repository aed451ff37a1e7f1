"""The progress line of ``journey produce``, ``journey replay`` and ``journey bootstrap``:
one self-rewriting stderr line on a terminal, at most four times a second; silent when
disabled (stderr is not a TTY, or ``--no-progress``). With ``lines``, a plain line every
``LINE_SECONDS`` instead, for a log without a terminal (a bootstrap job)."""

from __future__ import annotations

import sys
import time

REDRAW_SECONDS = 0.25
LINE_SECONDS = 10.0


class ProgressBar:
    def __init__(self, verb: str, total_bytes: int, enabled: bool, lines: bool = False) -> None:
        self.verb = verb  # "sending", "reading"
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.lines = lines
        self.started = time.monotonic()
        self._last = 0.0

    def draw(self, done_bytes: int, count: int, text: str, force: bool = False) -> None:
        """``done_bytes`` of the total, ``count`` items so far (for the rate), ``text``
        after the percentage."""
        now = time.monotonic()
        every = LINE_SECONDS if self.lines else REDRAW_SECONDS
        if not self.enabled or (not force and now - self._last < every):
            return
        self._last = now
        frac = min(done_bytes / self.total, 1.0)
        rate = count / max(now - self.started, 1e-9)
        if self.lines:
            sys.stderr.write(f"{self.verb} {frac:6.1%} {text} {rate:>9,.0f}/s\n")
        else:
            sys.stderr.write(f"\r{self.verb} [{'#' * int(frac * 30):<30}] {frac:6.1%} {text} "
                             f"{rate:>9,.0f}/s")
        sys.stderr.flush()

    def clear(self) -> None:
        """Erase the line so another message can take it; the next draw() redraws it."""
        if self.enabled and not self.lines:
            sys.stderr.write("\r\x1b[K")

    def close(self) -> None:
        if self.enabled and not self.lines:
            sys.stderr.write("\n")
