"""Generated event streams for the core's property tests (hypothesis), and the runs they
are checked by: a Harness fed a stream, finished some days after its last event, its
snapshots compared and its outputs validated against schemas/. The plain-event properties
(tests/unit/test_properties.py) and the identity-stitching ones
(tests/unit/test_identity_properties.py) draw from the same strategies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

import schemas
from streams.core.event import EVENT_TYPES, Event
from streams.core.state import CHANNELS
from streams.settings import Settings
from streams.testing import Harness

BASE = 1_767_225_600.0  # 2026-01-01T00:00Z
DAY = 86400.0
USERS = ("ann", "bob", "cy")
ZONES = ("Europe/Berlin", "Asia/Kolkata", "America/Los_Angeles", "Not/A_Zone")

# gaps between consecutive events: mostly within a session or a day (so disorder within the
# allowed lateness can swap them), sometimes long enough for every stage
GAPS = (0.0, 60.0, 600.0, 3600.0, 0.3 * DAY, 0.9 * DAY, 2 * DAY, 9 * DAY, 40 * DAY, 100 * DAY)

# the snapshot fields that must agree whatever order the events arrived in
COMPARED = ("lifecycle_stage", "churn_risk", "p_alive", "recency_days", "frequency",
            "monetary", "orders", "value_tier", "role", "funnel_stage", "last_event_at")

# No shrink phase: shrinking a failing 30-event stream can take minutes, and the suite must
# stay fast while a known bug is open. Failures print the (unshrunk) example; the
# @example cases in the tests are the minimal ones found so far.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
PROPERTY_SETTINGS = hyp_settings(max_examples=120, deadline=None, phases=NO_SHRINK,
                                 suppress_health_check=[HealthCheck.too_slow])


# --- generated streams -----------------------------------------------------------------------
# Strategies are built once: building them inside the draw loop dominated the run time.

KINDS = st.sampled_from(EVENT_TYPES)
PICK_USER = st.sampled_from(USERS)
GAP = st.sampled_from(GAPS)
AMOUNT = st.one_of(st.none(), st.integers(0, 50_000).map(lambda cents: cents / 100))
ORDER_NO = st.integers(-1, 3)  # -1: no order id; 0..3: ids that repeat within a user
RATING = st.one_of(st.none(), st.integers(1, 5))
CHANNEL = st.sampled_from(CHANNELS)
CONSENT = st.lists(CHANNEL, unique=True)
ZONE = st.sampled_from(ZONES)
OFFSET = st.sampled_from([None, 0, 60, -300, 330, 840, -720])
FLAG = st.booleans()
ONE_IN = {n: st.integers(0, n - 1) for n in (3, 5, 6, 7)}
FRACTION = st.floats(0, 0.999)
JUMP = st.floats(-DAY, 60 * DAY)  # where a clock tick lands, from an event
SKEW = st.one_of(st.none(), st.floats(-600, 600))  # receive time minus event time
TICKS = st.integers(0, 3)


def one_event(draw: st.DrawFn, index: int, t: float, user: str) -> Event:
    kind = draw(KINDS)
    fields: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    if kind in ("purchase", "refund"):
        fields["amount"] = draw(AMOUNT)
        order_no = draw(ORDER_NO)
        fields["order_id"] = None if order_no < 0 else f"{user}-o{order_no}"
        fields["currency"] = "EUR"
    elif kind == "review":
        fields["rating"] = draw(RATING)
    elif kind in ("unsubscribe", "resubscribe", "message_opened", "message_clicked"):
        fields["channel"] = draw(CHANNEL)
    elif kind == "referral":
        fields["referred_user_id"] = draw(PICK_USER)
    elif kind == "signup":
        if draw(FLAG):
            properties["consent"] = draw(CONSENT)
        if draw(FLAG):
            properties["referred_by"] = draw(PICK_USER)
    if draw(ONE_IN[6]) == 0:
        properties["timezone"] = draw(ZONE)
    return Event(event_id=f"e{index}", user_id=user, type=kind, occurred_at=t,
                 utc_offset_min=draw(OFFSET), properties=properties, source="test", **fields)


@st.composite
def streams(draw: st.DrawFn, max_events: int = 30) -> list[Event]:
    """Events in time order; gaps from seconds to months so every stage is reachable."""
    n = draw(st.integers(1, max_events))
    t = BASE + draw(st.integers(0, 7 * 86400))
    events: list[Event] = []
    user = draw(PICK_USER)
    for i in range(n):
        t += draw(GAP)
        if draw(ONE_IN[3]) == 0:  # users come in sessions: often the same one again
            user = draw(PICK_USER)
        events.append(one_event(draw, i, t, user))
    return events


def run(events: list[Event], settings: Settings | None = None,
        positions: list[int] | None = None) -> Harness:
    h = Harness(settings or Settings())
    for i, e in enumerate(events):
        h.send(e, position=None if positions is None else positions[i])
    return h


def finish(h: Harness, events: list[Event], horizon_days: float = 200.0) -> Harness:
    return h.advance_to(max(e.occurred_at for e in events) + horizon_days * DAY)


HORIZON = st.sampled_from([0.0, 0.2, 3.0, 10.0, 40.0, 200.0])  # days after the last event


def snapshots(h: Harness) -> dict[str, dict[str, Any]]:
    return {u: h.snapshot(u) for u in sorted(h.store)}


def compared(h: Harness) -> dict[str, tuple[Any, ...]]:
    return {u: tuple(s[k] for k in COMPARED) for u, s in snapshots(h).items()}


def validate(record: dict[str, Any]) -> None:
    """Validate against the file the record names: ``journey.<name>/<version>``."""
    ident = record["schema"]
    assert ident.startswith("journey.") and "/" in ident, ident
    name, version = ident[len("journey."):].split("/")
    if not (schemas.SCHEMA_DIR / f"{name}.v{version}.json").is_file():
        pytest.fail(f"schemas/{name}.v{version}.json is missing (record {ident})")
    schemas.validator(name, int(version))(record)
