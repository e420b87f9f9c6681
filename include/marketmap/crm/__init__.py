"""CRM sync: extract, preflight, duplicate-safe diff-based push, post-load validation.

Public API (what DAG tasks call; everything but :func:`adapter_for` takes explicit
parameters, so tests and the CLI need no Airflow)::

    adapter = adapter_for(cfg)                                   # credentials from the Airflow connection
    extract(cfg, engine, run_id, adapter, since=None, until=None)  # full / incremental into the warehouse
    report = preflight(cfg, adapter)                             # .ok, .problems — stop if not ok
    plan = plan_push(cfg, engine, run_id, adapter, push)         # the diff; same in a dry run
    write_preview(plan, out_dir)                                 # dry run: CSV + summary
    result = execute_push(cfg, engine, run_id, adapter, plan)    # canary, then the rest
    validate_after_push(cfg, engine, adapter, run_id)            # counts + duplicates
    push_all(cfg, engine, run_id, adapter, dry_run=…)            # every push mapping, accounts first
    push_field_changes(cfg, engine, run_id, adapter, "account", {key: {"OwnerId": new}},
                       expected={key: {"OwnerId": old}})          # owner changes etc. through the engine

Heavy imports (simple-salesforce, hubspot-api-client) happen only when an adapter is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketmap.config import ClientConfig
from marketmap.crm.base import (
    BatchRejected,
    CallStats,
    CrmAdapter,
    CrmError,
    CrmSettings,
    Fatal,
    RateLimited,
    Transient,
)
from marketmap.crm.changes import push_field_changes
from marketmap.crm.execute import PushHalted, PushResult, execute_push
from marketmap.crm.extract import extract
from marketmap.crm.plan import PlanItem, PushPlan, plan_push
from marketmap.crm.preflight import PreflightReport, preflight
from marketmap.crm.preview import write_preview
from marketmap.crm.validate import validate_after_push

__all__ = [
    "BatchRejected", "CallStats", "CrmAdapter", "CrmError", "CrmSettings", "Fatal", "PlanItem", "PreflightReport",
    "PushHalted", "PushPlan", "PushResult", "RateLimited", "Transient", "adapter_for", "execute_push", "extract",
    "plan_push", "preflight", "push_all", "push_field_changes", "settings_from_extra", "validate_after_push",
    "write_preview",
]  # fmt: skip


def _conn_fields(conn: Any) -> dict[str, Any]:
    """host/login/password/extra of an Airflow Connection, or of a plain dict in tests."""
    if isinstance(conn, dict):
        extra = conn.get("extra") or {}
        return {
            "host": conn.get("host"),
            "login": conn.get("login"),
            "password": conn.get("password"),
            "extra": extra,
        }
    extra = getattr(conn, "extra_dejson", None) or {}
    return {"host": conn.host, "login": conn.login, "password": conn.password, "extra": extra}


def _url(host: str | None) -> str | None:
    if not host:
        return None
    return host if "://" in host else f"https://{host}"


def settings_from_extra(extra: dict[str, Any], settings: CrmSettings | None = None) -> CrmSettings:
    """Per-connection knobs from the connection's extra (portals and orgs differ):

    - ``rate_limit``: HubSpot requests per rolling window — ``[100, 10]``, ``"100/10"`` or
      ``100`` (per 10 s); ``0`` / ``null`` turns the client-side throttle off.
    - ``timeout``: read timeout in seconds; ``connect_timeout``: connect timeout in seconds.
    - ``search_per_second``: HubSpot search API calls per second.
    """
    import dataclasses

    base = settings or CrmSettings()
    upd: dict[str, Any] = {}
    if "rate_limit" in extra:
        rl = extra["rate_limit"]
        if rl in (None, 0, "0", ""):
            upd["rate_limit"] = None
        elif isinstance(rl, (list, tuple)) and len(rl) == 2:
            upd["rate_limit"] = (int(rl[0]), float(rl[1]))
        elif isinstance(rl, str) and "/" in rl:
            n, w = rl.split("/", 1)
            upd["rate_limit"] = (int(n), float(w))
        else:
            upd["rate_limit"] = (int(rl), 10.0)
    if extra.get("timeout") not in (None, ""):
        upd["read_timeout_s"] = float(extra["timeout"])
    if extra.get("connect_timeout") not in (None, ""):
        upd["connect_timeout_s"] = float(extra["connect_timeout"])
    if extra.get("search_per_second") not in (None, ""):
        upd["search_per_second"] = float(extra["search_per_second"])
    return dataclasses.replace(base, **upd) if upd else base


def adapter_for(
    cfg: ClientConfig,
    conn: Any = None,
    *,
    settings: CrmSettings | None = None,
    mounts: dict[str, Any] | None = None,
    out_dir: Path | None = None,
) -> CrmAdapter:
    """The client's CRM adapter, with credentials from its Airflow connection (``crm.conn_id``).

    ``conn`` may be given instead (an Airflow Connection or a dict with host, login,
    password, extra) — tests pass the local server's URL and token that way.

    - HubSpot: password = private-app token; host = API base URL (default api.hubapi.com).
    - Salesforce: host = instance URL; either extra ``session_id`` (or a password with no
      login) for a direct session, or login + password + extra ``security_token``
      (+ ``domain``: login/test), or extra ``consumer_key`` + ``consumer_secret``
      (client-credentials flow). Extra ``version`` picks the API version.
    - Any kind: extra ``rate_limit``, ``timeout``, ``connect_timeout``, ``search_per_second``
      override the retry/throttle settings (:func:`settings_from_extra`).
    - CSV: no connection; files go to the run folder (or ``out_dir``).
    """
    from marketmap.crm.mapping import crm_objects

    kind = cfg.crm.kind
    if kind == "csv":
        from marketmap.crm.csv_adapter import CsvAdapter

        return CsvAdapter(cfg, out_dir=out_dir, settings=settings)
    if conn is None:
        from marketmap.connections import get_connection

        conn = get_connection(cfg.crm.conn_id)
    c = _conn_fields(conn)
    extra = c["extra"]
    settings = settings_from_extra(extra, settings)
    where = f"Airflow connection '{cfg.crm.conn_id}'"
    if kind == "hubspot":
        from marketmap.crm.hubspot import HubSpotAdapter

        token = c["password"] or extra.get("access_token")
        if not token:
            raise CrmError(f"{where}: no HubSpot private-app token (put it in the password field)")
        return HubSpotAdapter(
            token, host=_url(c["host"] or extra.get("host")), objects=crm_objects(cfg), settings=settings
        )

    from marketmap.crm.salesforce import SalesforceAdapter

    instance = _url(c["host"] or extra.get("instance_url"))
    common: dict[str, Any] = {"objects": crm_objects(cfg), "settings": settings, "mounts": mounts}
    if extra.get("version"):
        common["version"] = str(extra["version"])
    session_id = extra.get("session_id") or (c["password"] if not c["login"] else None)
    if session_id and instance:
        return SalesforceAdapter(instance_url=instance, session_id=session_id, **common)
    if extra.get("consumer_key") and extra.get("consumer_secret") and not c["login"]:
        return SalesforceAdapter(consumer_key=extra["consumer_key"], consumer_secret=extra["consumer_secret"],
                                 domain=extra.get("domain"), **common)  # fmt: skip
    if not (c["login"] and c["password"]):
        raise CrmError(f"{where}: give an instance URL + session id, login + password (+ security_token), "
                       "or consumer_key + consumer_secret")  # fmt: skip
    return SalesforceAdapter(
        username=c["login"], password=c["password"], security_token=extra.get("security_token"),
        domain=extra.get("domain"), consumer_key=extra.get("consumer_key"),
        consumer_secret=extra.get("consumer_secret"), **common,
    )  # fmt: skip


def push_all(
    cfg: ClientConfig,
    engine: Any,
    run_id: str,
    adapter: CrmAdapter,
    *,
    dry_run: bool = False,
    canary: bool = True,
    only_canary: bool = False,
    out_dir: Path | None = None,
    raise_on_halt: bool = False,
) -> dict:
    """Plan (and unless ``dry_run``, execute) every push mapping, accounts before contacts.

    Contacts come second because a new contact needs its account's CRM id. Returns one
    summary per object; a dry run writes the previews to ``out_dir`` (default: the run
    folder). Stops at the first halted push (and raises :class:`PushHalted` with the reason
    when ``raise_on_halt``, for a DAG task that must fail).
    """
    from marketmap.settings import run_dir

    out: dict[str, Any] = {}
    for push in sorted(cfg.push, key=lambda p: p.object != "account"):
        plan = plan_push(cfg, engine, run_id, adapter, push)
        if dry_run:
            out[push.object] = write_preview(plan, out_dir or run_dir(cfg.client_id, run_id))
            continue
        result = execute_push(cfg, engine, run_id, adapter, plan, canary, only_canary=only_canary)
        out[push.object] = {"plan": plan.summary(), "result": result.as_dict()}
        if result.status == "halted":
            if raise_on_halt:
                result.raise_if_halted()
            break
    return out
