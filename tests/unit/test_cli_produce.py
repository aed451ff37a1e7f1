"""What ``journey produce`` lists of the lines it rejects (agents/cli/produce.py), with a
fake producer: invalid lines are listed up to a limit, too-late events only counted, and
the summary's note about unlisted lines is true."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli.produce import SHOWN_BAD_LINES, _send_file
from agents.client.producer import InvalidEvent
from streams.replay.sources import open_lines


class Acked:
    def add_callback(self, ok: Any) -> None:
        ok(None)

    def add_errback(self, _error: Any) -> None:
        pass


class Judge:
    """Rejects lines the way the real producer would: by their ``kind`` here."""

    topic = "journey.events"
    max_bytes = 65536

    def send_raw(self, line: bytes, *, not_before: float | None = None) -> Acked:
        kind = orjson.loads(line)["kind"]
        if kind == "old":
            raise InvalidEvent("too_late", "older than allowed_lateness_seconds")
        if kind == "bad":
            raise InvalidEvent("missing_field", "user_id is required")
        return Acked()

    def flush(self, timeout: float | None = None) -> None:
        pass


def produce(tmp_path: Path, kinds: list[str]) -> int:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"kind": k}) + b"\n" for k in kinds))
    with open_lines(path) as fh:
        return _send_file(path, fh, Judge(), not_before=0.0)  # type: ignore[arg-type]


def listed(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ": missing_field: " in ln]


def test_only_too_late_lines_claim_no_listing(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = produce(tmp_path, ["old"] * (SHOWN_BAD_LINES + 50))
    err = capsys.readouterr().err
    assert code == 2, err  # history only: nothing sent
    assert "listed above" not in err, err
    assert f"{SHOWN_BAD_LINES + 50:,} events in" in err  # counted, and told why


def test_too_late_lines_do_not_use_up_the_listing(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    invalid = SHOWN_BAD_LINES + 20
    code = produce(tmp_path, ["old"] * 150 + ["good"] + ["bad"] * invalid)
    err = capsys.readouterr().err
    assert code == 0, err
    shown = listed(err)
    assert len(shown) == SHOWN_BAD_LINES, err
    assert shown[0].endswith("events.jsonl:152: missing_field: user_id is required")
    assert f"(only the first {SHOWN_BAD_LINES} of the {invalid:,} invalid lines are listed " \
           "above)" in err, err


def test_every_invalid_line_listed_needs_no_note(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    produce(tmp_path, ["old"] * 150 + ["good"] + ["bad"] * 3)
    err = capsys.readouterr().err
    assert len(listed(err)) == 3 and "listed above" not in err, err


class Kept(Judge):
    """Keeps what it is given to send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_raw(self, line: bytes, *, not_before: float | None = None) -> Acked:
        self.sent.append(line)
        return Acked()


def test_a_batch_envelope_is_sent_as_its_calls(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def call(n: int) -> dict[str, Any]:
        return {"type": "page", "messageId": f"m{n}", "userId": f"u{n}", "name": "Home"}

    path = tmp_path / "posted.jsonl"
    path.write_bytes(orjson.dumps({"batch": [call(1), call(2)],
                                   "sentAt": "2026-01-01T00:00:00Z"}) + b"\n"
                     + orjson.dumps({**call(3), "timestamp": "2026-01-01T00:00:00Z"}) + b"\n")
    kept = Kept()
    with open_lines(path) as fh:
        assert _send_file(path, fh, kept, not_before=0.0) == 0  # type: ignore[arg-type]
    sent = [orjson.loads(x) for x in kept.sent]
    assert [c["messageId"] for c in sent] == ["m1", "m2", "m3"]
    assert sent[0]["sentAt"] == "2026-01-01T00:00:00Z"  # the envelope's, for a call without
    assert "batch" not in capsys.readouterr().err
