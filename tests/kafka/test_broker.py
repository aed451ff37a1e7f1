"""The embedded broker's life cycle, client round trips on it, and client settings."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys

import orjson
import pytest

from agents.broker import (
    BrokerUnavailable,
    EmbeddedBroker,
    free_port,
    probe_metadata,
    wait_for_broker,
)
from agents.kafka.config import kafka_kwargs
from streams.settings import Settings


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.kafka
def test_start_answers_metadata_and_stop_leaves_nothing_behind(tmp_path) -> None:
    log = tmp_path / "tansu.log"
    broker = EmbeddedBroker(log_path=log).start()
    pid, port = broker.pid, broker.port
    assert pid is not None and broker.running
    assert broker.bootstrap == f"127.0.0.1:{port}"
    assert probe_metadata("127.0.0.1", port, 2.0) >= 1
    broker.stop()
    assert not broker.running
    assert not _process_exists(pid)  # reaped, not a zombie
    assert not _port_accepts(port)
    assert "tansu" in log.read_text().lower()
    broker.stop()  # idempotent


@pytest.mark.kafka
def test_context_manager_stops_on_error_and_refuses_restart() -> None:
    with pytest.raises(RuntimeError, match="boom"), EmbeddedBroker() as broker:
        pid = broker.pid
        raise RuntimeError("boom")
    assert pid is not None and not _process_exists(pid)
    with pytest.raises(RuntimeError, match="restarted"):
        broker.start()


@pytest.mark.kafka
def test_taken_port_is_a_clear_error(broker) -> None:
    if not isinstance(broker, EmbeddedBroker):
        pytest.skip("needs the embedded broker")
    with pytest.raises(BrokerUnavailable, match=str(broker.port)):
        EmbeddedBroker(port=broker.port, start_timeout=5).start()
    assert probe_metadata("127.0.0.1", broker.port, 2.0) >= 1  # the first one is unharmed


def test_wait_for_broker_gives_up_with_the_address() -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}"):
        wait_for_broker(f"127.0.0.1:{port}", 0.3)
    with pytest.raises(ValueError):
        wait_for_broker("no-port-here", 0.3)


@pytest.mark.kafka
def test_wait_for_broker_accepts_a_list_with_one_live_server(broker) -> None:
    wait_for_broker(f"127.0.0.1:{free_port()},{broker.bootstrap}", 10.0)


@pytest.mark.kafka
def test_aiokafka_round_trip_keeps_order_and_murmur2_partitions(
        kafka_settings: Settings, make_topics) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka.partitioner.default import murmur2

    (topic,) = make_topics("events", partitions=4)
    sent = [{"user": f"u{i % 13}", "seq": i} for i in range(200)]

    async def scenario() -> list:
        producer = AIOKafkaProducer(**kafka_kwargs(kafka_settings, "aiokafka"))
        await producer.start()
        try:
            for m in sent:
                await producer.send(topic, orjson.dumps(m), key=m["user"].encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=kafka_settings.app_id,
                                    auto_offset_reset="earliest",
                                    **kafka_kwargs(kafka_settings, "aiokafka", group=True))
        await consumer.start()
        got: list = []
        try:
            async with asyncio.timeout(60):
                while len(got) < len(sent):
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        got.extend(records)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    assert sorted(orjson.loads(r.value)["seq"] for r in got) == list(range(200))
    for r in got:
        # Same rule as kafka-python and the Java client: murmur2(key) mod partitions.
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 4
    by_user: dict[str, list[int]] = {}
    for r in got:
        m = orjson.loads(r.value)
        by_user.setdefault(m["user"], []).append(m["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_user.values())


@pytest.mark.kafka
def test_kafka_python_group_consumer_gets_assigned(kafka_settings: Settings,
                                                   make_topics) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    (topic,) = make_topics("assign", partitions=3)
    producer = KafkaProducer(**kafka_kwargs(kafka_settings, "kafka-python"))
    producer.send(topic, b"hello", partition=1).get(timeout=30)
    producer.close()
    kw = kafka_kwargs(kafka_settings, "kafka-python", group=True)
    assert kw["session_timeout_ms"] == 6000 and kw["heartbeat_interval_ms"] == 1000
    consumer = KafkaConsumer(topic, group_id=kafka_settings.app_id,
                             auto_offset_reset="earliest", **kw)
    try:
        records = []
        for _ in range(60):  # bounded: ~30 s of polls
            for recs in consumer.poll(timeout_ms=500).values():
                records.extend(recs)
            if records:
                break
        assigned = {tp.partition for tp in consumer.assignment()}
    finally:
        consumer.close()
    assert assigned == {0, 1, 2}
    assert [(r.partition, r.value) for r in records] == [(1, b"hello")]


def test_kafka_kwargs_plaintext_and_group_settings() -> None:
    s = Settings().with_overrides(broker="a:9092,b:9092", session_timeout_seconds=3.0,
                                  heartbeat_interval_seconds=0.5)
    ai = kafka_kwargs(s, "aiokafka")
    assert ai == {"bootstrap_servers": "a:9092,b:9092", "security_protocol": "PLAINTEXT"}
    kp = kafka_kwargs(s, "kafka-python", group=True)
    assert kp["session_timeout_ms"] == 3000 and kp["heartbeat_interval_ms"] == 500
    fa = kafka_kwargs(s, "faust")
    assert fa["broker"] == "kafka://a:9092;kafka://b:9092"
    assert fa["broker_credentials"] is None
    assert (fa["broker_session_timeout"], fa["broker_heartbeat_interval"]) == (3.0, 0.5)
    assert kafka_kwargs(s, "aiokafka", bootstrap="x:1")["bootstrap_servers"] == "x:1"


def test_kafka_kwargs_sasl_ssl_reaches_every_client() -> None:
    import faust

    s = Settings().with_overrides(broker="k:9093", security_protocol="sasl_ssl",
                                  sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                                  sasl_password="p")
    ai = kafka_kwargs(s, "aiokafka", group=True)
    assert ai["security_protocol"] == "SASL_SSL" and ai["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (ai["sasl_plain_username"], ai["sasl_plain_password"]) == ("u", "p")
    assert isinstance(ai["ssl_context"], ssl.SSLContext)
    assert ai["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    kp = kafka_kwargs(s, "kafka-python")
    assert kp["security_protocol"] == "SASL_SSL" and "ssl_context" not in kp
    creds = kafka_kwargs(s, "faust")["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"


def test_kafka_kwargs_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        kafka_kwargs(Settings(), "aiokafka")
    with pytest.raises(ValueError, match="security_protocol"):
        kafka_kwargs(Settings().with_overrides(broker="k:1", security_protocol="TLS"), "faust")
    with pytest.raises(ValueError, match="sasl_mechanism"):
        kafka_kwargs(Settings().with_overrides(broker="k:1", security_protocol="SASL_PLAINTEXT",
                                               sasl_mechanism="GSSAPI"), "aiokafka")


def test_journey_broker_command_listens_where_it_says_and_refuses_a_busy_port() -> None:
    """`journey broker` prints the address the docs tell producers and workers to use."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the broker answers
        assert f"127.0.0.1:{port}" in line, line
        assert probe_metadata("127.0.0.1", port, timeout=10.0) >= 0
        # a second one on the same port says so and exits 2, before starting anything
        busy = subprocess.run([sys.executable, "-m", "agents.cli", "broker", "--port",
                               str(port)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert busy.returncode == 2 and "in use" in busy.stderr, busy.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    with socket.socket() as s:  # and it let go of the port
        s.bind(("127.0.0.1", port))
