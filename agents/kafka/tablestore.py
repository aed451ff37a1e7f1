"""The users table's local stores: faust's memory and RocksDB stores, quick to restore.

faust's stores made a restart at a million users slow in three places, each done
differently here (docs/operations.md has the figures):

- **Reading the changelog.** faust's recovery passes every changelog record through its
  consumer, conductor, a queue and a per-record loop (about 8,000 records/s on the
  project's machine). On every assignment these stores first read their partitions'
  changelog themselves (``agents.kafka.changelog_read``), with one plain consumer in
  large fetches, up to its true end (which the embedded broker under-reports), and
  report how far they got as the partition's persisted offset. faust's recovery then
  reads only what was written after that, usually nothing. A record at or below the
  offset a partition already holds is skipped wherever it comes from, so nothing is
  applied twice or out of order.
- **Decoding.** The memory store keeps what it reads as the encoded bytes and decodes a
  value when it is first read (then keeps the object, as before). Encoded bytes are also
  invisible to Python's cyclic garbage collector, which a million decoded states kept
  busy.
- **Grouping by partition.** A key's partition is known when it is stored, so restoring a
  partition visits only its own users, and reads from each just the three things the
  processor needs (``streams.core.rebuild``); the stores keep those rows up to date as
  records arrive, so a restore reads no user at all (``agents.kafka.tablerows``).

Standby partitions (``standby_replicas``) are kept with their offsets, so a worker that
takes one over reads only the changelog written since. With faust's memory store they
were dropped at the end of every recovery and read again in full.

The RocksDB store writes a batch's users to disk only once the changelog has acknowledged
them, and records the changelog offsets as faust's persisted offsets. The files then
never hold what the changelog does not (a kill -9 in between cannot leave a user ahead of
alerts that were never sent), and a restart on the same disk reads only the changelog's
tail. Writes go to the user's own partition's database (faust's picked the partition of
the event in hand).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import faust
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from yarl import URL

from agents.kafka import codec
from agents.kafka.changelog_read import read_changelog
from agents.kafka.tablerows import KeptRows
from streams.core.rebuild import Rows
from streams.settings import Settings

log = logging.getLogger("journey.tablestore")


# --- the stores -------------------------------------------------------------------------

class _Loading(KeptRows):
    """What both stores share: bulk loading on assignment, offsets held, the clamp, and
    the rows of the partitions no processor here serves (``streams.core.rebuild.Rows``)."""

    settings: Settings
    bootstrap: str
    table: Any

    def _setup(self) -> None:
        self.reported: dict[int, int] = {}  # the broker's end - 1 when last loaded
        self.loaded_records = 0  # read in bulk since start (a figure for the logs)
        self._setup_rows()

    def changelog(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def held_offset(self, partition: int) -> int:
        raise NotImplementedError

    def apply_records(self, partition: int, records: list[Any]) -> None:
        raise NotImplementedError

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """faust's recovery and standby reading: the same as a bulk read, by partition."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(event.message)
        for p, messages in by_partition.items():
            before = self.loaded_records
            self.apply_records(p, messages)
            self.loaded_records = before  # not a bulk read

    def persisted_offset(self, tp: Any) -> int | None:
        return self._clamped(tp.partition, self.held_offset(tp.partition))

    def _clamped(self, partition: int, held: int | None) -> int | None:
        """The offset to report to faust: what is held, but never past the highwater faust
        will read (it refuses a persisted offset above it; the embedded broker reports
        the end low). Records from there to what is held are skipped when faust reads
        them."""
        if held is None or held < 0:
            return None
        ceiling = self.reported.get(partition)
        return held if ceiling is None else min(held, ceiling)

    async def load(self, partitions: Iterable[int]) -> None:
        wanted = {p: self.held_offset(p) + 1 for p in partitions}
        if not wanted:
            return
        for p in wanted:  # a partition read from nothing: its rows are complete from here
            if p not in self.rows and p not in self._scans and not self.has_data(p):
                self.rows[p] = Rows.of(self.settings)
        began, before = time.monotonic(), self.loaded_records
        try:
            reported = await read_changelog(self.settings, self.bootstrap, self.changelog(),
                                            wanted, self.apply_records)
        except Exception as exc:  # noqa: BLE001 - faust's own recovery reads what is missing
            log.warning("reading the changelog in bulk failed (%s: %s); faust's recovery "
                        "reads it instead", type(exc).__name__, exc)
            return
        self.reported.update(reported)
        log.info("changelog partitions %s: %d records read in %.1fs", sorted(wanted),
                 self.loaded_records - before, time.monotonic() - began)

class MemoryStore(_Loading, faust_memory.Store):
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


