"""A local Salesforce REST API: the endpoints Market Map uses, in Salesforce's documented shapes.

- ``GET /services/data/vXX.X/query?q=SOQL`` and ``…/query/<cursor>`` (queryMore via
  ``nextRecordsUrl``), a SOQL subset: ``SELECT f, … | COUNT() FROM Obj [WHERE …]
  [ORDER BY f [ASC|DESC]] [LIMIT n]`` with AND/OR/NOT, parentheses, ``= != < <= > >=``,
  ``IN (…)``, ``LIKE``, string/number/boolean/null/date-time literals.
- ``GET …/sobjects/{Obj}/describe`` (fields, types, picklistValues, updateable,
  createable, externalId).
- sObject Collections: ``POST|PATCH …/composite/sobjects`` and
  ``PATCH …/composite/sobjects/{Obj}/{ExternalIdField}`` (≤ 200 records, ``allOrNone``,
  SaveResult/UpsertResult lists in request order; whole-request 400s for unknown fields
  and malformed values; per-record errors for restricted picklists, missing ids,
  required fields and duplicate rules honouring ``Sforce-Duplicate-Rule-Header``).
- Bulk API 2.0 ingest (create job, PUT batches → 201, PATCH UploadComplete, job info,
  successfulResults / failedResults / unprocessedrecords; empty cells are ignored on
  update, ``#N/A`` clears) and query (job, results with ``Sforce-Locator`` and
  ``Sforce-NumberOfRecords``).
- ``Sforce-Limit-Info: api-usage=N/LIMIT`` on every response; 403
  REQUEST_LIMIT_EXCEEDED past the daily limit.

Tests reach it with the real simple-salesforce, whose URLs are always https: mount
:func:`https_to_http` on the requests session (see :meth:`SalesforceServer.mounts`).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import re
import uuid
from typing import Any

from requests.adapters import HTTPAdapter

from servers.common import FakeServer, Request, Response, iso

API = "59.0"
PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "User": "005"}
NUMBER_TYPES = {"double", "currency", "percent", "int", "long"}


class https_to_http(HTTPAdapter):  # noqa: N801 - reads as what it does when mounted
    """Send simple-salesforce's https:// requests to the local plain-HTTP server."""

    def send(self, request, **kwargs):
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, **kwargs)


def field(name: str, type_: str = "string", **kw) -> dict:
    picklist = kw.pop("picklist", None) or []
    return {
        "name": name,
        "label": kw.pop("label", name.replace("__c", "").replace("_", " ")),
        "type": type_,
        "length": 255 if type_ in ("string", "url", "email", "picklist", "textarea") else 0,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "value": v, "validFor": None}
            for v in picklist
        ],
        "restrictedPicklist": kw.pop("restricted", bool(picklist)),
        "updateable": kw.pop("updateable", True),
        "createable": kw.pop("createable", True),
        "nillable": kw.pop("nillable", True),
        "externalId": kw.pop("externalId", False),
        "unique": kw.pop("unique", False),
        "custom": name.endswith("__c"),
        "calculated": False,
    }


def _ro(name: str, type_: str) -> dict:
    return field(name, type_, updateable=False, createable=False)


