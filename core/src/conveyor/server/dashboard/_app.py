"""The dashboard's pages: server-rendered HTML (Jinja2), live parts refreshed by htmx polling.

The same routes serve ``conveyor ui`` (the local store, no login, bound to
127.0.0.1) and the team server (a login form; a session cookie that only
the pages accept, never the API; viewers and up may read). Artifact views
written by materializers are untrusted: HTML views are served on their own
route under a Content-Security-Policy that sandboxes them (no same origin,
no network), and shown in an ``<iframe sandbox>`` without same-origin.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from conveyor.exceptions import AuthenticationError, ConveyorError, NotFoundError, StoreError
from conveyor.server.dashboard._dag import COMPACT_ABOVE, render_svg
from conveyor.server.dashboard._logs import RANGE_LINES_MAX, LogCache, LogLines
from conveyor.server.dashboard._markdown import render_markdown
from conveyor.server.dashboard._queries import STATUSES, Queries, RunFilter, duration
from conveyor.stores import RunStatus
from conveyor.stores.sql import SqlStore

COOKIE = "conveyor_dashboard"
"""The session cookie of the dashboard on a server (HttpOnly, SameSite=Strict; the API ignores it)."""

LOG_TAIL_LINES = 200
"""Lines at the end of a step's log rendered with the page; the page's script fetches others as they scroll into view."""

MODEL_VERSIONS_SHOWN = 50
"""Versions of a model its page lists, newest first."""

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
VIEW_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
"""What an artifact's HTML view may do: run its own inline scripts and styles, nothing else (no network, opaque origin)."""

_HERE = Path(__file__).parent


@dataclass
class DashboardSource:
    """Where the dashboard reads from and who may read.

    Attributes:
        store: the SQL store (the local one, or the server's database).
        auth: the server's authenticator; None means no login (``conveyor ui`` on 127.0.0.1).
        secrets: makes the secret store whose names and keys the secrets page lists (never values).
        remote: whether the pages are served by a team server (paths on other machines are not readable here).
    """

    store: SqlStore
    auth: Any = None
    secrets: Callable[[], Any] | None = None
    remote: bool = False


class _Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["dur"] = _fmt_duration
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S") if v else ""
    env.filters["size"] = _fmt_size
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    return env


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class ArtifactFiles:
    """Reads files of artifacts and logs from the registered artifact store that holds them."""

    def __init__(self, source: DashboardSource) -> None:
        self.source = source
        self._stores: dict[str, Any] = {}

    def store_for(self, uri: str) -> Any:
        """The artifact store holding ``uri``.

        Raises:
            StoreError: no registered store holds it, or (on a server) its local folder is not on this machine.
        """
        for store in self._stores.values():
            if store.contains(uri):
                return store
        best = None
        for comp in self.source.store.list_components("artifact_store"):
            path = str(comp.config.get("path", "")).rstrip("/")
            if not path:
                continue
            local = "://" not in path
            root = os.path.abspath(os.path.expanduser(path)) if local else path
            if (uri == root or uri.startswith(root + (os.sep if local else "/"))) and (
                best is None or len(root) > len(best[0])
            ):
                best = (root, comp, local)
        if best is None:
            raise StoreError(f"{uri!r} is in no registered artifact store", "its artifact store was deleted")
        root, comp, local = best
        if local and not os.path.isdir(root):
            where = "the server's machine" if self.source.remote else "this machine"
            raise StoreError(
                f"artifact store {comp.name!r} is the folder {root}, which is not on {where}",
                "steps that ran elsewhere wrote it there; use a shared artifact store (s3 or fsspec) that "
                "the server can read: conveyor artifact-store register NAME --flavor s3 ...",
            )
        from conveyor.stack import flavors

        flavor = flavors.get("artifact_store", comp.flavor, install=comp.install)
        store = flavor.build(comp.name, dict(comp.config))
        self._stores[comp.name] = store
        return store

    def read(self, uri: str, limit: int | None = None) -> bytes:
        """A file's bytes (the last ``limit`` bytes when given); empty when it does not exist yet."""
        store = self.store_for(uri)
        if not store.exists(uri):
            return b""
        with store.open(uri, "rb") as f:
            data: bytes = f.read()
        return data[-limit:] if limit else data


