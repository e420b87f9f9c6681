"""A monthly re-read of a CSV client's whole export deduplicates and loads only what changed, and
leaves the warehouse exactly as a whole re-read would.

Two clients are built from the same demo export by the build's own steps. Each month the same
edits reach both inboxes (as a CRM's next export would carry them); one client's monthly extract
runs as the monthly DAG calls it (``crm.extract`` with the run's pendulum interval: the re-read),
the other's reads the whole export again (``since`` unset: what the monthly run did before). The
edits hit what deduplication decides over more than one record: a record moving into another
domain and back, a duplicate leaving the export, a new duplicate, a new record without a website
that looks like an unchanged account, a website on LinkedIn, a record losing its website, a merge
a person decided between two unchanged accounts, a contact moved and one edited. Every table the
extract writes must then be equal, row for row, between the two clients.
"""

from __future__ import annotations

import csv
import io
import shutil

import pendulum
import pytest
from sqlalchemy import select

MONTH_1 = (pendulum.datetime(2026, 7, 1, tz="UTC"), pendulum.datetime(2026, 8, 1, tz="UTC"))
MONTH_2 = (pendulum.datetime(2026, 8, 1, tz="UTC"), pendulum.datetime(2026, 9, 1, tz="UTC"))
MONTH_3 = (pendulum.datetime(2026, 9, 1, tz="UTC"), pendulum.datetime(2026, 10, 1, tz="UTC"))
# columns that hold the wall clock or the client, not what was read
IGNORE = {"client_id", "updated_at"}


