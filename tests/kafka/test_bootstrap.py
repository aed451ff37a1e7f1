"""``journey bootstrap``: workers carry on from a replayed history as if they had processed
it themselves (docs/going-live.md).

As in test_live_equals_replay, the workers' wall-clock ticker is off and the test writes
the ticks, so every instant is chosen and even P(alive) and churn risk must match replay.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.testing import kafka_io as io
from agents.testing.kafka_io import event_time, rfc3339
from agents.testing.replay_check import ReplayResult, field_diffs, run_replay
from agents.testing.workers import PARTITIONS, ROOT, Worker, Workers, replay_env
from schemas import parse_date_time
from streams.settings import Settings
from streams.synth import SynthConfig, generate, write_jsonl
from tests.support.bootstrap import bootstrap_args, journey
from tests.support.live_replay import AT_SAME_INSTANT, MIX, OVERRIDES, STATE_FIELDS

pytestmark = pytest.mark.kafka

DAY = 86400.0
FIELDS = [*STATE_FIELDS, *AT_SAME_INSTANT]


def history(make_topics: Any, users: int, days: float, ago: float,
            seed: int) -> list[dict[str, Any]]:
    """A synthetic history in event-time order, for the test's fresh topics (made here)."""
    make_topics(*io.topic_suffixes(Settings()), partitions=PARTITIONS)
    start = time.time() - ago * DAY
    got, _ = generate(SynthConfig(users=users, days=days, start=start, seed=seed, mix=MIX,
                                  segment_share=0.2, duplicate_share=0.01))
    return sorted((e for e in got if isinstance(e, dict)), key=event_time)


def split(events: list[dict[str, Any]], days: float) -> tuple[float, list[dict[str, Any]]]:
    """The cut ``days`` after the first event, and the events up to it."""
    cut = event_time(events[0]) + days * DAY
    return cut, [e for e in events if event_time(e) <= cut]


def when(alert: dict[str, Any]) -> float:
    parsed = parse_date_time(alert["detected_at"])
    assert parsed is not None
    return parsed[0]


def lines(path: Path) -> list[dict[str, Any]]:
    return [dict(orjson.loads(x)) for x in path.read_bytes().splitlines() if x.strip()]


def as_bootstrapped(path: Path, cut: float, settings: Settings, out: Path,
                    live: Path | None = None, until: float | None = None) -> ReplayResult:
    """``journey replay --cut-over CUT [--live LIVE --until UNTIL]``: the history's alerts
    historical, live ones from the cut-over on."""
    extra = ["--cut-over", rfc3339(cut), *(["--live", str(live)] if live else [])]
    return run_replay(path, until or cut, replay_env(settings, **OVERRIDES), out,
                          extra=extra)


def same_states(worker: Worker, truth: ReplayResult) -> None:
    got = {uid: worker.user(uid) for uid in truth.states}
    diffs = field_diffs(got, truth.states, FIELDS, tolerance=AT_SAME_INSTANT)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:10]}"


