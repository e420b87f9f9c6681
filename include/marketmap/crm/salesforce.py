"""Salesforce adapter: REST through simple-salesforce.

- Reads: SOQL ``query_all`` (queryMore paging) for normal objects, Bulk API 2.0 queries
  when an object has more than ``bulk_query_threshold`` records; describe for preflight.
  Fields the org doesn't have are left out of queries (a client's custom field missing
  must not break the extract; preflight reports it).
- Writes: sObject Collections (≤ 200 records per call, ``allOrNone=false`` so one bad
  record never sinks its batch) with the ``Sforce-Duplicate-Rule-Header`` set; upserts on
  an External ID field; Bulk API 2.0 for loads of ``bulk_threshold`` records or more.
- Limits: ``Sforce-Limit-Info`` is read on every response; the push stops (Fatal) once
  the org's daily API usage passes ``max_api_usage`` — other integrations need the rest.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from marketmap.crm.base import (
    BatchRejected,
    CrmAdapter,
    CrmError,
    CrmSettings,
    Fatal,
    FieldMeta,
    MalformedResponse,
    Operation,
    Outcome,
    RateLimited,
    Transient,
    WriteRecord,
    call_with_retry,
    chunks,
)
from marketmap.crm.snapshot import parse_ts
from marketmap.crm.values import domains_of, is_blank

COLLECTION = 200
SOQL_IN = 100  # values per IN (...) clause: keeps the query URL well under its limit
MODIFIED = "LastModifiedDate"
DEFAULT_OBJECTS = {"account": "Account", "contact": "Contact", "opportunity": "Opportunity"}


class _Session(requests.Session):
    """A requests session with a default timeout and a hook that keeps the last headers."""

    def __init__(self, timeout: tuple[float, float]):
        super().__init__()
        self.default_timeout = timeout
        self.last_headers: dict[str, str] = {}
        self.hooks["response"].append(self._keep)

    def _keep(self, resp: requests.Response, *args, **kwargs) -> None:
        self.last_headers = dict(resp.headers)

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - requests API
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


def soql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    s = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{s}'"


def soql_datetime(value: Any) -> str:
    ts = parse_ts(value)
    if ts is None:
        raise ValueError(f"not a date-time: {value!r}")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sf_error_message(content: Any) -> tuple[str, str | None]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        e = content[0]
        return f"{e.get('errorCode')}: {e.get('message')}", e.get("errorCode")
    if isinstance(content, dict):
        return str(content.get("message") or content), content.get("errorCode")
    return str(content)[:500], None


class SalesforceAdapter(CrmAdapter):
    kind = "salesforce"

    def __init__(
        self,
        *,
        instance_url: str | None = None,
        session_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        security_token: str | None = None,
        domain: str | None = None,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        version: str = "59.0",
        objects: dict[str, str] | None = None,
        settings: CrmSettings | None = None,
        mounts: dict[str, Any] | None = None,
    ):
        super().__init__(settings)
        from simple_salesforce import Salesforce

        self.session = _Session(self.settings.timeout)
        for prefix, transport in (mounts or {}).items():
            self.session.mount(prefix, transport)
        kw: dict[str, Any] = {"version": version, "session": self.session}
        if session_id:
            kw.update(session_id=session_id, instance_url=instance_url)
        elif consumer_key and consumer_secret and not username:
            kw.update(consumer_key=consumer_key, consumer_secret=consumer_secret, domain=domain or "login")
        else:
            kw.update(username=username, password=password, security_token=security_token, domain=domain)
            if consumer_key:
                kw.update(consumer_key=consumer_key, consumer_secret=consumer_secret)
        try:
            self.sf = Salesforce(**kw)
        except Exception as e:  # login failures: never echo the credentials
            raise Fatal(f"Salesforce login failed: {type(e).__name__}") from None
        self.objects = {**DEFAULT_OBJECTS, **(objects or {})}
        self._describe: dict[str, dict[str, FieldMeta]] = {}

    # ---- plumbing
    def _usage(self) -> tuple[int, int] | None:
        info = self.session.last_headers.get("Sforce-Limit-Info")
        if not info:
            return None
        self.stats.api_usage = info
        m = re.search(r"api-usage=(\d+)/(\d+)", info)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def _once(self, kind: str, fn, *args, **kwargs) -> Any:
        from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

        usage = self._usage()
        if usage and usage[1] and usage[0] / usage[1] >= self.settings.max_api_usage:
            raise Fatal(
                f"Salesforce API usage {usage[0]:,}/{usage[1]:,} ({usage[0] / usage[1]:.0%}) is at the "
                f"{self.settings.max_api_usage:.0%} limit Market Map keeps for other integrations"
            )
        self.stats.count(kind)
        try:
            return fn(*args, **kwargs)
        except SalesforceError as e:
            raise self._error(e) from None
        except SalesforceOperationError as e:  # a Bulk API job failed or was aborted
            raise BatchRejected(f"Salesforce Bulk API: {e}") from None
        except requests.exceptions.ConnectTimeout as e:
            raise Transient(f"Salesforce unreachable: {type(e).__name__}", maybe_applied=False) from None
        except requests.exceptions.ConnectionError as e:
            # connection refused before sending vs dropped after: only the first is surely unsent
            sent = "refused" not in str(e).lower() and "newconnectionerror" not in str(e).lower()
            raise Transient(f"Salesforce connection failed: {type(e).__name__}", maybe_applied=sent) from None
        except (requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            raise Transient(f"Salesforce timed out: {type(e).__name__}") from None
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise MalformedResponse(
                f"Salesforce sent a response its API does not document: {type(e).__name__}: {e}"
            ) from None
        finally:
            self._usage()

    def _error(self, e: Any) -> CrmError:
        status = int(getattr(e, "status", 0) or 0)
        msg, code = _sf_error_message(getattr(e, "content", None))
        text = f"Salesforce {status}: {msg}"
        if status == 429 or (code == "REQUEST_LIMIT_EXCEEDED" and status != 403):
            ra = self.session.last_headers.get("Retry-After")
            return RateLimited(text, retry_after=float(ra) if ra else None, status=status, code=code)
        if status >= 500 or code in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"):
            return Transient(text, status=status, code=code)
        if status in (401, 403):
            return Fatal(text, status=status, code=code)
        return BatchRejected(text, status=status, code=code)

    def _read(self, kind: str, fn, *args, **kwargs) -> Any:
        return call_with_retry(lambda: self._once(kind, fn, *args, **kwargs), self.settings, self.stats)

    def _sobject(self, obj: str) -> str:
        return self.objects[obj]

    # ---- metadata
    def describe(self, obj: str) -> dict[str, FieldMeta]:
        name = self._sobject(obj)
        data = self._read("meta", self.sf.restful, f"sobjects/{name}/describe")
        out = {}
        for f in data["fields"]:
            active = [p for p in f.get("picklistValues") or [] if p.get("active")]
            out[f["name"]] = FieldMeta(
                name=f["name"],
                type=f["type"],
                label=f.get("label") or "",
                options=tuple(p["value"] for p in active),
                option_labels=tuple(p.get("label") or p["value"] for p in active),
                updateable=bool(f.get("updateable")),
                createable=bool(f.get("createable")),
                unique=bool(f.get("externalId")) or bool(f.get("unique")),
            )
        self._describe[obj] = out
        return out

    def create_field(self, obj: str, name: str, label: str, kind: str, options: list[str]) -> None:
        """A custom field through the Tooling API (``CustomField``); needs "Customize Application".

        Without the permission Salesforce answers 403 / INSUFFICIENT_ACCESS and the caller
        lists the field for an admin. Picklists are created restricted, with exactly the
        values the mapping produces.
        """
        import json

        if not name.endswith("__c"):
            raise CrmError(f"{name} is not a custom field name (…__c): only custom fields can be created")
        meta: dict[str, Any] = {"label": label[:40], "description": "Written by Market Map"}
        if kind == "picklist":
            meta.update(type="Picklist", valueSet={"restricted": True, "valueSetDefinition": {
                "sorted": False, "value": [{"fullName": v, "label": v, "default": False} for v in options]}})  # fmt: skip
        elif kind == "number":
            meta.update(type="Number", precision=18, scale=2)
        elif kind == "boolean":
            meta.update(type="Checkbox", defaultValue="false")
        else:
            meta.update(type="Text", length=255)
        body = json.dumps({"FullName": f"{self._sobject(obj)}.{name}", "Metadata": meta})
        try:
            self._once("meta", self.sf.restful, "tooling/sobjects/CustomField", method="POST", data=body)
        except Fatal as e:  # 401/403 here is a permission answer about this call, not a dead session
            raise CrmError(f"the Salesforce user may not create fields ({e.message})") from None
        self._describe.pop(obj, None)

    def _existing(self, obj: str, fields: list[str]) -> list[str]:
        meta = self._describe.get(obj) or self.describe(obj)
        return [f for f in dict.fromkeys(fields) if f in meta]

    # ---- reads
    def _query(self, soql: str) -> Iterator[dict[str, Any]]:
        # paged by hand (query + queryMore) so that each page is one retried call
        res = self._read("read", self.sf.query, soql)
        while True:
            for r in res["records"]:
                r = dict(r)
                r.pop("attributes", None)
                yield r
            if res.get("done", True):
                return
            res = self._read("read", self.sf.query_more, res["nextRecordsUrl"], identifier_is_url=True)

    def _count(self, soql_from_where: str) -> int:
        res = self._read("read", self.sf.query, f"SELECT COUNT() {soql_from_where}")
        return int(res["totalSize"])

    def extract(
        self, obj: str, fields: list[str], since: Any = None, until: Any = None
    ) -> Iterator[dict[str, Any]]:
        name = self._sobject(obj)
        cols = self._existing(obj, ["Id", *fields])
        conds = []
        if since is not None:
            conds.append(f"{MODIFIED} >= {soql_datetime(since)}")
        if until is not None:
            conds.append(f"{MODIFIED} < {soql_datetime(until)}")
        tail = f"FROM {name}" + (f" WHERE {' AND '.join(conds)}" if conds else "")
        soql = f"SELECT {', '.join(cols)} {tail}"
        if self._count(tail) > self.settings.bulk_query_threshold:
            yield from self._bulk_query(name, soql)
        else:
            yield from self._query(soql + " ORDER BY Id")

    def _bulk_query(self, name: str, soql: str) -> Iterator[dict[str, Any]]:
        def run() -> list[str]:
            return list(
                getattr(self.sf.bulk2, name).query(soql, max_records=50_000, wait=self.settings.bulk_poll_s)
            )

        for page in self._read("bulk", run):
            for row in csv.DictReader(io.StringIO(page)):
                yield {k: (None if v == "" else v) for k, v in row.items()}

    def read(self, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        name = self._sobject(obj)
        cols = self._existing(obj, ["Id", *fields])
        out = {}
        for part in chunks(sorted(set(ids)), SOQL_IN):
            soql = f"SELECT {', '.join(cols)} FROM {name} WHERE Id IN ({', '.join(soql_literal(i) for i in part)})"
            for r in self._query(soql):
                out[r["Id"]] = r
        return out

    def find(
        self, obj: str, field_name: str, values: Iterable[str], fields: list[str]
    ) -> list[dict[str, Any]]:
        name = self._sobject(obj)
        if field_name not in self._existing(obj, [field_name]):
            return []
        cols = self._existing(obj, ["Id", *fields])
        vals = sorted({str(v) for v in values if not is_blank(v)})
        out: dict[str, dict] = {}
        for part in chunks(vals, SOQL_IN):
            soql = f"SELECT {', '.join(cols)} FROM {name} WHERE {field_name} IN ({', '.join(soql_literal(v) for v in part)})"
            for r in self._query(soql):
                out[r["Id"]] = r
        return list(out.values())

    def find_by_domain(self, obj: str, domains: list[str], fields: list[str]) -> list[dict[str, Any]]:
        """Websites are free text (``https://www.acme.com/``): LIKE, then exact domain match."""
        name = self._sobject(obj)
        site = "Website"
        cols = self._existing(obj, ["Id", site, *fields])
        wanted = sorted({d for d in domains if d})
        out: dict[str, dict] = {}
        for part in chunks(wanted, 50):
            cond = " OR ".join(f"{site} LIKE {soql_literal('%' + d.replace('%', '') + '%')}" for d in part)
            found = list(self._query(f"SELECT {', '.join(cols)} FROM {name} WHERE {cond}"))
            for r, d in zip(found, domains_of(r.get(site) for r in found), strict=True):
                if d in wanted:
                    out[r["Id"]] = r
        return list(out.values())

    def count(self, obj: str) -> int:
        return self._count(f"FROM {self._sobject(obj)}")

    def owners(self) -> list[dict[str, Any]]:
        cols = self._existing_user(["Id", "Name", "Email", "IsActive"])
        return [
            {
                "rep_id": r["Id"],
                "name": r.get("Name"),
                "email": r.get("Email"),
                "active": bool(r.get("IsActive", True)),
            }
            for r in self._query(f"SELECT {', '.join(cols)} FROM User")
        ]

    def _existing_user(self, fields: list[str]) -> list[str]:
        data = self._read("meta", self.sf.restful, "sobjects/User/describe")
        have = {f["name"] for f in data["fields"]}
        return [f for f in fields if f in have]

    # ---- writes
    def batch_size(self, op: Operation, total: int) -> int:
        """Bulk API 2.0 jobs for big update/upsert loads (a chunk left under 200 records goes
        through sObject Collections), 200-record Collections calls otherwise."""
        if op in ("update", "upsert") and total >= self.settings.bulk_threshold:
            return max(self.settings.bulk_job_size, COLLECTION + 1)
        return COLLECTION

    def write(
        self, obj: str, op: Operation, records: list[WriteRecord], external_id_field: str | None = None
    ) -> list[Outcome]:
        if len(records) > COLLECTION:
            if op == "create":
                raise CrmError("creates go through sObject Collections (≤ 200 per call)")
            return self._bulk_write(obj, op, records, external_id_field)
        name = self._sobject(obj)
        rows = []
        for r in records:
            row: dict[str, Any] = {"attributes": {"type": name}, **r.fields}
            if op == "update":
                row["id"] = r.crm_id
            if op == "upsert":
                row[external_id_field] = r.external_id
            rows.append(row)
        import json

        body = json.dumps({"allOrNone": False, "records": rows}, default=str)
        headers = {"Sforce-Duplicate-Rule-Header": self.settings.duplicate_rule_header}
        if op == "upsert":
            if not external_id_field:
                raise CrmError("upsert needs an External ID field")
            path, method = f"composite/sobjects/{name}/{external_id_field}", "PATCH"
        else:
            path, method = "composite/sobjects", "POST" if op == "create" else "PATCH"
        results = self._once("write", self.sf.restful, path, method=method, data=body, headers=headers)
        if not isinstance(results, list) or len(results) != len(records):
            raise MalformedResponse(
                f"Salesforce returned {len(results) if isinstance(results, list) else type(results).__name__} results "
                f"for {len(records)} records"
            )
        out = []
        for r, res in zip(records, results, strict=True):
            if res.get("success"):
                created = bool(res.get("created", op == "create"))
                out.append(Outcome(r.key, True, res.get("id") or r.crm_id, created=created))
            else:
                errs = res.get("errors") or [{}]
                msg = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errs)
                out.append(Outcome(r.key, False, r.crm_id, error=msg))
        return out

    def _bulk_write(
        self, obj: str, op: Operation, records: list[WriteRecord], ext: str | None
    ) -> list[Outcome]:
        """One Bulk API 2.0 ingest job; results matched back by Id (update) or external id (upsert)."""
        name = self._sobject(obj)
        key_col = "Id" if op == "update" else ext
        if not key_col:
            raise CrmError("a bulk upsert needs an External ID field")
        rows = []
        for r in records:
            row = {k: _csv_value(v) for k, v in r.fields.items()}
            row[key_col] = r.crm_id if op == "update" else r.external_id
            rows.append(row)
        by_key = {str(row[key_col]): r for row, r in zip(rows, records, strict=True)}
        bulk = getattr(self.sf.bulk2, name)
        wait = self.settings.bulk_poll_s
        if op == "update":
            jobs = self._once("bulk", bulk.update, records=rows, wait=wait)
        else:
            jobs = self._once("bulk", bulk.upsert, records=rows, external_id_field=ext, wait=wait)
        out: dict[str, Outcome] = {}
        for job in jobs:
            jid = job["job_id"]
            ok = self._read("bulk", bulk.get_successful_records, jid)
            bad = self._read("bulk", bulk.get_failed_records, jid)
            todo = self._read("bulk", bulk.get_unprocessed_records, jid)
            for row in csv.DictReader(io.StringIO(ok)):
                r = by_key.get(row.get(key_col, ""))
                if r:
                    out[r.key] = Outcome(
                        r.key, True, row.get("sf__Id") or r.crm_id, created=row.get("sf__Created") == "true"
                    )
            for row in csv.DictReader(io.StringIO(bad)):
                r = by_key.get(row.get(key_col, ""))
                if r:
                    out[r.key] = Outcome(
                        r.key, False, r.crm_id, error=row.get("sf__Error") or "failed in Bulk API job"
                    )
            for row in csv.DictReader(io.StringIO(todo)):
                r = by_key.get(row.get(key_col, ""))
                if r:
                    out[r.key] = Outcome(r.key, False, r.crm_id, error=f"not processed by Bulk API job {jid}")
        return list(out.values())

    def close(self) -> None:
        self.session.close()


def _csv_value(v: Any) -> Any:
    if v is None:  # Bulk API 2.0 ignores an empty value on update: #N/A clears the field
        return "#N/A"
    if isinstance(v, bool):
        return "true" if v else "false"
    return v
