"""Per-client access under Airflow's FAB auth manager: one role per client, ``client_<id>``.

A client's role may read, trigger and pause/unpause that client's DAGs (``<client>__<pipeline>``
and its ``<client>__config_error`` stand-in) and read their runs, task instances, logs and
XComs — and nothing of another client. The portfolio app (``/marketmap``) shows a user exactly
the clients whose DAGs they may read, so the same role also opens that client's portfolio row,
client page and reports.

Why roles rather than the DAGs' ``access_control``: in Airflow 3.3 a DAG's ``access_control``
is deprecated (RemovedInAirflow4Warning on every parse) and a DAG naming a role that does not
exist yet fails to serialize (an import error in the UI). So the roles are built here from the
client configs and the factory's pipelines, and hold the per-DAG permissions (``DAG:<dag_id>``,
``DAG Run:<dag_id>``) themselves — whether or not the DAGs were parsed yet. A DAG without
``access_control`` never changes a role's permissions when it is parsed (FAB's
``sync_perm_for_dag`` only revokes for DAGs that declare one), so a sync stays put.

``marketmap access sync`` (re)creates every client's role; ``marketmap access add-user``
creates a user with a client's role. Only this module imports the FAB provider.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable

ROLE_PREFIX = "client_"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"

# What every client role may do besides its own DAGs. These are FAB's Viewer permissions minus
# everything that is not filtered per DAG (the all-DAGs "DAGs" resource, DAG dependencies, assets,
# pools, jobs, import errors, cluster activity: they would show other clients' names). Sub-DAG
# resources (runs, task instances, logs, XComs, code) are checked together with the DAG's own
# permission, so they open only the client's DAGs.
BASE_PERMISSIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("can_read", "Website"),
        ("can_read", "Plugins"),  # the UI's menu lists plugin views from it: "Market Map portfolio"
        ("can_read", "DAG Code"),
        ("can_read", "DAG Runs"),
        ("can_read", "DAG Versions"),
        ("can_read", "DAG Warnings"),
        ("can_read", "Task Instances"),
        ("can_read", "Task Logs"),
        ("can_read", "XComs"),
        ("can_read", "HITL Detail"),
        ("can_read", "My Password"),
        ("can_edit", "My Password"),
        ("can_read", "My Profile"),
        ("can_edit", "My Profile"),
        ("menu_access", "Browse"),
        ("menu_access", "DAGs"),
        ("menu_access", "DAG Runs"),
        ("menu_access", "Task Instances"),
        ("menu_access", "Docs"),
        ("menu_access", "Documentation"),
    }
)
# Per DAG of the client: read it, edit it (pause/unpause; needed to trigger), read and create runs.
DAG_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("can_read", "DAG:"),
    ("can_edit", "DAG:"),
    ("can_read", "DAG Run:"),
    ("can_create", "DAG Run:"),
)


class AccessError(Exception):
    """A request the access commands cannot carry out; the message says what to do."""


def role_name(client_id: str) -> str:
    return f"{ROLE_PREFIX}{client_id}"


def client_dag_ids(client_id: str) -> list[str]:
    """Every DAG id the factory can give a client (its pipelines and the config-error stand-in)."""
    from marketmap.orchestration.factory import PIPELINES, dag_id

    return sorted({dag_id(client_id, p) for p in PIPELINES} | {dag_id(client_id, "config_error")})


def role_permissions(client_id: str) -> set[tuple[str, str]]:
    """The (action, resource) pairs of ``client_<id>``."""
    perms = set(BASE_PERMISSIONS)
    for dag in client_dag_ids(client_id):
        perms |= {(action, prefix + dag) for action, prefix in DAG_PERMISSIONS}
    return perms


def auth_manager() -> str:
    from airflow.configuration import conf

    return conf.get("core", "auth_manager", fallback="") or ""


def require_fab() -> None:
    name = auth_manager()
    if "FabAuthManager" not in name:
        raise AccessError(
            f"the auth manager is {name.rsplit('.', 1)[-1] or 'not set'}, which has no per-DAG rights; "
            f"per-client roles need the FAB auth manager: set AIRFLOW__CORE__AUTH_MANAGER={FAB_AUTH_MANAGER} "
            "(`make ui AUTH=fab` does) and run `airflow db migrate` first"
        )


@contextlib.contextmanager
def _security_manager():
    """FAB's security manager on Airflow's metadata DB (as `airflow users …` gets it)."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from sqlalchemy.exc import OperationalError, ProgrammingError

    require_fab()
    try:
        with get_application_builder() as appbuilder:
            yield appbuilder.sm
    except (OperationalError, ProgrammingError) as e:
        if "ab_" not in str(e):
            raise
        raise AccessError(
            "Airflow's database has no FAB tables (ab_role, ab_user): run `airflow db migrate` with "
            "the FAB auth manager configured first"
        ) from None


@dataclasses.dataclass
class RoleSync:
    role: str
    created: bool
    added: int
    removed: int
    total: int


def sync_roles(client_ids: Iterable[str]) -> list[RoleSync]:
    """Create or update ``client_<id>`` for every client: exactly :func:`role_permissions`."""
    out = []
    with _security_manager() as sm:
        for cid in sorted(client_ids):
            name = role_name(cid)
            role = sm.find_role(name)
            created = role is None
            if created:
                role = sm.add_role(name)
            want = role_permissions(cid)
            have = {(p.action.name, p.resource.name): p for p in role.permissions if p.action and p.resource}
            added = 0
            for action, resource in sorted(want - set(have)):
                perm = sm.get_permission(action, resource) or sm.create_permission(action, resource)
                sm.add_permission_to_role(role, perm)
                added += 1
            stale = set(have) - want
            for key in sorted(stale):
                sm.remove_permission_from_role(role, have[key])
            out.append(RoleSync(name, created, added, len(stale), len(want)))
    return out


ADMIN_ROLE = "Admin"  # FAB's built-in role: every DAG, every client, Airflow's admin pages


def add_user(client_id: str | None, username: str, email: str, password: str, first_name: str = "",
             last_name: str = "") -> str:  # fmt: skip
    """Create ``username`` with the client's role (``client_id=None``: FAB's Admin role, for the
    architects), or give an existing user that role too.

    Returns ``"created"`` or ``"role added"`` (``"unchanged"`` when the user already had it).
    """
    require_fab()
    if not username.strip():
        raise AccessError("--username is empty")
    if "@" not in email:
        raise AccessError(f"--email {email!r} is not an e-mail address")
    name = role_name(client_id) if client_id else ADMIN_ROLE
    with _security_manager() as sm:
        role = sm.find_role(name)
        if role is None:
            raise AccessError(
                f"role {name} does not exist: run `marketmap access sync` first (it creates one role per client)"
            )
        user = sm.find_user(username=username)
        if user is not None:
            if any(r.name == name for r in user.roles):
                return "unchanged"
            user.roles.append(role)
            sm.update_user(user)
            return "role added"
        if not password:
            raise AccessError("no password given (pipe it into --password-stdin)")
        if sm.find_user(email=email) is not None:
            raise AccessError(f"another user already has the e-mail address {email}")
        user = sm.add_user(username, first_name or username, last_name or client_id or "admin", email, [role],
                           password)  # fmt: skip
        if not user:
            raise AccessError(f"FAB could not create user {username} (see the log above)")
        return "created"
