"""``journey --help`` and every command's --help are plain text, and every option says
what it is (agents/cli/main.py)."""

from __future__ import annotations

import argparse
import re

import pytest

from agents.cli.main import build_parser
from agents.demo.run import DEFAULT_SPEED, UNATTENDED_DURATION
from streams.settings_doc import settings_markdown


def commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_the_description_is_plain_text() -> None:
    text = build_parser().format_help()
    assert "``" not in text and ":mod:" not in text, text
    assert text.count("`") == 0, text


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_has_a_help_line(name: str) -> None:
    parser = commands()[name]
    silent = [a.option_strings or [a.dest] for a in parser._actions
              if not a.help or a.help == argparse.SUPPRESS]
    assert not silent, f"journey {name}: no help for {silent}"
    assert parser.description, f"journey {name} has no description"
    assert "`" not in parser.format_help(), parser.format_help()


def test_the_demo_help_states_its_defaults() -> None:
    shown = " ".join(commands()["demo"].format_help().split())
    assert f"(default {DEFAULT_SPEED:g})" in shown, shown
    assert f"else {UNATTENDED_DURATION:g})" in shown, shown


def test_the_broker_setting_names_every_command_that_needs_it() -> None:
    line = next(ln for ln in settings_markdown().splitlines() if ln.startswith("| `broker`"))
    needed = re.findall(r"`(\w+)`", line.split("Required by", 1)[1].split(";")[0])
    assert needed == ["worker", "bootstrap", "produce", "tail"], line
