"""The partition processor: idempotency, lateness, referrals, census, restore after a kill."""

from __future__ import annotations

import base64
import copy
import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from streams.core.context import PartitionContext
from streams.core.deadletter import PAYLOAD_CAP, dead_letter
from streams.core.event import Event
from streams.core.outputs import Outputs
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.core.state import UserState
from streams.settings import Settings
from streams.testing import BASE, DAY, Harness, HarnessFactory, at, make_event
from tests.support.drivers import DriverFactory


def frozen(h: Harness, user: str) -> list[Any]:
    return json.loads(json.dumps(h.state(user).to_list()))


# --- idempotency --------------------------------------------------------------------------


def test_the_same_event_twice_is_a_duplicate(harness: HarnessFactory) -> None:
    e = make_event("u", "purchase", 1, amount=10.0, order_id="o1")
    h = harness().send(e)
    before, outputs = frozen(h, "u"), (len(h.alerts), len(h.transitions))
    h.send(e)
    assert h.duplicates == 1
    assert frozen(h, "u") == before
    assert (len(h.alerts), len(h.transitions)) == outputs
    assert h.state("u").orders == 1


def test_a_resent_event_changes_nothing_under_every_driver(driver: DriverFactory) -> None:
    """A producer retry: the same event again, later, in a record of its own."""
    e = make_event("u", "purchase", 1, amount=10.0, currency="EUR", order_id="o1")
    d = driver().send(e, make_event("u", "page_view", 2))
    before, outputs = d.snapshot("u", at(3)), (len(d.alerts), len(d.transitions))
    d.send(e)
    assert d.snapshot("u", at(3)) == before and before is not None
    assert before["orders"] == 1 and before["monetary"] == 10.0
    assert (len(d.alerts), len(d.transitions)) == outputs


def test_a_redelivered_position_is_a_duplicate(harness: HarnessFactory) -> None:
    h = harness()
    h.send(make_event("u", "page_view", 1), position=5)
    before = frozen(h, "u")
    h.send(make_event("u", "purchase", 1.1, amount=3.0), position=5)
    h.send(make_event("u", "purchase", 1.2, amount=3.0), position=4)
    assert h.duplicates == 2
    assert frozen(h, "u") == before
    h.send(make_event("u", "purchase", 1.3, amount=3.0), position=6)
    assert h.state("u").orders == 1 and h.state("u").max_position == 6
    assert h.processor.applied_position == 6


def test_positions_are_per_user(harness: HarnessFactory) -> None:
    h = harness().send(make_event("a", "page_view", 1), position=9)
    h.send(make_event("b", "page_view", 1), position=3)  # another user: not a redelivery
    assert h.duplicates == 0 and "b" in h.store
    assert h.processor.applied_position == 9


def test_the_same_order_under_two_event_ids_counts_once(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 1, amount=25.0, order_id="A-1"),
                       make_event("u", "purchase", 1.01, amount=25.0, order_id="A-1"))
    assert h.duplicates == 0  # not the same event, but the same order
    assert (h.state("u").orders, h.state("u").monetary) == (1, 25.0)
    h.send(make_event("u", "purchase", 2, amount=25.0, order_id="A-2"))
    assert h.state("u").orders == 2


def test_the_same_order_under_two_ids_keeps_the_same_purchase_in_any_order(
        harness: HarnessFactory) -> None:
    """Which copy of a re-sent order is kept must not depend on which arrives first."""
    a = make_event("u", "purchase", 1.0, amount=10.0, order_id="A-1")
    b = make_event("u", "purchase", 1.01, amount=10.0, order_id="A-1")
    first, second = harness().send(a, b), harness().send(b, a)
    assert first.state("u").orders == second.state("u").orders == 1
    assert first.state("u").last_purchase_at == second.state("u").last_purchase_at


def test_a_refund_arriving_before_its_purchase_still_counts(harness: HarnessFactory) -> None:
    """Within the allowed lateness, a refund may overtake the purchase it refunds."""
    purchase = make_event("u", "purchase", 1.0, amount=5.70, order_id="o1")
    refund = make_event("u", "refund", 1.001, amount=3.37, order_id="o1")
    in_order = harness().send(purchase, refund)
    overtaken = harness().send(refund, purchase)
    assert in_order.state("u").monetary == pytest.approx(2.33)
    assert overtaken.state("u").monetary == pytest.approx(2.33)


