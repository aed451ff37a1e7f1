"""Reading a replay's history: an event stamped in the future is a bad line of its file,
like any other, so its dead letter says where it was and keeps the line as written."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

import schemas
from agents.cli.main import main
from streams.core.event import Event
from streams.core.limits import MAX_EVENT_BYTES_DEFAULT
from streams.replay.sources import BadLine, read_events

NOW = schemas.parse_date_time("2026-06-01T00:00:00Z")[0]  # type: ignore[index]
FUTURE = b'{"event_id":"f1", "user_id":"u","type":"page_view","occurred_at":"2099-01-01T00:00:00Z"}'
PAST = b'{"event_id":"p1","user_id":"u","type":"page_view","occurred_at":"2026-01-01T00:00:00Z"}'
ENVELOPE = orjson.dumps({"batch": [
    {"type": "track", "messageId": "m1", "userId": "v", "event": "Product Viewed",
     "timestamp": "2026-06-01T00:09:00Z"},
    {"type": "track", "messageId": "m2", "userId": "v", "event": "Product Viewed",
     "timestamp": "2026-06-01T00:04:00Z"}], "sentAt": "2026-06-01T00:04:00Z"})


def history(tmp_path: Path) -> Path:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join((PAST, FUTURE, ENVELOPE)) + b"\n")
    return path


def test_an_event_past_the_skew_is_a_bad_line_with_its_place_and_text(tmp_path: Path) -> None:
    read = [item for item, _ in read_events([history(tmp_path)], MAX_EVENT_BYTES_DEFAULT,
                                            NOW, 300.0)]
    assert isinstance(read[0], Event) and isinstance(read[3], Event)  # m2: 4 min ahead
    bad, call = read[1], read[2]
    assert isinstance(bad, BadLine) and (bad.line, bad.raw) == (2, FUTURE)
    assert bad.rejection.reason == "future_timestamp"
    assert bad.rejection.message.endswith("after it was received (allowed skew 300s)")
    assert (bad.rejection.event_id, bad.rejection.user_id) == ("f1", "u")
    # a call of an envelope (m1: 9 minutes ahead) is refused alone, as its call
    assert isinstance(call, BadLine) and call.line == 3
    assert orjson.loads(call.raw)["messageId"] == "m1"
    # without a receipt nothing is judged for its time here (the core does it)
    plain = [item for item, _ in read_events([history(tmp_path)], MAX_EVENT_BYTES_DEFAULT)]
    assert all(isinstance(item, Event) for item in plain)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_replays_dead_letter_for_a_future_event_names_file_and_line(
        tmp_path: Path, jobs: str) -> None:
    path, out = history(tmp_path), tmp_path / "dead.jsonl"
    assert main(["replay", str(path), "--dead-letter-out", str(out), "--no-progress",
                 "--jobs", jobs]) == 0
    letters = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    future = [d for d in letters if d["event_id"] == "f1"]
    assert len(future) == 1 and future[0]["reason"] == "future_timestamp"
    assert future[0]["origin"] == {"kind": "file", "file": str(path), "line": 2}
    assert future[0]["payload"] == FUTURE.decode()  # the line as written, not re-encoded
    valid = schemas.validator("dead-letter")
    for letter in letters:
        valid(letter)
