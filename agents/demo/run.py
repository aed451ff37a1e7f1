"""``journey demo``: the embedded broker, one worker and a synthetic storefront, on a
simulated clock that runs days per second.

The worker is an ordinary ``journey worker`` subprocess, told not to stamp wall-clock
ticks: the storefront owns time (see :mod:`agents.demo.feed`), so shoppers who stop get
churn warnings and recall triggers within a minute or two of wall time. Thresholds are
compressed to a grocer's rhythm (a purchase every week or so), which keeps them realistic
in simulated days. The demo reads the alerts back from Kafka and scrapes the worker's
/metrics, and shows both live on a terminal (:mod:`agents.demo.view`); the worker child
and its settings are in :mod:`agents.demo.worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agents.broker import EmbeddedBroker, free_port
from agents.demo.feed import SimClock, Storefront, publish
from agents.demo.view import (
    CLEAR,
    ENTER_ALT,
    LEAVE_ALT,
    Snapshot,
    alert_lines,
    render_frame,
    render_status,
    render_summary,
)
from agents.demo.watch import RateMeter, Tally, WorkerMetrics, follow_outputs, scrape
from agents.demo.worker import DEMO_THRESHOLDS, WorkerProcess, demo_settings
from agents.kafka.topics import Topics, create_topics
from streams.settings import Settings
from streams.synth import SynthConfig, iter_events

DEFAULT_SPEED = 2.0  # simulated days per wall second
UNATTENDED_DURATION = 90.0  # seconds, when stdout is not a terminal and no --duration
DEMO_USERS = 200
OPEN_ENDED_DAYS = 365.0  # the storefront's window when the demo runs until Ctrl-C
SEED = 7
STEP_SECONDS = 0.25  # one storefront step: due events, then a tick per partition
FRAME_SECONDS = 0.5
STATUS_SECONDS = 10.0
READY_TIMEOUT = 120.0  # the worker must own its partitions by then
DRAIN_TIMEOUT = 10.0
# Below this share of the storefront's events applied, the worker stalled (a crashed agent
# is restarted by faust, so the process lives on) rather than merely fell behind.
MIN_APPLIED_SHARE = 0.8
# A little of what real storefronts send: Segment calls, re-sends and broken lines.
SEGMENT_SHARE, DUPLICATE_SHARE, BAD_SHARE = 0.1, 0.002, 0.0005


@dataclasses.dataclass
class Demo:
    """One run's moving parts and observations."""

    settings: Settings
    speed: float
    duration: float | None
    tty: bool
    workdir: Path
    broker_pid: int | None
    worker: WorkerProcess
    storefront: Storefront
    sim_start: float
    started: float  # monotonic, when `journey demo` began
    phase: str = "starting"
    clock: SimClock | None = None
    clock_started: float | None = None  # monotonic
    clock_stopped: float | None = None
    sim_now: float | None = None
    metrics: WorkerMetrics | None = None
    tally: Tally = dataclasses.field(default_factory=Tally)
    produced_meter: RateMeter = dataclasses.field(default_factory=RateMeter)
    applied_meter: RateMeter = dataclasses.field(default_factory=RateMeter)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def port(self) -> int:
        return self.settings.web_port

    @property
    def produced(self) -> int:
        return self.storefront.events + self.storefront.malformed

    def snapshot(self) -> Snapshot:
        latest = self.tally.latest(1)
        user = (latest[0].get("user_id") if latest else self.storefront.last_user) or "u000000"
        return Snapshot(
            phase=self.phase, elapsed=time.monotonic() - self.started, speed=self.speed,
            sim_start=self.sim_start, sim_now=self.sim_now, users=DEMO_USERS,
            produced=self.produced, malformed=self.storefront.malformed,
            produced_rate=self.produced_meter.rate, applied_rate=self.applied_meter.rate,
            metrics=self.metrics, tally=self.tally,
            metrics_url=f"http://127.0.0.1:{self.port}/metrics",
            state_url=f"http://127.0.0.1:{self.port}/users/{user}",
            worker_pid=self.worker.pid, broker_pid=self.broker_pid,
            workdir=str(self.workdir), duration=self.duration,
            ready_after=None if self.clock_started is None
            else self.clock_started - self.started, notes=self.notes)

    def produced_per_second(self) -> float:
        if self.clock_started is None:
            return 0.0
        end = self.clock_stopped or time.monotonic()
        return self.produced / max(1e-9, end - self.clock_started)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    tty = sys.stdout.isatty()
    duration: float | None = args.duration
    if duration is None and not tty:
        duration = UNATTENDED_DURATION
    speed = args.speed if args.speed is not None else DEFAULT_SPEED
    if (duration is not None and duration <= 0) or speed <= 0:
        print("journey demo: --duration and --speed must be positive", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="journey-demo-"))
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    worker: WorkerProcess | None = None
    # The broker shares our terminal; with SIGINT blocked (the mask is inherited) a Ctrl-C
    # leaves it up until the worker has stopped cleanly.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        broker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        app_id = f"journey-demo-{uuid.uuid4().hex[:8]}"
        s = demo_settings(settings, bootstrap=broker.bootstrap, app_id=app_id,
                          web_port=free_port(), speed=speed).with_overrides(
                              data_dir=str(workdir / "data"))
        topics = Topics.from_settings(s)
        asyncio.run(create_topics(broker.bootstrap, [topics.events, topics.repartition,
                                                     *topics.outputs()],
                                  s.partitions, s.replication_factor))
        worker = WorkerProcess(s, workdir / "worker.log")
        worker.start()
        print(f"journey demo: broker pid {broker.pid} at {broker.bootstrap}; worker pid "
              f"{worker.pid}, app id {app_id}, web port {s.web_port}; logs in {workdir}",
              flush=True)
        sim_start = float(int(time.time()))
        days = max(14.0, speed * duration) if duration is not None else OPEN_ENDED_DAYS
        cfg = SynthConfig(users=DEMO_USERS, days=days, start=sim_start, seed=SEED,
                          base_cycle_days=DEMO_THRESHOLDS["purchase_cycle_days"],
                          segment_share=SEGMENT_SHARE, duplicate_share=DUPLICATE_SHARE,
                          bad_share=BAD_SHARE)
        demo = Demo(s, speed, duration, tty, workdir, broker.pid, worker,
                    Storefront(iter_events(cfg), s.partitions), sim_start, started)
        ready, interrupted = asyncio.run(_session(demo))
        died = worker.died()
        stopped_with = worker.stop()
        broker.stop()
        return _verdict(demo, ready, interrupted, died, stopped_with)
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


