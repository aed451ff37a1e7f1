"""The cyclic garbage collector is paused while a replay feeds its processors, and is
as it was afterwards, whatever happened inside."""

from __future__ import annotations

import gc

import pytest

from streams.collector import gc_paused
from streams.replay import Replay
from streams.settings import Settings
from streams.testing import make_event


def test_paused_inside_and_restored_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()


def test_a_replay_feeds_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    replay = Replay(Settings(), received_at=0.0)
    seen: list[bool] = []
    for proc in replay.processors:
        process = proc.process

        def spying(*args: object, _process: object = process, **kwargs: object) -> None:
            seen.append(gc.isenabled())
            _process(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(proc, "process", spying)
    replay.feed([make_event(f"u{i}", "page_view", 1.0) for i in range(20)])
    assert seen == [False] * 20
    assert gc.isenabled()
