"""HTTP endpoints on the worker's web port: /metrics, /health, /users/{user_id} (an id
merged into another user answers 308, to that user).

Health has two questions. *Live* (``/health/live``): is the process sound? It is until a
fatal fault, after which the worker exits anyway. *Ready* (``/health/ready``, and plain
``/health``): can it serve? Only once the table holds its partitions again after a start
or a rebalance; until then ``/users`` answers 503 with the reason, never a traceback.

The endpoints read a worker through :class:`WorkerView` (the worker's ``Runtime`` is
one), so this module does not import the worker.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Protocol
from urllib.parse import quote

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from streams.settings import Settings


class WorkerView(Protocol):
    """What the endpoints read of a worker."""

    settings: Settings
    metrics: Metrics
    app: Any  # the faust app: the pages are its, and so is the table's recovery
    table: Any  # the users table, to route /users/{id} to the worker that owns the user
    pipeline: Pipeline
    fatal: list[str]  # the fatal faults, if any: the worker is on its way out
    ready: bool
    serving: bool
    started_at: float

    @property
    def processed_batches(self) -> int: ...


def _authorised(rt: WorkerView, request: Request) -> bool:
    token = rt.settings.web_token
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # constant-time, so response timing does not reveal how much of a guess was right
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def _refuse(view: View) -> Response:
    return view.json({"error": "unauthorised"}, status=401,
                     headers={"WWW-Authenticate": 'Bearer realm="journey"'})


def not_serving(rt: WorkerView) -> str | None:
    """Why this worker cannot answer for its partitions now (None: it can)."""
    if rt.fatal:
        return f"fatal fault: {rt.fatal[0]}"
    if not rt.ready:
        return "starting"
    if rt.app.tables.recovery.in_recovery or not rt.serving:
        return "restoring the table after a start or a rebalance"
    return None


def health_report(rt: WorkerView) -> tuple[bool, dict[str, Any]]:
    reason = not_serving(rt)
    healthy = reason is None
    return healthy, {
        "status": "ok" if healthy else "unhealthy" if rt.fatal else "not ready",
        "live": not rt.fatal,
        "ready": healthy,
        "reason": reason,
        "fatal": list(rt.fatal),
        "uptime_seconds": round(time.time() - rt.started_at, 1),
        "partitions": sorted(rt.pipeline.processors),
        # each partition's stream time (epoch seconds; null before its first record)
        "clocks": {str(p): (None if proc.clock == float("-inf") else proc.clock)
                   for p, proc in sorted(rt.pipeline.processors.items())},
        "standby_partitions": sorted(tp.partition for tp in _standbys(rt)),
        "batches": rt.processed_batches,
    }


def _standbys(rt: WorkerView) -> set[Any]:
    """The changelog partitions this worker keeps standby copies of."""
    try:
        return set(rt.app.assignor.assigned_standbys())
    except Exception:  # noqa: BLE001 - not started: none yet
        return set()


def install_views(rt: WorkerView) -> None:
    app, table = rt.app, rt.table

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            if not _authorised(rt, request):
                return _refuse(self)
            return self.bytes(generate_latest(rt.metrics.registry),
                              content_type=CONTENT_TYPE_LATEST.split(";")[0])

    # The health pages are open even with a token: orchestrator probes carry no secrets.
    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            healthy, report = health_report(rt)
            return self.json(report, status=200 if healthy else 503)

    @app.page("/health/ready")
    class ReadyView(HealthView):
        pass

    @app.page("/health/live")
    class LiveView(View):
        async def get(self, request: Request) -> Response:
            _, report = health_report(rt)
            return self.json(report, status=503 if rt.fatal else 200)

    @app.page("/users/{user_id}")
    class UserView(View):
        async def get(self, request: Request, user_id: str) -> Response:
            # Checked before routing: an unauthorised request never reaches another worker.
            if not _authorised(rt, request):
                return _refuse(self)
            reason = not_serving(rt)
            if reason is not None:
                return self.json({"error": "not ready", "reason": reason}, status=503,
                                 headers={"Retry-After": "5"})
            try:
                return await self.owned(request)
            # routing to the owner failed: say so, no traceback
            except Exception as exc:  # noqa: BLE001 - any failure of the forward is a 503
                return self.json({"error": "cannot reach the owning worker",
                                  "reason": f"{type(exc).__name__}: {exc}"[:300]},
                                 status=503, headers={"Retry-After": "5"})

        @app.table_route(table=table, match_info="user_id")
        async def owned(self: View, request: Request) -> Response:
            """On the worker that owns the user (faust forwards the request, headers
            included, to the one that does)."""
            user_id = request.match_info["user_id"]
            snap = rt.pipeline.snapshot(user_id)
            if snap is None and not rt.pipeline.owns_restored(user_id):
                return self.json({"error": "not ready", "reason": "partition not restored"},
                                 status=503, headers={"Retry-After": "5"})
            if snap is None:
                target = rt.pipeline.merged_into(user_id)
                if target is not None:  # a merged id: its user is elsewhere, follow it
                    return self.json({"user_id": user_id, "merged_into": target}, status=308,
                                     headers={"Location": f"/users/{quote(target, safe='')}"})
                return self.json({"error": "unknown user", "user_id": user_id}, status=404)
            return self.json(snap)
