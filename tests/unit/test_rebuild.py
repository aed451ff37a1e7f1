"""Restoring a partition from compact rows (``streams.core.rebuild``) must give the same
processor as ``PartitionProcessor.restore`` from whole states: the same deadline index
(what is due, and when), population sample and census, and so the same outputs after."""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from streams.core import rebuild
from streams.core.context import PartitionContext
from streams.core.decode import Rejection, decode
from streams.core.population import Sample
from streams.core.processor import Outputs, PartitionProcessor
from streams.core.state import UserState
from streams.core.timers import DeadlineIndex
from streams.settings import Settings
from streams.synth import SynthConfig, generate

DAY = 86400.0
START = 1_767_225_600.0  # 2026-01-01T00:00Z
WINDOW = Settings().uplift_window_days * DAY  # the census's uplift window


def _drain(idx: DeadlineIndex, now: float) -> list[tuple[float, str]]:
    out = []
    while (item := idx.pop_due(now)) is not None:
        out.append(item)
    return out


def test_bulk_loaded_index_equals_one_by_one() -> None:
    rng = random.Random(5)
    entries = [(f"u{i}", START + rng.choice([0, 1, 2, 3]) * DAY + rng.random())
               for i in range(2000)]
    one, bulk = DeadlineIndex(), DeadlineIndex()
    for user, deadline in entries:
        one.register(user, deadline)
    bulk.load(entries)
    assert len(one) == len(bulk)
    assert one.earliest() == bulk.earliest()
    assert one.due_count(START + 2 * DAY) == bulk.due_count(START + 2 * DAY)
    assert _drain(one, START + 10 * DAY) == _drain(bulk, START + 10 * DAY)


def test_bulk_loaded_index_keeps_the_earlier_wake_up_of_a_user_given_twice() -> None:
    one, bulk = DeadlineIndex(), DeadlineIndex()
    entries = [("a", START + 5), ("b", START + 1), ("a", START + 3), ("a", START + 9)]
    for user, deadline in entries:
        one.register(user, deadline)
    bulk.load(entries)
    assert bulk.wake_at("a") == one.wake_at("a") == START + 3
    assert _drain(one, START + 10) == _drain(bulk, START + 10)


@pytest.mark.parametrize("k", [1, 7, 50, 5000])
def test_bulk_loaded_sample_equals_one_by_one(k: int) -> None:
    users = [f"user-{i}" for i in range(3000)]
    early = users[:40]
    one, bulk = Sample(k), Sample(k)
    for u in early + users:
        one.offer(u)
    for u in early:  # a sample that already has members
        bulk.offer(u)
    bulk.load(users + users[:10])  # and users given twice
    assert list(one) == list(bulk)
    assert len(one) == len(bulk) == min(k, len(users))


def _states() -> list[UserState]:
    """Varied users: a synthetic storefront's, run through the processor."""
    settings = Settings()
    store: dict[str, UserState] = {}
    proc = PartitionProcessor(settings, store)
    out = Outputs()
    history, _ = generate(SynthConfig(users=300, days=90, start=START, seed=3))
    for e in history:
        if not isinstance(e, dict):
            continue
        event = decode(orjson.dumps(e))
        if not isinstance(event, Rejection):
            proc.process(event, out)
            out.clear()
    proc.advance(START + 120 * DAY, out)
    return list(store.values())