def test_the_dedupe_window_is_bounded(harness: HarnessFactory) -> None:
    h = harness(dedupe_window=4)
    events = [make_event("u", "page_view", i * 0.01) for i in range(10)]
    h.send(*events)
    assert h.state("u").recent_ids == [e.event_id for e in events[-4:]]
    h.send(events[-1])
    assert h.duplicates == 1


# --- lateness and the future ------------------------------------------------------------


def test_too_late_beyond_allowed_lateness(harness: HarnessFactory) -> None:
    h = harness(allowed_lateness_seconds=DAY)
    h.send(make_event("a", "page_view", 10))
    late = make_event("b", "page_view", 9 - 1 / DAY)
    h.send(late)
    assert h.rejected == [("too_late", late.event_id)]
    assert "b" not in h.store
    h.send(make_event("b", "page_view", 9))  # exactly at the limit: accepted
    assert "b" in h.store and len(h.rejected) == 1


def test_late_within_lateness_is_applied(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 10, amount=5.0),
                       make_event("u", "purchase", 9.5, amount=7.0))
    s = h.state("u")
    assert (s.orders, s.first_purchase_at, s.last_purchase_at) == (2, at(9.5), at(10))
    assert h.processor.clock == at(10)


def test_future_timestamp_beyond_the_skew(harness: HarnessFactory) -> None:
    h = harness(max_future_skew_seconds=300.0)
    received = at(5)
    ahead = make_event("u", "page_view", 5 + 301 / DAY)
    h.send(ahead, received_at=received)
    assert h.rejected == [("future_timestamp", ahead.event_id)]
    assert "u" not in h.store and h.processor.clock == float("-inf")
    h.send(make_event("u", "page_view", 5 + 300 / DAY), received_at=received)
    assert "u" in h.store and len(h.rejected) == 1


def test_no_receive_time_means_no_future_check(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 5000))
    assert h.rejected == [] and h.processor.clock == at(5000)


def test_rejections_carry_a_message(harness: HarnessFactory) -> None:
    h = harness().send(make_event("a", "page_view", 10))
    out = Outputs()
    h.processor.process(make_event("a", "page_view", 1), out)
    rejected, = out.rejected
    assert rejected.reason == "too_late" and "lateness" in rejected.message
    assert out.applied == [] and out.touched == set()


# --- referrals ------------------------------------------------------------------------------


def refer(user: str, referrer: str, day: float) -> Event:
    return make_event(user, "signup", day, properties={"referred_by": referrer})


def test_referred_first_purchase_credits_the_referrer_once(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "page_view", 0), make_event("r", "referral", 0.5),
                       refer("f", "r", 1))
    assert h.state("r").referred_converted == 0
    h.send(make_event("f", "purchase", 2, amount=10.0))
    assert h.state("r").referred_converted == 1
    h.send(make_event("f", "purchase", 3, amount=10.0), refer("f", "r", 4))
    assert h.state("r").referred_converted == 1
    assert h.snapshot("r")["role"] == "regular"  # one convert: not yet an opinion leader


def test_the_credit_is_a_feedback_event_for_the_referrer(harness: HarnessFactory) -> None:
    h = harness().send(refer("f", "r", 1))
    out = Outputs()
    h.processor.process(make_event("f", "purchase", 2, amount=10.0), out)
    credit, = out.feedback
    assert (credit.user_id, credit.type, credit.occurred_at) == ("r", "referral_converted", at(2))
    assert credit.properties == {"referred_user_id": "f"}


def test_signup_after_the_purchase_still_credits(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "share", 0), make_event("f", "purchase", 1, amount=9.0))
    assert h.state("r").referred_converted == 0
    h.send(refer("f", "r", 1.5))
    assert h.state("r").referred_converted == 1


