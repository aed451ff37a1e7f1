"""The users table's stores without a broker: what they hold after changelog records, the
offsets they report to faust, what a rebalance drops, and reads of encoded values.

Both stores take changelog records from two readers (their own bulk read and faust's
recovery or standby reading) that overlap; a record at or below what a partition holds
must change nothing, or a re-read older value would overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka.structs import TopicPartition
from rocksdict import Options, Rdict, WriteBatch

from agents.kafka import codec
from agents.kafka.rowsdisk import DiskRows, build
from agents.kafka.tablerows import rows
from agents.kafka.tablestore import MemoryStore, RocksStore, changelog_offsets, users_table
from streams.core.identity import Redirect
from streams.core.population import Sample
from streams.core.rebuild import Rows
from streams.core.state import UserState
from streams.settings import Settings


@dataclass
class Msg:
    offset: int
    key: bytes
    value: bytes | None
    partition: int = 0


@dataclass
class Ack:
    topic: str
    partition: int
    offset: int


def _state(user: str, orders: int) -> UserState:
    s = UserState(user, 1.0, 2.0, 2.0)
    s.orders = orders
    s.wake_at = 100.0 + orders
    return s


def _raw(user: str, orders: int) -> bytes:
    return codec.dumps(_state(user, orders))


def _store(url: str, tmp_path: Path) -> Any:
    codec.register()
    settings = Settings().with_overrides(store=url, data_dir=str(tmp_path))
    app = faust.App(f"t-{tmp_path.name}", broker="kafka://127.0.0.1:1", store=url,
                    datadir=str(tmp_path), key_serializer="raw", value_serializer="raw")
    data = users_table(app, settings, "127.0.0.1:1").data
    assert isinstance(data, RocksStore if url.startswith("rocksdb") else MemoryStore)
    return data


@pytest.fixture(params=["memory://", "rocksdb://"])
def store(request: Any, tmp_path: Path) -> Any:
    return _store(request.param, tmp_path)


@pytest.fixture
def memory(tmp_path: Path) -> Any:
    return _store("memory://", tmp_path)


def _get(store: Any, key: str) -> Any:
    value = store[key] if isinstance(store, MemoryStore) else store._get(key.encode())
    return codec.loads(value) if isinstance(value, bytes) else value


def test_records_at_or_below_what_a_partition_holds_change_nothing(store: Any) -> None:
    store.apply_records(0, [Msg(0, b"a", _raw("a", 1)), Msg(1, b"a", _raw("a", 2)),
                            Msg(2, b"b", _raw("b", 1))])
    assert store.held_offset(0) == 2
    # faust's reading starts lower and goes over records already held
    store.apply_records(0, [Msg(1, b"a", _raw("a", 2)), Msg(2, b"b", _raw("b", 1)),
                            Msg(0, b"a", _raw("a", 1)), Msg(3, b"b", _raw("b", 5))])
    assert _get(store, "a").orders == 2
    assert _get(store, "b").orders == 5
    assert store.held_offset(0) == 3
    assert store.held_offset(1) == -1


def test_the_persisted_offset_never_passes_the_end_the_broker_reported(store: Any) -> None:
    tp = TopicPartition(store.changelog(), 0)
    assert store.persisted_offset(tp) is None  # nothing held: faust reads it all
    store.apply_records(0, [Msg(i, b"k%d" % i, _raw(f"k{i}", 1)) for i in range(10)])
    assert store.persisted_offset(tp) == 9
    store.reported[0] = 6  # the embedded broker said the partition ends at 7
    assert store.persisted_offset(tp) == 6


def test_own_writes_are_readable_at_once_and_held_once_acknowledged(store: Any) -> None:
    state = _state("c", 3)
    store.put("c", state, codec.dumps(state), 1)
    assert _get(store, "c").orders == 3
    topic = store.changelog()
    store.acked(changelog_offsets([Ack(topic, 1, 41), Ack(topic, 1, 42), Ack("other", 1, 99)],
                                  topic))
    assert store.held_offset(1) == 42
    assert [r[0] for r in rows((v for _, v in store.items_of(1)), 30 * 86400.0)] == ["c"]
    assert list(rows((v for _, v in store.items_of(0)), 30 * 86400.0)) == []


def test_rocksdb_writes_reach_the_disk_only_once_acknowledged(tmp_path: Path) -> None:
    store = _store("rocksdb://", tmp_path)
    state = _state("d", 1)
    store.put("d", state, codec.dumps(state), 2)
    db = store._db_for_partition(2)
    assert db.get(b"d") is None  # a kill -9 now leaves the disk as the changelog is
    assert store._contains(b"d")
    store.acked({2: 7})
    assert codec.loads(db.get(b"d")).orders == 1
    assert store.held_offset(2) == 7
    assert not store.staged


def test_memory_values_stay_encoded_until_read(memory: Any) -> None:
    store = memory
    store.apply_records(0, [Msg(0, b"e", _raw("e", 1)), Msg(1, b"ctx", codec.dumps({"x": 1}))])
    assert isinstance(store.data["e"], bytes)
    first = store["e"]
    assert isinstance(first, UserState) and store["e"] is first  # decoded once, then kept
    assert store.get("ctx") == {"x": 1}
    assert store.get("nobody") is None
    held = (v for _, v in store.items_of(0))
    assert [r[0] for r in rows(held, 30 * 86400.0)] == ["e"]  # contexts are no users


def test_memory_drops_the_partitions_neither_active_nor_standby(memory: Any) -> None:
    store = memory
    for p in (0, 1, 2):
        store.apply_records(p, [Msg(0, b"u%d" % p, _raw(f"u{p}", 1), p)])
    topic = store.changelog()
    asyncio.run(store.on_recovery_completed({TopicPartition(topic, 0)},
                                            {TopicPartition(topic, 2)}))
    assert "u0" in store.data and "u2" in store.data and "u1" not in store.data
    assert store.held_offset(1) == -1 and store.held_offset(2) == 0


def test_rows_follow_what_a_partition_receives_and_a_scan_finds_the_same(store: Any) -> None:
    """A partition read from nothing keeps its rows as records arrive; a processor taking
    it over gets them. A partition held without rows gets them from a background scan,
    which also follows records arriving while it reads."""
    assert not store.has_data(3)
    store.rows[3] = Rows(50, 30 * 86400.0)  # as load() sets it up for a partition read from nothing
    store.apply_records(3, [Msg(0, b"a", _raw("a", 1)), Msg(1, b"b", _raw("b", 2)),
                            Msg(2, b"a", _raw("a", 4)), Msg(3, b"ctx", codec.dumps({"c": 1}))])
    followed = store.rows_for(3)
    assert followed is not None
    assert sorted(followed.key_of) == ["a", "b"] and followed.wake["a"] == 104.0
    store.forget_rows([3])

    async def scan() -> Any:
        store.scan_later([3])
        # a record arrives while the scan reads
        store.apply_records(3, [Msg(4, b"b", _raw("b", 7))])
        assert store.rows_for(3) is None  # not complete yet
        await store.scans_done([3])
        return store.rows_for(3)

    scanned = asyncio.run(scan())
    assert scanned is not None
    assert dict(scanned.wake) == {"a": 104.0, "b": 107.0}
    assert scanned.census == Counter(scanned.key_of.values())


def test_rows_follow_the_serving_processors_writes(store: Any) -> None:
    store.rows[2] = Rows(50, 30 * 86400.0)
    for orders in (1, 3):
        state = _state("w", orders)
        store.put("w", state, codec.dumps(state), 2)
    store.put("\x00partition:2:0", {"clock": 1.0}, codec.dumps({"clock": 1.0}), 2)
    kept = store.rows_for(2)
    assert kept is not None and dict(kept.wake) == {"w": 103.0} and len(kept) == 1


def test_a_delete_leaves_nothing_to_read_and_reaches_the_disk_once_acknowledged(
        store: Any) -> None:
    """The churn model deletes its snapshot records once no checkpoint lists them: the
    store must forget the key at once, and RocksDB must delete it with the next ack."""
    record = {"users": {"a": [1.0]}}
    store.put("\x00snapshot:1:5.0:base:0", record, codec.dumps(record), 1)
    store.acked({1: 3})
    assert _get(store, "\x00snapshot:1:5.0:base:0") == record
    store.put("\x00snapshot:1:5.0:base:0", None, None, 1)
    assert store.get("\x00snapshot:1:5.0:base:0") is None
    assert [k for k, _ in store.items_of(1)] == []
    store.acked({1: 4})
    if isinstance(store, RocksStore):
        assert store._db_for_partition(1).get(b"\x00snapshot:1:5.0:base:0") is None
        assert not store.staged
    assert store.held_offset(1) == 4


# --- rows kept on disk by the RocksDB store (agents.kafka.rowsdisk) ----------------------

def _restarted_rows(store: Any, partition: int, from_disk: bool) -> Rows | None:
    """The rows a restarted store would have for ``partition``: nothing in memory, then a
    scan (from the rows kept on disk, or of every user)."""
    store.forget_rows([partition])
    store._on_disk.clear()
    if not from_disk:
        store.rows_kept = _none

    async def scan() -> Rows | None:
        store.scan_later([partition])
        await store.scans_done([partition])
        return store.rows_for(partition)

    try:
        return asyncio.run(scan())
    finally:
        store.__dict__.pop("rows_kept", None)


async def _none(partition: int) -> None:
    return None


def _effective(rows: Rows, k: int) -> tuple[Any, ...]:
    sample = Sample(k)
    sample.load(rows.sample if rows.sample_exact else [*rows.key_of, *rows.redirected])
    return rows.key_of, rows.wake, rows.census, rows.redirected, list(sample)


def test_rocksdb_rows_kept_on_disk_equal_a_scan_of_every_user_after_any_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the mix of own writes, changelog records, deletes and redirects, and
    wherever a restart falls, the rows read back from the snapshot and its journal are
    those a scan of every user finds, and no user is read to get them."""
    monkeypatch.setattr("agents.kafka.rowsdisk.SNAPSHOT_MIN_KEYS", 7)  # many snapshots
    store = _store("rocksdb://", tmp_path)
    k = store.settings.population_sample_size
    rng = random.Random(11)
    store.rows[0] = Rows.of(store.settings)  # a partition read from nothing
    offset, users, used = -1, [f"u{i}" for i in range(60)], 0
    for step in range(300):
        roll = rng.random()
        key = rng.choice(users)
        if roll < 0.45:  # the serving processor writes, acknowledged now or a bit later
            value: Any = _state(key, rng.randint(1, 9))
            if rng.random() < 0.05:
                value = Redirect(rng.choice(users))
            elif rng.random() < 0.03:
                value = None
            store.put(key, value, None if value is None else codec.dumps(value), 0)
            if rng.random() < 0.6:
                offset += rng.randint(1, 3)
                store.acked({0: offset})
        elif roll < 0.75:  # changelog records (a standby, a recovery), of other users
            n = rng.randint(1, 12)
            free = [u for u in users if u.encode() not in store.staged]
            chosen = [rng.choice(free) for _ in range(n)]
            store.apply_records(0, [Msg(offset + 1 + i, u.encode(), _raw(u, rng.randint(1, 9)))
                                    for i, u in enumerate(chosen)])
            offset += n
        elif step % 3 == 0:  # kill -9 (writes not yet acknowledged are lost) and a restart
            store.staged.clear()
            scanned = _restarted_rows(store, 0, from_disk=False)
            assert scanned is not None
            store.items_of = _no_reading  # the kept rows must not need a scan
            kept = _restarted_rows(store, 0, from_disk=True)
            del store.items_of
            assert kept is not None, f"step {step}: the kept rows were not used"
            assert _effective(kept, k) == _effective(scanned, k), f"step {step}"
            used += 1
    assert used >= 10
    assert store._disk_rows(0).has_snapshot


