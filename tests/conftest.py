"""Shared fixtures: one embedded broker per session, unique names per test, topic factory.

Set ``JOURNEY_TEST_BOOTSTRAP=host:port`` to run the Kafka tests against an existing
(plaintext) cluster instead of the embedded Tansu broker.

Property tests draw the same examples on every run (a gate must not depend on luck); set
``HYPOTHESIS_PROFILE=explore`` to draw new ones, and add what they find as ``@example``s.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from agents.broker import EmbeddedBroker, wait_for_broker
from agents.kafka.topics import create_topics
from streams.settings import Settings
from streams.testing import HarnessFactory, harness_factory

# Fixtures of the helper modules, for every test group: prom_tools (a session's promtool
# and Prometheus binaries), workers (``journey worker`` processes) and driver (a core
# scenario under the Harness, Replay and the worker's Pipeline).
pytest_plugins = ["tests.support.deploy", "tests.support.drivers", "tests.support.workers"]

TopicFactory = Callable[..., list[str]]

hypothesis_settings.register_profile("ci", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run that left data folders in the checkout: runs write where their settings
    say, and tests into temporary folders."""
    root = session.config.rootpath
    left = sorted(p.name for p in root.glob("*-data") if p.is_dir())
    if left and exitstatus == 0:
        print(f"\nFAILED: the run left data folders in {root}: {', '.join(left)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def harness() -> HarnessFactory:
    """``harness(**overrides)``: a fresh deterministic processor with these settings."""
    return harness_factory()


@dataclass(frozen=True)
class ExternalBroker:
    bootstrap: str


@dataclass(frozen=True)
class KafkaNames:
    """Names private to one test: a topic prefix and a consumer group / faust app id."""

    prefix: str
    app_id: str

    def topic(self, name: str) -> str:
        return self.prefix + name


# What the tests print (chaos, kill -9, bad input, overload, broker faults...) are the
# figures the README quotes: show them at the end of a quiet run too.
_PRINTED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and report.capstdout:
        _PRINTED.extend(line for line in report.capstdout.splitlines() if line.strip())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _PRINTED:
        terminalreporter.section("figures the tests printed")
        for line in _PRINTED:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Anything that needs the broker is a Kafka test, marked or not, so `-m "not kafka"` works.
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker | ExternalBroker]:
    external = os.environ.get("JOURNEY_TEST_BOOTSTRAP")
    if external:
        wait_for_broker(external, 30.0)
        yield ExternalBroker(external)
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as embedded:
        yield embedded


@pytest.fixture
def kafka_names(request: pytest.FixtureRequest) -> KafkaNames:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    tag = f"{slug}-{uuid.uuid4().hex[:8]}"
    return KafkaNames(prefix=f"t-{tag}.", app_id=f"app-{tag}")


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker | ExternalBroker,
                   kafka_names: KafkaNames) -> Settings:
    """Settings pointing at the test broker with this test's private names."""
    return Settings().with_overrides(broker=broker.bootstrap, app_id=kafka_names.app_id,
                                     topic_prefix=kafka_names.prefix)


@pytest.fixture
def make_topics(broker: EmbeddedBroker | ExternalBroker, kafka_names: KafkaNames) -> TopicFactory:
    """``make_topics("events", "alerts", partitions=4)`` -> the full (prefixed) topic names."""

    def factory(*names: str, partitions: int = 4) -> list[str]:
        full = [kafka_names.topic(n) for n in names]
        asyncio.run(create_topics(broker.bootstrap, full, partitions))
        return full

    return factory
