"""The ids of the last alerts a user was sent, kept as bytes.

An alert id is a short prefix and 32 hex digits (``alerts.stable_id``): as text it costs
84 bytes per user, most of them the hex. Kept as the prefix and the 16 bytes the digits
stand for, it costs 52, and reads back as the same text. Anything else (ids from records
of other versions, ids tests make up) is kept as the text itself.
"""

from __future__ import annotations

from typing import Any, overload

_HEX = 32  # hex digits at the end of an alert id
_ASCII_HEX = frozenset("0123456789abcdef")


def pack_id(text: str | None) -> bytes | str | None:
    if text is None or len(text) <= _HEX or not text.isascii() \
            or not _ASCII_HEX.issuperset(text[-_HEX:]):
        return text
    return text[:-_HEX].encode("ascii") + bytes.fromhex(text[-_HEX:])


def unpack_id(kept: bytes | str | None) -> str | None:
    if not isinstance(kept, bytes):
        return kept
    return kept[:-_HEX // 2].decode("ascii") + kept[-_HEX // 2:].hex()


def kept_beside(text: str | None, twin: bytes | str | None) -> bytes | str | None:
    """``text`` as kept (``pack_id``), as the very object ``twin`` is when they are the
    same id: a user's last alert is often also their last recall."""
    kept = pack_id(text)
    return twin if kept is not None and kept == twin else kept


class AlertRef:
    """An alert id attribute kept packed in the slot named ``slot``. Set to the id its
    ``twin`` holds (the last alert was the last recall), it shares that object."""

    __slots__ = ("slot", "twin")

    def __init__(self, slot: str, twin: str) -> None:
        self.slot, self.twin = slot, twin

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> AlertRef: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> str | None: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else unpack_id(getattr(obj, self.slot))

    def __set__(self, obj: Any, value: str | None) -> None:
        setattr(obj, self.slot, kept_beside(value, getattr(obj, self.twin)))
