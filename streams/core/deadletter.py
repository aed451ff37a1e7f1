"""The dead-letter record: what was rejected, why, and where it came from."""

from __future__ import annotations

import base64
from typing import Any

from streams.core.contracts import DEAD_LETTER
from streams.core.timefmt import rfc3339

PAYLOAD_CAP = 4096


def dead_letter(reason: str, message: str, raw: bytes | str, origin: dict[str, Any],
                received_at: float, event_id: str | None = None,
                user_id: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": DEAD_LETTER.id,
        "reason": reason,
        "message": message,
        "received_at": rfc3339(received_at),
        "origin": origin,
        "event_id": event_id,
        "user_id": user_id,
    }
    if isinstance(raw, str):
        record["payload"] = raw[:PAYLOAD_CAP]
        record["payload_truncated"] = len(raw) > PAYLOAD_CAP
        return record
    head = raw[:PAYLOAD_CAP]
    try:
        text = raw.decode("utf-8")
        record["payload"] = text[:PAYLOAD_CAP]
        record["payload_truncated"] = len(text) > PAYLOAD_CAP
    except UnicodeDecodeError:
        record["payload"] = head.decode("utf-8", errors="replace")
        record["payload_truncated"] = len(raw) > PAYLOAD_CAP
        record["payload_base64"] = base64.b64encode(head).decode("ascii")
    return record
