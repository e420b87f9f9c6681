"""HubSpot adapter: CRM v3 objects through hubspot-api-client.

- Reads: objects pages (with associations), batch read, search (IN filters for look-ups,
  last-modified windows for incremental extracts, restarting past the 10,000-result cap),
  properties API for preflight, v4 associations, owners.
- Writes: batch create/update/upsert, ≤ 100 records per call. HubSpot does NOT
  deduplicate companies created through the API; the planner looks them up first.
- Throttling: a client-side rolling window (190 calls / 10 s by default) keeps the push
  under the private-app limit; 429s are honoured (``Retry-After``), the
  ``X-HubSpot-RateLimit-*`` headers are recorded.

The client library's own retries are off (urllib3 ``Retry(total=False)``): every retry is
decided by Market Map's policy, which knows whether a call is safe to repeat.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

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
    RollingWindowLimiter,
    Transient,
    WriteRecord,
    call_with_retry,
    chunks,
)
from marketmap.crm.mapping import HUBSPOT_OBJECTS
from marketmap.crm.snapshot import parse_ts
from marketmap.crm.values import domains_of, is_blank

BATCH = 100
SEARCH_PAGE = 100  # search pages take up to 200; IN filters take up to 100 values
SEARCH_CAP = 10_000  # the search API returns at most 10,000 results per query
CONTACT_TO_COMPANY = 1  # HUBSPOT_DEFINED association type: primary company
MODIFIED = {"contacts": "lastmodifieddate"}  # others: hs_lastmodifieddate
GROUPS = {"companies": "companyinformation", "contacts": "contactinformation", "deals": "dealinformation"}
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def _is_api_exception(e: BaseException) -> bool:
    # every hubspot sub-package defines its own ApiException class
    return type(e).__module__.startswith("hubspot.") and hasattr(e, "status") and hasattr(e, "body")


def _body_message(body: Any) -> str:
    import json

    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return str(body)[:500]
    if isinstance(data, dict):
        msg = data.get("message") or str(data)
        cat = data.get("category")
        return f"{cat}: {msg}" if cat else msg
    return str(data)[:500]


class HubSpotAdapter(CrmAdapter):
    kind = "hubspot"

    def __init__(
        self,
        access_token: str,
        *,
        host: str | None = None,
        objects: dict[str, str] | None = None,
        settings: CrmSettings | None = None,
    ):
        super().__init__(settings)
        from hubspot import HubSpot
        from urllib3.util.retry import Retry

        kwargs: dict[str, Any] = {"access_token": access_token, "retry": Retry(total=False)}
        if host:
            kwargs["host"] = host.rstrip("/")
        self.client = HubSpot(**kwargs)
        self.objects = {**HUBSPOT_OBJECTS, **(objects or {})}
        s = self.settings
        self.limiter = RollingWindowLimiter(*s.rate_limit, stats=self.stats) if s.rate_limit else None
        per_s = max(1, int(s.search_per_second)) if s.search_per_second else None
        self.search_limiter = RollingWindowLimiter(per_s, 1.0, stats=self.stats) if per_s else None
        self._apis: dict[tuple[str, str], Any] = {}

    def id_field(self, obj: str) -> str:
        return "hs_object_id"

    # ---- plumbing
    def _api(self, group: str, name: str) -> Any:
        # each discovery access builds a new ApiClient (and connection pool): cache them
        key = (group, name)
        if key not in self._apis:
            target = self.client.crm
            for part in group.split("."):
                target = getattr(target, part)
            self._apis[key] = getattr(target, name)
        return self._apis[key]

    def _once(
        self,
        kind: str,
        fn,
        *args,
        search: bool = False,
        need: tuple[str, ...] = ("results",),
        each: tuple[str, ...] = ("id", "properties"),
        **kwargs,
    ) -> tuple[Any, int]:
        """One HTTP call; vendor errors mapped onto the adapter errors.

        ``need``/``each``: fields the documented response must carry (and each result in
        it). The client library doesn't check them (client-side validation is off), so a
        truncated or incomplete body would otherwise pass as an empty success.
        """
        if self.limiter:
            self.limiter.acquire()
        if search and self.search_limiter:
            self.search_limiter.acquire()
        self.stats.count(kind)
        data, status, headers = self._call(fn, *args, _request_timeout=self.settings.timeout, **kwargs)
        self._note(headers)
        _check(data, need, each)
        return data, status

    def _call(self, fn, *args, **kwargs) -> Any:
        """Call the client library; map transport and HTTP failures onto the adapter errors."""
        import urllib3

        try:
            return fn(*args, **kwargs)
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as e:
            raise Transient(f"HubSpot unreachable: {type(e).__name__}", maybe_applied=False) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Transient(f"HubSpot connection failed: {type(e).__name__}: {e}") from None
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise MalformedResponse(f"HubSpot sent a response its API does not document: {e}") from None
        except Exception as e:
            if not _is_api_exception(e):
                raise
            raise self._error(e) from None

    def _note(self, headers: Any) -> None:
        """Read the X-HubSpot-RateLimit-* headers; when the portal's window is full (other apps
        share it), wait one slot's worth instead of walking into a certain 429."""
        if not headers:
            return
        remaining = headers.get("X-HubSpot-RateLimit-Remaining")
        if remaining is None or not str(remaining).isdigit():
            return
        self.stats.rate_remaining = int(remaining)
        interval, limit = (
            headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"),
            headers.get("X-HubSpot-RateLimit-Max"),
        )
        if int(remaining) == 0 and str(interval).isdigit() and str(limit).isdigit() and int(limit):
            slot = int(interval) / 1000 / int(limit)
            self.stats.waited_s += slot
            time.sleep(slot)

    def _error(self, e: Any) -> CrmError:
        status = int(e.status or 0)
        msg = _body_message(e.body) if e.body else str(e.reason)
        headers = e.headers or {}
        if status == 429:
            self.stats.throttled += 1
            ra = headers.get("Retry-After")
            retry_after = float(ra) if ra not in (None, "") else None
            if retry_after is not None and self.limiter:
                self.limiter.pause(min(retry_after, self.settings.max_retry_after_s))
            return RateLimited(f"HubSpot 429: {msg}", retry_after=retry_after, status=429)
        if status == 0 or status >= 500:
            return Transient(f"HubSpot {status or 'connection error'}: {msg}", status=status)
        if status in (401, 403):
            return Fatal(f"HubSpot {status}: {msg}", status=status)
        return BatchRejected(f"HubSpot {status}: {msg}", status=status)

    def _read(self, kind: str, fn, *args, search: bool = False, **kwargs) -> tuple[Any, int]:
        return call_with_retry(
            lambda: self._once(kind, fn, *args, search=search, **kwargs), self.settings, self.stats
        )

    @staticmethod
    def _flatten(r: Any) -> dict[str, Any]:
        rec = {"hs_object_id": str(r.id), **(r.properties or {})}
        rec["hs_object_id"] = str(r.id)
        assoc = getattr(r, "associations", None) or {}
        companies = assoc.get("companies") if isinstance(assoc, dict) else None
        if companies is not None and is_blank(rec.get("associatedcompanyid")) and companies.results:
            rec["associatedcompanyid"] = str(companies.results[0].id)
        return rec

    # ---- metadata
    def describe(self, obj: str) -> dict[str, FieldMeta]:
        type_ = self.objects[obj]
        data, _ = self._read(
            "meta",
            self._api("properties", "core_api").get_all_with_http_info,
            type_,
            archived=False,
            each=("name", "type"),
        )
        out = {}
        for p in data.results:
            meta = p.modification_metadata
            read_only = bool(meta and meta.read_only_value) or bool(p.calculated)
            opts = [o for o in (p.options or []) if not o.hidden]
            out[p.name] = FieldMeta(
                name=p.name,
                type=p.type,
                label=p.label or "",
                options=tuple(o.value for o in opts),
                option_labels=tuple(o.label for o in opts),
                updateable=not read_only,
                createable=not read_only,
                unique=bool(p.has_unique_value),
            )
        return out

    def create_field(self, obj: str, name: str, label: str, kind: str, options: list[str]) -> None:
        from marketmap.crm.preflight import HUBSPOT_NEW_PROPERTY

        type_ = self.objects[obj]
        ptype, field_type = HUBSPOT_NEW_PROPERTY[kind]
        body = {
            "name": name,
            "label": label,
            "type": ptype,
            "fieldType": field_type,
            "groupName": GROUPS.get(type_, ""),
        }
        if kind == "picklist":
            body["options"] = [
                {"label": v, "value": v, "displayOrder": i, "hidden": False} for i, v in enumerate(options)
            ]
        if kind == "boolean":
            body["options"] = [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                               {"label": "No", "value": "false", "displayOrder": 1, "hidden": False}]  # fmt: skip
        self._once(
            "meta",
            self._api("properties", "core_api").create_with_http_info,
            type_,
            body,
            need=("name",),
            each=(),
        )

    def add_options(self, obj: str, name: str, meta: FieldMeta, options: list[str]) -> None:
        """PATCH the property with its visible options plus the missing ones (HubSpot replaces
        the whole option list, so the existing ones are sent again, in their order)."""
        type_ = self.objects[obj]
        labels = dict(zip(meta.options, meta.option_labels, strict=False))
        values = list(meta.options) + [v for v in options if v not in meta.options]
        body = {"options": [{"label": labels.get(v, v), "value": v, "displayOrder": i, "hidden": False}
                            for i, v in enumerate(values)]}  # fmt: skip
        self._once(
            "meta",
            self._api("properties", "core_api").update_with_http_info,
            type_,
            name,
            body,
            need=("name",),
            each=(),
        )

    # ---- reads
    def extract(
        self, obj: str, fields: list[str], since: Any = None, until: Any = None
    ) -> Iterator[dict[str, Any]]:
        type_ = self.objects[obj]
        props = [f for f in fields if f != "hs_object_id"]
        if since is None and until is None:
            yield from self._pages(type_, props)
        else:
            yield from self._modified(type_, props, since, until)

    def _pages(self, type_: str, props: list[str]) -> Iterator[dict[str, Any]]:
        api = self._api(type_, "basic_api")
        assoc = ["companies"] if type_ in ("contacts", "deals") else None
        after = None
        while True:
            kw: dict[str, Any] = {"limit": self.settings.page_size, "properties": props, "archived": False}
            if after:
                kw["after"] = after
            if assoc:
                kw["associations"] = assoc
            data, _ = self._read("read", api.get_page_with_http_info, **kw)
            for r in data.results:
                yield self._flatten(r)
            nxt = data.paging.next if data.paging else None
            if not nxt or not nxt.after:
                return
            after = nxt.after

    def _modified(self, type_: str, props: list[str], since: Any, until: Any) -> Iterator[dict[str, Any]]:
        """Records modified in [since, until): search sorted by modification time.

        The search API stops at 10,000 results; past that the window restarts at the last
        modification time seen (records already yielded are skipped).
        """
        prop = MODIFIED.get(type_, "hs_lastmodifieddate")
        lo = _ms(since)
        hi = _ms(until)
        seen: set[str] = set()
        batch: list[dict[str, Any]] = []
        while True:
            filters = [{"propertyName": prop, "operator": "GTE", "value": str(lo)}] if lo is not None else []
            if hi is not None:
                filters.append({"propertyName": prop, "operator": "LT", "value": str(hi)})
            last, got = None, 0
            for r in self._search(type_, [{"filters": filters}], props + [prop], sort=prop, cap=SEARCH_CAP):
                got += 1
                rec = self._flatten(r)
                last = rec.get(prop)
                if rec["hs_object_id"] not in seen:
                    seen.add(rec["hs_object_id"])
                    batch.append(rec)
            yield from self._with_companies(type_, batch)
            batch = []
            if got < SEARCH_CAP or last is None:
                return
            new_lo = _ms(parse_ts(last))
            if new_lo is None or (lo is not None and new_lo <= lo):
                return  # 10,000 records share one timestamp: nothing more can be paged
            lo = new_lo

    def _with_companies(self, type_: str, records: list[dict]) -> list[dict]:
        """Fill the associated company of contacts/deals found by search (v4 associations)."""
        if type_ not in ("contacts", "deals"):
            return records
        todo = [r["hs_object_id"] for r in records if is_blank(r.get("associatedcompanyid"))]
        api = self._api("associations.v4", "batch_api")
        found: dict[str, str] = {}
        for part in chunks(todo, BATCH):
            data, _ = self._read(
                "read",
                api.get_page_with_http_info,
                type_,
                "companies",
                {"inputs": [{"id": i} for i in part]},
                need=("status", "results"),
                each=(),
            )
            for res in data.results or []:
                if res.to:
                    found[str(res._from.id)] = str(res.to[0].to_object_id)
        for r in records:
            if r["hs_object_id"] in found:
                r["associatedcompanyid"] = found[r["hs_object_id"]]
        return records

    def _search(
        self,
        type_: str,
        groups: list[dict],
        props: list[str],
        *,
        sort: str | None = None,
        cap: int | None = None,
    ) -> Iterator[Any]:
        api = self._api(type_, "search_api")
        after = 0
        while True:
            body: dict[str, Any] = {
                "filterGroups": groups,
                "properties": props,
                "limit": SEARCH_PAGE,
                "after": str(after),
            }
            if sort:
                body["sorts"] = [{"propertyName": sort, "direction": "ASCENDING"}]
            data, _ = self._read(
                "search", api.do_search_with_http_info, body, search=True, need=("total", "results")
            )
            yield from data.results
            nxt = data.paging.next if data.paging else None
            if not nxt or not nxt.after:
                return
            after = int(nxt.after)
            if cap is not None and after + SEARCH_PAGE > cap:
                return

    def read(self, obj: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        type_ = self.objects[obj]
        api = self._api(type_, "batch_api")
        out: dict[str, dict[str, Any]] = {}
        props = [f for f in fields if f != "hs_object_id"]
        for part in chunks(list(ids), BATCH):
            body = {"inputs": [{"id": i} for i in part], "properties": props, "propertiesWithHistory": []}
            data, _ = self._read("read", api.read_with_http_info, body, need=BATCH_NEED, each=RESULT_NEED)
            for r in data.results:
                out[str(r.id)] = self._flatten(r)
        return out

    def find(
        self, obj: str, field_name: str, values: Iterable[str], fields: list[str]
    ) -> list[dict[str, Any]]:
        type_ = self.objects[obj]
        props = [f for f in fields if f != "hs_object_id"]
        vals = sorted({str(v) for v in values if not is_blank(v)})
        out: dict[str, dict[str, Any]] = {}
        for part in chunks(vals, BATCH):
            groups = [{"filters": [{"propertyName": field_name, "operator": "IN", "values": part}]}]
            for r in self._search(type_, groups, props):
                out[str(r.id)] = self._flatten(r)
        return self._with_companies(type_, list(out.values()))

    def find_by_domain(self, obj: str, domains: list[str], fields: list[str]) -> list[dict[str, Any]]:
        wanted = {d for d in domains if d}
        # HubSpot keeps the domain as typed: look for the bare and the www. form
        values = sorted(wanted | {f"www.{d}" for d in wanted})
        found = self.find(obj, "domain", values, fields)
        return [
            r for r, d in zip(found, domains_of(r.get("domain") for r in found), strict=True) if d in wanted
        ]

    def count(self, obj: str) -> int:
        api = self._api(self.objects[obj], "search_api")
        data, _ = self._read(
            "search",
            api.do_search_with_http_info,
            {"filterGroups": [], "limit": 1, "properties": []},
            search=True,
            need=("total",),
            each=(),
        )
        return int(data.total)

    def owners(self) -> list[dict[str, Any]]:
        api = self._api("owners", "owners_api")
        out, after = [], None
        while True:
            kw: dict[str, Any] = {"limit": 100, "archived": False}
            if after:
                kw["after"] = after
            data, _ = self._read("read", api.get_page_with_http_info, each=("id",), **kw)
            for o in data.results:
                name = " ".join(x for x in (o.first_name, o.last_name) if x) or o.email
                out.append({"rep_id": str(o.id), "name": name, "email": o.email, "active": not o.archived})
            nxt = data.paging.next if data.paging else None
            if not nxt or not nxt.after:
                return out
            after = nxt.after

    # ---- writes
    def batch_size(self, op: Operation, total: int) -> int:
        return BATCH

    @staticmethod
    def _props(fields: dict[str, Any]) -> dict[str, Any]:
        # HubSpot clears a property given an empty string (None = "clear": an out-of-scope tier)
        return {
            k: ("true" if v else "false") if isinstance(v, bool) else ("" if v is None else v)
            for k, v in fields.items()
        }

    def write(
        self, obj: str, op: Operation, records: list[WriteRecord], external_id_field: str | None = None
    ) -> list[Outcome]:
        type_ = self.objects[obj]
        api = self._api(type_, "batch_api")
        if op == "update":
            body = {
                "inputs": [
                    {"id": r.crm_id, "properties": self._props(r.fields), "objectWriteTraceId": r.key}
                    for r in records
                ]
            }
            fn = api.update_with_http_info
        elif op == "create":
            inputs = []
            for r in records:
                inp: dict[str, Any] = {"properties": self._props(r.fields), "objectWriteTraceId": r.key}
                if obj == "contact" and r.account_crm_id:
                    inp["associations"] = [{"to": {"id": r.account_crm_id},
                                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CONTACT_TO_COMPANY}]}]  # fmt: skip
                inputs.append(inp)
            body = {"inputs": inputs}
            fn = api.create_with_http_info
        else:
            if not external_id_field:
                raise CrmError("upsert needs an external id property (a unique-value HubSpot property)")
            body = {"inputs": [{"id": r.external_id, "idProperty": external_id_field, "properties": self._props(r.fields),
                                "objectWriteTraceId": r.key} for r in records]}  # fmt: skip
            fn = api.upsert_with_http_info
        try:
            data = self._write_call(fn, body, RESULT_KEYS + (("new",) if op == "upsert" else ()))
        except BatchRejected as e:
            m = _EXISTING_ID.search(e.message)
            if m and len(records) == 1 and op == "create":
                return [Outcome(records[0].key, False, error=e.message, existing_id=m.group(1))]
            raise
        return self._outcomes(op, records, data, external_id_field)

    def _write_call(self, fn, body: dict, each: tuple[str, ...]) -> dict:
        """A batch write through the client, its JSON answer read as JSON.

        ``_preload_content=False`` hands back the raw response: building the client's model
        objects for 100 results costs more than the HTTP call itself, and the write path only
        needs ids, trace ids and errors. Error statuses still raise the client's ApiException.
        """
        import json

        if self.limiter:
            self.limiter.acquire()
        self.stats.count("write")
        resp = self._call(fn, body, _request_timeout=self.settings.timeout, _preload_content=False)
        self._note(resp.headers)
        try:
            data = json.loads(resp.data)
        except ValueError as e:
            raise MalformedResponse(f"HubSpot sent a body that is not JSON: {e}") from None
        missing = [k for k in BATCH_KEYS if not isinstance(data, dict) or data.get(k) is None]
        if missing:
            raise MalformedResponse(
                f"HubSpot response lacks {', '.join(missing)} (truncated or not the documented shape)"
            )
        for r in data["results"]:
            gaps = [k for k in each if not isinstance(r, dict) or r.get(k) is None]
            if gaps:
                raise MalformedResponse(f"HubSpot result lacks {', '.join(gaps)}")
        return data

    def _outcomes(self, op: str, records: list[WriteRecord], data: dict, ext: str | None) -> list[Outcome]:
        by_key = {r.key: r for r in records}
        by_id = {r.crm_id: r.key for r in records if r.crm_id}
        by_ext = {str(r.external_id): r.key for r in records if r.external_id}
        out: dict[str, Outcome] = {}
        results = data["results"]
        for pos, res in enumerate(results):
            key = res.get("objectWriteTraceId")
            if key not in by_key:
                key = by_id.get(str(res["id"])) if op == "update" else None
            if key is None and op == "upsert" and ext:
                key = by_ext.get(str((res.get("properties") or {}).get(ext)))
            if key is None and op == "create" and len(results) == len(records):
                key = records[pos].key  # created in request order
            if key in by_key:
                created = op == "create" or bool(res.get("new"))
                out[key] = Outcome(key, True, str(res["id"]), created=created)
        unmatched = []
        for err in data.get("errors") or []:
            msg = f"{err.get('category')}: {err.get('message')}"
            ctx = err.get("context") or {}
            keys = [by_id.get(str(i)) for i in ctx.get("ids", [])]
            keys += [k for k in ctx.get("objectWriteTraceId", []) if k in by_key]
            keys = [k for k in keys if k]
            for k in keys:
                out[k] = Outcome(k, False, by_key[k].crm_id, error=msg)
            if not keys:
                unmatched.append(msg)
        if unmatched:
            for r in records:
                if r.key not in out:
                    out[r.key] = Outcome(r.key, False, r.crm_id, error="; ".join(unmatched))
        return list(out.values())

    def close(self) -> None:
        self._apis.clear()


BATCH_NEED = ("status", "results", "started_at", "completed_at")
RESULT_NEED = ("id", "properties", "created_at", "updated_at")
BATCH_KEYS = ("status", "results", "startedAt", "completedAt")  # the same, as JSON keys
RESULT_KEYS = ("id", "properties", "createdAt", "updatedAt")


def _check(data: Any, need: tuple[str, ...], each: tuple[str, ...]) -> None:
    missing = [a for a in need if getattr(data, a, None) is None]
    if missing:
        raise MalformedResponse(
            f"HubSpot response lacks {', '.join(missing)} (truncated or not the documented shape)"
        )
    for r in getattr(data, "results", None) or []:
        gaps = [a for a in each if getattr(r, a, None) is None]
        if gaps:
            raise MalformedResponse(f"HubSpot result lacks {', '.join(gaps)}")


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of a datetime/ISO string (the search API's date format)."""
    if value is None:
        return None
    ts = parse_ts(value)
    return int(ts.timestamp() * 1000) if ts else None
