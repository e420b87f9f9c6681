"""Credentials by connection id, without importing Airflow.

Domain code (CRM adapters, providers, Slack delivery, the warehouse) asks this module for a
connection. The orchestration layer registers Airflow's lookup (metadata database, secrets
backends) when it is imported; without it (a plain script) connections come from
``AIRFLOW_CONN_<ID>`` environment variables in Airflow's URI or JSON form, as Airflow reads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit


class ConnectionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def extra_dejson(self) -> dict[str, Any]:  # the name Airflow's Connection uses
        return self.extra

    def get_uri(self) -> str:
        """``type://login:password@host:port/schema`` (the shape SQLAlchemy URLs need)."""
        auth = ""
        if self.login or self.password:
            auth = quote(self.login or "", safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        port = f":{self.port}" if self.port else ""
        schema = f"/{self.schema}" if self.schema else ""
        return f"{(self.conn_type or '').replace('_', '-')}://{auth}{self.host or ''}{port}{schema}"


Resolver = Callable[[str], Connection]
_resolver: Resolver | None = None


def register(resolver: Resolver | None) -> None:
    """Install the lookup used by :func:`get_connection` (the orchestration layer's Airflow one)."""
    global _resolver
    _resolver = resolver


def get_connection(conn_id: str) -> Connection:
    if _resolver is not None:
        return _resolver(conn_id)
    return from_environment(conn_id)


def from_environment(conn_id: str) -> Connection:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        raise ConnectionNotFound(f"connection '{conn_id}' is not defined (AIRFLOW_CONN_{conn_id.upper()})")
    raw = raw.strip()
    if raw.startswith("{"):
        d = json.loads(raw)
        extra = d.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return Connection(
            conn_id,
            d.get("conn_type"),
            d.get("host"),
            d.get("login"),
            d.get("password"),
            d.get("schema"),
            int(d["port"]) if d.get("port") else None,
            extra,
        )
    u = urlsplit(raw)
    extra = dict(parse_qsl(u.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return Connection(
        conn_id,
        u.scheme.replace("-", "_") or None,
        unquote(u.hostname) if u.hostname else None,
        unquote(u.username) if u.username else None,
        unquote(u.password) if u.password else None,
        unquote(u.path.lstrip("/")) or None,
        u.port,
        extra,
    )
