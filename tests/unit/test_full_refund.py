"""A refund that names its order but no amount: the whole order, at the amount journey
logged for it (Segment's full refund, an `Order Refunded` with only the order id)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import schemas
from streams.core import canonical, identity
from streams.core.apply import apply_event
from streams.core.decode import decode
from streams.core.event import Event
from streams.core.logs import held_entries, key_of
from streams.core.state import RECORD_FIELDS, UserState
from streams.core.user_logs import HELD_REFUND_CAP, ORDER_LOG_CAP
from streams.settings import Settings
from tests.support.inputs import event, line, rejected, track
from tests.support.refunds import (
    REFERENCE,
    canonical_order,
    canonical_refund,
    folded,
    segment_order,
    segment_refund,
)

DAY = 86400.0


@pytest.mark.parametrize("key", ["order_id", "orderId"])  # the v2 key and the v1 one
def test_a_segment_full_refund_lowers_net_spend_by_the_order(key: str) -> None:
    order, other = segment_order("A-100", 40.0), segment_order("A-200", 25.0, "m-other")
    refund = segment_refund(**{key: "A-100"})
    assert refund.type == "refund" and refund.amount is None and refund.order_id == "A-100"
    s = folded(order, other, refund).state("u-1")
    assert (s.orders, s.refunds) == (2, 1)
    assert s.refunded == pytest.approx(40.0)
    assert s.monetary == pytest.approx(25.0)
    assert s.net_spend_90d(refund.occurred_at) == pytest.approx(25.0)


@pytest.mark.parametrize("nulls", [{"currency": None}, {"amount": None},
                                   {"amount": None, "currency": None}])
def test_a_segment_full_refund_with_null_amount_or_currency_is_still_one(
        nulls: dict[str, None]) -> None:
    refund = segment_refund(order_id="A-100", **nulls)  # null says nothing, as on an order
    assert refund.amount is None and refund.order_id == "A-100"
    s = folded(segment_order("A-100", 40.0), refund).state("u-1")
    assert s.refunded == pytest.approx(40.0) and s.monetary == pytest.approx(0.0)


def test_a_canonical_refund_naming_only_its_order_refunds_the_whole_order() -> None:
    refund = canonical_refund(order_id="o-7")
    assert refund.amount is None and refund.currency is None
    s = folded(canonical_order("o-7", 59.9), refund).state("u-1")
    assert (s.orders, s.refunds) == (1, 1)
    assert s.refunded == pytest.approx(59.9)
    assert s.monetary == 0.0
    assert s.net_spend_90d(refund.occurred_at) == 0.0


def test_a_full_refund_is_the_explicit_refund_of_the_logged_amount() -> None:
    """Same event ids, so the states may be compared whole."""
    order = canonical_order("o-7", 59.9)
    full = folded(order, canonical_refund(order_id="o-7")).state("u-1")
    explicit = folded(order, canonical_refund(amount=59.9, currency="EUR",
                                              order_id="o-7")).state("u-1")
    assert full.to_list() == explicit.to_list()


def test_a_full_refund_of_an_unknown_order_counts_and_moves_no_spend() -> None:
    order = canonical_order("o-7", 59.9)
    before = folded(order).state("u-1")
    refund = canonical_refund(order_id="o-unknown")
    s = folded(order, refund).state("u-1")
    assert s.refunds == 1 and s.refunded == 0.0
    assert s.monetary == pytest.approx(before.monetary) == pytest.approx(59.9)
    assert s.spend_by_day() == before.spend_by_day()


def _money(s: UserState) -> tuple[Any, ...]:
    return (s.orders, s.refunds, s.refunded, s.monetary, s.gross_spend, s.spend_by_day(),
            s.held_refunds)


@pytest.mark.parametrize("order_at", ["2026-03-05T09:00:00Z", "2026-03-05T10:00:00Z"])
def test_a_full_refund_that_comes_before_its_order_is_settled_when_the_order_comes(
        order_at: str) -> None:
    """Arrival order does not matter (a live worker takes events as they arrive, a
    replay in time order): the order stamped before or after its refund, within the
    allowed lateness."""
    order = canonical_order("o-7", 59.9, at=order_at)
    refund = canonical_refund(order_id="o-7")
    early = folded(refund)
    held = early.state("u-1")
    assert (held.refunds, held.refunded, held.monetary) == (1, 0.0, 0.0)
    assert held.held_refunds  # waiting for o-7
    first, second = folded(refund, order), folded(order, refund)
    assert not first.rejected and not second.rejected
    a, b = first.state("u-1"), second.state("u-1")
    assert _money(a) == _money(b)
    assert (a.orders, a.refunds, a.held_refunds) == (1, 1, b"")
    assert a.refunded == pytest.approx(59.9) and a.monetary == 0.0


def test_a_held_refund_outlives_a_restart() -> None:
    """Held in the state's record (the table's changelog), as hex digests and times."""
    h = folded(canonical_refund(order_id="o-7"))
    record = orjson.loads(orjson.dumps(h.state("u-1").to_list()))
    held = record[RECORD_FIELDS.index("held_refunds")]
    assert held[0] == key_of("o-7").hex() and len(held[1]) == 1
    back = UserState.from_list(record)
    assert back == h.state("u-1")
    apply_event(back, canonical_order("o-7", 20.0), Settings())
    assert (back.refunded, back.monetary, back.held_refunds) == (20.0, 0.0, b"")


def test_a_refund_held_on_one_profile_settles_against_the_order_of_the_other() -> None:
    """An anonymous profile's full refund of an order its user made signed in: the
    merge settles it, as one profile would have."""
    settings = Settings()
    anon, user = UserState("a", 0.0, 0.0, 0.0), UserState("u", 0.0, 0.0, 0.0)
    lost = canonical_refund(event_id="r-2", order_id="o-lost")
    apply_event(anon, canonical_refund(order_id="o-7"), settings)
    apply_event(anon, lost, settings)
    apply_event(user, canonical_order("o-7", 30.0), settings)
    identity.merge_into(user, anon)
    assert (user.orders, user.refunds, user.refunded, user.monetary) == (1, 2, 30.0, 0.0)
    assert held_entries(user.held_refunds) == [(key_of("o-lost"), lost.occurred_at)]


def test_only_the_newest_held_refunds_are_kept() -> None:
    refunds = [canonical_refund(event_id=f"r-{i}", order_id=f"o-{i}")
               for i in range(HELD_REFUND_CAP + 2)]
    s = folded(*refunds).state("u-1")
    assert len(held_entries(s.held_refunds)) == HELD_REFUND_CAP
    assert held_entries(s.held_refunds)[0][0] == key_of("o-2")  # o-0 and o-1 let go
    late = folded(*refunds, *(canonical_order(o, amount, event_id=o, at="2026-03-05T09:40:00Z")
                              for o, amount in (("o-0", 5.0), ("o-5", 7.0)))).state("u-1")
    assert (late.refunds, late.refunded, late.monetary) == (HELD_REFUND_CAP + 2, 7.0, 5.0)


def test_a_full_refund_of_an_order_gone_from_the_bounded_log_refunds_nothing() -> None:
    assert ORDER_LOG_CAP < 60
    orders = [canonical_order(f"o-{i}", 10.0, event_id=f"o-evt-{i}",
                              at=f"2026-02-01T10:{i:02d}:00Z")
              for i in range(ORDER_LOG_CAP + 1)]
    oldest, newest = (canonical_refund(event_id=f"r-{o}", order_id=o)
                      for o in ("o-0", f"o-{ORDER_LOG_CAP}"))
    s = folded(*orders, oldest).state("u-1")
    assert (s.refunds, s.refunded) == (1, 0.0)
    s = folded(*orders, newest).state("u-1")
    assert (s.refunds, s.refunded) == (1, 10.0)


def test_a_refund_with_neither_amount_nor_order_is_a_dead_letter() -> None:
    for props in ({}, {"currency": "EUR"}):
        got = rejected(decode(line(event(type="refund", properties=props))), "missing_field")
        assert got.message == "missing field: " + canonical.REFUND_NEEDS
        assert "amount" in got.message and "order's id" in got.message
    got = rejected(decode(line(event(type="refund"))), "missing_field")
    assert "properties.amount or properties.order_id" in got.message
    for props in ({}, {"currency": "EUR"}, {"order_id": ""}):
        got = rejected(decode(line(track("Order Refunded", **props))), "missing_field")
        assert "properties.total" in got.message and "order's id" in got.message


def test_an_amount_still_needs_its_currency() -> None:
    got = rejected(decode(line(event(type="refund", properties={
        "amount": 5, "order_id": "o-7"}))), "missing_field")
    assert got.message == "missing field properties.currency"


def test_a_segment_refund_that_states_an_amount_is_not_a_full_refund() -> None:
    """A partial refund stays partial; one whose amount cannot be read stays a dead letter."""
    assert segment_refund(order_id="A-100", total=12).amount == 12.0
    for props in ({"products": [{"name": "no price"}]}, {"amount": 5}):
        rejected(decode(line(track("Order Refunded", order_id="A-100", **props))),
                 "missing_field")


REFUND = {"event_id": "e-1", "user_id": "u-1", "type": "refund",
          "occurred_at": "2026-03-05T09:30:00Z"}


@pytest.mark.parametrize("props, valid", [
    ({"amount": 5, "currency": "EUR"}, True),  # as before
    ({"amount": 5, "currency": "EUR", "order_id": "o"}, True),
    ({"order_id": "o"}, True),  # the full refund
    ({"order_id": "o", "currency": "EUR"}, True),
    ({"amount": 5}, False),
    ({"amount": 5, "order_id": "o"}, False),  # an amount without its currency
    ({"currency": "EUR"}, False),
    ({}, False),
    ({"order_id": ""}, False),
])
def test_the_schema_takes_a_refund_with_an_amount_or_an_order(props: dict[str, Any],
                                                               valid: bool) -> None:
    obj = {**REFUND, "properties": props}
    assert schemas.is_valid("user-event", obj) is valid
    assert REFERENCE.is_valid(obj) is valid
    assert isinstance(decode(line(obj)), Event) is valid


def test_the_fast_path_reads_the_refund_rule() -> None:
    rule = canonical._RULES["refund"]
    assert rule is not None  # not left to the validator alone
    assert rule.holds({"order_id": "o"}) and rule.holds({"amount": 1, "currency": "EUR"})
    assert not rule.holds({"currency": "EUR"}) and not rule.holds({"amount": 1})


@pytest.mark.parametrize("edit", [
    lambda inner: inner.update(minProperties=1),  # a keyword the fast path does not know
    lambda inner: inner["anyOf"].append({"required": ["amount"], "maxProperties": 3}),
    lambda inner: inner.pop("then"),  # an if without its then
])
def test_a_refund_rule_of_another_shape_is_left_to_the_validator(edit: Any) -> None:
    doc = schemas.load("user-event")  # a fresh copy
    branch = next(b for b in doc["allOf"]
                  if b["if"]["properties"]["type"].get("const") == "refund")
    edit(branch["then"]["properties"]["properties"])
    assert canonical._type_rules(doc)["refund"] is None


def test_the_refund_is_at_its_own_time() -> None:
    refund = canonical_refund(order_id="o-7")
    s = folded(canonical_order("o-7", 59.9), refund).state("u-1")
    day = int(refund.occurred_at // DAY)
    assert dict(s.spend_by_day())[day] == pytest.approx(-59.9)
