"""An example CRM subscriber to journey's alerts (kafka-python and the standard library only).

    python examples/subscriber.py --bootstrap 127.0.0.1:9092 [--topic-prefix journey.]
                                  [--group crm-subscriber] [--ledger alerts.sqlite]

What it shows:

* **The schema header.** Every record carries ``journey-schema`` (e.g.
  ``journey.churn-warning/1``). Records of a schema or major version this subscriber does
  not know are skipped and counted, never guessed at.
* **Idempotent consumption.** journey delivers at least once, so the same alert can arrive
  twice (after a worker restart, or this subscriber's own). An alert's ``alert_id`` is
  stable for one user and inactivity episode, so the ledger below drops repeats by id. It
  is a SQLite file, so repeats are dropped across restarts too.
* **The control group.** ``control: true`` alerts are recorded but never sent: comparing
  later purchases of contacted and control users measures what contacting them is worth.
* **The send window.** Contact inside ``send_window`` (already moved out of the user's
  quiet hours): now if the window is open, at its start if it is ahead, and at the same
  local time the next day if it has passed.
* **A user who comes back first.** A lifecycle transition with reason ``recovered`` (out of
  decline) or ``reactivation`` (back from churned) cancels that user's contacts still
  waiting for their window: nobody gets "we miss you" the day after buying. Alerts and
  transitions travel on different topics, so either can arrive first; an alert detected
  before a comeback already seen is not scheduled at all.
* **Commit after handling.** Offsets are committed only after every record of a poll is
  handled, so a crash means re-delivery (which the ledger absorbs), never a lost record.

Replace ``PrintCrm`` with your CRM's scheduling and cancelling calls, passing ``alert_id``
as the idempotency key if it takes one. For TLS/SASL add kafka-python's
``security_protocol``, ``sasl_*`` and ``ssl_cafile`` options to the consumer.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

DAY = timedelta(days=1)
SCHEMA_HEADER = "journey-schema"
ALERT_SCHEMAS = frozenset({"journey.churn-warning/1", "journey.recall-trigger/1"})
TRANSITION_SCHEMA = "journey.lifecycle-transition/1"
COMEBACK_REASONS = frozenset({"recovered", "reactivation"})


class Crm(Protocol):
    def schedule(self, alert: dict[str, Any], when: datetime) -> None: ...

    def cancel(self, alert_id: str) -> None: ...


class PrintCrm:
    def schedule(self, alert: dict[str, Any], when: datetime) -> None:
        print(f"{when.isoformat()}  {alert['channels'][0]:<8} {alert['user_id']}  "
              f"{alert['type']} ({alert['priority']}): {alert['strategy']['incentive']}")

    def cancel(self, alert_id: str) -> None:
        print(f"cancelled {alert_id}: the user came back before the send window")


class AlertLedger:
    """Every alert handled, keyed by alert_id: the dedupe set, the schedule and the uplift
    record in one; plus each user's latest comeback."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, "
                        "user_id TEXT, type TEXT, control INTEGER, send_at TEXT, "
                        "handled_at TEXT, status TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS comebacks (user_id TEXT PRIMARY KEY, "
                        "at TEXT)")

    def seen(self, alert_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return row is not None

    def record(self, alert: dict[str, Any], send_at: datetime | None, now: datetime,
               status: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (alert["alert_id"], alert["user_id"], alert["type"],
                         int(alert["control"]), send_at and send_at.isoformat(),
                         now.isoformat(), status))
        self.db.commit()

    def comeback(self, user_id: str) -> datetime | None:
        row = self.db.execute("SELECT at FROM comebacks WHERE user_id = ?",
                              (user_id,)).fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    def came_back(self, user_id: str, at: datetime) -> list[str]:
        """Note a comeback; returns the user's scheduled alerts to cancel (now cancelled)."""
        known = self.comeback(user_id)
        if known is None or at > known:
            self.db.execute("INSERT OR REPLACE INTO comebacks VALUES (?, ?)",
                            (user_id, at.isoformat()))
        ids = [r[0] for r in self.db.execute(
            "SELECT alert_id FROM alerts WHERE user_id = ? AND status = 'scheduled'",
            (user_id,))]
        self.db.executemany("UPDATE alerts SET status = 'cancelled' WHERE alert_id = ?",
                            [(i,) for i in ids])
        self.db.commit()
        return ids


def contact_time(window: dict[str, Any], now: datetime) -> datetime:
    """When to contact, given the alert's send window and the current (aware) time."""
    start = datetime.fromisoformat(window["start"])
    end = datetime.fromisoformat(window["end"])
    if now < start:
        return start
    days_late = (now - start) // DAY  # the window's time of day recurs daily
    if now <= end + days_late * DAY:
        return now
    return start + (days_late + 1) * DAY


def handle(alert: dict[str, Any], ledger: AlertLedger, crm: Crm, now: datetime) -> str:
    """Handle one alert; returns what was done: ``scheduled``, ``control``, ``duplicate`` or
    ``came_back`` (the user returned after it was detected)."""
    if ledger.seen(alert["alert_id"]):
        return "duplicate"
    if alert["control"]:
        ledger.record(alert, None, now, "control")  # for the uplift comparison, never sent
        return "control"
    back = ledger.comeback(alert["user_id"])
    if back is not None and back >= datetime.fromisoformat(alert["detected_at"]):
        ledger.record(alert, None, now, "cancelled")
        return "came_back"
    when = contact_time(alert["send_window"], now)
    # Hand it to the CRM first, then remember it: a crash in between means scheduling
    # twice (give the CRM alert_id as an idempotency key), never losing the alert.
    crm.schedule(alert, when)
    ledger.record(alert, when, now, "scheduled")
    return "scheduled"


def handle_transition(transition: dict[str, Any], ledger: AlertLedger, crm: Crm) -> int:
    """A comeback cancels the user's waiting contacts; returns how many were cancelled."""
    if transition["reason"] not in COMEBACK_REASONS:
        return 0
    at = datetime.fromisoformat(transition["at"])
    ids = ledger.came_back(transition["user_id"], at)
    for alert_id in ids:
        crm.cancel(alert_id)
    return len(ids)


def schema_of(record: Any) -> str | None:
    for name, value in record.headers or ():
        if name == SCHEMA_HEADER:
            return bytes(value).decode("utf-8", "replace")
    return None


def consume(bootstrap: str, topics: list[str], group: str, ledger: AlertLedger,
            crm: Crm | None = None, stop_after: int | None = None) -> dict[str, int]:
    """The subscriber loop; runs until Ctrl-C (or, for tests, ``stop_after`` records)."""
    from kafka import KafkaConsumer

    crm = crm or PrintCrm()
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        # Short group timeouts suit journey's embedded broker; real Kafka's defaults are fine.
        session_timeout_ms=6000, heartbeat_interval_ms=1000)
    counts = {"scheduled": 0, "control": 0, "duplicate": 0, "came_back": 0, "cancelled": 0,
              "transitions": 0, "unknown_schema": 0}
    seen = 0
    try:
        while stop_after is None or seen < stop_after:
            # max_records=1 only so stop_after is exact; drop it in real use.
            batches = consumer.poll(timeout_ms=500, max_records=1 if stop_after else None)
            for records in batches.values():
                for record in records:
                    seen += 1
                    schema = schema_of(record)
                    if schema in ALERT_SCHEMAS:
                        alert = json.loads(record.value)
                        counts[handle(alert, ledger, crm, datetime.now(UTC))] += 1
                    elif schema == TRANSITION_SCHEMA:
                        counts["transitions"] += 1
                        counts["cancelled"] += handle_transition(json.loads(record.value),
                                                                 ledger, crm)
                    else:  # a schema or version this code was not written for
                        counts["unknown_schema"] += 1
            if batches:
                consumer.commit()  # only after every record of this poll was handled
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description="Example CRM subscriber to journey's alerts.")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port")
    p.add_argument("--topic-prefix", default="journey.")
    p.add_argument("--group", default="crm-subscriber")
    p.add_argument("--ledger", default="journey-alerts.sqlite",
                   help="SQLite file of the alerts handled so far")
    args = p.parse_args()
    topics = [args.topic_prefix + name for name in
              ("churn-warnings", "recall-triggers", "lifecycle-transitions")]
    print(consume(args.bootstrap, topics, args.group, AlertLedger(args.ledger)))


if __name__ == "__main__":
    main()