def test_rows_restore_the_same_processor_as_states() -> None:
    settings = Settings().with_overrides(population_sample_size=50)
    states = _states()
    assert len({s.stage for s in states}) >= 3 and any(s.wake_at is None for s in states)
    for s in states[::7]:  # buyers with no crossing in reach: woken only by a new model
        if s.orders and s.stage != "churned":
            s.wake_at = None
    stored = {"clock": START + 100 * DAY,
              "model": PartitionProcessor(settings, {}).model.to_list(),
              "next_refit_at": START + 105 * DAY, "applied_position": 17, "held_credits": []}

    def copies() -> list[UserState]:  # deep: a state's lists are shared by to_list()
        return [copy.deepcopy(s) for s in states]

    def fresh() -> PartitionProcessor:
        return PartitionProcessor(settings, {s.user_id: s for s in copies()})

    by_states, by_lists, by_objects = fresh(), fresh(), fresh()
    by_states.restore(PartitionContext.from_dict(stored), copies())
    # as the table holds them: encoded lists (via JSON, as the codec writes them)...
    lists = [orjson.loads(orjson.dumps(s.to_list())) for s in states]
    rebuild.restore(by_lists, PartitionContext.from_dict(stored),
                    (rebuild.row_of_list(v, WINDOW) for v in lists))
    # ... or objects
    rebuild.restore(by_objects, PartitionContext.from_dict(stored),
                    (rebuild.row_of_state(s, WINDOW) for s in states))

    for proc in (by_lists, by_objects):
        assert proc.context() == by_states.context()
        assert proc.census.counts == by_states.census.counts
        assert vars(proc.census.recalls) == vars(by_states.census.recalls)
        assert list(proc.sample) == list(by_states.sample)
        assert len(proc.index) == len(by_states.index)
        assert proc.dormant == by_states.dormant and proc.dormant
        assert proc.index.due_count(START + 200 * DAY) == by_states.index.due_count(
            START + 200 * DAY)
    # and the same outputs from here on
    outs = []
    for proc in (by_states, by_lists, by_objects):
        out = Outputs()
        proc.advance(START + 400 * DAY, out)
        outs.append(([a["alert_id"] for a in out.alerts],
                     [t["transition_id"] for t in out.transitions], out.refits))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][1], "the comparison should cover some timers firing"


def test_a_list_of_another_layout_takes_the_long_way() -> None:
    state = _states()[0]
    values = state.to_list()
    assert rebuild.row_of_list(values, WINDOW) == rebuild.row_of_state(state, WINDOW)
    # written before held_refunds, the newest field, which the row does not read: the
    # short way, with the same row
    assert rebuild.row_of_list(values[:-1], WINDOW) == rebuild.row_of_state(state, WINDOW)
    shorter = values[:-2]  # an older layout: from_list fills the missing fields' defaults
    assert rebuild.row_of_list(shorter, WINDOW)[0] == state.user_id
    longer = [*values, "a field of a later version"]
    assert rebuild.row_of_list(longer, WINDOW) == rebuild.row_of_state(state, WINDOW)


def test_rows_kept_up_to_date_restore_as_the_final_states_do() -> None:
    """A standby's rows follow every change of its users; a processor restored from them
    equals one restored from the users' final states."""
    settings = Settings().with_overrides(population_sample_size=20)
    states = _states()
    rng = random.Random(9)
    kept = rebuild.Rows.of(settings)
    final: dict[str, UserState] = {}
    # the same users written several times, in shuffled order, some versions stale
    versions = [copy.deepcopy(s) for s in states for _ in range(2)]
    rng.shuffle(versions)
    for s in versions:
        s.wake_at = rng.choice([None, START + rng.random() * 200 * DAY])
        s.orders = rng.choice([0, 1, 2, 5])
        s.stage = rng.choice(["new", "growing", "mature", "declining", "churned"])
        s.recalls = rng.choice([0, 0, 1, 2])  # recalled users count for the uplift tally
        s.recall_returns = min(s.recalls, rng.choice([0, 1]))
        s.last_recall_control = rng.random() < 0.5
        s.last_recall_at = s.stage_since + DAY if s.recalls else None
        kept.set(rebuild.row_of_list(s.to_list(), WINDOW))
        final[s.user_id] = copy.deepcopy(s)
    gone = sorted(final)[:3]
    for uid in gone:
        kept.remove(uid)
        del final[uid]
    assert len(kept) == len(final)

    by_states = PartitionProcessor(settings, dict(final))
    by_states.restore(None, list(final.values()))
    by_rows = PartitionProcessor(settings, dict(final))
    kept.restore(by_rows, None)
    assert by_rows.census.counts == by_states.census.counts
    assert vars(by_rows.census.recalls) == vars(by_states.census.recalls)
    assert sum(by_states.census.recalls.recalls.values()) > 0
    assert by_states.census.recalls.open, "some recalls should still be open"
    assert list(by_rows.sample) == list(by_states.sample)
    assert by_rows.index._registered == by_states.index._registered
    assert by_rows.dormant == by_states.dormant
    assert _drain(by_rows.index, START + 300 * DAY) == _drain(by_states.index, START + 300 * DAY)


