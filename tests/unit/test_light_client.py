"""A storefront installs only the base package (no worker extra): the producer library and
`journey produce` must work there, and the other commands must say what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from agents.cli.main import WORKER_EXTRA

# Runs the CLI with every module of the worker extra made unimportable, as in a light install.
LIGHT = f"""
import importlib.abc, sys
class Light(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {sorted(WORKER_EXTRA)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Light())
from agents import JourneyProducer  # the library itself
from agents.cli.main import main
raise SystemExit(main(sys.argv[1:]))
"""


def light(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def test_produce_validates_and_sends_without_the_worker_extra(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps({"event_id": "e1", "user_id": "u", "type": "page_view",
                                     "occurred_at": "2030-01-01T00:00:00Z"}) + b"\n")
    env = {"JOURNEY_BROKER": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    got = light("produce", str(events), env=env)
    # it got as far as the broker (nothing listens there): exit 1, a send failure
    assert got.returncode == 1, got.stderr
    assert "127.0.0.1:1" in got.stderr and "worker" not in got.stderr


def test_commands_that_need_the_worker_extra_say_how_to_install_it(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    assert light("synth", str(history), "--users", "5").returncode == 0  # synth is light
    for args in (("replay", str(history)), ("worker",)):
        got = light(*args, env={"JOURNEY_BROKER": "127.0.0.1:1", "PATH": "/usr/bin:/bin"})
        assert got.returncode == 2, (args, got.stderr)
        assert "pip install 'journey[worker]'" in got.stderr, (args, got.stderr)
