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
        self.tracked: list[str] = []
        self.acked: list[str] = []

    def track_message(self, m: Any) -> None:
        self.tracked.append(m.name)

    def ack(self, m: Any) -> bool:
        self.acked.append(m.name)
        return True


def make(depth: int = 2) -> tuple[Inbox, Any]:
    app = SimpleNamespace(flow_control=FlowControlEvent(initially_suspended=False),
                          consumer=FakeConsumer(), consumer_generation_id=1)
    return Inbox(app, frozenset({"events"}), max_batch=3, depth=depth), app


def msgs(app: Any, *names: str) -> list[Any]:
    """Records as the consumer stamps them: with the generation they were fetched in."""
    return [SimpleNamespace(name=n, generation_id=app.consumer_generation_id) for n in names]


def names(batch: list[Any]) -> list[str]:
    return [m.name for m in batch]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_batch_is_tracked_when_taken_and_acked_when_done() -> None:
    async def main() -> None:
        inbox, app = make()
        assert await inbox.put(msgs(app, "m1", "m2"))
        assert app.consumer.tracked == []  # waiting records are not faust's to wait for
        batch = await inbox.take()
        assert names(batch) == ["m1", "m2"] and app.consumer.tracked == ["m1", "m2"]
        assert app.consumer.acked == []
        inbox.done(batch)
        assert app.consumer.acked == ["m1", "m2"]

    asyncio.run(main())


def test_a_full_inbox_holds_the_fetch_loop_and_take_joins_what_waits() -> None:
    async def main() -> None:
        inbox, app = make(depth=2)  # max_batch=3
        await inbox.put(msgs(app, "a1", "a2"))
        await inbox.put(msgs(app, "b1", "b2"))
        third = asyncio.ensure_future(inbox.put(msgs(app, "c1")))
        await settle()
        assert not third.done() and len(inbox) == 2
        assert names(await inbox.take()) == ["a1", "a2"]  # a and b together would pass 3
        assert await asyncio.wait_for(third, 1.0)
        assert names(await inbox.take()) == ["b1", "b2", "c1"]  # in order, joined
        assert app.consumer.tracked == ["a1", "a2", "b1", "b2", "c1"]

    asyncio.run(main())


def test_take_waits_for_a_batch() -> None:
    async def main() -> None:
        inbox, app = make()
        taker = asyncio.ensure_future(inbox.take())
        await settle()
        assert not taker.done()
        await inbox.put(msgs(app, "x"))
        assert names(await asyncio.wait_for(taker, 1.0)) == ["x"]

    asyncio.run(main())


def test_a_rebalance_drops_waiting_batches_and_one_being_put() -> None:
    async def main() -> None:
        inbox, app = make(depth=1)
        await inbox.put(msgs(app, "old1"))
        blocked = asyncio.ensure_future(inbox.put(msgs(app, "old2")))
        await settle()
        app.flow_control.suspend()  # what faust does on a revoke
        app.flow_control.clear()
        assert await asyncio.wait_for(blocked, 1.0) is False  # released, dropped
        assert len(inbox) == 0
        app.flow_control.resume()  # after recovery; faust then seeks to the committed offsets
        assert await inbox.put(msgs(app, "new"))
        assert names(await inbox.take()) == ["new"]
        assert app.consumer.tracked == ["new"]

    asyncio.run(main())


def test_a_batch_fetched_while_flow_is_suspended_is_dropped_at_resume() -> None:
    async def main() -> None:
        inbox, app = make()
        app.flow_control.suspend()
        pending = asyncio.ensure_future(inbox.put(msgs(app, "stale")))
        await settle()
        assert not pending.done()  # no batch enters while a rebalance is under way
        app.flow_control.resume()
        assert await asyncio.wait_for(pending, 1.0) is False
        assert len(inbox) == 0

    asyncio.run(main())


def test_a_batch_begun_before_a_clear_is_dropped_when_put_after_it() -> None:
    async def main() -> None:
        inbox, app = make()
        begun = inbox.clears  # the fetch loop read the batch's first record here
        batch = msgs(app, "r1")
        app.flow_control.suspend()  # a rebalance while the loop awaited something else
        app.flow_control.clear()
        app.flow_control.resume()
        assert await inbox.put(batch, begun) is False
        assert len(inbox) == 0
        assert await inbox.put(msgs(app, "r2"), inbox.clears)

    asyncio.run(main())


def test_records_of_an_earlier_consumer_generation_are_dropped_untracked() -> None:
    async def main() -> None:
        inbox, app = make()
        old = msgs(app, "o1", "o2")
        await inbox.put(old)
        app.consumer_generation_id = 2  # a rebalance the inbox's clears did not see
        await inbox.put(msgs(app, "n1"))
        assert names(await inbox.take()) == ["n1"]
        assert app.consumer.tracked == ["n1"]
        await inbox.put(msgs(app, "n2"))
        app.consumer_generation_id = 3
        taker = asyncio.ensure_future(inbox.take())  # nothing current: it keeps waiting
        await settle()
        assert not taker.done() and len(inbox) == 0
        await inbox.put(msgs(app, "n3"))
        assert names(await asyncio.wait_for(taker, 1.0)) == ["n3"]

    asyncio.run(main())
