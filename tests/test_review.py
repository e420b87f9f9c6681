"""The review queue, worked: decisions stored, applied on the next build, never asked again."""

from __future__ import annotations

import csv
import getpass
import re

import pandas as pd

from marketmap.ingest.dedupe import dedupe_accounts


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "crm_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "website": [r[2] for r in rows],
            "industry": [r[3] if len(r) > 3 else None for r in rows],
            "employees": [r[4] if len(r) > 4 else None for r in rows],
            "source_row": range(2, len(rows) + 2),
        }
    )


RECORDS = [
    ("A1", "Northwind Traders Inc", "northwind.com", None, 120.0),
    ("A2", "Northwind Traders", None, "Retail", None),  # no domain: queued next to A1
    ("B1", "Blue River Bakery", "blueriver.com", "Food", 30.0),
    ("B2", "Blue River Bakery LLC", None, None, 31.0),  # queued next to B1
]


def test_a_merge_decision_joins_the_two_accounts_with_the_survivor_rules():
    first = dedupe_accounts(frame(RECORDS))
    assert sorted(map(tuple, first.review[["left_key", "right_key"]].values.tolist())) == [
        ("id:A2", "northwind.com"), ("id:B2", "blueriver.com"),
    ]  # fmt: skip
    again = dedupe_accounts(frame(RECORDS), merge_pairs=[("id:A2", "northwind.com")])
    acc = again.accounts.set_index("account_key")
    assert "id:A2" not in acc.index and len(acc) == 3
    # the domain account's key survives; the merged record fills its blank industry
    assert acc.loc["northwind.com", "industry"] == "Retail" and acc.loc["northwind.com", "employees"] == 120
    assert again.absorbed == {"id:A2": "northwind.com"}
    ids = again.crm_ids.set_index("crm_id")
    assert ids.loc["A2", "account_key"] == "northwind.com" and not ids.loc["A2", "is_survivor"]
    assert again.merges[["account_key", "kept_crm_id", "merged_crm_id", "reason"]].values.tolist() == [
        ["northwind.com", "A1", "A2", "review decision: same company as northwind.com"]
    ]
    # the merged pair is gone from the queue; the undecided one is still asked
    assert again.review[["left_key", "right_key"]].values.tolist() == [["id:B2", "blueriver.com"]]


def test_a_merge_with_a_vanished_account_is_ignored():
    res = dedupe_accounts(frame(RECORDS[2:]), merge_pairs=[("id:A2", "northwind.com")])
    assert res.absorbed == {} and len(res.accounts) == 2


# --------------------------------------------------------------------------- through the real build DAG


