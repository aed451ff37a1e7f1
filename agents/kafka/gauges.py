"""The gauges a worker refreshes every few seconds: users by stage and funnel step, the
operating rates, the timers, and each owned partition's consumer lag."""

from __future__ import annotations

from collections.abc import Iterable

from agents.kafka.metrics import Metrics
from streams.core.processor import PartitionProcessor
from streams.core.state import FUNNEL, STAGES


class Gauges:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lag_labels: set[str] = set()

    def set_lag(self, partition: int, highwater: int, consumed: int) -> None:
        """Records of ``partition`` behind its high-water mark; ``consumed`` is the newest
        offset applied."""
        label = str(partition)
        self._lag_labels.add(label)
        self.metrics.consumer_lag.labels(label).set(max(0, highwater - (consumed + 1)))

    def forget(self, partition: int) -> None:
        """No lag gauge for a partition this worker no longer owns."""
        label = str(partition)
        if label in self._lag_labels:
            self.metrics.consumer_lag.remove(label)
            self._lag_labels.discard(label)

    def refresh(self, processors: Iterable[PartitionProcessor], now: float) -> None:
        """The population gauges from the processors' census and timers, as of ``now``."""
        m = self.metrics
        stages: dict[str, int] = {}
        funnel: dict[int, int] = {}
        users = buyers = repeaters = referrers = active = 0
        pending = backlog = 0
        for proc in processors:
            for (stage, fidx, buyer, repeat, referrer), count in proc.census.items():
                stages[stage] = stages.get(stage, 0) + count
                funnel[fidx] = funnel.get(fidx, 0) + count
                users += count
                buyers += count * buyer
                repeaters += count * repeat
                referrers += count * referrer
                if stage not in ("declining", "churned"):
                    active += count
            pending += len(proc.index)
            backlog += proc.index.due_count(now)
        for s in STAGES:
            m.users.labels(s).set(stages.get(s, 0))
        for i, name in enumerate(FUNNEL):
            m.funnel_users.labels(name).set(funnel.get(i, 0))
        m.operating_rate.labels("retention").set(active / users if users else 0.0)
        m.operating_rate.labels("conversion").set(buyers / users if users else 0.0)
        m.operating_rate.labels("repeat").set(repeaters / buyers if buyers else 0.0)
        m.operating_rate.labels("referral").set(referrers / users if users else 0.0)
        m.timers_pending.set(pending)
        m.timer_backlog.set(backlog)