def test_bootstrap_then_live_equals_replay_with_the_cut_over(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    s = kafka_settings
    topics = io.all_topics(s)
    events = history(make_topics, 300, 60, 330, seed=23)
    cut, past = split(events, 40)
    # Live input: the end of the history again (live producing started before the
    # export ended), new events too old for the partition clocks, then what came after.
    overlap = past[-40:]
    late = [{**e, "event_id": f"late-{i}"} for i, e in enumerate(
        e for e in past if e.get("event_id") and e["type"] == "page_view"
        and event_time(e) < cut - 3 * DAY)][:5]
    after = [e for e in events if event_time(e) > cut]
    until = event_time(after[-1]) + 20 * DAY
    live_from = cut + 10 * DAY  # lapses in (cut, live_from) happened before going live
    done = io.sentinels(until)
    live = [*overlap, *late, *after, *done]
    write_jsonl(past, tmp_path / "history.jsonl")
    write_jsonl(live, tmp_path / "live.jsonl")

    boot = journey(bootstrap_args(tmp_path / "history.jsonl", cut, "--live-from",
                                  rfc3339(live_from), "--alerts-out",
                                  str(tmp_path / "historical.jsonl"), "--transitions-out",
                                  str(tmp_path / "transitions.jsonl")), s)
    assert boot.returncode == 0, boot.stderr
    records = [io.event_record(e) for e in [*overlap, *late, *after]]
    records += [io.tick_record(until, p) for p in range(PARTITIONS)]
    records += [io.event_record(e) for e in done]
    io.produce(s.broker, topics.events, records)

    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready(partitions=1)
    worker.wait_for(lambda: all(worker.user(e["user_id"]) for e in done), 180,
                    "every partition's sentinel in /users")
    m = worker.metrics()
    applied = worker.metric("journey_events_applied_total", m)
    duplicates = worker.metric("journey_events_duplicate_total", m)
    too_late = worker.metric("journey_dead_letters_total", m, reason="too_late")
    assert applied + duplicates + worker.metric("journey_dead_letters_total", m) == \
        len(overlap) + len(late) + len(after) + len(done)
    assert duplicates >= len(overlap) and too_late == len(late) == 5

    replay = run_replay(tmp_path / "history.jsonl", until, replay_env(s, **OVERRIDES),
                        tmp_path / "replay",
                        extra=["--cut-over", rfc3339(cut), "--live", str(tmp_path / "live.jsonl"),
                               "--live-from", rfc3339(live_from), "--historical-alerts-out",
                               str(tmp_path / "replay" / "historical.jsonl"), "--summary-json",
                               str(tmp_path / "replay" / "summary.json")])
    summary = orjson.loads((tmp_path / "replay" / "summary.json").read_bytes())
    assert summary["dead_letters"].get("too_late") == too_late

    # live alerts: the same ids and records as replay's, and only those
    published = {a["alert_id"]: a for t in (topics.churn_warnings, topics.recall_triggers)
                 for a in io.values(io.consume(s.broker, t, timeout=30, idle=2.0))}
    assert len(published) == worker.metric("journey_alerts_total", m)
    expected = {a["alert_id"]: a for a in replay.alerts}
    assert expected and set(published) == set(expected)
    assert all(published[i] == expected[i] for i in expected)
    assert all(when(a) >= live_from for a in expected.values())
    # historical alerts: the history's (bootstrap's file), then those between the cut
    # and live_from (suppressed by the worker); none published
    historical = lines(tmp_path / "historical.jsonl")
    replay_historical = {a["alert_id"] for a in lines(tmp_path / "replay" / "historical.jsonl")}
    gap = worker.metric("journey_alerts_suppressed_total", m, reason="historical")
    assert historical and gap > 0
    assert {a["alert_id"] for a in historical} <= replay_historical
    assert len(replay_historical) == len(historical) + gap
    assert not replay_historical & set(published)

    # transitions: the history's (bootstrap's file) and the live ones (published)
    live_tr = io.values(io.consume(s.broker, topics.transitions, timeout=60, until=lambda rs: len(
        rs) >= worker.metric("journey_lifecycle_transitions_total", m)))
    assert sorted(t["transition_id"] for t in replay.transitions) == sorted(
        t["transition_id"] for t in [*lines(tmp_path / "transitions.jsonl"), *live_tr])

    same_states(worker, replay)

    # gone live: a bootstrap now would replace the workers' state
    again = journey(bootstrap_args(tmp_path / "history.jsonl", cut, "--live-from",
                                   rfc3339(live_from)), s)
    assert again.returncode == 3, again.stderr
    assert "workers have processed input since the last bootstrap" in again.stderr
    assert "--force" in again.stderr
    print(f"bootstrap + live == replay --cut-over: {len(past)} history events, "
          f"{len(after)} live, {len(replay.states)} users, {len(historical)} historical "
          f"alerts, {gap:.0f} suppressed at the cut-over, {len(expected)} published")


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_workers_restore_the_bootstrapped_table_and_restart(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path, store: str) -> None:
    """Every user as replay has them at the cut-over, after a first start (from the
    changelog only, the data folder empty) and after a restart; the last records of each
    partition must survive the embedded broker's short recovery for that."""
    s = kafka_settings
    events = history(make_topics, 300, 60, 200, seed=5)
    write_jsonl(events, tmp_path / "history.jsonl")
    cut = event_time(events[-1]) + 5 * DAY
    args = bootstrap_args(tmp_path / "history.jsonl", cut)
    started = time.monotonic()
    boot = journey(args, s)
    seconds = time.monotonic() - started
    assert boot.returncode == 0, boot.stderr
    truth = as_bootstrapped(tmp_path / "history.jsonl", cut, s, tmp_path / "replay")

    def start_and_compare() -> None:
        worker = workers.start(s, store=store, **OVERRIDES)
        worker.wait_ready()
        same_states(worker, truth)
        worker.terminate()

    start_and_compare()
    start_and_compare()  # the same data folder: rocksdb:// reads on from its own offsets
    if store.startswith("rocksdb"):
        # nothing was processed live: a rerun is allowed, and rewrites the same records
        rerun = journey(args, s)
        assert rerun.returncode == 0, rerun.stderr
        start_and_compare()
    print(f"bootstrap of {len(events)} events / {len(truth.states)} users took "
          f"{seconds:.1f}s; {store} workers restored every user, twice")


def refused_by_workers(s: Settings, workers: Workers) -> None:
    """A worker started on a half-loaded table stops at once, with the fault code and
    the way out."""
    refused = workers.start(s, **OVERRIDES)
    assert refused.wait_exit(120) == 3, refused.log_tail()
    assert "run `journey bootstrap` again" in refused.log_path.read_text()


def rerun_matches_replay(args: list[str], s: Settings, workers: Workers, tmp_path: Path,
                         cut: float) -> None:
    """``journey bootstrap`` run again completes, and a worker then holds replay's users."""
    rerun = journey(args, s)
    assert rerun.returncode == 0, rerun.stderr
    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready()
    same_states(worker, as_bootstrapped(tmp_path / "history.jsonl", cut, s, tmp_path / "replay"))


class _Killed(Exception):
    """Stands for a kill -9 of `journey bootstrap` between two of its steps."""


def _bootstrap_killed_after(phase: str, args: list[str], settings: Settings,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.cli import bootstrap as cli
    from agents.cli.main import build_parser

    def killed(self: Any, name: str, done: int, total: int) -> None:
        if name == phase and done == total:
            raise _Killed(phase)

    with monkeypatch.context() as m:
        m.setattr(cli._Shown, "phase", killed)
        with pytest.raises(_Killed):
            cli.run_bootstrap(build_parser().parse_args(args), settings.with_overrides(
                partitions=PARTITIONS, **OVERRIDES))


def test_a_killed_bootstrap_is_refused_by_workers_until_a_rerun_completes(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = kafka_settings
    events = history(make_topics, 200, 40, 120, seed=11)
    write_jsonl(events, tmp_path / "history.jsonl")
    cut = event_time(events[-1]) + DAY
    args = bootstrap_args(tmp_path / "history.jsonl", cut)
    for phase in ("users", "checkpoints"):  # killed before the checkpoints; before the end
        _bootstrap_killed_after(phase, args, s, monkeypatch)
        refused_by_workers(s, workers)
    rerun_matches_replay(args, s, workers, tmp_path, cut)


def test_a_bootstrap_killed_9_while_it_writes_users_is_refused_until_a_rerun_completes(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    """A real SIGKILL, batches in flight: no clean-up runs, some partitions' users are
    written and others not (tests/support/killed_bootstrap.py)."""
    s = kafka_settings
    events = history(make_topics, 300, 40, 120, seed=13)
    write_jsonl(events, tmp_path / "history.jsonl")
    cut = event_time(events[-1]) + DAY
    args = bootstrap_args(tmp_path / "history.jsonl", cut)
    killed = subprocess.run([sys.executable, "-m", "tests.support.killed_bootstrap", "users",
                             "100", *args], cwd=ROOT, env=replay_env(s, **OVERRIDES),
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "killing myself in users" in killed.stderr, killed.stderr
    refused_by_workers(s, workers)
    rerun_matches_replay(args, s, workers, tmp_path, cut)
    print(killed.stderr.strip().splitlines()[-1])


def test_an_input_topic_that_already_holds_events(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    """``--input-from start`` applies them after the history, ``end`` skips them; without
    either, bootstrap asks. Two apps on the same input topic, one per choice."""
    s = kafka_settings
    topics = io.all_topics(s)
    events = history(make_topics, 200, 40, 150, seed=17)
    cut, past = split(events, 30)
    until = event_time(events[-1]) + 10 * DAY
    done = io.sentinels(until)
    waiting = [*past[-30:], *(e for e in events if event_time(e) > cut), *done]
    write_jsonl(past, tmp_path / "history.jsonl")
    write_jsonl(waiting, tmp_path / "waiting.jsonl")
    io.produce(s.broker, topics.events, [
        *(io.event_record(e) for e in waiting[:-len(done)]),
        *(io.tick_record(until, p) for p in range(PARTITIONS)),
        *(io.event_record(e) for e in done)])
    args = bootstrap_args(tmp_path / "history.jsonl", cut, "--live-from", rfc3339(cut))

    unsaid = journey(args, s)
    assert unsaid.returncode == 2 and "--input-from start" in unsaid.stderr
    applies = s.with_overrides(app_id=s.app_id + "-start")
    skips = s.with_overrides(app_id=s.app_id + "-end")
    for app, choice in ((applies, "start"), (skips, "end")):
        boot = journey([*args, "--input-from", choice], app)
        assert boot.returncode == 0, boot.stderr

    first = workers.start(applies, **OVERRIDES)
    second = workers.start(skips, **OVERRIDES)
    first.wait_ready()
    first.wait_for(lambda: all(first.user(e["user_id"]) for e in done), 180,
                   "every partition's sentinel in /users")
    same_states(first, as_bootstrapped(tmp_path / "history.jsonl", cut, s, tmp_path / "start",
                                       tmp_path / "waiting.jsonl", until))
    held = len(waiting) + PARTITIONS
    second.wait_ready()
    second.wait_for(lambda: second.metric("journey_records_redelivered_total") >= held, 120,
                    f"the {held} records that were there before the bootstrap, skipped")
    assert not any(second.user(e["user_id"]) for e in done)
    same_states(second, as_bootstrapped(tmp_path / "history.jsonl", cut, s, tmp_path / "end"))
