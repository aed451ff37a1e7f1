"""Why an input was refused: the dead-letter reason codes and the decoder's Rejection.

Shared by the decoder's parts (raw-input limits, the canonical contract, the Segment
mapping) so that each names its reason from one vocabulary: the dead-letter schema's.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import schemas

NOT_JSON: Final = "not_json"
NOT_AN_OBJECT: Final = "not_an_object"
INVALID_UTF8: Final = "invalid_utf8"
OVERSIZE: Final = "oversize"
TOO_DEEP: Final = "too_deep"
DUPLICATE_KEYS: Final = "duplicate_keys"
SCHEMA_VIOLATION: Final = "schema_violation"
MISSING_FIELD: Final = "missing_field"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_TIMESTAMP: Final = "invalid_timestamp"
INVALID_AMOUNT: Final = "invalid_amount"
UNKNOWN_CURRENCY: Final = "unknown_currency"
UNSUPPORTED_SEGMENT_CALL: Final = "unsupported_segment_call"

# Every reason a dead letter may carry: the decoder's above plus the core's time checks.
REASONS: Final[tuple[str, ...]] = tuple(
    schemas.load("dead-letter")["properties"]["reason"]["enum"])
if not {NOT_JSON, NOT_AN_OBJECT, INVALID_UTF8, OVERSIZE, TOO_DEEP, DUPLICATE_KEYS,
        SCHEMA_VIOLATION, MISSING_FIELD, UNKNOWN_TYPE, INVALID_TIMESTAMP, INVALID_AMOUNT,
        UNKNOWN_CURRENCY, UNSUPPORTED_SEGMENT_CALL} <= set(REASONS):
    raise LookupError("dead-letter.v1 lost a reason the decoder gives")


class Rejection(NamedTuple):
    reason: str
    message: str
    event_id: str | None = None
    user_id: str | None = None


def show(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut short (inputs may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def ids_of(obj: Any) -> tuple[str | None, str | None]:
    """Best-effort event and user id of a rejected object, for the dead letter."""
    if not isinstance(obj, dict):
        return None, None

    def pick(*keys: str) -> str | None:
        return next((v for v in map(obj.get, keys) if type(v) is str and 0 < len(v) <= 200),
                    None)
    return pick("event_id", "messageId"), pick("user_id", "userId", "anonymousId")