def default_describe() -> dict[str, dict[str, dict]]:
    acc = [
        _ro("Id", "id"), field("Name", nillable=False), field("Website", "url"),
        field("Industry", "picklist", picklist=["Software", "Technology", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Government"], restricted=False),
        field("NumberOfEmployees", "int"), field("AnnualRevenue", "currency"), field("BillingCountry"),
        field("BillingState"), field("BillingCity"), field("OwnerId", "reference"),
        field("Type", "picklist", picklist=["Prospect", "Customer - Direct", "Partner", "Competitor"], restricted=False),
        _ro("CreatedDate", "datetime"), _ro("LastModifiedDate", "datetime"), _ro("SystemModstamp", "datetime"),
    ]  # fmt: skip
    con = [
        _ro("Id", "id"), field("FirstName"), field("LastName", nillable=False), field("Email", "email"),
        field("Title"), field("Department"), field("AccountId", "reference"), field("MailingCountry"),
        field("OwnerId", "reference"), _ro("CreatedDate", "datetime"), _ro("LastModifiedDate", "datetime"),
    ]  # fmt: skip
    opp = [
        _ro("Id", "id"), field("Name"), field("StageName", "picklist", picklist=["Prospecting", "Closed Won", "Closed Lost"], restricted=False),
        field("Amount", "currency"), _ro("IsClosed", "boolean"), _ro("IsWon", "boolean"), _ro("CreatedDate", "datetime"),
        field("CloseDate", "date"), field("OwnerId", "reference"), field("Type"), field("AccountId", "reference"),
        _ro("LastModifiedDate", "datetime"),
    ]  # fmt: skip
    user = [_ro("Id", "id"), field("Name"), field("Email", "email"), field("IsActive", "boolean")]
    return {
        o: {f["name"]: f for f in fs}
        for o, fs in (("Account", acc), ("Contact", con), ("Opportunity", opp), ("User", user))
    }


def sf_datetime(ts: dt.datetime | None = None) -> str:
    ts = ts or dt.datetime.now(dt.UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"


def _errors(code: str, message: str, fields: list[str] | None = None) -> list[dict]:
    return [{"statusCode": code, "message": message, "fields": fields or []}]


def _domain(url: Any) -> str | None:
    if not url:
        return None
    s = re.sub(r"^[a-z]+://", "", str(url).strip().lower()).split("/")[0].split(":")[0]
    return s[4:] if s.startswith("www.") else s or None


# ------------------------------------------------------------------------------------- SOQL


@functools.cache
def _site_domain(website: str) -> str | None:
    return _domain(website)


class SoqlError(Exception):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError(f"unexpected token at: {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _literal(kind: str, v: str) -> Any:
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", v[1:-1])
    if kind == "num":
        return float(v)
    if kind == "dt":
        return _to_dt(v)
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    raise SoqlError(f"unexpected value {v!r}")


def _to_dt(v: Any) -> dt.datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v
    s = str(v).replace("Z", "+00:00")
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    d = dt.datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=dt.UTC)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.t, self.i = tokens, 0

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.t):
            return False
        return word is None or self.t[self.i][1].upper() == word

    def take(self, word: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.t) or (word and self.t[self.i][1].upper() != word):
            raise SoqlError(f"expected {word or 'more'} near token {self.i}")
        self.i += 1
        return self.t[self.i - 1]

    def or_expr(self):
        parts = [self.and_expr()]
        while self.peek("OR"):
            self.take()
            parts.append(self.and_expr())
        return ("or", parts)

    def and_expr(self):
        parts = [self.not_expr()]
        while self.peek("AND"):
            self.take()
            parts.append(self.not_expr())
        return ("and", parts)

    def not_expr(self):
        if self.peek("NOT"):
            self.take()
            return ("not", self.atom())
        return self.atom()

    def atom(self):
        if self.peek("("):
            self.take("(")
            e = self.or_expr()
            self.take(")")
            return e
        _, name = self.take()
        negate = False
        if self.peek("NOT"):
            self.take()
            negate = True
        kind, op = self.take()
        op = op.upper()
        if op == "IN":
            self.take("(")
            vals = []
            while True:
                vals.append(_literal(*self.take()))
                if self.peek(","):
                    self.take()
                    continue
                self.take(")")
                break
            return ("in", name, vals, negate)
        if op == "LIKE":
            return ("like", name, _literal(*self.take()))
        return ("cmp", name, op, _literal(*self.take()))


def parse_soql(q: str) -> dict:
    toks = _tokens(q)
    p = _Parser(toks)
    p.take("SELECT")
    fields, count = [], False
    if p.peek("COUNT"):
        p.take()
        p.take("(")
        p.take(")")
        count = True
    else:
        while True:
            fields.append(p.take()[1])
            if p.peek(","):
                p.take()
                continue
            break
    p.take("FROM")
    obj = p.take()[1]
    where = order = limit = None
    desc = False
    if p.peek("WHERE"):
        p.take()
        where = p.or_expr()
    if p.peek("ORDER"):
        p.take()
        p.take("BY")
        order = p.take()[1]
        if p.peek("ASC") or p.peek("DESC"):
            desc = p.take()[1].upper() == "DESC"
    if p.peek("LIMIT"):
        p.take()
        limit = int(float(p.take()[1]))
    if p.i != len(toks):
        raise SoqlError(f"unexpected token {toks[p.i][1]!r}")
    return {
        "fields": fields,
        "count": count,
        "object": obj,
        "where": where,
        "order": order,
        "desc": desc,
        "limit": limit,
    }


def _cmp_value(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(b, dt.datetime):
        return _to_dt(a), b
    if isinstance(b, float) and a is not None:
        return float(a), b
    if isinstance(a, str) and isinstance(b, str):
        return a.lower(), b.lower()
    return a, b


def _norm(v: Any) -> Any:
    """How IN compares: numbers as floats, text case-insensitively."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return str(v).lower()


def _eval(e, rec: dict) -> bool:
    kind = e[0]
    if kind == "or":
        return any(_eval(x, rec) for x in e[1])
    if kind == "and":
        return all(_eval(x, rec) for x in e[1])
    if kind == "not":
        return not _eval(e[1], rec)
    if kind == "in":
        v = rec.get(e[1])
        return (v is not None and _norm(v) in e[2]) != e[3]
    if kind == "like":
        v = rec.get(e[1])
        return v is not None and e[2].match(str(v).lower()) is not None
    if kind == "search":
        v = rec.get(e[1])
        return v is not None and e[2].search(str(v).lower()) is not None
    _, name, op, lit = e
    v = rec.get(name)
    if lit is None:
        return (v is None) if op == "=" else (v is not None)
    if v is None:
        return op in ("!=", "<>")
    a, b = _cmp_value(v, lit)
    return {"=": a == b, "!=": a != b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


# ------------------------------------------------------------------------------------- server


class SalesforceServer(FakeServer):
    """In-memory Salesforce org. ``records[Obj][Id] = {field: value}``."""

    def __init__(self, token: str = "00Dxx0000000001!test-session", page_size: int = 2000,
                 daily_limit: int = 100_000, duplicate_rules: bool = True, bulk_polls: int = 1):  # fmt: skip
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.daily_limit = daily_limit
        self.api_used = 0
        self.duplicate_rules = duplicate_rules
        self.bulk_polls = bulk_polls  # GETs of a job before it reports JobComplete
        self.describe = default_describe()
        self.records: dict[str, dict[str, dict]] = {o: {} for o in self.describe}
        self._seq = itertools.count(1)
        self._cursors: dict[str, tuple[list[dict], list[str], str]] = {}
        self.jobs: dict[str, dict] = {}
        self.dup_headers: list[str | None] = []  # Sforce-Duplicate-Rule-Header of each collection write
        self.soql: list[str] = []  # every SOQL query received
        # Tooling API CustomField creation needs "Customize Application"; False answers 403
        self.can_customize = True
        # record (Id or external-id value) -> times its next collection writes fail with
        # UNABLE_TO_LOCK_ROW (another transaction holds the row: a per-row transient error)
        self.locked_rows: dict[str, int] = {}

    # ---- state helpers for tests
    def mounts(self) -> dict[str, HTTPAdapter]:
        return {f"https://127.0.0.1:{self.port}": https_to_http()}

    @property
    def instance_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def add_field(self, obj: str, name: str, type_: str = "string", **kw) -> None:
        with self.lock:
            self.describe[obj][name] = field(name, type_, **kw)

    def new_id(self, obj: str) -> str:
        n = next(self._seq)
        return f"{PREFIX.get(obj, 'a00')}{n:012d}AAA"

    def add(self, obj: str, values: dict[str, Any], *, modified: dt.datetime | None = None) -> str:
        with self.lock:
            rid = self.new_id(obj)
            ts = sf_datetime(modified)
            rec = {f: None for f in self.describe[obj]}
            rec.update(values)
            rec.update(Id=rid)
            for k in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
                if k in rec:
                    rec[k] = ts
            self.records[obj][rid] = rec
            return rid

    def get(self, obj: str, rid: str) -> dict[str, Any]:
        return self.records[obj][rid]

    def where(self, obj: str, **match: Any) -> list[dict]:
        with self.lock:
            return [r for r in self.records[obj].values() if all(r.get(k) == v for k, v in match.items())]

    # ---- pipeline
    def before(self, req: Request) -> Response | None:
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return Response(
                401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            )
        with self.lock:
            self.api_used += 1
            if self.api_used > self.daily_limit:
                return Response(
                    403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
                )
        return None

    def decorate(self, req: Request, resp: Response) -> None:
        resp.headers["Sforce-Limit-Info"] = (
            f"api-usage={min(self.api_used, self.daily_limit)}/{self.daily_limit}"
        )

    def route(self, req: Request) -> Response:
        m = re.match(r"^/services/data/v[\d.]+/(.*)$", req.path)
        if not m:
            return Response(
                404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            )
        rest = m.group(1).rstrip("/")
        if rest == "query" and req.method == "GET":
            return self._query(req.q("q") or "")
        if rest.startswith("query/") and req.method == "GET":
            return self._query_more(rest.split("/", 1)[1])
        d = re.match(r"^sobjects/(\w+)/describe$", rest)
        if d and req.method == "GET":
            obj = d.group(1)
            if obj not in self.describe:
                return Response(
                    404,
                    [{"errorCode": "NOT_FOUND", "message": f"The requested resource does not exist: {obj}"}],
                )
            return Response(200, {"name": obj, "label": obj, "custom": False, "createable": True, "updateable": True,
                                  "queryable": True, "fields": list(self.describe[obj].values())})  # fmt: skip
        if rest == "composite/sobjects" and req.method in ("POST", "PATCH"):
            return self._collection("create" if req.method == "POST" else "update", req)
        u = re.match(r"^composite/sobjects/(\w+)/(\w+)$", rest)
        if u and req.method == "PATCH":
            return self._collection("upsert", req, u.group(1), u.group(2))
        if rest == "tooling/sobjects/CustomField" and req.method == "POST":
            return self._tooling_custom_field(req.body or {})
        if rest.startswith("jobs/ingest"):
            return self._ingest(req, rest)
        if rest.startswith("jobs/query"):
            return self._bulk_query(req, rest)
        return Response(
            404, [{"errorCode": "NOT_FOUND", "message": f"The requested resource does not exist: {rest}"}]
        )

    # ---- Tooling API
    def _tooling_custom_field(self, body: dict) -> Response:
        """``POST tooling/sobjects/CustomField`` {FullName: Obj.Name__c, Metadata: {type, label, …}}."""
        if not self.can_customize:
            return Response(403, [{"errorCode": "INSUFFICIENT_ACCESS",
                                   "message": "insufficient access rights on cross-reference id"}])  # fmt: skip
        full = str(body.get("FullName") or "")
        meta = body.get("Metadata") or {}
        obj, _, name = full.partition(".")
        if obj not in self.describe or not name.endswith("__c") or not meta.get("type"):
            return Response(
                400, [{"errorCode": "INVALID_FIELD", "message": f"invalid FullName or Metadata: {full}"}]
            )
        if name in self.describe[obj]:
            return Response(400, [{"errorCode": "DUPLICATE_DEVELOPER_NAME",
                                   "message": f"There is already a field named {name} on {obj}."}])  # fmt: skip
        kind = {"Picklist": "picklist", "Number": "double", "Checkbox": "boolean", "Text": "string"}.get(
            meta["type"]
        )
        if kind is None:
            return Response(
                400, [{"errorCode": "INVALID_TYPE", "message": f"unsupported type {meta['type']}"}]
            )
        values = [
            v["fullName"]
            for v in ((meta.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value", [])
        ]
        self.add_field(obj, name, kind, picklist=values, label=meta.get("label"))
        with self.lock:
            for rec in self.records[obj].values():
                rec.setdefault(name, None)
        return Response(
            201, {"id": f"00N{next(self._seq):012d}AAA", "success": True, "errors": [], "warnings": []}
        )

    # ---- query
    def _select(self, q: str) -> tuple[dict, list[dict]]:
        self.soql.append(q)
        p = parse_soql(q)
        obj = p["object"]
        if obj not in self.describe:
            raise SoqlError(f"sObject type '{obj}' is not supported.")
        names = {n.lower(): n for n in self.describe[obj]}
        used = list(p["fields"]) + ([p["order"]] if p["order"] else [])

        def walk(e):
            if e is None:
                return
            if e[0] in ("or", "and"):
                for x in e[1]:
                    walk(x)
            elif e[0] == "not":
                walk(e[1])
            else:
                used.append(e[1])

        walk(p["where"])
        bad = [f for f in used if f.lower() not in names]
        if bad:
            raise SoqlError(f"No such column '{bad[0]}' on entity '{obj}'.|INVALID_FIELD")

        def canon(e):
            if e is None:
                return None
            if e[0] in ("or", "and"):
                kids = [canon(x) for x in e[1]]
                if (
                    e[0] == "or"
                    and len(kids) > 1
                    and all(k[0] == "like" and k[1] == kids[0][1] for k in kids)
                ):
                    # many LIKEs on one field (domain look-ups): one alternation, matched in C;
                    # '%literal%' patterns become one unanchored search (no .* backtracking)
                    lits = [k[3] for k in kids if len(k) > 3]
                    if len(lits) == len(kids):
                        return ("search", kids[0][1], re.compile("|".join(re.escape(x) for x in lits)))
                    return (
                        "like",
                        kids[0][1],
                        re.compile("|".join(f"(?:{k[2].pattern})" for k in kids), re.S),
                    )
                return (e[0], kids)
            if e[0] == "not":
                return ("not", canon(e[1]))
            name = names[e[1].lower()]
            if e[0] == "in":  # a set: membership, not a scan of the list per record
                return ("in", name, frozenset(_norm(x) for x in e[2] if x is not None), e[3])
            if e[0] == "like":
                rx = (
                    "^"
                    + ".*".join(re.escape(part).replace("_", ".") for part in str(e[2]).lower().split("%"))
                    + "$"
                )
                pat = str(e[2]).lower()
                inner = pat[1:-1]
                if len(pat) > 2 and pat[0] == pat[-1] == "%" and not set(inner) & {"%", "_"}:
                    return ("like", name, re.compile(rx, re.S), inner)  # the literal, for an OR of them
                return ("like", name, re.compile(rx, re.S))
            return (e[0], name, *e[2:])

        p["fields"] = [names[f.lower()] for f in p["fields"]]
        where = canon(p["where"])
        with self.lock:
            rows = [r for r in self.records[obj].values() if where is None or _eval(where, r)]
        if p["order"]:
            key = names[p["order"].lower()]
            rows.sort(key=lambda r: (r.get(key) is None, str(r.get(key) or "")), reverse=p["desc"])
        if p["limit"] is not None:
            rows = rows[: p["limit"]]
        return p, rows

    def _soql_error(self, e: SoqlError) -> Response:
        msg, _, code = str(e).partition("|")
        return Response(400, [{"message": msg, "errorCode": code or "MALFORMED_QUERY"}])

    def _query(self, q: str) -> Response:
        try:
            p, rows = self._select(q)
        except SoqlError as e:
            return self._soql_error(e)
        if p["count"]:
            return Response(200, {"totalSize": len(rows), "done": True, "records": []})
        cursor = f"01g{uuid.uuid4().hex[:15]}"
        with self.lock:
            self._cursors[cursor] = (rows, p["fields"], p["object"])
        return self._page(cursor, 0)

    def _page(self, cursor: str, offset: int) -> Response:
        rows, fields, obj = self._cursors[cursor]
        chunk = rows[offset : offset + self.page_size]
        recs = [{"attributes": {"type": obj, "url": f"/services/data/v{API}/sobjects/{obj}/{r['Id']}"},
                 **{f: r.get(f) for f in fields}} for r in chunk]  # fmt: skip
        done = offset + self.page_size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": recs}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{API}/query/{cursor}-{offset + self.page_size}"
        return Response(200, body)

    def _query_more(self, ident: str) -> Response:
        cursor, _, offset = ident.rpartition("-")
        if cursor not in self._cursors:
            return Response(400, [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
        return self._page(cursor, int(offset))

    # ---- writes
    def _coerce(self, obj: str, name: str, value: Any) -> tuple[Any, str | None]:
        """(stored value, None) or (None, error code) for a per-record problem."""
        meta = self.describe[obj][name]
        if value in (None, ""):
            return None, None
        t = meta["type"]
        if t in NUMBER_TYPES:
            return (int(float(value)) if t in ("int", "long") else float(value)), None
        if t == "boolean":
            return (value if isinstance(value, bool) else str(value).lower() == "true"), None
        if t in ("picklist", "multipicklist") and meta["restrictedPicklist"]:
            allowed = [p["value"] for p in meta["picklistValues"] if p["active"]]
            if str(value) not in allowed:
                return None, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        return value, None

    def _request_errors(self, obj: str, rec: dict) -> Response | None:
        """Problems Salesforce rejects the whole request for (400)."""
        for name, value in rec.items():
            if name in ("attributes", "id", "Id"):
                continue
            meta = self.describe[obj].get(name)
            if meta is None:
                return Response(
                    400,
                    [
                        {
                            "message": f"No such column '{name}' on sobject of type {obj}",
                            "errorCode": "INVALID_FIELD",
                        }
                    ],
                )
            if meta["type"] in NUMBER_TYPES and value not in (None, ""):
                try:
                    float(value)
                except (TypeError, ValueError):
                    return Response(
                        400,
                        [
                            {
                                "message": f"Cannot deserialize instance of {meta['type']} from VALUE_STRING value {value} or request may be missing a required field",
                                "errorCode": "JSON_PARSER_ERROR",
                            }
                        ],
                    )
        return None

    def _apply(self, obj: str, op: str, rec: dict, dup_header: str | None, existing: dict | None) -> dict:
        """Apply one record; returns a SaveResult."""
        fields = {k: v for k, v in rec.items() if k not in ("attributes", "id", "Id")}
        errors = []
        values = {}
        for name, value in fields.items():
            meta = self.describe[obj][name]
            if not (meta["updateable"] if existing else meta["createable"]):
                errors += _errors(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    [name],
                )
                continue
            v, err = self._coerce(obj, name, value)
            if err:
                errors += _errors(
                    err, f"{meta['label']}: bad value for restricted picklist field: {value}", [name]
                )
            values[name] = v
        if existing is None:
            required = [
                n
                for n, m in self.describe[obj].items()
                if not m["nillable"] and m["createable"] and values.get(n) in (None, "")
            ]
            if required:
                errors += _errors(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: {required}", required
                )
            allow = "allowsave=true" in (dup_header or "").replace(" ", "").lower()
            if not errors and self.duplicate_rules and not allow and self._duplicate(obj, values):
                errors += _errors("DUPLICATES_DETECTED", "Use one of these records?")
        if errors:
            return {"success": False, "errors": errors}
        if existing is None:
            rid = self.add(obj, values)
            return {"id": rid, "success": True, "errors": [], "created": True}
        now = sf_datetime()
        existing.update(values)
        for k in ("LastModifiedDate", "SystemModstamp"):
            if k in existing:
                existing[k] = now
        return {"id": existing["Id"], "success": True, "errors": [], "created": False}

    def _duplicate(self, obj: str, values: dict) -> bool:
        if obj == "Account" and values.get("Website"):
            d = _site_domain(str(values["Website"]))
            # _site_domain is memoised: a duplicate-rule check over 100k accounts stays a dict scan
            return any(_site_domain(w) == d for r in self.records[obj].values() if (w := r.get("Website")))
        if obj == "Contact" and values.get("Email"):
            e = str(values["Email"]).lower()
            return any((r.get("Email") or "").lower() == e for r in self.records[obj].values())
        return False

    def _collection(
        self, op: str, req: Request, obj_in_url: str | None = None, ext: str | None = None
    ) -> Response:
        body = req.body or {}
        records = body.get("records")
        if not isinstance(records, list):
            return Response(
                400, [{"message": "Invalid JSON: records is required", "errorCode": "JSON_PARSER_ERROR"}]
            )
        if len(records) > 200:
            return Response(
                400,
                [
                    {
                        "message": "record limit reached. cannot submit more than 200 records into this call",
                        "errorCode": "EXCEEDED_ID_LIMIT",
                    }
                ],
            )
        dup = req.headers.get("Sforce-Duplicate-Rule-Header")
        with self.lock:
            self.dup_headers.append(dup)
            for rec in records:
                obj = obj_in_url or (rec.get("attributes") or {}).get("type")
                if obj not in self.describe:
                    return Response(
                        400,
                        [{"message": f"sObject type '{obj}' is not supported", "errorCode": "INVALID_TYPE"}],
                    )
                bad = self._request_errors(obj, rec)
                if bad:
                    return bad
            if ext and not self.describe[obj_in_url].get(ext, {}).get("externalId"):
                return Response(
                    400,
                    [{"message": f"Field {ext} is not an external id field", "errorCode": "INVALID_FIELD"}],
                )
            results = []
            for rec in records:
                obj = obj_in_url or rec["attributes"]["type"]
                lock_key = next((str(k) for k in (rec.get("id"), rec.get("Id"), rec.get(ext) if ext else None)
                                 if k is not None and self.locked_rows.get(str(k), 0) > 0), None)  # fmt: skip
                if lock_key:
                    self.locked_rows[lock_key] -= 1
                    results.append({"success": False, "errors": _errors(
                        "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")})  # fmt: skip
                    continue
                if op == "update":
                    rid = rec.get("id") or rec.get("Id")
                    existing = self.records[obj].get(rid or "")
                    if existing is None:
                        results.append(
                            {
                                "id": rid,
                                "success": False,
                                "errors": _errors(
                                    "INVALID_CROSS_REFERENCE_KEY" if rid else "MISSING_ARGUMENT",
                                    "invalid cross reference id"
                                    if rid
                                    else "Id not specified in an update call",
                                ),
                            }
                        )
                        continue
                    results.append(self._apply(obj, op, rec, dup, existing))
                elif op == "create":
                    if rec.get("id") or rec.get("Id"):
                        results.append(
                            {
                                "success": False,
                                "errors": _errors("INVALID_FIELD", "cannot specify Id in an insert call"),
                            }
                        )
                        continue
                    results.append(self._apply(obj, op, rec, dup, None))
                else:
                    key = rec.get(ext)
                    hits = [r for r in self.records[obj].values() if key is not None and r.get(ext) == key]
                    if len(hits) > 1:
                        results.append(
                            {
                                "success": False,
                                "errors": _errors(
                                    "DUPLICATE_EXTERNAL_ID",
                                    f"{ext}: more than one record found for external id field: {[h['Id'] for h in hits]}",
                                ),
                            }
                        )
                        continue
                    results.append(self._apply(obj, op, rec, dup, hits[0] if hits else None))
            if body.get("allOrNone") and not all(r["success"] for r in results):
                results = [
                    r
                    if not r["success"]
                    else {
                        "id": r.get("id"),
                        "success": False,
                        "errors": _errors(
                            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                            "Record rolled back because not all records were valid and the request was using AllOrNone header",
                        ),
                    }
                    for r in results
                ]
        return Response(200, results)

    # ---- Bulk API 2.0 ingest
    def _job_info(self, job: dict) -> dict:
        keys = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state", "externalIdFieldName",
                "concurrencyMode", "contentType", "apiVersion", "jobType", "lineEnding", "columnDelimiter",
                "numberRecordsProcessed", "numberRecordsFailed", "retries", "totalProcessingTime", "errorMessage")  # fmt: skip
        return {k: job[k] for k in keys if k in job}

    def _ingest(self, req: Request, rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) == 2 and req.method == "POST":
            b = req.body or {}
            if b.get("object") not in self.describe or b.get("operation") not in (
                "insert",
                "update",
                "upsert",
                "delete",
            ):
                return Response(
                    400, [{"errorCode": "INVALIDJOB", "message": "Invalid job: object or operation"}]
                )
            jid = f"750{uuid.uuid4().hex[:15]}"
            now = sf_datetime()
            job = {"id": jid, "operation": b["operation"], "object": b["object"], "createdById": "005000000000001AAA",
                   "createdDate": now, "systemModstamp": now, "state": "Open", "externalIdFieldName": b.get("externalIdFieldName"),
                   "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(API), "jobType": "V2Ingest",
                   "lineEnding": b.get("lineEnding", "LF"), "columnDelimiter": b.get("columnDelimiter", "COMMA"),
                   "numberRecordsProcessed": 0, "numberRecordsFailed": 0, "retries": 0, "totalProcessingTime": 0,
                   "data": "", "results": None, "polls": 0}  # fmt: skip
            with self.lock:
                self.jobs[jid] = job
            return Response(200, self._job_info(job))
        job = self.jobs.get(parts[2]) if len(parts) > 2 else None
        if job is None:
            return Response(
                404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            )
        if len(parts) == 4 and parts[3] == "batches" and req.method == "PUT":
            if job["state"] != "Open":
                return Response(400, [{"errorCode": "INVALIDJOBSTATE", "message": "Job is not open"}])
            job["data"] += (
                req.raw.decode("utf-8") if not job["data"] else req.raw.decode("utf-8").split("\n", 1)[1]
            )
            return Response(201, None)
        if len(parts) == 3 and req.method == "PATCH":
            state = (req.body or {}).get("state")
            if state == "UploadComplete":
                job["state"] = "UploadComplete"
                self._run_ingest(job)
            elif state == "Aborted":
                job["state"] = "Aborted"
            return Response(200, self._job_info(job))
        if len(parts) == 3 and req.method == "GET":
            if job["state"] in ("UploadComplete", "InProgress") and job.get("results") is not None:
                job["polls"] += 1
                job["state"] = "JobComplete" if job["polls"] >= self.bulk_polls else "InProgress"
            return Response(200, self._job_info(job))
        if len(parts) == 3 and req.method == "DELETE":
            self.jobs.pop(job["id"], None)
            return Response(204, None)
        # the docs spell it unprocessedrecords, simple-salesforce unprocessedRecords: Salesforce takes both
        kinds = {
            "successfulresults": "successfulResults",
            "failedresults": "failedResults",
            "unprocessedrecords": "unprocessedrecords",
        }
        if len(parts) == 4 and req.method == "GET" and parts[3].lower() in kinds:
            return Response(200, self._results_csv(job, kinds[parts[3].lower()]), content_type="text/csv")
        return Response(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    def _run_ingest(self, job: dict) -> None:
        obj, op, ext = job["object"], job["operation"], job.get("externalIdFieldName")
        reader = csv.DictReader(io.StringIO(job["data"]))
        header = list(reader.fieldnames or [])
        bad = [h for h in header if h not in self.describe[obj]]
        results = {"header": header, "ok": [], "failed": []}
        job["results"] = results
        if bad:
            job.update(state="Failed", errorMessage=f"InvalidBatch : Field name not found : {bad[0]}")
            return
        with self.lock:
            for row in reader:
                # Bulk API ignores empty cells on update; #N/A clears the field
                rec = {k: (None if v == "#N/A" else v) for k, v in row.items() if v != "" and k != "Id"}
                existing = None
                if op == "update":
                    existing = self.records[obj].get(row.get("Id") or "")
                    if existing is None:
                        results["failed"].append(
                            (
                                row,
                                row.get("Id") or "",
                                "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
                            )
                        )
                        continue
                elif op == "upsert":
                    hits = [r for r in self.records[obj].values() if r.get(ext) == row.get(ext)]
                    existing = hits[0] if hits else None
                bad_num = [
                    k
                    for k, v in rec.items()
                    if self.describe[obj][k]["type"] in NUMBER_TYPES
                    and v is not None
                    and not re.fullmatch(r"-?\d+(\.\d+)?", str(v))
                ]
                if bad_num:
                    results["failed"].append(
                        (
                            row,
                            "",
                            f"INVALID_TYPE_ON_FIELD_IN_RECORD:{bad_num[0]}: value not of required type: {rec[bad_num[0]]}:{bad_num[0]} --",
                        )
                    )
                    continue
                res = self._apply(obj, op, rec, "allowSave=true", existing)
                if res["success"]:
                    results["ok"].append((row, res["id"], res["created"]))
                else:
                    e = res["errors"][0]
                    results["failed"].append(
                        (
                            row,
                            existing["Id"] if existing else "",
                            f"{e['statusCode']}:{e['message']}:{'|'.join(e['fields'])} --",
                        )
                    )
        job["numberRecordsProcessed"] = len(results["ok"]) + len(results["failed"])
        job["numberRecordsFailed"] = len(results["failed"])

    def _results_csv(self, job: dict, kind: str) -> str:
        res = job.get("results") or {"header": [], "ok": [], "failed": []}
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        if kind == "successfulResults":
            w.writerow(["sf__Id", "sf__Created", *res["header"]])
            for row, rid, created in res["ok"]:
                w.writerow([rid, "true" if created else "false", *[row.get(h, "") for h in res["header"]]])
        elif kind == "failedResults":
            w.writerow(["sf__Id", "sf__Error", *res["header"]])
            for row, rid, err in res["failed"]:
                w.writerow([rid, err, *[row.get(h, "") for h in res["header"]]])
        else:
            w.writerow(res["header"])
        return out.getvalue()

    # ---- Bulk API 2.0 query
    def _bulk_query(self, req: Request, rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) == 2 and req.method == "POST":
            b = req.body or {}
            try:
                p, rows = self._select(b.get("query") or "")
            except SoqlError as e:
                return self._soql_error(e)
            jid = f"750{uuid.uuid4().hex[:15]}"
            job = {"id": jid, "operation": b.get("operation", "query"), "object": p["object"], "state": "UploadComplete",
                   "createdById": "005000000000001AAA", "createdDate": sf_datetime(), "systemModstamp": sf_datetime(),
                   "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(API), "lineEnding": "LF",
                   "columnDelimiter": "COMMA", "rows": rows, "fields": p["fields"], "polls": 0, "numberRecordsProcessed": len(rows)}  # fmt: skip
            with self.lock:
                self.jobs[jid] = job
            return Response(200, self._job_info(job))
        job = self.jobs.get(parts[2]) if len(parts) > 2 else None
        if job is None:
            return Response(
                404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            )
        if len(parts) == 3 and req.method == "GET":
            job["polls"] += 1
            job["state"] = "JobComplete" if job["polls"] >= self.bulk_polls else "InProgress"
            return Response(200, self._job_info(job))
        if len(parts) == 4 and parts[3] == "results" and req.method == "GET":
            start = int(req.q("locator") or 0)
            size = int(req.q("maxRecords") or 50_000)
            chunk = job["rows"][start : start + size]
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
            w.writerow(job["fields"])
            for r in chunk:
                w.writerow(
                    [
                        "" if r.get(f) is None else (str(r[f]).lower() if isinstance(r[f], bool) else r[f])
                        for f in job["fields"]
                    ]
                )
            nxt = start + size
            headers = {
                "Sforce-Locator": str(nxt) if nxt < len(job["rows"]) else "null",
                "Sforce-NumberOfRecords": str(len(chunk)),
            }
            return Response(200, out.getvalue(), headers, content_type="text/csv")
        return Response(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])


def now_iso() -> str:
    return iso()
