"""Live workers for tests and benchmarks: ``journey worker`` run as a process, with its
HTTP endpoints (health, metrics, /users), its log, and the waits a test needs.

Not a test module (no ``test_`` prefix): the worker tests import it. Every wait here polls
until a condition holds or a generous deadline passes (the CI box is a busy 2-core machine),
and a failed wait says what it waited for and shows the tail of the worker's log. Records
go in and out with :mod:`agents.testing.kafka_io`; replay's answer to compare with comes
from :mod:`agents.testing.replay_check`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from agents.broker import free_port
from agents.process import log_tail, parent_death_signal
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4  # of every topic a test makes, and of the workers' settings
# Short group timings: the embedded broker makes a join wait half the session timeout.
FAST_GROUP = {"session_timeout_seconds": 6.0, "heartbeat_interval_seconds": 1.0}
# How a worker is started; a module attribute so a run can point it at another build.
WORKER_COMMAND = [sys.executable, "-m", "agents.cli", "worker"]


# --- the worker process ----------------------------------------------------------------------

@dataclass
class Worker:
    """One ``journey worker`` subprocess with its web port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    # --- HTTP ---

    def get(self, path: str, timeout: float = 5.0) -> tuple[int | None, bytes]:
        """(status, body); status None when nothing answered."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, urllib.error.URLError):
            return None, b""

    def health(self) -> tuple[int | None, dict[str, Any]]:
        status, body = self.get("/health")
        try:
            return status, orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return status, {}

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample as {(name, sorted label pairs): value}; empty if unreachable."""
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def metric(self, name: str, samples: dict[Any, float] | None = None,
               **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        samples = self.metrics() if samples is None else samples
        return sum(v for (n, lbl), v in samples.items()
                   if n == name and all(dict(lbl).get(k) == want for k, want in labels.items()))

    def user(self, user_id: str, wait: float = 60.0) -> dict[str, Any] | None:
        """The user's state, None if unknown (404). A worker that is starting does not
        answer yet, and one that is not ready, or cannot reach the user's owner, answers
        503 for a while (a start, a rebalance, a failover): asked again for up to
        ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            status, body = self.get(f"/users/{user_id}")
            if status == 200:
                return dict(orjson.loads(body))
            if status not in (None, 503) or time.monotonic() > deadline \
                    or self.returncode is not None:
                break
            time.sleep(0.2)
        assert status == 404, f"/users/{user_id} answered {status}: {body[:300]!r}"
        return None

    def user_when_up(self, user_id: str) -> dict[str, Any] | None:
        """Like :meth:`user`, but None while the worker is starting or not ready (no
        answer, or 503), as a restarted worker is for a while."""
        status, _ = self.get(f"/users/{user_id}")
        return None if status in (None, 503) else self.user(user_id)

    # --- life cycle ---

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines, missing="(no log)")

    def fail(self, message: str) -> None:
        import pytest

        pytest.fail(f"{message}\n--- worker log ({self.log_path}), last lines ---\n"
                    f"{self.log_tail()}", pytrace=False)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 interval: float = 0.5) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail (with the log) if
        the deadline passes or the worker exits first."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got:
                return got
            if self.returncode is not None:
                self.fail(f"worker exited with code {self.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def wait_users(self, events: list[dict[str, Any]], timeout: float, what: str) -> None:
        """Until /users knows the user of every one of ``events`` (sentinels: then the
        worker has handled everything produced before them). A worker that rebalances
        meanwhile (another one joined late) answers 503 for a while: not yet, not an error."""
        self.wait_for(lambda: all(self.user_when_up(e["user_id"]) for e in events), timeout,
                      what)

    def wait_ready(self, timeout: float = 90.0, partitions: int = PARTITIONS) -> dict[str, Any]:
        """Until /health is 200 and ``partitions`` input partitions have a restored
        processor (restored when the table was, so /users answers for every user; no
        record need have been handled yet). ``partitions=0``: until the worker owns
        partitions (journey_assigned_partitions > 0)."""

        def ready() -> dict[str, Any] | None:
            status, report = self.health()
            if status != 200:
                return None
            if partitions == 0:
                return report if self.metric("journey_assigned_partitions") > 0 else None
            return report if len(report.get("partitions") or []) >= partitions else None

        what = (f"/health 200 with {partitions} partitions" if partitions
                else "/health 200 and assigned partitions")
        return dict(self.wait_for(ready, timeout, what))

    def wait_published(self, timeout: float = 60.0) -> None:
        """Until the batch in hand now has been published: its state records acknowledged
        by the changelog. ``/users`` shows a batch's states before that, so a kill -9
        just after a read can lose what it showed (the input is applied again after the
        restart). Batches run one at a time and the ticker makes new ones."""

        def batches() -> int:
            return int(self.health()[1].get("batches") or 0)

        seen = batches()
        self.wait_for(lambda: batches() > seen, timeout, "the batch in hand published")

    def wait_quiet(self, quiet: float = 3.0, timeout: float = 60.0) -> None:
        """Until the output counters stay put for ``quiet`` s: sentinels on the input topic
        do not cover referral credits, which come round through the repartition topic."""
        names = ("journey_events_applied_total", "journey_events_duplicate_total",
                 "journey_dead_letters_total", "journey_lifecycle_transitions_total",
                 "journey_alerts_total", "journey_healed_records_total")
        seen: dict[str, Any] = {"counts": None, "since": time.monotonic()}

        def settled() -> bool:
            m = self.metrics()
            counts = tuple(self.metric(n, m) for n in names)
            now = time.monotonic()
            if counts != seen["counts"]:
                seen.update(counts=counts, since=now)
            return bool(m) and now - seen["since"] >= quiet

        self.wait_for(settled, timeout, f"the counters to stay put for {quiet:.0f}s",
                      interval=0.5)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait; SIGKILL (and fail) if it does not stop in time."""
        if self.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
            self.fail(f"worker ignored SIGTERM for {timeout:.0f}s")
        return int(self.proc.returncode)

    def kill(self) -> int:
        if self.returncode is None:
            self.proc.kill()
        return self.proc.wait(30)


def worker_env(settings: Settings, web_port: int, **overrides: Any) -> dict[str, str]:
    """The environment of a worker process: ours without JOURNEY_*, then the test's names,
    the fast group timings, and ``overrides`` (setting names, any value type)."""
    values: dict[str, Any] = {**FAST_GROUP, "broker": settings.broker,
                              "app_id": settings.app_id, "topic_prefix": settings.topic_prefix,
                              "partitions": PARTITIONS, "web_port": web_port, **overrides}
    env = settings.with_overrides(**values).to_env(os.environ, values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def replay_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The same settings for ``journey replay`` (which ignores the Kafka ones)."""
    return worker_env(settings, 0, **overrides)


class Workers:
    """Starts workers for one test and makes sure none outlives it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Worker] = []

    def start(self, settings: Settings, **overrides: Any) -> Worker:
        port = free_port()
        # one data folder per test: a restarted worker finds its files (rocksdb://) again
        overrides.setdefault("data_dir", self.tmp_path / "data")
        env = worker_env(settings, port, **overrides)
        log_path = self.tmp_path / f"worker-{len(self.started) + 1}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - the child holds its own descriptor
        try:
            proc = subprocess.Popen(list(WORKER_COMMAND), cwd=ROOT, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    preexec_fn=parent_death_signal())  # noqa: PLW1509
        finally:
            log.close()
        worker = Worker(proc, port, log_path)
        self.started.append(worker)
        return worker

    def cleanup(self) -> None:
        for w in self.started:
            if w.returncode is None:
                w.kill()
