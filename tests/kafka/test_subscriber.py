"""The example CRM subscriber, examples/subscriber.py (loaded from its file: it is an example
to copy, not part of the package).

Checks that it schedules each alert once, inside its send window, and never a control;
that its ledger keeps a re-delivered alert a repeat across restarts; that a comeback
before the contact cancels it, whichever topic's record arrives first; and that its Kafka
loop dedupes a redelivered alert, skips unknown schema versions and commits what it handled.
"""

from __future__ import annotations

import copy
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from kafka import KafkaConsumer, TopicPartition

import schemas
from streams.settings import Settings
from tests.support.alerts import churn_alert, publish, recall_alert

ROOT = Path(__file__).resolve().parents[2]


def load_subscriber() -> ModuleType:
    spec = importlib.util.spec_from_file_location("journey_example_subscriber",
                                                  ROOT / "examples" / "subscriber.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingCrm:
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, datetime]] = []
        self.cancelled: list[str] = []

    def schedule(self, alert: dict[str, Any], when: datetime) -> None:
        self.scheduled.append((alert["alert_id"], when))

    def cancel(self, alert_id: str) -> None:
        self.cancelled.append(alert_id)


def comeback(alert: dict[str, Any], at: str, reason: str = "recovered") -> dict[str, Any]:
    tr = copy.deepcopy(schemas.load("lifecycle-transition")["examples"][0])
    tr.update(user_id=alert["user_id"], at=at, reason=reason, from_stage="declining",
              to_stage="mature", type="lifecycle_transition")
    schemas.validator("lifecycle-transition")(tr)
    return tr


def test_subscriber_drops_repeats_skips_control_and_respects_the_window(tmp_path: Path) -> None:
    sub = load_subscriber()
    crm = RecordingCrm()
    ledger = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    start = datetime.fromisoformat("2024-06-20T11:00:00+02:00")
    before = start - timedelta(hours=3)
    alert, control = churn_alert(1, "high"), churn_alert(2, "low", control=True)
    assert sub.handle(alert, ledger, crm, before) == "scheduled"
    assert sub.handle(copy.deepcopy(alert), ledger, crm, before) == "duplicate"
    assert sub.handle(control, ledger, crm, before) == "control"
    assert crm.scheduled == [(alert["alert_id"], start)]  # once, at the start of the window
    # The ledger survives a restart: a re-delivered alert is still a repeat.
    again = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    assert sub.handle(alert, again, crm, before) == "duplicate"
    assert sub.handle(control, again, crm, before) == "duplicate"
    assert len(crm.scheduled) == 1
    rows = again.db.execute("SELECT alert_id, control, send_at FROM alerts ORDER BY alert_id")
    assert [(a, c, s is not None) for a, c, s in rows] == [
        (alert["alert_id"], 0, True), (control["alert_id"], 1, False)]

    window = alert["send_window"]
    inside = start + timedelta(minutes=30)
    assert sub.contact_time(window, inside) == inside
    late = start + timedelta(hours=5)  # past today's window: same local time tomorrow
    assert sub.contact_time(window, late) == start + timedelta(days=1)
    in_a_later_window = start + timedelta(days=2, minutes=10)
    assert sub.contact_time(window, in_a_later_window) == in_a_later_window
    assert sub.contact_time(window, late).utcoffset() == timedelta(hours=2)


def test_subscriber_cancels_a_contact_when_the_user_comes_back_first(tmp_path: Path) -> None:
    sub = load_subscriber()
    crm = RecordingCrm()
    ledger = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    now = datetime.fromisoformat("2024-06-20T08:00:00+02:00")
    alert = churn_alert(1, "high")
    assert sub.handle(alert, ledger, crm, now) == "scheduled"
    # the user buys again before the window opens: the waiting contact is cancelled
    assert sub.handle_transition(comeback(alert, "2024-06-20T09:30:00Z"), ledger, crm) == 1
    assert crm.cancelled == [alert["alert_id"]]
    # a repeat of the transition cancels nothing more; other reasons cancel nothing
    assert sub.handle_transition(comeback(alert, "2024-06-20T09:30:00Z"), ledger, crm) == 0
    other = churn_alert(3, "low")
    assert sub.handle(other, ledger, crm, now) == "scheduled"
    assert sub.handle_transition(comeback(other, "2024-06-21T09:00:00Z", "inactivity"),
                                 ledger, crm) == 0
    # topics are not ordered with each other: the comeback can arrive before the alert
    late = churn_alert(4, "high")
    sub.handle_transition(comeback(late, "2024-06-20T10:00:00Z", "reactivation"), ledger, crm)
    assert sub.handle(late, ledger, crm, now) == "came_back"
    assert late["alert_id"] not in [a for a, _ in crm.scheduled]


def test_subscriber_loop_dedupes_a_redelivered_alert_and_commits(
        kafka_settings: Settings, make_topics: Any, tmp_path: Path) -> None:
    sub = load_subscriber()
    warnings, recalls, transitions = make_topics(
        "churn-warnings", "recall-triggers", "lifecycle-transitions", partitions=1)
    alert = churn_alert(1, "high")
    publish(kafka_settings.broker, warnings, [alert, churn_alert(2, "low", control=True), alert])
    publish(kafka_settings.broker, recalls, [recall_alert(3)])
    unknown = dict(recall_alert(5), schema="journey.recall-trigger/9")
    publish(kafka_settings.broker, recalls, [unknown], schema=unknown["schema"])
    publish(kafka_settings.broker, transitions, [comeback(recall_alert(3),
                                                          "2030-01-01T00:00:00Z")])
    crm = RecordingCrm()
    group = kafka_settings.app_id + "-crm"
    counts = sub.consume(kafka_settings.broker, [warnings, recalls, transitions], group,
                         sub.AlertLedger(str(tmp_path / "ledger.sqlite")), crm=crm,
                         stop_after=6)
    assert counts["scheduled"] + counts["came_back"] == 2, counts
    assert (counts["control"], counts["duplicate"], counts["unknown_schema"],
            counts["transitions"]) == (1, 1, 1, 1)
    # the recall was either cancelled after scheduling or never scheduled
    assert counts["cancelled"] + counts["came_back"] == 1, counts
    check = KafkaConsumer(bootstrap_servers=kafka_settings.broker, group_id=group,
                          enable_auto_commit=False)
    try:
        assert check.committed(TopicPartition(warnings, 0)) == 3
        assert check.committed(TopicPartition(recalls, 0)) == 2
        assert check.committed(TopicPartition(transitions, 0)) == 1
    finally:
        check.close()


def test_subscriber_datetimes_are_aware() -> None:
    # The loop passes datetime.now(UTC); comparing it with the window's offsets must work.
    sub = load_subscriber()
    window = churn_alert(1, "high")["send_window"]
    assert sub.contact_time(window, datetime(2030, 1, 1, tzinfo=UTC)).tzinfo is not None