def _add_lookalikes(inbox) -> None:
    """Two rows without a website named like accounts of the real export: two review pairs."""
    path = inbox / "Account.csv"
    header = next(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writerow({"Id": "001LOOK00000000001", "Name": "Patterson Hansen Inc", "Industry": "Retail"})
        w.writerow({"Id": "001LOOK00000000002", "Name": "Ryan Avila LLC"})


def _state(url: str) -> dict:
    from sqlalchemy import create_engine, select

    from marketmap.warehouse import schema as t

    engine = create_engine(url)
    with engine.connect() as conn:
        keys = set(
            conn.execute(select(t.accounts.c.account_key).where(t.accounts.c.client_id == "sample")).scalars()
        )
        queue = {(r.left_key, r.right_key): r.status for r in conn.execute(
            select(t.review_queue.c.left_key, t.review_queue.c.right_key, t.review_queue.c.status))}  # fmt: skip
        deciders = dict(conn.execute(select(t.review_queue.c.left_key, t.review_queue.c.decided_by)).all())
        ids = dict(conn.execute(select(t.account_crm_ids.c.crm_id, t.account_crm_ids.c.account_key)).all())
        industry = conn.execute(
            select(t.accounts.c.industry).where(t.accounts.c.account_key == "patterson-hansen.com")
        ).scalar_one()
        scored = set(conn.execute(select(t.account_scores.c.account_key)).scalars())
    engine.dispose()
    return {
        "keys": keys,
        "queue": queue,
        "deciders": deciders,
        "ids": ids,
        "industry": industry,
        "scored": scored,
    }


def test_decided_in_the_portfolio_and_the_cli_then_applied_by_the_next_build(
    airflow_db, fixture_clients, mm_home, capsys
):
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient
    from test_build_dag_run import OVERRIDE, fill_inbox, run_build

    from marketmap.cli import main
    from marketmap.ingest.review import pair_id
    from marketmap.warehouse import default_url

    _add_lookalikes(fill_inbox(mm_home))
    assert str(run_build("sample", retries=0, conf=OVERRIDE).state).endswith("success")
    url = default_url()
    before = _state(url)
    merge_id = pair_id("account_name", "id:001LOOK00000000001", "patterson-hansen.com")
    apart_id = pair_id("account_name", "id:001LOOK00000000002", "ryan-avila.com")
    assert before["queue"] == {("id:001LOOK00000000001", "patterson-hansen.com"): "open",
                               ("id:001LOOK00000000002", "ryan-avila.com"): "open"}  # fmt: skip
    assert "id:001LOOK00000000001" in before["keys"] and "id:001LOOK00000000001" in before["scored"]

    # the CLI lists both pairs side by side
    capsys.readouterr()  # Airflow's log lines of the run
    assert main(["review", "--client", "sample"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 open review pairs for sample (decide with --merge ID or --keep-apart ID):")
    assert f"[{merge_id}] look-alike names (one has no domain), name similarity 100" in out
    assert re.search(r"≠ industry\s+Retail\s+", out)  # the two records' differing values side by side

    # the portfolio page: both records side by side, a form POST with the CSRF token decides
    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client.cookies.set("_token", token)
    page = client.get("/marketmap/clients/sample/review")
    assert (
        page.status_code == 200 and f'id="pair-{merge_id}"' in page.text and "Patterson-Hansen" in page.text
    )
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = client.post(f"/marketmap/clients/sample/review/{merge_id}", content="decision=merge&csrf_token=x",
                      headers=form)  # fmt: skip
    assert (
        bad.status_code == 403
        and bad.json()["detail"] == "missing or invalid CSRF token: reload the review page"
    )
    cross = client.post(f"/marketmap/clients/sample/review/{merge_id}", content=f"decision=merge&csrf_token={csrf}",
                        headers={**form, "Origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 403 and cross.json()["detail"] == "cross-site request refused"
    ok = client.post(f"/marketmap/clients/sample/review/{merge_id}", content=f"decision=merge&csrf_token={csrf}",
                     headers=form, follow_redirects=True)  # fmt: skip
    assert ok.status_code == 200
    assert "Patterson Hansen Inc / Patterson-Hansen: merge (merged on the next build)" in ok.text
    assert f'id="pair-{merge_id}"' not in ok.text  # decided: no longer listed
    assert re.search(
        r"<td>merge</td><td>admin</td>\s*<td>\d{4}-\d\d-\d\d \d\d:\d\d</td>", ok.text
    )  # who and when
    again = client.post(f"/marketmap/api/clients/sample/review/{merge_id}", json={"decision": "keep_apart"})
    assert again.status_code == 409
    assert (
        again.json()["detail"]
        == f"review pair {merge_id} (Patterson Hansen Inc / Patterson-Hansen) was already decided by admin: merge"
    )

    # the other pair is kept apart from the CLI
    capsys.readouterr()  # the api-server's log lines
    assert main(["review", "--client", "sample", "--keep-apart", apart_id]) == 0
    assert (
        capsys.readouterr().out
        == f"{apart_id}: keep apart — Ryan Avila LLC / Ryan-Avila (never asked again)\n"
    )
    assert main(["review", "--client", "sample", "--merge", "nosuchpair"]) == 1
    assert capsys.readouterr().err == ("error: no review pair 'nosuchpair' for client sample (marketmap review "
                                       "--client sample lists the open pairs and their ids)\n")  # fmt: skip

    # the next build applies both decisions
    run = run_build("sample", retries=0, conf=OVERRIDE)
    assert str(run.state).endswith("success")
    capsys.readouterr()
    from sqlalchemy import create_engine, select

    from marketmap.warehouse import schema as t

    eng = create_engine(url)
    with eng.connect() as conn:
        summary = conn.execute(select(t.runs.c.summary).where(t.runs.c.run_id == run.run_id)).scalar_one()
    eng.dispose()
    dedupe = summary["steps"]["dedupe"]
    assert (dedupe["merged_by_review_decision"], dedupe["duplicates_merged"], dedupe["review_pairs"]) == (
        1,
        1,
        0,
    )
    after = _state(url)
    assert after["keys"] == before["keys"] - {"id:001LOOK00000000001"}  # merged into patterson-hansen.com
    assert after["ids"]["001LOOK00000000001"] == "patterson-hansen.com"
    assert after["industry"] is not None  # the survivor's value or, if it had none, the merged record's
    assert "id:001LOOK00000000001" not in after["scored"]
    assert after["queue"] == {("id:001LOOK00000000001", "patterson-hansen.com"): "same",
                              ("id:001LOOK00000000002", "ryan-avila.com"): "different"}  # not re-queued  # fmt: skip
    assert main(["review", "--client", "sample"]) == 0
    assert capsys.readouterr().out == "No open review pairs for sample.\n"
    assert after["deciders"] == {"id:001LOOK00000000001": "admin",
                                 "id:001LOOK00000000002": f"{getpass.getuser()} (marketmap review)"}  # fmt: skip


def test_interactive_review_asks_pair_by_pair(fixture_clients, mm_home, monkeypatch, capsys):
    from test_build_dag_run import fill_inbox

    from marketmap.cli import main
    from marketmap.config import load_client
    from marketmap.ingest import pipeline as ingest
    from marketmap.ingest.review import pairs
    from marketmap.warehouse import get_engine

    _add_lookalikes(fill_inbox(mm_home))
    cfg, engine = load_client("sample"), get_engine()
    for step in (ingest.extract_exports, ingest.normalise_and_dedupe, ingest.load_warehouse):
        step(cfg, "r1", engine)
    first, second = pairs(engine, "sample")
    answers = iter(["k", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert main(["review", "--client", "sample", "-i"]) == 0
    out = capsys.readouterr().out
    assert out.index(f"[{first.id}]") < out.index(f"[{second.id}]")  # kept apart, then quit at the second
    assert out.endswith(
        f"{first.id}: keep apart — {first.left_name} / {first.right_name} (never asked again)\n"
    )
    assert [p.id for p in pairs(engine, "sample")] == [second.id]
    # the next dedupe does not ask again
    ingest.extract_exports(cfg, "r2", engine)
    assert ingest.normalise_and_dedupe(cfg, "r2", engine)["review_pairs"] == 1
