"""``journey bootstrap`` and the other CLI commands as the broker tests run them: a
subprocess with the test's settings, so a test sees the exit code and stderr an operator
would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from agents.testing.kafka_io import rfc3339
from agents.testing.workers import ROOT, replay_env
from streams.settings import Settings
from tests.support.live_replay import OVERRIDES


def journey(args: list[str], settings: Settings, timeout: float = 300.0,
            **overrides: Any) -> subprocess.CompletedProcess[str]:
    """A ``journey`` command with the test's settings (and the workers' overrides)."""
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], cwd=ROOT,
                          env=replay_env(settings, **{**OVERRIDES, **overrides}),
                          capture_output=True, text=True, timeout=timeout, check=False)


def bootstrap_args(path: Path, cut: float, *more: str) -> list[str]:
    """``bootstrap PATH --until CUT`` without the progress bar (a test has no terminal)."""
    return ["bootstrap", str(path), "--until", rfc3339(cut), "--no-progress", *more]
