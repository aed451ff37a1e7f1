"""``journey bootstrap`` that SIGKILLs itself in the middle of a phase of its write.

    python -m tests.support.killed_bootstrap PHASE RECORDS bootstrap ARGS...

The process dies as under ``kill -9``: no ``finally``, no flush, batches in flight lost.
Batches are made small so that the users phase spans many of them, and the kill comes at
the first progress report of ``PHASE`` with at least ``RECORDS`` of its records
acknowledged: some batches written, others in flight or not yet made. Acknowledgements
come when the broker sends them, so if none of the reports inside the phase has that
many, the kill comes at its end, before the next phase. It says on stderr where.
"""

from __future__ import annotations

import os
import signal
import sys

from agents.cli import bootstrap as cli
from agents.cli.main import main
from agents.kafka import bootstrap as kb

SMALL_BATCH_BYTES = 16_384


def run(phase: str, records: int, argv: list[str]) -> int:
    kb.BATCH_BYTES = SMALL_BATCH_BYTES
    shown = cli._Shown.phase

    def killed(self: cli._Shown, name: str, done: int, total: int) -> None:
        if name == phase and (done >= records or done == total):
            sys.stderr.write(f"killing myself in {name}: {done} of {total} acknowledged\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        shown(self, name, done, total)

    cli._Shown.phase = killed  # type: ignore[method-assign]
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
