"""Identity stitching over generated streams (hypothesis): the properties of
test_properties.py, with identify, alias and group calls among the events.

Anonymous ids are stitched into users by fixed pairs (anon1 -> ann by identify, anon2 ->
bob by alias, ann -> bob by alias: a chain), so the merges never conflict and never loop,
and every event of every id ends with the same user whatever the order:

1. duplicates anywhere (redeliveries, producer resends) change nothing at all;
2. disorder within the allowed lateness gives the same snapshots, and every merged id
   ends in the same user;
3. every output validates against its schema, and nothing is rejected.
"""

from __future__ import annotations

from typing import Any

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from streams.core.apply import CHANNELS_OFF, CHANNELS_ON, CONTACT_BITS, PREVIOUS_ID
from streams.core.event import ALIAS, GROUP, IDENTIFY, Event
from streams.settings import Settings
from streams.testing import Harness
from tests.support.properties import (
    BASE,
    GAP,
    HORIZON,
    ONE_IN,
    PROPERTY_SETTINGS,
    compared,
    finish,
    one_event,
    run,
    snapshots,
    validate,
)

IDS = ("anon1", "anon2", "ann", "bob")
STITCHES = (("anon1", "ann", IDENTIFY), ("anon2", "bob", ALIAS), ("ann", "bob", ALIAS))
PICK_ID = st.sampled_from(IDS)
PICK_STITCH = st.sampled_from(STITCHES)
CONTACTS = st.sampled_from([0, 3, 1, 12, 4, 15])
CHANNEL_LISTS = st.lists(st.sampled_from(["email", "sms", "app_push"]), unique=True,
                         max_size=2)


def identity_event(draw: st.DrawFn, index: int, t: float) -> Event:
    source, target, call = draw(PICK_STITCH)
    if draw(ONE_IN[5]) == 0:
        return Event(f"g{index}", draw(PICK_ID), GROUP, t, source="segment")
    props: dict[str, Any] = {PREVIOUS_ID: source}
    if call == IDENTIFY:
        props |= {CONTACT_BITS: draw(CONTACTS), CHANNELS_ON: draw(CHANNEL_LISTS),
                  CHANNELS_OFF: draw(CHANNEL_LISTS)}
    return Event(f"i{index}", target, call, t, source="segment", properties=props)


@st.composite
def identity_streams(draw: st.DrawFn, max_events: int = 30) -> list[Event]:
    """Events in time order over anonymous ids and users, one in four an identity call."""
    n = draw(st.integers(1, max_events))
    t = BASE + draw(st.integers(0, 7 * 86400))
    events: list[Event] = []
    for i in range(n):
        t += draw(GAP)
        if draw(ONE_IN[3]) == 0:
            events.append(identity_event(draw, i, t))
        else:  # (referrals name ann and bob too: their credits may go round merged ids)
            events.append(one_event(draw, i, t, draw(PICK_ID)))
    return events


def merged(h: Harness) -> dict[str, str]:
    """Where each merged id leads in the end."""
    out = {}
    for uid in h.processor.redirects:
        target = uid
        while target in h.processor.redirects:
            target = h.processor.redirects[target].target
        out[uid] = target
    return out


@st.composite
def with_duplicates(draw: st.DrawFn) -> tuple[list[Event], list[Event], list[int], int, float]:
    events = draw(identity_streams())
    entries: list[tuple[Event, bool]] = [(e, False) for e in events]
    copies = draw(st.integers(1, 10))
    for _ in range(copies):
        i = draw(st.integers(0, len(events) - 1))
        start = next(j for j, (e, c) in enumerate(entries) if e is events[i] and not c) + 1
        entries.insert(draw(st.integers(start, len(entries))), (events[i], True))
    first: dict[str, int] = {}
    positions = []
    for n, (e, copy) in enumerate(entries):
        redelivery = copy and draw(st.booleans())
        positions.append(first[e.event_id] if redelivery else n)
        first.setdefault(e.event_id, n)
    counted = sum(c and e.type != GROUP for e, c in entries)  # a group call is just ignored
    return events, [e for e, _ in entries], positions, counted, draw(HORIZON)


@PROPERTY_SETTINGS
@given(with_duplicates())
def test_duplicates_of_events_and_identity_calls_change_nothing(
        case: tuple[list[Event], list[Event], list[int], int, float]) -> None:
    events, stream, positions, copies, horizon = case
    clean = finish(run(events, positions=list(range(len(events)))), events, horizon)
    noisy = finish(run(stream, positions=positions), events, horizon)
    assert noisy.duplicates - clean.duplicates == copies
    assert snapshots(noisy) == snapshots(clean)
    assert merged(noisy) == merged(clean)
    assert noisy.alerts == clean.alerts and noisy.transitions == clean.transitions
    assert noisy.rejected == clean.rejected == []


@st.composite
def shuffled(draw: st.DrawFn) -> tuple[list[Event], list[Event], Settings, float]:
    events = draw(identity_streams())
    lateness = draw(st.sampled_from([600.0, 86400.0, 3 * 86400.0]))
    jitter = [draw(st.floats(0, 0.999)) * lateness for _ in events]
    order = sorted(range(len(events)), key=lambda i: (events[i].occurred_at + jitter[i], i))
    return events, [events[i] for i in order], Settings().with_overrides(
        allowed_lateness_seconds=lateness), draw(HORIZON)


@PROPERTY_SETTINGS
@given(shuffled())
def test_disorder_within_the_lateness_ends_every_id_in_the_same_user(
        case: tuple[list[Event], list[Event], Settings, float]) -> None:
    events, arrival, settings, horizon = case
    in_order = finish(run(events, settings), events, horizon)
    disordered = finish(run(arrival, settings), events, horizon)
    assert disordered.rejected == []
    hypothesis.event(f"stitches: {sorted(set(in_order.stitches))}")
    assert compared(disordered) == compared(in_order)
    assert merged(disordered) == merged(in_order)
    for record in (*disordered.alerts, *disordered.transitions,
                   *snapshots(disordered).values()):
        validate(record)
