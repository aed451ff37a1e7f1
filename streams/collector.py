"""Python's cyclic garbage collector, paused while millions of long-lived objects are
built or changed.

Each automatic full collection walks every live object, and a replay or a restore keeps
hundreds of thousands of user states alive (each some fifty objects), so the collector
cost a CDNOW x10 replay 12% of its time. journey's state forms next to no cycles: a
CDNOW replay with the collector off left 766 cyclic objects behind. While paused, a
long loop sweeps the young objects now and then (:func:`sweep_young`), so that a cycle
made per event could not pile up.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SWEEP_EVERY = 100_000  # events between sweeps of the young generation while paused


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block (as it was after it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def sweep_young() -> None:
    """Collect cycles among the objects made since the last sweep (not the old ones)."""
    gc.collect(0)
