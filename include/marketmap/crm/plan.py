"""The push plan: what to create, update or skip, and why — the same in a dry run and a real one.

For each Market Map record the planner finds its CRM record (CRM id → external id →
normalised domain; contacts: CRM id → account + e-mail → account + LinkedIn URL), looks up
records the snapshot doesn't know yet (so a company is never created twice), applies the
per-field policies and the prevent-override checkbox, translates picklist values, and keeps
only fields whose value would change. A record whose last push failed counts as changed.
Company-name look-alikes are never merged: they go to the review queue and are skipped.

Records are planned 20,000 at a time in key order, each chunk with only its own sync rows and
the snapshot rows it may match (looked up in SQL by id, external id, domain, e-mail, LinkedIn
URL): memory follows the chunk and what is to be written, not the client's size. A record with
nothing to write is counted (``PushPlan.unchanged``), not kept as an item.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.sql.expression import Exists

from marketmap.config import ClientConfig, PushConfig, PushField
from marketmap.crm import snapshot
from marketmap.crm.base import IN_LIST_SIZE, CrmAdapter, chunks
from marketmap.crm.mapping import (
    EXCLUDED_PERSONA,
    OUT_TIER,
    RECORD_CHUNK,
    SCOPE,
    crm_format,
    crm_objects,
    effective_fields,
    identity_fields,
    record_chunks,
    resolve_source,
    source_type,
)
from marketmap.crm.values import (
    domains_of,
    is_blank,
    lookups,
    names_of,
    normalise_email,
    normalise_linkedin,
    outgoing,
    same,
    translate_by,
    truthy,
)
from marketmap.warehouse import among, upsert
from marketmap.warehouse import schema as t

FUZZY_THRESHOLD = 90.0
CLEAR = object()  # desired value "blank": clear the CRM field (an out-of-scope tier)
DELETED = "deleted_in_crm"  # skip reason: Market Map's CRM id of the record is gone from the CRM
PARKED = "parked"  # skip reason prefix: failed run after run with the same values
REVIEW_KIND = "crm_match"  # review_queue.kind of name look-alikes found while planning a push


@dataclass(slots=True)  # no __dict__ per item: a plan holds one item per record (a million)
class PlanItem:
    """One Market Map record's planned operation. ``changes``: crm_field -> (before, after)."""

    key: str
    operation: str  # create | update | skip
    crm_id: str | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)  # fields only sent on create
    reason: str | None = None  # why skipped, or "retry_failed"
    match: str | None = None  # how the CRM record was found
    external_id: str | None = None
    account_crm_id: str | None = None
    retry: bool = False

    def payload(self) -> dict[str, Any]:
        return {**self.identity, **{f: after for f, (_, after) in self.changes.items()}}


@dataclass
class PushPlan:
    client_id: str
    run_id: str
    object: str
    crm_object: str
    kind: str
    mode: str
    external_id_field: str | None
    canary_size: int
    max_error_rate: float
    items: list[PlanItem]  # every record but those with nothing to write (counted in ``unchanged``)
    unchanged: int = 0  # skipped as ``no_change``: at scale nearly every record of a monthly run
    review_pairs: int = 0
    lookups: dict[str, int] = field(default_factory=dict)
    deleted_in_crm: str = "flag"
    generated_at: dt.datetime = field(default_factory=snapshot.now)
    # incremental push: records whose inputs did not change since ``since`` (the last complete push
    # under the same config and code) were not read; None = every record was planned
    since: dt.datetime | None = None
    not_replanned: int = 0
    started_at: dt.datetime | None = None  # when planning began: the next plan's ``since``
    config_hash: str | None = None  # what the plan was made under (None: not a mapping's plan)

    @property
    def writes(self) -> list[PlanItem]:
        return [i for i in self.items if i.operation in ("create", "update")]

    def skip_reasons(self) -> Counter:
        out = Counter(i.reason for i in self.items if i.operation == "skip")
        if self.unchanged:
            out["no_change"] += self.unchanged
        return out

    def summary(self) -> dict:
        ops = Counter(i.operation for i in self.items)
        by_field: Counter = Counter()
        for i in self.items:
            if i.operation == "update":
                by_field.update(i.changes.keys())
        return {
            "object": self.object,
            "crm": self.kind,
            "mode": self.mode,
            "records": len(self.items) + self.unchanged,  # planned (not_replanned: not read)
            "creates": ops["create"],
            "updates": ops["update"],
            "updates_by_field": dict(sorted(by_field.items())),
            "skips": ops["skip"] + self.unchanged,
            "skips_by_reason": dict(sorted(self.skip_reasons().items())),
            "retries_of_failed": sum(1 for i in self.items if i.retry),
            "parked": sum(1 for i in self.items if (i.reason or "").startswith(PARKED)),
            "review_pairs": self.review_pairs,
            "lookups": dict(self.lookups),
            "not_replanned": self.not_replanned,
            "replanned_since": self.since.isoformat() if self.since else None,
        }


