"""The synthetic storefront: determinism, the input contract, and truth that matches events."""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import re
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli.main import main
from streams.core import event as ev
from streams.synth import (
    SynthConfig,
    Truth,
    generate,
    generate_truth,
    iter_events,
    noise,
    plan,
    write_jsonl,
)

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "user-event.v1.json"
RFC3339_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
REQUIRED = ("event_id", "user_id", "type", "occurred_at", "source", "properties")


def _config(**changes: Any) -> SynthConfig:
    base: dict[str, Any] = {"users": 400, "days": 180.0, "start": START, "seed": 11}
    base.update(changes)
    return SynthConfig(**base)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def clean() -> tuple[list[dict[str, Any]], dict[str, Truth]]:
    events, truth = generate(_config())
    assert all(isinstance(e, dict) for e in events)
    return [e for e in events if isinstance(e, dict)], truth


@pytest.fixture(scope="module")
def by_user(clean: tuple[list[dict[str, Any]], dict[str, Truth]]
            ) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    users: dict[str, list[tuple[float, dict[str, Any]]]] = collections.defaultdict(list)
    for e in clean[0]:
        users[e["user_id"]].append((_epoch(e["occurred_at"]), e))
    return users


def test_same_config_gives_identical_bytes(tmp_path: Path) -> None:
    cfg = _config(users=120, segment_share=0.2, duplicate_share=0.05, bad_share=0.05)
    for name in ("a.jsonl", "a.jsonl.gz"):
        first, second = tmp_path / ("1" + name), tmp_path / ("2" + name)
        n1 = write_jsonl(iter_events(cfg), first)
        n2 = write_jsonl(generate(cfg)[0], second)
        assert n1 == n2 > 1000
        assert first.read_bytes() == second.read_bytes()
    other = tmp_path / "other.jsonl"
    write_jsonl(iter_events(_config(users=120, seed=12)), other)
    assert other.read_bytes() != (tmp_path / "1a.jsonl").read_bytes()


def test_truth_alone_equals_truth_with_events(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]]) -> None:
    assert generate_truth(_config()) == clean[1]


def test_write_jsonl_round_trips_gzip(tmp_path: Path) -> None:
    events = list(iter_events(_config(users=30, bad_share=0.1)))
    path = tmp_path / "e.jsonl.gz"
    assert write_jsonl(events, path) == len(events)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert len(lines) == len(events)
    for line, e in zip(lines, events, strict=True):
        assert line == (e if isinstance(e, str) else orjson.dumps(e).decode())


@pytest.mark.parametrize("users", [7, 100, 1001])
def test_archetype_counts_follow_the_mix(users: int) -> None:
    mix = {"regular": 0.5, "churner": 0.3, "never_buyer": 0.2}
    truth = generate_truth(SynthConfig(users=users, days=60, start=START, seed=1, mix=mix))
    counts = collections.Counter(t.archetype for t in truth.values())
    assert sum(counts.values()) == users
    assert set(counts) <= set(mix)
    for arch, share in mix.items():
        assert abs(counts[arch] - share * users) < 1


def test_default_mix_has_every_archetype(clean: tuple[list[dict[str, Any]],
                                                      dict[str, Truth]]) -> None:
    counts = collections.Counter(t.archetype for t in clean[1].values())
    for arch, share in plan.DEFAULT_MIX.items():
        assert abs(counts[arch] - share * 400) < 1


def test_events_are_in_time_order(clean: tuple[list[dict[str, Any]], dict[str, Truth]]) -> None:
    times = [_epoch(e["occurred_at"]) for e in clean[0]]
    assert times == sorted(times)
    assert START <= times[0] and times[-1] < START + 180 * DAY


def test_canonical_events_keep_the_contract(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]]) -> None:
    events, truth = clean
    allowed = set(ev.EVENT_TYPES) - {ev.OTHER}
    for e in events:
        assert tuple(e) == REQUIRED
        assert e["type"] in allowed and e["source"] == "synth"
        assert RFC3339_WITH_OFFSET.match(e["occurred_at"]), e
        offset = datetime.fromisoformat(e["occurred_at"]).utcoffset()
        assert offset is not None
        assert offset.total_seconds() / 60 == truth[e["user_id"]].utc_offset_min
        p = e["properties"]
        if e["type"] in (ev.PURCHASE, ev.REFUND):
            assert p["amount"] >= 0 and round(p["amount"], 2) == p["amount"]
            assert p["currency"] == "EUR" and p["order_id"]
        elif e["type"] == ev.REVIEW:
            assert p["rating"] in (1, 2, 3, 4, 5)
        elif e["type"] == ev.REFERRAL:
            assert p["referred_user_id"] in truth
        elif e["type"] in (ev.UNSUBSCRIBE, ev.RESUBSCRIBE):
            assert p["channel"] in plan.CHANNELS
        elif e["type"] == ev.SIGNUP:
            assert p["consent"] and set(p["consent"]) <= set(plan.CHANNELS)
    assert len({e["event_id"] for e in events}) == len(events)
    seen = {e["type"] for e in events}
    assert seen >= allowed - {ev.MESSAGE_OPENED, ev.MESSAGE_CLICKED}


