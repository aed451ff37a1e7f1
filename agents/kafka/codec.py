"""The users table's value format: a user's state, a merged id's redirect, or a
partition's context."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs

from streams.core.identity import Redirect
from streams.core.state import UserState

CODEC_NAME = "journey-state"


def dumps(value: Any) -> bytes:
    if isinstance(value, UserState):
        return orjson.dumps(["u", value.to_list()])
    if isinstance(value, Redirect):
        return orjson.dumps(["r", value.to_list()])
    return orjson.dumps(["c", value])


def loads(raw: bytes) -> Any:
    tag, body = orjson.loads(raw)
    if tag == "u":
        return UserState.from_list(body)
    return Redirect.from_list(body) if tag == "r" else body


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return loads(s)


def register() -> None:
    codecs.register(CODEC_NAME, StateCodec())
