"""The gauges a worker refreshes every few seconds: users by stage and funnel step, the
operating rates, the timers, each owned partition's consumer lag and churn model, and the
uplift of recalls over the owned partitions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import Gauge

from agents.kafka.metrics import Metrics
from streams.core.processor import PartitionProcessor
from streams.core.state import FUNNEL, STAGES
from streams.core.uplift import Outcomes, uplift


class Gauges:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._lag_labels: set[str] = set()
        self._churn_labels: set[str] = set()

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
        if label in self._churn_labels:
            self._forget_churn(label)

    def _forget_churn(self, label: str) -> None:
        m = self.metrics
        for gauge in (m.churn_model_learned, m.churn_model_auc, m.churn_model_scored,
                      m.churn_training_rows):
            _remove(gauge, label)
        for measure in ("brier", "base_rate"):
            _remove(m.churn_model_quality, label, measure)
        for stage in ("declining", "churned"):
            _remove(m.churn_threshold, label, stage)
        self._churn_labels.discard(label)

    def refresh(self, processors: Iterable[PartitionProcessor], now: float) -> None:
        """The population gauges from the processors' census and timers, as of ``now``."""
        m = self.metrics
        stages: dict[str, int] = {}
        funnel: dict[int, int] = {}
        users = buyers = repeaters = referrers = satisfied = active = 0
        pending = backlog = 0
        treated, control = Outcomes(), Outcomes()
        for proc in processors:
            for (stage, fidx, buyer, repeat, referrer, happy), count in proc.census.items():
                stages[stage] = stages.get(stage, 0) + count
                funnel[fidx] = funnel.get(fidx, 0) + count
                users += count
                buyers += count * buyer
                repeaters += count * repeat
                referrers += count * referrer
                satisfied += count * happy
                if stage not in ("declining", "churned"):
                    active += count
            pending += len(proc.index)
            backlog += proc.index.due_count(now)
            outcomes = proc.census.recall_outcomes(now)
            treated, control = treated + outcomes[False], control + outcomes[True]
            self._churn(proc)
        for s in STAGES:
            m.users.labels(s).set(stages.get(s, 0))
        for i, name in enumerate(FUNNEL):
            m.funnel_users.labels(name).set(funnel.get(i, 0))
        m.operating_rate.labels("retention").set(active / users if users else 0.0)
        m.operating_rate.labels("conversion").set(buyers / users if users else 0.0)
        m.operating_rate.labels("repeat").set(repeaters / buyers if buyers else 0.0)
        m.operating_rate.labels("referral").set(referrers / users if users else 0.0)
        m.operating_rate.labels("satisfaction").set(satisfied / buyers if buyers else 0.0)
        for group, o in (("treated", treated), ("control", control)):
            m.recall_outcomes.labels(group, "settled").set(o.settled)
            m.recall_outcomes.labels(group, "returned").set(o.returned)
        u = uplift(treated, control)
        for bound, value in (("estimate", u.estimate), ("low", u.low), ("high", u.high)):
            if value is None:
                _remove(m.recall_uplift, bound)
            else:
                m.recall_uplift.labels(bound).set(value)
        m.timers_pending.set(pending)
        m.timer_backlog.set(backlog)

    def _churn(self, proc: PartitionProcessor) -> None:
        """The partition's churn model as its last snapshot refit left it."""
        churn = proc.model.churn
        if churn is None:
            return
        m, label = self.metrics, str(proc.partition)
        self._churn_labels.add(label)
        m.churn_model_learned.labels(label).set(1.0 if churn.learned else 0.0)
        m.churn_training_rows.labels(label).set(churn.rows)
        if churn.learned:
            m.churn_threshold.labels(label, "declining").set(churn.declining_threshold)
            m.churn_threshold.labels(label, "churned").set(churn.churned_threshold)
        q = churn.quality
        if q is not None:
            if q.auc is not None:
                m.churn_model_auc.labels(label).set(q.auc)
            m.churn_model_quality.labels(label, "brier").set(q.brier)
            m.churn_model_quality.labels(label, "base_rate").set(q.base_rate)
            m.churn_model_scored.labels(label).set(q.n)


def _remove(gauge: Gauge, *labels: str) -> None:
    """Drop a labelled series if it exists (a gauge that never got it raises KeyError)."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