class RocksStore(_Loading, faust_rocksdb.Store):
    """faust's RocksDB store, written once the changelog has the writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()
        # written, not yet on disk: the encoding, or None for a delete
        self.staged: dict[bytes, tuple[int, bytes | None]] = {}

    def put(self, key: str, value: Any, raw: bytes | None, partition: int) -> None:
        self.staged[key.encode()] = (partition, raw)
        self.changed(partition, key, value)

    def _get(self, key: bytes) -> bytes | None:
        staged = self.staged.get(key)
        return staged[1] if staged is not None else super()._get(key)

    def _contains(self, key: bytes) -> bool:
        staged = self.staged.get(key)
        return staged[1] is not None if staged is not None else super()._contains(key)

    def acked(self, partition_offsets: dict[int, int]) -> None:
        """The changelog acknowledged this process's writes: write them to disk, with how
        far the changelog is on disk, in one atomic batch per partition."""
        batches: dict[int, Any] = {}

        def batch_of(p: int) -> Any:
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
            return batch

        for key, (p, raw) in self.staged.items():
            if raw is None:
                batch_of(p).delete(key)
            else:
                batch_of(p).put(key, raw)
        for p, offset in partition_offsets.items():
            if offset > self.held_offset(p):
                batch_of(p).put(self.offset_key, str(offset).encode())
        for p, batch in batches.items():
            self._db_for_partition(p).write(batch)
        self.staged.clear()

    def held_offset(self, partition: int) -> int:
        db = self._db_for_partition(partition)
        raw = db.get(self.offset_key)
        return -1 if raw is None else int(raw)

    def apply_records(self, partition: int, records: list[Any]) -> None:
        held = self.held_offset(partition)
        batch = faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
        follow = self.changed if partition in self.rows else None
        n = 0
        for r in records:
            if r.offset <= held:
                continue
            if r.value is None:
                batch.delete(r.key)
            else:
                batch.put(r.key, r.value)
            if follow is not None:
                follow(partition, r.key.decode(), r.value)
            held = r.offset
            n += 1
        if n:
            batch.put(self.offset_key, str(held).encode())
            self._db_for_partition(partition).write(batch)
        self.loaded_records += n


    async def on_start(self) -> None:
        await super().on_start()
        # The partitions on this disk are most likely this worker's again: read their
        # rows while the group forms (seconds on the embedded broker), not after it.
        self.scan_later(p for p in range(self.settings.partitions)
                        if self.partition_path(p).exists())

    async def on_rebalance(self, assigned: set[Any], revoked: set[Any],
                           newly_assigned: set[Any], generation_id: int = 0) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        topic = self.changelog()
        mine = {tp.partition for tp in assigned if tp.topic == topic}
        self.forget_rows([p for p in list(self.rows) + list(self._scans) if p not in mine])
        # rows of partitions on disk read while the tail is: each follows what arrives
        self.scan_later(p for p in mine if p not in self.rows and self.has_data(p))
        await self.load(sorted(mine))
        await self.scans_done(mine)

    async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self.scan_later(tp.partition for tp in (*active_tps, *standby_tps))

    def items_of(self, partition: int) -> Iterator[tuple[str, Any]]:
        staged = {k: raw for k, (p, raw) in self.staged.items() if p == partition}
        for key, value in self._db_for_partition(partition).items():
            if key == self.offset_key or key in staged:
                continue
            yield key.decode(), value
        for key, value in staged.items():
            if value is not None:
                yield key.decode(), value

    def current(self, partition: int, key: str) -> Any:
        return self._get(key.encode())

    def has_data(self, partition: int) -> bool:
        if self.held_offset(partition) >= 0:
            return True
        keys = self._db_for_partition(partition).keys()  # iterating an Rdict itself fails
        return any(key != self.offset_key for key in keys)


# --- the table --------------------------------------------------------------------------

class UsersTable(faust.Table):
    """faust's Table on one of the stores above (``rocksdb://`` or anything else: memory)."""

    journey: tuple[Settings, str]

    def _new_store_by_url(self, url: Any) -> Any:
        cls = RocksStore if URL(str(url)).scheme == "rocksdb" else MemoryStore
        store = cls(url, self.app, self, table_name=self.name, key_type=self.key_type,
                    key_serializer=self.key_serializer,
                    value_serializer=self.value_serializer, value_type=self.value_type,
                    loop=self.loop, options=self.options)
        store.settings, store.bootstrap = self.journey
        return store


def users_table(app: faust.App, settings: Settings, bootstrap: str) -> Any:
    """The users table: raw bytes keys and values (``agents.kafka.codec``), partitioned
    like the input, on the store ``settings.store`` names."""
    table = UsersTable(app, name="users", partitions=settings.partitions, key_type=bytes,
                       value_type=bytes, use_partitioner=True, beacon=app.tables.beacon)
    table.journey = (settings, bootstrap)
    return app.tables.add(table)


def changelog_offsets(acks: Iterable[Any], topic: str) -> dict[int, int]:
    """The newest acknowledged offset per partition of ``topic``."""
    out: dict[int, int] = {}
    for md in acks:
        if md.topic == topic and md.offset > out.get(md.partition, -1):
            out[md.partition] = md.offset
    return out
