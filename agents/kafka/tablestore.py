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
  records arrive, so a restore reads no user at all (``agents.kafka.tablerows``). The
  RocksDB store also keeps them on disk with the users, so a restart on the same disk
  does not read every user for them either (``agents.kafka.rowsdisk``).

Standby partitions (``standby_replicas``) are kept with their offsets, so a worker that
takes one over reads only the changelog written since. With faust's memory store they
were dropped at the end of every recovery and read again in full.

The RocksDB store writes a batch's users to disk only once the changelog has acknowledged
them, and records the changelog offsets as faust's persisted offsets. The files then
never hold what the changelog does not (a kill -9 in between cannot leave a user ahead of
alerts that were never sent), and a restart on the same disk reads only the changelog's
tail. Writes go to the user's own partition's database (faust's picked the partition of
the event in hand).

The stores themselves: ``agents.kafka.storeload`` (what both share),
``agents.kafka.memstore`` and ``agents.kafka.rocksstore``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from yarl import URL

from agents.kafka.memstore import MemoryStore
from agents.kafka.rocksstore import RocksStore
from streams.settings import Settings

__all__ = ["MemoryStore", "RocksStore", "UsersTable", "changelog_offsets", "users_table"]


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
