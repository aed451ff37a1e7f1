"""The ``workers`` fixture: ``journey worker`` processes for one test (see
:mod:`agents.testing.workers`), killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.testing.workers import Workers


@pytest.fixture
def workers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    """``workers.start(settings, **overrides)``; all are killed at teardown, and their log
    tails are printed to the terminal when the test failed."""
    pool = Workers(tmp_path)
    failed_before = request.session.testsfailed
    try:
        yield pool
    finally:
        pool.cleanup()
        if request.session.testsfailed > failed_before and pool.started:
            capman = request.config.pluginmanager.getplugin("capturemanager")
            if capman is not None:
                with capman.global_and_fixture_disabled():
                    for w in pool.started:
                        print(f"\n--- {request.node.nodeid}: {w.log_path} (exit "
                              f"{w.returncode}) ---\n{w.log_tail(80)}")
