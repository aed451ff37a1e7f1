"""The live worker under faults: kill -9 mid-stream, bad input, a broker that is not there,
a broker that restarts empty or freezes, and a graceful restart with no new input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.broker import EmbeddedBroker, free_port
from agents.cli.worker import EXIT_BROKER_UNREACHABLE, EXIT_FATAL
from agents.testing.chaos import CORE_FIELDS, lost_and_double, old_history
from agents.testing.kafka_io import (
    Out,
    all_topics,
    consume,
    dead_letters,
    event_record,
    event_time,
    produce,
    produce_events,
    produce_with_sentinels,
    rfc3339,
    sentinels,
    settings_on,
    tick_record,
    topic_suffixes,
    values,
)
from agents.testing.replay_check import field_diffs, run_replay
from agents.testing.workers import PARTITIONS, ROOT, Workers, replay_env, worker_env
from streams.settings import Settings
from streams.synth import write_jsonl

DAY = 86400.0


def _all_users(events: list[dict[str, Any]]) -> list[str]:
    return sorted({e["user_id"] for e in events})


# --- kill -9 -----------------------------------------------------------------------------------

@pytest.mark.kafka
def test_kill_9_mid_stream_loses_and_double_counts_nothing(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    events, done = old_history(users=500, seed=31)
    path = tmp_path / "history.jsonl"
    total = write_jsonl([*events, *done], path)
    produce_events(s.broker, topics.events, [*events, *done])

    first = workers.start(s)
    first.wait_ready(partitions=1)
    applied = first.wait_for(
        lambda: (n := first.metric("journey_events_applied_total")) >= total * 0.3 and n,
        180, "30% of the history applied", interval=0.1)
    first.kill()
    killed_at = time.monotonic()
    assert applied < total, f"the worker finished ({applied}/{total}) before it was killed"

    second = workers.start(s)
    second.wait_ready()
    second.wait_users(done, 180, "every partition's sentinel after the restart")
    recovery = time.monotonic() - killed_at
    second.wait_quiet()

    replay = run_replay(path, time.time(), replay_env(s), tmp_path / "replay")
    live = {uid: second.user(uid) for uid in replay.states}
    lost, double = lost_and_double(live, replay.states)
    m2 = second.metrics()
    skipped = second.metric("journey_events_duplicate_total", m2)
    print(f"kill -9: M={total} events, killed after {applied:.0f} applied, lost={lost}, "
          f"double-counted={double}, recovery {recovery:.1f}s (kill to caught up), "
          f"redelivered duplicates skipped={skipped:.0f}, "
          f"healed={second.metric('journey_healed_records_total', m2):.0f}")
    live_alerts = [a for t in (topics.churn_warnings, topics.recall_triggers)
                   for a in values(consume(s.broker, t, timeout=30, idle=2.0))]
    diffs = field_diffs(live, replay.states, CORE_FIELDS)
    assert not diffs, (f"lost={lost} double={double}; {len(diffs)} differences: {diffs[:10]}; "
                       + _alerts_of(diffs[:3], live_alerts, replay.alerts))

    # no alert lost either (re-sent copies carry the same id)
    live_ids = {a["alert_id"] for a in live_alerts}
    replay_ids = {a["alert_id"] for a in replay.alerts}
    assert live_ids == replay_ids, (f"{len(replay_ids - live_ids)} alerts missing, "
                                    f"{len(live_ids - replay_ids)} unexpected")


def _alerts_of(diffs: list[str], live: list[dict[str, Any]],
               replay: list[dict[str, Any]]) -> str:
    """The alerts of the users named in ``diffs``, live and replayed, for the failure text."""
    users = {d.split(".")[0] for d in diffs}

    def brief(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((a["user_id"], a["detected_at"],
                       f"{a['type']}:{a['alert_id'][-8:]}")
                      for a in alerts if a["user_id"] in users)

    return f"live alerts {brief(live)}; replayed {brief(replay)}"


# --- graceful restart ---------------------------------------------------------------------------

@pytest.mark.kafka
def test_graceful_restart_without_new_input_keeps_every_table_update(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    """The embedded broker under-reports a partition's end by up to one record batch, and
    table recovery trusts that end: the last batch of state updates must still come back.
    The ticker is off, so the newest changelog writes are the history's last big batch
    (not a trickle of one-record tick updates), and the clock stands still at T: even
    P(alive) must be the same after the restart."""
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    events, _ = old_history(users=150, seed=37)
    at = max(event_time(e) for e in events) + 30 * DAY
    done = sentinels(at)
    ticks = [tick_record(at, p) for p in range(PARTITIONS)]
    produce(s.broker, topics.events, [*(event_record(e) for e in events), *ticks,
                                      *(event_record(e) for e in done)])
    users = [*_all_users(events), *(e["user_id"] for e in done)]

    first = workers.start(s, tick_interval_seconds=0)
    first.wait_ready(partitions=0)
    first.wait_users(done, 180, "every partition's sentinel")
    first.wait_quiet()
    before = {uid: first.user(uid) for uid in users}
    assert all(before.values())
    assert first.terminate() == 0

    second = workers.start(s, tick_interval_seconds=0)
    second.wait_ready(partitions=0)
    # a tick at the instant the clock already shows: no new input, but each partition
    # gets a record, which is when the worker restores it
    produce(s.broker, topics.events, ticks)
    second.wait_for(lambda: len(second.health()[1].get("partitions") or []) == PARTITIONS, 60,
                    "every partition restored")
    after: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while True:
        after = {uid: second.user(uid) for uid in users}
        if after == before or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    diffs = [_changed(uid, before[uid], after[uid]) for uid in users if after[uid] != before[uid]]
    healed = second.metric("journey_healed_records_total")
    print(f"graceful restart: {len(users)} users, {len(diffs)} differ, healed records "
          f"{healed:.0f}")
    assert not diffs, (f"{len(diffs)} of {len(users)} users differ after a graceful restart "
                       f"(healed records: {healed:.0f}); (before -> after): {diffs[:5]}")


def _changed(uid: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    if after is None:
        return f"{uid}: unknown after the restart"
    if before is None:
        return f"{uid}: unknown before the restart"
    return f"{uid}: " + ", ".join(f"{k} {before[k]!r} -> {after.get(k)!r}" for k in before
                                  if before[k] != after.get(k))


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.kafka
def test_bad_input_goes_to_dead_letters_and_the_worker_goes_on(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = workers.start(s, max_event_bytes=2048)
    worker.wait_ready()
    tag = uuid.uuid4().hex[:6]
    now = time.time()

    def ev(user: str, **changes: Any) -> dict[str, Any]:
        return {"event_id": f"{user}-{uuid.uuid4().hex[:6]}", "user_id": user,
                "type": "page_view", "occurred_at": rfc3339(time.time()), "source": "test",
                "properties": {}, **changes}

    # a first valid event sets its partition's clock to now, for the too-late case below
    probe = f"probe-{tag}"
    produce_events(s.broker, topics.events, [ev(probe)], stamp=now)
    worker.wait_for(lambda: worker.user(probe), 60, "the probe event applied")

    bad: dict[str, tuple[str, bytes, float]] = {  # key -> (expected reason, value, stamp)
        f"not-json-{tag}": ("not_json", b'{"event_id": "x1", "user_id": ', now),
        f"types-{tag}": ("schema_violation", orjson.dumps(ev(f"types-{tag}", event_id=17)), now),
        f"missing-{tag}": ("missing_field", orjson.dumps(
            {k: v for k, v in ev(f"missing-{tag}").items() if k != "occurred_at"}), now),
        f"unknown-{tag}": ("unknown_type", orjson.dumps(ev(f"unknown-{tag}", type="teleported")),
                           now),
        f"future-{tag}": ("future_timestamp", orjson.dumps(
            ev(f"future-{tag}", occurred_at=rfc3339(now + 3600))), now),
        f"oversize-{tag}": ("oversize", orjson.dumps(
            ev(f"oversize-{tag}", properties={"page": "x" * 3000})), now),
        f"utf8-{tag}": ("invalid_utf8", b'{"event_id": "\xff\xfe", "user_id": "u"}', now),
        f"batch-{tag}": ("unsupported_segment_call", orjson.dumps(
            {"type": "batch", "userId": f"batch-{tag}", "messageId": f"m-{tag}",
             "timestamp": rfc3339(now), "batch": []}), now),
        f"array-{tag}": ("not_an_object", b"[1, 2, 3]", now),
        f"amount-{tag}": ("invalid_amount", orjson.dumps(ev(
            f"amount-{tag}", type="purchase",
            properties={"amount": -5, "currency": "EUR", "order_id": f"o-{tag}"})), now),
    }
    records = [Out(value, key.encode(), int(stamp * 1000)) for key, (_, value, stamp)
               in bad.items()]
    # too late: two days behind the probe's partition clock, on the probe's partition
    late = ev(probe, occurred_at=rfc3339(now - 2 * DAY))
    records.append(event_record(late, stamp=now))
    after = produce_with_sentinels(s.broker, topics.events, records, prefix=f"after-{tag}")

    worker.wait_users(after, 60, "the valid events after the bad ones applied on every partition")
    letters = dead_letters(s.broker, topics, len(bad) + 1, timeout=60)
    by_key = {letter["origin"]["key"]: letter for letter in letters}
    got = {key: by_key.get(key, {}).get("reason") for key in bad}
    assert got == {key: reason for key, (reason, _, _) in bad.items()}
    assert by_key.get(probe, {}).get("reason") == "too_late"
    assert by_key[probe]["event_id"] == late["event_id"]
    assert len(letters) == len(bad) + 1, [x["reason"] for x in letters]
    m = worker.metrics()
    for reason in {r for r, _, _ in bad.values()} | {"too_late"}:
        assert worker.metric("journey_dead_letters_total", m, reason=reason) >= 1, reason
    assert worker.returncode is None and worker.health()[0] == 200


# --- the broker ---------------------------------------------------------------------------------

def test_worker_exits_2_when_the_broker_is_not_there(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    settings = Settings().with_overrides(broker=f"127.0.0.1:{closed}", app_id="nobody",
                                         topic_prefix="nobody.")
    env = worker_env(settings, free_port(), data_dir=tmp_path / "data")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    took = time.monotonic() - started
    assert proc.returncode == EXIT_BROKER_UNREACHABLE, (proc.returncode, proc.stderr[-2000:])
    assert f"127.0.0.1:{closed}" in proc.stderr and "unreachable" in proc.stderr, proc.stderr
    print(f"broker unreachable: exit {proc.returncode} after {took:.1f}s: "
          f"{proc.stderr.strip().splitlines()[-1]}")


def _start_on(port: int, log: Path, timeout: float = 20.0) -> EmbeddedBroker:
    """A new embedded broker on a fixed port (retried while the old one's socket lingers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return EmbeddedBroker(port=port, log_path=log).start()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _apply_some(worker: Any, bootstrap: str, settings: Settings, tag: str) -> list[str]:
    now = time.time()
    evs: list[dict[str, Any]] = [
        {"event_id": f"{tag}-{i}", "user_id": f"{tag}-u{i % 40}", "type": "page_view",
         "occurred_at": rfc3339(now), "source": "test", "properties": {}}
        for i in range(200)]
    done = sentinels(now, prefix=f"{tag}-done")
    produce_events(bootstrap, all_topics(settings).events, [*evs, *done], stamp=now)
    worker.wait_users(done, 60, f"the {tag} events applied")
    return [e["user_id"] for e in evs]


def test_broker_restarted_empty_is_fatal(workers: Workers, tmp_path: Path) -> None:
    port = free_port()
    first = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-1.log").start()
    second: EmbeddedBroker | None = None
    try:
        s = settings_on(first.bootstrap, "restart")
        worker = workers.start(s)
        worker.wait_ready()
        _apply_some(worker, first.bootstrap, s, "before")
        # let the watchdog (every 3 s) make its first probe while the broker is up
        worker.wait_for(lambda: worker.health()[1].get("uptime_seconds", 0) >= 8, 30,
                        "8 s of uptime")

        first.stop()
        second = _start_on(port, tmp_path / "tansu-2.log")
        restarted = time.monotonic()
        saw_503 = False
        deadline = restarted + 60
        while worker.returncode is None and time.monotonic() < deadline:
            status, report = worker.health()
            saw_503 = saw_503 or (status == 503 and bool(report.get("fatal")))
            time.sleep(0.2)
        code = worker.wait_exit(5)
        log = worker.log_path.read_text(errors="replace")
        if code is None and "FATAL" in log:
            worker.fail(f"the worker logged FATAL (/health 503 seen: {saw_503}) but was still "
                        "running 60 s after the broker restart: it must exit with code "
                        f"{EXIT_FATAL}")
        if code is None:
            worker.fail("the worker carried on for 60 s against a broker that lost its topics "
                        "and data")
        assert code == EXIT_FATAL, (code, worker.log_tail(40))
        assert saw_503 or "FATAL" in log
        fatal = [ln for ln in log.splitlines() if "FATAL" in ln]
        print(f"broker restarted empty: exit {code} {time.monotonic() - restarted:.1f}s after "
              f"the restart; {fatal[:1]}")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_broker_gone_for_good_is_fatal_after_the_outage_allowance(
        workers: Workers, tmp_path: Path) -> None:
    """The broker vanishes right after the worker started (so possibly before its watchdog
    ever reached it): after ``broker_outage_seconds`` the worker must exit with code 3."""
    b = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        s = settings_on(b.bootstrap, "gone")
        worker = workers.start(s, broker_outage_seconds=10)
        worker.wait_ready(partitions=0)
        b.stop()
        code = worker.wait_exit(60)
        if code is None:
            worker.fail("still running 60 s after the broker went away (allowance 10 s)")
        log = worker.log_path.read_text(errors="replace")
        assert code == EXIT_FATAL, (f"exit {code}, expected {EXIT_FATAL}; last lines:\n"
                                    f"{worker.log_tail(25)}")
        assert "FATAL" in log and "unreachable" in log
        # the client's errors of the outage's last window were held back: the fatal exit
        # counts them (agents/kafka/logrepeats.py) instead of dropping them
        assert "like this held back over the last" in log.split("FATAL", 1)[1], \
            worker.log_tail(25)
    finally:
        b.stop()


def test_worker_rides_out_a_short_broker_freeze(workers: Workers, tmp_path: Path) -> None:
    """A broker that stops answering for a few seconds, then answers with its data intact
    (SIGSTOP/SIGCONT: the embedded broker keeps data only in memory, so a restart would be
    the fatal case above): the worker must neither exit nor lose anything."""
    b = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        s = settings_on(b.bootstrap, "freeze")
        worker = workers.start(s)
        worker.wait_ready()
        before = _apply_some(worker, b.bootstrap, s, "before")
        assert b.pid is not None
        os.kill(b.pid, signal.SIGSTOP)
        try:
            time.sleep(5.0)  # the outage itself, not an assertion
        finally:
            os.kill(b.pid, signal.SIGCONT)
        after = _apply_some(worker, b.bootstrap, s, "after")
        assert worker.returncode is None
        worker.wait_for(lambda: worker.health()[0] == 200, 30, "/health 200 after the freeze")
        assert all(worker.user(u) for u in before + after)
        assert worker.metric("journey_healthy") == 1
    finally:
        b.stop()
