"""`opte land` (ingest.landing) against the Landing, Columns and NINO sections of EXTRACTS.md.

Every case is built by hand as a tiny inbox file and would fail if the rule it names were wrong.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import random
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest import landing
from ingest.landing import current_files, land_inbox
from landing_fixtures import (TEST_KEY, csv_text, file_name, lake_snapshot, landed, manifests, person_key,
                              quarantined, row, write_csv, write_parquet, write_raw)
from measures.cli import main as cli_main
from measures.errors import OpteError

PK = person_key("AB123456C")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPTE_PSEUDO_KEY", TEST_KEY)


@pytest.fixture
def inbox(tmp_path):
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def land_one(inbox, home, dataset, rows, **kw):
    write_csv(inbox, dataset, rows, **kw)
    report = land_inbox(inbox, home)
    assert not report.rejected_files, report.rejected_files
    return report


def reasons(home, dataset):
    return {q.get("claim_id") or q.get("nino") or q.get("office_code") or q.get("district_code"): q["reject_reason"]
            for q in quarantined(home, dataset)}


# ------------------------------------------------------------------ each reject reason, and their order

REASON_CASES = [
    # (dataset, row changes, expected reason)
    ("benefit_claims", dict(claim_id="X", office_code=None), "missing_required"),
    ("benefit_claims", dict(claim_id="X", lone_parent=""), "missing_required"),
    ("benefit_claims", dict(claim_id="X", nino="QQ123456C"), "invalid_nino"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="2008-02-30"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="2009-02-29"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="2008-6-01"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_start_date=" 2008-06-01"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="20080601"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_end_date="2008/09/01"), "invalid_date"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="0000-01-01"), "invalid_date"),
    ("opte_targets", dict(district_code="X", opte_target="95.0"), "invalid_number"),
    ("opte_targets", dict(district_code="X", opte_target="+5"), "invalid_number"),
    ("opte_targets", dict(district_code="X", opte_target=" 5"), "invalid_number"),
    ("opte_targets", dict(district_code="X", opte_target="1e3"), "invalid_number"),
    ("opte_targets", dict(district_code="X", opte_target="\u0661\u0662"), "invalid_number"),
    ("opte_targets", dict(district_code="X", financial_year="99999999999999999999"), "invalid_number"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="1969-12-31"), "date_out_of_range"),
    ("benefit_claims", dict(claim_id="X", claim_start_date="2009-01-06", claim_end_date=""), "date_out_of_range"),
    ("customers", dict(nino="AB123456C", date_of_birth="1899-12-31"), "date_out_of_range"),
    ("customers", dict(nino="AB123456C", date_of_death="1969-12-31"), "date_out_of_range"),
    ("tax_employments", dict(nino="AB123456C", received_date="2009-01-06"), "date_out_of_range"),
    ("benefit_claims", dict(claim_id="X", claim_end_date="2008-05-31"), "end_before_start"),
    ("tax_employments", dict(nino="AB123456C", end_date="2008-09-01"), "end_before_start"),
    ("offices", dict(office_code="X", valid_to="1999-12-31"), "end_before_start"),
    ("benefit_claims", dict(claim_id="X", benefit_code="JSX"), "unknown_benefit"),
    ("benefit_claims", dict(claim_id="X", benefit_code=" JSA"), "unknown_benefit"),
    ("benefit_claims", dict(claim_id="X", disabled="YES"), "bad_flag"),
    ("benefit_claims", dict(claim_id="X", lone_parent=" Y"), "bad_flag"),
    ("customers", dict(nino="AB123456C", sex="X"), "bad_code"),
    ("tax_employments", dict(nino="AB123456C", form="P60"), "bad_code"),
]


@pytest.mark.parametrize("dataset,changes,expected", REASON_CASES,
                         ids=[f"{d}-{e}-{i}" for i, (d, _, e) in enumerate(REASON_CASES)])
def test_each_reject_reason(inbox, home, dataset, changes, expected):
    land_one(inbox, home, dataset, [row(dataset, **changes)])
    (q,) = quarantined(home, dataset)
    assert q["reject_reason"] == expected
    assert landed(home, dataset) == []
    (m,) = manifests(home, dataset)
    assert m["quarantined_by_reason"][expected] == 1 and m["rows_quarantined"] == 1


ORDER_CASES = [  # a row breaking two rules gets the earlier one
    ("benefit_claims", dict(office_code="", nino="QQ123456C"), "missing_required"),
    ("customers", dict(nino="", date_of_birth="1960-02-30"), "missing_required"),
    ("benefit_claims", dict(nino="QQ123456C", claim_start_date="2008-02-30"), "invalid_nino"),
    ("benefit_claims", dict(claim_start_date="2008-02-30", claim_end_date="1960-01-01"), "invalid_date"),
    ("opte_targets", dict(financial_year="x", district_code="D1", opte_target=""), "missing_required"),
    ("benefit_claims", dict(claim_start_date="1969-01-02", claim_end_date="1969-01-01"), "date_out_of_range"),
    ("benefit_claims", dict(claim_end_date="2008-01-01", benefit_code="XXX"), "end_before_start"),
    ("benefit_claims", dict(benefit_code="XXX", disabled="?"), "unknown_benefit"),
    ("customers", dict(date_of_birth="1899-01-01", sex="X"), "date_out_of_range"),
    ("tax_employments", dict(end_date="2008-01-01", form="P60"), "end_before_start"),
]


@pytest.mark.parametrize("dataset,changes,expected", ORDER_CASES,
                         ids=[f"{d}-{e}-{i}" for i, (d, _, e) in enumerate(ORDER_CASES)])
def test_reason_order(inbox, home, dataset, changes, expected):
    land_one(inbox, home, dataset, [row(dataset, **changes)])
    (q,) = quarantined(home, dataset)
    assert q["reject_reason"] == expected


def test_passing_edge_values_land(inbox, home):
    """Bounds that are allowed: birth in 1900, 1970 dates, dates on the extract date, equal start/end,
    validity dates outside every range, whitespace-only text, leading-zero and negative integers."""
    land_one(inbox, home, "customers", [row("customers", nino="AB123456C", date_of_birth="1900-01-01",
                                            date_of_death="2009-01-05"),
                                        row("customers", nino="AB123456D", date_of_birth="1950-01-01")])
    land_one(inbox, home, "benefit_claims", [
        row("benefit_claims", claim_id=" ", claim_start_date="1970-01-01", claim_end_date="1970-01-01"),
        row("benefit_claims", claim_id="C2", claim_start_date="2009-01-05", claim_end_date=""),
    ])
    land_one(inbox, home, "offices", [row("offices", valid_from="1950-01-01", valid_to="2099-12-31")])
    land_one(inbox, home, "opte_targets", [row("opte_targets", financial_year="02009", opte_target="-12")])
    for ds, n in (("customers", 2), ("benefit_claims", 2), ("offices", 1), ("opte_targets", 1)):
        assert len(landed(home, ds)) == n, quarantined(home, ds)
    (t,) = landed(home, "opte_targets")
    assert (t["financial_year"], t["opte_target"]) == (2009, -12)
    assert [r["claim_id"] for r in landed(home, "benefit_claims")] == [" ", "C2"]


def test_codes_and_flags_case_insensitive_and_stored_upper(inbox, home):
    land_one(inbox, home, "benefit_claims", [row("benefit_claims", benefit_code="jsa", office_code="ncl",
                                                 end_reason_code="fw", lone_parent="y", disabled="n")])
    land_one(inbox, home, "customers", [row("customers", sex="m", area_code="e01")])
    land_one(inbox, home, "tax_employments", [row("tax_employments", form="p45")])
    (c,) = landed(home, "benefit_claims")
    assert (c["benefit_code"], c["office_code"], c["end_reason_code"], c["lone_parent"], c["disabled"]) == \
        ("JSA", "NCL", "FW", "Y", "N")
    (cu,) = landed(home, "customers")
    assert (cu["sex"], cu["area_code"]) == ("M", "E01")
    assert landed(home, "tax_employments")[0]["form"] == "P45"


def test_unknown_end_reason_and_programme_codes_are_kept(inbox, home):
    land_one(inbox, home, "benefit_claims", [row("benefit_claims", end_reason_code="zz")])
    land_one(inbox, home, "programme_starts", [row("programme_starts", programme_code="nope")])
    assert landed(home, "benefit_claims")[0]["end_reason_code"] == "ZZ"
    assert landed(home, "programme_starts")[0]["programme_code"] == "NOPE"


# ------------------------------------------------------------------ NINOs

@pytest.mark.parametrize("raw", ["AB123456C", "ab123456c", "ab 12 34 56 c", "AB\u00a0123456C", "\tAB123456C ",
                                 "AB\u2003123456\u3000C", "A\u202fB123456C\u00a0"])
def test_nino_normalisation(inbox, home, raw):
    land_one(inbox, home, "customers", [row("customers", nino=raw)])
    (c,) = landed(home, "customers")
    assert c["person_key"] == PK
    assert "nino" not in c


FIRST_BAD = [f"{a}A123456C" for a in "DFIQUV"]
SECOND_BAD = [f"A{b}123456C" for b in "DFIOQUV"]
PREFIX_BAD = [f"{p}123456C" for p in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")]
SHAPE_BAD = ["AB123456E", "AB12345C", "AB1234567C", "A1123456C", "AB123456", "QQ123456C", "AB12345\u0666C",
             "AB123456CC", " "]


@pytest.mark.parametrize("raw", FIRST_BAD + SECOND_BAD + PREFIX_BAD + SHAPE_BAD)
def test_invalid_nino(inbox, home, raw):
    land_one(inbox, home, "customers", [row("customers", nino=raw)])
    (q,) = quarantined(home, "customers")
    assert q["reject_reason"] == "invalid_nino"
    assert q["nino"] == "<invalid nino>"


@pytest.mark.parametrize("ok", ["AA123456A", "CE123456B", "ZY123456D", "NA123456A", "BA123456C", "GA123456C"])
def test_allowed_prefixes(inbox, home, ok):
    land_one(inbox, home, "customers", [row("customers", nino=ok)])
    assert landed(home, "customers")[0]["person_key"] == person_key(ok)


def test_quarantine_pseudonymises_valid_nino(inbox, home):
    land_one(inbox, home, "customers", [row("customers", nino="ab 123456 c", sex="Q")])
    (q,) = quarantined(home, "customers")
    assert (q["reject_reason"], q["nino"]) == ("bad_code", PK)


def test_development_key_with_warning(inbox, home, monkeypatch, caplog):
    monkeypatch.delenv("OPTE_PSEUDO_KEY")
    from ingest.nino import DEVELOPMENT_KEY
    with caplog.at_level(logging.WARNING):
        land_one(inbox, home, "customers", [row("customers")])
    assert any("OPTE_PSEUDO_KEY" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert landed(home, "customers")[0]["person_key"] == person_key("AB123456C", DEVELOPMENT_KEY.decode())


# ------------------------------------------------------------------ CSV format

def test_csv_format_tolerances(inbox, home):
    """BOM, CRLF, reordered upper-case header, extra column, quoted comma and newline, "" = null,
    blank lines (also inside the file) are not rows."""
    text = ('\ufeffDISABLED,Claim_ID,EXTRA,nino,benefit_code,office_code,claim_start_date,claim_end_date,'
            'end_reason_code,lone_parent\r\n'
            '\r\n'
            'N,"C,1",x,AB123456C,JSA,"NCL\nEAST",2008-06-01,"",,Y\r\n'
            '\r\n\r\n'
            'N,C2,,AB123456C,JSA,NCL,2008-06-01,2008-07-01,"FW",N\r\n')
    write_raw(inbox, "benefit_claims", text)
    report = land_inbox(inbox, home)
    assert not report.rejected_files
    rows = landed(home, "benefit_claims")
    assert [r["claim_id"] for r in rows] == ["C,1", "C2"]
    assert rows[0]["office_code"] == "NCL\nEAST"
    assert rows[0]["claim_end_date"] is None and rows[0]["end_reason_code"] is None
    assert rows[1]["claim_end_date"] == date(2008, 7, 1)
    assert [r["_row_number"] for r in rows] == [1, 2]
    (m,) = manifests(home, "benefit_claims")
    assert m["rows_read"] == 2
    q_cols = pq.read_schema(home / "lake" / m["quarantine_file"]).names
    assert q_cols[:10] == ["disabled", "claim_id", "extra", "nino", "benefit_code", "office_code",
                           "claim_start_date", "claim_end_date", "end_reason_code", "lone_parent"]


def test_malformed_rows_keep_raw_text_and_row_numbers(inbox, home):
    header = ",".join(row("benefit_claims"))
    text = (header + "\n"
            + csv_text([row("benefit_claims", claim_id="C1")]).split("\n", 1)[1]
            + "C2,AB123456C,JSA\n"  # too few fields
            + "\n"
            + '"C3",AB123456C,JSA,NCL,2008-06-01,,,N,N,extra,more\n'  # too many
            + 'C4,AB123456C,JSA,"NCL\nX",2008-06-01,,,N,N\n'
            + "C5,AB123456C,JSA\n")
    write_raw(inbox, "benefit_claims", text)
    land_inbox(inbox, home)
    q = {r["_row_number"]: r for r in quarantined(home, "benefit_claims")}
    assert {n: r["reject_reason"] for n, r in q.items()} == {2: "malformed_row", 3: "malformed_row", 5: "malformed_row"}
    assert q[2]["_raw_line"] == "C2,<nino>,JSA"  # raw text kept, NINO scrubbed
    assert q[3]["_raw_line"].startswith('"C3",<nino>,JSA') and q[2]["claim_id"] is None
    assert [(r["claim_id"], r["_row_number"]) for r in landed(home, "benefit_claims")] == [("C1", 1), ("C4", 4)]
    (m,) = manifests(home, "benefit_claims")
    assert (m["rows_read"], m["rows_landed"], m["quarantined_by_reason"]["malformed_row"]) == (5, 2, 3)


def test_gzip_input(inbox, home):
    write_csv(inbox, "customers", [row("customers")], gz=True)
    land_inbox(inbox, home)
    (m,) = manifests(home, "customers")
    assert m["source_file"] == "customers_20090105.csv.gz" and m["rows_landed"] == 1


def test_parquet_input_text_form(inbox, home):
    table = pa.table({
        "Financial_Year": pa.array([2008, 2009, 2010, 2011], pa.int64()),
        "district_code": pa.array(["d1", "D2", "D3", ""], pa.string()),
        "opte_target": pa.array([95.0, 96.0, 95.5, 1.0], pa.float64()),
    })
    write_parquet(inbox, "opte_targets", table)
    land_inbox(inbox, home)
    assert {q["district_code"]: q["reject_reason"] for q in quarantined(home, "opte_targets")} == {
        "d1": "invalid_number", "D2": "invalid_number", "D3": "invalid_number", None: "missing_required"}
    assert quarantined(home, "opte_targets")[0]["opte_target"] == "95.0"

    ints = pa.table({"financial_year": [2008], "district_code": ["d1"], "opte_target": pa.array([95], pa.int32())})
    write_parquet(inbox, "opte_targets", ints, extract=date(2009, 2, 1))
    dates = pa.table({"nino": ["AB123456C"], "date_of_birth": pa.array([date(1960, 1, 2)], pa.date32()),
                      "sex": ["f"], "date_of_death": pa.array([None], pa.date32()), "area_code": [None]})
    write_parquet(inbox, "customers", dates)
    land_inbox(inbox, home)
    t = landed(home, "opte_targets")
    assert [(r["district_code"], r["opte_target"]) for r in t] == [("D1", 95)]
    (c,) = landed(home, "customers")
    assert (c["date_of_birth"], c["sex"], c["person_key"]) == (date(1960, 1, 2), "F", PK)


def test_landed_schema(inbox, home):
    land_one(inbox, home, "benefit_claims", [row("benefit_claims")])
    (m,) = manifests(home, "benefit_claims")
    schema = pq.read_schema(home / "lake" / m["data_file"])
    assert schema.names == ["claim_id", "person_key", "benefit_code", "office_code", "claim_start_date",
                            "claim_end_date", "end_reason_code", "lone_parent", "disabled",
                            "_extract_date", "_source_file", "_row_number"]  # landing time: manifest only
    assert schema.field("claim_start_date").type == pa.date32()
    assert schema.field("_row_number").type == pa.int64()
    assert m["data_file"] == "benefit_claims/extract_date=2009-01-05/benefit_claims_20090105.%s.parquet" % m["sha256"][:8]
    q_schema = pq.read_schema(home / "lake" / m["quarantine_file"])
    assert q_schema.names[-6:] == ["reject_reason", "_dataset", "_extract_date", "_source_file", "_row_number",
                                   "_raw_line"]
    assert pq.read_metadata(home / "lake" / m["quarantine_file"]).num_rows == 0  # always written
    assert set(m) >= {"dataset", "extract_date", "source_file", "sha256", "data_file", "quarantine_file",
                      "rows_read", "rows_landed", "rows_quarantined", "quarantined_by_reason",
                      "exact_duplicates_dropped", "landed_at", "code_version", "key_fingerprint", "history"}
    assert current_files(home / "lake", "benefit_claims") == [m]


def test_header_only_file_lands_empty(inbox, home):
    write_raw(inbox, "offices", ",".join(row("offices")) + "\n")
    report = land_inbox(inbox, home)
    assert not report.rejected_files and landed(home, "offices") == []
    assert manifests(home, "offices")[0]["rows_read"] == 0


# ------------------------------------------------------------------ duplicates and extracts

def test_exact_and_conflicting_duplicates(inbox, home):
    rows = [
        row("benefit_claims", claim_id="E"),
        row("benefit_claims", claim_id="E", benefit_code="jsa", nino="ab 123456 c"),  # equal after normalisation
        row("benefit_claims", claim_id="E"),
        row("benefit_claims", claim_id="K", disabled="N"),
        row("benefit_claims", claim_id="K", disabled="Y"),
        row("benefit_claims", claim_id="K", disabled="N"),
        row("benefit_claims", claim_id="N", claim_end_date=""),
        row("benefit_claims", claim_id="N", end_reason_code=None, claim_end_date="2008-09-01"),
        row("benefit_claims", claim_id="N", end_reason_code=None, claim_end_date="2008-09-01"),
        row("benefit_claims", claim_id="B", benefit_code="XXX"),  # fails a check: not a duplicate
        row("benefit_claims", claim_id="B"),
    ]
    land_one(inbox, home, "benefit_claims", rows)
    got = landed(home, "benefit_claims")
    assert [(r["claim_id"], r["_row_number"]) for r in got] == [("E", 1), ("B", 11)]
    q = quarantined(home, "benefit_claims")
    assert sorted((r["claim_id"], r["_row_number"], r["reject_reason"]) for r in q) == [
        ("B", 10, "unknown_benefit"),
        ("K", 4, "conflicting_duplicate"), ("K", 5, "conflicting_duplicate"), ("K", 6, "conflicting_duplicate"),
        ("N", 7, "conflicting_duplicate"), ("N", 8, "conflicting_duplicate"), ("N", 9, "conflicting_duplicate")]
    (m,) = manifests(home, "benefit_claims")
    assert (m["rows_read"], m["rows_landed"], m["rows_quarantined"], m["exact_duplicates_dropped"]) == (11, 2, 7, 2)
    assert m["quarantined_by_reason"]["conflicting_duplicate"] == 6


def test_composite_key_duplicates(inbox, home):
    rows = [row("tax_employments"), row("tax_employments", nino="ab123456c", form="p46"),
            row("tax_employments", paye_ref="OTHER"), row("tax_employments", start_date="2008-09-03")]
    land_one(inbox, home, "tax_employments", rows)
    assert len(landed(home, "tax_employments")) == 3
    assert manifests(home, "tax_employments")[0]["exact_duplicates_dropped"] == 1


def test_later_extracts_land_side_by_side(inbox, home):
    write_csv(inbox, "benefit_claims", [row("benefit_claims", claim_end_date="", end_reason_code="")],
              extract=date(2009, 2, 2))
    write_csv(inbox, "benefit_claims", [row("benefit_claims")], extract=date(2009, 3, 2))
    write_csv(inbox, "benefit_claims", [row("benefit_claims", benefit_code="XXX")], extract=date(2009, 4, 6))
    report = land_inbox(inbox, home)
    assert [r.extract_date for r in report.landed] == [date(2009, 2, 2), date(2009, 3, 2), date(2009, 4, 6)]
    got = landed(home, "benefit_claims")
    assert [(r["claim_id"], r["_extract_date"], r["claim_end_date"]) for r in got] == [
        ("C1", date(2009, 2, 2), None), ("C1", date(2009, 3, 2), date(2008, 9, 1))]
    assert [m["data_file"].split("/")[1] for m in manifests(home, "benefit_claims")] == [
        "extract_date=2009-02-02", "extract_date=2009-03-02", "extract_date=2009-04-06"]


# ------------------------------------------------------------------ idempotence, corrections, atomicity

def test_relanding_is_a_noop(inbox, home):
    write_csv(inbox, "benefit_claims", [row("benefit_claims"), row("benefit_claims", claim_id="Q", nino="x")])
    write_csv(inbox, "customers", [row("customers")])
    write_raw(inbox, "offices", b"\xff\xfe not csv")
    land_inbox(inbox, home)
    before = lake_snapshot(home)
    report = land_inbox(inbox, home)
    assert sorted(report.skipped) == [file_name("benefit_claims"), file_name("customers")]
    assert report.landed == [] and [r.file for r in report.rejected_files] == [file_name("offices")]
    assert lake_snapshot(home) == before


def test_correction_replaces_and_keeps_history(inbox, home):
    path = write_csv(inbox, "benefit_claims", [row("benefit_claims", claim_id="OLD")])
    land_inbox(inbox, home)
    (first,) = manifests(home, "benefit_claims")
    path.write_text(csv_text([row("benefit_claims", claim_id="NEW"), row("benefit_claims", claim_id="NEW2")],
                             list(row("benefit_claims"))))
    report = land_inbox(inbox, home)
    assert report.landed[0].correction
    assert [r["claim_id"] for r in landed(home, "benefit_claims")] == ["NEW", "NEW2"]
    (m,) = manifests(home, "benefit_claims")
    assert m["sha256"] != first["sha256"] and m["rows_landed"] == 2
    assert [h["sha256"] for h in m["history"]] == [first["sha256"]]
    assert m["history"][0]["rows_landed"] == 1 and "history" not in m["history"][0]
    assert not (home / "lake" / first["data_file"]).exists()
    files = sorted(p.name for p in (home / "lake" / "benefit_claims").rglob("*.parquet"))
    assert files == [m["data_file"].rsplit("/", 1)[1]]


def test_interrupted_landing_leaves_lake_consistent(inbox, home, monkeypatch):
    write_csv(inbox, "customers", [row("customers", area_code="OLD")])
    land_inbox(inbox, home)
    committed = lake_snapshot(home)
    # a correction and a new extract; the commit of the first new file fails
    write_csv(inbox, "customers", [row("customers", area_code="NEW")])
    write_csv(inbox, "customers", [row("customers", area_code="LATER")], extract=date(2009, 2, 2))

    def boom(lake, manifest):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(landing, "write_manifest", boom)
    with pytest.raises(OSError, match="injected"):
        land_inbox(inbox, home)
    assert [r["area_code"] for r in landed(home, "customers")] == ["OLD"]
    assert lake_snapshot(home) == committed  # the half-landed files were taken back

    # a landing killed outright leaves unnamed files: invisible to readers, removed next time
    orphan = home / "lake" / "customers" / "extract_date=2009-02-02" / "customers_20090202.deadbeef.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), orphan)
    (home / "lake" / "_manifests" / "customers" / "2009-02-02.json.tmp").write_text("{")
    assert [r["area_code"] for r in landed(home, "customers")] == ["OLD"]

    monkeypatch.undo()
    monkeypatch.setenv("OPTE_PSEUDO_KEY", TEST_KEY)
    report = land_inbox(inbox, home)
    assert len(report.landed) == 2 and not report.rejected_files
    assert [r["area_code"] for r in landed(home, "customers")] == ["NEW", "LATER"]
    assert not orphan.exists() and not (home / "lake" / "_manifests" / "customers" / "2009-02-02.json.tmp").exists()
    named = {m[k] for m in manifests(home, "customers") for k in ("data_file", "quarantine_file")}
    on_disk = {p.relative_to(home / "lake").as_posix() for p in (home / "lake").rglob("*.parquet")}
    assert on_disk == named


# ------------------------------------------------------------------ whole-file rejects and the CLI

def test_whole_file_rejects_via_cli(inbox, home, capsys):
    good = write_csv(inbox, "customers", [row("customers")])
    cols = list(row("benefit_claims"))
    write_raw(inbox, "benefit_claims", csv_text([row("benefit_claims")], cols[:-1]))  # missing `disabled`
    write_raw(inbox, "offices", "office_code,OFFICE_CODE," + ",".join(list(row("offices"))[1:]) + "\nA,A\n")
    write_csv(inbox, "tax_employments", [row("tax_employments")])
    write_csv(inbox, "tax_employments", [row("tax_employments")], gz=True)  # same extract date
    write_raw(inbox, "programme_starts", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")  # not CSV
    bad = csv_text([row("disadvantaged_areas"), row("disadvantaged_areas", area_name="Caf\xe9")]).encode("latin-1")
    write_raw(inbox, "disadvantaged_areas", bad)  # bad encoding, after a good row
    write_raw(inbox, "opte_targets", b"not gzip at all", ext="csv.gz")
    write_raw(inbox, "customers", b"x", name="customers_2009-01-05.csv")  # bad name
    (inbox / "stray").mkdir()
    (inbox / "stray" / "stray_20090105.csv").write_text("a\n")
    (inbox / "notes.txt").write_text("not an extract\n")
    (inbox / ".DS_Store").write_bytes(b"\0")  # hidden entries are ignored
    rc = cli_main(["--home", str(home), "land", "--inbox", str(inbox)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and err.startswith("opte land: 9 file(s) rejected whole")
    for name, words in [("benefit_claims_20090105.csv", "missing contract column(s) disabled"),
                        ("offices_20090105.csv", "duplicate column"),
                        ("tax_employments_20090105.csv.gz", "second file"),
                        ("programme_starts_20090105.csv", "UTF-8"),
                        ("disadvantaged_areas_20090105.csv", "UTF-8"),
                        ("opte_targets_20090105.csv.gz", "gzip"),
                        ("customers_2009-01-05.csv", "name does not match"),
                        ("stray_20090105.csv", "unknown dataset folder"),
                        ("notes.txt", "not in a dataset folder")]:
        assert f"{name}: " in err and words in err.split(f"{name}: ", 1)[1].split(";")[0], (name, err)
    # nothing of a rejected file lands; everything else does
    assert {p.name for p in (home / "lake" / "_manifests").iterdir()} == {"customers", "tax_employments"}
    assert manifests(home, "tax_employments")[0]["source_file"] == "tax_employments_20090105.csv"
    assert not list((home / "lake").glob("disadvantaged_areas/**/*.parquet"))
    rec = json.loads((home / "lake" / "_rejected" / "offices_20090105.csv.json").read_text())
    assert "duplicate column" in rec["reason"]

    # an extract date already landed under another name is rejected too
    good.unlink()
    write_csv(inbox, "customers", [row("customers")], gz=True)
    rc = cli_main(["--home", str(home), "land", "--inbox", str(inbox)])
    err = capsys.readouterr().err
    assert rc != 0 and "customers_20090105.csv.gz: customers extract date 2009-01-05 already landed from" in err


def test_clean_inbox_cli_exit_zero(inbox, home, capsys):
    write_csv(inbox, "customers", [row("customers")])
    assert cli_main(["--home", str(home), "land", "--inbox", str(inbox)]) == 0
    assert "landed 1 file(s)" in capsys.readouterr().out


def test_missing_inbox_raises(tmp_path):
    with pytest.raises(OpteError, match="does not exist"):
        land_inbox(tmp_path / "nope", tmp_path / "home")


# ------------------------------------------------------------------ reconciliation and NINO leakage

def _dirty_inbox(inbox, seed=7, n=400):
    """A hand-made dirty inbox: each row broken at random (or not), including duplicates."""
    rnd = random.Random(seed)
    letters = "ABCEGHJKLMNPRSTWXYZ"
    ninos = [f"{rnd.choice(letters)}{rnd.choice(letters)}{rnd.randrange(10**6):06d}{rnd.choice('ABCD')}"
             for _ in range(60)]
    breakers = [dict(nino="QQ123456C"), dict(nino=""), dict(claim_start_date="2008-13-01"),
                dict(claim_start_date="1960-01-01"), dict(claim_end_date="2008-01-01"), dict(benefit_code="ZZZ"),
                dict(disabled="maybe"), dict(office_code="")]
    rows = []
    for i in range(n):
        r = row("benefit_claims", claim_id=f"C{rnd.randrange(n // 2)}", nino=rnd.choice(ninos),
                disabled=rnd.choice("YN"), benefit_code=rnd.choice(["JSA", "esa", "IB"]))
        if rnd.random() < 0.2:
            r.update(rnd.choice(breakers))
        rows.append(r)
    text = csv_text(rows, list(row("benefit_claims")))
    lines = text.split("\n")
    lines.insert(50, "C999,AB123456C,JSA")  # malformed
    write_raw(inbox, "benefit_claims", "\n".join(lines))
    write_csv(inbox, "customers", [row("customers", nino=nn.lower(), sex=rnd.choice(["M", "f", "X", ""]))
                                   for nn in ninos])
    return ninos


def _synth_or_dirty(inbox):
    if importlib.util.find_spec("ingest.synth") is not None:
        from ingest.synth import synthesize
        synthesize(out=inbox, people=500, start="2008-04", end="2008-09", seed=3, dirty=0.05, bad_files=False)
        return None
    return _dirty_inbox(inbox)


def test_reconciliation_on_dirty_inbox(inbox, home):
    _synth_or_dirty(inbox)
    report = land_inbox(inbox, home)
    assert report.landed
    total_q = 0
    for ds in landing.CONTRACTS:
        for m in manifests(home, ds):
            assert m["rows_read"] == m["rows_landed"] + m["rows_quarantined"] + m["exact_duplicates_dropped"]
            assert m["rows_quarantined"] == sum(m["quarantined_by_reason"].values())
            data = pq.read_metadata(home / "lake" / m["data_file"]).num_rows
            quar = pq.read_metadata(home / "lake" / m["quarantine_file"]).num_rows
            assert (data, quar) == (m["rows_landed"], m["rows_quarantined"])
            total_q += quar
    assert total_q > 0


def test_no_raw_nino_anywhere(inbox, home, caplog):
    ninos = _dirty_inbox(inbox)
    write_csv(inbox, "tax_employments", [row("tax_employments", nino="ZZ123456C"),
                                         row("tax_employments", nino="ab\u00a0123456c", form="bad")])
    write_raw(inbox, "programme_starts", "nino,programme_code\nAB123456C,X\n")  # rejected whole
    needles = {n.upper() for n in ninos} | {"AB123456C", "ZZ123456C", "QQ123456C"}
    with caplog.at_level(logging.DEBUG):
        cli_main(["--home", str(home), "-v", "land", "--inbox", str(inbox)])
    texts = [caplog.text]
    for p in home.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix == ".parquet":
            t = pq.read_table(p)
            texts.append("\n".join(str(v) for c in t.columns for v in c.cast(pa.string()).to_pylist()))
        texts.append(p.read_bytes().decode("utf-8", "replace"))
    blob = "\n".join(texts).upper().replace(" ", "").replace("\u00a0", "")
    leaked = sorted(n for n in needles if n in blob)
    assert leaked == []
    assert len(list(home.rglob("*.parquet"))) >= 4  # the scan did look at files


def test_duckdb_reads_only_manifest_named_files(inbox, home):
    land_one(inbox, home, "customers", [row("customers")])
    files = [str(home / "lake" / m["data_file"]) for m in current_files(home / "lake", "customers")]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchall()[0][0] == 1


def test_bad_encoding_deep_in_file_rejects_whole(inbox, home):
    """A bad byte far past the header (met while streaming, after rows were already checked)."""
    good = [row("offices", office_code=f"O{i}") for i in range(2000)]
    data = csv_text(good + [row("offices", office_name="Caf\udce9")]).encode("utf-8", "surrogateescape")
    assert len(data) > 100_000
    write_raw(inbox, "offices", data)
    write_csv(inbox, "customers", [row("customers")])
    report = land_inbox(inbox, home)
    offset = data.index(b"\xe9")  # the reason says where: line 1 is the header, so the 2001st row is line 2002
    assert data[:offset].count(b"\n") + 1 == 2002
    assert [(r.file, r.reason) for r in report.rejected_files] == [
        ("offices_20090105.csv", f"not UTF-8 text: invalid byte 0xE9 on line 2002 (byte offset {offset})")]
    assert manifests(home, "offices") == [] and not (home / "lake" / "offices").exists()
    assert len(landed(home, "customers")) == 1
    assert not (home / ".landing_tmp").exists()


def test_extra_column_named_like_ours_is_ignored(inbox, home):
    cols = list(row("customers")) + ["_row_number", "reject_reason"]
    write_raw(inbox, "customers", csv_text([row("customers", _row_number="x", reject_reason="y", sex="Z")], cols))
    land_inbox(inbox, home)
    (q,) = quarantined(home, "customers")
    assert (q["_row_number"], q["reject_reason"]) == (1, "bad_code")
