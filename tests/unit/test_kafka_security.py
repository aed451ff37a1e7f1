"""TLS and SASL settings reach every Kafka client journey creates.

The embedded Tansu 0.6.0 cannot be started with TLS (clap rejects ``--cert`` together with
``--key``, and the broker needs both) and offers no usable SASL on memory storage (PLAIN is
not compiled in; SCRAM users can only be added through the broker, which refuses the
unauthenticated request once ``--authentication`` is on). So these tests intercept each
client's constructor and check what it was given; tests/kafka/test_tls.py then proves the TLS
settings work on the wire, through a TLS listener in front of Tansu.

Settings come the way an operator gives them: ``JOURNEY_*`` variables, with the password
read from a file named by ``JOURNEY_SASL_PASSWORD_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiokafka
import aiokafka.admin
import aiokafka.client
import kafka
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from kafka.errors import KafkaConnectionError as KafkaPythonConnectionError

from agents.kafka.config import kafka_kwargs
from agents.kafka.topics import Topics
from streams.settings import Settings
from tests.support.tls import Pki, make_pki

PASSWORD = "pa55-w0rd-for-the-tests"
USER = "journey-svc"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


CASES = {
    # name: (protocol, mechanism, CA file?, client certificate?)
    "ssl": ("SSL", "", True, False),
    "ssl-client-certificate": ("SSL", "", True, True),
    "sasl-plaintext-plain": ("SASL_PLAINTEXT", "PLAIN", False, False),
    "sasl-ssl-scram-256": ("SASL_SSL", "SCRAM-SHA-256", True, False),
    "sasl-ssl-scram-512-system-cas": ("SASL_SSL", "SCRAM-SHA-512", False, False),
}


@pytest.fixture(params=sorted(CASES))
def secure(request: pytest.FixtureRequest, pki: Pki, tmp_path: Path) -> Settings:
    protocol, mechanism, cafile, client_cert = CASES[request.param]
    env = {"JOURNEY_BROKER": "kafka-1.example:9093", "JOURNEY_APP_ID": "shop",
           "JOURNEY_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL_"):
        secret = tmp_path / "sasl-password"
        secret.write_text(PASSWORD + "\n")
        env.update(JOURNEY_SASL_MECHANISM=mechanism, JOURNEY_SASL_USERNAME=USER,
                   JOURNEY_SASL_PASSWORD_FILE=str(secret))
    if cafile:
        env["JOURNEY_SSL_CAFILE"] = str(pki.ca)
    if client_cert:
        env.update(JOURNEY_SSL_CERTFILE=str(pki.client_cert),
                   JOURNEY_SSL_KEYFILE=str(pki.client_key),
                   JOURNEY_SSL_KEY_PASSWORD=pki.client_key_password)
    return Settings.load(environ=env)


class Refused(KafkaPythonConnectionError):
    """What an intercepted kafka-python constructor raises instead of connecting."""


class Clients:
    """Constructor keyword arguments of every Kafka client class, as they were made."""

    def __init__(self) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.made if n == name]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Clients:
    """aiokafka classes are really constructed (that validates the arguments) but cannot
    connect; kafka-python classes connect in their constructor, so they raise instead."""
    seen = Clients()

    def recording(cls: type, name: str) -> None:
        real = cls.__init__  # type: ignore[misc]

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            seen.made.append((name, kwargs))
            real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    async def unreachable(self: Any, *args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("intercepted by the test")

    for cls, start in ((aiokafka.AIOKafkaConsumer, "start"),
                       (aiokafka.AIOKafkaProducer, "start"),
                       (aiokafka.admin.AIOKafkaAdminClient, "start"),
                       (aiokafka.client.AIOKafkaClient, "bootstrap")):
        recording(cls, cls.__name__)
        monkeypatch.setattr(cls, start, unreachable)

    for cls in (kafka.KafkaProducer, kafka.KafkaConsumer, kafka.KafkaAdminClient):
        def refuse(self: Any, *args: Any, _name: str = cls.__name__, **kwargs: Any) -> None:
            seen.made.append((_name, kwargs))
            raise Refused("intercepted by the test")

        monkeypatch.setattr(cls, "__init__", refuse)
        if hasattr(cls, "__del__"):  # would tidy up a client that was never built
            monkeypatch.setattr(cls, "__del__", lambda self: None)
    return seen


# --- what each client must have been given -------------------------------------------------

def assert_aiokafka_security(kw: dict[str, Any], s: Settings, pki: Pki) -> None:
    protocol = s.security_protocol
    assert kw["security_protocol"] == protocol
    assert kw["bootstrap_servers"] == s.broker
    if protocol.startswith("SASL_"):
        assert kw["sasl_mechanism"] == s.sasl_mechanism
        assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == (USER, PASSWORD)
    else:
        assert "sasl_plain_password" not in kw
    if protocol.endswith("SSL"):
        assert_verifying_context(kw["ssl_context"], s, pki)
    else:
        assert kw.get("ssl_context") is None


def assert_verifying_context(ctx: Any, s: Settings, pki: Pki) -> None:
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    ours = [c for c in ctx.get_ca_certs()
            if ("commonName", "journey test ca") in [n for rdn in c["subject"] for n in rdn]]
    assert bool(ours) == bool(s.ssl_cafile)


def assert_kafka_python_security(kw: dict[str, Any], s: Settings) -> None:
    protocol = s.security_protocol
    assert kw["security_protocol"] == protocol
    if protocol.startswith("SASL_"):
        assert kw["sasl_mechanism"] == s.sasl_mechanism
        assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == (USER, PASSWORD)
        assert kw["sasl_mechanism"] in kafka.net.sasl.SASL_MECHANISMS  # kafka-python knows it
    if protocol.endswith("SSL"):
        assert kw["ssl_check_hostname"] is True
        assert kw.get("ssl_cafile") == (s.ssl_cafile or None)
        assert kw.get("ssl_certfile") == (s.ssl_certfile or None)
        assert kw.get("ssl_keyfile") == (s.ssl_keyfile or None)
        assert kw.get("ssl_password") == (s.ssl_key_password or None)
    else:
        assert not [k for k in kw if k.startswith("ssl_")]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert "client-key-pass" not in text


# --- every client ------------------------------------------------------------------------------

def test_producer_api(secure: Settings, clients: Clients, pki: Pki) -> None:
    from agents.client.producer import JourneyProducer

    with pytest.raises(Refused):
        JourneyProducer(secure)
    (kw,) = clients.of("KafkaProducer")
    assert_kafka_python_security(kw, secure)
    assert kw["bootstrap_servers"] == secure.broker


def test_journey_produce(secure: Settings, clients: Clients, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    from agents.cli.produce import run_produce

    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1"}\n')
    caplog.set_level(logging.INFO)
    assert run_produce(argparse.Namespace(file=events, topic=None), secure) == 1
    (kw,) = clients.of("KafkaProducer")
    assert_kafka_python_security(kw, secure)
    err = capsys.readouterr().err
    assert "cannot connect to kafka-1.example:9093" in err
    assert_no_secret(err, caplog.text)


def test_journey_tail(secure: Settings, clients: Clients, pki: Pki,
                      capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    from agents.cli.tail import run_tail

    caplog.set_level(logging.INFO)
    args = argparse.Namespace(topic=None, from_beginning=False, filter=[], max=None)
    assert run_tail(args, secure) == 1
    (kw,) = clients.of("AIOKafkaConsumer")
    assert_aiokafka_security(kw, secure, pki)
    assert kw["session_timeout_ms"] == int(secure.session_timeout_seconds * 1000)
    assert_no_secret(capsys.readouterr().err, caplog.text)


def test_heal_reads_back_and_committed_offsets(secure: Settings, clients: Clients,
                                              pki: Pki) -> None:
    from agents.kafka import heal

    with pytest.raises(KafkaConnectionError):
        asyncio.run(heal.read_ranges(secure, "10.0.0.7:9093", [("shop.events", 0, 5, 9)]))
    (kw,) = clients.of("AIOKafkaConsumer")
    assert_aiokafka_security({**kw, "bootstrap_servers": secure.broker}, secure, pki)
    assert kw["bootstrap_servers"] == "10.0.0.7:9093"  # the worker's own bootstrap wins
    if hasattr(heal, "committed_offsets"):
        with pytest.raises(KafkaConnectionError):
            asyncio.run(heal.committed_offsets(secure, secure.broker, "shop",
                                               [("shop.events", 0)]))
        (kw,) = clients.of("AIOKafkaAdminClient")
        assert_aiokafka_security(kw, secure, pki)


def test_changelog_reader(secure: Settings, clients: Clients, pki: Pki) -> None:
    """The table stores read their changelog with a client of their own."""
    from agents.kafka.changelog_read import read_changelog

    with pytest.raises(KafkaConnectionError):
        asyncio.run(read_changelog(secure, "10.0.0.7:9093", "journey-users-changelog", {0: 0},
                                   lambda partition, records: None))
    (kw,) = clients.of("AIOKafkaConsumer")
    assert_aiokafka_security({**kw, "bootstrap_servers": secure.broker}, secure, pki)
    assert kw["bootstrap_servers"] == "10.0.0.7:9093"


def test_worker_watchdog_probe(secure: Settings, clients: Clients, pki: Pki) -> None:
    from agents.kafka import watchdog

    topics = Topics.from_settings(secure)
    assignment = {TopicPartition(topics.events, 0)}
    rt = SimpleNamespace(
        settings=secure, topics=topics, bootstrap=secure.broker, probe=None, fatal=[],
        ready=True, broker_lost_since=0.0,
        app=SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: assignment)))
    asyncio.run(watchdog.check_broker(rt))  # type: ignore[arg-type]
    (kw,) = clients.of("AIOKafkaClient")
    assert_aiokafka_security(kw, secure, pki)
    assert rt.broker_lost_since > 0  # the probe could not connect, and said so


def test_worker_faust_app(secure: Settings, pki: Pki, monkeypatch: pytest.MonkeyPatch,
                          tmp_path: Path) -> None:
    """faust turns the app's credentials into the arguments of its aiokafka clients with
    ``credentials_to_aiokafka_auth``; they must equal what journey's own clients get."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from agents.kafka.worker import build

    rt = build(secure.with_overrides(data_dir=str(tmp_path / "data")), secure.broker)
    assert str(rt.app.conf.broker[0]) == f"kafka://{secure.broker}"
    auth = credentials_to_aiokafka_auth(rt.app.conf.broker_credentials,
                                        rt.app.conf.ssl_context)
    ours = kafka_kwargs(secure, "aiokafka")
    assert auth["security_protocol"] == ours["security_protocol"]
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert auth.get(key) == ours.get(key)
    assert_aiokafka_security({**auth, "bootstrap_servers": secure.broker}, secure, pki)
    assert PASSWORD not in repr(rt.app.conf.broker_credentials)


