"""``journey demo``: the simulated storefront's records, and the whole demo end to end."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from agents.demo.feed import Storefront, event_time
from agents.demo.watch import parse_metrics
from agents.demo.worker import demo_settings
from agents.kafka.metrics import Metrics
from agents.kafka.records import TICK
from agents.kafka.topics import KIND_HEADER
from streams.core.partitioning import partition_for
from streams.settings import Settings
from streams.synth import SynthConfig, iter_events

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


def test_storefront_publishes_events_when_simulated_time_reaches_them() -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
    cfg = SynthConfig(users=40, days=20, start=start, seed=3, segment_share=0.2,
                      bad_share=0.02)
    items = list(iter_events(cfg))
    good = {orjson.dumps(i): i for i in items if isinstance(i, dict)}
    store = Storefront(iter(items), partitions=3)
    seen: list[bytes] = []
    previous = start
    for step in range(1, 41):
        now = start + step * 0.5 * DAY
        out = store.due(now)
        assert sorted(out) == [0, 1, 2]
        for partition, records in out.items():
            *events, tick = records
            assert tick.headers == [(KIND_HEADER, TICK)] and tick.key is None
            assert float(tick.value) == now
            for r in records:
                assert r.timestamp_ms == int(now * 1000)
            for r in events:
                assert r.key is not None
                assert partition_for(r.key.decode(), 3) == partition
                item = good.get(r.value)  # None: a malformed line, sent with the next event
                if item is not None:
                    assert previous < event_time(item) <= now  # due now, not before
            if events:
                assert events[-1].value in good
            seen += [r.value for r in events]
        previous = now
    assert store.exhausted
    expected = [item.encode() if isinstance(item, str) else orjson.dumps(item) for item in items]
    assert sorted(seen) == sorted(expected)
    assert store.malformed == sum(isinstance(i, str) for i in items) > 0


def test_worker_is_given_exactly_the_demo_settings() -> None:
    base = Settings().with_overrides(partitions=3, channels=["email", "sms"],
                                     hash_user_ids_in_logs=True)
    s = demo_settings(base, bootstrap="127.0.0.1:9", app_id="journey-demo-x", web_port=1234,
                      speed=2.0)
    assert s.tick_interval_seconds == 0  # the storefront owns the clock
    env = s.to_env({"PATH": "/bin", "JOURNEY_PURCHASE_CYCLE_DAYS": "90",
                    "JOURNEY_CONFIG": "/nowhere.toml"})
    assert env["PATH"] == "/bin"
    loaded = Settings.load(environ=env)
    assert dataclasses.asdict(loaded) == dataclasses.asdict(s)
    assert loaded.purchase_cycle_days == 7.0


def test_worker_metrics_are_read_back_from_the_exposition_text() -> None:
    from prometheus_client import generate_latest

    m = Metrics()
    m.events_applied.labels("purchase").inc(3)
    m.events_applied.labels("page_view").inc(4)
    m.events_consumed.labels("journey.events").inc(9)
    m.events_duplicate.inc(1)
    m.dead_letters.labels("not_json").inc(1)
    m.alerts.labels("churn_warning", "high", "false").inc(2)
    m.alerts.labels("churn_warning", "low", "true").inc(1)
    m.users.labels("churned").set(5)
    m.assigned_partitions.set(4)
    got = parse_metrics(generate_latest(m.registry).decode())
    assert (got.applied, got.consumed, got.duplicates) == (7, 9, 1)
    assert got.settled == 9
    assert got.alerts == {"churn_warning": 3}
    assert got.users == {"churned": 5}
    assert got.assigned_partitions == 4


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pids_with(part: str, entry: bytes) -> list[int]:
    """Processes whose /proc ``part`` (environ, cmdline) has ``entry`` as one item."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if entry in (d / part).read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_shows_churn_warnings_and_recall_triggers_then_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    done = subprocess.run([sys.executable, "-m", "agents.cli", "demo", "--duration", "75"],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=240, check=False)
    report = f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    logs = re.search(r"logs in (/\S+journey-demo-\S+)$", done.stdout, re.MULTILINE)
    if logs and done.returncode == 0:  # kept on failure, for a look
        shutil.rmtree(logs[1], ignore_errors=True)
    assert done.returncode == 0, report

    counts = re.search(r"alerts by type\s+churn_warning (\d+), recall_trigger (\d+)", done.stdout)
    assert counts, report
    assert int(counts[1]) > 0 and int(counts[2]) > 0, report
    produced = re.search(r"events produced\s+(\d+) \((\d+) malformed", done.stdout)
    applied = re.search(r"events applied\s+(\d+)", done.stdout)
    assert produced and applied, report
    assert int(applied[1]) >= 0.8 * (int(produced[1]) - int(produced[2])), report
    assert "errors; the first" not in done.stdout, report  # nothing crashed in the worker
    dead = re.search(r"dead letters\s+(.*)", done.stdout)
    assert dead, report
    # the simulated clock and record timestamps agree: nothing is too early or too late
    assert "future_timestamp" not in dead[1] and "too_late" not in dead[1], report

    header = re.search(r"broker pid (\d+) at (\S+); worker pid (\d+), app id (\S+),",
                       done.stdout)
    assert header, report
    broker_pid, listener, worker_pid, app_id = (int(header[1]), header[2], int(header[3]),
                                                header[4])
    assert not _alive(broker_pid) and not _alive(worker_pid)
    assert _pids_with("environ", f"JOURNEY_APP_ID={app_id}".encode()) == []
    assert _pids_with("cmdline", f"tcp://{listener}".encode()) == []
