"""``journey tail [TOPIC] [--from-beginning] [--filter FIELD=VALUE ...] [--max N]``.

Follows journey's output topics and prints each record as it arrives. Alerts (churn
warnings and recall triggers) get a two-line summary; anything else is printed as its raw
JSON. Every line starts with the record's ``journey-schema`` header.

Without TOPIC, tails both alert topics. Filters take a top-level or dotted field
(``priority=high``, ``evidence.gap_source=own``); a list field matches if any element
does (``channels=sms``). Filters on different fields must all match; repeating a field
gives alternatives (``--filter priority=high --filter priority=medium``).

The consumer joins a group of its own (``<app_id>-tail-<random>``) and never commits, so
it neither steals partitions from nor moves the offsets of any real subscriber. Without
--from-beginning it starts at the end of each partition. (The embedded Tansu broker
reports the end of a partition at the start of its newest batch, so there the first few
records shown may be slightly old.) Ctrl-C exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from agents.kafka.config import kafka_kwargs
from agents.kafka.topics import SCHEMA_HEADER, Topics
from streams.settings import Settings

PROG = "journey tail"
ALERT_TYPES = frozenset({"churn_warning", "recall_trigger"})
_MISSING = object()


# --- filters -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FieldFilter:
    """Alternatives for one dotted field: the record matches if the field equals any of them."""

    path: tuple[str, ...]
    values: tuple[str, ...]

    def matches(self, record: Any) -> bool:
        value = lookup(record, self.path)
        if value is _MISSING:
            return False
        candidates = value if isinstance(value, list) else [value]
        return any(_same(c, want) for c in candidates for want in self.values)


def parse_filters(specs: Sequence[str]) -> list[FieldFilter]:
    """``["priority=high", "evidence.gap_source=own"]`` -> filters; ValueError if malformed."""
    grouped: dict[tuple[str, ...], list[str]] = {}
    for spec in specs:
        field, sep, value = spec.partition("=")
        path = tuple(field.strip().split("."))
        if not sep or not all(path):
            raise ValueError(f"--filter {spec!r}: expected FIELD=VALUE, e.g. priority=high")
        grouped.setdefault(path, []).append(value)
    return [FieldFilter(path, tuple(values)) for path, values in grouped.items()]


def lookup(record: Any, path: Iterable[str]) -> Any:
    """The value at a dotted path of a JSON object, or _MISSING."""
    node = record
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(value: Any, text: str) -> bool:
    """Does a JSON value equal what the user typed on the command line?"""
    if isinstance(value, str):
        return value == text
    if value is None:
        return text == "null"
    if isinstance(value, bool):
        return text.lower() == ("true" if value else "false")
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return orjson.dumps(value).decode() == text  # an object, typed as compact JSON


def matches_all(record: Any, filters: Sequence[FieldFilter]) -> bool:
    return all(f.matches(record) for f in filters)


# --- formatting ----------------------------------------------------------------------------

def schema_header(headers: Sequence[tuple[str, bytes]] | None) -> str:
    for key, value in headers or ():
        if key == SCHEMA_HEADER:
            return value.decode("utf-8", "replace")
    return "-"


def _window(w: Mapping[str, Any]) -> str:
    # "2024-06-20T11:00:00+02:00" .. "2024-06-20T13:00:00+02:00" -> "2024-06-20 11:00-13:00 +02:00"
    start, end = str(w.get("start", "?")), str(w.get("end", "?"))
    if len(start) >= 16 and len(end) >= 16 and start[:10] == end[:10]:
        text = f"{start[:10]} {start[11:16]}-{end[11:16]} {w.get('utc_offset', '')}".rstrip()
    else:
        text = f"{start}..{end}"
    return text + (" (deferred: quiet hours)" if w.get("deferred_for_quiet_hours") else "")


def format_alert(alert: Mapping[str, Any], schema: str) -> str:
    """Two lines: who, how urgent, what to do and when; then the evidence in a sentence."""
    strategy = alert.get("strategy") or {}
    evidence = alert.get("evidence") or {}
    recall = f" #{alert['recall_number']}" if "recall_number" in alert else ""
    parts = [
        f"{schema}  {alert.get('type', '?')}{recall}",
        str(alert.get("priority", "?")).upper(),
        f"user={alert.get('user_id', '?')}",
        str(alert.get("churn_type", "?")),
        f"strategy={strategy.get('kind', '?')}/{strategy.get('incentive', '?')}",
        "channels=" + ",".join(str(c) for c in alert.get("channels") or ()),
        "send " + _window(alert.get("send_window") or {}),
    ]
    if alert.get("control"):
        parts.append("CONTROL (do not contact)")
    summary = evidence.get("summary") or "(no evidence summary)"
    return "  ".join(parts) + f"\n    {summary}"


def format_record(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None,
                  filters: Sequence[FieldFilter]) -> str | None:
    """The text to print for one record, or None if the filters reject it."""
    schema = schema_header(headers)
    try:
        record = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        record = _MISSING
    if filters and (record is _MISSING or not matches_all(record, filters)):
        return None
    if isinstance(record, dict) and record.get("type") in ALERT_TYPES:
        return format_alert(record, schema)
    raw = "null" if value is None else value.decode("utf-8", "replace")
    return f"{schema}  {raw}"


# --- the consumer --------------------------------------------------------------------------

def _err(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker:
        _err("no Kafka broker configured: set JOURNEY_BROKER=host:port (or `broker` in the "
             "config file). The embedded broker is only started by `journey broker` and "
             "`journey demo`.")
        return 2
    try:
        filters = parse_filters(args.filter or [])
    except ValueError as exc:
        _err(str(exc))
        return 2
    if args.max is not None and args.max < 1:
        return 0
    topics = Topics.from_settings(settings)
    names = [args.topic] if args.topic else [topics.churn_warnings, topics.recall_triggers]
    try:
        return asyncio.run(_tail(settings, names, args.from_beginning, filters, args.max,
                                 sys.stdout))
    except BrokenPipeError:
        # The reader went away (`journey tail | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


async def _tail(settings: Settings, names: list[str], from_beginning: bool,
                filters: Sequence[FieldFilter], limit: int | None, out: TextIO) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    consumer = AIOKafkaConsumer(
        *names, group_id=f"{settings.app_id}-tail-{uuid.uuid4().hex[:8]}",
        client_id=f"{settings.app_id}-tail",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False, **kafka_kwargs(settings, "aiokafka", group=True))
    printed = 0
    try:
        try:
            await consumer.start()
        except KafkaError as exc:
            _err(f"cannot connect to {settings.broker}: {exc!r}")
            return 1
        if sys.stderr.isatty():
            where = "the beginning" if from_beginning else "now on"
            _err(f"following {', '.join(names)} from {where} (Ctrl-C to stop)")
        while limit is None or printed < limit:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for rec in records:
                    text = format_record(rec.value, rec.headers, filters)
                    if text is None:
                        continue
                    out.write(text + "\n")
                    printed += 1
                    if limit is not None and printed >= limit:
                        break
                if limit is not None and printed >= limit:
                    break
            out.flush()
    except asyncio.CancelledError:
        return 0  # Ctrl-C or SIGTERM: a normal way to stop following
    except KafkaError as exc:
        _err(f"lost the broker at {settings.broker}: {exc!r}")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    return 0
