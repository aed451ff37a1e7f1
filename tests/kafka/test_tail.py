"""``journey tail``: the alert topics as an operator reads them.

Checks that it prints churn warnings and recall triggers from the beginning, one head line
each (priority, CONTROL, channels, send window) with the evidence summary beneath, that
``--filter FIELD=VALUE`` picks records (filters on one field are alternatives, on different
fields all must hold), and that Ctrl-C ends it with exit code 0 and no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import orjson
import pytest

from agents.cli.tail import format_record, parse_filters
from agents.kafka.topics import SCHEMA_HEADER
from streams.settings import Settings
from tests.support.alerts import churn_alert, publish, recall_alert
from tests.support.cli_runs import JOURNEY, cli


def test_tail_prints_alerts_from_the_beginning_and_filters(kafka_settings: Settings,
                                                           make_topics: Any) -> None:
    warnings, recalls = make_topics("churn-warnings", "recall-triggers", partitions=1)
    publish(kafka_settings.broker, warnings, [
        churn_alert(1, "high"), churn_alert(2, "low", control=True),
        churn_alert(3, "high", gap_source="population"), churn_alert(4, "medium")])
    publish(kafka_settings.broker, recalls, [recall_alert(5)])

    everything = cli(["tail", "--from-beginning", "--max", "5"], kafka_settings)
    assert everything.returncode == 0, everything.stderr
    out = everything.stdout
    heads = [line for line in out.splitlines() if not line.startswith("    ")]
    assert len(heads) == 5
    for i in range(1, 6):
        assert f"user=buyer-{i} " in out
    assert out.count("journey.churn-warning/1  churn_warning") == 4
    assert "journey.recall-trigger/1  recall_trigger #1" in out
    line2 = next(h for h in heads if "buyer-2 " in h)
    assert "LOW" in line2 and "CONTROL" in line2
    assert "channels=phone,app_push,email" in line2
    assert "send 2024-06-20 11:00-13:00 +02:00" in line2
    assert "    summary of buyer-2" in out.splitlines()

    picked = cli(["tail", warnings, "--from-beginning", "--max", "1",
                  "--filter", "priority=high", "--filter", "evidence.gap_source=population"],
                 kafka_settings)
    assert picked.returncode == 0, picked.stderr
    heads = [line for line in picked.stdout.splitlines() if not line.startswith("    ")]
    assert len(heads) == 1 and "user=buyer-3 " in heads[0] and "HIGH" in heads[0]


def test_tail_exits_0_on_ctrl_c(kafka_settings: Settings, make_topics: Any) -> None:
    (warnings,) = make_topics("churn-warnings", partitions=1)
    publish(kafka_settings.broker, warnings, [churn_alert(1, "high")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env.update(JOURNEY_BROKER=kafka_settings.broker, JOURNEY_APP_ID=kafka_settings.app_id)
    tail = subprocess.Popen([str(JOURNEY), "tail", warnings, "--from-beginning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()  # it is following the topic now
        assert "user=buyer-1 " in first
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == 0
        assert "Traceback" not in tail.stderr.read()  # type: ignore[union-attr]
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()


def test_tail_formats_and_filters_records() -> None:
    alert = churn_alert(7, "medium", control=False)
    header = [(SCHEMA_HEADER, b"journey.churn-warning/1")]
    text = format_record(orjson.dumps(alert), header, [])
    assert text is not None and text.startswith("journey.churn-warning/1  churn_warning  MEDIUM")
    assert "CONTROL" not in text and text.endswith("\n    summary of buyer-7")
    for spec, hit in [("priority=medium", True), ("priority=high", False),
                      ("evidence.gap_source=own", True), ("channels=email", True),
                      ("channels=sms", False), ("control=false", True),
                      ("evidence.orders=9", True), ("evidence.nope=1", False),
                      ("send_window.deferred_for_quiet_hours=true", False)]:
        assert (format_record(orjson.dumps(alert), header, parse_filters([spec])) is not None) \
            is hit, spec
    either = parse_filters(["priority=high", "priority=medium"])
    assert format_record(orjson.dumps(alert), header, either) is not None
    assert format_record(b'{"stage": "churned"}', None, []) == '-  {"stage": "churned"}'
    assert format_record(b"not json", None, parse_filters(["a=b"])) is None
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_filters(["priority"])
