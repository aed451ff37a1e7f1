"""Child processes that die with journey: the embedded broker, the demo's worker, and the
workers a test or a benchmark starts; and the tail of such a child's log."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path


def parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that has Linux SIGKILL the child when its parent dies.

    Covers a test run or demo killed with SIGKILL/SIGTERM, where no ``finally`` runs.
    ``prctl`` is looked up here, in the parent, because importing in the forked child of
    a threaded process can deadlock. The signal follows the *thread* that started the
    child, so start it from one that lives as long as the child should (the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, kill = 1, int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, kill)

    return hook


def log_tail(path: Path, lines: int, missing: str = "") -> str:
    """The last ``lines`` lines of a child's log file (``missing`` when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return missing
    return "\n".join(text.splitlines()[-lines:])