async def _session(demo: Demo) -> tuple[bool, bool]:
    """Run until the duration ends, Ctrl-C, or the worker dies; returns (the worker became
    ready, the run was interrupted)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    loop = asyncio.get_running_loop()
    stop, done = asyncio.Event(), asyncio.Event()
    interrupted: list[int] = []

    def on_signal(sig: int) -> None:
        interrupted.append(sig)
        stop.set()
        loop.remove_signal_handler(sig)  # a second Ctrl-C interrupts the clean-up itself

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    s, topics = demo.settings, Topics.from_settings(demo.settings)
    producer = AIOKafkaProducer(bootstrap_servers=s.broker, client_id="journey-demo-store",
                                acks=1, linger_ms=0, max_batch_size=256 * 1024)
    kinds = {topics.churn_warnings: "alert", topics.recall_triggers: "alert",
             topics.dead_letter: "dead_letter"}
    consumer = AIOKafkaConsumer(*kinds, bootstrap_servers=s.broker, group_id=None,
                                client_id="journey-demo-watch", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tasks = [asyncio.create_task(follow_outputs(consumer, kinds, demo.tally, done,
                                                demo.workdir / "dead-letters.jsonl")),
             asyncio.create_task(_watch_metrics(demo, done)),
             asyncio.create_task(_show(demo, done))]
    if demo.tty:
        sys.stdout.write(ENTER_ALT)
    try:
        ready = await _wait_ready(demo, stop)
        if ready:
            await _run_storefront(demo, producer, topics.events, stop)
        demo.phase = "stopping"
        if ready and not demo.worker.died():
            await _drain(demo)
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if demo.tty:
            sys.stdout.write(LEAVE_ALT)
            sys.stdout.flush()
        await producer.stop()
        await consumer.stop()
    return ready, bool(interrupted)


def _past(demo: Demo) -> bool:
    return demo.duration is not None and time.monotonic() - demo.started >= demo.duration


async def _wait_ready(demo: Demo, stop: asyncio.Event) -> bool:
    """Until the worker owns every input partition (as its /metrics says)."""
    while not (stop.is_set() or demo.worker.died() or _past(demo)):
        m = demo.metrics
        if m is not None and m.assigned_partitions >= demo.settings.partitions:
            return True
        if time.monotonic() - demo.started > READY_TIMEOUT:
            break
        await asyncio.sleep(0.2)
    return False


async def _run_storefront(demo: Demo, producer: Any, topic: str, stop: asyncio.Event) -> None:
    demo.clock = SimClock(demo.sim_start, time.time(), demo.speed)
    demo.clock_started = time.monotonic()
    demo.phase = "running"
    if not demo.tty:
        print(f"[{demo.clock_started - demo.started:5.1f}s] the worker owns its "
              f"{demo.settings.partitions} partitions; the simulated clock starts at "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(demo.sim_start))}, "
              f"{demo.speed:g} days per second", flush=True)
    while not (stop.is_set() or demo.worker.died() or _past(demo)):
        began = time.monotonic()
        demo.sim_now = demo.clock.at(time.time())
        await publish(producer, topic, demo.storefront.due(demo.sim_now))
        demo.produced_meter.add(time.monotonic(), demo.produced)
        if demo.storefront.exhausted and demo.phase == "running":
            demo.phase = "storefront closed"
            demo.notes.append("The simulated storefront's window has ended; the clock keeps "
                              "ticking, so the last shoppers still lapse.")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, STEP_SECONDS - (time.monotonic() - began)))
    demo.clock_stopped = time.monotonic()


async def _drain(demo: Demo) -> None:
    """Let the worker finish what was sent, and the watcher read what it published."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline and not demo.worker.died():
        m = demo.metrics
        if m is not None and m.consumed >= demo.produced \
                and sum(demo.tally.alerts.values()) >= sum(m.alerts.values()):
            return
        await asyncio.sleep(0.2)


