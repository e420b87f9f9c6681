"""Post-load validation: what the push changed is what the CRM now holds, and no duplicates.

- push ↔ CRM: every record this run wrote successfully is read back (every create, a
  sample of updates) and each written value compared with the CRM's; any difference is
  explained per record: the record was deleted in the CRM since (a warning for an update,
  a problem for a record this run created), a person changed the field since the push
  (the CRM's modification time is later: a warning), or the CRM does not hold what it
  accepted (a problem).
- failed / parked / deleted-in-CRM records of this run are counted with examples (the push
  task alerts about them; they do not fail validation: the push did what it could).
- duplicates: records created by Market Map must not share a domain / e-mail / LinkedIn
  URL with another CRM record (checked live in the CRM: a problem); duplicates the CRM
  already had are listed as warnings for clean-up (the warehouse merged them already); a
  CRM id on two warehouse contacts is a problem (a contact twice).
- counts: source ↔ warehouse ↔ CRM are reported; differences caused by the ingest (merged
  duplicates, rejected rows) or by people (records created or deleted in the CRM) are
  explained as warnings, never a failure of a healthy run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import Engine, func, select

from marketmap.config import ClientConfig
from marketmap.crm import snapshot
from marketmap.crm.base import CrmAdapter, CrmError
from marketmap.crm.mapping import identity_fields
from marketmap.crm.values import domains_of, normalise_email, normalise_linkedin, same
from marketmap.warehouse import schema as t

SAMPLE_UPDATES = 200  # updated records read back per object
MAX_CREATES_READ = 5000  # created records read back per object (all of them up to this)
MODIFIED = {"hubspot": "hs_lastmodifieddate", "salesforce": "LastModifiedDate"}


def _count(conn, table, *where) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _dupes(engine: Engine, client_id: str, obj: str, col: str) -> dict[str, list[str]]:
    """Values of snapshot column ``col`` held by more than one CRM record -> those records' ids."""
    c = t.crm_records.c
    mine = (c.client_id == client_id) & (c.object == obj)
    shared = select(c[col]).where(mine, c[col].is_not(None)).group_by(c[col]).having(func.count() > 1)
    groups: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for value, crm_id in conn.execute(
            select(c[col], c.crm_id).where(mine, c[col].in_(shared)).order_by(c[col], c.crm_id)
        ):
            groups[value].append(crm_id)
    return dict(groups)


