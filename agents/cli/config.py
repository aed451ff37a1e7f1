"""``journey config``, and how every command loads its settings."""

from __future__ import annotations

import argparse
import sys

from streams.settings import Settings
from streams.settings_doc import settings_markdown

EXIT_CONFIGURATION = 2  # every command: the settings are wrong, and a retry will not help


def load_settings(args: argparse.Namespace) -> Settings:
    try:
        return Settings.load(getattr(args, "config", None))
    except (OSError, ValueError) as exc:
        print(f"journey: configuration: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from exc


def run_config(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    import orjson

    sys.stdout.write(orjson.dumps(load_settings(args).public_dict(),
                                  option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
