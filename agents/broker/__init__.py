"""The embedded Kafka-compatible broker (Tansu) that the demo, the tests and the
benchmarks start when no cluster is configured, and the metadata probe the worker uses
to wait for any broker. Its process dies with journey's (see :mod:`agents.process`).
"""

from agents.broker.embedded import (
    HOST,
    BrokerUnavailable,
    EmbeddedBroker,
    broker_binary,
    free_port,
    probe_metadata,
    wait_for_broker,
)

__all__ = ["HOST", "BrokerUnavailable", "EmbeddedBroker", "broker_binary", "free_port",
           "probe_metadata", "wait_for_broker"]
