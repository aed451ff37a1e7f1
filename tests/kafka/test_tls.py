"""journey's Kafka clients over TLS, on the wire.

Tansu 0.6.0 has no working TLS listener (see tests/support/tls.py), so a TLS front made
for the test terminates TLS in front of a plaintext Tansu that advertises the front's
address: every connection a client makes, bootstrap and after, goes through TLS. The
front's certificate comes from a CA generated here. Proven: the producer API, ``journey
produce``, ``journey tail``, the worker's broker wait, heal's read-back and aiokafka
clients built from ``kafka_kwargs`` work over TLS; a plaintext client, an untrusted CA, a
certificate for another host name, and (with mutual TLS) a client without a certificate
are all refused.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from kafka.errors import KafkaError

from agents.broker import EmbeddedBroker, probe_metadata, wait_for_broker
from agents.kafka.config import kafka_kwargs
from streams.settings import Settings
from tests.support.tls import Pki, TlsFront, make_pki

pytestmark = pytest.mark.kafka
FAIL_FAST_MS = 3000  # a refused kafka-python client gives up after this long


class AdvertisingBroker(EmbeddedBroker):
    """The embedded broker, telling clients to connect to another port (the TLS front)."""

    def __init__(self, advertised_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.advertised_port = advertised_port

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--advertised-listener-url") + 1] = \
            f"tcp://127.0.0.1:{self.advertised_port}"
        return cmd


@dataclass
class TlsCluster:
    front: TlsFront
    broker: EmbeddedBroker
    pki: Pki

    def settings(self, **changes: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base = Settings().with_overrides(broker=self.front.bootstrap, security_protocol="SSL",
                                         ssl_cafile=str(self.pki.ca), app_id=f"tls-{tag}",
                                         topic_prefix=f"tls-{tag}.")
        return base.with_overrides(**changes)


def _cluster(front: TlsFront, pki: Pki, log: Path) -> Iterator[TlsCluster]:
    broker = AdvertisingBroker(front.port, log_path=log)
    try:
        broker.start()
        front.start(("127.0.0.1", broker.port))
        yield TlsCluster(front, broker, pki)
    finally:
        front.stop()
        broker.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    yield from _cluster(TlsFront(pki.cert, pki.key), pki, log)


@pytest.fixture(scope="module")
def mutual_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    log = tmp_path_factory.mktemp("tansu-mtls") / "tansu.log"
    yield from _cluster(TlsFront(pki.cert, pki.key, client_ca=pki.ca), pki, log)


def _event(n: int, user: str) -> dict[str, Any]:
    return {"event_id": f"tls-{n}", "user_id": user, "type": "purchase",
            "occurred_at": f"2026-01-01T{n:02d}:00:00Z",
            "properties": {"amount": 10.0 + n, "currency": "EUR", "order_id": f"o{n}"}}


async def _create_topic(s: Settings, name: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_kwargs(s, "aiokafka"))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        for _ in range(100):
            described = await admin.describe_topics([name])
            if described and described[0].get("partitions"):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topic {name} not visible")
    finally:
        await admin.close()


async def _read_all(s: Settings, topic: str, want: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(**kafka_kwargs(s, "aiokafka"), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[bytes] = []
        for _ in range(60):
            batch = await consumer.getmany(tp, timeout_ms=500)
            out += [m.value for m in batch.get(tp, []) if m.value is not None]
            if len(out) >= want:
                break
        return out
    finally:
        await consumer.stop()


# --- journey's clients over TLS ----------------------------------------------------------------

def test_aiokafka_clients_from_kafka_kwargs_work_over_tls(tls: TlsCluster) -> None:
    s = tls.settings()
    topic = s.topic_prefix + "raw"
    before = tls.front.handshakes

    async def run() -> list[bytes]:
        await _create_topic(s, topic)
        producer = AIOKafkaProducer(**kafka_kwargs(s, "aiokafka"))
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"over tls", partition=0)
        finally:
            await producer.stop()
        return await _read_all(s, topic, 1)

    assert asyncio.run(run()) == [b"over tls"]
    assert tls.front.handshakes > before  # it really went through the TLS front


def test_producer_api_produce_tail_and_heal_over_tls(
        tls: TlsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import main
    from agents.client.producer import JourneyProducer
    from agents.kafka.heal import read_ranges

    s = tls.settings()
    topic = s.topic_prefix + "events"  # what Topics.from_settings calls the input
    asyncio.run(_create_topic(s, topic))

    # the worker's start-up wait, as `journey worker` runs it
    wait_for_broker(s.broker, 30.0, client_kwargs=kafka_kwargs(s, "kafka-python"))

    with JourneyProducer(s) as producer:  # the Python API (kafka-python)
        assert producer.topic == topic
        producer.send(_event(0, "ann")).get(timeout=30)

    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(_event(n, "bo")) for n in (1, 2)) + b"\n")
    for key in [k for k in os.environ if k.startswith("JOURNEY_")]:
        monkeypatch.delenv(key)
    env = {"JOURNEY_BROKER": s.broker, "JOURNEY_SECURITY_PROTOCOL": "SSL",
           "JOURNEY_SSL_CAFILE": s.ssl_cafile, "JOURNEY_APP_ID": s.app_id,
           "JOURNEY_TOPIC_PREFIX": s.topic_prefix}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["produce", str(lines), "--allow-old"]) == 0
    capsys.readouterr()

    assert main(["tail", topic, "--from-beginning", "--max", "3"]) == 0
    shown = capsys.readouterr().out
    assert [f"tls-{n}" in shown for n in range(3)] == [True, True, True]

    healed = asyncio.run(read_ranges(s, s.broker, [(topic, 0, 0, 3)]))
    assert [orjson.loads(r.value or b"")["event_id"] for r in healed] == \
        ["tls-0", "tls-1", "tls-2"]


# --- what must be refused ---------------------------------------------------------------------

def _is_refused(client: Callable[[], Any]) -> None:
    """The aiokafka client that ``client()`` makes (in the event loop) cannot connect."""

    async def connect() -> None:
        made = client()
        try:
            await made.start()
        finally:
            await made.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(connect())


def _consumer_is_refused(s: Settings) -> None:
    """An aiokafka consumer with the settings' security cannot connect."""
    _is_refused(lambda: AIOKafkaConsumer(**kafka_kwargs(s, "aiokafka"), group_id=None))


