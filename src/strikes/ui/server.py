"""The web UI's server: a small Starlette app with a JSON API over one store, served by uvicorn.

It binds to 127.0.0.1 by default. Any other address needs an access token, which every
request must then carry (``Authorization: Bearer``, the ``strikes_token`` cookie, or a
``?token=`` link that sets the cookie). Without a token, only loopback ``Host`` headers are
accepted, so a web page elsewhere cannot reach the server through DNS rebinding. Files are
served from the package's ``static/`` directory and, by validated hash, from the store's
objects; no other path is ever read.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import webbrowser
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from strikes._values import MetricPoint, to_builtins
from strikes.store.reader import ArtifactRecord, RunRecord, Store, TaskRecord

__all__ = ["create_app", "downsample", "is_loopback", "serve"]

STATIC = Path(__file__).parent / "static"
"""The UI's own files (HTML, JS, CSS, the vendored uPlot)."""
MAX_POINTS = 2000
"""Default number of chart buckets per series; each keeps its min and max point."""
_COOKIE = "strikes_token"
_LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
_encoder = msgspec.json.Encoder()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Json(JSONResponse):
    """JSON through msgspec: NaN and infinities become ``null``, odd values their ``repr``."""

    def render(self, content: Any) -> bytes:
        return _encoder.encode(to_builtins(content))


def downsample(points: list[MetricPoint], buckets: int) -> list[MetricPoint]:
    """At most ``2 * buckets`` points in order: each bucket's min and max, so peaks survive."""
    if buckets <= 0 or len(points) <= 2 * buckets:
        return points
    size = len(points) / buckets
    kept: list[MetricPoint] = []
    for index in range(buckets):
        chunk = points[int(index * size) : int((index + 1) * size)]
        if not chunk:
            continue
        finite = [p for p in chunk if p.value == p.value]
        if not finite:
            kept.append(chunk[0])
            continue
        low = min(finite, key=lambda p: p.value)
        high = max(finite, key=lambda p: p.value)
        kept.extend(sorted({id(low): low, id(high): high}.values(), key=lambda p: (p.step, p.ts)))
    if kept[-1] is not points[-1]:
        kept.append(points[-1])  # the latest value is what a live chart is watched for
    return kept


