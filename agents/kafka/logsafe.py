"""What of a user may appear in a log line.

Logs go further than journey's own topics and tables: into log shippers, search indexes,
tickets and screenshots, read by more people and kept longer. So a log line names a user
by a keyed hash (``user:3f9a0c41d2e7``) unless the operator asked for plain ids, and never
quotes an event's payload or an exception's message, which may carry one (an e-mail in a
property, an id in a ``KeyError``). The message of a failed record goes to the dead-letter
topic, which is access-controlled like the input; the log gets its type and stack only.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import traceback

from streams.settings import Settings

HASH_PREFIX = "user:"
HASH_HEX_DIGITS = 12  # 48 bits: collisions are negligible for telling users apart in logs
PLAIN_MAX_CHARS = 128


def log_hash_key(settings: Settings) -> bytes:
    """The hash key: ``log_hash_key`` if set, else one derived from ``app_id``, so hashes
    stay the same across restarts and workers of one deployment."""
    if settings.log_hash_key:
        return settings.log_hash_key.encode("utf-8")
    return b"journey-log-user-ids:" + settings.app_id.encode("utf-8")


def hashed_user_id(user_id: str, key: bytes) -> str:
    digest = hmac.new(key, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()[:HASH_HEX_DIGITS]


def printable(text: str, limit: int = PLAIN_MAX_CHARS) -> str:
    """``text`` with control characters escaped and its length capped, so an id chosen by
    a client can neither forge log lines (a newline) nor flood them."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


class UserIds:
    """Renders user ids for logs as the settings ask; build one and call it per id."""

    def __init__(self, settings: Settings) -> None:
        self.hashed = settings.hash_user_ids_in_logs
        self._key = log_hash_key(settings)

    def __call__(self, user_id: str | None) -> str:
        if user_id is None:
            return "-"
        return hashed_user_id(user_id, self._key) if self.hashed else printable(user_id)


def log_user(user_id: str | None, settings: Settings) -> str:
    """One user id as it may appear in a log line (see :class:`UserIds`)."""
    return UserIds(settings)(user_id)


def exception_summary(exc: BaseException) -> str:
    """The exception's type and where it was raised, innermost frame first, without its
    message (which may quote the record) unless the exception says it is ``log_safe``."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}"
                        for f in reversed(frames))
    what = type(exc).__name__
    if getattr(exc, "log_safe", False):  # journey's own, whose message names no user
        what += f" ({exc})"
    return f"{what} at {where}" if where else what


__all__ = ["HASH_PREFIX", "UserIds", "exception_summary", "hashed_user_id", "log_hash_key",
           "log_user", "printable"]
