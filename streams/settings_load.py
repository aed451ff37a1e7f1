"""Where settings come from, and how a child process gets them.

In increasing precedence: a dataclass's defaults, an optional TOML file, and environment
variables named ``JOURNEY_<FIELD>``. Secrets (fields marked ``secret``) come from the
environment or from a file named by ``JOURNEY_<FIELD>_FILE`` or by ``<field>_file`` in
the TOML file, never from the TOML file itself. :func:`to_env` is the way back: the
environment in which a child process loads the same settings.

Written against any dataclass whose fields carry that metadata, so it does not import
:mod:`streams.settings`, which uses it.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, get_type_hints

ENV_PREFIX = "JOURNEY_"
SECRET_FILE_SUFFIX = "_file"  # sasl_password_file / JOURNEY_SASL_PASSWORD_FILE
# JOURNEY_* variables that are not settings: the config file's path, and the test suite's
# own switches (tests/conftest.py, tests/support/deploy.py). Any other unknown name is an
# error, so a typo such as JOURNEY_PARTITION does not silently leave the default in force.
NOT_SETTINGS = frozenset({"JOURNEY_CONFIG", "JOURNEY_TEST_BOOTSTRAP",
                          "JOURNEY_REQUIRE_PROMTOOL"})


class Loadable(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def validate(self) -> None: ...


S = TypeVar("S", bound=Loadable)


def secret_fields(cls: type[Loadable]) -> frozenset[str]:
    """Fields that are read only from the environment or a file, and masked when shown."""
    return frozenset(f.name for f in fields(cls) if f.metadata.get("secret"))


def load(cls: type[S], path: str | Path | None = None,
         environ: Mapping[str, str] | None = None) -> S:
    """Defaults, then the TOML file (if any), then ``JOURNEY_*`` variables; validated."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        flat: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, dict):  # sections are only for the reader
                flat.update(v)
            else:
                flat[k] = v
        values.update(flat)
    names = {f.name for f in fields(cls)}
    secrets = secret_fields(cls)
    _refuse_unknown_variables(env, names, secrets)
    inline = secrets & set(values)
    if inline:
        raise ValueError(
            f"{', '.join(sorted(inline))} in {path}: secrets are not read from the config "
            f"file; set {ENV_PREFIX}<NAME> or {ENV_PREFIX}<NAME>_FILE, or name a file with "
            f"<name>{SECRET_FILE_SUFFIX} in the config file")
    unknown = set(values) - names - {n + SECRET_FILE_SUFFIX for n in secrets}
    if unknown:
        raise ValueError(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
    # Where each secret is read from: a file named in the TOML file (relative to it),
    # unless the environment names a value or a file of its own.
    secret_files = {n: _beside(path, values.pop(n + SECRET_FILE_SUFFIX)) for n in secrets
                    if n + SECRET_FILE_SUFFIX in values}
    for name in names:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
            secret_files.pop(name, None)
    for name in secrets:
        key = ENV_PREFIX + name.upper()
        file_key = key + SECRET_FILE_SUFFIX.upper()
        if file_key in env:
            if key in env:
                raise ValueError(f"both {key} and {file_key} are set; keep one")
            secret_files[name] = env[file_key]
    for name, secret_path in secret_files.items():
        values[name] = read_secret_file(name, secret_path)
    hints = get_type_hints(cls)
    coerced = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    settings = cls(**coerced)
    settings.validate()
    return settings


def _refuse_unknown_variables(env: Mapping[str, str], names: set[str],
                              secrets: frozenset[str]) -> None:
    known = {ENV_PREFIX + n.upper() for n in names} | NOT_SETTINGS | {
        ENV_PREFIX + (n + SECRET_FILE_SUFFIX).upper() for n in secrets}
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hints.append(f"{key}" + (f" (did you mean {near[0]}?)" if near else ""))
        raise ValueError(f"unknown environment variables: {', '.join(hints)}; journey reads "
                         f"{ENV_PREFIX}<SETTING> for the settings listed by `journey config`")


def to_env(settings: Loadable, base: Mapping[str, str] | None = None,
           names: Iterable[str] | None = None) -> dict[str, str]:
    """The environment of a child process that must :func:`load` ``settings``: ``base``
    (e.g. ``os.environ``) without its ``JOURNEY_*`` variables, then ``JOURNEY_<NAME>``
    for every setting, or for ``names`` only."""
    env = {k: v for k, v in (base or {}).items() if not k.startswith(ENV_PREFIX)}
    for name in [f.name for f in fields(settings)] if names is None else names:
        v = getattr(settings, name)
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = ",".join(map(str, v))
        env[ENV_PREFIX + name.upper()] = str(v)
    return env


def read_secret_file(name: str, path: str | Path) -> str:
    """The secret stored in a file (one trailing newline dropped, as editors add one).

    An empty file is refused: for ``web_token`` an empty value would mean no
    authentication at all, which must not happen because a secret was mounted wrong.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"setting {name}: cannot read the file {path}: {reason}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ValueError(f"setting {name}: the file {path} is empty")
    return value


def _beside(config: str | Path | None, target: Any) -> str:
    """A path from the config file, relative to that file's directory."""
    p = Path(str(target))
    return str(p if p.is_absolute() or config is None else Path(config).parent / p)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    text = hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(word)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if str(hint).startswith("list"):
            if isinstance(value, str):
                text_value = value.strip()
                if text_value.startswith("["):  # a JSON array, as a TOML or YAML user writes
                    parsed = json.loads(text_value)
                    if not isinstance(parsed, list) or not all(
                            isinstance(p, str) for p in parsed):
                        raise ValueError("a JSON array of strings")
                    return [p.strip() for p in parsed if p.strip()]
                return [p.strip() for p in value.split(",") if p.strip()]
            return list(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}: cannot read {value!r} as {text}") from exc
    return value
