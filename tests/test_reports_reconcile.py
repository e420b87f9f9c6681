"""Reports that reconcile: deal types, share denominators, chart axes and labels, CSV values."""

from __future__ import annotations

import csv
import re

import pytest
from report_support import CLIENTS_DIR, RUN_ID, seed_client


@pytest.fixture()
def reports(mm_home, monkeypatch):
    from marketmap.reports import KINDS, generate
    from marketmap.warehouse import get_engine

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    engine = get_engine()
    info = seed_client(engine, "acme")
    paths = {kind: generate(kind, info["cfg"], engine, RUN_ID) for kind in KINDS}
    return paths, info


def _svg_texts(svg: str) -> list[str]:
    return re.findall(r">([^<>]+)</text>", svg)


def _rows(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_number_formats_never_write_minus_zero():
    from marketmap.reports.charts import count, money, pct

    assert pct(-0.001) == "0%" and pct(-0.05) == "-5%"
    assert count(-0.3) == "0" and money(-0.2) == "$0" and money(-1500) == "-$1.5k"


def _tick_labels(svg: str, axis: str) -> list[str]:
    """The texts of one axis's major ticks (``xtick``/``ytick`` groups of Matplotlib's SVG)."""
    out = []
    for group in re.split(rf'<g id="c\d+-{axis}_\d+">', svg)[1:]:
        texts = _svg_texts(group.split("</g>\n   </g>")[0])
        out.extend(texts[:1])
    return out


def test_count_axes_have_integer_ticks_only():
    from marketmap.reports import charts

    # Matplotlib's default locator puts 0.25 steps on a 0..2 axis: "0", "0", "0", "1", ...
    for svg in (
        charts.bar(["T1", "T2", "T3"], [1, 2, 0], title="Closed deals", xlabel="tier", ylabel="deals"),
        charts.stacked_bar(
            ["a", "b"], {"won": [1, 0], "lost": [0, 2]}, title="t", xlabel="x", ylabel="deals"
        ),
    ):
        ticks = _tick_labels(svg, "ytick")
        assert len(ticks) >= 2, ticks
        assert all(re.fullmatch(r"\d+", t) for t in ticks), ticks
        assert len(ticks) == len(set(ticks)), ticks  # no integer written twice


def test_long_labels_wrap_on_words_and_are_never_cut_mid_word():
    from marketmap.reports.charts import MAX_LABEL, _short

    label = _short("Hospital & Health Care Services Providers")
    assert label == "Hospital & Health Care\nServices Providers"
    very = _short("Information Technology and Services and Consulting and Outsourcing Partners")
    first, second = very.split("\n")
    assert len(first) <= MAX_LABEL and len(second) <= MAX_LABEL and second.endswith(" …")
    text = "Information Technology and Services and Consulting and Outsourcing Partners"
    words = set(text.split(" "))
    assert all(w in words for w in (first + " " + second).replace("…", "").split())


def _plot_right(svg: str) -> float:
    """The right edge of the axes background (``patch_2``: the plot area)."""
    patch = re.search(r'<g id="c\d+-patch_2">\s*<path d="([^"]+)"', svg).group(1)
    return max(float(x) for x in re.findall(r"[ML] ([\d.]+) ", patch))


def _legend_left(svg: str) -> float:
    legend = re.search(r'<g id="c\d+-legend_1">(.*?)</text>', svg, re.S).group(1)
    return min(float(x) for x in re.findall(r"(?:[ML] |x=\")([\d.]+)", legend))


def test_legends_sit_outside_the_plot():
    from marketmap.reports import charts

    for svg in (
        charts.bar(["T1", "T2"], [0.5, 0.2], title="t", xlabel="x", ylabel="y", unit="pct", reference=0.3,
                   reference_label="all tiers"),
        charts.grouped_bar(["T1", "T2"], {"a": [1, 2], "b": [2, 1]}, title="t", xlabel="x", ylabel="y"),
        charts.stacked_bar(["T1", "T2"], {"won": [1, 2], "lost": [2, 1]}, title="t", xlabel="x", ylabel="y"),
    ):  # fmt: skip
        assert _legend_left(svg) > _plot_right(svg)  # right of the plot area: never over a bar


def test_executive_report_shows_every_deal_type_and_states_its_scope(reports):
    paths, _ = reports
    html = paths["executive"].read_text(encoding="utf-8")
    assert "new-business deals only" in html and "All closed deals by type" in html
    for kind in ("new business", "renewal", "expansion"):
        assert kind in html
    kinds = {r["deal type"]: r for r in _rows(paths["executive"].parent / "executive__by_deal_type.csv")}
    assert set(kinds) == {"new business", "renewal", "expansion"}
    tiers = _rows(paths["executive"].parent / "executive__by_tier.csv")
    # the tier view and the new-business row reconcile: same closed and won deals
    assert sum(int(r["closed"]) for r in tiers) == int(kinds["new business"]["closed"])
    assert sum(int(r["won"]) for r in tiers) == int(kinds["new business"]["won"])
    for r in kinds.values():
        assert int(r["closed"]) == int(r["won"]) + int(r["lost"])


def test_tier_shares_name_their_denominator(reports):
    paths, info = reports
    rows = {r["tier"]: r for r in _rows(paths["validation"].parent / "validation__tiers.csv")}
    total = sum(int(r["accounts"]) for r in rows.values())
    in_scope = total - int(rows["OUT"]["accounts"])
    assert total == info["accounts"]
    assert float(rows["T1"]["share of all accounts"]) == pytest.approx(
        int(rows["T1"]["accounts"]) / total, abs=1e-4
    )
    assert float(rows["T1"]["share of in-scope accounts"]) == pytest.approx(
        int(rows["T1"]["accounts"]) / in_scope, abs=1e-4
    )
    assert rows["OUT"]["share of in-scope accounts"] == ""
    executive = paths["executive"].read_text(encoding="utf-8")
    assert "of won new-business deals are at T1 accounts (" in executive


def test_csvs_carry_values_as_people_read_them(reports):
    paths, _ = reports
    directory = paths["executive"].parent
    files = sorted(directory.glob("*.csv"))
    assert len(files) >= 5
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"(^|,)-?\d+\.0(,|\r?$)", text, re.M), f.name  # no 68911.0
        assert not re.search(r"\d\.\d{7,}", text), f.name  # no float noise
    for r in _rows(directory / "executive__by_tier.csv"):
        for col in ("revenue", "average won deal"):
            assert r[col] == "" or re.fullmatch(r"-?\d+(\.\d{1,2})?", r[col]), (col, r[col])