def load_sync(
    engine: Engine,
    client_id: str,
    obj: str,
    columns: tuple[str, ...],
    keys: Iterable[str],
    span: tuple[str, str] | None = None,
) -> dict[str, dict]:
    """record_key -> ``columns`` of the crm_sync rows of ``keys`` (one object), read by IN lists
    or, with ``span`` (the keys' first and last in the database's order), by one range scan."""
    c = t.crm_sync.c
    query = select(c.record_key, *[c[x] for x in columns if x != "record_key"]).where(
        c.client_id == client_id, c.object == obj
    )
    wanted = set(keys)
    with engine.connect() as conn:
        if span:
            rows = conn.execute(query.where(c.record_key.between(*span))).mappings().all()
            return {r["record_key"]: dict(r) for r in rows if r["record_key"] in wanted}
        out: dict[str, dict] = {}
        for part in chunks(sorted(wanted), IN_LIST_SIZE):
            rows = conn.execute(query.where(among(conn, c.record_key, part))).mappings().all()
            out.update((r["record_key"], dict(r)) for r in rows)
        return out


def _parked(engine: Engine, client_id: str, obj: str, sync: dict[str, dict], after: int) -> dict[str, tuple]:
    """record_key -> (fields_changed, error) of the last attempt, for records whose last
    ``after`` write attempts (one per run) all failed."""
    failed = sorted(k for k, s in sync.items() if s.get("failed"))
    if not failed:
        return {}
    pl = t.push_log.c
    runs: dict[str, list[dict]] = defaultdict(list)
    with engine.connect() as conn:
        for part in range(0, len(failed), 5000):
            rows = conn.execute(
                select(pl.record_key, pl.run_id, pl.status, pl.error, pl.fields_changed, pl.at)
                .where(pl.client_id == client_id, pl.object == obj, pl.record_key.in_(failed[part : part + 5000]),
                       pl.status.in_(("success", "failed")))
                .order_by(pl.record_key, pl.entry_id.desc())
            ).mappings()  # fmt: skip
            for r in rows:
                seen = runs[r["record_key"]]
                if len(seen) < after and all(x["run_id"] != r["run_id"] for x in seen):
                    seen.append(dict(r))
    out = {}
    for key, seen in runs.items():
        if len(seen) >= after and all(x["status"] == "failed" for x in seen):
            last = seen[0]
            out[key] = (last["fields_changed"], (last["error"] or "failed")[:300])
    return out


def _review_decisions(engine: Engine, client_id: str) -> dict[tuple[str, str], str]:
    rq = t.review_queue.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(rq.left_key, rq.right_key, rq.status).where(
                rq.client_id == client_id, rq.kind == REVIEW_KIND
            )
        )
        return {(r.left_key, r.right_key): r.status for r in rows}


def _account_ids(engine: Engine, client_id: str, keys: Iterable[str]) -> dict[str, list[str]]:
    """account_key -> every CRM id folded into it (survivor first), for ``keys``."""
    c = t.account_crm_ids.c
    out: dict[str, list[str]] = defaultdict(list)
    query = select(c.account_key, c.crm_id, c.is_survivor).where(c.client_id == client_id)
    with engine.connect() as conn:
        for part in chunks(sorted(set(keys)), IN_LIST_SIZE):
            rows = conn.execute(
                query.where(among(conn, c.account_key, part)).order_by(
                    c.account_key, c.is_survivor.desc(), c.crm_id
                )
            )
            for r in rows:
                out[r.account_key].append(r.crm_id)
    return out


# How far before the last push's start "changed since" reaches: workers' and the database's
# clocks disagree a little, and a record planned twice costs only its diff.
PUSH_CLOCK_MARGIN = dt.timedelta(minutes=5)


def config_hash(cfg: ClientConfig) -> str:
    """A hash of everything a plan is made under besides the data: the client's whole config (push
    mappings, picklists, score versions, CRM settings …) and the planner's code."""
    import hashlib
    from pathlib import Path

    from marketmap.crm import mapping, values

    h = hashlib.sha256(cfg.model_dump_json().encode())
    for module in (mapping, values, snapshot):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def _push_since(engine: Engine, client_id: str, obj: str, config: str) -> dt.datetime | None:
    """The start of the last complete push of ``obj`` made under ``config``, else None."""
    ps = t.push_state.c
    with engine.connect() as conn:
        row = conn.execute(
            select(ps.started_at, ps.config_hash).where(ps.client_id == client_id, ps.object == obj)
        ).first()
    if row is None or row.config_hash != config:
        return None
    started = row.started_at
    return started if started.tzinfo else started.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def save_push_state(engine: Engine, plan: PushPlan) -> None:
    """After a complete push (not halted, not only the canary): the next plan reads only records
    whose inputs changed since this one started."""
    if plan.config_hash is None or plan.started_at is None:
        return
    with engine.begin() as conn:
        upsert(conn, t.push_state, [{"client_id": plan.client_id, "object": plan.object, "config_hash": plan.config_hash,
                                     "started_at": plan.started_at, "run_id": plan.run_id}])  # fmt: skip


