"""Alerts: fingerprints, the store's send/skip/resolve decisions, routing, Block Kit, Slack and the outbox."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from servers.slack import TOKEN, SlackServer
from sqlalchemy import select

from marketmap.alerts import store
from marketmap.alerts.blocks import render, run_url
from marketmap.alerts.delivery import DeliveryError, deliver, routed_channels, slack_sender
from marketmap.alerts.engine import process_alerts
from marketmap.alerts.rules import Alert, fingerprint, materially_changed
from marketmap.config import load_client
from marketmap.warehouse import get_engine
from marketmap.warehouse import schema as t

D0 = dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC)


def day(n: int) -> dt.datetime:
    return D0 + dt.timedelta(days=n)


@pytest.fixture()
def env(fixture_clients, mm_home):
    return load_client("sample"), get_engine()


def lift_alert(cfg, lift: float = 1.1, **kw) -> Alert:
    return Alert(client_id=cfg.client_id, rule="lift_below_min", role="leadership", title=f"lift {lift}",
                 key="T1/T3", numbers={"lift": lift}, material={"lift": lift}, **kw)  # fmt: skip


def outbox(home) -> list[dict]:
    path = home / "outbox" / "sample.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_fingerprint_is_stable_and_scoped_by_client_rule_and_key():
    assert fingerprint("a", "r", "k") == fingerprint("a", "r", "k")
    assert len({fingerprint("a", "r", "k"), fingerprint("b", "r", "k"), fingerprint("a", "s", "k"),
                fingerprint("a", "r", "j")}) == 4  # fmt: skip
    assert fingerprint("a", "r", "k").startswith("r:")


def test_material_change():
    assert not materially_changed({"share": 0.40}, {"share": 0.45})
    assert materially_changed({"share": 0.40}, {"share": 0.52})
    assert not materially_changed({"n": 100}, {"n": 120})
    assert materially_changed({"n": 100}, {"n": 130})
    assert materially_changed({}, {"n": 1})


def test_fires_once_updates_on_material_change_then_resolves(env, mm_home):
    cfg, engine = env
    rules = {"lift_below_min"}
    r1 = process_alerts(cfg, engine, "run1", day(0), [lift_alert(cfg)], rules)
    assert r1["fired"] == 1
    # same numbers a week later: nothing
    assert process_alerts(cfg, engine, "run2", day(7), [lift_alert(cfg, 1.15)], rules)["fired"] == 0
    # a re-run of run1's interval: nothing
    again = process_alerts(cfg, engine, "run1", day(0), [lift_alert(cfg)], rules)
    assert again["fired"] == again["updated"] == again["resolved"] == 0
    # material change but inside the quiet period (7 days since the last message): nothing
    assert process_alerts(cfg, engine, "run3", day(3), [lift_alert(cfg, 0.5)], rules)["updated"] == 0
    # material change after it: one update
    assert process_alerts(cfg, engine, "run4", day(14), [lift_alert(cfg, 0.5)], rules)["updated"] == 1
    # holding keeps it open silently
    assert (
        process_alerts(cfg, engine, "run5", day(21), [lift_alert(cfg, 1.4, holding=True)], rules)["resolved"]
        == 0
    )
    # gone: resolved once
    assert process_alerts(cfg, engine, "run6", day(28), [], rules)["resolved"] == 1
    assert process_alerts(cfg, engine, "run7", day(35), [], rules)["resolved"] == 0
    # a holding candidate never opens an alert
    assert process_alerts(cfg, engine, "run8", day(42), [lift_alert(cfg, holding=True)], rules)["fired"] == 0
    events = [e["event"] for e in store.history(engine, "sample")]
    # each message goes to leadership and the architect: two events per decision
    assert events == ["fired", "fired", "updated", "updated", "resolved", "resolved"]
    texts = [m["text"] for m in outbox(mm_home)]
    assert [m["channel"] for m in outbox(mm_home)] == ["#sample-lead", "#mm-architects"] * 3
    assert texts[-1].startswith(":white_check_mark: Resolved")


def test_other_rules_are_left_alone_and_snooze_holds(env):
    cfg, engine = env
    process_alerts(cfg, engine, "r1", day(0), [lift_alert(cfg)], {"lift_below_min"})
    # a run that evaluates other rules does not resolve it
    assert process_alerts(cfg, engine, "r2", day(1), [], {"duplicates"})["resolved"] == 0
    fp = lift_alert(cfg).fingerprint
    store.snooze(engine, "sample", fp, day(60), by="revops")
    assert (
        process_alerts(cfg, engine, "r3", day(30), [lift_alert(cfg, 0.3)], {"lift_below_min"})["updated"] == 0
    )
    assert (
        process_alerts(cfg, engine, "r4", day(61), [lift_alert(cfg, 0.3)], {"lift_below_min"})["updated"] == 1
    )
    with engine.connect() as conn:
        row = conn.execute(select(t.alerts).where(t.alerts.c.fingerprint == fp)).one()
    assert row.status == "open" and row.numbers["numbers"]["lift"] == 0.3


def test_alert_of_another_client_is_refused(env):
    cfg, engine = env
    other = Alert(client_id="demo", rule="duplicates", title="x")
    with pytest.raises(ValueError, match="belongs to demo"):
        process_alerts(cfg, engine, "r", day(0), [other], {"duplicates"})


def test_routing_and_block_kit():
    assert routed_channels({"revops": "#r", "leadership": "#l", "architect": "#a"}, "revops") == ["#r", "#a"]
    assert routed_channels({"revops": "#a", "leadership": "#l", "architect": "#a"}, "revops") == ["#a"]
    a = Alert(client_id="c", rule="t3_beats_t1", title="T3 beats T1", role="leadership", severity="critical",
              numbers={"t3_win_rate": 0.41, "t3_closed": 40}, confidence="99.1% sure", report="/r/drift.json")  # fmt: skip
    d = store.Decision("fired", a.fingerprint, a.rule, a.role, a.title, a.severity, a.payload(), a)
    url = run_url("http://af:8080", "c__drift", "scheduled__2026-03-02T07:00:00+00:00")
    assert url == "http://af:8080/dags/c__drift/runs/scheduled__2026-03-02T07%3A00%3A00%2B00%3A00"
    text, blocks = render("Client Co", d, {"run": url})
    assert "Client Co" in text and "T3 beats T1" in text
    flat = json.dumps(blocks)
    assert blocks[0]["type"] == "header"
    assert "41.0%" in flat and "99.1% sure" in flat and "Re-engage the ICP specialist" in flat
    assert url in flat and "/r/drift.json" in flat


def test_slack_delivery_retries_429_with_retry_after():
    with SlackServer() as slack:
        slack.inject("status", path="chat.postMessage", status=429, headers={"Retry-After": "1"},
                     body={"ok": False, "error": "ratelimited"})  # fmt: skip
        send = slack_sender(TOKEN, slack.base_url)
        start = dt.datetime.now()
        out = deliver("sample", None, "#x", "hello xoxb-secret1", [{"type": "section"}], sender=send)
        assert (dt.datetime.now() - start).total_seconds() >= 1  # honoured Retry-After
        assert out["via"] == "slack" and out["ts"]
        assert slack.calls("POST", "chat.postMessage", 429) == 1
        assert [m["text"] for m in slack.messages["#x"]] == ["hello xox*-***"]  # redacted, sent once


def test_slack_error_raises_with_the_reason():
    with SlackServer(channels={"#ok"}) as slack, pytest.raises(DeliveryError, match="channel_not_found"):
        slack_sender(TOKEN, slack.base_url)("#missing", "hi", None)


def test_process_alerts_via_slack_connection(env, monkeypatch):
    cfg, engine = env
    cfg = cfg.model_copy(update={"slack": cfg.slack.model_copy(update={"conn_id": "slack_test"})})
    with SlackServer() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(
            {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": slack.base_url}}))  # fmt: skip
        out = process_alerts(cfg, engine, "r1", day(0), [lift_alert(cfg)], {"lift_below_min"})
        assert out["fired"] == 1
        assert set(slack.messages) == {"#sample-lead", "#mm-architects"}
        ev = store.history(engine, "sample")
        assert {e["payload"]["delivery"]["via"] for e in ev} == {"slack"}


def test_task_failure_goes_to_revops_via_slack(fixture_clients, mm_home, monkeypatch, tmp_path):
    from marketmap.alerts.delivery import deliver_task_failure

    clients = tmp_path / "clients"
    clients.mkdir()
    for f in fixture_clients.glob("*.yaml"):
        (clients / f.name).write_text(f.read_text())
    (clients / "sample.yaml").write_text((clients / "sample.yaml").read_text().replace(
        "slack:\n", "slack:\n  conn_id: slack_test\n"))  # fmt: skip
    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(clients))
    with SlackServer() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(
            {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": slack.base_url}}))  # fmt: skip
        out = deliver_task_failure(client_id="sample", dag_id="sample__monthly", task_id="extract_changes",
                                   run_id="r1", try_number=3, base_url="http://airflow.test:8080",
                                   error="CrmError: HubSpot 401 token=abc\nTraceback (most recent call last): ...")  # fmt: skip
        assert [o["via"] for o in out] == ["slack", "slack"]  # RevOps and the architect
        (msg,) = slack.messages["#sample-revops"]
        assert slack.messages["#mm-architects"] == [msg] or len(slack.messages["#mm-architects"]) == 1
        # in words: which pipeline and step, the error in one line, the log, what to do next
        assert msg["text"].startswith(":red_circle: Sample Bank Co: the monthly maintenance stopped at step "
                                      "`extract_changes` after 3 tries.")  # fmt: skip
        body = json.dumps(msg["blocks"])
        assert "token=***" in body and "abc" not in body and "Traceback" not in body
        assert "http://airflow.test:8080/dags/sample__monthly/runs/r1/tasks/extract_changes" in body
        assert "What to do next" in body


def test_resolved_message_shows_the_current_numbers_not_the_ones_that_fired(env, mm_home):
    cfg, engine = env
    rules = {"lift_below_min"}
    process_alerts(cfg, engine, "f", day(0), [lift_alert(cfg, 1.1)], rules)
    now = lift_alert(cfg, 1.9, cleared=True)
    now.title, now.confidence = (
        "T1 accounts win 1.9× as often as T3 accounts.",
        "Lift 1.90×, 95% interval 1.6×–2.3×",
    )
    # a cleared candidate opens nothing when nothing is open ...
    other = Alert(client_id=cfg.client_id, rule="t3_beats_t1", key="T3>T1", title="x", cleared=True)
    out = process_alerts(cfg, engine, "r", day(7), [now, other], rules | {"t3_beats_t1"})
    assert out["resolved"] == 1 and out["fired"] == 0
    msg = outbox(mm_home)[-1]
    flat = json.dumps(msg["blocks"], ensure_ascii=False)
    assert (
        msg["text"]
        == ":white_check_mark: Resolved — Sample Bank Co: T1 accounts win 1.9× as often as T3 accounts."
    )
    assert "1.9" in flat and "Evidence now" in flat and "Was: lift 1.1" in flat
    assert "1.1" not in flat.replace("Was: lift 1.1", "")  # the numbers that fired are not shown as current
    with engine.connect() as conn:
        row = conn.execute(select(t.alerts).where(t.alerts.c.fingerprint == now.fingerprint)).one()
    assert row.status == "resolved" and row.numbers["numbers"]["lift"] == 1.9
    # ... and a re-run of the same interval sends nothing
    again = process_alerts(cfg, engine, "r", day(7), [now], rules)
    assert again["fired"] == again["updated"] == again["resolved"] == 0


def test_slack_text_escapes_data_so_names_cannot_ping_or_disguise_links():
    evil = "Acme <!channel> & <https://evil.example|Invoice>"
    a = Alert(client_id="c", rule="inactive_rep_owns_accounts", key="r9", role="leadership",
              title=f"{evil} has left but still owns 3 accounts.", numbers={"rep": "<@U123>"},
              confidence="<!here> exact", next_steps=["Ask <!everyone>"], report="/r/<x>.csv")  # fmt: skip
    d = store.Decision("fired", a.fingerprint, a.rule, a.role, a.title, a.severity, a.payload(), a)
    text, blocks = render(evil, d, {"run": "http://af/dags/x/runs/y"})
    mrkdwn = [text] + [
        s
        for b in blocks
        for s in [b.get("text", {}).get("text", "") if b["type"] != "header" else ""]
        + [f["text"] for f in b.get("fields", [])]
        + [e["text"] for e in b.get("elements", [])]
    ]
    joined = " ".join(mrkdwn)
    assert "<!channel>" not in joined and "<!here>" not in joined and "<!everyone>" not in joined
    assert "<https://evil" not in joined and "<@U123>" not in joined
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|Invoice&gt;" in text
    assert "<http://af/dags/x/runs/y|Airflow run>" in joined  # our own link stays a link
    resolved = store.Decision(
        "resolved", a.fingerprint, a.rule, a.role, a.title, a.severity, a.payload(), None
    )
    rtext, rblocks = render(evil, resolved, {})
    assert "<!channel>" not in rtext + json.dumps(rblocks)


def test_messages_say_when_they_were_raised_and_a_catch_up_says_for_which_date(env, mm_home):
    """A catch-up run for July, raised in December, must not read as December's numbers."""
    cfg, engine = env
    tz = cfg.tz
    raised = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
    july = dt.datetime(2026, 7, 31, 23, 0, tzinfo=dt.UTC)
    report = "http://localhost:8080/marketmap/clients/sample/reports/r/drift.html"
    process_alerts(cfg, engine, "catchup", july, [lift_alert(cfg, report=report)], {"lift_below_min"},
                   raised=raised)  # fmt: skip
    other = Alert(client_id=cfg.client_id, rule="duplicates", role="revops", title="dupes", key="x",
                  numbers={"pairs": 3}, material={"pairs": 3})  # fmt: skip
    process_alerts(cfg, engine, "today", raised, [other], {"duplicates"},
                   raised=raised + dt.timedelta(minutes=5))  # fmt: skip
    first, second = outbox(mm_home)[0], outbox(mm_home)[-1]
    context = " ".join(e["text"] for b in first["blocks"] if b["type"] == "context" for e in b["elements"])
    local = raised.astimezone(tz)
    assert f"raised Sat 5 Dec 2026 {local:%H:%M}" in context
    july_local = july.astimezone(tz)
    assert f"by a catch-up run for {july_local:%a} {july_local.day} {july_local:%b %Y}: the numbers are as of" in context
    assert f"<{report}|Open the report>" in context  # a link a leader can click, not a path in backticks
    context2 = " ".join(e["text"] for b in second["blocks"] if b["type"] == "context" for e in b["elements"])
    assert "raised Sat 5 Dec 2026" in context2 and "catch-up" not in context2
