"""``journey broker``: the embedded broker in the foreground, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time

from agents.broker import EmbeddedBroker
from streams.settings import Settings


def _free(port: int) -> bool:
    """Whether the broker could listen on ``port``. SO_REUSEADDR, as the broker itself
    binds: connections of a stopped broker linger in TIME-WAIT for a minute and must not
    count, while a live listener still makes the bind fail (Linux refuses it then)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_broker(args: argparse.Namespace, settings: Settings) -> int:
    if args.port and not _free(args.port):
        print(f"journey broker: port {args.port} is in use (another broker?); pick another "
              "with --port, or --port 0 for any free one", file=sys.stderr)
        return 2
    with EmbeddedBroker(port=args.port or None) as broker:
        print(f"embedded broker listening on {broker.bootstrap} (memory storage; "
              "Ctrl-C to stop)", flush=True)
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop and broker.running:
            time.sleep(0.2)
    return 0
