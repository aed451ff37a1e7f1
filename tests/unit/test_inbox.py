"""The worker's inbox (agents/kafka/inbox.py): batches from the consumer's fetch loop to
the state loop, bounded, tracked when taken, acknowledged when done, and dropped by a
rebalance as faust drops its stream buffers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from mode.utils.queues import FlowControlEvent

from agents.kafka.inbox import Inbox


class FakeConsumer:
    def __init__(self) -> None:
        self.tracked: list[Any] = []
        self.acked: list[Any] = []

    def track_message(self, m: Any) -> None:
        self.tracked.append(m)

    def ack(self, m: Any) -> bool:
        self.acked.append(m)
        return True


def make(depth: int = 2) -> tuple[Inbox, FlowControlEvent, FakeConsumer]:
    flow = FlowControlEvent(initially_suspended=False)
    consumer = FakeConsumer()
    app = SimpleNamespace(flow_control=flow, consumer=consumer)
    return Inbox(app, frozenset({"events"}), max_batch=3, depth=depth), flow, consumer


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_is_tracked_when_taken_and_acked_when_done() -> None:
    async def main() -> None:
        inbox, _, consumer = make()
        await inbox.put(["m1", "m2"])
        assert consumer.tracked == []  # waiting records are not faust's to wait for
        batch = await inbox.take()
        assert batch == ["m1", "m2"] and consumer.tracked == ["m1", "m2"]
        assert consumer.acked == []
        inbox.done(batch)
        assert consumer.acked == ["m1", "m2"]

    asyncio.run(main())


def test_a_full_inbox_holds_the_fetch_loop_and_take_joins_what_waits() -> None:
    async def main() -> None:
        inbox, _, consumer = make(depth=2)  # max_batch=3
        await inbox.put(["a1", "a2"])
        await inbox.put(["b1", "b2"])
        third = asyncio.ensure_future(inbox.put(["c1"]))
        await settle()
        assert not third.done() and len(inbox) == 2
        assert await inbox.take() == ["a1", "a2"]  # a and b together would pass 3
        await asyncio.wait_for(third, 1.0)
        assert await inbox.take() == ["b1", "b2", "c1"]  # in order, joined
        assert consumer.tracked == ["a1", "a2", "b1", "b2", "c1"]

    asyncio.run(main())


def test_take_waits_for_a_batch() -> None:
    async def main() -> None:
        inbox, _, _ = make()
        taker = asyncio.ensure_future(inbox.take())
        await settle()
        assert not taker.done()
        await inbox.put(["x"])
        assert await asyncio.wait_for(taker, 1.0) == ["x"]

    asyncio.run(main())


def test_a_rebalance_drops_waiting_batches_and_one_being_put() -> None:
    async def main() -> None:
        inbox, flow, consumer = make(depth=1)
        await inbox.put(["old1"])
        blocked = asyncio.ensure_future(inbox.put(["old2"]))
        await settle()
        flow.suspend()  # what faust does on a revoke
        flow.clear()
        await asyncio.wait_for(blocked, 1.0)  # released, its batch dropped
        assert len(inbox) == 0
        flow.resume()  # after recovery; faust then seeks to the committed offsets
        await inbox.put(["new"])
        assert await inbox.take() == ["new"]
        assert consumer.tracked == ["new"]

    asyncio.run(main())


def test_a_batch_fetched_while_flow_is_suspended_is_dropped_at_resume() -> None:
    async def main() -> None:
        inbox, flow, _ = make()
        flow.suspend()
        pending = asyncio.ensure_future(inbox.put(["stale"]))
        await settle()
        assert not pending.done()  # no batch enters while a rebalance is under way
        flow.resume()
        await asyncio.wait_for(pending, 1.0)
        assert len(inbox) == 0

    asyncio.run(main())
