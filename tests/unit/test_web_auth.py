"""The worker's HTTP endpoints and ``web_token``, without Kafka.

The worker's faust app is built (nothing connects until it starts) and its aiohttp
application served in-process. /users/{id} normally asks faust which worker owns the user;
here every user is ours, as on a single worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.exceptions import SameNode

from agents.kafka.records import Record
from agents.kafka.runtime import Runtime
from agents.kafka.worker import build
from streams.core.partitioning import partition_for
from streams.settings import Settings

TOKEN = "Zm9yIHRoZSB0ZXN0cyBvbmx5-2f9c"
USER = "ann@example.com"


@dataclass
class Served:
    """A worker's runtime, and the users whose /users request was routed."""

    rt: Runtime
    routed: list[str] = field(default_factory=list)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    settings = Settings().with_overrides(app_id="web-auth", partitions=2, web_token=TOKEN,
                                         data_dir=str(tmp_path / "data"))
    rt = build(settings, "127.0.0.1:9")
    body = {"event_id": "e1", "user_id": USER, "type": "purchase",
            "occurred_at": "2026-01-01T10:00:00Z",
            "properties": {"amount": 25.0, "currency": "EUR", "order_id": "o1"}}
    partition = partition_for(USER, settings.partitions)
    rt.pipeline.handle([Record(rt.topics.events, partition, 0, USER.encode(),
                               orjson.dumps(body), 1_767_261_600.0)])
    rt.pipeline.commit_state()
    for p in range(settings.partitions):  # as after table recovery, every partition ours
        rt.pipeline.processor(p)
    rt.ready = rt.serving = True
    served = Served(rt)

    async def this_worker_owns_it(table: str, key: Any, web: Any, request: Any) -> Any:
        served.routed.append(str(key))
        raise SameNode()

    monkeypatch.setattr(rt.app.router, "route_req", this_worker_owns_it)
    yield served


Reply = tuple[int, str, dict[str, str]]


def _get(served: Served | Runtime, *calls: tuple[str, str | None]) -> list[Reply]:
    """GET each (path, Authorization header or None), in one event loop (aiohttp ties
    an application to the first loop that serves it)."""
    rt = served.rt if isinstance(served, Served) else served
    web_app = cast(Any, rt.app.web).web_app  # the aiohttp driver's application

    async def go() -> list[Reply]:
        out = []
        async with TestClient(TestServer(web_app)) as client:
            for path, authorization in calls:
                headers = {"Authorization": authorization} if authorization is not None else {}
                resp = await client.get(path, headers=headers)
                out.append((resp.status, await resp.text(), dict(resp.headers)))
        return out

    return asyncio.run(go())


WRONG = [None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}",
         TOKEN, "Bearer wrong"]


@pytest.mark.parametrize("path", ["/metrics", f"/users/{USER}"])
@pytest.mark.parametrize("authorization", WRONG)
def test_protected_endpoints_refuse_a_missing_or_wrong_token(
        runtime: Served, path: str, authorization: str | None) -> None:
    ((status, body, headers),) = _get(runtime, (path, authorization))
    assert status == 401
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert USER not in body and "journey_" not in body
    assert runtime.routed == []  # refused before being forwarded to another worker


def test_metrics_with_the_token(runtime: Served) -> None:
    # the scheme is case-insensitive (RFC 7235)
    (status, body, _), (lower, _, _) = _get(runtime, ("/metrics", f"Bearer {TOKEN}"),
                                            ("/metrics", f"bearer {TOKEN}"))
    assert status == lower == 200
    assert "journey_events_applied_total" in body


def test_user_state_with_the_token(runtime: Served) -> None:
    (status, body, _), (unknown, _, _) = _get(runtime, (f"/users/{USER}", f"Bearer {TOKEN}"),
                                              ("/users/nobody", f"Bearer {TOKEN}"))
    assert status == 200
    state = orjson.loads(body)
    assert state["user_id"] == USER and state["orders"] == 1
    assert unknown == 404
    assert runtime.routed == [USER, "nobody"]


def test_health_stays_open_and_shows_no_secret(runtime: Served) -> None:
    ((status, body, _),) = _get(runtime, ("/health", None))
    assert status == 200
    assert orjson.loads(body)["status"] == "ok"
    assert TOKEN not in body


def test_without_a_token_everything_is_open(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rt = build(Settings().with_overrides(app_id="web-open", data_dir=str(tmp_path)),
               "127.0.0.1:9")
    ((status, _, _),) = _get(rt, ("/metrics", None))
    assert status == 200
