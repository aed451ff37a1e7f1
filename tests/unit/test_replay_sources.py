"""A replay's events stamped in the future: the core judges them, after its duplicate
and group checks, as a worker's does; their dead letters say where the line was and keep
it as written, like every other rejected line."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
import pytest

import schemas
from agents.cli.main import main
from streams.core.event import Event
from streams.core.limits import MAX_EVENT_BYTES_DEFAULT
from streams.replay import parallel
from streams.replay.sources import read_events

LATEST = schemas.parse_date_time("2026-06-01T00:05:00Z")[0]  # type: ignore[index]
PAST = b'{"event_id":"p1","user_id":"u","type":"page_view","occurred_at":"2026-01-01T00:00:00Z"}'
FUTURE = b'{"event_id":"f1", "user_id":"u","type":"page_view","occurred_at":"2099-01-01T00:00:00Z"}'
# the same id as PAST, later: a worker counts it as a duplicate, whatever its time
RESENT = b'{"event_id":"p1","user_id":"u","type":"page_view","occurred_at":"2099-01-01T00:00:00Z"}'
GROUP = orjson.dumps({"type": "group", "messageId": "g1", "userId": "u", "groupId": "acme",
                      "timestamp": "2099-01-01T00:00:00Z"})  # a worker ignores a group call
ENVELOPE = orjson.dumps({"batch": [
    {"type": "track", "messageId": "m1", "userId": "v", "event": "Product Viewed",
     "timestamp": "2026-06-01T00:09:00Z"},
    {"type": "track", "messageId": "m2", "userId": "v", "event": "Product Viewed",
     "timestamp": "2026-06-01T00:04:00Z"}], "sentAt": "2026-06-01T00:04:00Z"})


def write(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_the_reader_tells_where_each_late_stamped_event_was_and_keeps_it(
        tmp_path: Path) -> None:
    path = write(tmp_path, PAST, FUTURE, ENVELOPE)
    told: list[tuple[str, str, int, bytes]] = []
    read = [item for item, _ in read_events(
        [path], MAX_EVENT_BYTES_DEFAULT, latest=LATEST,
        on_late=lambda e, f, n, text: told.append((e.event_id, f, n, text)))]
    assert all(isinstance(item, Event) for item in read) and len(read) == 4
    assert told[0] == ("f1", str(path), 2, FUTURE)
    # a call of an envelope (m1: 9 minutes ahead) is told as its own call; m2 is in time
    assert [(i, n) for i, _, n, _ in told[1:]] == [("m1", 3)]
    assert orjson.loads(told[1][3])["messageId"] == "m1"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_future_event_is_judged_as_a_worker_does_and_its_letter_names_its_line(
        tmp_path: Path, jobs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # partitions in parallel whatever the size, so that jobs=2 forks its workers
    monkeypatch.setattr(parallel, "feed", functools.partial(parallel.feed, min_events=0))
    path = write(tmp_path, PAST, FUTURE, RESENT, GROUP)
    out, summary = tmp_path / "dead.jsonl", tmp_path / "summary.json"
    assert main(["replay", str(path), "--dead-letter-out", str(out), "--no-progress",
                 "--jobs", jobs, "--summary-json", str(summary)]) == 0
    counts = orjson.loads(summary.read_bytes())
    assert counts["duplicates"] == 1 and counts["ignored"] == {"group": 1}
    assert counts["dead_letters"] == {"future_timestamp": 1}
    (letter,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert letter["event_id"] == "f1" and letter["reason"] == "future_timestamp"
    assert letter["origin"] == {"kind": "file", "file": str(path), "line": 2}
    assert letter["payload"] == FUTURE.decode()  # the line as written, not re-encoded
    schemas.validator("dead-letter")(letter)


def test_a_future_event_past_until_counts_as_after_the_cut(tmp_path: Path) -> None:
    path, summary = write(tmp_path, PAST, FUTURE), tmp_path / "summary.json"
    assert main(["replay", str(path), "--until", "2026-02-01T00:00:00Z", "--no-progress",
                 "--summary-json", str(summary)]) == 0
    counts = orjson.loads(summary.read_bytes())
    assert counts["after_until"] == 1 and counts["dead_letters"] == {}
