"""Every Prometheus series the worker exports, in one place.

The Grafana dashboard and the alert rules in ``deploy/`` must only name series defined
here; ``tests/deploy/test_deploy_metrics.py`` checks that mechanically.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.core.suppression import SUPPRESSION_REASONS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
EVENT_AGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


class Metrics:
    """A registry of journey's series; one per worker process (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events_consumed = Counter(
            "journey_events_consumed_total", "Input records read, by topic.", ["topic"],
            registry=r)
        self.events_applied = Counter(
            "journey_events_applied_total", "Events applied to user state, by event type.",
            ["type"], registry=r)
        self.events_duplicate = Counter(
            "journey_events_duplicate_total", "Events skipped because their id was applied "
            "already (redelivery or producer retry).", registry=r)
        self.dead_letters = Counter(
            "journey_dead_letters_total", "Rejected inputs sent to the dead-letter topic, "
            "by reason.", ["reason"], registry=r)
        self.event_age = Histogram(
            "journey_event_age_seconds", "Event time to state applied.",
            buckets=EVENT_AGE_BUCKETS, registry=r)
        self.processing_latency = Histogram(
            "journey_processing_latency_seconds", "Time to apply one consumed batch and "
            "flush its state and outputs to the broker.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.alert_latency = Histogram(
            "journey_alert_latency_seconds", "Broker timestamp of the record that triggered "
            "an alert (an event or a tick) to the alert's publication.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.consumer_lag = Gauge(
            "journey_consumer_lag", "Records behind the end of the input partition.",
            ["partition"], registry=r)
        self.users = Gauge(
            "journey_users", "Tracked users by lifecycle stage.", ["stage"], registry=r)
        self.funnel_users = Gauge(
            "journey_funnel_users", "Tracked users by funnel position.", ["stage"], registry=r)
        self.transitions = Counter(
            "journey_lifecycle_transitions_total", "Lifecycle stage changes.",
            ["from_stage", "to_stage"], registry=r)
        self.alerts = Counter(
            "journey_alerts_total", "Alerts published, by type, priority and control flag.",
            ["type", "priority", "control"], registry=r)
        self.alerts_suppressed = Counter(
            "journey_alerts_suppressed_total", "Alerts not sent, by type and reason "
            f"({', '.join(SUPPRESSION_REASONS)}).", ["type", "reason"], registry=r)
        self.alerts_deferred = Counter(
            "journey_alerts_deferred_total", "Alerts whose send window was moved out of "
            "quiet hours.", ["type"], registry=r)
        self.reactivations = Counter(
            "journey_reactivations_total", "Churned users who came back, by whether a recall "
            "preceded it (treated, control or none).", ["after_recall"], registry=r)
        self.operating_rate = Gauge(
            "journey_operating_rate", "Operating rates over tracked users: retention, "
            "conversion, repeat, referral, satisfaction.", ["rate"], registry=r)
        self.churn_model_learned = Gauge(
            "journey_churn_model_learned", "1 while the partition's churn_risk comes from the "
            "learned model, 0 while it falls back to buy-till-you-die.", ["partition"],
            registry=r)
        self.churn_model_quality = Gauge(
            "journey_churn_model_quality", "How the partition's churn scores of one horizon "
            "before its last snapshot refit fared: brier (Brier score), base_rate (share that "
            "did not buy); the AUC is journey_churn_model_auc.", ["partition", "measure"],
            registry=r)
        self.churn_model_scored = Gauge(
            "journey_churn_model_scored", "Users whose scores the partition's last churn model "
            "quality measure covers.", ["partition"], registry=r)
        self.churn_model_auc = Gauge(
            "journey_churn_model_auc", "AUC of the partition's churn scores of one horizon "
            "before its last snapshot refit, against what then happened.", ["partition"],
            registry=r)
        self.churn_threshold = Gauge(
            "journey_churn_threshold", "The churn score at which a buyer becomes declining or "
            "churned, per partition (learned model only).", ["partition", "stage"], registry=r)
        self.churn_training_rows = Gauge(
            "journey_churn_training_rows", "Labelled snapshot rows the partition's churn model "
            "was last fitted on.", ["partition"], registry=r)
        self.recall_outcomes = Gauge(
            "journey_recall_outcomes", "Recalls whose return window has closed (settled) and "
            "those followed by a return within it (returned), by group.",
            ["group", "outcome"], registry=r)
        self.recall_uplift = Gauge(
            "journey_recall_uplift", "Return rate after a recall, treated minus control, with "
            "its 95% interval (bound: estimate, low, high); absent until both groups have "
            "settled recalls.", ["bound"], registry=r)
        self.timers_pending = Gauge(
            "journey_timers_pending", "Users with a pending inactivity deadline.", registry=r)
        self.timer_backlog = Gauge(
            "journey_timer_backlog", "Deadlines already due by the wall clock but not yet "
            "fired (ticks falling behind).", registry=r)
        self.sweep_duration = Histogram(
            "journey_sweep_duration_seconds", "Time one tick's timer sweep took (firing what "
            "was due in one partition).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.segment_calls = Counter(
            "journey_segment_calls_total", "Segment identity calls taken, by call and "
            "outcome: identify and alias applied, group ignored (journey keeps no accounts).",
            ["call", "outcome"], registry=r)
        self.identity = Counter(
            "journey_identity_total", "Identity stitching steps, by outcome: merged (an "
            "anonymous profile folded into its user), linked (an id with no profile yet now "
            "leads to one), redirected (an event for a merged id sent on), already_merged (a "
            "stitch for an id merged into another user before: the first stands), revived "
            "(merges that went round a loop of redirects ended at this id).",
            ["outcome"], registry=r)
        self.model_refits = Counter(
            "journey_model_refits_total", "Population model re-fits.", registry=r)
        self.healed_records = Counter(
            "journey_healed_records_total", "Input records read again when a partition is "
            "restored: its last batch, and any hole a short table recovery or a rebalance "
            "left.",
            registry=r)
        self.records_redelivered = Counter(
            "journey_records_redelivered_total", "Input records skipped because the table "
            "already holds their effects (fetched again after a rebalance or a restart).",
            registry=r)
        self.assigned_partitions = Gauge(
            "journey_assigned_partitions", "Input partitions this worker owns.", registry=r)
        self.healthy = Gauge(
            "journey_healthy", "1 while the worker is healthy, 0 after it found a fault "
            "it cannot carry on from.", registry=r)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe`` for each of ``amounts``, one lock round per bucket touched
    instead of two per amount: the worker observes every applied event's age.

    It reads prometheus_client's own bucket bounds and values (``_upper_bounds``,
    ``_buckets``, ``_sum``); ``tests/unit/test_metrics_batch.py`` checks the result
    against ``observe``, so a client release that changes them fails there."""
    if not amounts:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(sum(amounts))
