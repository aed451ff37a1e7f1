"""Churn warnings and recall triggers as a worker publishes them, for the tail and subscriber
tests: made from the schemas' examples and checked against the schemas (fake, but within the
contract), and written to a topic keyed by user with the schema header a worker sets."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from kafka import KafkaProducer

import schemas
from agents.kafka.topics import SCHEMA_HEADER


def churn_alert(i: int, priority: str, *, control: bool = False,
                gap_source: str = "own") -> dict[str, Any]:
    alert = copy.deepcopy(schemas.load("churn-warning")["examples"][0])
    alert.update(alert_id=f"cw-{i:032x}", user_id=f"buyer-{i}", priority=priority,
                 control=control)
    alert["evidence"]["gap_source"] = gap_source
    alert["evidence"]["summary"] = f"summary of buyer-{i}"
    schemas.validator("churn-warning")(alert)  # fake, but within the contract
    return alert


def recall_alert(i: int) -> dict[str, Any]:
    alert = copy.deepcopy(schemas.load("recall-trigger")["examples"][0])
    alert.update(alert_id=f"rt-{i:032x}", user_id=f"buyer-{i}", priority="high")
    schemas.validator("recall-trigger")(alert)
    return alert


def publish(bootstrap: str, topic: str, records: list[dict[str, Any]],
            schema: str | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for r in records:
            name = schema or f"journey.{r['type'].replace('_', '-')}/1"
            producer.send(topic, orjson.dumps(r), key=r["user_id"].encode(),
                          headers=[(SCHEMA_HEADER, name.encode())])
        producer.flush(30)
    finally:
        producer.close()
