"""The decoder's limits on one input, beyond what the schemas say field by field.

The byte size of a record is the operator's setting (``max_event_bytes``); the limits
here are fixed, because they bound work and memory per event whatever that setting is,
and no real storefront event comes near them. They are documented in
docs/producing.md#limits; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import schemas
from streams.core.rejection import OVERSIZE, TOO_DEEP, Rejection, ids_of

MAX_EVENT_BYTES_DEFAULT: Final = 65536  # the default of the max_event_bytes setting
MAX_DEPTH: Final = 32  # nesting levels, the event object itself being the first
MAX_STRING_CHARS: Final = 16384  # characters in any one string, keys included
MAX_ARRAY_ITEMS: Final = 1000  # items in any one array
MAX_OBJECT_KEYS: Final = 500  # keys in any one object
# The largest amount the contract accepts, in any currency: far above any real order, far
# below where sums of amounts lose the cents or overflow to infinity.
MAX_AMOUNT: Final[float] = float(schemas.load("user-event")["$defs"]["amount"]["maximum"])
MAX_AMOUNT_TEXT: Final = f"{MAX_AMOUNT:.0e}".replace("e+", "e")  # "1e15", for messages

# Event times outside these (UTC) are placeholders or broken clocks (0001-01-01, the Unix
# epoch, 9999-12-31), not something a user did. One would move a replay's clock to the
# far future, or make a user's history start in antiquity.
EARLIEST_EVENT: Final = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_EVENT: Final = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_EVENT_AT: Final = EARLIEST_EVENT.timestamp()
LATEST_EVENT_AT: Final = LATEST_EVENT.timestamp()  # exclusive
EVENT_TIME_RANGE: Final = (f"{EARLIEST_EVENT:%Y-%m-%d}T00:00:00Z to "
                           f"{LATEST_EVENT:%Y-%m-%d}T00:00:00Z")

_WIDE: Final = min(MAX_ARRAY_ITEMS, MAX_OBJECT_KEYS)
# A record no longer than this cannot break the string, array or key limits (n items take
# at least 2n - 1 bytes), so only its depth needs a look: see shape_problem.
SMALL_RECORD_BYTES: Final = min(MAX_STRING_CHARS, 2 * _WIDE - 2)


def shape_problem(data: bytes, obj: dict[str, Any], max_depth: int = MAX_DEPTH,
                  ) -> Rejection | None:
    """Why the parsed ``obj`` of the JSON text ``data`` breaks a limit, or None.

    Byte counts bound each limit from above (n levels need n brackets, n items or keys
    n - 1 commas, a string of n characters at least n bytes), so the walk over the
    object runs only when one of them could fail: never for ordinary events.
    """
    braces = data.count(b"{")
    deep = braces > max_depth or (b"[" in data and braces + data.count(b"[") > max_depth)
    long = len(data) > MAX_STRING_CHARS
    if not (deep or long or (len(data) > SMALL_RECORD_BYTES
                             and data.count(b",") >= _WIDE - 1)):
        return None
    problem = _walk(obj, max_depth, long)
    return None if problem is None else Rejection(*problem, *ids_of(obj))


def _where(path: str) -> str:
    if not path:
        return "the event"
    return path if len(path) <= 120 else path[:120] + "..."


def _walk(obj: Any, max_depth: int, strings: bool) -> tuple[str, str] | None:
    """The first limit ``obj`` breaks, as (reason, message), depth first."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            return TOO_DEEP, f"input nests more than {max_depth} levels deep"
        if isinstance(node, dict):
            if len(node) > MAX_OBJECT_KEYS:
                return OVERSIZE, (f"{_where(path)} has {len(node)} keys; at most "
                                  f"{MAX_OBJECT_KEYS} are accepted in one object")
            children: Any = node.items()
        else:
            if len(node) > MAX_ARRAY_ITEMS:
                return OVERSIZE, (f"{_where(path)} has {len(node)} items; at most "
                                  f"{MAX_ARRAY_ITEMS} are accepted in one array")
            children = enumerate(node)
        for key, value in children:
            if type(key) is str:
                if strings and len(key) > MAX_STRING_CHARS:
                    return OVERSIZE, (f"a key in {_where(path)} has {len(key)} characters; "
                                      f"at most {MAX_STRING_CHARS} are accepted")
                inner = f"{path}.{key}" if path else key
            else:
                inner = f"{path}[{key}]"
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1, inner))
            elif strings and isinstance(value, str) and len(value) > MAX_STRING_CHARS:
                return OVERSIZE, (f"{_where(inner)} is a string of {len(value)} characters; "
                                  f"at most {MAX_STRING_CHARS} are accepted")
    return None
