"""How a UserState is laid out in memory: sparse fields made on first use, the logs and
a few floats in one bytes object, alert ids packed. Each reads and writes like a plain
attribute and leaves the record (``to_list``) as it was."""

from __future__ import annotations

import random
import struct
import sys

from streams.core.alert_ref import pack_id, unpack_id
from streams.core.logs import key_of
from streams.core.packed import (
    NUMBERS,
    SECTIONS,
    number,
    numbers,
    packed,
    section,
    sections,
    with_logs,
    with_numbers,
    with_section,
)
from streams.core.sparse import SPARSE_DEFAULTS, SPARSE_NAMES
from streams.core.state import RECORD_FIELDS, UserState


def _blank() -> UserState:
    return UserState("u", 1.0, 2.0, 3.0)


def test_sparse_fields_read_their_defaults_until_one_is_set() -> None:
    s = _blank()
    assert [getattr(s, n) for n in SPARSE_NAMES] == list(SPARSE_DEFAULTS)
    s.refunds = 0  # the default, of the default's type: nothing to keep
    assert s.sparse is None
    s.refunds += 1
    assert s.sparse is not None and s.refunds == 1 and s.shares == 0


def test_a_default_of_another_type_is_kept_so_the_record_reads_back_the_same() -> None:
    s = _blank()
    s.refunded = 0  # an int where the default is 0.0
    assert s.sparse is not None
    values = s.to_list()
    assert type(values[RECORD_FIELDS.index("refunded")]) is int
    assert UserState.from_list(values).to_list() == values


def test_a_state_whose_sparse_fields_went_back_to_defaults_equals_one_without() -> None:
    s = _blank()
    s.consent_mask = 3
    s.consent_mask = None
    assert s.sparse is not None and s == _blank()
    assert UserState.from_list(s.to_list()).sparse is None


def test_every_sparse_field_round_trips_through_the_record() -> None:
    rng = random.Random(5)
    for name, default in zip(SPARSE_NAMES, SPARSE_DEFAULTS, strict=True):
        s = _blank()
        value: object = "ref" if name == "referred_by" else \
            (not default if isinstance(default, bool) else rng.randint(1, 9))
        if isinstance(default, bytes):  # held refunds: digests and times, 16 bytes each
            value = rng.randbytes(8) + struct.pack("=d", 1.7e9) + rng.randbytes(8) \
                + struct.pack("=d", 1.8e9)
        setattr(s, name, value)
        back = UserState.from_list(s.to_list())
        assert getattr(back, name) == value and back == s, name


def test_packed_logs_and_numbers_read_back_what_was_written_in_any_order() -> None:
    rng = random.Random(11)
    blob, logs, values = b"", [b""] * SECTIONS, [0.0] * NUMBERS
    for _ in range(5_000):
        if rng.random() < 0.7:
            i = rng.randrange(SECTIONS)
            value = rng.randbytes(rng.choice((0, 0, 8, 16, 24, 64)))
            blob, logs[i] = with_section(blob, i, value), value
        else:
            i = rng.randrange(NUMBERS)
            x = rng.choice((0.0, -0.0, 1.0, rng.uniform(-1e9, 1e9), 5e-324))
            blob, values[i] = with_numbers(blob, i, (x,)), x
        assert [section(blob, n) for n in range(SECTIONS)] == logs == sections(blob)
        assert [number(blob, n) for n in range(NUMBERS)] == values
        assert list(numbers(blob, 1, 3)) == values[1:4]
        # all the logs written at once: the same blob, numbers kept bit for bit
        assert with_logs(blob, logs) == blob or with_logs(blob, logs) == b"" == blob.strip(b"\0")
        # equal, but for an all-zero blob, which reads the same as b""
        assert blob == packed(values, logs) or packed(values, logs) == b"" == blob.strip(b"\0")
    assert packed([0.0] * NUMBERS, [b""] * SECTIONS) == b""
    assert section(b"", 2) == b"" and number(b"", 3) == 0.0
    negative_zero = packed([0.0, -0.0, 0.0, 0.0, 0.0], [b""] * SECTIONS)
    assert str(number(negative_zero, 1)) == "-0.0"


def test_a_states_logs_and_floats_share_one_object_and_each_reads_as_its_own() -> None:
    s = _blank()
    s.remember_key(key_of("e1"), 64)
    s.log_purchase(10.0, 5.0)
    s.log_alert(20.0)
    s.add_spend(10.0, 5.0)
    assert s.has_seen("e1") and s.purchases() == [(10.0, 5.0)]
    assert s.alert_times() == [20.0] and s.spend_by_day() == [(0, 5.0)]
    s.add_hour(0.5, -0.25)
    s.decay_90 = 3.5
    assert s.order_log == b"" and (s.hour_x, s.hour_y, s.decay_90) == (0.5, -0.25, 3.5)
    assert UserState.from_list(s.to_list()).packed == s.packed


def test_a_purchase_logged_at_once_equals_its_three_logs_written_one_by_one() -> None:
    rng = random.Random(5)
    at_once, one_by_one = _blank(), _blank()
    for n in range(300):
        at, amount = rng.uniform(0, 400 * 86400.0), rng.choice((0.0, 9.99, rng.uniform(1, 99)))
        key = None if n % 3 == 0 else n.to_bytes(8, "little")
        at_once.record_purchase(key, at, amount)
        if key is not None:
            one_by_one.log_order(key, at, amount)
        one_by_one.log_purchase(at, amount)
        one_by_one.add_spend(at, amount)
        if n % 7 == 0:  # the numbers in the same blob stay as they are
            at_once.decay_30 = one_by_one.decay_30 = -0.0 if n % 2 else rng.random()
        assert at_once.packed == one_by_one.packed


def test_alert_ids_are_kept_packed_and_read_back_as_text() -> None:
    alert_id = "rt-" + "0123456789abcdef" * 2
    kept = pack_id(alert_id)
    assert isinstance(kept, bytes) and unpack_id(kept) == alert_id
    assert sys.getsizeof(kept) < sys.getsizeof(alert_id)
    for other in ("a1", "rt-" + "0123456789ABCDEF" * 2, "x" * 40, "é" + "0" * 32, None):
        assert pack_id(other) == other  # anything else is kept as it is
    s = _blank()
    s.last_alert_id = alert_id
    s.last_recall_id = alert_id
    assert s.last_recall_key is s.last_alert_key  # one object for both
    back = UserState.from_list(s.to_list())
    assert (back.last_alert_id, back.last_recall_id) == (alert_id, alert_id)
    assert back.last_recall_key is back.last_alert_key
