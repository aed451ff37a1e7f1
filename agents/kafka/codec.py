"""The users table's value format: a user's state, or a partition's context."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from streams.core.state import UserState

CODEC_NAME = "journey-state"


def dumps(value: Any) -> bytes:
    if isinstance(value, UserState):
        return orjson.dumps(["u", value.to_list()])
    return orjson.dumps(["c", value])


def loads(raw: bytes) -> Any:
    tag, body = orjson.loads(raw)
    return UserState.from_list(body) if tag == "u" else body


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return loads(s)


def register() -> None:
    codecs.register(CODEC_NAME, StateCodec())
