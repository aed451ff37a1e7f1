"""How far each partition's table has got through its input topics.

Per partition and input topic (the events topic and the repartition topic): the newest
offset whose effects the table holds, and what the partition's next checkpoint claims,
which is what the table held *before* the batch it is written with (see
:meth:`Pipeline.commit_state <agents.kafka.pipeline.Pipeline.commit_state>`).
"""

from __future__ import annotations

from typing import Any

from agents.kafka.records import Record


class InputOffsets:
    def __init__(self, events_topic: str) -> None:
        self.events_topic = events_topic
        self.events: dict[int, int] = {}  # newest offset seen, ticks included
        self.repartition: dict[int, int] = {}
        # per partition, the offsets its next checkpoint claims
        self._claims: dict[int, tuple[int, int]] = {}

    def held(self, topic: str, partition: int) -> int:
        """The newest offset of ``topic[partition]`` whose effects the table holds."""
        held = self.events if topic == self.events_topic else self.repartition
        return held.get(partition, -1)

    def take(self, rec: Record) -> bool:
        """Note ``rec`` as applied; False when the table holds it already (fetched again
        after a rebalance or a heal)."""
        held = self.events if rec.topic == self.events_topic else self.repartition
        if rec.offset <= held.get(rec.partition, -1):
            return False
        held[rec.partition] = rec.offset
        return True

    def restored(self, partition: int, ctx: Any) -> None:
        """The partition was restored with this stored context (a dict, or not one)."""
        if isinstance(ctx, dict):
            self.events[partition] = int(ctx.get("consumed", -1))
            self.repartition[partition] = int(ctx.get("consumed_repartition", -1))
        self._claims[partition] = self._now(partition)

    def claim(self, partition: int) -> tuple[int, int]:
        """What the partition's checkpoint claims now (events, repartition); what the table
        holds now is the next checkpoint's claim."""
        claimed = self._claims.get(partition, (-1, -1))
        self._claims[partition] = self._now(partition)
        return claimed

    def forget(self, partition: int) -> None:
        self.events.pop(partition, None)
        self.repartition.pop(partition, None)
        self._claims.pop(partition, None)

    def _now(self, partition: int) -> tuple[int, int]:
        return self.events.get(partition, -1), self.repartition.get(partition, -1)
