"""The configuration reference (``docs/configuration.md``), generated from the metadata
of the :class:`~streams.settings.Settings` fields (``journey config --markdown``)."""

from __future__ import annotations

import dataclasses
from dataclasses import fields

from streams.settings import Settings
from streams.settings_load import ENV_PREFIX, SECRET_FILE_SUFFIX


def settings_markdown() -> str:
    """The configuration reference, generated from the field metadata."""
    lines = ["# Configuration reference", "",
             "Generated from `streams/settings.py` by `journey config --markdown`. Set a value "
             "with the environment variable shown, or in a TOML file passed with `--config` "
             "(or `JOURNEY_CONFIG`); the environment wins.", "",
             "A list setting such as `channels` is written comma-separated in an environment "
             "variable, `JOURNEY_CHANNELS=email,sms` (a JSON array, "
             "`JOURNEY_CHANNELS='[\"email\",\"sms\"]'`, works too), and as an array in "
             'TOML, `channels = ["email", "sms"]`.', "",
             "In the TOML file the setting names are the keys. The sections below may be "
             "written as tables or left out; they are only for the reader:", "",
             "```toml", "[kafka]", 'broker = "kafka-1:9092"', "", "[lifecycle]",
             "purchase_cycle_days = 7.0", "```", ""]
    section = None
    for f in fields(Settings):
        sec = f.metadata["section"]
        if sec != section:
            section = sec
            lines += ["", f"## {sec}", "", "| setting | environment | default | meaning |",
                      "|---|---|---|---|"]
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else \
            factory() if callable(factory) else None
        env = f"`{ENV_PREFIX}{f.name.upper()}`"
        doc = f.metadata["doc"]
        if f.metadata.get("secret"):
            env += f" or `{ENV_PREFIX}{f.name.upper()}{SECRET_FILE_SUFFIX.upper()}`"
            doc += (f" Secret: from the environment, or a file named by the `_FILE` variable "
                    f"or by `{f.name}{SECRET_FILE_SUFFIX}` in the config file.")
        lines.append(f"| `{f.name}` | {env} | `{default!r}` | {doc} |")
    return "\n".join(lines) + "\n"