def test_plaintext_clients_are_refused(tls: TlsCluster) -> None:
    before = tls.front.handshakes
    with pytest.raises((OSError, ConnectionError)):
        probe_metadata("127.0.0.1", tls.front.port, timeout=5.0)  # journey's own probe
    plain = tls.settings(security_protocol="PLAINTEXT", ssl_cafile="")
    _is_refused(lambda: AIOKafkaProducer(**kafka_kwargs(plain, "aiokafka"),
                                         request_timeout_ms=FAIL_FAST_MS))
    assert tls.front.handshakes == before


@pytest.mark.parametrize("trust", ["rogue CA", "system CAs", "other host name"])
def test_unverifiable_brokers_are_refused(tls: TlsCluster, pki: Pki, trust: str) -> None:
    """The broker's certificate chain and host name are checked by every client."""
    s = tls.settings(ssl_cafile={"rogue CA": str(pki.rogue_ca), "system CAs": ""}.get(
        trust, str(pki.ca)))
    front = TlsFront(pki.other_name_cert, pki.other_name_key) \
        if trust == "other host name" else tls.front
    if front is not tls.front:
        front.start(("127.0.0.1", tls.broker.port))
        s = s.with_overrides(broker=front.bootstrap)
    try:
        _consumer_is_refused(s)
        from agents.client.producer import JourneyProducer

        with pytest.raises(KafkaError):
            JourneyProducer(s, bootstrap_timeout_ms=FAIL_FAST_MS).close()
    finally:
        if front is not tls.front:
            front.stop()


def test_client_certificates_for_mutual_tls(mutual_tls: TlsCluster, pki: Pki) -> None:
    with_cert = mutual_tls.settings(ssl_certfile=str(pki.client_cert),
                                    ssl_keyfile=str(pki.client_key),
                                    ssl_key_password=pki.client_key_password)
    topic = with_cert.topic_prefix + "mtls"
    asyncio.run(_create_topic(with_cert, topic))  # aiokafka, with the client certificate
    from agents.client.producer import JourneyProducer

    with JourneyProducer(with_cert, topic=topic) as producer:  # kafka-python, likewise
        producer.send_raw(orjson.dumps(_event(5, "cy"))).get(timeout=30)
    assert len(asyncio.run(_read_all(with_cert, topic, 1))) == 1

    _consumer_is_refused(mutual_tls.settings())  # without a certificate
