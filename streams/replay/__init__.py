"""``journey replay`` and everything offline around it: the live worker's core driven by
event time over history files, and what is made of the run.

- ``engine``: :class:`Replay`, routing each event to its partition's processor;
- ``sources``: reading JSONL history (plain or gzip) in event-time order;
- ``report``: the self-contained HTML backtest report, drawn with ``svg`` and scored with
  ``calibration``.

A change to what the live worker computes belongs in :mod:`streams.core`, not here: replay
and the worker run the same core. ``Replay`` needs numpy, so it is imported on first use,
and reading history (``sources``, which ``journey produce`` uses too) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.replay.engine import Replay, Summary, Writer

__all__ = ["Replay", "Summary", "Writer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from streams.replay import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
