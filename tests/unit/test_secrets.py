"""Secrets come from the environment or from files, never from a flag or the config file,
and never show: not in repr(Settings), not in `journey config`, not in error messages."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import orjson
import pytest

from agents.cli import build_parser, main
from streams.settings import MASK, Settings, secret_names

SECRET = "s3cr3t-value-0f-the-tests"


def test_the_secrets_are_the_credentials_and_keys() -> None:
    assert secret_names() == {"sasl_password", "ssl_key_password", "web_token",
                              "log_hash_key"}


@pytest.mark.parametrize("name", sorted(secret_names()))
def test_each_secret_from_the_environment_or_a_file(name: str, tmp_path: Path) -> None:
    key = f"JOURNEY_{name.upper()}"
    base = {"JOURNEY_SSL_CERTFILE": "client.pem"}  # a key password needs a certificate
    assert getattr(Settings.load(environ={**base, key: SECRET}), name) == SECRET
    secret_file = tmp_path / name
    secret_file.write_text(SECRET + "\n")  # editors and `echo` add a newline
    loaded = Settings.load(environ={**base, key + "_FILE": str(secret_file)})
    assert getattr(loaded, name) == SECRET


def test_a_file_keeps_inner_whitespace_and_drops_only_one_newline(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_bytes(b" a b \r\n")
    assert Settings.load(environ={"JOURNEY_WEB_TOKEN_FILE": str(f)}).web_token == " a b "


def test_the_config_file_may_name_a_secret_file_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "kafka").write_text(SECRET)
    config = tmp_path / "journey.toml"
    config.write_text('[security]\nsasl_password_file = "secrets/kafka"\n')
    assert Settings.load(config, environ={}).sasl_password == SECRET
    # the environment still wins, as for every setting
    assert Settings.load(config, environ={"JOURNEY_SASL_PASSWORD": "env"}).sasl_password \
        == "env"


def test_a_secret_written_into_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(f'[security]\nsasl_username = "svc"\nsasl_password = "{SECRET}"\n')
    with pytest.raises(ValueError, match="sasl_password") as err:
        Settings.load(config, environ={})
    assert "JOURNEY_<NAME>_FILE" in str(err.value)
    assert SECRET not in str(err.value)


def test_a_value_and_a_file_for_one_secret_is_ambiguous(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("file")
    with pytest.raises(ValueError, match="JOURNEY_WEB_TOKEN and JOURNEY_WEB_TOKEN_FILE"):
        Settings.load(environ={"JOURNEY_WEB_TOKEN": "env", "JOURNEY_WEB_TOKEN_FILE": str(f)})


def test_an_unreadable_or_empty_secret_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the file .*missing"):
        Settings.load(environ={"JOURNEY_WEB_TOKEN_FILE": str(tmp_path / "missing")})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    # an empty token would switch authentication off: refuse rather than run open
    with pytest.raises(ValueError, match="is empty"):
        Settings.load(environ={"JOURNEY_WEB_TOKEN_FILE": str(empty)})


def test_repr_and_public_dict_mask_every_secret() -> None:
    s = Settings().with_overrides(**{n: SECRET for n in secret_names()},
                                  sasl_username="svc")
    for shown in (repr(s), str(s), f"{s}", repr(s.public_dict())):
        assert SECRET not in shown
        assert "svc" in shown
    assert all(s.public_dict()[n] == MASK for n in secret_names())
    assert repr(Settings()).count(MASK) == 0  # empty secrets are shown as empty
    assert repr(Settings()).startswith("Settings(purchase_cycle_days=30.0,")
    assert dataclasses.replace(s).sasl_password == SECRET  # masking is display only


def _every_option(parser: argparse.ArgumentParser, path: str = "journey"
                  ) -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _every_option(sub, f"{path} {name}")
        else:
            found += [(path, opt) for opt in action.option_strings or [action.dest]]
    return found


def test_no_command_takes_a_secret_as_a_flag() -> None:
    """Command lines end up in shell history, `ps` output and CI logs."""
    options = _every_option(build_parser())
    assert ("journey worker", "--config") in options  # the walk does see the flags
    words = ("password", "passwd", "token", "secret", "sasl", "credential", "key")
    offending = [(cmd, opt) for cmd, opt in options if any(w in opt.lower() for w in words)]
    assert offending == []


def test_journey_config_prints_secrets_masked(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("JOURNEY_")]:
        monkeypatch.delenv(key)
    token = tmp_path / "token"
    token.write_text(SECRET)
    monkeypatch.setenv("JOURNEY_WEB_TOKEN_FILE", str(token))
    monkeypatch.setenv("JOURNEY_SASL_PASSWORD", SECRET + "-2")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    shown = orjson.loads(out)
    assert shown["web_token"] == MASK and shown["sasl_password"] == MASK
    assert shown["hash_user_ids_in_logs"] is True
