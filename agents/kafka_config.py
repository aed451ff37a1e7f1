"""Client settings derived from ``Settings``, so every Kafka client journey makes agrees.

One function, three dialects: aiokafka, kafka-python and faust name the same things
differently (and aiokafka wants an ``ssl.SSLContext`` where kafka-python wants a file).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from streams.settings import Settings

Client = Literal["aiokafka", "kafka-python", "faust"]

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    # Verifies the broker against the given CA bundle, or the system store without one.
    return ssl.create_default_context(cafile=settings.ssl_cafile or None)


def kafka_kwargs(settings: Settings, client: Client, *, group: bool = False,
                 bootstrap: str | None = None) -> dict[str, Any]:
    """Keyword arguments for a client of the given library.

    aiokafka / kafka-python: pass to ``AIOKafkaConsumer``/``KafkaConsumer``/producers/admin.
    ``group=True`` adds the session timeout and heartbeat (only consumers accept them).
    faust: pass to ``faust.App`` (``broker``, ``broker_credentials``, session/heartbeat).
    ``bootstrap`` overrides ``settings.broker`` (e.g. the embedded broker's address).
    """
    servers = bootstrap if bootstrap is not None else settings.broker
    if not servers:
        raise ValueError("no Kafka bootstrap servers: set JOURNEY_BROKER or start the "
                         "embedded broker first")
    protocol = settings.security_protocol.upper()
    if protocol not in _PROTOCOLS:
        raise ValueError(f"security_protocol must be one of {', '.join(_PROTOCOLS)}")
    sasl = protocol.startswith("SASL_")
    tls = protocol.endswith("SSL")
    mechanism = (settings.sasl_mechanism or "PLAIN").upper()
    if sasl and mechanism not in _MECHANISMS:
        raise ValueError(f"sasl_mechanism must be one of {', '.join(_MECHANISMS)}")
    session_ms = int(settings.session_timeout_seconds * 1000)
    heartbeat_ms = int(settings.heartbeat_interval_seconds * 1000)

    if client == "faust":
        import faust

        urls = ";".join(f"kafka://{s.strip()}" for s in servers.split(",") if s.strip())
        creds: Any = None
        if sasl:
            creds = faust.SASLCredentials(username=settings.sasl_username,
                                          password=settings.sasl_password,
                                          mechanism=mechanism,
                                          ssl_context=_ssl_context(settings) if tls else None)
        elif tls:
            creds = faust.SSLCredentials(_ssl_context(settings))
        return {"broker": urls, "broker_credentials": creds,
                "broker_session_timeout": settings.session_timeout_seconds,
                "broker_heartbeat_interval": settings.heartbeat_interval_seconds}

    out: dict[str, Any] = {"bootstrap_servers": servers, "security_protocol": protocol}
    if sasl:
        out.update(sasl_mechanism=mechanism, sasl_plain_username=settings.sasl_username,
                   sasl_plain_password=settings.sasl_password)
    if client == "aiokafka":
        if tls:
            out["ssl_context"] = _ssl_context(settings)
    elif client == "kafka-python":
        if tls and settings.ssl_cafile:
            out["ssl_cafile"] = settings.ssl_cafile
    else:
        raise ValueError(f"unknown Kafka client {client!r}")
    if group:
        out.update(session_timeout_ms=session_ms, heartbeat_interval_ms=heartbeat_ms)
    return out