class _RunCache:
    """Loaded runs, reused until their files change (a running run reloads as it writes)."""

    def __init__(self, store: Store, size: int = 16) -> None:
        self._store = store
        self._size = size
        self._runs: OrderedDict[str, tuple[tuple[int, int], RunRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def _signature(self, run_id: str) -> tuple[int, int]:
        layout = self._store.layout
        try:
            mtime = layout.manifest(run_id).stat().st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        try:
            size = sum(path.stat().st_size for path in layout.segments(run_id).iterdir())
        except FileNotFoundError:
            size = 0
        return mtime, size

    def get(self, ref: str) -> RunRecord:
        """The run named by ``ref``; raises ``KeyError``/``LookupError`` like ``Store.resolve``."""
        record = self._store.resolve(ref)
        signature = self._signature(record.id)
        with self._lock:
            cached = self._runs.get(record.id)
            if cached is not None and cached[0] == signature:
                self._runs.move_to_end(record.id)
                return cached[1]
            self._runs[record.id] = (signature, record)
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)
        return record


def _run_summary(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "project": record.project,
        "status": record.status,
        "crashed": record.crashed,
        "error": record.error,
        "tags": record.tags,
        "started_at": record.manifest.started_at // 1_000_000,
        "ended_at": (record.manifest.ended_at or 0) // 1_000_000 or None,
        "duration": record.duration,
        "params": record.params,
        "metrics": {
            name: msgspec.structs.asdict(summary)
            for name, summary in record.manifest.metrics.items()
        },
    }


def _provenance(record: RunRecord) -> dict[str, Any] | None:
    """The run's provenance fields that were captured, and its package count."""
    provenance = record.provenance
    if provenance is None:
        return None
    fields = {
        name: value
        for name, value in msgspec.structs.asdict(provenance).items()
        if value is not None and value not in ({}, [])
    }
    packages = record.packages
    if packages is not None:
        fields["packages"] = len(packages)
    return fields


def _stats(points: list[MetricPoint]) -> dict[str, Any]:
    values = [p.value for p in points if p.value == p.value]
    return {
        "count": len(points),
        "last": points[-1].value if points else None,
        "last_step": points[-1].step if points else 0,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def _artifact(artifact: ArtifactRecord) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "source": artifact.source,
        "is_dir": artifact.is_dir,
        "files": [{"path": f.path, "hash": f.hash, "size": f.size} for f in artifact.files],
    }


def _task(task: TaskRecord, errors: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "label": task.label,
        "status": task.status,
        "error": task.error,
        "started_at": int(task.started_at.timestamp() * 1000) if task.started_at else None,
        "duration": task.duration,
        "tags": task.tags,
        "params": task.params,
        "inputs": task.inputs,
        "outputs": task.outputs,
        "scores": {name: points[-1].value for name, points in task.metrics.items() if points},
        "errors": errors.get(task.id, []),
        "artifacts": [_artifact(a) for a in task.artifacts],
        "tasks": [_task(child, errors) for child in task.tasks],
    }


class _Api:
    """The JSON endpoints over one store (sync: Starlette runs them on its thread pool)."""

    def __init__(self, store: Store, poll_seconds: float) -> None:
        self.store = store
        self.cache = _RunCache(store)
        self.poll_seconds = poll_seconds

    def lookup(self, request: Request) -> RunRecord | Response:
        try:
            return self.cache.get(request.path_params["ref"])
        except KeyError as exc:
            return _Json({"error": exc.args[0] if exc.args else "no such run"}, status_code=404)
        except LookupError as exc:
            return _Json({"error": str(exc)}, status_code=409)

    def index(self, _: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def config(self, _: Request) -> Response:
        return _Json({"store": str(self.store.path), "poll_seconds": self.poll_seconds})

    def runs(self, request: Request) -> Response:
        query = request.query_params
        try:
            records = self.store.runs(
                project=query.get("project") or None,
                tags=query.getlist("tag") or None,
                status=query.getlist("status") or None,
                name=query.get("name") or None,
                limit=int(query.get("limit") or 1000),
            )
        except (TypeError, ValueError) as exc:
            return _Json({"error": str(exc)}, status_code=400)
        return _Json([_run_summary(record) for record in records])

    def run_detail(self, request: Request) -> Response:
        record = self.lookup(request)
        if isinstance(record, Response):
            return record
        errors: dict[str, list[dict[str, Any]]] = {}
        for error in record.errors:
            errors.setdefault(error.span_id, []).append(
                {"type": error.type, "message": error.message, "traceback": error.traceback}
            )
        root_id = record._loaded.root.id
        data = _run_summary(record)
        data.update(
            {
                # From the events, not the manifest: a running run's manifest lags behind.
                "metrics": {name: _stats(points) for name, points in record.metrics.items()},
                "attributes": record.attributes,
                "inputs": record.inputs,
                "outputs": record.outputs,
                "artifacts": [_artifact(a) for a in record.artifacts],
                "errors": errors.get(root_id, []),
                "metric_names": sorted(record.metrics),
                "tasks": [_task(task, errors) for task in record.tasks],
                "task_count": len(record.all_tasks),
                "provenance": _provenance(record),
            }
        )
        return _Json(data)

    def run_metrics(self, request: Request) -> Response:
        record = self.lookup(request)
        if isinstance(record, Response):
            return record
        wanted = request.query_params.getlist("name")
        try:
            buckets = int(request.query_params.get("points") or MAX_POINTS)
        except ValueError:
            return _Json({"error": "points must be an integer"}, status_code=400)
        series: dict[str, dict[str, list[Any]]] = {}
        for name, points in record.metrics.items():
            if wanted and name not in wanted:
                continue
            kept = downsample(points, buckets)
            series[name] = {
                "step": [p.step for p in kept],
                "time": [p.ts / 1e9 for p in kept],
                "value": [p.value for p in kept],
                "count": [len(points)],
            }
        return _Json(
            {
                "id": record.id,
                "name": record.name,
                "status": record.status,
                "started_at": record.manifest.started_at / 1e9,
                "series": series,
            }
        )

    def obj(self, request: Request) -> Response:
        try:
            path = self.store.layout.object(request.path_params["digest"])
        except ValueError:
            return _Json({"error": "not an object hash"}, status_code=404)
        root = self.store.layout.objects.resolve()
        resolved = path.resolve()
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return _Json({"error": "no such object"}, status_code=404)
        return FileResponse(resolved, media_type="application/octet-stream", filename=path.name)


def create_app(store: Store, *, token: str | None = None, poll_seconds: float = 2.0) -> Starlette:
    """The UI application over ``store``; with ``token``, every request must present it."""
    api = _Api(store, poll_seconds)
    routes = [
        Route("/", api.index),
        Route("/api/config", api.config),
        Route("/api/runs", api.runs),
        Route("/api/runs/{ref}", api.run_detail),
        Route("/api/runs/{ref}/metrics", api.run_metrics),
        Route("/api/objects/{digest}", api.obj),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = (
        [Middleware(BaseHTTPMiddleware, dispatch=_token_check(token))]
        if token
        else [Middleware(TrustedHostMiddleware, allowed_hosts=_LOOPBACK_HOSTS)]
    )
    return Starlette(routes=routes, middleware=middleware)


def _token_check(
    token: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    expected = token.encode()

    def presented(request: Request) -> str:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.query_params.get("token") or request.cookies.get(_COOKIE) or ""

    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not hmac.compare_digest(presented(request).encode(), expected):
            return _Json({"error": "an access token is required"}, status_code=401)
        if "token" in request.query_params:
            # Trade the token in the link for a cookie, so it leaves the address bar.
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
            return response
        return await call_next(request)

    return check


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 7410,
    token: str | None = None,
    open_browser: bool = False,
) -> None:
    """Serve the UI until interrupted; raises ``ValueError`` for a public host without a token."""
    import uvicorn  # noqa: PLC0415 - only the server needs it

    if not is_loopback(host) and not token:
        raise ValueError(
            f"binding to {host} exposes your runs to the network: "
            "give an access token with --token or STRIKES_UI_TOKEN"
        )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"strikes UI for {store.path} at {url}  (Ctrl+C to stop)")  # noqa: T201 - the CLI's output
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(store, token=token), host=host, port=port, log_level="warning")
