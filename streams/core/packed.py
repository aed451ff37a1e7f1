"""A user's packed numbers and logs, in one bytes object.

Each Python float costs 24 bytes and a pointer, and each bytes object a 33-byte header and
a pointer. So a state keeps a few floats that change together and its five bounded logs
(streams/core/logs.py) in one ``bytes``: a header with where each log but the last ends,
the numbers as float64, then the logs in order. Each number and each log reads and writes
as its own attribute (``PackedFloat``, ``Section``); a write builds the whole object
again, a few hundred bytes at most with the default caps. b"" stands for every number
0.0 and every log empty.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Any, overload

SECTIONS = 5  # logs
NUMBERS = 5  # floats
_ENDS = struct.Struct(f"={SECTIONS - 1}I")  # each log's end but the last's, after _HEAD
_NUMBERS = struct.Struct(f"={NUMBERS}d")
_F64 = struct.Struct("=d")
_RUNS = {n: struct.Struct(f"={n}d") for n in range(1, NUMBERS + 1)}  # n numbers in a row
_HEAD = _ENDS.size + _NUMBERS.size
_ZERO = bytes(_HEAD)  # no logs, every number 0.0
_ZERO_NUMBERS = (0.0,) * NUMBERS


def sections(blob: bytes) -> list[bytes]:
    """Every log of a packed blob, in order (to change several and write them at once,
    with ``with_logs``)."""
    if not blob:
        return [b""] * SECTIONS
    starts = [0, *_ENDS.unpack_from(blob)]
    logs = blob[_HEAD:]
    return [logs[a:b] for a, b in itertools.pairwise(starts)] + [logs[starts[-1]:]]


def section(blob: bytes, i: int) -> bytes:
    """Log ``i`` of a packed blob."""
    if not blob:
        return b""
    ends = _ENDS.unpack_from(blob)
    start = _HEAD + ends[i - 1] if i else _HEAD
    return blob[start:_HEAD + ends[i]] if i < SECTIONS - 1 else blob[start:]


def number(blob: bytes, i: int) -> float:
    return _F64.unpack_from(blob, _ENDS.size + 8 * i)[0] if blob else 0.0


def numbers(blob: bytes, first: int, count: int) -> tuple[float, ...]:
    """``count`` numbers of a packed blob from index ``first`` on."""
    return _RUNS[count].unpack_from(blob, _ENDS.size + 8 * first) if blob else \
        _ZERO_NUMBERS[:count]


def all_numbers(blob: bytes) -> tuple[float, ...]:
    """All the numbers of a packed blob, in order."""
    return _NUMBERS.unpack_from(blob, _ENDS.size) if blob else _ZERO_NUMBERS


def packed(numbers: Sequence[float], logs: Sequence[bytes]) -> bytes:
    """The blob of ``NUMBERS`` numbers and ``SECTIONS`` logs, in order."""
    return _joined(_NUMBERS.pack(*numbers), logs)


def with_logs(blob: bytes, logs: Sequence[bytes]) -> bytes:
    """``blob`` with every log replaced by ``logs``, in order; the numbers kept as they
    are, bit for bit."""
    return _joined(blob[_ENDS.size:_HEAD] if blob else _ZERO[_ENDS.size:], logs)


def _joined(numbers: bytes, logs: Sequence[bytes]) -> bytes:
    """The blob of packed ``numbers`` and ``logs``; b"" for no logs and all +0.0."""
    if not any(logs) and numbers == _ZERO[_ENDS.size:]:  # -0.0 is kept: it is not all zero
        return b""
    ends, at = [], 0
    for log in logs[:-1]:
        at += len(log)
        ends.append(at)
    return _ENDS.pack(*ends) + numbers + b"".join(logs)


def with_section(blob: bytes, i: int, value: bytes) -> bytes:
    """``blob`` with log ``i`` replaced by ``value``."""
    blob = blob or _ZERO
    ends = list(_ENDS.unpack_from(blob))
    start = ends[i - 1] if i else 0
    end = ends[i] if i < SECTIONS - 1 else len(blob) - _HEAD
    if len(value) != end - start:
        delta = len(value) - (end - start)
        for n in range(i, SECTIONS - 1):
            ends[n] += delta
    return _ENDS.pack(*ends) + blob[_ENDS.size:_HEAD + start] + value + blob[_HEAD + end:]


def with_numbers(blob: bytes, first: int, values: Sequence[float]) -> bytes:
    """``blob`` with the numbers from index ``first`` on replaced by ``values``."""
    blob = blob or _ZERO
    at = _ENDS.size + 8 * first
    return blob[:at] + _RUNS[len(values)].pack(*values) + blob[at + 8 * len(values):]


class Section:
    """A log kept as section ``index`` of its owner's ``packed`` blob."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Section: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> bytes: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        blob = obj.packed  # section() written out: logs are read several times an event
        if not blob:
            return b""
        i, ends = self.index, _ENDS.unpack_from(blob)
        start = _HEAD + ends[i - 1] if i else _HEAD
        return blob[start:_HEAD + ends[i]] if i < SECTIONS - 1 else blob[start:]

    def __set__(self, obj: Any, value: bytes) -> None:
        obj.packed = with_section(obj.packed, self.index, value)


class PackedFloat:
    """A float kept as number ``index`` of its owner's ``packed`` blob."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> PackedFloat: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> float: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        blob = obj.packed
        return _F64.unpack_from(blob, _ENDS.size + 8 * self.index)[0] if blob else 0.0

    def __set__(self, obj: Any, value: float) -> None:
        obj.packed = with_numbers(obj.packed, self.index, (value,))