def test_sessions_are_short_daily_funnels(
        by_user: dict[str, list[tuple[float, dict[str, Any]]]]) -> None:
    for events in by_user.values():
        sessions: dict[str, list[tuple[float, dict[str, Any]]]] = collections.defaultdict(list)
        for t, e in events:
            sessions[e["event_id"].rsplit(".", 1)[0]].append((t, e))
        days = set()
        for visit in sessions.values():
            assert visit[0][1]["type"] == ev.SESSION_START
            assert visit[-1][0] - visit[0][0] < plan.MAX_SESSION_SECONDS
            days.add(visit[0][1]["occurred_at"][:10])
            kinds = [e["type"] for _, e in visit]
            if ev.PURCHASE in kinds:  # the funnel leads up to the order
                assert ev.ADD_TO_CART in kinds
                assert kinds.index(ev.CHECKOUT_STARTED) < kinds.index(ev.PURCHASE)
                assert kinds.count(ev.PURCHASE) == 1
        assert len(days) == len(sessions)  # at most one visit a local day


def test_visits_happen_at_the_usual_local_hour(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]]) -> None:
    events, truth = clean
    starts = [e for e in events if e["type"] == ev.SESSION_START]
    near = 0
    for e in starts:
        local = datetime.fromisoformat(e["occurred_at"])
        minutes = local.hour * 60 + local.minute
        near += abs(minutes - truth[e["user_id"]].local_hour * 60) <= 46
    assert near / len(starts) > 0.8


def test_truth_matches_what_each_user_did(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]],
        by_user: dict[str, list[tuple[float, dict[str, Any]]]]) -> None:
    _, truth = clean
    assert set(by_user) == set(truth)
    for uid, t in truth.items():
        events = by_user[uid]
        kinds = [e["type"] for _, e in events]
        activity = [when for when, e in events if e["type"] in ev.ACTIVITY_TYPES]
        assert events[0][0] == t.first_seen_at and kinds[:2] == [ev.SESSION_START, ev.SIGNUP]
        assert kinds.count(ev.SIGNUP) == 1
        assert kinds.count(ev.PURCHASE) == t.purchases
        if t.archetype in ("never_buyer", "sharer"):
            assert t.purchases == 0
        elif t.archetype == "one_time":
            assert t.purchases == 1
        else:
            assert t.purchases >= 2
        if t.archetype == "sharer":
            assert kinds.count(ev.SHARE) >= 2
        if t.archetype in ("regular", "loyal", "sharer", "opinion_leader"):
            assert t.stopped_at is None and t.returns_at is None
        if t.archetype in ("churner", "one_time", "never_buyer"):
            assert t.stopped_at == events[-1][0] == activity[-1] and t.returns_at is None
        if t.archetype == "churner":
            assert t.stopped_at is not None and t.stopped_at <= START + 0.62 * 180 * DAY
        if t.archetype == "returner":
            assert t.stopped_at is not None and t.returns_at is not None
            assert t.cycle_days is not None
            assert t.returns_at - t.stopped_at >= 3 * t.cycle_days * DAY
            assert not [w for w, _ in events if t.stopped_at < w < t.returns_at]
            assert t.stopped_at in activity and t.returns_at in activity
            assert any(w > t.returns_at for w in activity)


def test_regular_buyers_keep_a_steady_rhythm_and_loyal_ones_do_not(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]],
        by_user: dict[str, list[tuple[float, dict[str, Any]]]]) -> None:
    def cv(uid: str) -> float:
        buys = [w for w, e in by_user[uid] if e["type"] == ev.PURCHASE]
        gaps = [b - a for a, b in itertools.pairwise(buys)]
        return statistics.pstdev(gaps) / statistics.mean(gaps)

    truth = clean[1]
    regular = [cv(u) for u, t in truth.items() if t.archetype == "regular"]
    loyal = [cv(u) for u, t in truth.items() if t.archetype == "loyal"]
    assert regular and loyal
    assert max(regular) <= 0.35  # the default rigid_demand_max_cv
    assert statistics.median(loyal) > 0.5
    for u, t in truth.items():
        if t.archetype == "regular":
            assert t.cycle_days is not None
            buys = [w for w, e in by_user[u] if e["type"] == ev.PURCHASE]
            mean_gap = (buys[-1] - buys[0]) / (len(buys) - 1) / DAY
            assert abs(mean_gap - t.cycle_days) < 0.15 * t.cycle_days


def test_opinion_leaders_bring_in_buyers(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]],
        by_user: dict[str, list[tuple[float, dict[str, Any]]]]) -> None:
    truth = clean[1]
    leaders = [u for u, t in truth.items() if t.archetype == "opinion_leader"]
    referred = {u for u, t in truth.items() if t.referred_by is not None}
    invited = set()
    for leader in leaders:
        referrals = [(w, e) for w, e in by_user[leader] if e["type"] == ev.REFERRAL]
        assert len(referrals) >= 2
        for when, e in referrals:
            friend = e["properties"]["referred_user_id"]
            invited.add(friend)
            assert truth[friend].referred_by == leader
            assert truth[friend].first_seen_at > when
            assert truth[friend].purchases >= 1
            signup = next(s for _, s in by_user[friend] if s["type"] == ev.SIGNUP)
            assert signup["properties"]["referred_by"] == leader
    assert invited == referred and len(invited) >= 2 * len(leaders) > 0


