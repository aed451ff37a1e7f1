"""The packed per-user logs (streams/core/logs.py): digests found only where an entry
starts, caps, sorted inserts, and the record forms old and new."""

from __future__ import annotations

import random

from streams.core.logs import (
    KEY_BYTES,
    find_key,
    ids_from_record,
    ids_record,
    insort_capped,
    keep_last,
    key_of,
    orders_from_record,
    orders_record,
    pack,
    pack_entry,
    unpack,
)


def test_a_key_is_found_only_at_the_start_of_an_entry() -> None:
    a, b = key_of("a"), key_of("b")
    log = a + b
    straddling = log[4:4 + KEY_BYTES]  # the back half of a and the front half of b
    assert find_key(log, straddling, KEY_BYTES) == -1
    assert find_key(log, b, KEY_BYTES) == KEY_BYTES
    # an entry 24 bytes wide: a key equal to a time's bytes is not an order's key
    orders = a + pack_entry((5.0, 10.0)) + b + pack_entry((6.0, 1.0))
    assert find_key(orders, pack((5.0,)), 24) == -1
    assert find_key(orders, b, 24) == 24


def test_a_key_is_the_same_in_every_process_and_differs_between_ids() -> None:
    # pinned: records hold these digests, so a restarted worker must compute the same
    assert key_of("e-1") == bytes.fromhex("317386494bf10d9f")
    keys = {key_of(f"evt-{i}") for i in range(100_000)}
    assert len(keys) == 100_000
    assert key_of("\ud800") != key_of("")  # a lone surrogate is kept, not refused


def test_keep_last_keeps_the_newest_entries() -> None:
    log = b""
    for i in range(10):
        log = keep_last(log, key_of(str(i)), 4)
    assert log == b"".join(key_of(str(i)) for i in range(6, 10))


def test_insort_keeps_entries_sorted_and_the_newest_cap() -> None:
    rng = random.Random(3)
    entries = [(float(rng.randint(0, 50)), float(rng.randint(0, 3))) for _ in range(200)]
    log = b""
    for entry in entries:
        log = insort_capped(log, entry, 8)
        held = unpack(log)
        pairs = list(zip(held[0::2], held[1::2], strict=True))
        assert pairs == sorted(pairs) and len(pairs) <= 8
    assert pairs == sorted(entries)[-8:]


def test_id_logs_read_back_from_records_of_either_form() -> None:
    log = b"".join(key_of(i) for i in ("e1", "e2"))
    assert ids_from_record(ids_record(log)) == log
    assert ids_from_record(["e1", "e2"]) == log  # written when ids were kept as text
    assert ids_from_record(ids_record(b"")) == b""


def test_order_logs_read_back_from_records_of_every_form() -> None:
    log = key_of("o1") + pack_entry((1.5, 10.0)) + key_of("o2") + pack_entry((3.0, -2.25))
    record = orders_record(log)
    assert record == [(key_of("o1") + key_of("o2")).hex(), [1.5, 10.0, 3.0, -2.25]]
    assert orders_from_record(record) == log
    assert orders_from_record(["o1", 1.5, 10.0, "o2", 3.0, -2.25]) == log  # flat, as text
    assert orders_from_record([["o1", 1.5, 10], ["o2", 3, -2.25]]) == log  # a list each
    assert orders_from_record(orders_record(b"")) == b""
