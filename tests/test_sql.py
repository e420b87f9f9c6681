"""Every hand-written statement in sql/ runs on SQLite and PostgreSQL and returns what the same
aggregate computed in pandas over the same rows returns (rows written by the warehouse's upsert)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine

from marketmap.warehouse import migrate, upsert
from marketmap.warehouse import schema as t
from marketmap.warehouse.queries import sql, sql_dir, sql_text

CID, VERSION, PRODUCT = "sqltest", "2026.1#abc", "core"
TIERS = ["T1", "T2", "T3", "OUT", None]


def _accounts() -> list[dict]:
    doms = ["a.com", "A.com ", "b.com", "c.com", "c.com", "c.com", None, "", "d.com"]
    owners = ["r1", "r2", None]
    return [
        {"client_id": CID, "account_key": f"k{i}", "name": f"N{i}", "domain": d, "owner_id": owners[i % 3]}
        for i, d in enumerate(doms)
    ]


def _scores() -> list[dict]:
    out = []
    for i in range(9):
        tier = TIERS[i % 5]
        if i == 8:
            continue  # k8 has no score at all
        val = None if tier in ("OUT", None) or i == 2 else 1000.0 * (i + 1)
        out.append({"client_id": CID, "account_key": f"k{i}", "product": PRODUCT, "rubric_version": VERSION,
                    "tier": tier, "valuation": val, "score": float(i)})  # fmt: skip
    # noise that must not count: another product, another version, another client, a deleted account
    out.append({**out[0], "product": "other", "tier": "T3"})
    out.append({**out[1], "rubric_version": "old#1", "tier": "OUT"})
    out.append({**out[2], "client_id": "someone-else"})
    out.append({**out[3], "account_key": "gone"})
    return out


def _contacts() -> list[dict]:
    mails = ["x@a.com", " X@a.com", "y@a.com", None, "z@b.com", "z@b.com", "z@b.com"]
    return [{"client_id": CID, "contact_key": f"c{i}", "email": m} for i, m in enumerate(mails)]


def _frames():
    acc, sc, con = (pd.DataFrame(f()) for f in (_accounts, _scores, _contacts))
    sc = sc[(sc.client_id == CID) & (sc.rubric_version == VERSION) & (sc["product"] == PRODUCT)]
    return acc, sc, con


def _tier_owner_order(r: dict) -> tuple:
    return (r["tier"] is None, r["tier"] or "", r["owner_id"] is None, r["owner_id"] or "", r["valuation_blank"])


def _dupes(values: pd.Series) -> list[dict]:
    v = values.dropna().str.strip().str.lower()
    counts = v[v != ""].value_counts()
    counts = counts[counts > 1]
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"value": k, "records": int(n)} for k, n in rows]


def expected(name: str) -> list[dict]:
    acc, sc, con = _frames()
    if name == "reports/count_accounts_by_tier":
        j = sc.merge(acc[["account_key"]], on="account_key")
        g = j.groupby("tier", dropna=False)
        out = [{"tier": None if pd.isna(tier) else tier, "accounts": len(grp), "accounts_valued": int(grp["valuation"].notna().sum()),
                "potential_arr": float(grp["valuation"].sum())} for tier, grp in g]  # fmt: skip
        return sorted(out, key=lambda r: (r["tier"] is None, r["tier"] or ""))
    if name == "audit/count_blank_tier_valuation":
        j = acc.merge(sc[["account_key", "tier", "valuation"]], on="account_key", how="left")
        scope = j[j["tier"].isin(["T1", "T2", "T3"])]
        return [{"accounts": len(j), "blank_tier": int(j["tier"].isna().sum()), "in_scope": len(scope),
                 "blank_valuation": int(scope["valuation"].isna().sum())}]  # fmt: skip
    if name == "analysis/count_accounts_by_tier_owner":
        j = acc.merge(sc[["account_key", "tier", "valuation"]], on="account_key", how="left")
        j["valuation_blank"] = j["valuation"].isna()
        g = j.groupby(["tier", "owner_id", "valuation_blank"], dropna=False).size()
        return sorted(({"tier": None if pd.isna(tier) else tier, "owner_id": None if pd.isna(owner) else owner,
                        "valuation_blank": bool(blank), "accounts": int(n)} for (tier, owner, blank), n in g.items()),
                      key=_tier_owner_order)  # fmt: skip
    if name == "audit/list_duplicate_account_domains":
        return _dupes(acc["domain"])
    if name == "audit/list_duplicate_contact_emails":
        return _dupes(con["email"])
    raise AssertionError(f"sql/{name}.sql has no expectation in tests/test_sql.py: add one")


PARAMS = {"client_id": CID, "rubric_version": VERSION, "product": PRODUCT}
FILES = sorted(str(p.relative_to(sql_dir()).with_suffix("")) for p in sql_dir().rglob("*.sql"))


def test_sql_files_follow_the_house_style():
    assert FILES, "sql/ holds no statements"
    for name in FILES:
        domain, stem = name.split("/")
        assert stem.split("_")[0] in {"count", "list", "sum"}, f"sql/{name}.sql: name it <verb>_<object>"
        assert ":client_id" in sql_text(name).text, f"sql/{name}.sql must filter on :client_id"


def _seed(engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        for table in (t.account_scores, t.contacts, t.accounts):
            conn.execute(table.delete())
        upsert(conn, t.accounts, _accounts())
        upsert(conn, t.account_scores, _scores())
        upsert(conn, t.contacts, _contacts())


def _normal(rows: list[dict]) -> list[dict]:
    return [{k: (float(v) if k == "potential_arr" else v) for k, v in r.items()} for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    else:
        eng = create_engine(request.getfixturevalue("pg_database"))
    _seed(eng)
    yield eng
    eng.dispose()


@pytest.mark.parametrize("name", FILES)
def test_sql_file_matches_pandas(engine, name):
    used = {k: v for k, v in PARAMS.items() if f":{k}" in sql_text(name).text}
    got = sql(engine, name, **used)
    want = expected(name)
    if name == "reports/count_accounts_by_tier":
        got = sorted(got, key=lambda r: (r["tier"] is None, r["tier"] or ""))
    if name == "analysis/count_accounts_by_tier_owner":  # NULLs sort first on SQLite, last on PostgreSQL
        got = sorted(({**r, "valuation_blank": bool(r["valuation_blank"])} for r in got), key=_tier_owner_order)
    assert _normal(got) == _normal(want)


def test_sql_helper_names_a_missing_file_and_refuses_two_statements(tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "count_two.sql").write_text("SELECT 1;\nSELECT 2;\n")
    monkeypatch.setenv("MARKETMAP_SQL_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no SQL file .*nope\.sql \(known: x/count_two\)"):
        sql_text("x/nope")
    with pytest.raises(ValueError, match=r"count_two\.sql: expected exactly one SQL statement, found 2"):
        sql_text("x/count_two")
