"""Segment calls exactly as Segment's own libraries send them, for tests.

- :func:`python_call`: what analytics-python 2.3.4 enqueues (``Client._enqueue``): every
  key always present, ``anonymousId``/``userId`` ``null`` when not given, ``timestamp``
  to the millisecond with a ``+00:00`` offset, ``context.library``, ``integrations: {}``,
  a uuid4 ``messageId``.
- :func:`delivered_call`: a call from analytics.js as Segment delivers it to a destination:
  the browser's ``originalTimestamp``, Segment's ``sentAt``, ``receivedAt`` and
  skew-corrected ``timestamp`` (all ``...Z`` to the millisecond), a full browser
  ``context`` (``timezone`` among it), ``channel``, ``version`` and an ``ajs-next-``
  message id.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

_ids = itertools.count(1)
_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
_SHAPES = {  # the keys each call adds to the common ones, in analytics-python's order
    "identify": ("traits",), "track": ("event", "properties"),
    "page": ("category", "name", "properties"), "alias": ("previousId",),
    "group": ("groupId", "traits")}


def _iso(t: float, z: bool) -> str:
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if z else text


def python_call(call: str, at: float, *, user_id: str | None = None,
                anonymous_id: str | None = None, message_id: str | None = None,
                context: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """``call`` ("identify", "track", "page", "alias", "group") at epoch second ``at``,
    as analytics-python 2.3.4 sends it; ``fields`` are the call's own (``traits``,
    ``event``, ``properties``, ``name``, ``previousId``, ``groupId``)."""
    msg: dict[str, Any] = {
        "integrations": {}, "anonymousId": anonymous_id, "timestamp": _iso(at, z=False),
        "context": {**(context or {}),
                    "library": {"name": "analytics-python", "version": "2.3.4"}},
        "type": call, "userId": user_id,
        "messageId": message_id or str(uuid.uuid5(_NAMESPACE, str(next(_ids))))}
    if call == "alias":
        del msg["anonymousId"]  # alias sends no anonymousId key...
        msg["anonymousId"] = None  # ...and clean() keeps the None that .get() put back
    for key in _SHAPES[call]:
        default: Any = {} if key in ("traits", "properties") else None
        msg[key] = fields.pop(key, default)
    assert not fields, f"not a field of a {call} call: {sorted(fields)}"
    return msg


def delivered_call(call: str, at: float, *, user_id: str | None = None,
                   anonymous_id: str | None = None, timezone: str = "Europe/Berlin",
                   **fields: Any) -> dict[str, Any]:
    """``call`` from analytics.js in a browser, as Segment delivers it to a destination."""
    n = next(_ids)
    msg: dict[str, Any] = {
        "anonymousId": anonymous_id, "userId": user_id, "type": call,
        "messageId": f"ajs-next-{int(at * 1000)}-{n:08x}",
        "channel": "client", "version": 2, "integrations": {},
        "context": {
            "library": {"name": "analytics.js", "version": "npm:next-1.53.0"},
            "locale": "de-DE", "timezone": timezone,
            "page": {"path": "/", "url": "https://shop.example/", "title": "Shop"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/124.0"},
        "originalTimestamp": _iso(at - 0.021, z=True), "sentAt": _iso(at + 0.010, z=True),
        "receivedAt": _iso(at + 0.183, z=True), "timestamp": _iso(at, z=True)}
    for key in _SHAPES[call]:
        if key in fields:
            msg[key] = fields.pop(key)
        elif key in ("traits", "properties"):
            msg[key] = {}
    assert not fields, f"not a field of a {call} call: {sorted(fields)}"
    return msg