def test_opinion_leader_after_enough_converted_referrals(harness: HarnessFactory) -> None:
    h = harness(opinion_leader_min_converted=2)
    h.send(make_event("r", "purchase", 0, amount=5.0))
    for i, friend in enumerate(("f1", "f2")):
        h.send(refer(friend, "r", 1 + i), make_event(friend, "purchase", 1.5 + i, amount=1.0))
    assert h.state("r").referred_converted == 2
    assert h.snapshot("r")["role"] == "opinion_leader"
    assert h.snapshot("r")["funnel_stage"] == "advocate"


@pytest.mark.parametrize("partitions", [1, 2])
def test_referral_credits_reach_the_referrer_under_every_driver(
        driver: DriverFactory, partitions: int) -> None:
    """With two partitions the friends (ann, bob) are on the other partition than the
    referrer (r): each credit crosses it (live, through the repartition topic), and is
    held until the referrer's partition reaches its time."""
    assert partition_for("r", 2) != partition_for("ann", 2) == partition_for("bob", 2)
    d = driver(opinion_leader_min_converted=2, partitions=partitions)
    d.send(make_event("r", "purchase", 0, amount=5.0, currency="EUR", order_id="r-o"))
    for i, friend in enumerate(("ann", "bob")):
        d.send(refer(friend, "r", 1 + i), make_event(friend, "purchase", 1.5 + i, amount=1.0,
                                                     currency="EUR", order_id=f"{friend}-o"))
    d.advance_days(5)
    assert d.snapshot("r")["role"] == "opinion_leader"
    assert d.snapshot("r")["funnel_stage"] == "advocate"
    assert [d.snapshot(f)["role"] for f in ("ann", "bob")] == ["regular"] * 2


def test_the_credit_does_not_depend_on_the_order_of_signup_and_purchase(
        harness: HarnessFactory) -> None:
    purchase = make_event("f", "purchase", 1.0, amount=3.0)
    signup = refer("f", "r", 1.001)
    visit = make_event("r", "page_view", 0)  # one event id for both runs
    runs = [harness().send(visit, *pair)
            for pair in ((purchase, signup), (signup, purchase))]
    assert [h.state("r").referred_converted for h in runs] == [1, 1]
    assert runs[0].state("r").to_list() == runs[1].state("r").to_list()


def test_a_referrer_with_no_activity_of_their_own_gets_no_lifecycle_alerts(
        harness: HarnessFactory) -> None:
    """A credit is news about someone else's purchase, not the referrer's own activity."""
    h = harness().send(refer("f", "ghost", 0), make_event("f", "purchase", 1, amount=3.0))
    h.advance_days(60)
    assert h.alert_types("ghost") == []


def test_a_self_referral_is_ignored(harness: HarnessFactory) -> None:
    h = harness().send(refer("u", "u", 0), make_event("u", "purchase", 1, amount=1.0))
    assert h.state("u").referred_by is None and h.state("u").referred_converted == 0


def test_unpurchased_referral_credits_nobody(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "page_view", 0), refer("f", "r", 1),
                       make_event("f", "add_to_cart", 2))
    assert h.state("r").referred_converted == 0


# --- model re-fit schedule ----------------------------------------------------------------


