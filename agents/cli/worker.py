"""``journey worker``."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from typing import IO, Any

from agents.kafka.logrepeats import CLIENT_LOGGERS, flush_installed, limit_client_repeats
from streams.settings import Settings

EXIT_BROKER_UNREACHABLE = 2
EXIT_FATAL = 3


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    import agents.kafka.worker  # noqa: F401 - first, so a light install says so at once

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Kafka clients log every protocol request at DEBUG: record payloads, and with SASL
    # PLAIN the password. They stay at INFO even when journey itself logs at DEBUG.
    for client in CLIENT_LOGGERS:
        quiet = logging.getLogger(client)
        quiet.setLevel(max(quiet.getEffectiveLevel(), logging.INFO))
    limit_client_repeats()  # a broker outage would log about 100 client errors a second
    try:
        return _checked_serve(settings)
    finally:
        flush_installed()  # what the limiter still holds: an outage's last lines, counted


def _checked_serve(settings: Settings) -> int:
    from agents.broker import BrokerUnavailable, wait_for_broker
    from agents.kafka.config import kafka_kwargs

    if not settings.broker:
        print("journey worker: no broker configured; set JOURNEY_BROKER (or run "
              "`journey demo`, which starts the embedded one)", file=sys.stderr)
        return EXIT_BROKER_UNREACHABLE
    try:
        # With TLS/SASL the probe must speak it too: a plaintext probe never gets an answer.
        wait_for_broker(settings.broker, timeout=30.0,
                        client_kwargs=kafka_kwargs(settings, "kafka-python"))
    except BrokerUnavailable as exc:
        print(f"journey worker: broker {settings.broker} unreachable: {exc}", file=sys.stderr)
        return EXIT_BROKER_UNREACHABLE
    return serve(settings, settings.broker)


def serve(settings: Settings, bootstrap: str) -> int:
    """Run the worker until SIGTERM/SIGINT (exit 0) or a fatal fault (exit 3)."""
    from agents.kafka.worker import build

    rt = build(settings, bootstrap)
    worker = faust_worker(rt.app, settings)
    # Everything imported and built so far lives as long as the process: out of the
    # collector's sight, a full collection no longer walks it (see streams.collector).
    gc.freeze()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if rt.fatal:
            print(f"journey worker: stopped on a fatal fault: {rt.fatal[0]}", file=sys.stderr)
            return EXIT_FATAL
        return code
    except Exception as exc:  # noqa: BLE001 - a crash faust re-raised at shutdown
        if rt.fatal:
            print(f"journey worker: stopped on a fatal fault: {rt.fatal[0]}", file=sys.stderr)
            return EXIT_FATAL
        print(f"journey worker: crashed: {exc!r}", file=sys.stderr)
        return 1
    return EXIT_FATAL if rt.fatal else 0


def faust_worker(app: Any, settings: Settings, stdout: IO[str] | None = None) -> Any:
    """faust's Worker for ``app``, without its start-up spinner unless ``stdout`` is a
    terminal: the spinner ends by showing the cursor (``ESC[?25h``) even in a log file."""
    import faust

    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True,
                          override_logging=False, stdout=stdout or sys.stdout)
    if not worker.stdout.isatty():
        worker.spinner = None
    return worker
