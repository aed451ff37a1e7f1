"""Throwaway TLS material and a TLS listener for the security tests (not a test module).

The embedded Tansu 0.6.0 cannot listen with TLS (its ``--cert`` and ``--key`` flags are
declared mutually exclusive, and both are needed), so :class:`TlsFront` stands where a
broker's TLS listener would: it terminates TLS with a certificate from a CA made for the
test and passes the bytes on to a plaintext Tansu that advertises the front's address.
What is under test is the client side: that journey's clients speak TLS, verify the
certificate and the host name, and that plaintext gets nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA clients trust
    cert: Path  # broker certificate for 127.0.0.1 / localhost, signed by ``ca``
    key: Path
    other_name_cert: Path  # signed by ``ca`` but for another host name
    other_name_key: Path
    client_cert: Path  # a client certificate (for mutual TLS), signed by ``ca``
    client_key: Path  # encrypted with ``client_key_password``
    client_key_password: str
    rogue_ca: Path  # a CA nobody should trust


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, cwd: Path) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=journey test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    return cwd / f"{name}.pem", cwd / f"{name}.key"


def _leaf(name: str, ca: str, san: str, usage: str, cwd: Path,
          password: str | None = None) -> tuple[Path, Path]:
    key_opts = ["-passout", f"pass:{password}"] if password else ["-nodes"]
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", *key_opts,
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    ext = cwd / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name,
             cwd=cwd)
    return cwd / f"{name}.pem", cwd / f"{name}.key"


def make_pki(directory: Path) -> Pki:
    """A CA, certificates signed by it, and a rogue CA (openssl CLI; EC keys, fast)."""
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca, _ = _ca("ca", directory)
    rogue, _ = _ca("rogue", directory)
    cert, key = _leaf("broker", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth", directory)
    other, other_key = _leaf("elsewhere", "ca", "DNS:elsewhere.invalid", "serverAuth",
                             directory)
    password = "client-key-pass"
    client, client_key = _leaf("client", "ca", "", "clientAuth", directory, password)
    return Pki(ca, cert, key, other, other_key, client, client_key, password, rogue)


class TlsFront:
    """A TLS listener on 127.0.0.1 that pipes each connection to a plaintext upstream.

    Runs its own event loop in a daemon thread. ``port`` is bound at construction, so a
    broker can advertise it before the front starts serving.
    """

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:  # mutual TLS: refuse clients without a certificate
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.upstream: tuple[str, int] | None = None
        self.handshakes = 0  # TLS sessions that completed (a plaintext client never does)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"tls-front-{self.port}")
        self._server: asyncio.base_events.Server | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, upstream: tuple[str, int]) -> TlsFront:
        self.upstream = upstream
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        started.result(timeout=10)
        return self

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, sock=self._sock,
                                                  ssl=self.context)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        assert self.upstream is not None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._sock.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
