"""The demo's worker: its settings, and ``journey worker`` run as a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from agents.process import log_tail, parent_death_signal
from streams.settings import Settings

STOP_GRACE = 15.0  # seconds between SIGTERM and SIGKILL
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # faust writes terminal codes to its log

# A weekly rhythm: alerts come within simulated days, and the days still make sense.
DEMO_THRESHOLDS: dict[str, Any] = {
    "purchase_cycle_days": 7.0, "new_user_decline_days": 3.0, "new_user_churn_days": 10.0,
    "min_decline_days": 2.0, "min_churn_days": 6.0, "activity_grace_days": 2.0,
    "refit_interval_days": 7.0, "refit_min_buyers": 20}
# Pipeline delays are wall time, and at days per second even the worker's own hop through
# the repartition topic (referral credits) spans simulated days; lateness is scaled so an
# event this many wall seconds behind still counts.
TOLERATED_WALL_DELAY = 5.0


def demo_settings(base: Settings, *, bootstrap: str, app_id: str, web_port: int,
                  speed: float) -> Settings:
    """The settings the demo and its worker share: the operator's, with demo thresholds,
    the embedded broker, a private app id, and no wall-clock ticks."""
    lateness = max(base.allowed_lateness_seconds, TOLERATED_WALL_DELAY * speed * 86400.0)
    s = base.with_overrides(
        **DEMO_THRESHOLDS, allowed_lateness_seconds=lateness, broker=bootstrap, app_id=app_id,
        web_host="127.0.0.1", web_port=web_port, web_token="", tick_interval_seconds=0.0,
        security_protocol="PLAINTEXT", sasl_mechanism="", sasl_username="", sasl_password="",
        ssl_cafile="")
    s.validate()
    return s


class WorkerProcess:
    """``journey worker`` as a child: its own session (Ctrl-C reaches the demo only, which
    stops it in order), killed by Linux if the demo dies."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.exit_code: int | None = None  # set when it ended by itself
        self.pid: int | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "worker"], env=self.settings.to_env(os.environ),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=parent_death_signal())  # noqa: PLW1509
        self.pid = self.proc.pid

    def died(self) -> bool:
        if self.proc is None or self.exit_code is not None:
            return self.exit_code is not None
        code = self.proc.poll()
        if code is not None:
            self.exit_code = code
        return code is not None

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL; always reaps. Returns the exit
        status (negative: the signal that ended it), None if it was not running."""
        proc, self.proc = self.proc, None
        try:
            if proc is None:
                return None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    return proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    return proc.wait(timeout=10)
            return proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_errors(self) -> list[str]:
        """Lines the worker logged at ERROR or CRITICAL (e.g. a crashed agent, which
        faust restarts without the process dying)."""
        try:
            with open(self.log_path, errors="replace") as fh:
                return [_ANSI.sub("", line).rstrip() for line in fh
                        if " ERROR " in line or " CRITICAL " in line]
        except OSError:
            return []

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_path, lines)
