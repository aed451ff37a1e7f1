"""The ``journey`` command line: one module per command.

``main`` holds the parser and imports a command's module only when that command runs, so
``journey replay`` and ``journey config`` start without faust or a Kafka client.
``config`` also holds how every command loads its settings. The other modules are
``replay``, ``bootstrap``, ``worker``, ``broker``, ``demo``, ``produce``, ``tail`` and
``synth``, each with a ``run_<command>(args, settings)``. A new command: a module here,
its arguments and its case in ``main``.
"""

from agents.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
