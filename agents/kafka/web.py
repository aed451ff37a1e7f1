"""HTTP endpoints on the worker's web port: /metrics, /health, /users/{user_id}."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from agents.kafka.worker import Runtime


def _authorised(rt: Runtime, request: Request) -> bool:
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


def health_report(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    healthy = rt.ready and not rt.fatal
    return healthy, {
        "status": "ok" if healthy else "unhealthy",
        "fatal": list(rt.fatal),
        "ready": rt.ready,
        "uptime_seconds": round(time.time() - rt.started_at, 1),
        "partitions": sorted(rt.pipeline.processors),
        "batches": rt.processed_batches,
    }


def install_views(rt: Runtime) -> None:
    app, table = rt.app, rt.table

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            if not _authorised(rt, request):
                return _refuse(self)
            return self.bytes(generate_latest(rt.metrics.registry),
                              content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    class HealthView(View):
        # open even with a token: orchestrator probes cannot carry secrets
        async def get(self, request: Request) -> Response:
            healthy, report = health_report(rt)
            return self.json(report, status=200 if healthy else 503)

    @app.page("/users/{user_id}")
    class UserView(View):
        async def get(self, request: Request, user_id: str) -> Response:
            # Checked before routing: an unauthorised request never reaches another worker.
            if not _authorised(rt, request):
                return _refuse(self)
            return await self.owned(request)

        @app.table_route(table=table, match_info="user_id")
        async def owned(self: View, request: Request) -> Response:
            """On the worker that owns the user (faust forwards the request, headers
            included, to the one that does)."""
            user_id = request.match_info["user_id"]
            snap = rt.pipeline.snapshot(user_id)
            if snap is None:
                return self.json({"error": "unknown user", "user_id": user_id}, status=404)
            return self.json(snap)
