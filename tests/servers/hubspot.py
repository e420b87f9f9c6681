"""A local HubSpot CRM API: the endpoints Market Map uses, in HubSpot's documented shapes.

- CRM v3 objects (companies, contacts, deals): ``GET /crm/v3/objects/{type}`` (paging,
  ``associations``), ``POST …/batch/read|create|update|upsert`` (≤ 100 inputs; 200/201,
  207 Multi-Status with ``errors``; 400 VALIDATION_ERROR for the whole batch when a
  property value is invalid; 409 CONFLICT for a contact whose e-mail exists),
  ``POST …/search`` (filterGroups, IN/EQ/GTE/LT…, sorts, ``after`` paging, 10,000 cap).
- Properties API ``GET/POST /crm/v3/properties/{type}``; associations v4 batch read;
  owners ``GET /crm/v3/owners/``.
- A rolling-window rate limiter (190 requests / 10 s by default) answering 429 with
  HubSpot's body and ``X-HubSpot-RateLimit-*`` headers (+ ``Retry-After``); every response
  carries the rate-limit headers.

Companies are NOT deduplicated by domain, exactly like HubSpot.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from typing import Any

from servers.common import FakeServer, Request, Response, iso

OBJECT_TYPES = ("companies", "contacts", "deals")
DEFAULT_PROPS = {"hs_object_id", "createdate", "hs_lastmodifieddate"}
CONTACT_TO_COMPANY_PRIMARY = 1


def _prop(name: str, type_: str = "string", field_type: str = "text", label: str | None = None, **kw) -> dict:
    return {
        "name": name,
        "label": label or name,
        "type": type_,
        "fieldType": field_type,
        "groupName": kw.pop("groupName", "companyinformation"),
        "description": "",
        "options": kw.pop("options", []),
        "displayOrder": -1,
        "calculated": kw.pop("calculated", False),
        "externalOptions": False,
        "hasUniqueValue": kw.pop("hasUniqueValue", False),
        "hidden": False,
        "hubspotDefined": kw.pop("hubspotDefined", True),
        "formField": True,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": True,
            "readOnlyValue": kw.pop("readOnlyValue", False),
        },
        "createdAt": "2019-08-06T02:41:52.000Z",
        "updatedAt": "2019-08-06T02:41:52.000Z",
        "archived": False,
    }


def _options(*pairs: tuple[str, str]) -> list[dict]:
    return [
        {"label": lbl, "value": v, "displayOrder": i, "hidden": False, "description": ""}
        for i, (v, lbl) in enumerate(pairs)
    ]


def default_properties() -> dict[str, dict[str, dict]]:
    ro = {"readOnlyValue": True, "calculated": False}
    companies = [
        _prop("name", label="Name"), _prop("domain", label="Company domain name"), _prop("industry"),
        _prop("numberofemployees", "number", "number"), _prop("annualrevenue", "number", "number"),
        _prop("country"), _prop("state"), _prop("city"), _prop("hubspot_owner_id", "enumeration", "select"),
        _prop("type", "enumeration", "select", options=_options(("PROSPECT", "Prospect"), ("CUSTOMER", "Customer"), ("PARTNER", "Partner"))),
        _prop("createdate", "datetime", "date", **ro), _prop("hs_lastmodifieddate", "datetime", "date", **ro),
        _prop("hs_object_id", "number", "number", **ro),
        _prop("hs_ideal_customer_profile", "enumeration", "radio", label="Ideal Customer Profile Tier",
              options=_options(("tier_1", "Tier 1"), ("tier_2", "Tier 2"), ("tier_3", "Tier 3"))),
    ]  # fmt: skip
    contacts = [
        _prop(n, groupName="contactinformation")
        for n in ("email", "firstname", "lastname", "jobtitle", "country")
    ] + [
        _prop("hs_linkedin_url", groupName="contactinformation", label="LinkedIn URL"),
        _prop("hubspot_owner_id", "enumeration", "select", groupName="contactinformation"),
        _prop("associatedcompanyid", "number", "number", groupName="contactinformation", **ro),
        _prop("createdate", "datetime", "date", groupName="contactinformation", **ro),
        _prop("lastmodifieddate", "datetime", "date", groupName="contactinformation", **ro),
        _prop("hs_lastmodifieddate", "datetime", "date", groupName="contactinformation", **ro),
        _prop("hs_object_id", "number", "number", groupName="contactinformation", **ro),
    ]
    deals = [_prop(n, groupName="dealinformation") for n in ("dealname", "dealstage", "dealtype")] + [
        _prop("amount", "number", "number", groupName="dealinformation"),
        _prop("hs_is_closed", "bool", "booleancheckbox", groupName="dealinformation", **ro),
        _prop("hs_is_closed_won", "bool", "booleancheckbox", groupName="dealinformation", **ro),
        _prop("closedate", "datetime", "date", groupName="dealinformation"),
        _prop("hubspot_owner_id", "enumeration", "select", groupName="dealinformation"),
        _prop("createdate", "datetime", "date", groupName="dealinformation", **ro),
        _prop("hs_lastmodifieddate", "datetime", "date", groupName="dealinformation", **ro),
        _prop("hs_object_id", "number", "number", groupName="dealinformation", **ro),
    ]
    return {"companies": {p["name"]: p for p in companies}, "contacts": {p["name"]: p for p in contacts},
            "deals": {p["name"]: p for p in deals}}  # fmt: skip


def _error(status: str, category: str, message: str, **extra) -> dict:
    return {
        "status": status,
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


class _Invalid(Exception):
    def __init__(self, errors: list[dict]):
        self.errors = errors


class HubSpotServer(FakeServer):
    """In-memory HubSpot. ``objects[type][id] = {"id", "properties", "createdAt", "updatedAt"}``."""

    def __init__(self, token: str = "pat-na1-test", rate_limit: tuple[int, float] | None = (190, 10.0),
                 retry_after: bool = True, page_limit: int = 100, daily_limit: int = 1_000_000):  # fmt: skip
        super().__init__()
        self.token = token
        self.rate_limit = rate_limit
        self.send_retry_after = retry_after
        self.page_limit = page_limit
        self.daily_limit = daily_limit
        self.daily_used = 0
        self.throttled = 0
        self._window: deque[float] = deque()
        self.properties = default_properties()
        self.objects: dict[str, dict[str, dict]] = {t: {} for t in OBJECT_TYPES}
        # (from_type, from_id, to_type) -> set of to ids
        self.assoc: dict[tuple[str, str, str], set[str]] = {}
        self.owners: list[dict] = []
        self._ids = itertools.count(1001)

    # ---- state helpers for tests
    def add(
        self, type_: str, properties: dict[str, Any], *, modified: float | None = None, id_: str | None = None
    ) -> str:
        with self.lock:
            oid = id_ or str(next(self._ids))
            ts = iso(modified)
            props = {k: None if v is None else str(v) for k, v in properties.items()}
            props.update(hs_object_id=oid, createdate=ts, hs_lastmodifieddate=ts)
            if type_ == "contacts":
                props["lastmodifieddate"] = ts
            self.objects[type_][oid] = {
                "id": oid,
                "properties": props,
                "createdAt": ts,
                "updatedAt": ts,
                "archived": False,
            }
            _calculated(type_, props)
            return oid

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        with self.lock:
            self.assoc.setdefault((from_type, from_id, to_type), set()).add(to_id)
            self.assoc.setdefault((to_type, to_id, from_type), set()).add(from_id)
            if from_type == "contacts" and to_type == "companies":
                self.objects["contacts"][from_id]["properties"]["associatedcompanyid"] = to_id

    def add_owner(self, oid: str, email: str, first: str, last: str) -> None:
        self.owners.append({"id": oid, "email": email, "firstName": first, "lastName": last, "userId": int(oid),
                            "createdAt": iso(), "updatedAt": iso(), "archived": False, "type": "PERSON", "teams": []})  # fmt: skip

    def get(self, type_: str, oid: str) -> dict[str, Any]:
        return self.objects[type_][oid]["properties"]

    def find_by(self, type_: str, prop: str, value: str) -> list[str]:
        with self.lock:
            return [
                o
                for o, r in self.objects[type_].items()
                if (r["properties"].get(prop) or "").lower() == value.lower()
            ]

    # ---- request pipeline
    def before(self, req: Request) -> Response | None:
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return Response(
                401, _error("error", "INVALID_AUTHENTICATION", "Authentication credentials not found.")
            )
        if self.rate_limit:
            limit, window = self.rate_limit
            with self.lock:
                now = time.monotonic()
                while self._window and now - self._window[0] >= window:
                    self._window.popleft()
                if len(self._window) >= limit:
                    self.throttled += 1
                    wait = window - (now - self._window[0])
                    headers = self._limit_headers(0)
                    if self.send_retry_after:
                        headers["Retry-After"] = str(
                            max(1, round(wait + 0.5)) if wait >= 1 else round(wait, 3)
                        )
                    return Response(429, {**_error("error", "RATE_LIMITS", "You have reached your ten_secondly_rolling limit."),
                                          "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}, headers)  # fmt: skip
                self._window.append(now)
                self.daily_used += 1
        return None

    def _limit_headers(self, remaining: int | None = None) -> dict[str, str]:
        limit, window = self.rate_limit or (190, 10.0)
        if remaining is None:
            remaining = max(0, limit - len(self._window))
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }

    def decorate(self, req: Request, resp: Response) -> None:
        if resp.status != 429:
            with self.lock:
                resp.headers.update(self._limit_headers())

    def route(self, req: Request) -> Response:
        p = req.path.rstrip("/").split("/")
        # /crm/v3/objects/{type}[/batch/{op} | /search]
        if p[1:4] == ["crm", "v3", "objects"] and len(p) >= 5 and p[4] in OBJECT_TYPES:
            type_ = p[4]
            if len(p) == 5 and req.method == "GET":
                return self._list(type_, req)
            if len(p) == 6 and p[5] == "search" and req.method == "POST":
                return self._search(type_, req.body or {})
            if len(p) == 7 and p[5] == "batch" and req.method == "POST":
                return getattr(self, f"_batch_{p[6]}")(type_, req.body or {})
        if p[1:4] == ["crm", "v3", "properties"] and len(p) == 5:
            type_ = p[4]
            if req.method == "GET":
                return Response(200, {"results": list(self.properties[type_].values())})
            if req.method == "POST":
                return self._create_property(type_, req.body or {})
        if p[1:4] == ["crm", "v3", "properties"] and len(p) == 6 and req.method == "PATCH":
            return self._update_property(p[4], p[5], req.body or {})
        if p[1:4] == ["crm", "v4", "associations"] and len(p) == 8 and p[6:8] == ["batch", "read"]:
            return self._assoc_read(p[4], p[5], req.body or {})
        if p[1:4] == ["crm", "v3", "owners"]:
            return self._owners(req)
        return Response(404, _error("error", "OBJECT_NOT_FOUND", f"No route for {req.method} {req.path}"))

    # ---- objects
    def _public(self, type_: str, rec: dict, props: list[str] | None, assoc: list[str] | None = None) -> dict:
        wanted = set(props or []) | DEFAULT_PROPS
        out = {
            "id": rec["id"],
            "properties": {k: v for k, v in rec["properties"].items() if k in wanted},
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
            "archived": False,
        }
        for k in props or []:
            out["properties"].setdefault(k, None)
        if assoc:
            out["associations"] = {}
            for to in assoc:
                ids = sorted(self.assoc.get((type_, rec["id"], to), set()))
                if ids:
                    out["associations"][to] = {
                        "results": [{"id": i, "type": f"{type_[:-1]}_to_{to[:-1]}"} for i in ids]
                    }
        return out

    def _list(self, type_: str, req: Request) -> Response:
        limit = min(int(req.q("limit", "10")), self.page_limit)
        after = int(req.q("after", "0") or 0)
        props = [x for v in req.query.get("properties", []) for x in v.split(",") if x]
        assoc = [x for v in req.query.get("associations", []) for x in v.split(",") if x]
        with self.lock:
            ids = sorted(self.objects[type_], key=int)
            page = ids[after : after + limit]
            results = [self._public(type_, self.objects[type_][i], props, assoc) for i in page]
        body: dict[str, Any] = {"results": results}
        if after + limit < len(ids):
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{self.url}{req.path}?after={nxt}"}}
        return Response(200, body)

    def _validate(self, type_: str, props: dict[str, Any]) -> list[dict]:
        errors = []
        for name, value in props.items():
            meta = self.properties[type_].get(name)
            if meta is None:
                errors.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
                continue
            if meta["modificationMetadata"]["readOnlyValue"] or meta["calculated"]:
                errors.append(
                    {
                        "isValid": False,
                        "message": f'"{name}" is a read only property; its value cannot be set.',
                        "error": "READ_ONLY_VALUE",
                        "name": name,
                    }
                )
                continue
            if value in (None, ""):
                continue
            if meta["type"] == "enumeration" and meta["options"] and meta["fieldType"] != "checkbox":
                allowed = [o["value"] for o in meta["options"]]
                if str(value) not in allowed:
                    errors.append({"isValid": False, "message": f"{value} was not one of the allowed options: {allowed}",
                                   "error": "INVALID_OPTION", "name": name})  # fmt: skip
            elif meta["type"] == "number":
                try:
                    float(value)
                except (TypeError, ValueError):
                    errors.append(
                        {
                            "isValid": False,
                            "message": f"{value} is not a valid number",
                            "error": "INVALID_DOUBLE",
                            "name": name,
                        }
                    )
            elif meta["type"] == "bool" and str(value).lower() not in ("true", "false"):
                errors.append(
                    {
                        "isValid": False,
                        "message": f"{value} is not a valid boolean",
                        "error": "INVALID_BOOLEAN",
                        "name": name,
                    }
                )
        return errors

    def _validation_response(self, errors: list[dict]) -> Response:
        import json

        return Response(400, _error("error", "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(errors)}",
                                    errors=[{"message": e["message"], "code": e["error"], "context": {"propertyName": [e["name"]]}} for e in errors]))  # fmt: skip

    def _batch_envelope(
        self, results: list[dict], errors: list[dict], started: str, ok_status: int = 200
    ) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso(),
        }
        if errors:
            body.update(numErrors=len(errors), errors=errors)
            return Response(207, body)
        return Response(ok_status, body)

    def _batch_error(self, category: str, message: str, context: dict[str, list[str]]) -> dict:
        return {
            "status": "error",
            "category": category,
            "message": message,
            "context": context,
            "links": {},
            "errors": [],
        }

    def _check_inputs(self, body: dict) -> Response | None:
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            return Response(
                400, _error("error", "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")
            )
        if len(inputs) > 100:
            return Response(
                400,
                _error(
                    "error", "VALIDATION_ERROR", f"Batch input size {len(inputs)} is above the limit of 100"
                ),
            )
        return None

    def _touch(self, rec: dict, props: dict[str, Any]) -> None:
        ts = iso()
        for k, v in props.items():
            rec["properties"][k] = None if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        _calculated("deals" if "dealstage" in rec["properties"] else "", rec["properties"])
        rec["properties"]["hs_lastmodifieddate"] = ts
        if "lastmodifieddate" in rec["properties"]:
            rec["properties"]["lastmodifieddate"] = ts
        rec["updatedAt"] = ts

    def _batch_read(self, type_: str, body: dict) -> Response:
        bad = self._check_inputs(body)
        if bad:
            return bad
        started, props = iso(), body.get("properties") or []
        id_prop = body.get("idProperty")
        results, missing = [], []
        with self.lock:
            for inp in body["inputs"]:
                oid = str(inp.get("id"))
                if id_prop:
                    hits = self.find_by(type_, id_prop, oid)
                    oid = hits[0] if hits else ""
                if oid in self.objects[type_]:
                    results.append(self._public(type_, self.objects[type_][oid], props))
                else:
                    missing.append(str(inp.get("id")))
        errors = (
            [
                self._batch_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some objects, they may be deleted or not exist.",
                    {"ids": missing},
                )
            ]
            if missing
            else []
        )
        return self._batch_envelope(results, errors, started)

    def _batch_create(self, type_: str, body: dict) -> Response:
        bad = self._check_inputs(body)
        if bad:
            return bad
        started = iso()
        with self.lock:
            errors = [e for inp in body["inputs"] for e in self._validate(type_, inp.get("properties") or {})]
            if errors:
                return self._validation_response(errors)
            if type_ == "contacts":
                seen: set[str] = set()
                for inp in body["inputs"]:
                    email = (inp.get("properties") or {}).get("email")
                    if email:
                        hits = self.find_by("contacts", "email", email)
                        if hits or email.lower() in seen:
                            existing = hits[0] if hits else "?"
                            return Response(
                                409,
                                _error(
                                    "error", "CONFLICT", f"Contact already exists. Existing ID: {existing}"
                                ),
                            )
                        seen.add(email.lower())
            for name, meta in self.properties[type_].items():
                if meta["hasUniqueValue"]:
                    for inp in body["inputs"]:
                        v = (inp.get("properties") or {}).get(name)
                        if v and self.find_by(type_, name, str(v)):
                            return Response(
                                409,
                                _error("error", "CONFLICT", f"A {type_[:-1]} with {name}={v} already exists"),
                            )
            results = []
            for inp in body["inputs"]:
                oid = self.add(type_, {k: v for k, v in (inp.get("properties") or {}).items()})
                for a in inp.get("associations") or []:
                    to_id = str(a["to"]["id"])
                    to_type = "companies" if type_ != "companies" else "contacts"
                    if to_id in self.objects[to_type]:
                        self.associate(type_, oid, to_type, to_id)
                out = self._public(
                    type_, self.objects[type_][oid], list((inp.get("properties") or {}).keys())
                )
                if inp.get("objectWriteTraceId"):
                    out["objectWriteTraceId"] = inp["objectWriteTraceId"]
                results.append(out)
        return self._batch_envelope(results, [], started, ok_status=201)

    def _batch_update(self, type_: str, body: dict) -> Response:
        bad = self._check_inputs(body)
        if bad:
            return bad
        started = iso()
        with self.lock:
            ids = [str(inp.get("id")) for inp in body["inputs"]]
            if len(set(ids)) != len(ids):
                return Response(
                    400, _error("error", "VALIDATION_ERROR", "Duplicate IDs found in batch input")
                )
            errors = [e for inp in body["inputs"] for e in self._validate(type_, inp.get("properties") or {})]
            if errors:
                return self._validation_response(errors)
            results, missing = [], []
            for inp in body["inputs"]:
                oid = str(inp.get("id"))
                rec = self.objects[type_].get(oid)
                if rec is None:
                    missing.append(oid)
                    continue
                self._touch(rec, inp.get("properties") or {})
                out = self._public(type_, rec, list((inp.get("properties") or {}).keys()))
                if inp.get("objectWriteTraceId"):
                    out["objectWriteTraceId"] = inp["objectWriteTraceId"]
                results.append(out)
        errors = (
            [
                self._batch_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {type_} objects, they may be deleted or not exist. Check that ids are valid.",
                    {"ids": missing},
                )
            ]
            if missing
            else []
        )
        return self._batch_envelope(results, errors, started)

    def _batch_upsert(self, type_: str, body: dict) -> Response:
        bad = self._check_inputs(body)
        if bad:
            return bad
        started = iso()
        with self.lock:
            errors = [e for inp in body["inputs"] for e in self._validate(type_, inp.get("properties") or {})]
            if errors:
                return self._validation_response(errors)
            results = []
            for inp in body["inputs"]:
                prop = inp.get("idProperty")
                meta = self.properties[type_].get(prop or "")
                if not meta or not meta["hasUniqueValue"]:
                    return Response(
                        400,
                        _error(
                            "error", "VALIDATION_ERROR", f"idProperty {prop} is not a unique-value property"
                        ),
                    )
                hits = self.find_by(type_, prop, str(inp["id"]))
                props = {**(inp.get("properties") or {}), prop: inp["id"]}
                if hits:
                    rec = self.objects[type_][hits[0]]
                    self._touch(rec, props)
                    new = False
                else:
                    rec = self.objects[type_][self.add(type_, props)]
                    new = True
                out = self._public(type_, rec, list(props.keys()))
                out["new"] = new
                if inp.get("objectWriteTraceId"):
                    out["objectWriteTraceId"] = inp["objectWriteTraceId"]
                results.append(out)
        return self._batch_envelope(results, [], started)

    # ---- search
    def _search(self, type_: str, body: dict) -> Response:
        limit = min(int(body.get("limit") or 10), 200)
        after = int(body.get("after") or 0)
        if after + limit > 10_000:
            return Response(
                400,
                _error(
                    "error",
                    "VALIDATION_ERROR",
                    "The search API can return at most 10,000 results; narrow the filters",
                ),
            )
        groups = body.get("filterGroups") or []
        with self.lock:
            recs = [
                r
                for r in self.objects[type_].values()
                if not groups or any(self._group(r, g) for g in groups)
            ]
            for s in reversed(
                body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
            ):
                if isinstance(s, str):
                    s = {
                        "propertyName": s.lstrip("-"),
                        "direction": "DESCENDING" if s.startswith("-") else "ASCENDING",
                    }
                name = s["propertyName"]
                recs.sort(
                    key=lambda r, n=name: _sort_key(r["properties"].get(n)),
                    reverse=s.get("direction") == "DESCENDING",
                )
            page = recs[after : after + limit]
            results = [self._public(type_, r, body.get("properties")) for r in page]
        out: dict[str, Any] = {"total": len(recs), "results": results}
        if after + limit < len(recs):
            out["paging"] = {"next": {"after": str(after + limit), "link": ""}}
        return Response(200, out)

    def _group(self, rec: dict, group: dict) -> bool:
        return all(self._filter(rec, f) for f in group.get("filters") or [])

    def _filter(self, rec: dict, f: dict) -> bool:
        v = rec["properties"].get(f["propertyName"])
        op = f.get("operator", "EQ")
        if op == "HAS_PROPERTY":
            return v not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return v in (None, "")
        if op in ("IN", "NOT_IN"):
            vals = {str(x).lower() for x in f.get("values") or []}
            hit = v is not None and str(v).lower() in vals
            return hit if op == "IN" else not hit
        if v is None:
            return False
        a, b = _sort_key(v), _sort_key(f.get("value"))
        if op == "EQ":
            return str(v).lower() == str(f.get("value")).lower()
        if op == "NEQ":
            return str(v).lower() != str(f.get("value")).lower()
        if op == "CONTAINS_TOKEN":
            return str(f.get("value")).lower().strip("*") in str(v).lower()
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]

    # ---- properties, associations, owners
    def _create_property(self, type_: str, body: dict) -> Response:
        required = ["name", "label", "type", "fieldType", "groupName"]
        missing = [k for k in required if not body.get(k)]
        if missing:
            return Response(400, _error("error", "VALIDATION_ERROR", f"missing {missing}"))
        with self.lock:
            if body["name"] in self.properties[type_]:
                return Response(
                    409, _error("error", "CONFLICT", f"A property named '{body['name']}' already exists.")
                )
            prop = _prop(body["name"], body["type"], body["fieldType"], body["label"], groupName=body["groupName"],
                         options=[{"displayOrder": i, "hidden": False, "description": "", **o} for i, o in enumerate(body.get("options") or [])],
                         hasUniqueValue=bool(body.get("hasUniqueValue")), hubspotDefined=False)  # fmt: skip
            self.properties[type_][body["name"]] = prop
        return Response(201, prop)

    def _update_property(self, type_: str, name: str, body: dict) -> Response:
        """PATCH a property: ``options`` replaces the whole option list (HubSpot-defined
        properties' options cannot be changed)."""
        with self.lock:
            prop = self.properties[type_].get(name)
            if prop is None:
                return Response(404, _error("error", "OBJECT_NOT_FOUND", f"Property {name} does not exist"))
            if "options" in body:
                if prop.get("hubspotDefined"):
                    return Response(400, _error("error", "VALIDATION_ERROR",
                                                f"The options of HubSpot-defined property {name} cannot be changed"))  # fmt: skip
                prop["options"] = [{"displayOrder": i, "hidden": False, "description": "", **o}
                                   for i, o in enumerate(body["options"])]  # fmt: skip
            if body.get("label"):
                prop["label"] = body["label"]
            prop["updatedAt"] = iso()
        return Response(200, prop)

    def _assoc_read(self, from_type: str, to_type: str, body: dict) -> Response:
        started, results, missing = iso(), [], []
        with self.lock:
            for inp in body.get("inputs") or []:
                oid = str(inp.get("id"))
                if oid not in self.objects.get(from_type, {}):
                    missing.append(oid)
                    continue
                to = sorted(self.assoc.get((from_type, oid, to_type), set()), key=int)
                if to:
                    results.append({"from": {"id": oid}, "to": [
                        {"toObjectId": int(x), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": CONTACT_TO_COMPANY_PRIMARY, "label": "Primary"}]}
                        for x in to]})  # fmt: skip
        errors = (
            [self._batch_error("OBJECT_NOT_FOUND", "No objects found", {"ids": missing})] if missing else []
        )
        return self._batch_envelope(results, errors, started)

    def _owners(self, req: Request) -> Response:
        limit = int(req.q("limit", "100"))
        after = int(req.q("after", "0") or 0)
        page = self.owners[after : after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(self.owners):
            body["paging"] = {"next": {"after": str(after + limit), "link": ""}}
        return Response(200, body)


def _sort_key(v: Any) -> Any:
    """Numbers and ISO timestamps compare as values; everything else as lower-case text."""
    if v is None:
        return (0, "")
    s = str(v)
    try:
        return (1, float(s))
    except ValueError:
        pass
    if len(s) >= 10 and s[4] == "-" and s[7] == "-":
        import datetime as dt

        try:
            return (1, dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    return (2, s.lower())


def _calculated(type_: str, props: dict[str, Any]) -> None:
    """HubSpot's calculated deal properties: closed / closed-won follow the pipeline stage."""
    if type_ == "deals":
        stage = (props.get("dealstage") or "").lower()
        props["hs_is_closed"] = "true" if stage in ("closedwon", "closedlost") else "false"
        props["hs_is_closed_won"] = "true" if stage == "closedwon" else "false"