class LoopGuardStore(dict[str, UserState]):
    """A store that raises once it has been read far more often than the stream can
    explain: a processor stuck in a loop fails the test instead of hanging it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.reads = limit, 0

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads += 1
        if self.reads > self.limit:
            raise RuntimeError(f"store read {self.reads} times: the processor is looping")
        return super().get(key, default)


@pytest.mark.parametrize("interval", [7.0, 2.5, 1.1, 0.7, 1 / 24])
def test_refits_step_forward_for_any_interval(interval: float) -> None:
    settings = Settings().with_overrides(refit_interval_days=interval)
    settings.validate()
    p = PartitionProcessor(settings, LoopGuardStore(limit=50_000))
    refits, fitted = 0, []
    for day in range(21):
        out = Outputs()
        p.process(make_event("u", "page_view", day), out)
        refits += out.refits
        fitted.append(p.model.fitted_at)
        assert p.next_refit_at is not None and p.next_refit_at > p.clock
    assert 20 / interval - 2 <= refits <= 20 / interval + 2
    stamps = [f for f in fitted if f is not None]
    assert stamps == sorted(stamps) and stamps[-1] <= at(20)


# --- census ------------------------------------------------------------------------------


def stream(seed: int, users: int = 30, days: float = 120.0) -> Iterator[tuple[Event, int]]:
    """A reproducible mixed stream with small disorder, each event with its position."""
    rng = random.Random(seed)
    kinds = ["page_view", "product_view", "search", "add_to_cart", "purchase", "purchase",
             "share", "review", "refund", "coupon_redeemed", "message_opened", "unsubscribe",
             "resubscribe", "signup", "referral", "wishlist_add", "checkout_started"]
    events: list[Event] = []
    for i in range(users):
        user = f"u{i}"
        t = rng.uniform(0, 20)
        while t < days:
            kind = rng.choice(kinds)
            fields: dict[str, Any] = {}
            if kind in ("purchase", "refund"):
                fields["amount"] = round(rng.uniform(1, 200), 2)
                fields["order_id"] = f"{user}-{rng.randrange(50)}"
            elif kind == "review":
                fields["rating"] = rng.randint(1, 5)
            elif kind in ("unsubscribe", "resubscribe", "message_opened"):
                fields["channel"] = rng.choice(["app_push", "email", "sms"])
            elif kind == "signup":
                fields["properties"] = {"referred_by": f"u{rng.randrange(users)}",
                                        "consent": rng.sample(["app_push", "email", "sms"], 2)}
            events.append(make_event(user, kind, t, utc_offset_min=rng.choice([0, 60, -300]),
                                     **fields))
            t += rng.expovariate(1 / rng.choice([2.0, 8.0, 30.0]))
    events.sort(key=lambda e: e.occurred_at + rng.uniform(0, 0.5) * DAY)  # half a day late, at most
    for position, e in enumerate(events):
        yield e, position
        if rng.random() < 0.05:
            yield e, position  # redelivered


def test_stage_counts_match_the_store(harness: HarnessFactory) -> None:
    h = harness(refit_min_buyers=5)
    for e, pos in stream(1):
        h.send(e, position=pos)
    h.advance_days(150)
    counts = h.processor.stage_counts()
    assert counts == Counter(s.stage for s in h.store.values())
    assert sum(counts.values()) == len(h.store) and len(h.store) >= 30


# --- kill and restore ---------------------------------------------------------------------


def clone(p: PartitionProcessor) -> PartitionProcessor:
    """A new processor from what a restart has: the table (through its codec) and context."""
    ctx = PartitionContext.from_dict(json.loads(json.dumps(p.context().to_dict())))
    store = {u: UserState.from_list(json.loads(json.dumps(s.to_list())))
             for u, s in p.store.items()}
    twin = PartitionProcessor(p.settings, store, p.partition)
    twin.restore(ctx, list(store.values()))
    return twin


def step_outputs(out: Outputs) -> dict[str, Any]:
    return {"alerts": list(out.alerts), "transitions": list(out.transitions),
            "rejected": [(r.reason, r.event.event_id) for r in out.rejected],
            "feedback": [(f.event_id, f.user_id, f.type) for f in out.feedback],
            "duplicates": out.duplicates, "suppressed": list(out.suppressed),
            "deferred": list(out.deferred), "reactivations": list(out.reactivations),
            "refits": out.refits, "touched": sorted(out.touched)}


def drive(p: PartitionProcessor, item: tuple[Event, int] | float) -> dict[str, Any]:
    out = Outputs()
    if isinstance(item, float):
        p.advance(item, out)
    else:
        event, position = item
        p.process(event, out, position=position, received_at=event.occurred_at + 60)
        while out.feedback:  # route credits back into the partition, as the Harness does
            p.process(out.feedback.pop(), out)
    return step_outputs(out)


@pytest.mark.parametrize("seed", range(2, 8))
@pytest.mark.parametrize("cut", [0.15, 0.3, 0.45, 0.6, 0.75, 0.9])
def test_a_restored_processor_continues_exactly_like_the_original(seed: int,
                                                                  cut: float) -> None:
    settings = Settings().with_overrides(refit_min_buyers=8, population_sample_size=20,
                                         refit_interval_days=5.0)
    items: list[tuple[Event, int] | float] = list(stream(seed))
    ticks = [at(d) for d in range(0, 200, 3)]
    # interleave wall-clock ticks with the events, in time order
    merged: list[tuple[Event, int] | float] = []
    for item in items:
        while ticks and ticks[0] < item[0].occurred_at - 0.25 * DAY:  # type: ignore[index]
            merged.append(ticks.pop(0))
        merged.append(item)
    merged += ticks
    original = PartitionProcessor(settings, {})
    split = int(len(merged) * cut)
    for item in merged[:split]:
        drive(original, item)
    twin = clone(original)
    assert twin.context().to_dict() == json.loads(json.dumps(original.context().to_dict()))
    assert twin.stage_counts() == original.stage_counts()
    produced = 0
    for item in merged[split:]:
        a, b = drive(original, item), drive(twin, item)
        assert a == b
        produced += len(a["alerts"]) + len(a["transitions"])
    assert produced > 0 and original.model.fitted_at is not None
    assert {u: s.to_list() for u, s in original.store.items()} == \
        {u: s.to_list() for u, s in twin.store.items()}
    assert original.context().to_dict() == twin.context().to_dict()


def test_a_stored_context_reads_back_and_writes_the_same_dict() -> None:
    """Checkpoints persisted before PartitionContext existed stay readable: the typed
    context is read from, and written as, the same dict, key for key and in order."""
    stored = {"clock": at(3), "model": [[0.5, 30.0, 0.8, 2.5], 90.0, 60.0, 14.0, at(2), 12],
              "next_refit_at": at(7), "applied_position": 41,
              "held_credits": [["rc-a", "ref", at(4), "friend"]],
              "refits": [[at(2), [[0.5, 30.0, 0.8, 2.5], 90.0, 60.0, 14.0, at(2), 12]]]}
    ctx = PartitionContext.from_dict({**stored, "consumed": 7, "consumed_repartition": -1})
    assert ctx.held_credits[0].occurred_at == at(4) and ctx.model.buyers == 12
    assert list(ctx.to_dict().items()) == list(stored.items())
    plain = PartitionProcessor(Settings(), {}).context().to_dict()
    assert list(plain) == ["clock", "model", "next_refit_at", "applied_position",
                           "held_credits"]


def test_restore_without_context_keeps_the_defaults() -> None:
    p = PartitionProcessor(Settings(), {})
    p.restore(None, [])
    assert p.clock == float("-inf") and p.applied_position == -1 and len(p.index) == 0
    assert p.context().clock is None


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letter_of_text() -> None:
    rec = dead_letter("invalid_json", "Expecting value", b'{"x": ', {"topic": "t", "partition": 1,
                                                                  "offset": 7}, BASE, None, None)
    assert rec["schema"] == "journey.dead-letter/1"
    assert rec["received_at"] == "2026-01-01T00:00:00Z"
    assert rec["payload"] == '{"x": ' and rec["payload_truncated"] is False
    assert "payload_base64" not in rec
    assert rec["origin"] == {"topic": "t", "partition": 1, "offset": 7}


def test_dead_letter_truncates_and_keeps_binary() -> None:
    long = dead_letter("oversize", "too big", "x" * (PAYLOAD_CAP + 10), {}, BASE, "e1", "u1")
    assert len(long["payload"]) == PAYLOAD_CAP and long["payload_truncated"] is True
    assert (long["event_id"], long["user_id"]) == ("e1", "u1")
    raw = bytes(range(256)) * 20
    binary = dead_letter("invalid_json", "not utf-8", raw, {}, BASE)
    assert binary["payload_truncated"] is True
    assert base64.b64decode(binary["payload_base64"]) == raw[:PAYLOAD_CAP]


def test_a_credit_from_ahead_of_the_partition_clock_waits_for_the_clock() -> None:
    """Credits cross partitions asynchronously. One that arrives before this partition's
    clock reaches its time is held (in the context, so a restart keeps it) and takes
    effect at its own time, in order with the partition's timers, as in a replay."""
    from streams.core.apply import REFERRAL_CONVERTED

    proc = PartitionProcessor(Settings(), {})
    out = Outputs()
    credit = Event(event_id="rc-1", user_id="referrer", type=REFERRAL_CONVERTED,
                   occurred_at=at(40), source="journey",
                   properties={"referred_user_id": "friend"})
    proc.process(credit, out, feedback=True)
    proc.process(credit, out, feedback=True)  # re-sent after a restart upstream
    assert out.applied == [] and proc.store == {} and out.duplicates == 1
    assert proc.context().clock is None and len(proc.context().held_credits) == 1
    proc.process(make_event("referrer", "page_view", 1), out, received_at=at(1))
    assert not out.rejected and [e.type for e in out.applied] == ["page_view"]
    twin = clone(proc)  # held credits survive a restart
    for p in (proc, twin):
        o = Outputs()
        p.advance(at(39), o)
        assert p.store["referrer"].referred_converted == 0
        p.advance(at(41), o)
        assert [e.event_id for e in o.applied] == ["rc-1"]
        assert p.store["referrer"].referred_converted == 1
        assert p.context().held_credits == []


