"""Client settings derived from ``Settings``, so every Kafka client journey makes agrees.

One function, three dialects: aiokafka, kafka-python and faust name the same things
differently (and aiokafka wants an ``ssl.SSLContext`` where kafka-python wants a file).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from streams.settings import KAFKA_PROTOCOLS as _PROTOCOLS
from streams.settings import SASL_MECHANISMS as _MECHANISMS
from streams.settings import Settings

Client = Literal["aiokafka", "kafka-python", "faust"]


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    # Verifies the broker (certificate chain and host name) against the given CA bundle,
    # or the system store without one; presents a client certificate if one is configured.
    ctx = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    if settings.ssl_certfile:
        ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None,
                            settings.ssl_key_password or None)
    return ctx


def _kafka_python_tls(settings: Settings) -> dict[str, Any]:
    # kafka-python builds its own context from these (TLS 1.2 or newer); the same checks
    # as _ssl_context, spelled out so that no default can switch them off.
    out: dict[str, Any] = {"ssl_check_hostname": True}
    if settings.ssl_cafile:
        out["ssl_cafile"] = settings.ssl_cafile
    if settings.ssl_certfile:
        out["ssl_certfile"] = settings.ssl_certfile
        if settings.ssl_keyfile:
            out["ssl_keyfile"] = settings.ssl_keyfile
        if settings.ssl_key_password:
            out["ssl_password"] = settings.ssl_key_password
    return out


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
        if tls:
            out.update(_kafka_python_tls(settings))
    else:
        raise ValueError(f"unknown Kafka client {client!r}")
    if group:
        out.update(session_timeout_ms=session_ms, heartbeat_interval_ms=heartbeat_ms)
    return out
