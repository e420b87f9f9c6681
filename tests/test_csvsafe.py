"""Hostile text stays text: CSVs never carry live formulas; chart labels are never TeX."""

from __future__ import annotations

import csv
import io

import pandas as pd

from marketmap import csvsafe
from marketmap.reports import charts

HOSTILE = [
    '=HYPERLINK("http://evil","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTab",
    "\rCR",
]


def test_formula_cells_get_an_apostrophe_and_numbers_stay_numbers():
    for value in HOSTILE:
        assert csvsafe.safe_cell(value) == "'" + value
    for value in ["-5", "-1.5", "+44", "-1,234.50", -5, -1.5e3, 0, None, "Acme", "", "a=b"]:
        assert csvsafe.safe_cell(value) == value


def test_writers_and_frames():
    buf = io.StringIO()
    w = csvsafe.writer(buf)
    w.writerow(["name", "employees"])
    w.writerows([[HOSTILE[0], -5], ["Acme", 10]])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows == [["name", "employees"], ["'" + HOSTILE[0], "-5"], ["Acme", "10"]]
    buf = io.StringIO()
    dw = csvsafe.dict_writer(buf, fieldnames=["Name", "Amount"])
    dw.writeheader()
    dw.writerow({"Name": "@evil", "Amount": -3})
    assert buf.getvalue().splitlines() == ["Name,Amount", "'@evil,-3"]
    df = pd.DataFrame({"name": ["=1+1", "ok"], "value": [-1.5, 2.0]})
    out = csvsafe.safe_frame(df)
    assert out["name"].tolist() == ["'=1+1", "ok"] and out["value"].tolist() == [-1.5, 2.0]
    assert df["name"].tolist() == ["=1+1", "ok"]  # the caller's frame is untouched


def test_crm_import_file_neutralises_formulas(fixture_clients, mm_home, tmp_path):
    from marketmap.config import load_client
    from marketmap.crm.base import WriteRecord
    from marketmap.crm.csv_adapter import CsvAdapter

    adapter = CsvAdapter(load_client("sample"), out_dir=tmp_path)
    rec = WriteRecord(
        key="k1", crm_id="001A00000000001AAA", fields={"Name": "=cmd()", "NumberOfEmployees": -5}
    )
    adapter.write("account", "update", [rec])
    adapter.write("account", "update", [rec])  # a retried batch: still one apostrophe
    text = next(tmp_path.glob("*_update.csv")).read_text(encoding="utf-8")
    assert "'=cmd()" in text and "''=cmd()" not in text and ",-5" in text


def test_chart_labels_are_text_not_tex():
    svg = charts.bar(["$\\frac{1}{$", "50% $off$", "Software"], [3, 2, 1], title="Accounts by $industry",
                     xlabel="industry", ylabel="accounts")  # fmt: skip
    assert "$\\frac{1}{$" in svg and "$off$" in svg
