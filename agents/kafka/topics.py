"""Topic names, all under the configured prefix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.settings import Settings

SCHEMA_HEADER = "journey-schema"  # e.g. b"journey.churn-warning/1"
KIND_HEADER = "journey-kind"  # b"tick" or b"feedback" on journey's own records in input topics
# on a record journey moves to the repartition topic for its user (mis-keyed, or a call of
# a Segment batch envelope): when the original reached Kafka, its record time in seconds,
# so the hop's own record time never stands for the receipt (see Pipeline._received_at)
RECEIVED_HEADER = "journey-received-at"


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    repartition: str
    churn_warnings: str
    recall_triggers: str
    transitions: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(events=f"{p}events", repartition=f"{p}events-repartition",
                   churn_warnings=f"{p}churn-warnings", recall_triggers=f"{p}recall-triggers",
                   transitions=f"{p}lifecycle-transitions", dead_letter=f"{p}dead-letter")

    def outputs(self) -> tuple[str, ...]:
        return (self.churn_warnings, self.recall_triggers, self.transitions, self.dead_letter)

    def alert_topic(self, alert_type: str) -> str:
        return self.churn_warnings if alert_type == "churn_warning" else self.recall_triggers


def changelog_topic(settings: Settings) -> str:
    """The users table's changelog, as faust names it (``{app_id}-{table}-changelog``)."""
    return f"{settings.app_id}-users-changelog"


async def create_topics(bootstrap: str, names: list[str], partitions: int,
                        replication: int = 1, timeout: float = 15.0, *,
                        client: Mapping[str, Any] | None = None,
                        configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Create the topics and wait until metadata shows all their partitions. ``client``:
    the admin client's arguments (``kafka_kwargs``, for TLS and SASL); ``configs``:
    topic configs by name."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**(client or {"bootstrap_servers": bootstrap}),
                                client_id="journey-topics")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, replication,
                                            topic_configs=dict((configs or {}).get(n, {})))
                                   for n in names])
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(names)
            ready = {d["topic"] for d in described
                     if d.get("error_code", 0) == 0 and len(d["partitions"]) == partitions}
            if ready == set(names):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not visible after {timeout:.0f}s: "
                                   f"{sorted(set(names) - ready)}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
