"""An example CRM subscriber to journey's alerts (kafka-python and the standard library only).

    python examples/subscriber.py --bootstrap 127.0.0.1:9092 [--topic-prefix journey.]
                                  [--group crm-subscriber] [--ledger alerts.sqlite]

What it shows:

* **Idempotent consumption.** journey delivers at least once, so the same alert can arrive
  twice (after a worker restart, or this subscriber's own). An alert's ``alert_id`` is
  stable for one user and inactivity episode, so the ledger below drops repeats by id. It
  is a SQLite file, so repeats are dropped across restarts too; an OrderedDict bounded like
  an LRU would do inside one process.
* **The control group.** ``control: true`` alerts are recorded but never sent: comparing
  later purchases of contacted and control users measures what contacting them is worth.
* **The send window.** Contact inside ``send_window`` (already moved out of the user's
  quiet hours): now if the window is open, at its start if it is ahead, and at the same
  local time the next day if it has passed.
* **Commit after handling.** Offsets are committed only after every alert of a poll is
  handled, so a crash means re-delivery (which the ledger absorbs), never a lost alert.

Replace ``print_send`` with your CRM's scheduling call, passing ``alert_id`` as its
idempotency key if it has one. For TLS/SASL add kafka-python's ``security_protocol``,
``sasl_*`` and ``ssl_cafile`` options to the consumer.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = timedelta(days=1)
Sender = Callable[[dict[str, Any], datetime], None]  # (alert, when to contact)


class AlertLedger:
    """Every alert handled, keyed by alert_id: the dedupe set and the uplift record in one."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, "
                        "user_id TEXT, type TEXT, control INTEGER, send_at TEXT, handled_at TEXT)")

    def seen(self, alert_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return row is not None

    def record(self, alert: dict[str, Any], send_at: datetime | None, now: datetime) -> None:
        self.db.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                        (alert["alert_id"], alert["user_id"], alert["type"],
                         int(alert["control"]), send_at and send_at.isoformat(), now.isoformat()))
        self.db.commit()


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


def handle(alert: dict[str, Any], ledger: AlertLedger, send: Sender, now: datetime) -> str:
    """Handle one alert; returns what was done: ``sent``, ``control`` or ``duplicate``."""
    if ledger.seen(alert["alert_id"]):
        return "duplicate"
    if alert["control"]:
        ledger.record(alert, None, now)  # kept for the uplift comparison, never contacted
        return "control"
    when = contact_time(alert["send_window"], now)
    # Hand it to the CRM first, then remember it: a crash in between means sending twice
    # (give the CRM alert_id as an idempotency key), never losing the alert.
    send(alert, when)
    ledger.record(alert, when, now)
    return "sent"


def print_send(alert: dict[str, Any], when: datetime) -> None:
    print(f"{when.isoformat()}  {alert['channels'][0]:<8} {alert['user_id']}  "
          f"{alert['type']} ({alert['priority']}): {alert['strategy']['incentive']}")


def consume(bootstrap: str, topics: list[str], group: str, ledger: AlertLedger,
            send: Sender = print_send, stop_after: int | None = None) -> dict[str, int]:
    """The subscriber loop; runs until Ctrl-C (or, for tests, ``stop_after`` records)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        # Short group timeouts suit journey's embedded broker; real Kafka's defaults are fine.
        session_timeout_ms=6000, heartbeat_interval_ms=1000)
    counts = {"sent": 0, "control": 0, "duplicate": 0}
    try:
        while stop_after is None or sum(counts.values()) < stop_after:
            # max_records=1 only so stop_after is exact; drop it in real use.
            batches = consumer.poll(timeout_ms=500, max_records=1 if stop_after else None)
            for records in batches.values():
                for record in records:
                    now = datetime.now(UTC)
                    counts[handle(json.loads(record.value), ledger, send, now)] += 1
            if batches:
                consumer.commit()  # only after every alert of this poll was handled
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
    topics = [args.topic_prefix + "churn-warnings", args.topic_prefix + "recall-triggers"]
    print(consume(args.bootstrap, topics, args.group, AlertLedger(args.ledger)))


if __name__ == "__main__":
    main()
