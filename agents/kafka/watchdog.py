"""The worker's watchdog, every few seconds: is the broker still there with our topics
and our data, and does input that waits get processed (see ``agents.kafka.progress``)?
Either failing is fatal: an orchestrator restart is better than a worker that silently
diverges from the changelog, or holds its partitions without processing them."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from agents.kafka.config import kafka_kwargs
from agents.kafka.runtime import Runtime, fatal, owned

log = logging.getLogger("journey.worker")

# Offsets never go backwards on a healthy broker; the slack absorbs the embedded broker's
# end offsets, which can lag by up to one record batch.
DATA_LOSS_SLACK = 1000


async def check_broker(rt: Runtime) -> None:
    """Fail loudly when the broker no longer has our topics or our data (a memory-only
    broker restarted): carrying on would silently diverge from the changelog."""
    if rt.fatal or not rt.ready or not owned(rt.app, rt.topics.events):
        return
    try:
        if rt.probe is None:
            from aiokafka.client import AIOKafkaClient

            probe = AIOKafkaClient(**kafka_kwargs(rt.settings, "aiokafka",
                                                  bootstrap=rt.bootstrap))
            await asyncio.wait_for(probe.bootstrap(), timeout=5.0)
            rt.probe = probe
        ok = await asyncio.wait_for(rt.probe.force_metadata_update(), timeout=5.0)
    except Exception:  # noqa: BLE001 - broker down: every client reconnects by itself
        ok = False
    now = time.time()
    if not ok:
        rt.broker_lost_since = rt.broker_lost_since or now
        outage = now - rt.broker_lost_since
        log.warning("broker unreachable for %.0fs (giving up after %.0fs)", outage,
                    rt.settings.broker_outage_seconds)
        if outage > rt.settings.broker_outage_seconds:
            await fatal(rt, f"broker unreachable for {outage:.0f}s")
        return
    if rt.broker_lost_since:
        log.warning("broker reachable again after %.0fs", now - rt.broker_lost_since)
        rt.broker_lost_since = 0.0
    known = rt.probe.cluster.topics()
    changelog = rt.table.changelog_topic.get_topic_name()
    required = (rt.topics.events, changelog)
    watched = (*required, rt.topics.repartition, *rt.topics.outputs())
    missing = [t for t in watched if t not in known and (t in required or t in rt.seen_topics)]
    rt.seen_topics.update(t for t in watched if t in known)
    if missing:
        await fatal(rt, f"topics vanished from the broker: {', '.join(missing)} "
                        "(deleted, or a memory-only broker restarted?)")
        return
    for tp in owned(rt.app, rt.topics.events):
        proc = rt.pipeline.processors.get(tp.partition)
        high = rt.app.consumer.highwater(tp)
        if proc is not None and high is not None and high >= 0 \
                and proc.applied_position >= 0 and high + DATA_LOSS_SLACK < proc.applied_position:
            await fatal(rt, f"{tp.topic}[{tp.partition}] ends at offset {high} but this "
                            f"worker already applied offset {proc.applied_position}: the "
                            "broker lost data")
            return


def pending_input(rt: Runtime) -> int:
    """Input records this worker owns and has not applied yet, as far as it can tell: the
    consumer's high-water marks, or the offsets its own ticks were acknowledged at."""
    app, pipeline, waiting = rt.app, rt.pipeline, 0
    for topic in (rt.topics.events, rt.topics.repartition):
        for tp in owned(app, topic):
            high = app.consumer.highwater(tp) if app.consumer else None
            end = max(high if high is not None else -1,
                      rt.acked.get((topic, tp.partition), -2) + 1)
            waiting += max(0, end - (pipeline.held(topic, tp.partition) + 1))
    return waiting


async def check_progress(rt: Runtime) -> None:
    """Fail loudly when input waits and no batch completes (see ``agents.kafka.progress``)."""
    if rt.fatal or not rt.ready:
        return
    limit = rt.settings.stall_seconds
    recovery = cast(Any, rt.app.tables).recovery  # (faust's TableManagerT does not declare it)
    if recovery.in_recovery:
        # a partition recovery has not started reading yet has no offset (None)
        read = sum(o for o in (*recovery.active_offsets.values(),
                               *recovery.standby_offsets.values()) if o is not None)
        quiet = rt.progress.recovery_stalled_for(int(read))
        if quiet > limit:
            await fatal(rt, f"table recovery read nothing for {quiet:.0f}s")
        rt.progress.idle()
        return
    waiting = pending_input(rt)
    stalled = rt.progress.stalled_for(waiting > 0)
    if stalled > limit:
        where = "holding a batch" if rt.progress.busy_since is not None else "idle"
        await fatal(rt, f"no batch completed for {stalled:.0f}s with {waiting} input "
                        f"records waiting (state loop {where})")
    elif not waiting and rt.progress.busy_since is None:
        rt.progress.idle()