def _no_reading(partition: int) -> Any:
    raise AssertionError("every user was read")


def test_rocksdb_rows_kept_on_disk_that_miss_a_write_are_not_used(tmp_path: Path) -> None:
    """A write the journal does not hold (one by an older version, say) moves the offset
    past the journal's end: the users are read instead of the stale rows."""
    store = _store("rocksdb://", tmp_path)
    store.rows[1] = Rows.of(store.settings)
    store.apply_records(1, [Msg(i, b"k%d" % i, _raw(f"k{i}", 1), 1) for i in range(5)])
    asyncio.run(store.load([]))  # nothing to read; the snapshot came with the records
    assert store._disk_rows(1).has_snapshot
    db = store._db_for_partition(1)
    db.put(b"k9", _raw("k9", 2))
    db.put(store.offset_key, b"5")  # written as if by code that keeps no rows
    assert asyncio.run(store.rows_kept(1)) is None
    rows_after = _restarted_rows(store, 1, from_disk=True)
    assert rows_after is not None and sorted(rows_after.key_of) == [
        "k0", "k1", "k2", "k3", "k4", "k9"]


def test_rocksdb_a_revoked_partition_opens_again_with_its_kept_rows(tmp_path: Path) -> None:
    """faust closes a revoked partition's database by dropping every reference to it; the
    kept rows' handles must go too, or reopening it fails on the files' lock."""
    store = _store("rocksdb://", tmp_path)
    store.rows[2] = Rows.of(store.settings)
    store.apply_records(2, [Msg(i, b"r%d" % i, _raw(f"r{i}", 1), 2) for i in range(3)])
    asyncio.run(store.load([]))
    assert store._disk_rows(2).has_snapshot
    store.revoke_partitions(store.table, {TopicPartition(store.changelog(), 2)})
    store.forget_rows([2])
    assert store.held_offset(2) == 2  # opened again
    again = _restarted_rows(store, 2, from_disk=True)
    assert again is not None and sorted(again.key_of) == ["r0", "r1", "r2"]


def test_rocksdb_kept_rows_fetched_after_a_write_are_the_new_snapshot(tmp_path: Path) -> None:
    """``DiskRows.open`` keeps the snapshot it read for ``fetch``; a snapshot or journal
    entry written in between must not leave ``fetch`` the old one."""
    settings = Settings()
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    try:
        first = DiskRows.open(db)
        batch = WriteBatch(raw_mode=True)
        first.add_snapshot(batch, Rows.of(settings), offset=3)
        db.write(batch)
        reopened = DiskRows.open(db)  # holds the snapshot at offset 3
        batch = WriteBatch(raw_mode=True)
        reopened.add_snapshot(batch, Rows.of(settings), offset=8)
        db.write(batch)
        kept = reopened.fetch()
        assert kept is not None and orjson.loads(kept.snapshot)["offset"] == 8
        assert build(kept, 8, settings) is not None
        batch = WriteBatch(raw_mode=True)
        reopened.add_journal(batch, [b"u1"], offset=9)
        db.write(batch)
        kept = reopened.fetch()
        assert kept is not None and build(kept, 9, settings) is not None
        assert build(kept, 8, settings) is None  # the chain ends at 9
    finally:
        del reopened, first
        db.close()
