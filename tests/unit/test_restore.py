"""What a partition rebuilds after a restart: its census, and its processor restored from
the table and the context, which must then continue exactly like the uninterrupted one."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from streams.core.context import PartitionContext
from streams.core.event import Event
from streams.core.outputs import Outputs
from streams.core.processor import PartitionProcessor
from streams.core.state import UserState
from streams.settings import Settings
from streams.testing import BASE, DAY, HarnessFactory, at, make_event

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
    snapshots = {key: json.loads(json.dumps(rec)) for key, rec in p.refits.churn.records().items()}
    twin = PartitionProcessor(p.settings, store, p.partition)
    twin.restore(ctx, list(store.values()), snapshots=snapshots)
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


def test_a_credit_does_not_undo_a_stage_set_under_a_model_the_checkpoint_predates() -> None:
    """Like the case above, with a re-fit inside the batch that brought the population
    rhythm forward: the restarted partition holds the model from before the batch, under
    which the user would not be declining yet at its own last change. A credit is not the
    user's activity, so it leaves the stage alone (a chaos run saw the warning sent twice)."""
    import dataclasses

    from streams.core import lifecycle
    from streams.core.apply import REFERRAL_CONVERTED

    settings = Settings()
    proc = PartitionProcessor(settings, {})
    out = Outputs()
    proc.process(make_event("u", "purchase", 0.0, amount=30.0, order_id="o1"), out,
                 received_at=at(0))
    proc.advance(at(1), out)
    slow = dataclasses.replace(proc.model, gap_days=60.0)
    proc.model = slow
    proc.checkpoint()  # a batch boundary: the next checkpoint claims this context
    proc.model = dataclasses.replace(slow, gap_days=5.0)  # the batch's re-fit
    u = proc.store["u"]  # a re-fit re-schedules the users on the population rhythm
    proc._schedule(u, lifecycle.deadline_for(u.stage, lifecycle.rhythm(u, proc.model, settings)))
    proc.advance(at(200), out)
    assert proc.store["u"].stage in ("declining", "churned")
    checkpoint = json.loads(json.dumps(proc.checkpoint().to_dict()))  # model: slow
    users = {k: UserState.from_list(json.loads(json.dumps(s.to_list())))
             for k, s in proc.store.items()}
    twin = PartitionProcessor(settings, users)
    twin.restore(PartitionContext.from_dict(checkpoint), list(users.values()))
    assert twin.model.gap_days == 60.0 and twin.clock < twin.store["u"].stage_since
    stage = twin.store["u"].stage
    credit = Event(event_id="rc-friend", user_id="u", type=REFERRAL_CONVERTED,
                   occurred_at=at(0.5), source="journey",
                   properties={"referred_user_id": "friend"})
    o = Outputs()
    twin.process(credit, o, feedback=True)
    assert o.transitions == [] and o.alerts == []
    assert twin.store["u"].stage == stage and twin.store["u"].referred_converted == 1


@pytest.mark.parametrize("seed", range(2, 6))
def test_a_partition_restored_to_before_its_first_batch_redoes_that_batchs_re_fits(
        seed: int) -> None:
    """The checkpoint before a partition's first batch has no clock and no re-fit instant
    yet; restored from it after that batch's users were written, the partition goes over
    the batch again and meets every user as known. The re-fit grid used to start only at a
    new user, so the batch's logged re-fits were skipped, the model drifted from the first
    pass, and a chaos run saw a churn warning go missing."""
    settings = Settings().with_overrides(refit_min_buyers=5, population_sample_size=20,
                                         refit_interval_days=5.0)
    items = list(stream(seed, users=30, days=90.0))
    first, rest = items[:len(items) // 3], items[len(items) // 3:]
    original = PartitionProcessor(settings, {})
    for item in first:
        drive(original, item)
    claimed = json.loads(json.dumps(original.checkpoint().to_dict()))
    assert claimed.get("clock") is None and claimed["refits"], "the batch re-fitted"
    users = {u: UserState.from_list(json.loads(json.dumps(s.to_list())))
             for u, s in original.store.items()}
    twin = PartitionProcessor(settings, users)
    twin.restore(PartitionContext.from_dict(claimed), list(users.values()))
    for item in first:  # the batch again: every event is a duplicate now
        drive(twin, item)
    assert twin.model.to_list() == original.model.to_list()
    assert twin.refits.next_at == original.refits.next_at
    produced = 0
    for item in [*rest, at(200)]:
        a, b = drive(original, item), drive(twin, item)
        assert a == b
        produced += len(a["alerts"]) + a["refits"]
    assert produced > 0
    assert original.context().to_dict() == twin.context().to_dict()


def test_a_checkpoint_without_a_re_fit_instant_resumes_at_its_first_logged_re_fit() -> None:
    """Checkpoints written before the grid started at any own event: the first re-fit the
    batch logged is the partition's next instant."""
    proc = PartitionProcessor(Settings(), {})
    logged = {at(10): proc.model.to_list(), at(3): proc.model.to_list()}
    proc.restore(PartitionContext(None, proc.model, None, -1, [], refits=logged), [])
    assert proc.refits.next_at == at(3)
