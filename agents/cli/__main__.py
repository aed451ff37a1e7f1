"""``python -m agents.cli``: the ``journey`` command (tests and tools start workers so)."""

from agents.cli.main import main

raise SystemExit(main())
