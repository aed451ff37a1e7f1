"""The memory store: values kept encoded until first read, keys grouped by partition (see
``agents.kafka.tablestore``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from faust.stores import memory as faust_memory

from agents.kafka import codec
from agents.kafka.storeload import LoadingStore


class MemoryStore(LoadingStore, faust_memory.Store):
    """faust's memory store with string keys, values kept encoded until first read, keys
    grouped by partition, and the changelog offset each partition holds."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._setup()
        self.parts: dict[int, set[str]] = defaultdict(set)
        self.held: dict[int, int] = {}

    # reads: decode on first access, then keep the object (as faust's store held it)
    def __getitem__(self, key: Any) -> Any:
        data = self.data
        value = data[key]
        if value.__class__ is bytes:
            value = data[key] = codec.loads(value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self.data else default

    # writes, by the processor serving the partition
    def put(self, key: str, value: Any, raw: bytes | None, partition: int) -> None:
        """``value`` is the key's new value (None: deleted), ``raw`` its encoding."""
        if value is None:
            self.data.pop(key, None)
            self.parts[partition].discard(key)
        else:
            self.data[key] = value
            self.parts[partition].add(key)
        self.changed(partition, key, value)

    def acked(self, partition_offsets: dict[int, int]) -> None:
        """The changelog acknowledged this process's writes up to these offsets."""
        held = self.held
        for p, offset in partition_offsets.items():
            if offset > held.get(p, -1):
                held[p] = offset

    def held_offset(self, partition: int) -> int:
        return self.held.get(partition, -1)

    def apply_records(self, partition: int, records: list[Any]) -> None:
        held = self.held.get(partition, -1)
        data, keys = self.data, self.parts[partition]
        follow = self.changed if partition in self.rows else None
        n = 0
        for r in records:
            if r.offset <= held:
                continue
            key = r.key.decode() if r.key.__class__ is bytes else r.key
            if r.value is None:
                data.pop(key, None)
                keys.discard(key)
            else:
                data[key] = r.value
                keys.add(key)
            if follow is not None:
                follow(partition, key, r.value)
            held = r.offset
            n += 1
        self.held[partition] = held
        self.loaded_records += n

    def items_of(self, partition: int) -> Iterator[tuple[str, Any]]:
        data = self.data
        for key in list(self.parts.get(partition, ())):
            value = data.get(key)
            if value is not None:
                yield key, value

    def current(self, partition: int, key: str) -> Any:
        return self.data.get(key)

    def has_data(self, partition: int) -> bool:
        return bool(self.parts.get(partition)) or self.held.get(partition, -1) >= 0


    def drop(self, partitions: Iterable[int]) -> None:
        data = self.data
        partitions = list(partitions)
        self.forget_rows(partitions)
        for p in partitions:
            for key in self.parts.pop(p, ()):
                data.pop(key, None)
            self.held.pop(p, None)
            self.reported.pop(p, None)

    async def on_rebalance(self, assigned: set[Any], revoked: set[Any],
                           newly_assigned: set[Any], generation_id: int = 0) -> None:
        topic = self.changelog()
        mine = {tp.partition for tp in assigned if tp.topic == topic}
        self.drop([p for p in list(self.parts) + list(self.held) if p not in mine])
        await self.load(sorted(mine))
        # partitions held from before without rows (none, normally): read them now
        self.scan_later(p for p in mine if p not in self.rows)
        await self.scans_done(mine)

    async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]) -> None:
        keep = {tp.partition for tp in (*active_tps, *standby_tps)}
        self.drop([p for p in list(self.parts) + list(self.held) if p not in keep])
        self.scan_later(keep)  # any held without rows (they follow from then on)
