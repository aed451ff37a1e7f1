"""The RocksDB store: users written to disk once the changelog holds them, with their
offset and their rows (see ``agents.kafka.tablestore`` and ``agents.kafka.rowsdisk``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from faust.stores import rocksdb as faust_rocksdb

from agents.kafka.rowsdisk import DiskRows, build, snapshot_due
from agents.kafka.storeload import LoadingStore
from streams.collector import gc_paused
from streams.core.rebuild import Rows

JOIN_WAIT_SECONDS = 10.0  # longest the kept rows wait for the first group join


class RocksStore(LoadingStore, faust_rocksdb.Store):
    """faust's RocksDB store, written once the changelog has the writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup()
        # written, not yet on disk: the encoding, or None for a delete
        self.staged: dict[bytes, tuple[int, bytes | None]] = {}
        self._on_disk: dict[int, DiskRows] = {}  # per partition: its rows kept on disk
        self._bulk_loading = False
        self._before_join = False  # from the start until the consumer first joins
        self._joining = asyncio.Event()

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
        far the changelog is on disk and the partition's rows (``agents.kafka.rowsdisk``),
        in one atomic batch per partition."""
        batches: dict[int, Any] = {}
        keys: dict[int, list[bytes]] = defaultdict(list)

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
            keys[p].append(key)
        for p, offset in partition_offsets.items():
            if offset > self.held_offset(p):
                batch_of(p).put(self.offset_key, str(offset).encode())
        for p, batch in batches.items():
            # every staged write goes: the rows match what the batch leaves on disk
            self._keep_rows(p, batch, keys[p],
                            max(partition_offsets.get(p, -1), self.held_offset(p)), True)
            self._db_for_partition(p).write(batch)
            self._disk_rows(p).written()
        self.staged.clear()

    def held_offset(self, partition: int) -> int:
        db = self._db_for_partition(partition)
        raw = db.get(self.offset_key)
        return -1 if raw is None else int(raw)

    def apply_records(self, partition: int, records: list[Any]) -> None:
        held = self.held_offset(partition)
        batch = faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
        note = self.changed if partition in self.rows else None
        keys: list[bytes] = []
        for r in records:
            if r.offset <= held:
                continue
            if r.value is None:
                batch.delete(r.key)
            else:
                batch.put(r.key, r.value)
            if note is not None:
                note(partition, r.key.decode(), r.value)
            held = r.offset
            keys.append(r.key)
        if keys:
            batch.put(self.offset_key, str(held).encode())
            unstaged = not any(p == partition for p, _ in self.staged.values())
            self._keep_rows(partition, batch, keys, held, unstaged)
            self._db_for_partition(partition).write(batch)
            self._disk_rows(partition).written()
        self.loaded_records += len(keys)

    # --- the rows kept on disk (agents.kafka.rowsdisk) ---------------------------------

    def _disk_rows(self, partition: int) -> DiskRows:
        db = self._db_for_partition(partition)
        kept = self._on_disk.get(partition)
        if kept is None or kept.db is not db:  # first use, or the database was reopened
            kept = self._on_disk[partition] = DiskRows.open(db)
        return kept

    def _keep_rows(self, partition: int, batch: Any, keys: list[bytes], offset: int,
                   rows_match: bool) -> None:
        """Add to ``batch`` (which writes ``keys`` and brings the partition to ``offset``)
        a new snapshot of its rows when one is due and ``rows_match`` (the rows are those
        of the users on disk once the batch is written), or else a journal entry."""
        kept = self._disk_rows(partition)
        rows = self.rows_for(partition)
        if (rows_match and rows is not None and not self._bulk_loading
                and (not kept.has_snapshot or snapshot_due(kept.journalled, len(rows)))):
            kept.add_snapshot(batch, rows, offset)
        else:
            kept.add_journal(batch, keys, offset)

    async def rows_kept(self, partition: int) -> tuple[Rows, set[str]] | None:
        if self._before_join:
            # Opening the files and decoding the rows take about two seconds per million
            # users, all of it holding the interpreter: done while the broker holds the
            # group join (seconds on the embedded broker), it delays nothing; done before,
            # it delays the join.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._joining.wait(), JOIN_WAIT_SECONDS)
        kept = self._disk_rows(partition).fetch()
        if kept is None:
            return None
        held = self.held_offset(partition)  # read with the snapshot: nothing written between
        with gc_paused():
            found = build(kept, held, self.settings)
        if found is None:
            return None
        rows, keys = found
        keys.update(k.decode() for k, (p, _) in self.staged.items() if p == partition)
        return rows, keys

    def group_joining(self) -> None:
        """The consumer is about to ask to join the group (called by the worker)."""
        self._before_join = False
        self._joining.set()

    async def load(self, partitions: Iterable[int]) -> None:
        """Read the changelog's tail in bulk, then keep a snapshot of each partition's
        rows once (not one per fetch while the partition grows)."""
        mine = list(partitions)
        self._bulk_loading = True
        try:
            await super().load(mine)
        finally:
            self._bulk_loading = False
        for p in mine:
            kept, rows = self._disk_rows(p), self.rows_for(p)
            if rows is None or (kept.has_snapshot and not snapshot_due(kept.journalled,
                                                                       len(rows))) \
                    or any(sp == p for sp, _ in self.staged.values()):
                continue
            batch = faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
            kept.add_snapshot(batch, rows, self.held_offset(p))
            self._db_for_partition(p).write(batch)
            kept.written()

    def revoke_partitions(self, table: Any, tps: set[Any]) -> None:
        # faust closes a revoked partition's database by dropping it: drop ours too, or
        # the files stay locked and the partition cannot be opened again
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._on_disk.pop(tp.partition, None)
        super().revoke_partitions(table, tps)

    async def on_start(self) -> None:
        await super().on_start()
        # The partitions on this disk are most likely this worker's again: read their
        # rows while the group forms (seconds on the embedded broker), not after it.
        self._before_join = not self._joining.is_set()
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