def test_segment_share_emits_segment_track_calls() -> None:
    clean_events, _ = generate(_config(users=150))
    mixed, _ = generate(_config(users=150, segment_share=0.5))
    assert len(mixed) == len(clean_events)
    converted = mapped = 0
    for plain, out in zip(clean_events, mixed, strict=True):
        assert isinstance(plain, dict) and isinstance(out, dict)
        if out.get("type") != "track":
            assert out == plain
            continue
        converted += 1
        assert out["event"] == noise.SEGMENT_NAMES[plain["type"]]
        assert out["messageId"] == plain["event_id"] and out["userId"] == plain["user_id"]
        assert out["timestamp"] == plain["occurred_at"]
        if plain["type"] == ev.PURCHASE:
            assert out["event"] == "Order Completed"
            assert out["properties"]["revenue"] == plain["properties"]["amount"]
            assert out["properties"]["order_id"] == plain["properties"]["order_id"]
            assert out["properties"]["currency"] == "EUR"
    mapped = sum(isinstance(e, dict) and e["type"] in noise.SEGMENT_NAMES for e in clean_events)
    assert 0.45 < converted / mapped < 0.55
    names = {e["event"] for e in mixed if isinstance(e, dict) and e.get("type") == "track"}
    assert names == set(noise.SEGMENT_NAMES.values())


def test_duplicates_repeat_the_same_event() -> None:
    clean_events, _ = generate(_config(users=150))
    noisy, _ = generate(_config(users=150, duplicate_share=0.1))
    seen: dict[str, dict[str, Any]] = {}
    dupes = 0
    for e in noisy:
        assert isinstance(e, dict)
        if e["event_id"] in seen:
            dupes += 1
            assert e == seen[e["event_id"]]
        seen[e["event_id"]] = e
    assert list(seen.values()) == clean_events
    assert 0.08 < dupes / len(clean_events) < 0.12


def _is_bad(line: str) -> bool:
    try:
        e = json.loads(line)
    except ValueError:
        return True
    if not isinstance(e, dict) or any(k not in e for k in REQUIRED):
        return True
    if e["type"] not in ev.EVENT_TYPES or not RFC3339_WITH_OFFSET.match(e["occurred_at"]):
        return True
    return e["type"] == ev.PURCHASE and e["properties"]["amount"] < 0


def test_bad_lines_are_malformed_and_extra() -> None:
    clean_events, _ = generate(_config(users=150))
    noisy, _ = generate(_config(users=150, bad_share=0.05))
    bad = [e for e in noisy if isinstance(e, str)]
    assert [e for e in noisy if not isinstance(e, str)] == clean_events
    assert 0.04 < len(bad) / len(clean_events) < 0.06
    assert all(_is_bad(line) for line in bad)
    kinds: collections.Counter[str] = collections.Counter()
    for line in bad:
        try:
            e = json.loads(line)
        except ValueError:
            kinds["not_json"] += 1
            continue
        kinds["not_object" if isinstance(e, list) else "json_object"] += 1
    assert kinds["not_json"] and kinds["not_object"] and kinds["json_object"]


def test_noise_does_not_change_truth() -> None:
    noisy = _config(users=80, segment_share=0.3, duplicate_share=0.1, bad_share=0.1)
    assert generate_truth(noisy) == generate_truth(_config(users=80))


@pytest.mark.parametrize("change", [{"days": 5}, {"users": 0}, {"mix": {"whale": 1.0}},
                                    {"bad_share": 1.5}, {"mix": {"regular": 0.0}}])
def test_bad_config_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_truth(_config(**change))


def test_canonical_events_validate_against_the_schema(
        clean: tuple[list[dict[str, Any]], dict[str, Truth]]) -> None:
    import jsonschema  # a test dependency: missing, the test fails rather than skips
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    events = clean[0]
    by_type: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e)
    sample = [e for group in by_type.values() for e in group[:200]] + events[::50]
    for e in sample:
        errors = list(validator.iter_errors(e))
        assert not errors, (e, errors[0].message)
    # ... and the malformed lines that are JSON objects fail it.
    noisy, _ = generate(_config(users=60, bad_share=0.2))
    for line in (e for e in noisy if isinstance(e, str)):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        assert not validator.is_valid(obj), line


def test_the_command_makes_the_folder_it_writes_to(tmp_path: Path) -> None:
    out = tmp_path / "out" / "deeper" / "h.jsonl"
    assert main(["synth", str(out), "--users", "20", "--days", "20",
                 "--start", "2026-01-01T00:00:00Z"]) == 0
    assert out.stat().st_size > 0 and out.with_name("h.jsonl.truth.jsonl").exists()
