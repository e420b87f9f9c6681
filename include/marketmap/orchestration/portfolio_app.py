"""The portfolio pages, a FastAPI app mounted in Airflow's api-server by the plugin
``plugins/marketmap_portfolio.py`` under ``/marketmap``.

* ``/marketmap/portfolio`` — every client the user may see, those needing attention first;
* ``/marketmap/clients/<client>`` — the client's runs (running, paused, failed with links to
  the Airflow run and log), every report of every run, the review queue and alert history;
* ``/marketmap/clients/<client>/reports/<run>/<file>`` — a stored report (HTML or CSV);
* ``/marketmap/api/portfolio`` — the same rows as JSON.

Authentication is Airflow's own (the JWT cookie the UI sets, or a bearer token), through
``airflow.api_fastapi.core_api.security.get_user``. Authorisation follows DAG access: a user
sees a client only if the auth manager lets them read at least one of its DAGs
(``<client>__*``), through ``filter_authorized_dag_ids`` — every DAG under the SimpleAuthManager,
the DAGs of the user's ``client_<id>`` roles under FAB (``orchestration.access``). Another
client's page, reports and JSON answer 404, exactly like a client that does not exist. Creating the app costs nothing: configs, the warehouse and Airflow's
database are read per request.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)
PREFIX = "/marketmap"


# --------------------------------------------------------------------------- auth


async def off_loop(fn, *args):
    """Run blocking work (config files, the warehouse, Airflow's database, storage) in a worker
    thread, so one slow page never holds the api-server's event loop (and every other request)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


async def current_user(request: Request) -> Any:
    """The logged-in Airflow user (cookie or bearer token); HTTPException 401/403 otherwise."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    header = request.headers.get("authorization", "")
    bearer = None
    if header.lower().startswith("bearer "):
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
    return await get_user(request, None, bearer)


def _candidate_dag_ids(client_ids: list[str]) -> dict[str, set[str]]:
    """The DAG ids each client has: from the factory's pipelines and Airflow's DAG table."""
    from marketmap.orchestration.factory import PIPELINES

    ids = {cid: {f"{cid}__{p}" for p in PIPELINES} | {f"{cid}__config_error"} for cid in client_ids}
    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            for (dag_id,) in session.execute(select(DagModel.dag_id)):
                cid = dag_id.split("__", 1)[0]
                if cid in ids and "__" in dag_id:
                    ids[cid].add(dag_id)
    except Exception:  # noqa: BLE001 - the DAG table is a bonus; the factory's ids suffice
        log.debug("could not read Airflow's DAG table", exc_info=True)
    return ids


def allowed_clients(user: Any, client_ids: list[str]) -> set[str]:
    """Clients of which ``user`` may read at least one DAG."""
    from airflow.api_fastapi.app import get_auth_manager

    candidates = _candidate_dag_ids(client_ids)
    every = set().union(*candidates.values()) if candidates else set()
    readable = get_auth_manager().filter_authorized_dag_ids(dag_ids=every, user=user, method="GET")
    return {cid for cid, ids in candidates.items() if ids & readable}


def _dag_runs(client_ids: set[str], limit: int = 50) -> dict[str, list[dict]]:
    """Recent Airflow DAG runs per client, newest first (the api-server may read its own DB).

    Each run: ``dag_id``, ``run_id``, ``state``, ``end_date``, ``run_type``, ``at`` (logical
    date, else when it was due) and, for a failed run, the ``failed_tasks`` (task ids).
    """
    out: dict[str, list[dict]] = {cid: [] for cid in client_ids}
    try:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(
                    DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.end_date, DagRun.run_type,
                    DagRun.logical_date, DagRun.run_after,
                )
                .order_by(DagRun.id.desc())
                .limit(limit * max(len(client_ids), 1))
            ).all()  # fmt: skip
            failed_runs = {(r.dag_id, r.run_id) for r in rows if str(r.state) == "failed"}
            failed_tasks: dict[tuple[str, str], list[str]] = {}
            if failed_runs:
                tis = session.execute(
                    select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id)
                    .where(
                        TaskInstance.run_id.in_({run for _, run in failed_runs}),
                        TaskInstance.state.in_(("failed", "upstream_failed")),
                    )
                    .order_by(TaskInstance.state, TaskInstance.start_date)
                ).all()
                for dag_id, run_id, task_id in tis:  # the failed task first, then what it held up
                    if (dag_id, run_id) in failed_runs:
                        failed_tasks.setdefault((dag_id, run_id), []).append(task_id)
    except Exception:  # noqa: BLE001 - without Airflow's runs the warehouse's still show
        log.debug("could not read Airflow's DAG runs", exc_info=True)
        return out
    for dag_id, run_id, state, end, run_type, logical, run_after in rows:
        cid = dag_id.split("__", 1)[0]
        if cid in out and "__" in dag_id:
            out[cid].append(
                {
                    "dag_id": dag_id, "run_id": run_id, "state": str(state), "end_date": end,
                    "run_type": str(run_type), "at": logical or run_after,
                    "failed_tasks": failed_tasks.get((dag_id, run_id), []),
                }
            )  # fmt: skip
    return out


def _dags(client_ids: set[str]) -> dict[str, dict[str, dict]]:
    """Each client's DAGs in Airflow (not removed ones) and whether they are paused."""
    out: dict[str, dict[str, dict]] = {cid: {} for cid in client_ids}
    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(DagModel.dag_id, DagModel.is_paused).where(DagModel.is_stale.is_(False))
            ).all()
    except Exception:  # noqa: BLE001 - without Airflow's DAG table nothing shows as paused
        log.debug("could not read Airflow's DAG table", exc_info=True)
        return out
    for dag_id, paused in rows:
        cid = dag_id.split("__", 1)[0]
        if cid in out and "__" in dag_id:
            out[cid][dag_id] = {"paused": bool(paused)}
    return out


