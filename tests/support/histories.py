"""Synthetic storefront histories as decoded events, for replay tests."""

from __future__ import annotations

import orjson

from streams.core.decode import decode
from streams.core.event import Event
from streams.synth import SynthConfig, generate


def synth_events(config: SynthConfig, referrals: bool = True) -> list[Event]:
    """The events of ``config``'s history that decode, in its order. Without
    ``referrals`` no event names a referrer, so no partition sends another news (the
    parallel replay needs that; see streams.replay.parallel)."""
    raw, _ = generate(config)
    events = []
    for item in raw:
        if not isinstance(item, dict):
            continue  # a malformed line of the noise
        if not referrals:
            item = {**item, "properties": {k: v for k, v in item.get("properties", {}).items()
                                           if k != "referred_by"}}
        e = decode(orjson.dumps(item))
        if isinstance(e, Event):
            events.append(e)
    return events
