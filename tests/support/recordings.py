"""The recorded Segment calls in tests/support/recorded/: read, decode and replay them.

Each file holds the calls one Segment library sends for one storefront history, one call
a line (each message of its batches), as tests/support/recorded/README.md describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.core.decode import decode
from streams.core.event import Event
from streams.core.rejection import Rejection
from streams.replay.engine import Replay, Summary
from streams.settings import Settings

RECORDED = Path(__file__).parent / "recorded"


@dataclass(frozen=True)
class Recording:
    """One library's file: its raw lines, the calls parsed, and what the decoder made."""
    name: str
    lines: list[bytes]
    calls: list[dict[str, Any]]
    decoded: list[Event | Rejection]

    @property
    def events(self) -> list[Event]:
        return [e for e in self.decoded if isinstance(e, Event)]

    @property
    def rejections(self) -> list[tuple[int, Rejection]]:
        return [(i, r) for i, r in enumerate(self.decoded, 1) if isinstance(r, Rejection)]


def recording(name: str) -> Recording:
    """``tests/support/recorded/<name>.jsonl``, decoded line by line as the worker would."""
    lines = (RECORDED / f"{name}.jsonl").read_bytes().splitlines()
    return Recording(name, lines, [orjson.loads(x) for x in lines], [decode(x) for x in lines])


def replayed(events: list[Event], partitions: int = 4,
             ) -> tuple[dict[str, dict[str, Any]], Summary]:
    """Each user's state snapshot after replaying ``events`` in time order, and the summary."""
    ordered = sorted(events, key=lambda e: e.occurred_at)
    # "received" as the last call was made: nothing is in the future
    replay = Replay(Settings().with_overrides(partitions=partitions), ordered[-1].occurred_at)
    replay.feed(ordered)
    end = replay.finish(None)
    return {s["user_id"]: s for s in replay.snapshots(end)}, replay.summary
