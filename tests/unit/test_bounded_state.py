"""Per-user state stays bounded, however long a user's history grows.

One user with a pathological history (tens of thousands of events of every kind, with
the longest ids the input contract allows) goes through the partition processor. Every
collection in :class:`UserState` must have a cap, the caps must hold, and the encoded
state (the table's value, one changelog record per touched user and batch) must stop
growing once the caps are reached. The per-event cost over the history is printed, not
asserted: speed belongs in bench/overload.py.
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from agents.kafka import codec
from streams.core import event as ev
from streams.core.alert_ref import AlertRef
from streams.core.event import Event
from streams.core.outputs import Outputs
from streams.core.packed import PackedFloat, Section
from streams.core.processor import PartitionProcessor
from streams.core.sparse import SparseFields
from streams.core.state import CHANNELS, RECORD_FIELDS, UserState
from streams.core.user_logs import ALERT_LOG_CAP
from streams.settings import Settings
from streams.testing import CAPS, MAX_EVENT_ID, MAX_ID, state_ceiling

BASE = 1_767_225_600.0  # 2026-01-01T00:00Z
DAY = 86400.0
# Checkpoints at N and 2N: every cap is reached long before N (the caps are tens of
# entries; N is tens of thousands of events).
N = 50_000
# Counters and sums gain digits as a history grows (orders 6250 -> 12500, sums, offsets):
# that is the only growth allowed between N and 2N events.
DIGITS_SLACK = 64
SAMPLE = 50  # events between two readings of the encoded size (coprime to KINDS' period)

SCALARS = (int, float, bool, str, type(None))


def _leaf_types(hint: Any) -> list[Any]:
    """``int | None`` -> [int, NoneType]; ``list[str]`` -> [list[str]]."""
    if get_origin(hint) in (Union, types.UnionType):
        return [t for arg in get_args(hint) for t in _leaf_types(arg)]
    return [hint]


def _collections() -> dict[str, Any]:
    """UserState fields (each of its record) whose type is anything but a scalar (list,
    dict, set, ...). Its sparse fields count one by one (``sparse`` is a fixed set of
    fields, not a collection), and so do its logs (``packed`` holds them and floats)."""
    hints = get_type_hints(UserState) | get_type_hints(SparseFields)
    for n, v in vars(UserState).items():
        if isinstance(v, Section):
            hints[n] = bytes
        elif isinstance(v, PackedFloat):
            hints[n] = float
        elif isinstance(v, AlertRef):
            hints[n] = str | None
    return {n: hints[n] for n in RECORD_FIELDS
            if any(t not in SCALARS for t in _leaf_types(hints[n]))}


def test_every_per_user_collection_has_a_cap() -> None:
    found = _collections()
    uncapped = sorted(set(found) - set(CAPS))
    assert not uncapped, (f"UserState fields {uncapped} hold collections without a declared "
                          "cap: bound them in streams/core/state.py and list them in CAPS "
                          "(streams/testing.py)")
    assert set(CAPS) <= set(found), f"CAPS names fields UserState no longer has: {CAPS.keys()}"
    for name, hint in found.items():
        assert hint is bytes or get_origin(hint) is tuple, \
            f"{name}: {hint} (only capped packed logs or tuples are expected)"


# --- the pathological history ----------------------------------------------------------------

def _long(text: str, width: int = MAX_ID) -> str:
    """An id padded to the longest the contract accepts."""
    return text.ljust(width, "~")


POISON = _long("poison")
# one of everything a user can do, purchases twice as often as the rest
KINDS = (ev.PAGE_VIEW, ev.PURCHASE, ev.SESSION_START, ev.PRODUCT_VIEW, ev.REFUND, ev.REFERRAL,
         ev.SHARE, ev.ADD_TO_CART, ev.REVIEW, ev.SIGNUP, ev.UNSUBSCRIBE, ev.RESUBSCRIBE,
         ev.COUPON_REDEEMED, ev.SEARCH, ev.PURCHASE, ev.WISHLIST_ADD, ev.CHECKOUT_STARTED,
         ev.MESSAGE_OPENED, ev.OTHER)
BURST = 5000  # events per burst of activity; a silence of SILENCE_DAYS follows each
SILENCE_DAYS = 60.0  # long enough for decline, churn and their alerts every time


@dataclass
class Run:
    processor: PartitionProcessor
    store: dict[str, UserState]
    out: Outputs
    purchases: int = 0  # distinct orders sent for POISON
    duplicates_sent: int = 0
    duplicates: int = 0
    alerts: int = 0

    def feed(self, e: Event, position: int | None) -> None:
        self.processor.process(e, self.out, position=position)
        while self.out.feedback:  # referral credits, as the repartition hop delivers them
            self.processor.process(self.out.feedback.pop(), self.out, feedback=True)
        self.alerts += sum(a["user_id"] == POISON for a in self.out.alerts)
        self.duplicates += self.out.duplicates
        self.out.clear()


def _poison_events(count: int) -> Iterator[tuple[Event, list[Event]]]:
    """POISON's history in time order, each with the events of other users that go with
    it (a user POISON referred signs up and buys: a credit for POISON)."""
    t = BASE
    for i in range(count):
        t += SILENCE_DAYS * DAY if i and i % BURST == 0 else 60.0
        kind = KINDS[i % len(KINDS)]
        kw: dict[str, Any] = {}
        props: dict[str, Any] = {}
        others: list[Event] = []
        if kind == ev.PURCHASE:
            kw = {"amount": 10.0 + i % 7, "currency": "EUR", "order_id": _long(f"o{i}")}
        elif kind == ev.REFUND:
            kw = {"amount": 1.5, "currency": "EUR", "order_id": _long(f"o{i - 3}")}
            if i // len(KINDS) % 2:  # a full refund of an order that never comes: held
                kw = {"order_id": _long(f"never{i}")}
        elif kind == ev.REFERRAL:
            friend = _long(f"friend{i}")
            kw = {"referred_user_id": friend}
            if i % 7 == 0:  # some of them sign up through POISON and buy
                others = [
                    Event(_long(f"fs{i}", MAX_EVENT_ID), friend, ev.SIGNUP, t + 1,
                          properties={"referred_by": POISON}),
                    Event(_long(f"fp{i}", MAX_EVENT_ID), friend, ev.PURCHASE, t + 2,
                          amount=5.0, currency="EUR", order_id=_long(f"fo{i}"))]
        elif kind == ev.REVIEW:
            kw = {"rating": 1 + i % 5}
        elif kind in (ev.UNSUBSCRIBE, ev.RESUBSCRIBE, ev.MESSAGE_OPENED):
            kw = {"channel": CHANNELS[i % len(CHANNELS)]}
        elif kind == ev.SIGNUP:  # a signup again and again, each naming another referrer
            props = {"consent": list(CHANNELS[: 1 + i % len(CHANNELS)]),
                     "referred_by": _long(f"referrer{i}"), "timezone": "Europe/Berlin"}
        yield (Event(_long(f"e{i}", MAX_EVENT_ID), POISON, kind, t, utc_offset_min=60,
                     properties=props, **kw), others)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _check_caps(state: UserState, settings: Settings) -> None:
    for name, cap in CAPS.items():
        held = len(getattr(state, name))
        assert held <= cap(settings), f"{name} holds {held} entries, cap {cap(settings)}"
    longest = max(len(s) for f in fields(UserState) for s in _strings(getattr(state, f.name)))
    assert longest <= max(MAX_ID, MAX_EVENT_ID)


def _size(state: UserState) -> int:
    return len(codec.dumps(state))  # the bytes of one table value / changelog record


def test_a_pathological_history_keeps_one_users_state_bounded() -> None:
    settings = Settings()
    store: dict[str, UserState] = {}
    run = Run(PartitionProcessor(settings, store), store, Outputs())
    # the largest encoded size seen in each half of the history, sampled every SAMPLE
    # events: the ids in the dedupe window vary in length (referral credits have short
    # ones), so single readings differ by the window's mix, maxima by counter digits only
    largest = {1: 0, 2: 0}
    lap: dict[int, float] = {}  # POISON's events done -> seconds spent applying them
    spent = 0.0
    recent: list[Event] = []
    position = 0
    for i, (event, others) in enumerate(_poison_events(2 * N), start=1):
        started = time.perf_counter()
        run.feed(event, position)
        spent += time.perf_counter() - started
        position += 1
        for other in others:
            run.feed(other, position)
            position += 1
        run.purchases += event.type == ev.PURCHASE
        recent = [*recent[-9:], event]
        if i % 997 == 0:  # a producer retry of a recent event: same id, no position
            run.feed(recent[0], None)
            run.duplicates_sent += 1
        if i % SAMPLE == 0 and i > N // 2:
            half = 1 if i <= N else 2
            largest[half] = max(largest[half], _size(store[POISON]))
        if i % (N // 5) == 0:
            lap[i] = spent
            _check_caps(store[POISON], settings)
    state = store[POISON]

    # every cap was reached, so the sizes below are past the point of growth; spend_days
    # is bounded by a span of days (90 days of purchases in a row fill it), which this
    # history's 60-day silences never let it reach: it holds the same days in both halves
    for name, cap in CAPS.items():
        if name != "spend_days":
            assert len(getattr(state, name)) == cap(settings), name
    assert largest[2] - largest[1] <= DIGITS_SLACK, largest
    assert largest[2] <= state_ceiling(settings), (largest, state_ceiling(settings))
    # nothing was lost or counted twice while the logs rolled over
    assert state.orders == run.purchases
    assert run.duplicates == run.duplicates_sent
    assert state.refunds == sum(1 for i in range(2 * N) if KINDS[i % len(KINDS)] == ev.REFUND)
    assert state.referred_converted == sum(
        1 for i in range(2 * N) if KINDS[i % len(KINDS)] == ev.REFERRAL and i % 7 == 0)
    assert run.alerts >= ALERT_LOG_CAP and state.alerts_sent == run.alerts
    # the partition's own structures hold one entry per user, not per event
    proc = run.processor
    assert len(proc.index) <= len(store)
    assert len(proc.index._heap) <= 2 * len(proc.index) + 64 + 1  # compacted as it goes
    assert len(proc.sample) <= settings.population_sample_size

    # per-event cost early and late in the history (printed, not asserted): it includes
    # the partition's own work falling due at POISON's event times (timers of the
    # referred users, population re-fits), which grows with the partition, not the history
    tenth = N // 5
    first, last = lap[tenth], lap[2 * N] - lap[2 * N - tenth]
    print(f"\npathological user: {2 * N} events (+{run.duplicates_sent} retries, "
          f"{state.referred_converted} referral credits from {len(store) - 1} other users); "
          f"encoded state at most {largest[1]} B over events {N // 2}-{N}, {largest[2]} B "
          f"over {N}-{2 * N} (ceiling from the caps {state_ceiling(settings)} B); its "
          f"events/s: first {tenth} {tenth / first:,.0f}, last {tenth} "
          f"{tenth / last:,.0f} (last/first {first / last:.2f})")


def test_the_dedupe_window_is_what_scales_a_users_state() -> None:
    """The dedupe window is the setting that scales the state: the encoded size follows
    it linearly (one digest per entry, 16 hex digits in a record, however long the ids)
    and not the history's length."""
    sizes = {}
    for window in (8, 64):
        settings = Settings().with_overrides(dedupe_window=window)
        store: dict[str, UserState] = {}
        run = Run(PartitionProcessor(settings, store), store, Outputs())
        for position, (event, _) in enumerate(_poison_events(4000)):
            run.feed(event, position)
        assert len(store[POISON].recent_ids) == 8 * window  # an 8-byte digest per id
        sizes[window] = _size(store[POISON])
    per_id = (sizes[64] - sizes[8]) / (64 - 8)
    assert per_id == 16, sizes
