"""Going live with history (docs/going-live.md): alerts before ``live_from`` are
historical, and replay's cut-over judges live input as a bootstrapped worker does."""

from __future__ import annotations

import math

from streams.core.context import PartitionContext
from streams.core.processor import PartitionProcessor
from streams.replay.engine import Replay
from streams.settings import Settings
from streams.testing import HarnessFactory, at, make_event


def test_an_alert_before_live_from_is_historical_and_not_recorded_as_sent(
        harness: HarnessFactory) -> None:
    h = harness()
    h.processor.live_from = at(20)
    h.send(make_event("u", "page_view", 0))
    h.advance_days(40)  # declining at day 7 (before going live), churned at day 30
    assert h.alert_types("u") == ["recall_trigger"]
    assert ("churn_warning", "historical") in h.suppressed
    s = h.state("u")
    assert s.stage == "churned" and s.alerts_sent == 1 and len(s.alert_times()) == 1
    assert [t["to_stage"] for t in h.transitions] == ["new", "declining", "churned"]


def test_a_comeback_after_a_historical_recall_is_attributed_to_nothing(
        harness: HarnessFactory) -> None:
    def comeback(live_from: float) -> tuple[list[str], int]:
        h = harness()
        h.processor.live_from = live_from
        h.send(make_event("u", "page_view", 0))
        h.advance_days(40)
        h.send(make_event("u", "page_view", 45))
        return h.reactivations, h.state("u").recalls

    assert comeback(at(100)) == (["none"], 0)  # nobody was sent the recall
    attributed, recalls = comeback(-math.inf)
    assert attributed in (["treated"], ["control"]) and recalls == 1


def test_live_from_is_kept_in_the_partition_checkpoint() -> None:
    settings = Settings()
    proc = PartitionProcessor(settings, {})
    proc.live_from = at(3)
    stored = proc.context().to_dict()  # as the worker writes it
    restored = PartitionProcessor(settings, {})
    restored.restore(PartitionContext.from_dict(stored), [])
    assert restored.live_from == at(3)
    restored.restore(PartitionContext.from_dict({**stored, "live_from": None}), [])
    assert restored.live_from == -math.inf
    del stored["live_from"]  # a checkpoint written before bootstrap existed
    restored.restore(PartitionContext.from_dict(stored), [])
    assert restored.live_from == -math.inf


def test_replay_cut_over_judges_live_input_as_a_bootstrapped_worker() -> None:
    historical: list[dict[str, object]] = []
    live: list[dict[str, object]] = []
    replay = Replay(Settings(), at(400), live_from=math.inf, on_historical=historical.append,
                    on_alert=live.append)
    first = make_event("a", "page_view", 0)
    replay.feed([first, make_event("b", "page_view", 5)])
    replay.cut_over(at(10), at(10))
    assert {p.clock for p in replay.processors} == {at(10)}
    assert [a["user_id"] for a in historical] == ["a"]  # a's decline, on day 7
    replay.feed([first,  # in the history too: a duplicate
                 make_event("c", "page_view", 10 - 2),  # two days behind the clocks
                 make_event("c", "page_view", 10 - 0.5),  # late, within the lateness
                 make_event("d", "page_view", 11)])
    s = replay.summary
    assert s.duplicates == 1 and s.dead_letters == {"too_late": 1}
    replay.finish(at(14))
    assert [a["user_id"] for a in live] == ["b"]  # b's decline on day 12 is live
    assert s.suppressed["churn_warning:historical"] == 1 and s.alerts["churn_warning"] == 1