def test_rows_of_merged_ids_restore_as_the_states_and_redirects_do() -> None:
    """An id merged into another user holds a redirect: out of the census and the index,
    still in the sample (as ``PartitionProcessor.restore`` keeps it); revived, a user again."""
    settings = Settings().with_overrides(population_sample_size=20)
    states = _states()
    kept = rebuild.Rows.of(settings)
    for s in states:
        kept.set(rebuild.row_of_state(s, WINDOW))
    merged = sorted(s.user_id for s in states)[:5]
    for uid in merged:
        kept.redirect(uid)
    revived = merged[0]
    kept.set(rebuild.row_of_state(next(s for s in states if s.user_id == revived), WINDOW))
    gone = set(merged[1:])
    users = [s for s in states if s.user_id not in gone]

    by_states = PartitionProcessor(settings, {s.user_id: s for s in users})
    by_states.restore(None, users, sorted(gone))
    for exact in (True, False):
        kept.sample_exact = exact  # after a removal the sample is rebuilt from the ids
        by_rows = PartitionProcessor(settings, {s.user_id: s for s in users})
        kept.restore(by_rows, None)
        assert by_rows.census.counts == by_states.census.counts
        assert list(by_rows.sample) == list(by_states.sample)
        assert by_rows.index._registered == by_states.index._registered
        assert by_rows.dormant == by_states.dormant


def test_rows_through_plain_lists_and_json_restore_the_same_processor() -> None:
    """A RocksDB store keeps each partition's rows on disk as plain lists: read back, they
    restore the processor the rows themselves restore, with or without an exact sample."""
    settings = Settings().with_overrides(population_sample_size=20)
    rng = random.Random(4)
    kept = rebuild.Rows.of(settings)
    states = _states()
    for s in states:
        s.recalls = rng.choice([0, 1])
        s.last_recall_at = s.stage_since + DAY if s.recalls else None
        s.stage = "churned" if s.recalls else s.stage
        kept.set(rebuild.row_of_state(s, WINDOW))
    ids = sorted(kept.key_of)
    kept.redirect(ids[0])
    for exact in (True, False):
        if not exact:
            kept.remove(ids[1])  # a removal: the sample is rebuilt from the ids
        plain = orjson.loads(orjson.dumps(kept.to_plain()))
        back = rebuild.Rows.from_plain(plain, settings)
        assert back.sample_exact is exact
        assert back.key_of == kept.key_of and back.wake == kept.wake
        assert back.census == kept.census and back.redirected == kept.redirected
        by_kept = PartitionProcessor(settings, {})
        kept.restore(by_kept, None)
        by_back = PartitionProcessor(settings, {})
        back.restore(by_back, None)
        assert by_back.census.counts == by_kept.census.counts
        assert vars(by_back.census.recalls) == vars(by_kept.census.recalls)
        assert list(by_back.sample) == list(by_kept.sample)
        assert by_back.dormant == by_kept.dormant
        assert _drain(by_back.index, START + 900 * DAY) == _drain(by_kept.index, START + 900 * DAY)
        # and the rows read back go on following changes as the original does
        some = next(s for s in states if s.user_id == ids[2])
        some.orders += 3
        for rows in (kept, back):
            rows.set(rebuild.row_of_state(some, WINDOW))
        assert back.census == kept.census
    with pytest.raises(ValueError):
        rebuild.Rows.from_plain(plain, settings.with_overrides(population_sample_size=21))
