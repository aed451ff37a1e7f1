"""Leaner faust plumbing for the worker, measured in ``bench/faust_paths.py``.

faust's default Monitor keeps per-event statistics for its own web pages, and its
consumer wraps every delivered message in a four-task ``wait_first``. Removing both made
a no-op agent about 3.5x faster on the embedded broker; journey exports its own
Prometheus series and handles rebalances through the fetcher, so it needs neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.kafka.inbox import Inbox


def lean_monitor_class() -> type:
    """A faust Monitor without the per-message and per-event bookkeeping.

    The default Monitor updates counters, deques and timestamps four times per event
    for faust's own web stats; journey exports its own Prometheus series instead.
    """
    from faust.sensors.monitor import Monitor

    class LeanMonitor(Monitor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any,
                               event: Any) -> None:
            return None

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                                state: Any = None) -> None:
            return None

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_table_get(self, table: Any, key: Any) -> None:
            return None

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            return None

    return LeanMonitor


def lean_app_class(fetch_max_wait_seconds: float = 1.5) -> type:
    """A faust App whose consumer hands each fetched message straight to the conductor,
    or, for the topics of the app's :class:`~agents.kafka.inbox.Inbox`, each fetched run
    of them as one batch.

    faust's drain loop wraps every message in ``Service.wait_first(callback(message),
    suspend_flow.wait())``, which creates four tasks and an ``asyncio.wait`` per message so
    that a rebalance can interrupt a delivery blocked on a full stream buffer. Here the
    delivery is awaited directly: a set ``suspend_flow`` ends the current round at the next
    message, and what a rebalance made stale meanwhile is dropped downstream (the conductor
    waits on flow control; the inbox checks its clears and the consumer generation).
    """
    import faust
    from faust.transport.drivers import aiokafka as faust_aiokafka

    wait_ms = max(0, int(fetch_max_wait_seconds * 1000))

    class ShortFetchThread(faust_aiokafka.AIOKafkaConsumerThread):
        # faust fixes fetch_max_wait_ms at 1500; a broker that holds each fetch that long
        # (the embedded one does) adds up to that much to every record's latency
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = wait_ms
            return consumer

    class LeanConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ShortFetchThread(self, loop=self.loop, beacon=self.beacon)

        async def _drain_messages(self, fetcher: Any) -> None:
            try:
                await self._deliver_fetched(fetcher)
            except self.consumer_stopped_errors:
                if not self.transport.app.should_stop:
                    raise  # the client died under us while we were meant to be running
            except asyncio.CancelledError:
                # faust stops the fetcher at every rebalance by cancelling this loop, and
                # restarts it after recovery. A cancel that lands while the loop waits
                # (rather than at its own stop check) would reach faust's fetcher as a
                # crash, which, with no supervisor there, stops the worker (exit 1).
                if fetcher._stopped.is_set() or self.transport.app.should_stop:
                    return
                raise

        async def _deliver_fetched(self, fetcher: Any) -> None:
            deliver = self.callback
            read_offsets = self._read_offset
            every = self._commit_every
            acking = self.app.topics.acks_enabled_for
            suspended = self.suspend_flow.is_set
            stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
            inbox: Inbox | None = getattr(self.app, "inbox", None)
            batched = inbox.topics if inbox is not None else frozenset()
            max_batch = inbox.max_batch if inbox is not None else 0
            while not (stopped() or fetcher_stopped()):
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)
                since_yield = 0
                batch: list[Any] = []
                begun = 0  # the inbox's clears when the batch's first record was read
                async for tp, message in records:
                    if suspended():
                        batch = []  # a rebalance: seeks back to the committed offsets
                        break
                    offset, last = message.offset, read_offsets[tp]
                    if last is not None and offset < last:
                        continue  # already delivered (re-fetch after a seek)
                    if last and offset - last > 1 and acking(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if every is not None and self._n_acked >= every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in batched:
                        if not batch:
                            begun = inbox.clears  # type: ignore[union-attr]
                        batch.append(message)
                        read_offsets[tp] = offset
                        if len(batch) >= max_batch:
                            put = await inbox.put(batch, begun)  # type: ignore[union-attr]
                            batch = []
                            if not put:
                                break  # the rest of the round is as stale
                        continue
                    await deliver(message)
                    read_offsets[tp] = offset
                    since_yield += 1
                    if since_yield >= 256:  # let the agents drain their buffers
                        since_yield = 0
                        await asyncio.sleep(0)
                if batch:
                    await inbox.put(batch, begun)  # type: ignore[union-attr]

    class LeanTransport(faust_aiokafka.Transport):
        Consumer = LeanConsumer

    class LeanApp(faust.App):
        # Called with the reason when a service crashes the app (a timer, a callback, the
        # consumer thread), before faust's own shutdown, which can hang on a lost broker.
        on_service_crash: Callable[[BaseException], None] | None = None
        # Where the consumer puts its input topics' records, in batches (see
        # ``agents.kafka.inbox``); None: every record goes through faust's conductor.
        inbox: Inbox | None = None

        def _new_transport(self) -> Any:
            return LeanTransport(self.conf.broker_consumer, self)

        def _crash(self, reason: BaseException) -> None:
            if self.on_service_crash is not None:
                self.on_service_crash(reason)
            super()._crash(reason)

    return LeanApp
