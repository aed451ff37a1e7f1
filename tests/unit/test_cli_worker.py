"""``journey worker`` writes no terminal codes into a log (agents/cli/worker.py): faust's
start-up spinner, which ends by showing the cursor, runs only on a terminal."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from agents.cli.worker import faust_worker
from agents.kafka.worker import build
from streams.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def app(tmp_path: Path) -> Any:
    settings = Settings().with_overrides(broker="127.0.0.1:9", data_dir=str(tmp_path))
    return build(settings, settings.broker).app


def started(app: Any, out: io.StringIO) -> str:
    """What the worker writes to ``out`` when it has started (and at exit)."""
    worker = faust_worker(app, Settings(), stdout=out)
    if worker.spinner is not None:
        worker.spinner.update()  # what faust's log handler does for each line
    worker._on_startup_end_spinner()
    return out.getvalue()


def test_no_terminal_codes_in_a_log(app: Any) -> None:
    written = started(app, io.StringIO())
    assert "\x1b" not in written, repr(written)


def test_a_terminal_still_gets_faust_s_spinner(app: Any) -> None:
    written = started(app, Terminal())
    assert "\x1b[?25h" in written, repr(written)  # the cursor shown again at the end
