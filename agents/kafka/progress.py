"""The progress watchdog: a worker with input waiting must keep completing batches.

Every wait on the broker is bounded, but a bound per wait does not catch a worker that
never gets to wait: records fetched and never delivered to the agent, or an agent that
stopped after a crash. So the worker also watches the outcome. Input is pending (a
partition's high-water mark is past what the table holds, or a batch is in hand) and
no batch has completed for ``stall_seconds``: that is a fault like a lost broker.

Table recovery is judged by its own progress (changelog records read), since no batch
can complete until it is done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """When the state loop last finished a batch, and since when it holds one."""

    last_done: float = field(default_factory=time.monotonic)
    busy_since: float | None = None
    batches: int = 0
    # table recovery: the changelog position last seen, and when it last moved
    recovery_position: int = -1
    recovery_moved: float = field(default_factory=time.monotonic)

    def started(self, now: float | None = None) -> None:
        self.busy_since = time.monotonic() if now is None else now

    def finished(self, now: float | None = None) -> None:
        self.last_done = time.monotonic() if now is None else now
        self.busy_since = None
        self.batches += 1

    def idle(self, now: float | None = None) -> None:
        """Nothing was waiting: the silence so far is not a stall."""
        self.last_done = time.monotonic() if now is None else now

    def stalled_for(self, pending: bool, now: float | None = None) -> float:
        """Seconds the agent has made no progress while work waited (0: none waited)."""
        now = time.monotonic() if now is None else now
        if self.busy_since is not None:
            return now - self.busy_since
        return now - self.last_done if pending else 0.0

    def recovery_stalled_for(self, position: int, now: float | None = None) -> float:
        """Seconds table recovery has read no changelog record."""
        now = time.monotonic() if now is None else now
        if position != self.recovery_position:
            self.recovery_position = position
            self.recovery_moved = now
        return now - self.recovery_moved
