"""A RocksDB partition's rows (``streams.core.rebuild.Rows``) kept on disk beside its users,
so a worker restarted on the same disk has them at once instead of reading every user.

Each partition's database gets a column family (invisible to faust, which reads only the
default one) holding:

- ``snapshot``: the rows, and the changelog offset the partition's users were at when
  they were taken;
- ``j<seq>``: a journal, one entry per write after the snapshot: the keys it wrote and
  the offset it brought the partition to.

Both go in the same atomic write batch as the users they describe, so a kill -9 at any
moment leaves a snapshot and journal that match the users on disk. The rows come back as
the snapshot with each journalled key read again from disk. A journal that does not end
at the partition's offset (a write this code did not journal, such as one by an older
version) or anything unreadable means: scan every user, as without a snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch

from streams.core.rebuild import Rows
from streams.settings import Settings

log = logging.getLogger("journey.tablestore")

FAMILY = "journey_rows"
SNAPSHOT = b"snapshot"
JOURNAL, JOURNAL_END = b"j", b"k"  # journal keys: b"j" + a 20-digit sequence number
VERSION = 1

# A new snapshot once the journal holds this many keys, or an eighth of the partition's
# users if more: a restart then reads again at most about an eighth of them, and writing
# the snapshot (all of the partition's rows) costs each journalled write about 8 rows.
SNAPSHOT_MIN_KEYS = 20_000


def snapshot_due(journalled: int, users: int) -> bool:
    return journalled >= max(SNAPSHOT_MIN_KEYS, users // 8)


@dataclass
class DiskRows:
    """What is known of one open partition database's snapshot and journal."""

    db: Rdict  # the partition's database (a reopened one is read again)
    family: Any  # the column family's handle, for write batches
    view: Rdict  # the column family, for reads
    has_snapshot: bool
    journalled: int  # keys written since the snapshot
    seq: int  # the newest journal entry's sequence number
    flush_due: bool = False  # a snapshot went into the batch being written
    # the snapshot as ``open`` read it, for ``fetch`` until anything is written
    unwritten: bytes | None = None

    @classmethod
    def open(cls, db: Rdict) -> DiskRows:
        try:
            view = db.get_column_family(FAMILY)
        except Exception:  # noqa: BLE001 - rocksdict raises a bare Exception when absent
            view = db.create_column_family(FAMILY, Options(raw_mode=True))
        family = db.get_column_family_handle(FAMILY)
        journalled, seq = 0, 0
        for key, value in _journal(view):
            seq = int(key[len(JOURNAL):])
            journalled += len(orjson.loads(value)["keys"])
        snapshot = view.get(SNAPSHOT)
        return cls(db, family, view, snapshot is not None, journalled, seq,
                   unwritten=snapshot)

    def add_journal(self, batch: WriteBatch, keys: Iterable[bytes], offset: int) -> None:
        """Journal a write of ``keys`` that brings the partition to ``offset`` (needed
        only while a snapshot is on disk)."""
        self.unwritten = None
        if not self.has_snapshot:
            return
        names = [k.decode() for k in keys]
        self.seq += 1
        batch.put(JOURNAL + b"%020d" % self.seq,
                  orjson.dumps({"offset": offset, "keys": names}), self.family)
        self.journalled += len(names)

    def add_snapshot(self, batch: WriteBatch, rows: Rows, offset: int) -> None:
        """Replace the snapshot and the journal by ``rows``, which must be the rows of the
        partition's users as they are once ``batch`` is written, at ``offset``."""
        self.unwritten = None
        body = {"version": VERSION, "offset": offset, "rows": rows.to_plain()}
        batch.put(SNAPSHOT, orjson.dumps(body), self.family)
        batch.delete_range(JOURNAL, JOURNAL_END, self.family)
        self.has_snapshot, self.journalled, self.flush_due = True, 0, True

    def written(self) -> None:
        """The batch is on disk. After a snapshot, have RocksDB flush its memory tables
        in the background: after a kill -9 it replays what it had not flushed, and after
        a bulk read that is most of the partition (a third of a second per 60 MB)."""
        if self.flush_due:
            self.flush_due = False
            self.db.flush(False)
            self.view.flush(False)

    def fetch(self) -> Kept | None:
        """The snapshot and journal as stored (None: no snapshot). Read them together with
        the partition's offset, before anything else is written."""
        raw, self.unwritten = self.unwritten, None  # (the value lives on in Kept only)
        if raw is None:
            raw = self.view.get(SNAPSHOT)
        if raw is None:
            return None
        return Kept(raw, [value for _, value in _journal(self.view)])


def _journal(view: Rdict) -> Iterator[tuple[bytes, bytes]]:
    """The journal's entries, oldest first (the family is raw: keys and values are bytes)."""
    for key, value in view.items(from_key=JOURNAL):
        if not isinstance(key, bytes) or not key.startswith(JOURNAL):
            return
        yield key, value


@dataclass
class Kept:
    snapshot: bytes
    journal: list[bytes]


def build(kept: Kept, held: int, settings: Settings) -> tuple[Rows, set[str]] | None:
    """The snapshot's rows and the keys journalled since (to be read again), if they lead
    exactly to ``held``, the partition's offset on disk; None: scan the users instead."""
    body = orjson.loads(kept.snapshot)
    if body.get("version") != VERSION:
        return None
    offset = body["offset"]
    keys: set[str] = set()
    for raw in kept.journal:
        entry = orjson.loads(raw)
        offset = entry["offset"]
        keys.update(entry["keys"])
    if offset != held:
        log.warning("kept rows end at offset %s, the partition at %s: reading every user",
                    offset, held)
        return None
    return Rows.from_plain(body["rows"], settings), keys
