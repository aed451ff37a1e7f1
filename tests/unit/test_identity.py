"""Segment identity: identify traits, and stitching an anonymous profile into its user.

Scenarios run under the ``driver`` fixture (the Harness, Replay and the worker's
pipeline, each held against the Harness), with Segment calls as Segment's libraries send
them. With four partitions the anonymous id and the user are on different partitions,
so the stitch and the merge cross the repartition topic in the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.testing.segment_stream import segment_stream
from streams.core import identity
from streams.core.decode import decode
from streams.core.event import Event
from streams.core.identity import MERGE, STITCH, Redirect
from streams.core.logs import key_of
from streams.core.outputs import Outputs
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.core.state import RECORD_FIELDS, UserState
from streams.core.timefmt import rfc3339
from streams.replay.engine import Replay
from streams.settings import Settings
from streams.synth import SynthConfig, generate
from streams.testing import HarnessFactory, at, make_event
from tests.support.drivers import Driver, DriverFactory
from tests.support.segment_calls import delivered_call, python_call

ANON, USER, OTHER = "a-9c1", "u-42", "u-7"  # partitions 0, 1 and 3 of 4
PARTITIONS = [1, 4]


def test_the_ids_are_on_different_partitions() -> None:
    assert len({partition_for(u, 4) for u in (ANON, USER, OTHER)}) == 3


def browse(anon: str, day: float) -> list[dict[str, Any]]:
    """An anonymous visit: a page, a product, the cart (funnel step "cart")."""
    return [delivered_call("page", at(day), anonymous_id=anon, name="Home"),
            delivered_call("track", at(day + 0.01), anonymous_id=anon, event="Product Viewed",
                           properties={"product_id": "p-1"}),
            delivered_call("track", at(day + 0.02), anonymous_id=anon, event="Product Added",
                           properties={"product_id": "p-1", "price": 20}),
            delivered_call("group", at(day + 0.03), anonymous_id=anon, groupId="acme")]


def order(day: float, order_id: str, amount: float, *, user_id: str | None = None,
          anonymous_id: str | None = None) -> dict[str, Any]:
    return python_call("track", at(day), user_id=user_id, anonymous_id=anonymous_id,
                       event="Order Completed",
                       properties={"order_id": order_id, "revenue": amount, "currency": "EUR"})


def alias(d: Driver, previous: str, user: str, day: float) -> Driver:
    """An alias call (analytics-python's) and the ticks that carry its stitch through."""
    d.send_segment(python_call("alias", at(day), user_id=user, previousId=previous))
    return tick(d, day)


def tick(d: Driver, day: float) -> Driver:
    """Bring every partition to ``day``: news from another partition (a stitch, an event
    forwarded from a merged id) waits for its partition's clock, live until the next
    tick, as referral credits do."""
    return d.advance_to(at(day))


# --- identify: traits --------------------------------------------------------------------------

def test_identify_sets_consent_reach_and_zone_and_is_not_activity(driver: DriverFactory) -> None:
    d = driver()
    d.send_segment(python_call("page", at(0), user_id=USER, name="Home"))
    d.send_segment(python_call(
        "identify", at(3), user_id=USER,
        traits={"email": None, "phone": "+1 212 555 0100", "name": "Ada"},
        context={"timezone": "America/New_York",
                 "messaging_subscriptions": [{"key": "+12125550100", "type": "SMS",
                                              "status": "subscribed"}]}))
    snap = d.snapshot(USER)
    assert snap is not None and snap["consent"] == ["app_push", "sms"]  # no address: no email
    assert snap["last_event_at"] == "2026-01-04T00:00:00Z"
    d.advance_days(7.5)  # declining 7 days after the page view: the identify is not activity
    assert d.moves(USER)[-1] == ("new", "declining", "inactivity")
    [alert] = d.alerts
    assert alert["channels"] == ["app_push", "sms"]
    assert alert["send_window"]["utc_offset"] == "-05:00"


@pytest.mark.parametrize("traits, context, consent", [
    ({"unsubscribed": True}, {}, ["app_push"]),
    ({"unsubscribed": False}, {}, ["app_push", "email"]),
    ({"consent": ["sms", "fax"]}, {}, ["sms"]),
    ({"consent": ["email"], "unsubscribed": True}, {}, []),
    ({}, {"messaging_subscriptions": [{"type": "EMAIL", "status": "UNSUBSCRIBED"},
                                      {"type": "IOS_PUSH", "status": "UNSUBSCRIBED"},
                                      {"type": "SMS", "status": "DID_NOT_SUBSCRIBE"},
                                      {"type": "WHATSAPP", "status": "SUBSCRIBED"}]}, []),
    ({"email": "", "phone": 15550100}, {"messaging_subscriptions": [
        {"type": "SMS", "status": "SUBSCRIBED"}]}, ["app_push", "sms"]),
    ({"email": "ada@example.com", "name": "Ada"}, {}, ["app_push", "email"]),
])
def test_which_traits_decide_the_channels(harness: HarnessFactory, traits: dict[str, Any],
                                          context: dict[str, Any], consent: list[str]) -> None:
    h = harness()
    h.send(make_event(USER, "page_view", 0))
    got = decode(orjson.dumps(python_call("identify", at(1), user_id=USER, traits=traits,
                                          context=context)))
    assert isinstance(got, Event)
    h.send(got)
    assert h.snapshot(USER)["consent"] == consent
    assert "ada@example.com" not in repr(h.state(USER).to_list())  # no trait value is kept


def test_a_user_with_channels_consented_but_no_address_is_unreachable(
        harness: HarnessFactory) -> None:
    h = harness(default_consent=["email"])
    h.send(make_event(USER, "page_view", 0))
    got = decode(orjson.dumps(python_call("identify", at(1), user_id=USER,
                                          traits={"email": ""})))
    assert isinstance(got, Event)
    h.send(got).advance_days(8)
    assert h.alerts == [] and h.suppressed == [("churn_warning", "no_contact")]


# --- stitching -----------------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", PARTITIONS)
def test_identify_with_both_ids_merges_the_anonymous_profile(driver: DriverFactory,
                                                             partitions: int) -> None:
    d = driver(partitions=partitions)
    d.send_segment(*browse(ANON, 0))
    d.send_segment(delivered_call("identify", at(1), user_id=USER, anonymous_id=ANON,
                                  traits={"email": "ada@example.com"}))
    tick(d, 1)
    assert d.snapshot(ANON) is None and d.merged_into(ANON) == USER
    snap = d.snapshot(USER)
    assert snap is not None
    assert (snap["funnel_stage"], snap["first_seen_at"]) == ("cart", "2026-01-01T00:00:00Z")
    assert d.reference.stitches == ["merged"] and d.reference.ignored == ["group"]
    assert d.reference.processor.stage_counts() == {"new": 1}  # the visitor left the census
    d.advance_days(8)  # decline 7 days after the visit's last activity: the user's alone
    assert d.alert_types(ANON) == [] and d.alert_types(USER) == ["churn_warning"]


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_alias_merges_and_the_old_ids_later_events_go_to_the_user(driver: DriverFactory,
                                                                  partitions: int) -> None:
    d = driver(partitions=partitions)
    d.send_segment(*browse(ANON, 0))
    d.send_segment(python_call("page", at(0.5), user_id=USER, name="Account"))
    alias(d, ANON, USER, 1)
    late = delivered_call("track", at(0.6), anonymous_id=ANON, event="Product Viewed")
    d.send_segment(late, order(2, "o-1", 30.0, anonymous_id=ANON))  # from before, and after
    tick(d, 2)
    snap = d.snapshot(USER)
    assert snap is not None and (snap["orders"], snap["monetary"]) == (1, 30.0)
    assert d.snapshot(ANON) is None
    assert d.reference.stitches == ["merged", "redirected", "redirected"]


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_resent_calls_and_events_count_once(driver: DriverFactory, partitions: int) -> None:
    d = driver(partitions=partitions)
    visit = browse(ANON, 0)
    buy = order(0.5, "o-1", 10.0, anonymous_id=ANON)
    link = python_call("alias", at(1), user_id=USER, previousId=ANON)
    d.send_segment(*visit, buy, link)
    tick(d, 1)
    before = d.snapshot(USER)
    d.send_segment(buy, link, visit[1])  # producer retries, after the merge
    d.send_segment(order(1.5, "o-1", 10.0, user_id=USER))  # the same order, tracked twice
    d.send_segment(python_call("identify", at(1.6), user_id=USER, anonymous_id=ANON))
    tick(d, 1.6)
    after = d.snapshot(USER)
    assert before is not None and after is not None
    assert (after["orders"], after["monetary"]) == (before["orders"], before["monetary"]) \
        == (1, 10.0)


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_a_stitch_before_the_anonymous_profile_exists(driver: DriverFactory,
                                                      partitions: int) -> None:
    """The identify first: the anonymous id gets a redirect and no profile; its events,
    later ones and (within the allowed lateness) earlier ones, go to the user."""
    d = driver(partitions=partitions)
    d.send_segment(python_call("identify", at(1), user_id=USER, anonymous_id=ANON))
    tick(d, 1)
    assert d.reference.stitches == ["linked"] and d.merged_into(ANON) == USER
    d.send_segment(*browse(ANON, 1.5))
    d.send_segment(order(0.9, "o-1", 12.0, anonymous_id=ANON))
    tick(d, 1.53)
    snap = d.snapshot(USER)
    assert snap is not None and (snap["orders"], snap["funnel_stage"]) == (1, "purchased")
    assert d.snapshot(ANON) is None


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_a_merge_into_a_user_not_seen_yet(driver: DriverFactory, partitions: int) -> None:
    d = driver(partitions=partitions)
    d.send_segment(*browse(ANON, 0), order(0.1, "o-1", 5.0, anonymous_id=ANON))
    alias(d, ANON, OTHER, 1)
    snap = d.snapshot(OTHER)
    assert snap is not None and snap["first_seen_at"] == "2026-01-01T00:00:00Z"
    assert snap["orders"] == 1
    d.send_segment(order(3, "o-2", 7.0, user_id=OTHER))
    assert d.snapshot(OTHER)["orders"] == 2  # type: ignore[index]


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_chained_merges(driver: DriverFactory, partitions: int) -> None:
    """A -> B, then B -> C: everything ends at C, A's events go on through B."""
    d = driver(partitions=partitions)
    d.send_segment(*browse(ANON, 0), order(0.5, "o-1", 1.0, user_id=USER))
    alias(d, ANON, USER, 1)
    alias(d, USER, OTHER, 2)
    d.send_segment(order(3, "o-2", 2.0, anonymous_id=ANON), order(3.1, "o-3", 4.0,
                                                                  user_id=USER))
    tick(d, 3.1)
    assert (d.merged_into(ANON), d.merged_into(USER)) == (USER, OTHER)
    snap = d.snapshot(OTHER)
    assert snap is not None and (snap["orders"], snap["monetary"]) == (3, 7.0)
    assert snap["funnel_stage"] == "repeat"


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_a_referral_credit_for_a_merged_id_reaches_its_user(driver: DriverFactory,
                                                            partitions: int) -> None:
    d = driver(partitions=partitions)
    d.send(make_event("friend", "signup", 0, properties={"referred_by": ANON}))
    d.send_segment(python_call("page", at(0.1), anonymous_id=ANON, name="Home"))
    alias(d, ANON, USER, 1)
    d.send(make_event("friend", "purchase", 2, amount=3.0, currency="EUR", order_id="f-1"))
    tick(d, 2)
    tick(d, 2.01)  # the credit to the merged id, then on from there
    assert d.snapshot(USER)["funnel_stage"] == "aware"  # type: ignore[index]
    assert d.reference.state(USER).referred_converted == 1


# --- the processor's parts of a merge ----------------------------------------------------------

def test_every_field_of_a_users_state_is_kept_or_merged() -> None:
    assert set(identity.KEPT) | set(identity.MERGED) == set(RECORD_FIELDS)
    assert not set(identity.KEPT) & set(identity.MERGED)


def test_an_order_sent_under_both_ids_counts_once_at_its_earliest() -> None:
    t = UserState("u", 0.0, 0.0, 0.0)
    s = UserState("a", 0.0, 0.0, 0.0)
    for state, at_, amount in ((t, 7.0, 10.0), (s, 5.0, 10.0)):
        state.orders, state.gross_spend = 1, amount
        state.first_purchase_at = state.last_purchase_at = at_
        state.log_order(key_of("o-1"), at_, amount)
        state.log_purchase(at_, amount)
    s.orders, s.gross_spend, s.last_purchase_at = 2, 13.0, 9.0
    s.log_order(key_of("o-2"), 9.0, 3.0)
    s.log_purchase(9.0, 3.0)
    identity.merge_into(t, s)
    assert (t.orders, t.gross_spend) == (2, 13.0)
    assert (t.first_purchase_at, t.last_purchase_at) == (5.0, 9.0)
    assert t.purchases() == [(5.0, 10.0), (9.0, 3.0)]


def test_the_90_day_spend_of_both_profiles_counts_an_order_under_both_once() -> None:
    """The user's copy of o-1 on day 3, the anonymous profile's on day 1 (kept: the
    earliest), its own o-2 on day 2 and a refund of 1 that day."""
    day = 86400.0
    t = UserState("u", 0.0, 0.0, 0.0)
    s = UserState("a", 0.0, 0.0, 0.0)
    for state, at_ in ((t, 3 * day), (s, 1 * day)):
        state.orders, state.gross_spend = 1, 10.0
        state.first_purchase_at = state.last_purchase_at = at_
        state.log_order(key_of("o-1"), at_, 10.0)
        state.log_purchase(at_, 10.0)
        state.add_spend(at_, 10.0)
    s.orders, s.gross_spend, s.last_purchase_at = 2, 13.0, 2 * day
    s.log_order(key_of("o-2"), 2 * day, 3.0)
    s.log_purchase(2 * day, 3.0)
    s.add_spend(2 * day, 3.0)
    s.add_spend(2 * day, -1.0)
    identity.merge_into(t, s)
    assert [(d, a) for d, a in t.spend_by_day() if a] == [(1, 10.0), (2, 2.0)]
    assert t.net_spend_90d(3 * day) == 12.0


def test_an_opt_out_on_either_profile_holds_and_the_users_own_details_come_first() -> None:
    t, s = UserState("u", 0.0, 0.0, 0.0), UserState("a", 0.0, 0.0, 0.0)
    t.consent_mask, t.contact_bits = 0b0011, 0b0011
    s.consent_mask, s.contact_bits = 0b0110, 0b0101
    identity.merge_into(t, s)
    assert t.consent_mask == 0b0010
    assert t.contact_bits == 0b0111  # email from u (there), phone from a (absent)


def _news(p: PartitionProcessor, *events: Event) -> list[Event]:
    out = Outputs()
    for e in events:
        p.process(e, out, feedback=e.type in (STITCH, MERGE))
    return [e for e in out.feedback if e.type in (STITCH, MERGE)]


@pytest.mark.parametrize("order_", [(0, 1), (1, 0)])
def test_stitches_racing_round_a_loop_end_at_one_user(order_: tuple[int, int]) -> None:
    """A -> B and B -> A, each closing its id before the other's merge arrives (live, on
    two partitions): both merges go round to the smaller id, in either order."""
    p = PartitionProcessor(Settings(), {})
    _news(p, make_event("a", "page_view", 0), make_event("b", "purchase", 0.5, amount=2.0,
                                                           currency="EUR", order_id="o"))
    merges = [*_news(p, identity.stitch("a", "b", at(0.5))),
              *_news(p, identity.stitch("b", "a", at(0.5)))]
    assert [m.user_id for m in merges] == ["b", "a"]
    pending = [merges[i] for i in order_]
    while pending:
        pending = _news(p, pending.pop(0)) + pending
    assert set(p.store) == {"a"} and p.redirects["b"].target == "a"
    assert (p.store["a"].orders, p.store["a"].active_seen) == (1, True)
    assert p.census.stage_counts()["growing"] == 1 and sum(p.stage_counts().values()) == 1


def test_a_redirect_keeps_the_closed_profiles_dedupe() -> None:
    r = Redirect("u", 7, key_of("e1"))
    assert r.holds("e1", None) and r.holds("x", 7) and not r.holds("x", 8)
    r.remember("e2", 9, cap=2)
    assert Redirect.from_list(r.to_list()) == Redirect("u", 9, key_of("e1") + key_of("e2"))
    # a record written when the ids were kept as text
    assert Redirect.from_list(["u", 9, ["e1", "e2"]]) == Redirect.from_list(r.to_list())
    r.remember("e3", None, cap=2)
    assert r.recent_ids == key_of("e2") + key_of("e3")
    assert r.holds("e3", None) and not r.holds("e1", None)


# --- a whole storefront, as a Segment source sends it --------------------------------------

def _replayed(stream: list[dict[str, Any] | str], until: float) -> dict[str, dict[str, Any]]:
    events = sorted((e for e in (decode(orjson.dumps(x)) for x in stream if isinstance(x, dict))
                     if isinstance(e, Event)), key=lambda e: e.occurred_at)
    replay = Replay(Settings().with_overrides(partitions=4), until)
    replay.feed(events)
    assert replay.summary.dead_letters == {}
    end = replay.finish(until)
    # each store holds only ids of its own partition, merges and redirects included: the
    # replay routes a known id to the store that holds it
    for p, store in enumerate(replay.stores):
        assert store and all(partition_for(user_id, 4) == p for user_id in store), p
    return {s["user_id"]: s for s in replay.snapshots(end)}


def test_a_segment_source_gives_every_user_the_state_its_canonical_history_gives() -> None:
    """The same storefront history, once as canonical events under each user's id, once
    as a Segment source sends it: half the users browse anonymously until they buy, log in
    (identify with both ids, or alias), and now and then send under the anonymous id
    after that. Every user who logged in ends as the user its canonical history makes;
    one who never did is that user under the anonymous id. (Its contact channels, and so
    its alerts, are the identify traits' business.)"""
    history, _ = generate(SynthConfig(users=300, days=60, start=at(0), seed=23,
                                      duplicate_share=0.01))
    segment = list(segment_stream(history, seed=23))
    assert {c["type"] for c in segment if isinstance(c, dict)} >= {"identify", "alias", "group"}
    canonical, stitched = (_replayed(s, at(80)) for s in (history, segment))
    reach = ("user_id", "consent", "alerts_sent", "last_alert_id")
    fields_ = [f for f in canonical[next(iter(canonical))] if f not in reach]
    logged_in = {u for u in canonical if u in stitched}
    assert 200 < len(logged_in) < 300 and len(stitched) == len(canonical)
    for user, want in canonical.items():
        got = stitched[user if user in logged_in else f"anon-{user}"]
        assert {f: got[f] for f in fields_} == {f: want[f] for f in fields_}, user


RECORDED = Path(__file__).parents[1] / "support" / "recorded" / "analytics-python-2.4.0.jsonl"


def test_calls_recorded_from_analytics_python_are_taken_and_stitched() -> None:
    """What analytics-python 2.4.0 posted (``Client(host=<a local endpoint>,
    sync_mode=True)``, each message of its batches kept) for three users of
    tests/support/segment_stream: u000000 logs in by an identify with both ids, u000035
    by an alias, u000001 never browses anonymously; group calls too."""
    lines = RECORDED.read_bytes().splitlines()
    calls = [orjson.loads(line) for line in lines]
    assert {c["context"]["library"]["version"] for c in calls} == {"2.4.0"}
    assert any(c["anonymousId"] is None for c in calls)
    events = [decode(line) for line in lines]
    assert all(isinstance(e, Event) for e in events), [e for e in events
                                                      if not isinstance(e, Event)][:3]
    replay = Replay(Settings().with_overrides(partitions=4), None)
    replay.feed(sorted((e for e in events if isinstance(e, Event)),
                       key=lambda e: e.occurred_at))
    end = replay.finish(None)
    users = {s["user_id"]: s for s in replay.snapshots(end)}
    assert replay.summary.dead_letters == {}
    assert replay.summary.ignored == {"group": 3}
    assert set(users) == {"u000000", "u000035", "u000001"}  # no anonymous profile left
    assert replay.summary.stitches["merged"] == 2
    for user in ("u000000", "u000035"):  # the anonymous browsing came first
        first = min(e.occurred_at for e, c in zip(events, calls, strict=True)
                    if isinstance(e, Event) and c["anonymousId"] == f"anon-{user}")
        assert users[user]["first_seen_at"] == rfc3339(first), user