def test_worker_waits_for_the_broker_with_the_same_security(
        secure: Settings, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    """``journey worker`` first proves the broker answers; over TLS/SASL that probe must
    speak TLS/SASL too (a plaintext probe never gets an answer)."""
    import agents.broker
    from agents.cli.worker import EXIT_BROKER_UNREACHABLE, run_worker

    real_wait = agents.broker.wait_for_broker
    given: list[dict[str, Any]] = []

    def wait(bootstrap: str, timeout: float, client_kwargs: Any = None) -> None:
        given.append(dict(client_kwargs or {}))
        real_wait(bootstrap, 0.05, client_kwargs)  # one refused probe, then give up

    monkeypatch.setattr(agents.broker, "wait_for_broker", wait)
    assert run_worker(argparse.Namespace(), secure) == EXIT_BROKER_UNREACHABLE
    (kw,) = given
    assert_kafka_python_security(kw, secure)
    probes = clients.of("KafkaAdminClient")
    assert probes  # the probe was a kafka-python client with the same settings
    assert_kafka_python_security(probes[0], secure)


def test_plaintext_stays_plain() -> None:
    s = Settings().with_overrides(broker="k:9092")
    for client in ("aiokafka", "kafka-python"):
        kw = kafka_kwargs(s, client)  # type: ignore[arg-type]
        assert kw["security_protocol"] == "PLAINTEXT"
        assert not [k for k in kw if k.startswith(("ssl", "sasl"))]
    assert kafka_kwargs(s, "faust")["broker_credentials"] is None


@pytest.mark.parametrize("changes, problem", [
    ({"security_protocol": "TLS"}, "security_protocol"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
      "sasl_password": "p"}, "sasl_mechanism"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username"),
    ({"security_protocol": "SSL", "ssl_keyfile": "k.pem"}, "need ssl_certfile"),
])
def test_unusable_security_settings_are_refused_at_load(changes: dict[str, str],
                                                        problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings().with_overrides(**changes).validate()