async def _watch_metrics(demo: Demo, done: asyncio.Event) -> None:
    url = f"http://127.0.0.1:{demo.port}/metrics"
    while not done.is_set():
        m = await asyncio.to_thread(scrape, url)
        if m is not None:
            demo.metrics = m
            demo.applied_meter.add(time.monotonic(), m.applied)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), FRAME_SECONDS)


async def _show(demo: Demo, done: asyncio.Event) -> None:
    """Redraw the terminal view; without a terminal, a status line now and then and a line
    for the first alert of each type."""
    last_status = 0.0
    announced: set[str] = set()
    while not done.is_set():
        snap = demo.snapshot()
        if demo.tty:
            width = shutil.get_terminal_size((120, 40)).columns
            sys.stdout.write(CLEAR + render_frame(snap, width))
        else:
            if snap.elapsed - last_status >= STATUS_SECONDS:
                last_status = snap.elapsed
                print(render_status(snap))
            for kind, after in sorted(demo.tally.first_after.items(), key=lambda kv: kv[1]):
                if kind not in announced:
                    announced.add(kind)
                    example = demo.tally.examples.get(kind, [{}])[0]
                    # stamped when printed, so the lines stay in order; ``after`` is
                    # when the alert came in, up to a frame earlier
                    now = max(snap.elapsed, after)
                    print(f"[{now:5.1f}s] first {kind} (in at {after:.1f}s): "
                          f"{alert_lines(example)[0]}")
        sys.stdout.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), FRAME_SECONDS)


def _verdict(demo: Demo, ready: bool, interrupted: bool, died: bool,
             stopped_with: int | None) -> int:
    """Print the summary and decide the exit status."""
    demo.phase = "stopped"
    if not died and stopped_with not in (None, 0):
        demo.notes.append(f"  note: the worker exited with status {stopped_with} when stopped "
                          f"(see {demo.worker.log_path})")
    errors = demo.worker.log_errors()
    if errors:
        demo.notes.append(f"  WARNING: the worker logged {len(errors)} errors; the first:\n"
                          f"    {errors[0]}")
    print(render_summary(demo.snapshot(), demo.produced_per_second()), end="", flush=True)
    if died:
        print(f"journey demo: FAILED: the worker exited with status {demo.worker.exit_code}; "
              f"last lines of {demo.worker.log_path}:\n{demo.worker.log_tail()}",
              file=sys.stderr)
        return 1
    if not ready and not interrupted:
        print(f"journey demo: FAILED: the worker did not take its partitions within "
              f"{min(READY_TIMEOUT, demo.duration or READY_TIMEOUT):.0f}s; see "
              f"{demo.worker.log_path}", file=sys.stderr)
        return 1
    if interrupted:
        return 130 if demo.duration is not None else 0
    m, sent = demo.metrics, demo.storefront.events
    if m is not None and m.applied < MIN_APPLIED_SHARE * sent:
        print(f"journey demo: FAILED: the worker applied only {int(m.applied)} of {sent} events: "
              f"it stalled (or crashed and was restarted) rather than fell behind; "
              f"{len(errors)} errors in {demo.worker.log_path}"
              + (f", the first:\n  {errors[0]}" if errors else ""), file=sys.stderr)
        return 1
    missing = [k for k in ("churn_warning", "recall_trigger") if not demo.tally.alerts.get(k)]
    if missing:
        print(f"journey demo: FAILED: no {' and no '.join(missing)} within "
              f"{demo.duration:.0f}s (the demo promises both); see {demo.workdir}",
              file=sys.stderr)
        return 1
    return 0