def _size_of(artifact: Any) -> int | None:
    return sum(artifact.manifest.values()) if artifact.manifest else None


def mount_dashboard(app: FastAPI, source: DashboardSource) -> None:
    """Add the dashboard's pages and static files to ``app``.

    Paths under ``/api/`` stay the API's: a missing one answers JSON as before.
    """
    queries = Queries(source.store)
    files = ArtifactFiles(source)
    logs = LogCache(lambda uri, limit: files.read(uri, limit=limit))
    env = _templates()
    router = APIRouter(include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="dashboard-static")

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(template).render(
            user=getattr(request.state, "dashboard_user", None),
            login=source.auth is not None,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})

    def who(request: Request) -> Any:
        """The logged-in person (None without login); refuses anyone else."""
        if source.auth is None:
            return None
        token = request.cookies.get(COOKIE)
        if not token:
            raise _Denied(401, "log in to see this page")
        try:
            principal = source.auth.authenticate(token)
        except AuthenticationError as exc:
            raise _Denied(401, exc.message) from None
        if principal.is_run or principal.role == "runner":
            raise _Denied(403, f"{principal.name} ({principal.role}) may not read the dashboard")
        request.state.dashboard_user = principal
        return principal

    def guarded(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            started = time.perf_counter()
            try:
                who(request)
                response = handler(request, *args, **kwargs)
                # The handler's time (queries and rendering): what the benchmark reads.
                response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
                return response
            except _Denied as exc:
                if exc.status == 401:
                    target = "/login?" + urlencode({"next": request.url.path})
                    if request.headers.get("hx-request"):
                        return Response(status_code=401, headers={"HX-Redirect": target})
                    return RedirectResponse(target, status_code=303)
                return page(request, "error.html", 403, title="Not allowed", message=exc.message, hint=None)
            except NotFoundError as exc:
                return page(request, "error.html", 404, title="Not found", message=exc.message, hint=exc.hint)
            except ConveyorError as exc:
                return page(request, "error.html", 400, title="Cannot show this", message=exc.message, hint=exc.hint)

        return run

    # -- login ------------------------------------------------------------------------
    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:
        if source.auth is None:
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", next=_safe_next(next), error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        if source.auth is None:
            return RedirectResponse("/", status_code=303)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        username = (form.get("username") or [""])[0]
        password = (form.get("password") or [""])[0]
        target = _safe_next((form.get("next") or ["/"])[0])
        address = (request.client.host if request.client else "unknown")[:64]
        try:
            token, expires, _ = await run_in_threadpool(source.auth.login, username, password, address)
        except AuthenticationError as exc:
            return page(request, "login.html", 401, next=target, error=exc.message, username=username)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", expires=expires
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse("/login" if source.auth is not None else "/", status_code=303)
        token = request.cookies.get(COOKIE)
        if source.auth is not None and token:
            try:
                source.auth.logout(source.auth.authenticate(token))
            except AuthenticationError:
                pass  # already ended
        response.delete_cookie(COOKIE)
        return response

    # -- runs -------------------------------------------------------------------------
    @router.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    @router.get("/runs")
    @guarded
    def runs(request: Request) -> Response:
        qp = request.query_params
        try:
            number = int(qp.get("page", "1"))
        except ValueError:
            number = 1
        f = RunFilter(
            pipeline=qp.get("pipeline", "")[:255],
            status=qp.get("status", "") if qp.get("status", "") in STATUSES else "",
            tag=qp.get("tag", "")[:255],
            since=qp.get("since", ""),
            page=max(1, min(number, 10**6)),
        )
        result = queries.runs(f)
        base = {
            k: v for k, v in (("pipeline", f.pipeline), ("status", f.status), ("tag", f.tag), ("since", f.since)) if v
        }

        def link(n: int) -> str:
            return "/runs?" + urlencode({**base, "page": n})

        return page(
            request,
            "runs.html",
            title="Runs",
            result=result,
            f=f,
            statuses=STATUSES,
            pipelines=queries.pipeline_names(),
            prev=link(result.page - 1) if result.page > 1 else None,
            next=link(result.page + 1) if result.page < result.pages else None,
        )

    def run_context(run_ref: str, step: str | None, focus: bool = False) -> dict[str, Any]:
        detail = queries.run(run_ref, artifacts_of=step)
        selected = step if step and any(s.id == step for s in detail.deployment.pipeline.steps) else None
        large = len(detail.deployment.pipeline.steps) > COMPACT_ABOVE
        focus = bool(focus and large and selected)
        return {
            "detail": detail,
            "run": detail.run,
            "svg": render_svg(detail, selected, focus=focus),
            "large": large,
            "focus": focus,
            "running": detail.run.status == RunStatus.RUNNING,
            "run_duration": duration(detail.run.started, detail.run.ended, detail.run.status),
            "selected": selected,
        }

    @router.get("/runs/{run_ref}")
    @guarded
    def run_page(request: Request, run_ref: str) -> Response:
        ctx = run_context(run_ref, request.query_params.get("step"), bool(request.query_params.get("focus")))
        if ctx["selected"]:
            ctx.update(step_context(ctx["detail"], ctx["selected"]))
            # A step still waiting in a running run gets a log soon: the view polls for it too.
            ctx["step_running"] = ctx["running"] and (ctx["record"] is None or ctx["step_running"])
            ctx.update(log_context(ctx["record"], ctx["step_running"]))
        return page(request, "run.html", title=f"Run {ctx['run'].name}", **ctx)

    @router.get("/runs/{run_ref}/dag")
    @guarded
    def run_dag(request: Request, run_ref: str) -> Response:
        ctx = run_context(run_ref, request.query_params.get("step"), bool(request.query_params.get("focus")))
        return page(request, "_dag.html", **ctx)

    def step_context(detail: Any, step_id: str) -> dict[str, Any]:
        spec = next(s for s in detail.deployment.pipeline.steps if s.id == step_id)
        record = detail.record
        image = record.image if record is not None else None
        image = image or detail.deployment.images.get(step_id)
        return {
            "spec": spec,
            "record": record,
            "image": image,
            "digest": image.split("@", 1)[1] if image and "@" in image else None,
            "step_outputs": detail.outputs.get(step_id, {}),
            "step_inputs": detail.inputs.get(step_id, {}),
            "step_running": record is not None and record.status == RunStatus.RUNNING,
            "step_duration": (
                duration(record.started, record.ended, record.status) if record and not record.cached else None
            ),
            "cached_from": detail.cached_from,
            # The deployment's values, and what this run changed (a step run records only the changes).
            "params": {
                **{n: i.value for n, i in spec.inputs.items() if getattr(i, "kind", "") == "parameter"},
                **(record.parameters if record is not None else {}),
            },
        }

    @router.get("/runs/{run_ref}/steps/{step_id}/facts")
    @guarded
    def step_facts(request: Request, run_ref: str, step_id: str) -> Response:
        """The step panel's facts and artifacts (what its page refreshes while the step runs or waits)."""
        detail, running = step_state(run_ref, step_id)
        ctx = step_context(detail, step_id)
        ctx["step_running"] = running
        return page(request, "_step.html", run=detail.run, **ctx)

    def read_log(record: Any, running: bool) -> LogLines:
        if record is None or not record.logs_uri:
            return LogLines.parse(b"")
        return logs.get(record.logs_uri, final=not running and record.status != RunStatus.RUNNING)

    def log_context(record: Any, running: bool) -> dict[str, Any]:
        try:
            found = read_log(record, running)
        except (ConveyorError, OSError) as exc:
            message = exc.message if isinstance(exc, ConveyorError) else f"cannot read the log: {exc}"
            hint = exc.hint if isinstance(exc, ConveyorError) else None
            return {"log_lines": [], "log_total": 0, "log_first": 0, "log_error": message, "log_hint": hint}
        first = max(0, found.total - LOG_TAIL_LINES)
        return {
            "log_lines": found.lines(first, LOG_TAIL_LINES),
            "log_total": found.total,
            "log_first": first,
            "log_skipped": found.skipped,
            "log_error": None,
        }

    def step_state(run_ref: str, step_id: str) -> tuple[Any, bool]:
        detail = queries.run(run_ref, artifacts_of=step_id)
        if not any(s.id == step_id for s in detail.deployment.pipeline.steps):
            raise NotFoundError(f"run {detail.run.name} has no step {step_id!r}")
        record = detail.record
        running = detail.run.status == RunStatus.RUNNING and (record is None or record.status == RunStatus.RUNNING)
        return detail, running

    @router.get("/runs/{run_ref}/steps/{step_id}/logs")
    @guarded
    def step_logs(request: Request, run_ref: str, step_id: str) -> Response:
        detail, running = step_state(run_ref, step_id)
        record = detail.record
        if request.query_params.get("raw"):
            body = files.read(record.logs_uri) if record is not None and record.logs_uri else b""
            return Response(body, media_type="text/plain; charset=utf-8")
        return page(
            request, "_logs.html", run=detail.run, spec_id=step_id, step_running=running, **log_context(record, running)
        )

    @router.get("/runs/{run_ref}/steps/{step_id}/logs/lines")
    @guarded
    def step_log_lines(request: Request, run_ref: str, step_id: str) -> Response:
        """Lines ``start`` to ``start + count`` of a step's log, as JSON (what the log view fetches as it scrolls)."""
        detail, running = step_state(run_ref, step_id)
        try:
            start = max(0, int(request.query_params.get("start", "0")))
            count = min(RANGE_LINES_MAX, max(0, int(request.query_params.get("count", "500"))))
        except ValueError:
            start, count = 0, 0
        found = read_log(detail.record, running)
        body = {
            "start": start,
            "lines": found.lines(start, count),
            "total": found.total,
            "skipped": found.skipped,
            "running": running,
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @router.get("/runs/{run_ref}/steps/{step_id}")
    @guarded
    def step_panel(request: Request, run_ref: str, step_id: str) -> Response:
        return RedirectResponse(f"/runs/{quote(run_ref, safe='')}?step={quote(step_id, safe='')}", status_code=303)

    # -- artifacts ----------------------------------------------------------------------
    @router.get("/artifacts/{artifact_id}")
    @guarded
    def artifact_page(request: Request, artifact_id: str) -> Response:
        record, producer, consumers = queries.artifact(artifact_id)
        views: list[dict[str, Any]] = []
        problem = None
        for i, (rel, kind) in enumerate(sorted(record.visualizations.items())):
            view: dict[str, Any] = {"index": i, "name": str(rel), "kind": str(kind).lower()}
            try:
                if view["kind"] in ("markdown", "md"):
                    view["html"] = render_markdown(_read_view(files, record, str(rel)).decode("utf-8", "replace"))
                elif view["kind"] in ("text", "txt", "csv", "json"):
                    view["text"] = _read_view(files, record, str(rel), limit=256 * 1024).decode("utf-8", "replace")
            except ConveyorError as exc:
                problem = (exc.message, exc.hint)
                break
            views.append(view)
        return page(
            request,
            "artifact.html",
            title=f"Artifact {record.name} v{record.version}",
            a=record,
            size=_size_of(record),
            producer=producer,
            consumers=consumers,
            views=[] if problem else views,
            problem=problem,
        )

    @router.get("/artifacts/{artifact_id}/views/{index}")
    @guarded
    def artifact_view(request: Request, artifact_id: str, index: int) -> Response:
        record, _, _ = queries.artifact(artifact_id)
        items = sorted(record.visualizations.items())
        if not 0 <= index < len(items):
            raise NotFoundError(f"artifact {record.name} v{record.version} has no view {index}")
        rel, kind = items[index]
        data = _read_view(files, record, str(rel))
        kind = str(kind).lower()
        media = {
            "html": "text/html; charset=utf-8",
            "png": "image/png",
            "markdown": "text/plain; charset=utf-8",
            "md": "text/plain; charset=utf-8",
            "svg": "text/plain; charset=utf-8",  # never as image/svg+xml: an SVG may hold scripts
        }.get(kind) or (mimetypes.guess_type(str(rel))[0] or "application/octet-stream")
        if media.startswith("text/") and "charset" not in media:
            media = "text/plain; charset=utf-8"
        if media not in ("text/html; charset=utf-8", "image/png", "image/jpeg", "image/gif"):
            media = "text/plain; charset=utf-8" if media.startswith("text/") else "application/octet-stream"
        return Response(
            data,
            media_type=media,
            headers={
                "Content-Security-Policy": VIEW_CSP,
                "X-Content-Type-Options": "nosniff",
                "Cross-Origin-Resource-Policy": "same-origin",
                "Cache-Control": "private, max-age=300",
            },
        )

    # -- pipelines, models, stacks, secrets ----------------------------------------------------
    @router.get("/pipelines")
    @guarded
    def pipelines(request: Request) -> Response:
        return page(request, "pipelines.html", title="Pipelines", pipelines=queries.pipelines())

    @router.get("/pipelines/{name}")
    @guarded
    def pipeline_page(request: Request, name: str) -> Response:
        record, deployment = queries.pipeline(name)
        recent = queries.runs(RunFilter(pipeline=record.name), per_page=20)
        return page(
            request, "pipeline.html", title=f"Pipeline {record.name}", p=record, deployment=deployment, recent=recent
        )

    @router.get("/models")
    @guarded
    def models(request: Request) -> Response:
        return page(request, "models.html", title="Models", models=source.store.list_models())

    @router.get("/models/{name}")
    @guarded
    def model_page(request: Request, name: str) -> Response:
        record = source.store.get_model(name)
        # Newest first, and a bounded page: a model retrained every hour has thousands of versions.
        versions = source.store.list_model_versions(record.name)[::-1][:MODEL_VERSIONS_SHOWN]
        artifacts = {v.id: source.store.model_version_artifacts(v.id) for v in versions}
        history = source.store.list_model_alias_events(record.name)[::-1]
        return page(
            request,
            "model.html",
            title=f"Model {record.name}",
            m=record,
            versions=versions,
            artifacts=artifacts,
            history=history,
            shown=MODEL_VERSIONS_SHOWN,
        )

    @router.get("/stacks")
    @guarded
    def stacks(request: Request) -> Response:
        items = source.store.list_stacks()
        components = source.store.list_components()
        notes = {c.id: _reach_note(c, source.remote) for c in components}
        return page(request, "stacks.html", title="Stacks", stacks=items, components=components, notes=notes)

    @router.get("/secrets")
    @guarded
    def secrets(request: Request) -> Response:
        listed: list[Any] = []
        problem = None
        if source.secrets is not None:
            try:
                listed = list(source.secrets().list())
            except ConveyorError as exc:
                problem = (exc.message, exc.hint)
        return page(request, "secrets.html", title="Secrets", secrets=listed, problem=problem)

    @router.get("/{rest:path}")
    def not_found(request: Request, rest: str) -> Response:
        if rest.startswith("api/") or rest == "api":
            raise StarletteHTTPException(404)  # the API's own JSON answer
        try:
            who(request)
        except _Denied:
            pass  # a 404 page needs no login; it shows nothing of the store
        return page(
            request,
            "error.html",
            404,
            title="Not found",
            message=f"there is no page at {request.url.path}",
            hint="the runs page lists what this store has",
        )

    app.include_router(router)


def _read_view(files: ArtifactFiles, record: Any, rel: str, limit: int | None = None) -> bytes:
    store = files.store_for(record.uri)
    parts = rel.replace("\\", "/").split("/")
    uri = store.join(record.uri, *parts)  # one segment at a time: no "..", no absolute path
    if not store.exists(record.uri):
        raise StoreError(
            f"the files of artifact {record.name} v{record.version} are gone from {record.uri}",
            "run the step that made it again",
        )
    data = files.read(uri)
    return data[:limit] if limit else data


def _reach_note(component: Any, remote: bool) -> str | None:
    """What a component means for steps on other machines (None: nothing to say)."""
    path = str(component.config.get("path", "")) if isinstance(component.config, dict) else ""
    if component.type == "artifact_store" and path and "://" not in path:
        root = os.path.abspath(os.path.expanduser(path))
        if remote and not os.path.isdir(root):
            return (
                f"the folder {root} is not on the server's machine: the server cannot show its artifacts or logs; "
                "use a shared artifact store (s3 or fsspec) instead"
            )
        return "a local folder: steps on other machines (remote workers, containers without a mount) cannot reach it"
    if component.type == "orchestrator" and component.flavor == "local":
        return "runs steps on the machine that starts the run"
    return None


def _safe_next(target: str) -> str:
    """Only paths on this site (no scheme, no host, no ``//``) may follow a login."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or "\n" in target or "\r" in target:
        return "/"
    return target


def create_ui_app(source: DashboardSource) -> FastAPI:
    """The app of ``conveyor ui``: the dashboard alone, over the local store, without login."""
    app = FastAPI(title="conveyor dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    mount_dashboard(app, source)
    return app