def _read(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _write(path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    path.write_text(buf.getvalue(), encoding="utf-8")


def _table(eng, table, client_id: str, ignore=IGNORE):
    import pandas as pd

    with eng.connect() as conn:
        frame = pd.DataFrame(conn.execute(select(table).where(table.c.client_id == client_id)).mappings().all())
    frame = frame.drop(columns=[c for c in ignore if c in frame])
    keys = [c.name for c in table.primary_key.columns if c.name not in ignore] or list(frame.columns)
    frame = frame.sort_values(keys).reset_index(drop=True).astype(object)
    return frame.where(frame.notna(), None)


def _compare(eng, reread_client: str, whole_client: str) -> None:
    from marketmap.warehouse import schema as t

    checks = {
        t.accounts: IGNORE, t.account_crm_ids: IGNORE, t.contacts: IGNORE, t.opportunities: IGNORE,
        t.rejected_rows: IGNORE | {"id"}, t.ingest_warnings: IGNORE | {"id"},
        # a pair of two unchanged accounts is not searched again, so its run id stays the earlier run's
        t.review_queue: IGNORE | {"run_id", "decided_at"},
    }  # fmt: skip
    for table, ignore in checks.items():
        a, b = _table(eng, table, reread_client, ignore), _table(eng, table, whole_client, ignore)
        if "id" in ignore:  # serial ids differ: compare as sorted rows
            a = a.sort_values(list(a.columns)).reset_index(drop=True)
            b = b.sort_values(list(b.columns)).reset_index(drop=True)
        assert len(a) == len(b), f"{table.name}: {len(a)} rows after the re-read, {len(b)} after a whole read"
        diff = a.compare(b)
        assert diff.empty, f"{table.name} differs:\n{diff.head(20)}"


def _month_1(inbox) -> None:
    """The next export: the same CRM a month later, with edits that move deduplication."""
    import pandas as pd

    from marketmap.ingest.domains import normalise_domains

    header, rows = _read(inbox / "Account.csv")
    col = {name: i for i, name in enumerate(header)}
    site, name, rid = col["Website"], col["Name"], col["Id"]
    by_domain: dict[str, list[list[str]]] = {}
    doms = normalise_domains(pd.Series([r[site] for r in rows], dtype="object")).tolist()
    for r, d in zip(rows, doms, strict=True):
        if d:
            by_domain.setdefault(d, []).append(r)
    groups = [g for g in by_domain.values() if len(g) >= 2]
    singles = [g[0] for g in by_domain.values() if len(g) == 1]
    assert len(groups) >= 3 and len(singles) >= 10, "the demo export has duplicates by domain"
    # a name edited
    singles[0][name] = singles[0][name] + " Group"
    # a record moves into another company's domain (same name, so it merges)
    target = singles[len(singles) // 2]  # a clean row in the middle of the export
    singles[1][site], singles[1][name] = target[site], target[name]
    # a duplicate with contacts leaves the export (its contacts, unchanged, lose their account)
    _, contacts = _read(inbox / "Contact.csv")
    with_contacts = {r[2] for r in contacts}  # AccountId
    rows.remove(next(g[1] for g in groups if g[1][rid] in with_contacts))
    # a new duplicate of an existing domain, with fewer fields filled
    new_dup = list(groups[1][0])
    new_dup[rid] = "001NEWDUP0000001AAA"
    for c in ("Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCity"):
        new_dup[col[c]] = ""
    rows.append(new_dup)
    # a new record without a website whose name looks like an unchanged account's
    look_alike = list(singles[3])
    look_alike[rid], look_alike[site] = "001NEWLONE000001AAA", ""
    look_alike[name] = singles[3][name].replace(" ", "  ", 1) + "."
    rows.append(look_alike)
    # and one like an unchanged account without a website, earlier in the file: the pair of two
    # accounts without a domain is oriented by file order in both reads
    lone = next(r for r in rows if not r[site].strip() and len(r[name]) > 12 and r[rid] != "001NEWLONE000001AAA")
    look_alike_lone = list(lone)
    look_alike_lone[rid], look_alike_lone[name] = "001NEWLONE000002AAA", lone[name] + "."
    rows.append(look_alike_lone)
    # a website on LinkedIn (no domain, a warning), a record losing its website (its key changes)
    singles[4][site] = "https://www.linkedin.com/company/" + singles[4][name].split()[0].lower()
    singles[5][site] = ""
    _write(inbox / "Account.csv", header, rows)

    header, rows = _read(inbox / "Contact.csv")
    col = {name: i for i, name in enumerate(header)}
    rows[0][col["Title"]] = "Chief Revenue Officer"
    rows[1][col["AccountId"]] = rows[2][col["AccountId"]]
    _write(inbox / "Contact.csv", header, rows)

    header, rows = _read(inbox / "Opportunity.csv")
    col = {name: i for i, name in enumerate(header)}
    rows[0][col["Amount"]] = "123456"
    _write(inbox / "Opportunity.csv", header, rows)


def _month_2(inbox, moved_back: str) -> None:
    """A month later: the moved record goes back to a website of its own; a name, a title and a
    deal's stage edited."""
    header, rows = _read(inbox / "Account.csv")
    col = {name: i for i, name in enumerate(header)}
    for r in rows:
        if r[col["Id"]] == moved_back:
            r[col["Website"]] = "https://www.back-on-its-own.com"
    rows[-3][col["Name"]] = rows[-3][col["Name"]] + " Holdings"
    _write(inbox / "Account.csv", header, rows)
    for name, column, value in (("Contact.csv", "Title", "Head of RevOps"), ("Opportunity.csv", "StageName", "Closed Won")):
        header, rows = _read(inbox / name)
        rows[5][header.index(column)] = value
        _write(inbox / name, header, rows)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_monthly_reread_loads_what_a_whole_read_would(mm_home, request, monkeypatch, backend):
    from marketmap.config import load_client
    from marketmap.crm import adapter_for
    from marketmap.crm.extract import extract
    from marketmap.demo.generate import generate_demo_export
    from marketmap.ingest import pipeline as ingest
    from marketmap.ingest import review
    from marketmap.warehouse import get_engine
    from marketmap.warehouse import schema as t

    if backend == "postgresql":
        monkeypatch.setenv("MARKETMAP_WAREHOUSE_URL", request.getfixturevalue("pg_database"))
    reread_id, whole_id = f"reread_{backend}", f"whole_{backend}"
    base = mm_home / "base"
    generate_demo_export(base, n_accounts=1500)
    eng = get_engine()
    cfgs = {}
    for cid in (reread_id, whole_id):
        cfgs[cid] = cfg = load_client("demo").model_copy(update={"client_id": cid})
        shutil.copytree(base, mm_home / "inbox" / cid)
        ingest.start_run(eng, cid, "b1", "build", None)
        ingest.extract_exports(cfg, "b1", eng)
        ingest.normalise_and_dedupe(cfg, "b1", eng)
        ingest.load_warehouse(cfg, "b1", eng)
    _compare(eng, reread_id, whole_id)
    _hashes_kept_exactly(eng, cfgs[reread_id])

    # a person decides that two unchanged accounts are one company (the next run merges them)
    for cid in (reread_id, whole_id):
        pair = min((p for p in review.pairs(eng, cid) if p.kind == "account_name"), key=lambda p: p.id)
        review.decide(eng, cid, pair.id, "merge", by="revops@example.com")

    moved = None
    for month, (start, end) in (("m1", MONTH_1), ("m2", MONTH_2)):
        for cid in (reread_id, whole_id):
            inbox = mm_home / "inbox" / cid
            if month == "m1":
                _month_1(inbox)
            else:
                _month_2(inbox, moved)
            since, until = (start, end) if cid == reread_id else (None, None)
            out = extract(cfgs[cid], eng, month, adapter_for(cfgs[cid]), since=since, until=until)
            accounts = out["objects"]["accounts"]
            if cid == reread_id:
                # the re-read deduplicated and loaded a small part of the export, not all of it
                for obj in ("accounts", "contacts", "opportunities"):
                    read = out["objects"][obj]["reread"]
                    assert 0 < read["changed"] <= read["reread"] < read["records"] / 5, (obj, read)
            else:
                assert "reread" not in accounts
        _compare(eng, reread_id, whole_id)
        if month == "m1":
            # the record that moved into another domain (found by its id: same in both inboxes)
            moved, joined = _moved_record(base, mm_home / "inbox" / reread_id)
            with eng.connect() as conn:
                c = t.account_crm_ids.c
                keys = dict(conn.execute(select(c.crm_id, c.account_key).where(c.client_id == reread_id)).all())
            assert keys[moved] == keys[joined] and not keys[moved].startswith("id:"), "the moved record merged"

    # Month 3: no edit, but the client's config now names one more host as not a company's own:
    # deduplication may judge any record differently, so every record is read again.
    hosted = _a_single_domain(eng, reread_id)
    for cid in (reread_id, whole_id):
        exp = cfgs[cid].crm.export
        hosts = [*exp.not_company_hosts, hosted]
        cfgs[cid] = cfgs[cid].model_copy(update={"crm": cfgs[cid].crm.model_copy(update={
            "export": exp.model_copy(update={"not_company_hosts": hosts})})})  # fmt: skip
        since, until = MONTH_3 if cid == reread_id else (None, None)
        out = extract(cfgs[cid], eng, "m3", adapter_for(cfgs[cid]), since=since, until=until)
        if cid == reread_id:
            read = out["objects"]["accounts"]["reread"]
            assert read["changed"] == read["reread"] == read["records"], read
    _compare(eng, reread_id, whole_id)
    hosted = _a_single_domain(eng, reread_id)

    # the month's edits did change the warehouse, so equal tables are not two unchanged copies
    with eng.connect() as conn:
        c = t.account_crm_ids.c
        keys = dict(conn.execute(select(c.crm_id, c.account_key).where(c.client_id == reread_id)).all())
    assert keys["001NEWLONE000001AAA"] == "id:001NEWLONE000001AAA"
    assert keys[moved] == "back-on-its-own.com"
    queue = _table(eng, t.review_queue, reread_id)
    assert "id:001NEWLONE000001AAA" in set(queue["left_key"]), "the look-alike new record was queued"
    lone_pair = queue[queue["right_key"] == "id:001NEWLONE000002AAA"]
    assert len(lone_pair) == 1 and lone_pair["left_key"].iat[0].startswith("id:"), "queued, the earlier row left"


def _moved_record(base, inbox) -> tuple[str, str]:
    """(the record whose website became another record's in month 1, that other record)."""
    _, before = _read(base / "Account.csv")
    header, after = _read(inbox / "Account.csv")
    site = header.index("Website")
    was = {r[0]: r[site] for r in before}
    moved = [r for r in after if r[0] in was and was[r[0]] and r[site] != was[r[0]] and "." in r[site]
             and "linkedin" not in r[site]]  # fmt: skip
    assert len(moved) == 1, "one record moved to another domain"
    joined = next(r[0] for r in after if r[site] == moved[0][site] and r[0] != moved[0][0])
    return moved[0][0], joined


def _hashes_kept_exactly(eng, cfg) -> None:
    """Every stored record hash is the 64-bit hash of the record as read (not rounded through a
    float on its way through staging), or blank for a website that gave a warning."""
    from marketmap.ingest import pipeline as ingest
    from marketmap.ingest import reread
    from marketmap.ingest.reader import read_export
    from marketmap.warehouse import schema as t

    exp = cfg.crm.export
    path = ingest.export_paths(cfg)["accounts"]
    frame = read_export(path, "accounts", exp.format, exp.account_columns, exp.encoding, ingest.read_options(cfg),
                        cfg.custom_fields.specs("accounts", exp.account_columns)).frame  # fmt: skip
    expected = dict(zip(frame["crm_id"], reread.record_hashes(frame, exp.not_company_hosts), strict=True))
    c = t.account_crm_ids.c
    with eng.connect() as conn:
        stored = dict(conn.execute(select(c.crm_id, c.record_hash).where(c.client_id == cfg.client_id)).all())
    assert stored.keys() == expected.keys()
    kept = {k for k, v in stored.items() if v is not None}
    assert len(kept) > 0.95 * len(stored)
    assert {k: stored[k] for k in kept} == {k: int(expected[k]) for k in kept}


def _a_single_domain(eng, client_id: str) -> str:
    """The domain of an account with one CRM record (a company's own site, for month 3)."""
    from sqlalchemy import func

    from marketmap.warehouse import schema as t

    c = t.account_crm_ids.c
    with eng.connect() as conn:
        return conn.execute(
            select(c.account_key).where(c.client_id == client_id, ~c.account_key.startswith("id:"))
            .group_by(c.account_key).having(func.count() == 1).order_by(c.account_key).limit(1)
        ).scalar_one()