def _base_url() -> str:
    """Airflow's address for run and log links; relative links when none is configured."""
    from marketmap.orchestration.alerting import airflow_base_url

    return airflow_base_url() or ""


# --------------------------------------------------------------------------- data


def _configs() -> dict:
    from marketmap.config import ConfigError, client_files
    from marketmap.orchestration.resources import load_effective

    configs = {}
    for path in client_files():
        try:
            configs[path.stem] = load_effective(path.stem)
        except ConfigError:
            log.warning("client %s has an invalid config; left out of the portfolio", path.stem)
    return configs


def _engine(cfg):
    from marketmap.orchestration.resources import warehouse

    return warehouse(cfg)


def _rows(user: Any) -> list[dict]:
    from marketmap.portfolio.data import portfolio

    configs = _configs()
    allowed = allowed_clients(user, sorted(configs))
    visible = [configs[c] for c in sorted(allowed)]
    return portfolio(visible, _engine, dag_runs=_dag_runs(allowed), dags=_dags(allowed), base_url=_base_url())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- app


MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}


def create_app() -> FastAPI:
    """The portfolio FastAPI app (mounted by the plugin under ``/marketmap``).

    Cheap to create: pandas, matplotlib and Jinja2 are imported on the first request, not when
    Airflow loads the plugin.
    """
    app = FastAPI(title="Market Map portfolio", docs_url=None, redoc_url=None, openapi_url=None)
    # Clay's enrichment callbacks: no Airflow login (Clay cannot log in) but a per-client shared
    # secret; under /api/ so a refused callback gets JSON, not a redirect to the login page.
    from marketmap.enrichment.clay_callback import make_router

    app.include_router(make_router(), prefix="/api")

    @app.exception_handler(HTTPException)
    async def _auth_redirect(request: Request, exc: HTTPException) -> Response:
        # A person without a session goes to Airflow's login page and comes back.
        if exc.status_code == 401 and "/api/" not in request.url.path:
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(
                get_auth_manager().get_url_login(next_url=str(request.url)), status_code=307
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/portfolio")

    @app.get("/portfolio", response_class=HTMLResponse)
    async def portfolio_page(request: Request) -> HTMLResponse:
        from marketmap.reports.render import render_template

        user = await current_user(request)
        rows = await off_loop(_rows, user)
        html = render_template("portfolio.html.j2", rows=rows, prefix=PREFIX, now=dt.datetime.now(dt.UTC),
                               user=getattr(user, "get_name", lambda: "")())  # fmt: skip
        return HTMLResponse(html)

    @app.get("/api/portfolio")
    async def portfolio_json(request: Request) -> JSONResponse:
        user = await current_user(request)
        rows = [{k: v for k, v in r.items() if k != "alerts"} for r in await off_loop(_rows, user)]
        return JSONResponse(_jsonable(rows))

    def _client_or_404(user: Any, client_id: str):
        configs = _configs()
        # Same answer for "no such client" and "not yours": never confirm a client exists.
        if client_id not in configs or client_id not in allowed_clients(user, [client_id]):
            raise HTTPException(status_code=404, detail=f"no client {client_id!r} for you")
        return configs[client_id]

    @app.get("/clients/{client_id}", response_class=HTMLResponse)
    async def client_page(request: Request, client_id: str) -> HTMLResponse:
        return await off_loop(_client_page, await current_user(request), client_id)

    def _client_page(user: Any, client_id: str) -> HTMLResponse:
        from marketmap.portfolio.data import alert_history, client_status, reports_by_run
        from marketmap.reports.render import list_reports, render_template

        cfg = _client_or_404(user, client_id)
        engine = _engine(cfg)
        now = dt.datetime.now(dt.UTC)
        dag_runs = _dag_runs({client_id}).get(client_id, [])
        status = client_status(
            cfg, engine, now.date(), now, dag_runs, _dags({client_id}).get(client_id), _base_url()
        )
        html = render_template(
            "portfolio_client.html.j2", row=status, runs=reports_by_run(cfg, list_reports(client_id), dag_runs, _base_url()),
            alerts=alert_history(engine, client_id), prefix=PREFIX, now=now,
        )  # fmt: skip
        return HTMLResponse(html)

    @app.get("/clients/{client_id}/reports/{run_id}/{filename}")
    async def report_file(request: Request, client_id: str, run_id: str, filename: str) -> Response:
        """A report file, read from storage (whichever worker wrote it; see marketmap.storage)."""
        return await off_loop(_report_file, await current_user(request), client_id, run_id, filename)

    def _report_file(user: Any, client_id: str, run_id: str, filename: str) -> Response:
        import os

        from marketmap import storage
        from marketmap.reports.render import report_dir, safe_name

        _client_or_404(user, client_id)
        # Names the reports are written under only: no separators, no "..", a known type.
        if safe_name(filename) != filename or safe_name(run_id) != run_id or run_id.startswith("."):
            raise HTTPException(status_code=404, detail="no such report")
        path = report_dir(client_id, run_id) / filename
        if path.suffix not in MEDIA or not path.is_file():
            raise HTTPException(status_code=404, detail="no such report")
        media = MEDIA[path.suffix]
        if storage.is_local(path):
            return FileResponse(Path(os.fspath(path)), media_type=media)
        return Response(path.read_bytes(), media_type=media)

    add_review_routes(app, _client_or_404)
    return app


# --------------------------------------------------------------------------- review queue
#
# A person decides look-alike pairs (marketmap.ingest.review): the page lists the open pairs
# side by side; a decision is a POST, either a form from that page (with a CSRF token bound to
# the user and the client, and a same-origin check) or JSON (``/api/…``, which a cross-site
# page cannot send without a CORS preflight this app never grants). Only users who can see the
# client (the same visibility check as the client page) can list or decide its pairs.


def _user_name(user: Any) -> str:
    return str(getattr(user, "get_name", lambda: "")() or getattr(user, "username", ""))


def _csrf_key() -> bytes:
    from airflow.configuration import conf

    key = conf.get("api", "secret_key", fallback="") or conf.get("api_auth", "jwt_secret", fallback="")
    if not key:
        raise HTTPException(status_code=503, detail="set [api] secret_key to decide review pairs")
    return key.encode()


def csrf_token(user: Any, client_id: str) -> str:
    """The review form's token: an HMAC of the user and the client under Airflow's secret key."""
    import hashlib
    import hmac

    return hmac.new(_csrf_key(), f"review|{_user_name(user)}|{client_id}".encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> None:
    """Refuse a POST whose Origin (or Referer) names another site."""
    from urllib.parse import urlsplit

    source = request.headers.get("origin") or request.headers.get("referer")
    if source and source != "null" and urlsplit(source).netloc != request.headers.get("host", request.url.netloc):
        raise HTTPException(status_code=403, detail="cross-site request refused")


def add_review_routes(app: FastAPI, client_or_404) -> None:
    """The review page, its form POST and the JSON API (see the section comment)."""

    def _page(user: Any, cfg, message: str | None = None, error: bool = False, status: int = 200) -> HTMLResponse:
        from marketmap.ingest.review import DECIDED, FIELDS, decided_pairs, pairs
        from marketmap.reports.render import render_template

        engine = _engine(cfg)
        items = pairs(engine, cfg.client_id)
        html = render_template("review.html.j2", pairs=items, fields=FIELDS, client_id=cfg.client_id,
                               decided=decided_pairs(engine, cfg.client_id), decided_label=DECIDED,
                               cfg_name=cfg.name, prefix=PREFIX, csrf_token=csrf_token(user, cfg.client_id),
                               message=message, error=error)  # fmt: skip
        return HTMLResponse(html, status_code=status)

    @app.get("/clients/{client_id}/review", response_class=HTMLResponse)
    async def review_page(request: Request, client_id: str) -> HTMLResponse:
        user = await current_user(request)
        saved = request.query_params.get("saved")
        return await off_loop(lambda: _page(user, client_or_404(user, client_id), saved))

    @app.post("/clients/{client_id}/review/{pair_id}", response_class=HTMLResponse)
    async def review_form(request: Request, client_id: str, pair_id: str) -> Response:
        import hmac
        from urllib.parse import parse_qs, quote

        from marketmap.ingest.review import DECIDED, ReviewError, decide

        user = await current_user(request)
        cfg = await off_loop(client_or_404, user, client_id)
        _same_origin(request)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if not hmac.compare_digest(form.get("csrf_token", ""), csrf_token(user, client_id)):
            raise HTTPException(status_code=403, detail="missing or invalid CSRF token: reload the review page")
        try:
            p = await off_loop(decide, _engine(cfg), client_id, pair_id, form.get("decision", ""), _user_name(user))
        except ReviewError as e:
            problem = str(e)
            return await off_loop(lambda: _page(user, cfg, problem, error=True, status=409))
        log.info("review pair %s of %s decided by %s: %s", p.id, client_id, _user_name(user), p.status)
        then = "merged on the next build" if p.status == "same" else "never asked again"
        note = quote(f"{p.left_name} / {p.right_name}: {DECIDED[p.status]} ({then})")
        return RedirectResponse(f"{PREFIX}/clients/{client_id}/review?saved={note}", status_code=303)

    @app.get("/api/clients/{client_id}/review")
    async def review_json(request: Request, client_id: str) -> JSONResponse:
        from marketmap.ingest.review import pairs

        user = await current_user(request)
        items = await off_loop(lambda: pairs(_engine(client_or_404(user, client_id)), client_id))
        return JSONResponse(_jsonable([p.to_dict() for p in items]))

    @app.post("/api/clients/{client_id}/review/{pair_id}")
    async def review_decide_json(request: Request, client_id: str, pair_id: str) -> JSONResponse:
        from marketmap.ingest.review import ReviewError, decide

        user = await current_user(request)
        cfg = await off_loop(client_or_404, user, client_id)
        _same_origin(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(status_code=415, detail='send JSON: {"decision": "merge" | "keep_apart"}')
        body = await request.json()
        try:
            decision = body.get("decision", "") if isinstance(body, dict) else ""
            p = await off_loop(decide, _engine(cfg), client_id, pair_id, decision, _user_name(user))
        except ReviewError as e:
            raise HTTPException(status_code=409, detail=str(e)) from None
        log.info("review pair %s of %s decided by %s: %s", p.id, client_id, _user_name(user), p.status)
        return JSONResponse(_jsonable(p.to_dict()))
