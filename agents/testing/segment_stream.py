"""A synthetic storefront as a Segment source sends it: anonymous browsing, logins that
stitch the anonymous profile into the user, identify traits, group calls.

:func:`segment_stream` rewrites a time-ordered synthetic history (``streams.synth``):

- a share of the users browse anonymously, under ``anon-<user id>``, until their first
  purchase: then an ``identify`` naming both ids (two in three) or an ``alias`` and a
  plain ``identify`` (one in three) logs them in, and a ``group`` call follows;
- after the login, one event in ten of theirs still comes under the anonymous id (another
  tab, a cached page), so it must be forwarded to the user;
- whatever has a Segment name goes as a Segment call (page views as ``page``, sessions as
  ``Application Opened``) shaped as analytics-python 2.3.4 sends it for a zoned
  ``datetime``: ``timestamp`` to the millisecond with the user's offset, ``anonymousId:
  null`` when the user is known, ``context.library`` and the user's zone in
  ``context.timezone`` (journey takes the zone from there, not from a stamp's offset),
  ``integrations``; the rest stays canonical, under whichever id is in use;
- a re-sent event (same id) is re-sent exactly as it was first sent.

Every choice is a hash of the seed and an id, so the same history gives the same stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from streams.core import event as ev
from streams.synth.noise import SEGMENT_NAMES, to_segment, zone_of

LIBRARY = {"library": {"name": "analytics-python", "version": "2.3.4"}}
_TRAITS = ({"email": "{u}@example.com", "phone": "+49 30 {n}"}, {"email": "{u}@example.com"},
           {"email": "{u}@example.com", "phone": None, "unsubscribed": True},
           {"email": None, "phone": "+1 212 {n}"})


def _share(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _call(event: dict[str, Any], user_id: str | None, anonymous_id: str | None,
          ) -> dict[str, Any]:
    """``event`` as the Segment call (or canonical event) a storefront would send."""
    kind = event["type"]
    if kind in SEGMENT_NAMES:
        call = to_segment(event)
    elif kind in (ev.PAGE_VIEW, ev.SESSION_START):
        call = {"type": "page", "name": event["properties"].get("page", "Home"),
                "messageId": event["event_id"], "timestamp": event["occurred_at"],
                "properties": {}}
        if kind == ev.SESSION_START:
            call = {**call, "type": "track", "event": "Application Opened"}
            del call["name"]
    else:  # no Segment name: a canonical event, under the id in use
        return {**event, "user_id": user_id or anonymous_id}
    return {**call, "userId": user_id, "anonymousId": anonymous_id,
            "context": {**LIBRARY, "timezone": zone_of(event["occurred_at"])},
            "integrations": {}, "timestamp": _millis(event["occurred_at"])}


def _millis(text: str) -> str:
    """``2026-01-10T10:00:00+01:00`` as ``isoformat(timespec="milliseconds")`` writes it."""
    return text if "." in text else f"{text[:19]}.000{text[19:]}"


def _login(user: str, anon: str, event: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The calls that log ``user`` in just before ``event``, their first purchase."""
    at = event["occurred_at"]
    n = int(_share(seed, "n", user) * 1e6)
    traits = {k: (v.format(u=user, n=n) if isinstance(v, str) else v)
              for k, v in _TRAITS[int(_share(seed, "traits", user) * len(_TRAITS))].items()}
    base = {"context": {**LIBRARY, "timezone": zone_of(at)}, "integrations": {},
            "timestamp": _millis(at)}
    identify = {**base, "type": "identify", "messageId": f"id-{user}", "userId": user,
                "anonymousId": anon, "traits": traits}
    group = {**base, "type": "group", "messageId": f"gr-{user}", "userId": user,
             "anonymousId": None, "groupId": "acme", "traits": {"name": "Acme"}}
    if _share(seed, "alias", user) < 1 / 3:
        alias = {**base, "type": "alias", "messageId": f"al-{user}", "previousId": anon,
                 "userId": user, "anonymousId": None}
        return [alias, {**identify, "anonymousId": None}, group]
    return [identify, group]


def segment_stream(events: Iterable[dict[str, Any] | str], *, seed: int,
                   anonymous_share: float = 0.5) -> Iterator[dict[str, Any] | str]:
    logged_in: set[str] = set()
    sent: dict[str, dict[str, Any]] = {}  # event id -> what was sent, for re-sends
    for event in events:
        if isinstance(event, str):  # a malformed line: as it is
            yield event
            continue
        again = sent.get(event["event_id"])
        if again is not None:
            yield again
            continue
        user = event["user_id"]
        anon = f"anon-{user}"
        anonymous = _share(seed, "anonymous", user) < anonymous_share
        if anonymous and user not in logged_in and event["type"] == ev.PURCHASE:
            logged_in.add(user)
            yield from _login(user, anon, event, seed)
        if not anonymous:
            out = _call(event, user, None)
        elif user not in logged_in or _share(seed, "straggler", event["event_id"]) < 0.1:
            out = _call(event, None, anon)
        else:
            out = _call(event, user, anon)  # analytics.js keeps sending the anonymousId
        sent[event["event_id"]] = out
        yield out


def record_key(call: dict[str, Any]) -> str:
    """The key a Segment-to-Kafka forwarder gives a call: its user, else its anonymous id."""
    return str(call.get("user_id") or call.get("userId") or call.get("anonymousId"))
