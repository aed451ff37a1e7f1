"""Bounded per-user logs packed into ``bytes``.

A value in a tuple costs a pointer and a 24-byte float object, and an id kept as its text
costs the whole string: packed, a value costs its 8 bytes and an id an 8-byte digest of
it. ``bytes`` are immutable, so a log is replaced whole on each change and an empty log is
the one shared ``b""``. The packing never leaves the process: records write the values
as numbers and the digests as hex (streams/core/state.py).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from hashlib import blake2b

KEY_BYTES = 8  # an id's digest
VALUE_BYTES = 8  # a float64
ORDER_BYTES = KEY_BYTES + 2 * VALUE_BYTES  # an order: its id's digest, time, amount
HELD_BYTES = KEY_BYTES + VALUE_BYTES  # a held full refund: its order id's digest, its time
# one packer per entry width (values per entry); native byte order, as memoryview reads it
_ROW = {n: struct.Struct(f"={n}d") for n in (1, 2)}


def key_of(text: str) -> bytes:
    """The 8-byte digest an id is kept as. Two ids of one user's window (at most a few
    hundred) share one with odds of about n² in 3.7·10¹⁹; it is the same in every process,
    unlike ``hash``."""
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


def find_key(log: bytes, key: bytes, stride: int) -> int:
    """Byte offset of the entry (``stride`` bytes wide) that starts with ``key``; -1 if
    none does. A match across an entry boundary is not one."""
    i = log.find(key)
    while i != -1 and i % stride:
        i = log.find(key, i + 1)
    return i


def has_id(log: bytes, text: str) -> bool:
    """Whether a log of id digests holds ``text``'s."""
    return has_key(log, key_of(text))


def has_key(log: bytes, key: bytes) -> bool:
    """Whether a log of id digests holds ``key`` (a digest from ``key_of``)."""
    return find_key(log, key, KEY_BYTES) >= 0


def with_id(log: bytes, text: str, cap: int) -> bytes:
    """A log of id digests with ``text``'s appended, the newest ``cap`` kept."""
    return keep_last(log, key_of(text), cap)


def keep_last(log: bytes, entry: bytes, cap: int) -> bytes:
    """``log`` with ``entry`` appended and only its newest ``cap`` entries kept."""
    log += entry
    limit = cap * len(entry)
    return log[len(log) - limit:] if len(log) > limit else log


def unpack(log: bytes) -> list[float]:
    """The floats of a log of values (not of one with digests in it), in order."""
    return memoryview(log).cast("d").tolist() if log else []  # type: ignore[return-value]


def pack(values: Sequence[float]) -> bytes:
    return struct.pack(f"={len(values)}d", *values)


def entry_at(log: bytes, offset: int, width: int) -> tuple[float, ...]:
    """The ``width`` values starting at byte ``offset``."""
    return _ROW[width].unpack_from(log, offset)


def pack_entry(entry: tuple[float, ...]) -> bytes:
    return _ROW[len(entry)].pack(*entry)


def insort_capped(log: bytes, entry: tuple[float, ...], cap: int) -> bytes:
    """``log``, sorted entries of ``len(entry)`` values, with ``entry`` inserted after
    the equal ones and only the newest ``cap`` entries kept. Entries come mostly in order,
    so the place is searched from the newest."""
    row = _ROW[len(entry)]
    width, i = row.size, len(log)
    while i and row.unpack_from(log, i - width) > entry:
        i -= width
    log = log[:i] + row.pack(*entry) + log[i:]
    return log[width:] if len(log) > cap * width else log


def with_day_amount(days: bytes, at: float, amount: float, cap: int) -> bytes:
    """A log of (UTC day number, amount) pairs, sorted, with ``amount`` added to the day of
    ``at``, keeping the days after the newest one less ``cap``."""
    day = int(at // 86400.0)
    values = unpack(days)
    i = len(values)
    while i and values[i - 2] > day:  # days come mostly in order: scan from the newest
        i -= 2
    if i and values[i - 2] == day:
        values[i - 1] += amount
    else:
        values[i:i] = (day, amount)
    oldest_kept = values[-2] - cap
    drop = 0
    while drop < len(values) and values[drop] <= oldest_kept:
        drop += 2
    return pack(values[drop:] if drop else values)


# --- in records (lists, encoded as JSON) ---------------------------------------------------

def ids_record(log: bytes) -> str:
    """A log of digests as it is written in a record: hex."""
    return log.hex()


def ids_from_record(value: str | list[str]) -> bytes:
    """A log of digests from a record: hex, or a list of the ids themselves (records
    written before ids were kept as digests)."""
    if isinstance(value, str):
        return bytes.fromhex(value)
    return b"".join(key_of(text) for text in value)


def orders_record(log: bytes) -> list[object]:
    """An order log as written in a record: [digests as hex, [time, amount, ...]], or []
    when it is empty."""
    if not log:
        return []
    starts = range(0, len(log), ORDER_BYTES)
    keys = b"".join(log[i:i + KEY_BYTES] for i in starts)
    times = [v for i in starts for v in entry_at(log, i + KEY_BYTES, 2)]
    return [keys.hex(), times]


def held_record(log: bytes) -> list[object]:
    """Held full refunds as written in a record: [digests as hex, [time, ...]], or []."""
    entries = held_entries(log)
    if not entries:
        return []
    return [b"".join(key for key, _ in entries).hex(), [at for _, at in entries]]


def held_from_record(value: list[object]) -> bytes:
    """Held full refunds from ``held_record``'s form."""
    if not value:
        return b""
    keys, times = bytes.fromhex(str(value[0])), value[1]
    assert isinstance(times, list)
    return b"".join(keys[n * KEY_BYTES:(n + 1) * KEY_BYTES] + pack_entry((float(at),))
                    for n, at in enumerate(times))


def held_entries(log: bytes) -> list[tuple[bytes, float]]:
    """Held full refunds as (order id digest, refund time), oldest first."""
    return [(log[i:i + KEY_BYTES], entry_at(log, i + KEY_BYTES, 1)[0])
            for i in range(0, len(log), HELD_BYTES)]


def orders_from_record(value: list[object]) -> bytes:
    """An order log from a record: ``orders_record``'s form, or one written before the
    digests, flat (id, time, amount, ...) or a list per order."""
    if not value:
        return b""
    if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], list):
        keys, times = bytes.fromhex(value[0]), pack(value[1])
        pair = 2 * VALUE_BYTES
        return b"".join(keys[n * KEY_BYTES:(n + 1) * KEY_BYTES] + times[n * pair:(n + 1) * pair]
                        for n in range(len(keys) // KEY_BYTES))
    if isinstance(value[0], (list, tuple)):  # a list per order: flatten
        value = [v for entry in value for v in entry]  # type: ignore[union-attr, attr-defined]
    return b"".join(key_of(str(value[i])) + pack_entry((float(value[i + 1]),  # type: ignore
                                                        float(value[i + 2])))  # type: ignore
                    for i in range(0, len(value), 3))
