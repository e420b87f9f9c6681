"""Post-load validation: counts reconcile and no duplicates by domain, e-mail or LinkedIn URL.

- source ↔ warehouse: every CRM record read is either an account or a duplicate merged
  into one (account_crm_ids), plus net-new accounts without a CRM id.
- warehouse ↔ CRM: the CRM's record count now equals the snapshot (extract + records
  Market Map created) — a difference means records were created or deleted elsewhere
  meanwhile (a warning), and every record this run created is found in the CRM.
- duplicates: records created by Market Map must not share a domain / e-mail / LinkedIn
  URL with another CRM record (checked live in the CRM: a problem); duplicates the CRM
  already had are listed as warnings for clean-up (the warehouse merged them already).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, func, select

from marketmap.config import ClientConfig
from marketmap.crm import snapshot
from marketmap.crm.base import CrmAdapter, CrmError
from marketmap.crm.mapping import identity_fields
from marketmap.crm.values import domains_of, normalise_email, normalise_linkedin
from marketmap.warehouse import schema as t


def _count(conn, table, *where) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _dupes(rows: dict[str, dict], col: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for crm_id, row in rows.items():
        if row.get(col):
            groups[row[col]].append(crm_id)
    return {k: sorted(v) for k, v in groups.items() if len(v) > 1}


def validate_after_push(
    cfg: ClientConfig, engine: Engine, adapter: CrmAdapter, run_id: str | None = None
) -> dict:
    """Reconcile counts and look for duplicates after a push; the dict goes into the run summary.

    ``ok`` is False when a created record is missing from the CRM or a duplicate was
    created; differences caused outside Market Map are warnings.
    """
    cid = cfg.client_id
    problems: list[str] = []
    warnings: list[str] = []
    out: dict = {"client_id": cid, "run_id": run_id, "counts": {}, "duplicates": {}}
    with engine.connect() as conn:
        ids, a = t.account_crm_ids.c, t.accounts.c
        source = _count(conn, t.account_crm_ids, ids.client_id == cid)
        merged = _count(conn, t.account_crm_ids, ids.client_id == cid, ids.is_survivor.is_(False))
        accounts = _count(conn, t.accounts, a.client_id == cid)
        net_new = _count(conn, t.accounts, a.client_id == cid, a.crm_id.is_(None))
        w_dupes = conn.execute(
            select(a.domain, func.count())
            .where(a.client_id == cid, a.domain.is_not(None))
            .group_by(a.domain)
            .having(func.count() > 1)
        ).all()
        c = t.contacts.c
        contacts = _count(conn, t.contacts, c.client_id == cid)
        pl = t.push_log.c
        q = select(pl.object, pl.crm_id).where(
            pl.client_id == cid, pl.operation == "create", pl.status == "success"
        )
        if run_id:
            q = q.where(pl.run_id == run_id)
        created: dict[str, set[str]] = defaultdict(set)
        for obj, crm_id in conn.execute(q):
            if crm_id:
                created[obj].add(crm_id)
    out["counts"]["source_to_warehouse"] = {
        "crm_records_read": source, "duplicates_merged": merged, "accounts": accounts,
        "net_new_accounts": net_new, "contacts": contacts,
    }  # fmt: skip
    if source and source - merged + net_new != accounts:
        problems.append(
            f"source and warehouse don't reconcile: {source:,} CRM records - {merged:,} merged duplicates "
            f"+ {net_new:,} net-new = {source - merged + net_new:,}, but the warehouse holds {accounts:,} accounts"
        )
    if w_dupes:
        problems.append(
            f"{len(w_dupes)} domains appear on more than one warehouse account, e.g. {w_dupes[0][0]}"
        )

    if not adapter.has_remote:
        out["counts"]["crm"] = "no CRM (CSV import files)"
        return _finish(out, problems, warnings)

    for obj in ("account", "contact"):
        snap = snapshot.load(engine, cid, obj)
        ident = identity_fields(cfg, obj)
        counts: dict = {"snapshot": len(snap), "created_this_run": len(created.get(obj, ()))}
        try:
            counts["crm_now"] = adapter.count(obj)
        except CrmError as e:
            warnings.append(f"could not count {obj}s in the CRM: {e.message}")
        if "crm_now" in counts and counts["crm_now"] != len(snap):
            warnings.append(
                f"{obj}s: the CRM holds {counts['crm_now']:,} records, Market Map knows {len(snap):,} "
                "(records created or deleted outside Market Map since the extract)"
            )
        new_ids = sorted(created.get(obj, ()))
        fields = snapshot.read_fields(cfg, obj, adapter.id_field(obj))
        if new_ids:
            found = adapter.read(obj, new_ids, fields)
            missing = [i for i in new_ids if i not in found]
            counts["created_found_in_crm"] = len(new_ids) - len(missing)
            if missing:
                problems.append(
                    f"{len(missing)} {obj}s created by this push are not in the CRM, e.g. {missing[0]}"
                )
            # live check: nothing else in the CRM shares the identity of what we created
            if obj == "account":
                keys = set(domains_of(r.get(ident["website"]) for r in found.values())) - {None}
                live = adapter.find_by_domain(obj, sorted(keys), fields)
                groups = _group(
                    live, domains_of(r.get(ident["website"]) for r in live), adapter.id_field(obj)
                )
                made = {k: v for k, v in groups.items() if len(v) > 1}
                if made:
                    problems.append(
                        f"duplicate {obj}s by domain after the push: {dict(list(made.items())[:5])}"
                    )
                out["duplicates"]["created_by_domain"] = made
            else:
                for canonical, norm in (("email", normalise_email), ("linkedin_url", normalise_linkedin)):
                    name = ident.get(canonical)
                    if not name:
                        continue
                    keys = {norm(r.get(name)) for r in found.values()} - {None}
                    live = adapter.find(obj, name, sorted(keys), fields) if keys else []
                    groups = _group(live, [norm(r.get(name)) for r in live], adapter.id_field(obj))
                    made = {k: v for k, v in groups.items() if len(v) > 1}
                    if made:
                        problems.append(
                            f"duplicate {obj}s by {canonical} after the push: {dict(list(made.items())[:5])}"
                        )
                    out["duplicates"][f"created_by_{canonical}"] = made
        cols = ("domain",) if obj == "account" else ("email", "linkedin")
        for col in cols:
            d = _dupes(snap, col)
            out["duplicates"][f"{obj}_{col}_in_crm"] = len(d)
            if d:
                example = next(iter(d.items()))
                warnings.append(
                    f"the CRM already had {len(d)} {obj} {col}s on more than one record (e.g. {example[0]}: "
                    f"{', '.join(example[1][:3])}); merged in the warehouse, worth cleaning up in the CRM"
                )
        out["counts"][obj] = counts
    return _finish(out, problems, warnings)


def _group(records: list[dict], keys, id_field: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for r, k in zip(records, keys, strict=True):
        if k:
            groups[k].append(str(r[id_field]))
    return {k: sorted(set(v)) for k, v in groups.items()}


def _finish(out: dict, problems: list[str], warnings: list[str]) -> dict:
    out.update(ok=not problems, problems=problems, warnings=warnings)
    return out
