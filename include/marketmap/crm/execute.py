"""Carry out a push plan: canary first, then the rest in batches, logging every record.

Safety rules, in order of importance:

- No duplicate is ever created. A create whose outcome is unknown (timeout, 5xx,
  garbled response) is not re-sent blindly: the records are looked up first and only
  the ones the CRM doesn't have are sent again. External-id upserts are idempotent.
- A rejected batch is split in halves until the bad records are isolated; the good
  ones still go through.
- Each batch's results are committed (push_log, crm_sync, crm_records) in one
  transaction right after the call, so a task killed mid-push loses at most the batch
  in flight — and re-running finds those records by look-up, not by creating again.
- The canary sample must succeed before the full push starts; an error rate above
  ``max_error_rate`` halts the push; a :class:`Fatal` error (auth, API budget) stops it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, select, update

from marketmap.config import ClientConfig
from marketmap.crm import snapshot
from marketmap.crm.base import (
    IN_LIST_SIZE,
    BatchRejected,
    CrmAdapter,
    CrmError,
    Fatal,
    Outcome,
    RateLimited,
    Transient,
    WriteRecord,
    call_with_retry,
    chunks,
)
from marketmap.crm.mapping import identity_fields
from marketmap.crm.plan import PlanItem, PushPlan, save_push_state
from marketmap.crm.values import domains_of, is_blank, normalise_email, normalise_linkedin
from marketmap.redact import redact
from marketmap.warehouse import among, insert_rows, upsert
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import analyze, analyze_changed


@dataclass
class PushResult:
    client_id: str
    run_id: str
    object: str
    status: str = "success"  # success | completed_with_errors | halted | nothing_to_do
    halted_reason: str | None = None
    planned: int = 0
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    not_attempted: int = 0
    skipped: int = 0
    skipped_by_reason: dict = field(default_factory=dict)
    parked: int = 0  # records not tried: they failed run after run with the same values
    deleted_in_crm: int = 0  # records whose CRM record a person deleted (push.deleted_in_crm)
    retried_records: int = 0  # per-record transient failures written again before counting
    canary: dict = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    calls: dict = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("success", "nothing_to_do")

    @property
    def needs_attention(self) -> bool:
        """Records left failed, parked or deleted in the CRM: the run must say so (alert)."""
        return bool(self.failed or self.parked or self.deleted_in_crm or self.status == "halted")

    @property
    def error_rate(self) -> float:
        return self.failed / self.attempted if self.attempted else 0.0

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["error_rate"] = round(self.error_rate, 4)
        return d

    def raise_if_halted(self) -> None:
        if self.status == "halted":
            raise PushHalted(self.halted_reason or "push halted")


class PushHalted(Exception):
    """The canary failed, the error rate passed its threshold, or the CRM refused us."""


log = logging.getLogger(__name__)
CONFLICT_NOTE = "matched an existing record on a create conflict"
# per-record errors that say "try again" (row locks, server hiccups, throttling, lost answers)
TRANSIENT_MARKERS = (
    "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_RUNNING_TOO_LONG", "timed out",
    "rate limited", "RATE_LIMIT", "not processed by Bulk API", "outcome unknown", "gave up after retries",
    "unreachable", "connection failed", "no result for this record",
)  # fmt: skip
# an update whose record the CRM no longer has (deleted since the snapshot): data, not a mapping
# problem — the snapshot forgets the id and the next plan finds the record again or applies
# push.deleted_in_crm; it never counts towards a canary / error-rate halt
GONE_MARKERS = ("OBJECT_NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED")
RECORD_RETRIES = 2  # extra rounds for records that failed with a transient per-record error


# Tables every pushed record adds a row to, and how many records are booked before their
# statistics are first refreshed (then each time the count doubles: a few ANALYZEs per push).
BOOKKEEPING_TABLES = (t.push_log, t.crm_sync, t.crm_records)
ANALYZE_AFTER = 10_000


def _parts(keys: list, size: int = IN_LIST_SIZE):
    """``keys`` in slices small enough for one IN list each."""
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


def is_gone(error: str | None) -> bool:
    return any(m in (error or "") for m in GONE_MARKERS)


def is_transient(error: str | None) -> bool:
    low = (error or "").lower()
    return any(m.lower() in low for m in TRANSIENT_MARKERS) or bool(re.search(r"\b5\d\d\b", low))


def _canary_order(key: str) -> str:
    # A stable spread over the records, not the first 15 alphabetically.
    return hashlib.sha1(key.encode()).hexdigest()


class _Executor:
    def __init__(self, cfg: ClientConfig, engine: Engine, run_id: str, adapter: CrmAdapter, plan: PushPlan):
        self.cfg, self.engine, self.run_id, self.adapter, self.plan = cfg, engine, run_id, adapter, plan
        self.obj = plan.object
        self.res = PushResult(cfg.client_id, run_id, plan.object, planned=len(plan.writes))
        self.ident = identity_fields(cfg, self.obj)
        self.tracked = set(snapshot.tracked_fields(cfg, self.obj))  # the values a snapshot row keeps
        self.items = {i.key: i for i in plan.items}
        self.fresh_attempted = 0  # records not failing already last run: what the halt rules judge
        self.fresh_failed = 0
        # keys with a push_log row in this run: only their rows are replaced (a re-run after a crash,
        # a record written twice), not probed for every key of every batch (minutes at 1M records)
        self.logged = self._logged_keys()
        # the bookkeeping tables grow by every record pushed: their look-ups by key use the key's
        # index only once PostgreSQL's statistics know the tables' size (autovacuum may lag or be
        # off), else each IN list is checked against every row of the client (quadratic); a push
        # that adds few rows to what the statistics already count leaves them as they are
        analyze_changed(engine, cfg.client_id, dict.fromkeys(BOOKKEEPING_TABLES, len(plan.writes)))
        self.booked = self.booked_at_analyze = 0

    def _logged_keys(self) -> set[str]:
        pl = t.push_log.c
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(pl.record_key).where(
                        pl.client_id == self.cfg.client_id, pl.run_id == self.run_id, pl.object == self.obj
                    )
                ).scalars()
            )

    # ---- writing one batch, safely
    def _records(self, items: list[PlanItem]) -> list[WriteRecord]:
        return [WriteRecord(i.key, i.payload(), i.crm_id, i.external_id, i.account_crm_id) for i in items]

    def _wire_op(self, op: str) -> str:
        return "upsert" if op == "create" and self.plan.external_id_field else op

    def write(self, op: str, records: list[WriteRecord]) -> list[Outcome]:
        """One batch with retries, splitting on rejection and verifying ambiguous creates."""
        wire = self._wire_op(op)
        s = self.adapter.settings
        pending = list(records)
        outcomes: list[Outcome] = []
        last: CrmError | None = None
        for attempt in range(1, s.max_attempts + 1):
            try:
                outcomes += self._write_split(wire, pending)
                return self._complete(records, outcomes)
            except Transient as e:
                if wire != "create":  # idempotent ops were already retried by call_with_retry
                    return self._complete(records, outcomes, failure=f"{e.message} (gave up after retries)")
                found = self._verify_created(pending)
                outcomes += found
                done = {o.key for o in found}
                pending = [r for r in pending if r.key not in done]
                if not pending:
                    return self._complete(records, outcomes)
                if attempt < s.max_attempts:
                    delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1))
                    self.adapter.stats.retries += 1
                    self.adapter.stats.waited_s += delay
                    time.sleep(delay)
                last = e
            except RateLimited as e:
                return self._complete(records, outcomes, failure=f"rate limited: {e.message}")
        reason = last.message if last else "unknown error"
        return self._complete(records, outcomes, failure=f"{reason} (outcome unknown; not found in the CRM)")

    def _write_split(self, wire: str, records: list[WriteRecord]) -> list[Outcome]:
        try:
            return call_with_retry(
                lambda: self.adapter.write(self.obj, wire, records, self.plan.external_id_field),
                self.adapter.settings,
                self.adapter.stats,
                idempotent=wire != "create",
            )
        except BatchRejected as e:
            if len(records) == 1:
                return [Outcome(records[0].key, False, records[0].crm_id, error=e.message)]
            mid = len(records) // 2
            return self._write_split(wire, records[:mid]) + self._write_split(wire, records[mid:])

    def _complete(
        self, records: list[WriteRecord], outcomes: list[Outcome], failure: str | None = None
    ) -> list[Outcome]:
        """One outcome per record: a record the CRM said nothing about failed."""
        seen = {o.key for o in outcomes}
        missing = failure or "the CRM returned no result for this record"
        outcomes += [Outcome(r.key, False, r.crm_id, error=missing) for r in records if r.key not in seen]
        return outcomes

    def _verify_created(self, records: list[WriteRecord]) -> list[Outcome]:
        """After an ambiguous create: which of these records does the CRM have now?"""
        a, obj = self.adapter, self.obj
        fields = snapshot.read_fields(self.cfg, obj, a.id_field(obj))
        found: list[dict] = []
        ext = self.plan.external_id_field
        if ext:
            found = a.find(obj, ext, [r.external_id for r in records if r.external_id], fields)
            by = {str(x.get(ext)): x for x in found}
            return [Outcome(r.key, True, str(by[r.external_id][a.id_field(obj)]), created=True,
                            note="verified after an ambiguous response")
                    for r in records if r.external_id in by]  # fmt: skip
        out = []
        if obj == "account":
            site, name_f = self.ident["website"], self.ident["name"]
            domains = dict(
                zip([r.key for r in records], domains_of(r.fields.get(site) for r in records), strict=True)
            )
            found = (
                a.find_by_domain(obj, sorted({d for d in domains.values() if d}), fields)
                if any(domains.values())
                else []
            )
            by_domain = dict(zip(domains_of(x.get(site) for x in found), found, strict=True))
            no_domain = [r for r in records if not domains[r.key]]
            by_name = {}
            if no_domain:
                names = sorted({str(r.fields.get(name_f)) for r in no_domain})
                by_name = {str(x.get(name_f)): x for x in a.find(obj, name_f, names, fields)}
            for r in records:
                x = (
                    by_domain.get(domains[r.key])
                    if domains[r.key]
                    else by_name.get(str(r.fields.get(name_f)))
                )
                if x is not None:
                    out.append(Outcome(r.key, True, str(x[a.id_field(obj)]), created=True,
                                       note="verified after an ambiguous response"))  # fmt: skip
        else:
            email_f = self.ident.get("email")
            emails = {r.key: normalise_email(r.fields.get(email_f)) for r in records}
            found = a.find(obj, email_f, sorted({e for e in emails.values() if e}), fields) if email_f else []
            by_email = {normalise_email(x.get(email_f)): x for x in found}
            for r in records:
                x = by_email.get(emails[r.key]) if emails[r.key] else None
                if x is not None:
                    out.append(Outcome(r.key, True, str(x[a.id_field(obj)]), created=True,
                                       note="verified after an ambiguous response"))  # fmt: skip
        return out

    def write_batch(self, op: str, batch: list[PlanItem]) -> list[Outcome]:
        """One planned batch: write, resolve create conflicts, then write again (up to
        :data:`RECORD_RETRIES` rounds, with backoff) the records that failed with a transient
        per-record error — a row lock or a 5xx on one record must not count as a failure."""
        outcomes = self._resolve_conflicts(self.write(op, self._records(batch)))
        s = self.adapter.settings
        for round_ in range(1, RECORD_RETRIES + 1):
            again = [o.key for o in outcomes if not o.ok and is_transient(o.error)]
            if not again:
                break
            delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** (round_ - 1))
            self.adapter.stats.retries += 1
            self.adapter.stats.waited_s += delay
            time.sleep(delay)
            self.res.retried_records += len(again)
            retry_items = [self.items[k] for k in again]
            by_key = {o.key: o for o in outcomes}
            if op == "create":
                # the first attempt may have been applied: look before creating again
                for o in self._verify_created(self._records(retry_items)):
                    by_key[o.key] = o
                retry_items = [i for i in retry_items if not by_key[i.key].ok]
            if retry_items:
                for o in self._resolve_conflicts(self.write(op, self._records(retry_items))):
                    by_key[o.key] = o
            outcomes = list(by_key.values())
        return outcomes

    def _resolve_conflicts(self, outcomes: list[Outcome]) -> list[Outcome]:
        """A create that hit an exact existing record (HubSpot: same e-mail) becomes an update of it."""
        conflicts = [o for o in outcomes if not o.ok and o.existing_id]
        if not conflicts:
            return outcomes
        keep = [o for o in outcomes if o.ok or not o.existing_id]
        updates = []
        for o in conflicts:
            item = self.items[o.key]
            fields = {f: after for f, (_, after) in item.changes.items()}
            updates.append(WriteRecord(o.key, fields, o.existing_id))
        for o in self.write("update", updates):
            o.note = CONFLICT_NOTE
            keep.append(o)
        return keep

    # ---- bookkeeping
    def _log(self, phase: str, op: str, outcomes: list[Outcome]) -> None:
        cid, now = self.cfg.client_id, snapshot.now()
        keys = [o.key for o in outcomes]
        with self.engine.begin() as conn:
            # A failed record keeps what its sync row says was pushed before; a written one's
            # payload is merged into it in SQL (``merge_json``): nothing else is read back.
            sync = self._sync_rows(conn, [o.key for o in outcomes if not o.ok])
            pl = t.push_log.c
            for part in _parts([k for k in keys if k in self.logged]):
                conn.execute(
                    delete(t.push_log).where(
                        pl.client_id == cid,
                        pl.run_id == self.run_id,
                        pl.object == self.obj,
                        among(conn, pl.record_key, part),
                    )
                )
            log_rows, sync_rows, failed_rows, snap_rows = [], [], [], []
            payloads = {o.key: self.items[o.key].payload() for o in outcomes}
            site = self.ident.get("website") if self.obj == "account" else None
            # a snapshot row is new for a created record: its domain is the website sent
            sent = [o.key for o in outcomes if o.ok and site and payloads[o.key].get(site)]
            dom = dict(zip(sent, domains_of(payloads[k][site] for k in sent), strict=True))
            for o in outcomes:
                item = self.items[o.key]
                # A planned create that succeeded is a create, even when a retried external-id upsert
                # found the record its own lost first attempt made; a create that hit an existing
                # record (HubSpot e-mail conflict) became an update of that record.
                if o.ok:
                    created = o.created or (item.operation == "create" and o.note != CONFLICT_NOTE)
                    operation = "create" if created else "update"
                else:
                    operation = item.operation
                payload = payloads[o.key]
                changed = {f: {"from": b, "to": a} for f, (b, a) in item.changes.items()}
                if operation == "create":
                    changed = {f: {"from": None, "to": v} for f, v in payload.items()}
                log_rows.append({
                    "client_id": cid, "run_id": self.run_id, "object": self.obj, "record_key": o.key,
                    "crm_id": o.crm_id or item.crm_id, "operation": operation, "fields_changed": changed,
                    "status": "success" if o.ok else "failed",
                    "error": None if o.ok else redact(o.error or "failed")[:2000],
                    "at": now, "phase": phase,
                })  # fmt: skip
                prev = sync.get(o.key) or {}
                if o.ok:
                    sync_rows.append({"client_id": cid, "object": self.obj, "record_key": o.key,
                                      "crm_id": o.crm_id or item.crm_id, "pushed": payload, "status": "success",
                                      "failed": False, "error": None, "run_id": self.run_id, "updated_at": now})  # fmt: skip
                    if o.crm_id or item.crm_id:
                        snap_rows.append(
                            self._snap_row(o.crm_id or item.crm_id, item, payload, now, dom.get(o.key))
                        )
                else:
                    failed_rows.append({"client_id": cid, "object": self.obj, "record_key": o.key,
                                        "crm_id": prev.get("crm_id") or item.crm_id, "pushed": prev.get("pushed"),
                                        "status": "failed", "failed": True, "error": redact(o.error or "")[:2000],
                                        "run_id": self.run_id, "updated_at": now})  # fmt: skip
                self._count(o, operation)
            # COPY on PostgreSQL for a large batch: at 1M records the rows cost more than the push
            insert_rows(conn, t.push_log, log_rows)
            self.logged.update(keys)
            upsert(conn, t.crm_sync, sync_rows, merge_json=("pushed",))
            upsert(conn, t.crm_sync, failed_rows)
            # CSV too: with no CRM to read, the snapshot is what the previous export said
            snapshot.record_written(conn, snap_rows)
            if self.adapter.has_remote:
                self._follow_ids(conn, outcomes)
                gone = [o.crm_id or self.items[o.key].crm_id for o in outcomes
                        if not o.ok and self.items[o.key].operation == "update" and is_gone(o.error)]  # fmt: skip
                gone = [g for g in gone if g]
                if gone:
                    rc = t.crm_records.c
                    conn.execute(delete(t.crm_records).where(rc.client_id == cid, rc.object == self.obj,
                                                             rc.crm_id.in_(gone)))  # fmt: skip
        self.booked += len(outcomes)
        if self.booked - self.booked_at_analyze >= max(ANALYZE_AFTER, self.booked_at_analyze):
            analyze(self.engine, *BOOKKEEPING_TABLES)  # each time the rows booked so far double
            self.booked_at_analyze = self.booked

    def _sync_rows(self, conn, keys: list[str]) -> dict[str, dict]:
        c = t.crm_sync.c
        out = {}
        for part in _parts(keys):
            query = select(t.crm_sync).where(c.client_id == self.cfg.client_id, c.object == self.obj,
                                             among(conn, c.record_key, part))  # fmt: skip
            out.update((r["record_key"], dict(r)) for r in conn.execute(query).mappings().all())
        return out

    def _follow_ids(self, conn, outcomes: list[Outcome]) -> None:
        """The warehouse follows the CRM's ids: a record created (or re-created after a person
        deleted it) or found under another id replaces a blank or dead id; a living id stays
        (an account may fold several CRM duplicates)."""
        new = {o.key: o.crm_id or self.items[o.key].crm_id for o in outcomes if o.ok}
        new = {k: v for k, v in new.items() if v}
        if not new:
            return
        cid = self.cfg.client_id
        table, key_col = (t.accounts, "account_key") if self.obj == "account" else (t.contacts, "contact_key")
        c = table.c
        rows = conn.execute(
            select(c[key_col], c.crm_id).where(c.client_id == cid, c[key_col].in_(sorted(new)))
        ).all()
        old_ids = sorted({old for _, old in rows if old})
        rc = t.crm_records.c
        alive = {
            r for (r,) in conn.execute(
                select(rc.crm_id).where(rc.client_id == cid, rc.object == self.obj, rc.crm_id.in_(old_ids))
            )
        } if old_ids else set()  # fmt: skip
        for key, old in rows:
            nid = new[key]
            if old == nid or (old and old in alive):
                continue
            conn.execute(update(table).where(c.client_id == cid, c[key_col] == key).values(crm_id=nid))
            if self.obj != "account":
                continue
            ids = t.account_crm_ids.c
            if old:
                conn.execute(delete(t.account_crm_ids).where(ids.client_id == cid, ids.crm_id == old))
                conn.execute(
                    update(t.contacts)
                    .where(t.contacts.c.client_id == cid, t.contacts.c.account_crm_id == old)
                    .values(account_crm_id=nid)
                )
            upsert(conn, t.account_crm_ids, [{"client_id": cid, "crm_id": nid, "account_key": key,
                                              "is_survivor": True, "run_id": self.run_id}])  # fmt: skip

    def _snap_row(self, crm_id: str, item: PlanItem, payload: dict, now, domain: str | None) -> dict:
        """The snapshot row of a record just written: whole for a record the snapshot lacks; for
        one it has, only its written tracked values count (:func:`snapshot.record_written`)."""
        written = {f: v for f, v in payload.items() if f in self.tracked}
        ident = self.ident
        get = lambda canonical: payload.get(ident.get(canonical, ""))  # noqa: E731
        name = get("name")
        if self.obj == "contact":
            name = " ".join(str(x) for x in (get("first_name"), get("last_name")) if not is_blank(x)) or None
        return {
            "client_id": self.cfg.client_id, "object": self.obj, "crm_id": crm_id, "name": name,
            "domain": domain,
            "email": normalise_email(get("email")) if self.obj == "contact" else None,
            "linkedin": normalise_linkedin(get("linkedin_url")) if self.obj == "contact" else None,
            "account_crm_id": item.account_crm_id, "external_id": item.external_id, "field_values": written,
            "crm_last_modified": None, "source": "push", "seen_run": self.run_id, "updated_at": now,
        }  # fmt: skip

    def _count(self, o: Outcome, operation: str) -> None:
        r = self.res
        r.attempted += 1
        gone = not o.ok and operation == "update" and is_gone(o.error)
        if not self.items[o.key].retry and not gone:
            self.fresh_attempted += 1
            self.fresh_failed += not o.ok
        if o.ok:
            r.succeeded += 1
            r.created += operation == "create"
            r.updated += operation == "update"
        else:
            r.failed += 1
            if len(r.first_errors) < 5:
                r.first_errors.append(f"{o.key}: {redact(o.error or 'failed')[:300]}")

    def _log_rest(self, items: list[PlanItem], status: str, reason: str | None) -> int:
        """Outcomes of records not written: skipped by the plan, or not attempted after a halt.

        A record that already has a row in this run (the canary wrote it) keeps it.
        """
        if not items:
            return 0
        cid, now = self.cfg.client_id, snapshot.now()
        have = self.logged
        with self.engine.begin() as conn:
            rows = [
                {"client_id": cid, "run_id": self.run_id, "object": self.obj, "record_key": i.key,
                 "crm_id": i.crm_id, "operation": i.operation if status == "not_attempted" else "none",
                 "fields_changed": None, "status": status, "error": reason or i.reason, "at": now,
                 "phase": None}
                for i in items if i.key not in have
            ]  # fmt: skip
            insert_rows(conn, t.push_log, rows)
        self.logged.update(r["record_key"] for r in rows)
        return len(rows)

    # ---- the push
    def run(self, canary: bool, only_canary: bool) -> PushResult:
        start = time.monotonic()
        stats0 = self.adapter.stats.as_dict()
        writes = self.plan.writes
        # the canary tests the mapping on records with no failure history: a record that failed
        # last run (a person's data problem) must not stop everyone else's push
        fresh = [i for i in writes if not i.retry]
        sample = sorted(fresh, key=lambda i: _canary_order(i.key))[: self.plan.canary_size] if canary else []
        in_sample = {i.key for i in sample}
        phases = [("canary", sample)] if sample else []
        if not only_canary:
            phases.append(("main", [i for i in writes if i.key not in in_sample]))
        for op in ("update", "create"):
            fields = (f for i in writes if i.operation == op for part in (i.identity, i.changes) for f in part)
            self.adapter.expect_fields(self.obj, self._wire_op(op), list(dict.fromkeys(fields)))
        done: set[str] = set()
        halted: str | None = None
        last_note = time.monotonic()
        for phase, items in phases:
            log.info("%s push of %s %ss: %d records (%s)", phase, self.plan.kind, self.obj, len(items),
                     ", ".join(f"{n} {op}s" for op, n in Counter(i.operation for i in items).items()))  # fmt: skip
            for op in ("update", "create"):
                group = [i for i in items if i.operation == op]
                size = self.adapter.batch_size(self._wire_op(op), len(group))
                for batch in chunks(group, size):
                    if halted:
                        break
                    try:
                        outcomes = self.write_batch(op, batch)
                    except Fatal as e:
                        halted = f"the CRM refused the push: {e.message}"
                        break
                    except CrmError as e:  # anything unexpected from the adapter: fail this batch
                        outcomes = [Outcome(i.key, False, i.crm_id, error=e.message) for i in batch]
                    self._log(phase, op, outcomes)
                    done.update(o.key for o in outcomes)
                    if time.monotonic() - last_note > 30:  # a progress line in the task log
                        last_note = time.monotonic()
                        log.info(
                            "… %d of %d written, %d failed", self.res.attempted, len(writes), self.res.failed
                        )
                    rate = self.fresh_failed / self.fresh_attempted if self.fresh_attempted else 0.0
                    if (
                        phase == "main"
                        and self.fresh_attempted >= self.plan.canary_size
                        and rate > self.plan.max_error_rate
                    ):
                        halted = (
                            f"error rate {rate:.1%} ({self.fresh_failed} of {self.fresh_attempted} records "
                            f"not failing before) is above the limit of {self.plan.max_error_rate:.1%}"
                        )
            if phase == "canary":
                self.res.canary = {
                    "size": len(items),
                    "failed": self.res.failed,
                    "succeeded": self.res.succeeded,
                }
                # the canary protects the rest of the push: when the sample is every write there is
                # nothing left to protect, and its failures are per-record outcomes (retried next
                # run, then parked), not a reason to fail the run
                protects = len(writes) > len(items)
                rate = self.fresh_failed / max(1, self.fresh_attempted)
                if not halted and protects and rate > self.plan.max_error_rate:
                    halted = (
                        f"canary failed: {self.fresh_failed} of {self.fresh_attempted} sample records failed "
                        f"(first: {self.res.first_errors[0] if self.res.first_errors else '?'}); full push not started"
                    )
            if halted:
                break
        if halted:
            log.error("push halted: %s", halted)
            rest = [i for i in writes if i.key not in done]
            self.res.not_attempted = self._log_rest(rest, "not_attempted", f"halted: {halted}")
            self.res.status, self.res.halted_reason = "halted", halted
        elif not writes:
            self.res.status = "nothing_to_do"
        elif self.res.failed:
            self.res.status = "completed_with_errors"
        skips = [i for i in self.plan.items if i.operation == "skip"]
        self.res.skipped_by_reason = dict(Counter(_reason_group(i.reason) for i in skips))
        if self.plan.unchanged:
            self.res.skipped_by_reason["no_change"] = self.plan.unchanged
        self.res.parked = self.res.skipped_by_reason.get("parked", 0)
        self.res.deleted_in_crm = sum(
            1 for i in skips if i.reason == "deleted_in_crm" and self.plan.deleted_in_crm == "flag"
        )
        if not only_canary:
            # a record with nothing to write needs no person: it is counted (skipped_by_reason), not
            # logged, so push_log grows with what changed or needs attention, not with the client size
            quiet = [i for i in skips if _reason_group(i.reason) in UNLOGGED_SKIPS]
            logged = [i for i in skips if _reason_group(i.reason) not in UNLOGGED_SKIPS]
            self.res.skipped = self._log_rest(logged, "skipped", None) + len(quiet) + self.plan.unchanged
        if not only_canary and self.res.status != "halted":
            save_push_state(self.engine, self.plan)  # complete: the next plan reads what changed since
        stats = self.adapter.stats.as_dict()
        self.res.calls = {k: _delta(stats[k], stats0[k]) for k in stats if k != "api_usage"}
        self.res.calls["api_usage"] = stats["api_usage"]
        self.res.elapsed_s = round(time.monotonic() - start, 2)
        log.info("push of %ss %s: %d created, %d updated, %d failed, %d skipped, %d API calls, %d 429s, %.1f s",
                 self.obj, self.res.status, self.res.created, self.res.updated, self.res.failed, self.res.skipped,
                 self.res.calls.get("total_calls", 0), self.res.calls.get("throttled_429", 0), self.res.elapsed_s)  # fmt: skip
        return self.res


# skip reasons counted in the run summary but given no push_log row (nothing for a person to do)
UNLOGGED_SKIPS = frozenset({"no_change"})


def _reason_group(reason: str | None) -> str:
    return (reason or "").split(":", 1)[0]


def _delta(now: Any, before: Any) -> Any:
    if isinstance(now, dict):
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}
    return round(now - before, 2) if isinstance(now, float) else now - before


def execute_push(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    adapter: CrmAdapter,
    plan: PushPlan,
    canary: bool = True,
    *,
    only_canary: bool = False,
) -> PushResult:
    """Write the plan to the CRM: the canary sample first, then (unless ``only_canary``) the rest.

    Returns a :class:`PushResult`; ``status == "halted"`` when the canary failed, the error
    rate passed ``max_error_rate`` or the CRM refused the push (``raise_if_halted()``
    turns that into an exception for the DAG task). Re-running after a crash is safe.
    """
    if plan.client_id != cfg.client_id:
        raise ValueError(f"plan is for client {plan.client_id!r}, not {cfg.client_id!r}")
    if adapter.kind not in (cfg.crm.kind, "csv"):
        raise ValueError(f"adapter {adapter.kind!r} does not match crm.kind {cfg.crm.kind!r}")
    adapter.start_run(cfg.client_id, run_id)
    return _Executor(cfg, engine, run_id, adapter, plan).run(canary, only_canary)
