"""A Segment batch envelope split into its calls.

A library posts its calls to ``/v1/batch`` as ``{"batch": [call, ...], "sentAt": ...,
"context": {...}}``; a forwarder that writes that body to Kafka as it is puts many users
in one record. Each call becomes a record of its own, as Segment itself would take them:
the envelope's ``sentAt`` for a call without one, and the envelope's ``context`` under
the call's own (a key the call sets wins). The worker sends the calls on through the
repartition topic, each keyed by its user; replay and bootstrap read them in place.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.core.rejection import UNSUPPORTED_SEGMENT_CALL, Rejection


def batch_calls(raw: bytes, got: Any) -> list[bytes] | None:
    """The calls of ``raw`` as JSON records of their own, when ``got`` (what ``decode``
    made of ``raw``) says it is a Segment batch envelope; None for any other record. A
    call that is no object is kept as it is, for its own rejection."""
    if not (isinstance(got, Rejection) and got.reason == UNSUPPORTED_SEGMENT_CALL):
        return None
    obj = orjson.loads(raw)  # decode has parsed it once: it is JSON
    if type(obj) is not dict or type(obj.get("batch")) is not list \
            or obj.get("type") is not None:
        return None
    sent_at, context = obj.get("sentAt"), obj.get("context")
    calls: list[bytes] = []
    for call in obj["batch"]:
        if type(call) is dict:
            call = dict(call)
            if sent_at is not None and call.get("sentAt") is None:
                call["sentAt"] = sent_at
            if type(context) is dict:
                own = call.get("context")
                call["context"] = {**context, **own} if type(own) is dict else \
                    (dict(context) if own is None else own)
        calls.append(orjson.dumps(call))
    return calls
