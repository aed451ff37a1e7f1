"""Batches of input records, handed from the consumer's fetch loop to the state loop.

faust would deliver each record through its conductor, a channel queue and a stream,
only for an agent to gather them into batches again; that machinery cost as much as the
lifecycle core (measured in ``bench/worker_throughput.py``). The lean consumer
(``agents.kafka.fastpath``) instead puts each fetched run of input records here as one
list, and the worker's state loop takes it whole.

faust's flow control manages the inbox as it manages stream buffers: a rebalance clears
it, and the records in it were never tracked, so faust does not wait for them (it seeks
back to the committed offsets afterwards). The state loop tracks a batch's records when
it takes the batch and acknowledges them once its outputs and state are acknowledged; a
rebalance waits for those (``stream_wait_empty``), as it waited for an agent's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Inbox:
    """Lists of faust messages of ``topics``, at most ``max_batch`` each, ``depth`` deep;
    :meth:`take` joins those waiting into one batch of up to ``max_batch``."""

    def __init__(self, app: Any, topics: frozenset[str], max_batch: int,
                 depth: int = 4) -> None:
        self.topics = topics
        self.max_batch = max_batch
        self.depth = depth
        self._app = app
        self._batches: deque[list[Any]] = deque()
        self._waiting = asyncio.Event()  # set: a batch is waiting
        self._room = asyncio.Event()  # set: a batch may be put
        self._room.set()
        self._clears = 0
        self._flow = app.flow_control
        self._flow.manage_queue(self)  # cleared on revoke and on resume

    @property
    def clears(self) -> int:
        """How many times a rebalance has cleared the inbox: a batch begun before the
        latest clear is stale (see :meth:`put`)."""
        return self._clears

    async def put(self, messages: list[Any], begun: int | None = None) -> bool:
        """Wait for room (and for flow to be active), then hand over ``messages``, whose
        first record was read when :attr:`clears` was ``begun``. False: a rebalance since
        made them stale and they were dropped, as what was already here was."""
        clears = self._clears if begun is None else begun
        await self._flow.acquire()
        while len(self._batches) >= self.depth:
            self._room.clear()
            await self._room.wait()
        if self._clears != clears or not self._flow.is_active():
            return False
        self._batches.append(messages)
        self._waiting.set()
        return True

    async def take(self) -> list[Any]:
        """The next batch, its records tracked: a rebalance now waits for their acks.
        Records fetched under an earlier consumer generation (before a rebalance) are
        dropped unacknowledged, as faust's streams drop them."""
        while True:
            while not self._batches:
                self._waiting.clear()
                await self._waiting.wait()
            messages = self._batches.popleft()
            # what else waits, up to max_batch: under load, one batch per fetch would pay
            # a batch's acknowledged writes for each fetch, and records would queue
            batches, limit = self._batches, self.max_batch
            while batches and len(messages) + len(batches[0]) <= limit:
                messages += batches.popleft()
            self._room.set()
            if not self._flow.is_active():
                continue
            generation = self._app.consumer_generation_id
            if any(m.generation_id != generation for m in messages):
                messages = [m for m in messages if m.generation_id == generation]
                if not messages:
                    continue
            track = self._app.consumer.track_message
            for m in messages:
                track(m)
            return messages

    def done(self, messages: list[Any]) -> None:
        """Acknowledge a batch: its offsets may now be committed."""
        ack = self._app.consumer.ack
        for m in messages:
            ack(m)

    def clear(self) -> None:
        """Drop the waiting batches (faust's flow control calls this on a rebalance)."""
        self._clears += 1
        self._batches.clear()
        self._room.set()

    def __len__(self) -> int:
        return len(self._batches)
