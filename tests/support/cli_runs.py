"""The ``journey`` console script run as an operator runs it, for the produce and tail tests:
a subprocess whose environment carries the test's settings and no other ``JOURNEY_``
variable, so a test sees the exit code, stdout and stderr an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings

# The installed script beside this interpreter, not `python -m`: its entry point is tested too.
JOURNEY = Path(sys.executable).parent / "journey"


def cli(args: list[str], settings: Settings, timeout: float = 90.0,
        ) -> subprocess.CompletedProcess[str]:
    """``journey ARGS`` with the broker, topic prefix and app id of ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env.update(JOURNEY_BROKER=settings.broker, JOURNEY_TOPIC_PREFIX=settings.topic_prefix,
               JOURNEY_APP_ID=settings.app_id)
    return subprocess.run([str(JOURNEY), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
