"""The order in which a partition took its two input topics, kept so that a restart
goes over a batch again in that same order.

A partition reads the events topic and the repartition topic (journey's own news:
stitches, merges, credits, forwarded events). The consumer fetches them independently, so
a batch interleaves them however the fetches fell, and the order can change what comes
out: an id's purchase applied before its stitch travels inside the merge, applied after
it, it is forwarded on its own. A batch's outputs are published before its user records
are written, so a crash between the two leaves outputs that the batch, gone over again
after the restart, must reproduce exactly; in another order it could send a merge with
the same id and other contents, which the target drops as a duplicate.

So each checkpoint carries the batch's interleaving (``runs``: +n for n records of the
events topic, -n for n of the repartition topic), and is published before the batch's
outputs. A restored partition holds records back (:class:`Replan`) until it can apply
them in the recorded order; what follows the plan is applied as it arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from agents.kafka.records import Record

Runs = list[int]  # +n: n records of the events topic, -n: n of the repartition topic


def note(runs: Runs, events: bool) -> None:
    """Add one applied record to ``runs``."""
    step = 1 if events else -1
    if runs and (runs[-1] > 0) == events:
        runs[-1] += step
    else:
        runs.append(step)


def joined(first: Runs, then: Iterable[int]) -> Runs:
    """``first`` followed by ``then``, as one list of runs."""
    out = list(first)
    for n in then:
        if out and (out[-1] > 0) == (n > 0):
            out[-1] += n
        else:
            out.append(n)
    return out


def stored_runs(ctx: Any) -> Runs:
    """The runs a stored checkpoint recorded (none: older checkpoints, or an empty batch)."""
    raw = ctx.get("order") if isinstance(ctx, dict) else None
    if not isinstance(raw, list):
        return []
    return [int(n) for n in raw if isinstance(n, int) and not isinstance(n, bool) and n]


class Replan:
    """A restored partition's records, held back until the recorded order can be kept.

    ``offer`` takes the partition's fetched records that the table does not hold yet, in
    each topic's offset order, and returns those now due: the next of the recorded runs
    as far as the fetched records reach, and once the runs are done, everything held, in
    the order it arrived. ``give_up`` (a bound on the wait) releases everything held.
    """

    def __init__(self, events_topic: str, runs: Runs, started: float) -> None:
        self.events_topic = events_topic
        self.runs = deque(runs)
        self.started = started
        self._held: dict[bool, deque[tuple[int, Record]]] = {True: deque(), False: deque()}
        self._newest: dict[str, int] = {}  # per topic, the newest offset held or released
        self._arrived = 0

    @property
    def done(self) -> bool:
        return not self.runs

    def newest(self, topic: str) -> int:
        """The newest offset of ``topic`` this plan has been offered (-1: none)."""
        return self._newest.get(topic, -1)

    def offer(self, rec: Record) -> list[Record]:
        if rec.offset <= self._newest.get(rec.topic, -1):
            return []  # fetched again (a heal re-read what is held here)
        self._newest[rec.topic] = rec.offset
        self._held[rec.topic == self.events_topic].append((self._arrived, rec))
        self._arrived += 1
        return self._due()

    def _due(self) -> list[Record]:
        out: list[Record] = []
        runs = self.runs
        while runs:
            events = runs[0] > 0
            queue = self._held[events]
            if not queue:
                return out
            out.append(queue.popleft()[1])
            runs[0] += -1 if events else 1
            if runs[0] == 0:
                runs.popleft()
        return out + self.give_up()

    def give_up(self) -> list[Record]:
        """Everything held, in arrival order; the plan is over."""
        self.runs.clear()
        held = sorted([*self._held[True], *self._held[False]], key=lambda item: item[0])
        self._held[True].clear()
        self._held[False].clear()
        return [rec for _, rec in held]

    def held(self) -> int:
        return len(self._held[True]) + len(self._held[False])