def test_a_restore_at_any_point_of_a_synthetic_history_changes_nothing() -> None:
    """Cut points over a realistic history with re-fits that bring deadlines forward:
    the restored processor's outputs and final states equal the uninterrupted run's.
    (Before timers kept their wake-up in the state, cuts past the middle diverged.)"""
    import orjson

    from streams.core.decode import decode
    from streams.synth import SynthConfig, generate

    history, _ = generate(SynthConfig(users=500, days=60, start=BASE, seed=31))
    events = [e for e in (decode(orjson.dumps(h)) for h in history if isinstance(h, dict))
              if isinstance(e, Event)]
    items: list[tuple[Event, int] | float] = [(e, i) for i, e in enumerate(events)]
    items.append(at(400))
    original = PartitionProcessor(Settings(), {})
    done = 0
    step = len(items) // 10
    for upto in range(step, len(items), step):
        for item in items[done:upto]:
            drive(original, item)
        done = upto
        twin, reference = clone(original), copy.deepcopy(original)  # restarted, not
        for item in items[upto:]:
            assert drive(reference, item) == drive(twin, item), f"cut at {upto}"
        assert {u: s.to_list() for u, s in reference.store.items()} == \
            {u: s.to_list() for u, s in twin.store.items()}


def test_news_from_another_partition_is_never_judged_before_the_users_own_last_change(
) -> None:
    """A restarted partition resumes from the checkpoint before its last batch, with its
    users as that batch left them: its clock can be behind a user's last stage change.
    A referral credit that arrives then (before the batch is gone over again) must not
    judge the user at that earlier instant, or a churn warning already sent is undone
    and sent again."""
    from streams.core.apply import REFERRAL_CONVERTED

    settings = Settings()
    original = PartitionProcessor(settings, {})
    out = Outputs()
    for day in (0.0, 12.0, 25.0):
        original.process(make_event("u", "purchase", day, amount=30.0, order_id=f"o{day}"),
                         out, received_at=at(day))
    original.advance(at(30), out)
    original.checkpoint()  # a batch boundary: what follows is the batch
    original.advance(at(50), out)  # the batch: the churn warning fires in it
    warned = [a for a in out.alerts if a["type"] == "churn_warning"]
    assert len(warned) == 1 and original.store["u"].stage == "declining"
    checkpoint = json.loads(json.dumps(original.checkpoint().to_dict()))
    assert checkpoint["clock"] == at(30)  # it claims the batch's start

    users = {k: UserState.from_list(json.loads(json.dumps(s.to_list())))
             for k, s in original.store.items()}
    twin = PartitionProcessor(settings, users)
    twin.restore(PartitionContext.from_dict(checkpoint), list(users.values()))
    assert twin.clock < twin.store["u"].stage_since  # the users are ahead of the clock
    credit = Event(event_id="rc-friend", user_id="u", type=REFERRAL_CONVERTED,
                   occurred_at=at(20), source="journey",
                   properties={"referred_user_id": "friend"})
    for p in (original, twin):
        o = Outputs()
        p.process(credit, o, feedback=True)  # after the batch in the original's run
        assert o.transitions == [] and o.alerts == []
        p.advance(at(51), o)  # the twin goes over the batch's time again
        assert o.alerts == [], [a["alert_id"] for a in o.alerts]
    assert twin.store["u"].to_list() == original.store["u"].to_list()
    assert twin.store["u"].alerts_sent == 1