def test_csv_value_keeps_formula_neutralisation(tmp_path):
    import pandas as pd

    from marketmap.reports.render import Report, Section, Table, write_report

    frame = pd.DataFrame({"name": ["=HYPERLINK(1)"], "amount": [68911.0], "n": [3.0], "rate": [1 / 3]})
    report = Report("x", "X", "acme", "Acme", "r1")
    report.sections = [Section("s", tables=[Table("t", "T", frame, {"amount": "money", "rate": "pct"})])]
    write_report(report, tmp_path)
    text = (tmp_path / "x__t.csv").read_text(encoding="utf-8").splitlines()
    assert text[1] == "'=HYPERLINK(1),68911,3,0.3333"


def test_no_internal_references_in_reports(reports):
    paths, _ = reports
    for kind, path in paths.items():
        html = path.read_text(encoding="utf-8")
        assert "SPEC" not in html and "§" not in html, kind


def test_cockpit_is_navigable_with_collapsed_rep_sections(reports):
    paths, _ = reports
    html = paths["cockpit"].read_text(encoding="utf-8")
    assert html.count("<details>") == 3  # one per rep, closed by default
    for rep in ("Ada Lovelace", "Grace Hopper", "Alan Turing"):
        assert re.search(rf"<summary><h2>{rep}</h2> <span class=\"muted\">\d+ T1 accounts", html), rep
        assert f">{rep}</a>" in html  # listed in the table of contents


def test_deal_types_are_counted_separately_and_reconcile():
    import pandas as pd

    from marketmap.reports.executive import by_kind

    deals = pd.DataFrame(
        {
            "kind": ["new", "new", "renewal", "renewal", "renewal", "expansion"],
            "won": [True, False, True, True, False, True],
            "amount": [100.0, 50.0, 200.0, 300.0, 10.0, 40.0],
        }
    )
    out = by_kind(deals).set_index("deal type")
    assert out.index.tolist() == ["new business", "renewal", "expansion"]
    assert out["closed"].tolist() == [2, 3, 1] and out["won"].tolist() == [1, 2, 1]
    assert out["revenue"].tolist() == [100.0, 500.0, 40.0]
    assert out["closed"].sum() == len(deals)


def test_cockpit_for_10_reps_with_300_t1_accounts_each(mm_home, monkeypatch):
    import pandas as pd

    from marketmap.config import load_client
    from marketmap.reports import cockpit
    from marketmap.reports.render import write_report

    monkeypatch.setenv("MARKETMAP_CLIENTS_DIR", str(CLIENTS_DIR))
    reps = {f"r{i}": f"Rep Number {i}" for i in range(10)}
    frame = pd.DataFrame(
        [
            {"account_key": f"a{r}-{j}", "rep_id": r, "tier": "T1", "name": f"Account {r}-{j}",
             "domain": f"a{r}-{j}.example.com", "score": 80 + j % 20, "valuation": 1000.0 * j}
            for r in reps
            for j in range(300)
        ]
    )  # fmt: skip
    contacts = pd.DataFrame(
        [
            {"account_key": f"a{r}-{j}", "persona_tier": "P1", "persona_score": 90.0, "first_name": "Pat",
             "last_name": f"Lee {j}", "title": "VP Sales", "priority": "highest: AE immediate outreach"}
            for r in reps
            for j in range(0, 300, 3)
        ]
    )  # fmt: skip
    monkeypatch.setattr(cockpit, "scored_accounts", lambda cfg, engine: frame)
    monkeypatch.setattr(cockpit, "contact_scores", lambda cfg, engine: contacts)
    monkeypatch.setattr(cockpit, "rep_names", lambda cfg, engine: reps)
    report = cockpit.build(load_client("acme"), None, RUN_ID)
    path = write_report(report, mm_home / "cockpit")
    html = path.read_text(encoding="utf-8")
    assert html.count("<details>") == 10  # every rep's accounts collapsed under their name
    for rep in reps.values():
        assert f">{rep}</a>" in html and f"<summary><h2>{rep}</h2>" in html
        assert "300 T1 accounts, 100 with a Tier-1 persona" in html
    assert html.count("<tr>") <= 10 * 26 + 20  # 25 rows per rep on the page, the rest in the CSV
    assert len(html) < 1_500_000
    for r in reps:
        assert len(_rows(path.parent / f"cockpit__{r}_t1.csv")) == 300