class _Planner:
    def __init__(
        self,
        cfg: ClientConfig,
        engine: Engine,
        run_id: str,
        adapter: CrmAdapter,
        push: PushConfig,
        refresh: bool,
        chunk: int = RECORD_CHUNK,
    ):
        self.cfg, self.engine, self.run_id, self.adapter, self.push = cfg, engine, run_id, adapter, push
        self.refresh = refresh
        self.chunk = chunk
        self.started = snapshot.now()
        self.planned = 0
        self.obj = push.object
        self.cid = cfg.client_id
        self.fields: list[PushField] = effective_fields(cfg, push)
        # each field's picklist and value normalisation, keyed once (not per record)
        self.value_tables = {f.crm_field: lookups(f.picklist, push.value_normalisation.get(f.crm_field))
                        for f in self.fields}  # fmt: skip
        self.ident = identity_fields(cfg, self.obj)
        self.remote = adapter.has_remote
        self.id_field = adapter.id_field(self.obj)
        self.read_fields = snapshot.read_fields(cfg, self.obj, self.id_field)
        self.lookups: Counter = Counter()
        self.review_rows: list[dict] = []
        self.unchanged = 0  # records with nothing to write: counted, never itemised
        # Per chunk of records (_load_chunk): their crm_sync rows, the failures that park them and
        # the snapshot rows they may match. Memory follows the chunk, not the client.
        self.sync: dict[str, dict] = {}
        self.parked_keys: dict[str, tuple] = {}
        self.snap: dict[str, dict] = {}
        self.decisions: dict[tuple[str, str], str] | None = None  # review decisions on look-alikes
        self.every: dict[str, list[tuple[str, str, str]]] = {}  # look-alike candidates (_name_blocks)
        self.no_domain: dict[str, list[tuple[str, str, str]]] = {}
        self.config_hash = config_hash(cfg)
        # a value computed from the date (years of experience) changes with no write: plan everything
        dated = any(
            getattr(resolve_source(cfg, self.obj, f.source), "kind", None) == "derived" for f in self.fields
        )
        self.since = None if refresh or dated else _push_since(engine, self.cid, self.obj, self.config_hash)
        # the keys of records that can plan differently since then (None: all)
        self.keys = None if self.since is None else self._changed_keys()

    def _load_chunk(self, records: list[dict], contiguous: bool = True) -> None:
        """The chunk's sync rows (one key-range scan when ``contiguous``: the records are a page of
        the record table in key order) and the failures that park them; an empty snapshot."""
        keys = [r["key"] for r in records]
        span = (keys[0], keys[-1]) if contiguous and keys else None
        self.sync = load_sync(self.engine, self.cid, self.obj, ("crm_id", "status", "failed"), keys, span)
        self.parked_keys = _parked(self.engine, self.cid, self.obj, self.sync, self.push.park_after_failures)
        self.snap = {}

    def _load_pushed(self, records: list[dict]) -> None:
        """What the previous import files held for these records (CSV: a create already made)."""
        keys = [r["key"] for r in records if r["key"] in self.sync]
        if keys and not self.remote:
            for k, row in load_sync(self.engine, self.cid, self.obj, ("pushed",), keys).items():
                self.sync[k]["pushed"] = row["pushed"]

    def _load_snap(self, column: str, values: Iterable[str]) -> None:
        """Add the snapshot rows whose ``column`` holds one of ``values`` to the chunk's snapshot."""
        known = self.snap if column == "crm_id" else ()
        values = {v for v in values if v and v not in known}
        if values:
            self.snap.update(
                snapshot.load(
                    self.engine, self.cid, self.obj, snapshot.PLAN_COLUMNS, where=column, values=values
                )
            )

    def _keep(self, item: PlanItem, out: list[PlanItem]) -> None:
        if item.reason == "no_change":
            self.unchanged += 1
        else:
            out.append(item)

    # ---- CRM look-ups, recorded in the snapshot
    def _remember(self, records: list[dict], source: str = "lookup") -> list[dict]:
        rows = snapshot.snapshot_rows(
            self.cfg, self.obj, records, id_field=self.id_field, run_id=self.run_id, source=source
        )
        if rows:
            with self.engine.begin() as conn:
                snapshot.save(conn, rows)
            for row in rows:
                self.snap[row["crm_id"]] = row
        return rows

    def _read_ids(self, ids: set[str]) -> None:
        ids = {i for i in ids if i}
        if not ids or not self.remote:
            return
        found = self.adapter.read(self.obj, sorted(ids), self.read_fields)
        self.lookups["read_by_id"] += len(ids)
        self._remember(list(found.values()))

    def _find(self, canonical: str, values: set[str]) -> list[dict]:
        name = self.ident.get(canonical)
        if not values or not name or not self.remote:
            return []
        self.lookups[f"find_by_{canonical}"] += len(values)
        if canonical == "website":
            recs = self.adapter.find_by_domain(self.obj, sorted(values), self.read_fields)
        else:
            recs = self.adapter.find(self.obj, name, sorted(values), self.read_fields)
        return self._remember(recs)

    def _find_external(self, keys: set[str]) -> None:
        f = self.push.external_id_field
        if f and keys and self.remote:
            self.lookups["find_by_external_id"] += len(keys)
            self._remember(self.adapter.find(self.obj, f, sorted(keys), self.read_fields))

    def dead_id(self, rec: dict) -> str | None:
        """A CRM id Market Map had for this record that the CRM no longer has (deleted there)."""
        if not self.remote:
            return None
        known = [rec.get("crm_id"), (self.sync.get(rec["key"]) or {}).get("crm_id")]
        return next((i for i in known if i and i not in self.snap), None)

    def exists(self, crm_id: str | None) -> bool:
        # Without a remote CRM (CSV), an id from the ingested export is the CRM's own id.
        return bool(crm_id) and (crm_id in self.snap or not self.remote)

    # ---- values and policies
    def desired(self, rec: dict) -> dict[str, Any]:
        """crm_field -> value to hold; :data:`CLEAR` where the field must be blank.

        An ``OUT`` tier / ``EXCLUDED`` persona is sent as the picklist's entry for it when
        ``out_of_scope: value`` (the literal value without a picklist) and cleared otherwise;
        a missing score is never sent and never clears anything.
        """
        out: dict[str, Any] = {}
        for f in self.fields:
            raw = rec.get(f"src:{f.source}")
            special = source_type(f.source) == "picklist" and raw in (OUT_TIER, EXCLUDED_PERSONA)
            if special and self.push.out_of_scope != "value":
                out[f.crm_field] = CLEAR
                continue
            v = translate_by(raw, self.value_tables[f.crm_field])
            v = outgoing(v)
            if v is not None:
                out[f.crm_field] = v
        return out

    def current(self, crm_id: str | None) -> dict[str, Any]:
        row = self.snap.get(crm_id or "")
        return dict(row.get("field_values") or {}) if row else {}

    def prevented(self, rec: dict, current: dict) -> bool:
        pf = self.push.prevent_override_field
        if not pf:
            return False
        if pf in current:
            return truthy(current[pf])
        return truthy(rec.get("prevent_override"))

    def changes(self, desired: dict, current: dict, retry: bool) -> dict[str, tuple[Any, Any]]:
        out = {}
        for f in self.fields:
            if f.crm_field not in desired or f.policy == "never":
                continue
            after, before = desired[f.crm_field], current.get(f.crm_field)
            if after is CLEAR:
                if f.policy == "overwrite" and (not is_blank(before) or retry):
                    out[f.crm_field] = (before, None)
                continue
            if f.policy == "if_blank" and not is_blank(before):
                continue
            if retry or not same(before, after):
                out[f.crm_field] = (before, after)
        return out

    def parked(self, key: str, changes: dict[str, tuple[Any, Any]]) -> str | None:
        """The reason a record is parked: it failed the last ``park_after_failures`` runs in a
        row trying to write exactly these values (new values un-park it)."""
        last = self.parked_keys.get(key)
        if not last:
            return None
        logged, error = last
        logged = logged or {}
        for f, (_, after) in changes.items():
            was = logged.get(f)
            if not isinstance(was, dict) or not same(was.get("to"), after):
                return None
        return error

    def out_of_scope_skip(self, rec: dict) -> bool:
        return bool(rec.get(SCOPE)) and self.push.out_of_scope == "skip"

    def update_item(self, rec: dict, crm_id: str, match: str) -> PlanItem:
        key = rec["key"]
        if self.push.mode == "create_only":
            return PlanItem(key, "skip", crm_id, reason="exists_in_crm", match=match)
        current = self.current(crm_id)
        if self.prevented(rec, current):
            return PlanItem(key, "skip", crm_id, reason="prevent_override", match=match)
        if self.out_of_scope_skip(rec):
            return PlanItem(key, "skip", crm_id, reason="out_of_scope", match=match)
        retry = bool(self.sync.get(key, {}).get("failed"))
        changes = self.changes(self.desired(rec), current, retry)
        if not changes:
            return PlanItem(key, "skip", crm_id, reason="no_change", match=match)
        why = self.parked(key, changes) if retry else None
        if why:
            return PlanItem(key, "skip", crm_id, reason=f"{PARKED}: {why}", match=match)
        return PlanItem(
            key, "update", crm_id, changes, reason="retry_failed" if retry else None, match=match, retry=retry
        )

    def create_item(self, rec: dict, identity: dict[str, Any], account_crm_id: str | None = None) -> PlanItem:
        key = rec["key"]
        if self.push.mode == "update_only":
            return PlanItem(key, "skip", reason="not_in_crm")
        if self.out_of_scope_skip(rec):
            return PlanItem(key, "skip", reason="out_of_scope")
        dead = self.dead_id(rec)
        if dead and self.push.deleted_in_crm != "recreate":
            return PlanItem(key, "skip", dead, reason=DELETED)
        desired = {f: v for f, v in self.desired(rec).items() if v is not CLEAR}
        if not desired:  # not scored (yet): never create an empty shell in the CRM
            return PlanItem(key, "skip", reason="no_values")
        ext = key if self.push.external_id_field else None
        changes = {f: (None, v) for f, v in desired.items()}
        identity = {k: v for k, v in identity.items() if not is_blank(v) and k not in changes}
        sync = self.sync.get(key) or {}
        if not self.remote and sync.get("status") == "success" and not sync.get("failed"):
            # CSV: the record is in an earlier import file with these values already
            pushed = sync.get("pushed") or {}
            if all(same(pushed.get(k), v) for k, v in {**identity, **desired}.items()):
                return PlanItem(key, "skip", reason="no_change", match="previous_export")
        retry = bool(sync.get("failed"))
        why = self.parked(key, changes) if retry else None
        if why:
            return PlanItem(key, "skip", reason=f"{PARKED}: {why}")
        return PlanItem(
            key, "create", None, changes, identity, reason="retry_failed" if retry else None,
            external_id=ext, account_crm_id=account_crm_id, retry=retry,
        )  # fmt: skip

    # ---- which records to plan
    def _records(self, obj: str):
        self.planned = 0
        for records in record_chunks(self.cfg, self.engine, obj, self.fields, self.chunk, keys=self.keys):
            self.planned += len(records)
            yield records

    def _changed_keys(self) -> set[str]:
        """Keys of the records whose plan can differ from the last complete push's: their own row,
        their score (or valuation) row, or their CRM record was written since (the CRM's side only
        by an extract or a look-up, not by Market Map's own push), or they are not settled (never
        written, or their last write failed); with a remote CRM also those whose CRM id the
        snapshot lost (deleted in the CRM). Everything else would plan as "no change"."""
        from marketmap.versions import persona_version, rubric_version

        cid, obj, since = self.cid, self.obj, self.since - PUSH_CLOCK_MARGIN
        if obj == "account":
            table, key = t.accounts, t.accounts.c.account_key
            scored = self._rescored_or_revalued(rubric_version(self.cfg), since)
        else:
            table, key, sc = t.contacts, t.contacts.c.contact_key, t.contact_scores.c
            scored = select(sc.contact_key).where(
                sc.client_id == cid, sc.rubric_version == persona_version(self.cfg), sc.scored_at >= since
            )
        c, y, r = table.c, t.crm_sync.c, t.crm_records.c
        mine = c.client_id == cid
        sync_ids = (y.client_id == cid) & (y.object == obj)
        # NOT EXISTS, never NOT IN (subquery): PostgreSQL runs the latter once per row when the
        # subquery's result outgrows work_mem (a million keys: hours)
        settled = exists().where(sync_ids, y.record_key == key, y.status == "success", y.failed.is_(False))
        moved = select(r.crm_id).where(
            r.client_id == cid, r.object == obj, r.updated_at >= since, r.source != "push"
        )

        def known(crm_id) -> Exists:
            return exists().where(r.client_id == cid, r.object == obj, r.crm_id == crm_id)

        queries = [
            select(key).where(mine, c.updated_at >= since),
            scored,
            select(key).where(mine, ~settled),
            select(key).where(mine, c.crm_id.in_(moved)),
            select(y.record_key).where(sync_ids, y.crm_id.in_(moved)),
        ]
        if self.remote:
            queries += [
                select(key).where(mine, c.crm_id.is_not(None), ~known(c.crm_id)),
                select(y.record_key).where(sync_ids, y.crm_id.is_not(None), ~known(y.crm_id)),
            ]
        with self.engine.connect() as conn:
            return {k for q in queries for k in conn.execute(q).scalars()}

    def _rescored_or_revalued(self, version: str, since):
        """Keys of the accounts whose score was rewritten since ``since``, or whose valuation (or
        white space) was and can change the plan. A field filled from them with policy ``if_blank``
        is written only where the CRM's value is blank, so a revaluation matters only where the
        record's snapshot (the row of the account's own CRM id, which the planner matches first)
        leaves one of those fields blank; with ``overwrite`` every revaluation matters, and with
        none of those fields none does. (Valuations of like accounts move every month: planning
        them all read ~20% of a TAM.)"""
        sc = t.account_scores.c
        rescored, revalued = sc.scored_at >= since, sc.valued_at >= since
        query = select(sc.account_key).where(sc.client_id == self.cid, sc.rubric_version == version)
        fields = [f for f in self.fields if f.source.split(".", 1)[-1] in ("valuation", "white_space")
                  and f.policy != "never"]  # fmt: skip
        if any(f.policy != "if_blank" for f in fields):
            return query.where(rescored | revalued)
        if not fields:
            return query.where(rescored)
        a, r = t.accounts.c, t.crm_records.c
        # outer joins on both primary keys (at most one row each), not a NOT EXISTS inside the OR,
        # which PostgreSQL ran once per revalued account (4.5 s at 1M; 1.3 s this way). A missing
        # account, CRM id or snapshot row leaves every field unfilled: the revaluation matters.
        filled = [func.coalesce(func.trim(r.field_values[f.crm_field].as_string()), "") != "" for f in fields]
        return (
            query.outerjoin(t.accounts, (a.client_id == sc.client_id) & (a.account_key == sc.account_key))
            .outerjoin(t.crm_records, (r.client_id == a.client_id) & (r.object == "account") & (r.crm_id == a.crm_id))
            .where(rescored | (revalued & ~and_(*filled)))
        )

    # ---- accounts
    def plan_accounts(self) -> list[PlanItem]:
        """Chunk by chunk in key order: match by CRM id, external id, then domain; records still
        unmatched wait until every chunk's look-ups are in the snapshot, then are checked for
        name look-alikes (against every CRM record known by then) and created."""
        items: list[PlanItem] = []
        new: list[dict] = []
        for records in self._records("account"):
            items += self._match_accounts(records, new)
        self._name_blocks(new)  # after every chunk's look-ups: they are CRM records too
        for records in chunks(new, self.chunk):
            items += self._new_accounts(records)
        return sorted(items, key=lambda i: i.key)  # in key order, as the records were read

    def _match_accounts(self, records: list[dict], new: list[dict]) -> list[PlanItem]:
        """Items of the chunk's records found in the CRM; the others are appended to ``new``."""
        self._load_chunk(records, contiguous=self.keys is None)

        def ids(r: dict) -> list[str]:
            return [x for x in [r["crm_id"], (self.sync.get(r["key"]) or {}).get("crm_id")] if x]

        wanted = {i for r in records for i in ids(r)}
        self._load_snap("crm_id", wanted)
        self._read_ids(wanted if self.refresh else wanted - set(self.snap))

        matched: dict[str, tuple[str, str]] = {}
        for r in records:
            hit = next((i for i in ids(r) if self.exists(i)), None)
            if hit:
                matched[r["key"]] = (hit, "crm_id")

        if self.push.external_id_field:
            keys = {r["key"] for r in records if r["key"] not in matched}
            self._find_external(keys)
            self._load_snap("external_id", keys)
            by_ext = {
                row["external_id"]: cid for cid, row in sorted(self.snap.items()) if row.get("external_id")
            }
            for r in records:
                if r["key"] not in matched and r["key"] in by_ext:
                    matched[r["key"]] = (by_ext[r["key"]], "external_id")

        # only unmatched records are matched by domain, checked for look-alikes or created
        unmatched = [r for r in records if r["key"] not in matched]
        guessed = domains_of(r["website"] if not r["domain"] else None for r in unmatched)
        for r, g in zip(unmatched, guessed, strict=True):
            r["domain"] = r["domain"] or g  # the domain the record is matched and created by
        domains = {r["domain"] for r in unmatched if r["domain"]}
        self._load_snap("domain", domains)
        known = {row["domain"] for row in self.snap.values() if row.get("domain")}
        self._find("website", domains - known)
        by_domain: dict[str, list[str]] = defaultdict(list)
        for cid_, row in sorted(self.snap.items()):
            if row.get("domain") in domains:
                by_domain[row["domain"]].append(cid_)
        # the CRM ids folded into an account matter only to the few matched by domain
        folded = _account_ids(
            self.engine, self.cid, [r["key"] for r in unmatched if r["domain"] in by_domain]
        )
        for r in unmatched:
            if r["domain"] in by_domain:
                options = by_domain[r["domain"]]
                # several CRM records share the domain: prefer one already folded into this account
                pick = next((i for i in folded.get(r["key"], []) if i in options), options[0])
                matched[r["key"]] = (pick, "domain")

        items: list[PlanItem] = []
        for r in records:
            if r["key"] in matched:
                self._keep(self.update_item(r, *matched[r["key"]]), items)
            else:
                new.append(r)
        return items

    def _new_accounts(self, records: list[dict]) -> list[PlanItem]:
        """Items of records not found in the CRM: a look-alike's review decision, or a create."""
        self._load_chunk(records, contiguous=False)
        self._load_pushed(records)
        self._load_snap(
            "crm_id",
            {i for r in records for i in (r["crm_id"], (self.sync.get(r["key"]) or {}).get("crm_id"))},
        )
        # a net-new account named like ANY CRM record (linked or not) is a duplicate risk
        fuzzy = self._fuzzy_candidates(records)
        self._load_snap("crm_id", {crm_id for hits in fuzzy.values() for crm_id, _, _ in hits})
        if self.decisions is None:
            self.decisions = _review_decisions(self.engine, self.cid)
        items: list[PlanItem] = []
        name_f, site_f = self.ident.get("name"), self.ident.get("website")
        hubspot = crm_format(self.cfg) == "hubspot"
        for r in records:
            key = r["key"]
            pending = None
            for crm_id, name, score in fuzzy.get(key, []):
                status = self.decisions.get((key, crm_id), "open")
                if status == "same":
                    pending = ("same", crm_id)
                    break
                if status != "different":
                    pending = ("open", crm_id)
                    self.review_rows.append(
                        {"client_id": self.cid, "run_id": self.run_id, "kind": REVIEW_KIND, "left_key": key,
                         "right_key": crm_id, "left_name": r["name"], "right_name": name, "score": score}
                    )  # fmt: skip
            if pending and pending[0] == "same":
                item = self.update_item(r, pending[1], "review")
            elif pending:
                item = PlanItem(key, "skip", pending[1], reason="pending_review", match="fuzzy_name")
            elif is_blank(r["name"]):
                item = PlanItem(key, "skip", reason="missing_name")
            else:
                website = r["domain"] if hubspot else (r["website"] or r["domain"])
                item = self.create_item(r, {name_f: r["name"], site_f: website})
            self._keep(item, items)
        return items

    def _name_blocks(self, records: list[dict]) -> None:
        """Every CRM record the snapshot knows whose normalised name starts with the first word of
        one of ``records``' names, by that word: all of them, and those without a domain."""
        words = {n.split()[0] for n in names_of(r["name"] for r in records) if n}
        self.every: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.no_domain: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        if not words:
            return
        c = t.crm_records.c
        query = select(c.crm_id, c.name, c.domain).where(
            c.client_id == self.cid, c.object == self.obj, c.name.is_not(None)
        )
        with self.engine.connect().execution_options(stream_results=True, yield_per=20_000) as conn:
            for part in conn.execute(query.order_by(c.crm_id)).partitions():
                for (crm_id, name, domain), norm in zip(part, names_of(r.name for r in part), strict=True):
                    first = norm.split()[0] if norm else None
                    if first in words:
                        self.every[first].append((norm, crm_id, name))
                        if not domain:
                            self.no_domain[first].append((norm, crm_id, name))

    def _fuzzy_candidates(self, records: list[dict]) -> dict[str, list[tuple[str, str, float]]]:
        """Create candidates whose name looks like a CRM record's name (blocked by first word).

        Only where a domain is missing on one side (SPEC §4: no domain = higher duplicate
        risk): two records with different domains are different companies, however alike
        their names ("Acme Ltd" acme.co.uk vs "Acme Inc" acme.com stay apart).
        """
        out: dict[str, list[tuple[str, str, float]]] = {}
        if not self.every:
            return out
        for r, norm in zip(records, names_of(r["name"] for r in records), strict=True):
            blocks = self.no_domain if r["domain"] else self.every
            block = blocks.get(norm.split()[0]) if norm else None
            if not block:
                continue
            hits = process.extract(
                norm,
                [b[0] for b in block],
                scorer=fuzz.token_sort_ratio,
                score_cutoff=FUZZY_THRESHOLD,
                limit=3,
            )
            if hits:
                out[r["key"]] = [(block[i][1], block[i][2], float(s)) for _, s, i in hits]
        return out

    # ---- contacts
    def plan_contacts(self) -> list[PlanItem]:
        items: list[PlanItem] = []
        for records in self._records("contact"):
            items += self._plan_contact_chunk(records)
        return items

    def _account_candidates(self, account_keys: list[str]) -> dict[str, list[str]]:
        """account_key -> the CRM ids a new contact may hang off, best first: the one Market Map
        last wrote successfully (a re-created account replaces a dead id), then the warehouse's."""
        a = t.accounts.c
        with self.engine.connect() as conn:
            acc_rows = [
                row
                for part in chunks(account_keys, IN_LIST_SIZE)
                for row in conn.execute(
                    select(a.account_key, a.crm_id).where(
                        a.client_id == self.cid, among(conn, a.account_key, part)
                    )
                )
            ]
        # not what was pushed (a dict per account, most of a sync row): only the id and the status
        account_sync = load_sync(self.engine, self.cid, "account", ("crm_id", "status"), keys=account_keys)
        candidates: dict[str, list[str]] = {}
        for k, crm_id in acc_rows:
            s = account_sync.get(k) or {}
            ok_id = s.get("crm_id") if s.get("status") == "success" else None
            candidates[k] = [x for x in dict.fromkeys([ok_id, crm_id, s.get("crm_id")]) if x]
        return candidates

    def _plan_contact_chunk(self, records: list[dict]) -> list[PlanItem]:
        self._load_chunk(records, contiguous=self.keys is None)
        account_keys = sorted({r["account_key"] for r in records if r["account_key"]})
        folded = _account_ids(self.engine, self.cid, account_keys)
        candidates = self._account_candidates(account_keys)
        alive = self._alive_accounts({i for v in candidates.values() for i in v})
        primary: dict[str, str | None] = {
            k: next((i for i in v if alive is None or i in alive), None) for k, v in candidates.items()
        }
        del candidates

        def account_ids(rec: dict) -> set[str]:
            ids = set(folded.get(rec["account_key"] or "", []))
            ids |= {x for x in (primary.get(rec["account_key"] or ""), rec["account_crm_id"]) if x}
            return ids

        ids = {
            r["key"]: [x for x in [r["crm_id"], (self.sync.get(r["key"]) or {}).get("crm_id")] if x]
            for r in records
        }
        wanted = {i for v in ids.values() for i in v}
        self._load_snap("crm_id", wanted)
        self._read_ids(wanted if self.refresh else wanted - set(self.snap))
        matched: dict[str, tuple[str, str]] = {}
        for r in records:
            hit = next((i for i in ids[r["key"]] if self.exists(i)), None)
            if hit:
                matched[r["key"]] = (hit, "crm_id")

        # waterfall step 1: account + e-mail; step 2: account + LinkedIn URL
        for canonical, norm, col in (
            ("email", normalise_email, "email"),
            ("linkedin_url", normalise_linkedin, "linkedin"),
        ):
            todo = [r for r in records if r["key"] not in matched and norm(r[canonical])]
            self._load_snap(col, {norm(r[canonical]) for r in todo})
            known = {row[col] for row in self.snap.values() if row.get(col)}
            values = {norm(r[canonical]) for r in todo} - known
            if canonical == "linkedin_url":
                # CRMs keep whatever URL form a rep pasted: look for the raw values too
                values |= {str(r[canonical]).strip() for r in todo if r[canonical]}
            self._find(canonical, values)
            index: dict[tuple[str, str], str] = {}
            for cid_, row in sorted(self.snap.items(), reverse=True):
                if row.get(col) and row.get("account_crm_id"):
                    index[(row["account_crm_id"], row[col])] = cid_
            for r in todo:
                for acc in sorted(account_ids(r)):
                    hit = index.get((acc, norm(r[canonical])))
                    if hit:
                        matched[r["key"]] = (hit, canonical.split("_")[0])
                        break

        self._load_pushed([r for r in records if r["key"] not in matched])
        items: list[PlanItem] = []
        for r in records:
            if r["key"] in matched:
                self._keep(self.update_item(r, *matched[r["key"]]), items)
                continue
            acc = primary.get(r["account_key"] or "")
            if not acc and r["account_crm_id"] and (alive is None or r["account_crm_id"] in alive):
                acc = r["account_crm_id"]
            if not acc and r["account_crm_id"] and alive is not None:
                acc = self._alive_accounts({r["account_crm_id"]}) and r["account_crm_id"]
            if not acc:
                items.append(PlanItem(r["key"], "skip", reason="account_not_in_crm"))
                continue
            if is_blank(r["email"]) and is_blank(r["last_name"]):
                items.append(PlanItem(r["key"], "skip", reason="missing_identity"))
                continue
            identity = {
                self.ident.get("first_name"): r["first_name"],
                self.ident.get("last_name"): r["last_name"],
                self.ident.get("email"): normalise_email(r["email"]),
                self.ident.get("title"): r["title"],
                self.ident.get("linkedin_url"): r["linkedin_url"],
            }
            if crm_format(self.cfg) == "salesforce":
                identity[self.ident.get("account_crm_id", "AccountId")] = acc
            identity.pop(None, None)
            self._keep(self.create_item(r, identity, account_crm_id=acc), items)
        return items

    def _alive_accounts(self, ids: set[str]) -> set[str] | None:
        """Which of these account ids the CRM has (snapshot, then a read); None without a remote CRM."""
        if not self.remote:
            return None
        alive = set(snapshot.load(self.engine, self.cid, "account", ("crm_id",), where="crm_id", values=ids))
        unknown = sorted(ids - alive)
        if unknown:
            fields = snapshot.read_fields(self.cfg, "account", self.adapter.id_field("account"))
            self.lookups["read_accounts_by_id"] += len(unknown)
            alive |= set(self.adapter.read("account", unknown, fields))
        return alive

    def _count(self) -> int:
        table = t.accounts if self.obj == "account" else t.contacts
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(table).where(table.c.client_id == self.cid)
            ).scalar_one()

    def run(self) -> PushPlan:
        items = self.plan_accounts() if self.obj == "account" else self.plan_contacts()
        if self.review_rows:
            with self.engine.begin() as conn:
                upsert(conn, t.review_queue, self.review_rows)  # reviewed pairs keep their status
        return PushPlan(
            client_id=self.cid,
            run_id=self.run_id,
            object=self.obj,
            crm_object=crm_objects(self.cfg)[self.obj],
            kind=self.adapter.kind,
            mode=self.push.mode,
            external_id_field=self.push.external_id_field,
            canary_size=self.push.canary_size,
            max_error_rate=self.push.max_error_rate,
            items=items,
            unchanged=self.unchanged,
            since=self.since,
            not_replanned=self._count() - self.planned if self.since else 0,
            started_at=self.started,
            config_hash=self.config_hash,
            review_pairs=len(self.review_rows),
            lookups=dict(self.lookups),
            deleted_in_crm=self.push.deleted_in_crm,
        )


def plan_push(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    adapter: CrmAdapter,
    push: PushConfig,
    *,
    refresh: bool = False,
    chunk: int = RECORD_CHUNK,
) -> PushPlan:
    """Compute the push plan for one object. Reads the CRM (look-ups), never writes to it.

    Current CRM values come from the snapshot (last extract + Market Map's own writes);
    records it lacks are read from the CRM, and ``refresh=True`` re-reads every matched
    record first. A dry run and a real run call exactly this function, so the preview is
    the plan. Records are planned ``chunk`` at a time; the plan is the same whatever the size.
    """
    if push.object not in ("account", "contact"):
        raise ValueError(f"push object must be account or contact, got {push.object!r}")
    return _Planner(cfg, engine, run_id, adapter, push, refresh, chunk).run()