def _aware(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def _run_log(conn, cid: str, run_id: str | None) -> list[dict]:
    pl = t.push_log.c
    q = select(pl.object, pl.record_key, pl.crm_id, pl.operation, pl.status, pl.error, pl.fields_changed,
               pl.at).where(pl.client_id == cid)  # fmt: skip
    if run_id:
        q = q.where(pl.run_id == run_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def validate_after_push(
    cfg: ClientConfig, engine: Engine, adapter: CrmAdapter, run_id: str | None = None
) -> dict:
    """Reconcile the push with the CRM and look for duplicates; the dict goes into the run summary.

    ``ok`` is False only for what Market Map got wrong: a record this run created that is not
    in the CRM, a written value the CRM does not hold (and nobody changed since), a duplicate
    created, a contact twice in the warehouse. ``differences`` explains every mismatch by record.
    """
    from marketmap.crm.snapshot import parse_ts

    cid = cfg.client_id
    problems: list[str] = []
    warnings: list[str] = []
    out: dict = {"client_id": cid, "run_id": run_id, "counts": {}, "duplicates": {}, "differences": []}
    with engine.connect() as conn:
        ids, a = t.account_crm_ids.c, t.accounts.c
        source = _count(conn, t.account_crm_ids, ids.client_id == cid)
        merged = _count(conn, t.account_crm_ids, ids.client_id == cid, ids.is_survivor.is_(False))
        accounts = _count(conn, t.accounts, a.client_id == cid)
        with_id = _count(conn, t.accounts, a.client_id == cid, a.crm_id.is_not(None))
        w_dupes = conn.execute(
            select(a.domain, func.count())
            .where(a.client_id == cid, a.domain.is_not(None))
            .group_by(a.domain)
            .having(func.count() > 1)
        ).all()
        c = t.contacts.c
        contacts = _count(conn, t.contacts, c.client_id == cid)
        c_twice = conn.execute(
            select(c.crm_id, func.count())
            .where(c.client_id == cid, c.crm_id.is_not(None))
            .group_by(c.crm_id)
            .having(func.count() > 1)
        ).all()
        log_rows = _run_log(conn, cid, run_id)
    out["counts"]["source_to_warehouse"] = {
        "crm_ids_linked": source, "duplicates_merged": merged, "accounts": accounts,
        "accounts_with_crm_id": with_id, "accounts_without_crm_id": accounts - with_id, "contacts": contacts,
    }  # fmt: skip
    if w_dupes:
        problems.append(
            f"{len(w_dupes)} domains appear on more than one warehouse account, e.g. {w_dupes[0][0]}"
        )
    if c_twice:
        problems.append(
            f"{len(c_twice)} CRM contact ids are on more than one warehouse contact, e.g. {c_twice[0][0]}"
        )
    by_status: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    for r in log_rows:
        group = (r["error"] or "").split(":", 1)[0] if r["status"] == "skipped" else r["status"]
        by_status[r["object"]][group] += 1
        notable = r["status"] == "failed" or group in ("parked", "deleted_in_crm")
        if notable and len(examples[r["object"]]) < 5:
            examples[r["object"]].append(f"{r['record_key']}: {r['error']}")
    out["push"] = {obj: dict(cnt) for obj, cnt in by_status.items()}
    for obj, ex in examples.items():
        n = by_status[obj]["failed"]
        if n:
            warnings.append(f"{n} {obj} records failed to write this run (retried next run), e.g. {ex[0]}")
    out["push_examples"] = dict(examples)

    if not adapter.has_remote:
        out["counts"]["crm"] = "no CRM (CSV import files)"
        return _finish(out, problems, warnings)

    modified_field = MODIFIED.get(adapter.kind)
    for obj in ("account", "contact"):
        known = snapshot.count(engine, cid, obj)
        ident = identity_fields(cfg, obj)
        id_field = adapter.id_field(obj)
        written = [r for r in log_rows if r["object"] == obj and r["status"] == "success" and r["crm_id"]]
        creates = sorted({r["crm_id"] for r in written if r["operation"] == "create"})
        counts: dict = {"snapshot": known, "created_this_run": len(creates),
                        "updated_this_run": sum(1 for r in written if r["operation"] == "update")}  # fmt: skip
        try:
            counts["crm_now"] = adapter.count(obj)
        except CrmError as e:
            warnings.append(f"could not count {obj}s in the CRM: {e.message}")
        if "crm_now" in counts and counts["crm_now"] != known:
            warnings.append(
                f"{obj}s: the CRM holds {counts['crm_now']:,} records, Market Map knows {known:,} "
                "(records created or deleted outside Market Map since the extract)"
            )
        # read back: every create (up to a cap), a deterministic sample of updates
        updates = sorted({r["crm_id"] for r in written if r["operation"] == "update"})
        step = max(1, len(updates) // SAMPLE_UPDATES)
        check = set(creates[:MAX_CREATES_READ]) | set(updates[::step][:SAMPLE_UPDATES])
        fields = snapshot.read_fields(cfg, obj, id_field)
        if modified_field:
            fields = list(dict.fromkeys([*fields, modified_field]))
        wanted_fields = {f for r in written for f in (r["fields_changed"] or {})}
        fields = list(dict.fromkeys([*fields, *sorted(wanted_fields)]))
        found = adapter.read(obj, sorted(check), fields) if check else {}
        last = {}
        for r in written:
            if r["crm_id"] in check:
                last[r["crm_id"]] = r  # the run's last write of the record
        mismatched = 0
        for crm_id, r in sorted(last.items()):
            rec = found.get(crm_id)
            if rec is None:
                if r["operation"] == "create":
                    problems.append(
                        f"{obj} {r['record_key']} created by this push as {crm_id} is not in the CRM"
                    )
                    why = "created by this push but not in the CRM"
                else:
                    warnings.append(
                        f"{obj} {r['record_key']} ({crm_id}) was deleted in the CRM after the push"
                    )
                    why = "deleted in the CRM after the push"
                out["differences"].append({"object": obj, "record_key": r["record_key"], "crm_id": crm_id,
                                           "field": None, "explanation": why})  # fmt: skip
                continue
            for f, change in (r["fields_changed"] or {}).items():
                want = change.get("to") if isinstance(change, dict) else change
                have = rec.get(f)
                if same(want, have):
                    continue
                mod = _aware(parse_ts(rec.get(modified_field))) if modified_field else None
                at = _aware(r["at"])
                later = bool(mod and at and mod > at + dt.timedelta(seconds=1))
                why = ("changed in the CRM after the push (by a person or another integration)" if later
                       else "the CRM does not hold the value it accepted")  # fmt: skip
                mismatched += not later
                out["differences"].append({"object": obj, "record_key": r["record_key"], "crm_id": crm_id,
                                           "field": f, "pushed": want, "crm": have, "explanation": why})  # fmt: skip
        counts["read_back"] = len(check)
        counts["created_found_in_crm"] = sum(1 for i in creates[:MAX_CREATES_READ] if i in found)
        if mismatched:
            problems.append(f"{mismatched} {obj} values read back differ from what the push wrote "
                            f"(see differences), e.g. {out['differences'][-1]}")  # fmt: skip
        # live check: nothing else in the CRM shares the identity of what we created
        new_found = [found[i] for i in creates if i in found]
        if new_found and obj == "account":
            keys = set(domains_of(x.get(ident["website"]) for x in new_found)) - {None}
            live = adapter.find_by_domain(obj, sorted(keys), fields) if keys else []
            groups = _group(live, domains_of(x.get(ident["website"]) for x in live), id_field)
            made = {k: v for k, v in groups.items() if len(v) > 1}
            if made:
                problems.append(f"duplicate {obj}s by domain after the push: {dict(list(made.items())[:5])}")
            out["duplicates"]["created_by_domain"] = made
        elif new_found:
            for canonical, norm in (("email", normalise_email), ("linkedin_url", normalise_linkedin)):
                name = ident.get(canonical)
                if not name:
                    continue
                keys = {norm(x.get(name)) for x in new_found} - {None}
                live = adapter.find(obj, name, sorted(keys), fields) if keys else []
                groups = _group(live, [norm(x.get(name)) for x in live], id_field)
                made = {k: v for k, v in groups.items() if len(v) > 1}
                if made:
                    problems.append(
                        f"duplicate {obj}s by {canonical} after the push: {dict(list(made.items())[:5])}"
                    )
                out["duplicates"][f"created_by_{canonical}"] = made
        cols = ("domain",) if obj == "account" else ("email", "linkedin")
        for col in cols:
            d = _dupes(engine, cid, obj, col)
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
    out["differences"] = out["differences"][:200]
    out.update(ok=not problems, problems=problems, warnings=warnings)
    return out
