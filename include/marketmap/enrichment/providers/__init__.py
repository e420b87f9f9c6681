"""Enrichment providers behind one interface, built from the client config.

Credentials come from Airflow connections, resolved only here, by ``conn_getter``
(default: :func:`marketmap.connections.get_connection`), so everything else takes explicit
parameters and runs without Airflow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from marketmap.config import ClientConfig, ProviderConfig
from marketmap.enrichment.providers.apollo import ApolloProvider
from marketmap.enrichment.providers.base import (
    Answer,
    CompanyQuery,
    Credentials,
    LookupContext,
    PeopleQuery,
    PersonQuery,
    Provider,
)
from marketmap.enrichment.providers.clay import ClayProvider
from marketmap.enrichment.providers.files import ExportFileProvider, SimulatedProvider
from marketmap.enrichment.providers.http_json import HttpJsonProvider
from marketmap.enrichment.providers.zoominfo import ZoomInfoProvider

KINDS: dict[str, type[Provider]] = {
    "apollo": ApolloProvider,
    "zoominfo": ZoomInfoProvider,
    "clay": ClayProvider,
    "export_file": ExportFileProvider,
    "http_json": HttpJsonProvider,
    "simulated": SimulatedProvider,
}

ConnGetter = Callable[[str], Credentials]

__all__ = [
    "KINDS",
    "Answer",
    "CompanyQuery",
    "Credentials",
    "LookupContext",
    "PeopleQuery",
    "PersonQuery",
    "Provider",
    "airflow_credentials",
    "build_provider",
    "providers_for",
]


def airflow_credentials(conn_id: str) -> Credentials:
    """Credentials from the connection ``conn_id`` (Airflow's, through :mod:`marketmap.connections`)."""
    from marketmap.connections import get_connection

    conn = get_connection(conn_id)
    extra: dict[str, Any] = conn.extra_dejson
    return Credentials(
        host=conn.host,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        port=conn.port,
        extra=extra or {},
    )


def build_provider(
    pcfg: ProviderConfig,
    client_id: str,
    credentials: Credentials | None = None,
    *,
    inbox: Path | None = None,
    **kwargs,
) -> Provider:
    """One provider from its config entry (``inbox`` overrides the client's inbox for files)."""
    cls = KINDS[pcfg.kind]
    if cls in (ExportFileProvider, SimulatedProvider):
        return cls(pcfg, client_id, credentials, inbox=inbox, **kwargs)
    return cls(pcfg, client_id, credentials)


def providers_for(
    cfg: ClientConfig, conn_getter: ConnGetter | None = None, *, inbox: Path | None = None
) -> list[Provider]:
    """The client's providers in waterfall order (config order), credentials resolved.

    Args:
        cfg: the client config.
        conn_getter: ``conn_id -> Credentials``; default reads Airflow connections. Only
            providers with a ``conn_id`` call it, so the demo client needs no Airflow.
        inbox: where export files are read (default ``$MARKETMAP_HOME/inbox/<client>``).
    """
    getter = conn_getter or airflow_credentials
    out = []
    for p in cfg.enrichment.providers:
        creds = getter(p.conn_id) if p.conn_id else None
        out.append(build_provider(p, cfg.client_id, creds, inbox=inbox))
    return out
