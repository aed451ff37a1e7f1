"""Each table partition's rows (``streams.core.rebuild.Rows``), kept by the table stores
(``agents.kafka.tablestore``) so a processor is restored without reading every user.

A processor needs, of each user, the id, the wake-up instant and the census key. The
stores keep those up to date for every partition they hold, through each write, each
changelog record read and each standby record, so a restart, a rebalance or a failover
hands the new processor its partition's rows at once. A partition held from before the
rows were kept (a RocksDB store on disk) gets them from the copy kept beside its users
(``agents.kafka.rowsdisk``) or else from a scan in the background, which also follows
what changes while it reads; until that completes, the users are read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from agents.kafka.logsafe import exception_summary
from streams.collector import gc_paused
from streams.core import rebuild
from streams.core.context import PartitionContext
from streams.core.identity import Redirect
from streams.core.processor import PartitionProcessor
from streams.core.rebuild import Rows
from streams.core.state import UserState

log = logging.getLogger("journey.tablestore")

SCAN_CHUNK = 2000  # rows read between two turns of the event loop


class KeptRows:
    """The rows of each partition a store holds; the store says what it holds."""

    settings: Any  # streams.settings.Settings, set by the table

    def _setup_rows(self) -> None:
        # each held partition's rows, following every write and changelog record, so that
        # a processor is rebuilt from them after any rebalance or a failover
        self.rows: dict[int, Rows] = {}
        self._scans: dict[int, asyncio.Task[None]] = {}
        self._dirty: dict[int, set[str]] = {}  # keys changed while a scan runs

    def items_of(self, partition: int) -> Iterator[tuple[str, Any]]:
        """The partition's (key, value) pairs, values as held (encoded or not)."""
        raise NotImplementedError

    def current(self, partition: int, key: str) -> Any:
        raise NotImplementedError

    def has_data(self, partition: int) -> bool:
        raise NotImplementedError

    async def rows_kept(self, partition: int) -> tuple[Rows, set[str]] | None:
        """The partition's rows as the store kept them beside its users, if it did, and
        the keys to read again for them to match the users."""
        return None

    def group_joining(self) -> None:
        """The consumer is about to ask to join the group (called by the worker)."""

    def changed(self, partition: int, key: str, value: Any) -> None:
        """A key of ``partition`` now holds ``value`` (None: deleted)."""
        rows = self.rows.get(partition)
        if rows is None:
            return
        dirty = self._dirty.get(partition)
        if dirty is not None:
            dirty.add(key)
        follow(rows, key, value)

    def rows_for(self, partition: int) -> Rows | None:
        """The partition's rows, for a processor taking it over (None: not complete yet,
        read its users instead)."""
        if partition in self._scans:
            return None
        return self.rows.get(partition)

    def forget_rows(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            scan = self._scans.pop(p, None)
            if scan is not None:
                scan.cancel()
            self._dirty.pop(p, None)
            self.rows.pop(p, None)

    def scan_later(self, partitions: Iterable[int]) -> None:
        """Build the rows of these partitions in the background, from what is held."""
        for p in partitions:
            if p not in self.rows and p not in self._scans:
                self._scans[p] = asyncio.ensure_future(self._scan(p))

    async def _scan(self, partition: int) -> None:
        began = time.monotonic()
        rows = Rows.of(self.settings)
        self.rows[partition] = rows  # from now on, what changes is noted in dirty
        dirty = self._dirty[partition] = set()
        how = "read"
        try:
            kept = await self._kept(partition)
            if kept is not None:
                rows, keys = kept
                self.rows[partition] = rows
                dirty |= keys
                how = "kept on disk, read"
            else:
                for n, (key, value) in enumerate(self.items_of(partition), 1):
                    follow(rows, key, value)
                    if n % SCAN_CHUNK == 0:
                        await asyncio.sleep(0)
            n = 0
            while dirty:  # changed while being read (or since the rows were kept)
                key = dirty.pop()
                follow(rows, key, self.current(partition, key))
                n += 1
                if n % SCAN_CHUNK == 0:
                    await asyncio.sleep(0)
        except Exception as exc:  # noqa: BLE001 - the restore reads the users instead
            log.warning("rows of partition %d: %s", partition, exception_summary(exc))
            if self.rows.get(partition) is rows:
                del self.rows[partition]
        else:
            log.info("rows of partition %d: %d users %s in %.1fs", partition, len(rows), how,
                     time.monotonic() - began)
        finally:
            if self._dirty.get(partition) is dirty:
                del self._dirty[partition]
            if self._scans.get(partition) is asyncio.current_task():
                del self._scans[partition]

    async def _kept(self, partition: int) -> tuple[Rows, set[str]] | None:
        try:
            return await self.rows_kept(partition)
        except Exception as exc:  # noqa: BLE001 - the scan reads every user instead
            log.warning("kept rows of partition %d: %s", partition, exception_summary(exc))
            return None

    async def scans_done(self, partitions: Iterable[int]) -> None:
        pending = [t for p in partitions if (t := self._scans.get(p)) is not None]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def follow(rows: Rows, key: str, value: Any) -> None:
    """Bring ``rows`` up to date with ``key`` now holding ``value`` (None: deleted)."""
    if value is None:
        rows.remove(key)
    elif value.__class__ is bytes:
        tag, body = orjson.loads(value)
        if tag == "u":
            rows.set(rebuild.row_of_list(body, rows.window))
        elif tag == "r":
            rows.redirect(key)
    elif isinstance(value, UserState):
        rows.set(rebuild.row_of_state(value, rows.window))
    elif isinstance(value, Redirect):
        rows.redirect(key)


def rows(values: Iterable[Any], window: float) -> Iterator[rebuild.Row]:
    """Each user's row, from encoded or decoded table values (contexts skipped);
    ``window``: the census's uplift window, in seconds."""
    row_of_list, row_of_state, loads = rebuild.row_of_list, rebuild.row_of_state, orjson.loads
    for value in values:
        if value.__class__ is bytes:
            tag, body = loads(value)
            if tag == "u":
                yield row_of_list(body, window)
        elif isinstance(value, UserState):
            yield row_of_state(value, window)


def restore_from_table(table: Any, proc: PartitionProcessor, partition: int,
                       ctx: PartitionContext | None,
                       snapshots: rebuild.Snapshots | None = None) -> None:
    """``proc.restore`` from the users and redirects of ``partition`` that the table's
    store holds: from the rows it kept, or else by reading each."""
    store = table.data
    with gc_paused():
        kept = store.rows_for(partition)
        if kept is None:
            kept = Rows.of(proc.settings)
            for key, value in store.items_of(partition):
                follow(kept, key, value)
        kept.restore(proc, ctx, snapshots)
