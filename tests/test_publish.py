"""Publication (PUBLICATION.md): files, columns, windows, names and parents, provisional flags, the data
dictionary, manifest, re-publication and revisions, disclosure control, personal data, workbooks and
pages.

The fast tests publish from a fixture warehouse holding only the aggregate marts
(tests/publish_fixture.py). The slow tests land the sample inbox, build the warehouse with dbt and
publish from it; the browser, LibreOffice and corrected-extract tests are in tests/test_publish_views.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from publish_fixture import CUTOFF, EMPTY_OFFICE, UNKNOWN_OFFICE, make_warehouse  # noqa: E402

from measures import dictionary  # noqa: E402
from measures import disclosure  # noqa: E402
from measures import publish as publish_mod  # noqa: E402
from measures.errors import OpteError  # noqa: E402
from measures.manifest import sha256_file  # noqa: E402
from measures.publish import publish_month  # noqa: E402
from measures.publish_tables import (  # noqa: E402
    BOOL_COLUMNS, DATE_COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, PARENTS, add_months,
)
from measures.workbooks import RAG_FILLS, SHEETS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MONTH = "2010-03"
LEVELS = ("office", "district", "region", "national")
POINTS = ("opte_points", "jot_points")
DISTRICTS = ["D1", "D2", "D3"]


@pytest.fixture(scope="module")
def fixture_home(tmp_path_factory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("home")
    ids = make_warehouse(home)
    return home, ids


@pytest.fixture(scope="module")
def internal(fixture_home) -> Path:
    return publish_month(fixture_home[0], MONTH)


@pytest.fixture(scope="module")
def external(fixture_home) -> Path:
    return publish_month(fixture_home[0], MONTH, external=True)


def table_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every published file except the manifests (which alone carry timestamps)."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith("manifest")}


def csv_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob("*.csv"))}


def warehouse(home: Path, sql: str, params=()) -> pd.DataFrame:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


# ------------------------------------------------------------------ files and columns


def test_internal_files_and_columns(internal):
    assert internal.name == MONTH and internal.parent.name == "publish"
    for level in LEVELS:
        for stem in (f"opte_{level}", f"cohort_rates_{level}"):
            assert (internal / f"{stem}.csv").exists() and (internal / f"{stem}.parquet").exists()
        cols = list(pd.read_csv(internal / f"opte_{level}.csv", nrows=0).columns)
        assert cols[:3] == ["level", "unit_code", "unit_name"]
        assert cols[3:3 + len(PARENTS[level])] == PARENTS[level]
        assert {"offflows", "opte_offflows", "pct_of_target_ytd", "rag", "opte_is_final", "jot_is_final"} <= set(cols)
        cohort_cols = list(pd.read_csv(internal / f"cohort_rates_{level}.csv", nrows=0).columns)
        assert {"unit_name", "due_date", "is_due", "offflow_rate", *PARENTS[level]} <= set(cohort_cols)
    conv = pd.read_csv(internal / "opte_jot_conversion.csv")
    assert set(conv["level"]) == {"district", "region", "national"}
    assert {"unit_name", "region_code", "region_name", "opte_is_final", "jot_is_final"} <= set(conv.columns)
    for name in ("report.html", "manifest.json", "revisions.csv", "revisions.parquet", "data_dictionary.csv"):
        assert (internal / name).exists(), name
    # one workbook and one page per real district; the unallocated off-flows are no district
    assert sorted(p.name for p in (internal / "districts").iterdir()) == sorted(
        [f"{d}.xlsx" for d in DISTRICTS] + [f"{d}.html" for d in DISTRICTS])


def test_new_marts_are_published_with_names_and_flags(fixture_home, internal):
    home, _ = fixture_home
    for level in LEVELS:
        s = pd.read_csv(internal / f"sustainability_{level}.csv")
        assert {"unit_name", "month", "week", "sustained_rate", "is_due", "opte_is_final", *PARENTS[level]} <= set(s.columns)
        # the 12 months before the report month (every week of them), and earlier months still falling due
        assert set(s["month"]) <= {f"{m:%Y-%m-01}" for m in (add_months(date(2010, 3, 1), -i) for i in range(1, 13))}
        assert (s["is_due"] == s["sustained_rate"].notna()).all()
    monitors = pd.read_csv(internal / "office_monitors.csv")
    assert set(monitors["month"]) == {"2010-03-01"}
    assert {"office_name", "district_name", "region_code", "includes_provisional_months"} <= set(monitors.columns)
    assert set(monitors["indicator"]) == {"opte_share", "cross_flow_share", "programme_start_share",
                                         "returned_within_week_share", "failed_to_sign_share"}
    agreement = pd.read_csv(internal / "measure_agreement.csv")
    assert set(agreement["financial_year"]) == {2009}  # years up to that of the report month
    assert agreement["is_provisional"].all()  # 2009 is the report month's own year
    district = pd.read_csv(internal / "opte_district.csv")
    assert {"proxy_offflows", "opte_nowcast", "opte_projected_annual", "projected_pct_of_target",
            "projected_rag"} <= set(district.columns)
    cohorts = pd.read_csv(internal / "cohort_rates_district.csv")
    assert cohorts.loc[cohorts["is_due"], "projected_rate"].isna().all()
    assert cohorts.loc[~cohorts["is_due"], "projected_rate"].notna().any()
    page = (internal / "districts" / "D2.html").read_text()
    for anchor in ("chart-funnels", "chart-sustainability"):
        assert f'id="{anchor}"' in page


def test_an_older_warehouse_publishes_without_the_new_marts(tmp_path):
    home = tmp_path / "home"
    make_warehouse(home, new_marts=False)
    folder = publish_month(home, MONTH)
    names = {p.name for p in folder.iterdir()}
    assert not {"office_monitors.csv", "measure_agreement.csv"} & names
    assert not any(n.startswith("sustainability_") for n in names)
    assert "proxy_offflows" not in pd.read_csv(folder / "opte_district.csv", nrows=0).columns
    assert "projected_rate" not in pd.read_csv(folder / "cohort_rates_national.csv", nrows=0).columns
    page = (folder / "districts" / "D1.html").read_text()
    assert "appear here once the warehouse holds them" in page


@pytest.mark.parametrize("drop, message", [
    ("alter table marts.cohort_offflow_rates drop column due_date", "has no marts.cohort_offflow_rates.due_date"),
    ("drop table intermediate.int_data_cutoff", r"records no data cut-off \(intermediate.int_data_cutoff\)"),
])
def test_publication_never_works_out_a_rule_the_warehouse_lacks(tmp_path, drop, message):
    """The due dates and the cut-off are dbt's: a warehouse without them is rebuilt, not second-guessed."""
    home = tmp_path / "home"
    make_warehouse(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute(drop)
    finally:
        con.close()
    with pytest.raises(OpteError, match=message) as err:
        publish_month(home, MONTH)
    assert "\n" not in str(err.value) and "opte build" in str(err.value)
    assert not (home / "publish" / MONTH).exists()


def test_every_row_names_its_unit_and_the_units_above(internal):
    tables = csv_tables(internal)
    checked = 0
    for name, df in tables.items():
        if name in ("revisions", "data_dictionary") or not len(df):
            continue
        level = df["level"].iloc[0] if "level" in df else None
        if name == "measure_agreement":  # one row per level and year: no unit to name
            continue
        code, label = ("unit_code", "unit_name") if "unit_code" in df else ("office_code", "office_name")
        named = df[df[code] != UNKNOWN_OFFICE]  # an office code with no offices row has no name
        assert (named[label] != "").all(), f"{name}: a row without its unit's name"
        if name.endswith("_office") or name == "office_monitors":
            if name == "office_monitors":
                df = df.rename(columns={"office_code": "unit_code"})
            for col in ("district_code", "district_name", "region_code", "region_name"):
                assert (df[col] != "").all(), f"{name}.{col} empty"
            unknown = df[df["unit_code"] == UNKNOWN_OFFICE]
            assert len(unknown) and (unknown["district_code"] == "UNALLOCATED").all()
            known = df[df["unit_code"] != UNKNOWN_OFFICE]
            assert (known["district_code"] == known["unit_code"].map(
                lambda o: {"O11": "D1", "O12": "D1", "O21": "D2", "O22": "D2", "O23": "D2", "O31": "D3"}[o])).all()
            checked += 1
        if name.endswith("_district") or name == "opte_jot_conversion":
            rows = df[df["level"] == "district"] if level else df
            assert (rows["region_code"] != "").all() and (rows["region_name"] != "").all()
            real = rows[rows["unit_code"] != "UNALLOCATED"]
            assert (real["region_code"] == real["unit_code"].map({"D1": "R1", "D2": "R1", "D3": "R2"})).all()
            checked += 1
    assert checked >= 4


def test_every_table_has_a_provisional_flag(internal):
    flags = {"opte_is_final", "jot_is_final", "is_due", "includes_provisional_months", "is_provisional"}
    for name, df in csv_tables(internal).items():
        if name in ("revisions", "data_dictionary"):
            continue
        assert flags & set(df.columns), f"{name} has no provisional flag"
    district = pd.read_csv(internal / "opte_district.csv")
    final = district.set_index(["unit_code", "month"])
    conv = pd.read_csv(internal / "opte_jot_conversion.csv")
    conv = conv[conv["level"] == "district"]
    for _, r in conv.iterrows():  # the conversion rows carry their month's flags from opte_monthly
        assert r["jot_is_final"] == final.loc[(r["unit_code"], r["month"]), "jot_is_final"]


def test_office_files_carry_people_only(internal):
    for name in ("opte_office.csv", "opte_office.parquet"):
        cols = (pd.read_csv(internal / name, nrows=0).columns if name.endswith("csv")
                else pq.read_schema(internal / name).names)
        assert not set(POINTS) & set(cols)
    for level in ("district", "region", "national"):
        assert set(POINTS) <= set(pd.read_csv(internal / f"opte_{level}.csv", nrows=0).columns)


def test_parquet_is_typed_like_the_csv(internal):
    for path in internal.glob("*.parquet"):
        schema = pq.read_schema(path)
        csv = pd.read_csv(path.with_suffix(".csv"), dtype=str, keep_default_na=False)
        assert schema.names == list(csv.columns), path.name
        assert pq.read_metadata(path).num_rows == len(csv)
        for field in schema:
            expected = ("int64" if field.name in INT_COLUMNS else "double" if field.name in FLOAT_COLUMNS
                        else "date32[day]" if field.name in DATE_COLUMNS else "bool" if field.name in BOOL_COLUMNS
                        else "string")
            if path.stem in ("revisions", "data_dictionary"):
                expected = "string"
            assert str(field.type) == expected, f"{path.name}.{field.name}: {field.type}"


def test_csv_formatting(internal):
    text = (internal / "opte_district.csv").read_text()
    first = text.splitlines()[1].split(",")
    header = text.splitlines()[0].split(",")
    row = dict(zip(header, first))
    assert re.fullmatch(r"\d+\.\d{6}", row["opte_share_of_offflows"])
    assert row["opte_is_final"] in ("true", "false")
    assert re.fullmatch(r"\d{4}-\d{2}-01", row["month"])
    assert "\r" not in text


def test_trend_window_is_13_months(fixture_home):
    home, _ = fixture_home
    folder = publish_month(home, "2010-06")
    national = pd.read_csv(folder / "opte_national.csv")
    assert national["month"].tolist() == [f"{y}-{m:02d}-01" for y, m in
                                          [(2009, m) for m in range(6, 13)] + [(2010, m) for m in range(1, 7)]]
    office = pd.read_csv(folder / "opte_office.csv")
    assert office["month"].min() >= "2009-06-01" and office["month"].max() == "2010-06-01"
    assert office[["unit_code", "month"]].apply(tuple, axis=1).is_monotonic_increasing


def test_cohort_rows_are_complete_cohorts_due_in_the_24_months_to_the_report_month(fixture_home, internal):
    home, _ = fixture_home
    cohorts = pd.read_csv(internal / "cohort_rates_national.csv", parse_dates=["cohort_month", "due_date"])
    last_day = pd.Timestamp("2010-03-31")
    first_due = cohorts.groupby(["benefit_code", "cohort_month"])["due_date"].min()
    assert (first_due <= last_day).all() and (first_due >= pd.Timestamp("2008-04-01")).all()
    mart_due = warehouse(home, "select benefit_code, cohort_month, week, due_date from marts.cohort_offflow_rates "
                               "where level = 'national'").set_index(["benefit_code", "cohort_month", "week"])["due_date"]
    for _, r in cohorts.iterrows():  # the mart's due date, as it is
        assert r["due_date"] == mart_due[(r["benefit_code"], r["cohort_month"], r["week"])]
        assert bool(r["is_due"]) == (r["due_date"] <= last_day)
        assert pd.isna(r["offflow_rate"]) != bool(r["is_due"])
    # every week of a published cohort is there, due or not
    assert (cohorts.groupby(["benefit_code", "cohort_month"]).size() == 3).all()
    # the mart says week 52 of the April 2009 cohort is due at the cut-off (2010-06-30), but it fell
    # due after March 2010: March's publication shows it as not yet due, without a rate
    mart = warehouse(home, "select is_due from marts.cohort_offflow_rates where level = 'national' "
                           "and cohort_month = '2009-04-01' and week = 52")
    assert mart["is_due"].all()
    april = cohorts[(cohorts["cohort_month"] == "2009-04-01") & (cohorts["week"] == 52)]
    assert len(april) and not april["is_due"].any() and april["offflow_rate"].isna().all()


def test_month_outside_the_warehouse_is_an_error(fixture_home):
    home, _ = fixture_home
    with pytest.raises(OpteError, match="not in the warehouse"):
        publish_month(home, "2009-03")
    with pytest.raises(OpteError, match="not in the warehouse"):
        publish_month(home, "2010-07")
    with pytest.raises(OpteError, match="YYYY-MM"):
        publish_month(home, "2010-13")


def test_no_warehouse_is_an_error(tmp_path):
    with pytest.raises(OpteError, match="opte build"):
        publish_month(tmp_path, MONTH)


# ------------------------------------------------------------------ the data dictionary


def test_data_dictionary_describes_every_published_column_from_one_place(internal):
    dd = pd.read_csv(internal / "data_dictionary.csv", dtype=str, keep_default_na=False)
    expected = {(p.stem, c) for p in internal.glob("*.csv") for c in pd.read_csv(p, nrows=0).columns}
    assert set(zip(dd["file"], dd["column"])) == expected
    assert len(dd) == len(expected)
    assert (dd["meaning"].str.len() > 10).all() and (dd["label"] != "").all()
    assert set(dd["unit"]) <= {"people", "points", "share", "date", "month", "code", "name", "flag", "text", "number"}
    descriptions = dictionary.dbt_descriptions()
    from_dbt = dd[dd["source"].str.startswith("dbt: ")]
    assert len(from_dbt) > 50
    for _, r in from_dbt.iterrows():  # the very words of the dbt column description
        model, column = r["source"].removeprefix("dbt: marts.").split(".")
        assert r["meaning"] == dictionary.plain(descriptions[(model, column)])
        assert "{{" not in r["meaning"] and "**" not in r["meaning"] and "`" not in r["meaning"]
    rag = dd[(dd["file"] == "opte_office") & (dd["column"] == "rag")].iloc[0]
    assert rag["source"] == "dbt: marts.opte_monthly.rag" and "0.95" in rag["meaning"]
    parent = dd[(dd["file"] == "opte_office") & (dd["column"] == "district_code")].iloc[0]
    assert parent["source"] == "publication"
    assert (dd[dd["column"] == "offflows"]["can_be_provisional"].str.startswith("yes")).all()


def test_a_column_nobody_described_cannot_be_published():
    with pytest.raises(KeyError, match="describe it"):
        dictionary.meaning("opte_office", "a_column_nobody_described")
    with pytest.raises(KeyError, match="no label"):
        dictionary.column("a_column_nobody_described")


def test_doc_blocks_are_rendered_as_dbt_renders_them():
    text = dictionary.render_description("Off-flows in the month. {{ doc('offflow') }}")
    assert text.startswith("Off-flows in the month. **Off-flow**")
    assert dictionary.plain("**Off-flow**: `claim_end_date`\n  is  set") == "Off-flow: claim_end_date is set"


# ------------------------------------------------------------------ manifest and re-publication


def test_manifest_lists_every_file_with_checksum(internal):
    manifest = json.loads((internal / "manifest.json").read_text())
    assert manifest["report_month"] == MONTH
    assert manifest["data_cutoff"] == CUTOFF.isoformat()
    assert manifest["release"] == "internal"
    assert manifest["code_version"]
    assert manifest["measure_parameters"]["opte_maturity_days"] == 28
    assert set(manifest["provisional_months"]) == {"opte", "jot"}
    assert "2010-03" in manifest["provisional_months"]["jot"]
    assert len(manifest["input_extracts"]) == 7
    assert all(len(e["sha256"]) == 64 and e["source_file"] for e in manifest["input_extracts"])
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(internal).as_posix() for p in internal.rglob("*")
               if p.is_file() and not p.name.startswith("manifest")}
    assert set(listed) == on_disk
    for path, entry in listed.items():
        assert sha256_file(internal / path) == entry["sha256"]
        if path.endswith(".csv"):
            assert entry["rows"] == len(pd.read_csv(internal / path))
        if path.endswith(".parquet"):
            assert entry["rows"] == pq.read_metadata(internal / path).num_rows
    workbook = listed["districts/D2.xlsx"]
    assert list(workbook["sheets"]) == list(SHEETS)


def test_republication_keeps_the_old_manifest_and_is_byte_identical_when_nothing_changed(fixture_home):
    home, _ = fixture_home
    first = publish_month(home, "2010-01")
    tables_before = {k: v for k, v in table_hashes(first).items() if not k.startswith(("districts/", "report",
                                                                                         "revisions"))}
    old_manifest = json.loads((first / "manifest.json").read_text())
    second = publish_month(home, "2010-01")
    assert second == first
    # the tables are the same; the pages and workbooks now say what changed since the replaced publication
    assert {k: v for k, v in table_hashes(second).items() if k in tables_before} == tables_before
    kept = sorted(second.glob("manifest.*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == old_manifest
    new_manifest = json.loads((second / "manifest.json").read_text())
    assert new_manifest["previous_manifests"] == [kept[0].name]
    assert new_manifest["revisions_compared_with"]["kind"] == "replaced"
    assert len(pd.read_csv(second / "revisions.csv")) == 0  # nothing changed
    assert "No published figure" in (second / "districts" / "D1.html").read_text()
    hashes = table_hashes(second)
    third = publish_month(home, "2010-01")
    assert table_hashes(third) == hashes  # the same warehouse, the same publication, byte for byte
    assert len(list(third.glob("manifest.*.json"))) == 2  # the chain of revisions is kept
    assert not [p for p in third.parent.iterdir() if p.name.startswith(".2010-01")]  # no temp left


def test_failure_mid_publish_leaves_previous_publication(fixture_home, monkeypatch):
    home, _ = fixture_home
    folder = publish_month(home, "2010-02")
    before = {p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real = publish_mod.write_workbook

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(publish_mod, "write_workbook", failing)
    with pytest.raises(RuntimeError, match="injected"):
        publish_month(home, "2010-02")
    after = {p.relative_to(folder).as_posix(): sha256_file(p) for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".2010-02")]


# ------------------------------------------------------------------ revisions


def expected_revisions(old: Path, new: Path) -> set[tuple]:
    """Every cell that differs between two publications, worked out independently of measures.revisions:
    (file, key, column, old, new) for the rows both hold, on the columns both hold."""
    from measures.revisions import table_keys

    out = set()
    for path in sorted(new.glob("*.csv")):
        keys = table_keys(path.stem)
        if keys is None or not (old / path.name).exists():
            continue
        a = pd.read_csv(old / path.name, dtype=str, keep_default_na=False).set_index(keys)
        b = pd.read_csv(path, dtype=str, keep_default_na=False).set_index(keys)
        common = [c for c in b.columns if c in a.columns]
        both = a.index.intersection(b.index)
        for key in both:
            for c in common:
                if a.at[key, c] != b.at[key, c]:
                    out.add((path.stem, tuple(key), c, a.at[key, c], b.at[key, c]))
    return out


def published_revisions(folder: Path) -> tuple[set[tuple], pd.DataFrame]:
    from measures.revisions import table_keys

    rev = pd.read_csv(folder / "revisions.csv", dtype=str, keep_default_na=False)
    out = set()
    for _, r in rev[rev["change"].isin(["revised", "filled", "withdrawn"])].iterrows():
        keys = table_keys(r["file"])
        extra = dict(part.split("=", 1) for part in r["row_key"].split("; ")) if r["row_key"] else {}
        values = {"level": r["level"], "unit_code": r["unit_code"], "office_code": r["unit_code"],
                  "month": r["month"], "cohort_month": r["month"], "financial_year": r["month"], **extra}
        out.add((r["file"], tuple(values[k] for k in keys), r["column"], r["old_value"], r["new_value"]))
    return out, rev


def test_republication_lists_exactly_the_changed_cells(tmp_path):
    home = tmp_path / "home"
    make_warehouse(home, new_marts=False)
    before = publish_month(home, MONTH)
    saved = tmp_path / "before"
    shutil.copytree(before, saved)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:  # a corrected extract, as the warehouse sees it: some figures move, one row appears
        con.execute("update marts.opte_monthly set jot_points = jot_points + 7, job_outcomes = job_outcomes + 1 "
                    "where level = 'district' and unit_code = 'D1' and month = '2010-02-01'")
        con.execute("update marts.opte_monthly set unit_name = 'Office O12 (renamed)' where unit_code = 'O12'")
        con.execute("update marts.cohort_offflow_rates set offflowed_by_week = offflowed_by_week - 1, "
                    "offflow_rate = (offflowed_by_week - 1) / cohort_size where level = 'region' and "
                    "unit_code = 'R2' and cohort_month = '2009-06-01' and week = 26 and benefit_code = 'JSA'")
        con.execute("delete from marts.opte_jot_conversion where level = 'national' and month = '2010-01-01' "
                    "and customer_group = 'jsa'")
    finally:
        con.close()
    after = publish_month(home, MONTH)
    expected = expected_revisions(saved, after)
    got, rev = published_revisions(after)
    assert got == expected
    assert ("opte_district", ("district", "D1", "2010-02-01"), "jot_points") in {e[:3] for e in expected}
    d1 = rev[(rev["file"] == "opte_district") & (rev["unit_code"] == "D1") & (rev["column"] == "jot_points")]
    old_points = pd.read_csv(saved / "opte_district.csv").set_index(["unit_code", "month"]).at[
        ("D1", "2010-02-01"), "jot_points"]
    assert d1[["old_value", "new_value", "change"]].values.tolist() == [
        [str(old_points), str(old_points + 7), "revised"]]
    renamed = rev[(rev["column"] == "unit_name") & (rev["change"] == "revised")]
    assert set(renamed["unit_code"]) == {"O12"} and set(renamed["new_value"]) == {"Office O12 (renamed)"}
    removed = rev[rev["change"] == "row removed"]
    assert set(removed["file"]) == {"opte_jot_conversion"} and set(removed["month"]) == {"2010-01-01"}
    assert (removed["new_value"] == "").all() and (removed["old_value"] != "").all()
    # the pages and workbooks say what changed
    page = (after / "districts" / "D1.html").read_text()
    assert "What changed since the last publication" in page and "jot_points" not in page.split("Revised figures")[0][-5:]
    from openpyxl import load_workbook

    sheet = list(load_workbook(after / "districts" / "D1.xlsx")["Revisions"].iter_rows(values_only=True))
    assert any(r[0] == "opte_district" and r[5] == dictionary.label("jot_points") and r[7] == str(old_points + 7)
               for r in sheet)
    national = (after / "report.html").read_text()
    assert "row removed" in national


def test_a_new_month_is_compared_with_the_month_before(tmp_path):
    home = tmp_path / "home"
    make_warehouse(home, new_marts=False)
    publish_month(home, "2010-02")
    march = publish_month(home, "2010-03")
    manifest = json.loads((march / "manifest.json").read_text())
    assert manifest["revisions_compared_with"]["kind"] == "previous month"
    assert manifest["revisions_compared_with"]["report_month"] == "2010-02"
    rev = pd.read_csv(march / "revisions.csv", dtype=str, keep_default_na=False)
    # rows that only entered or left the 13-month window are not revisions
    months = rev[rev["file"].str.startswith("opte_")]["month"]
    assert (months >= "2009-03-01").all() and (months <= "2010-02-01").all()
    assert expected_revisions(tmp_path / "home" / "publish" / "2010-02", march) == published_revisions(march)[0]


# ------------------------------------------------------------------ disclosure control


COUNTS = ("offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
          "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "job_outcomes", "opte_ytd",
          "opte_points", "jot_points", "cohort_size", "offflowed_by_week", "opte_with_job_outcome")
RATES = {"opte_share_of_offflows": "offflows", "offflow_rate": "cohort_size", "conversion_rate": "opte_offflows"}


def test_external_files_are_disclosure_controlled(fixture_home, internal, external):
    assert external.parent.name == "external" and external.name == MONTH
    names = {p.name for p in external.iterdir()}
    assert not any("office" in n for n in names)
    assert "opte_district.csv" in names and "cohort_rates_district.csv" in names
    checked_rates = 0
    for csv in external.glob("*.csv"):
        if csv.stem in ("revisions", "data_dictionary"):
            continue
        ext = pd.read_csv(csv)
        exact = pd.read_csv(internal / csv.name)
        if csv.stem == "measure_agreement":  # its office-level rows stay inside
            exact = exact[exact["level"] != "office"].reset_index(drop=True)
        assert len(ext) == len(exact)
        for col in COUNTS:
            if col in ext:
                values = ext[col].dropna().astype(int)
                assert (values % 5 == 0).all(), f"{csv.name}.{col} not rounded to 5"
        for rate, den in RATES.items():
            if rate in ext:
                small = exact[den] < 10
                assert ext.loc[small, rate].isna().all(), f"{csv.name}.{rate} shown for denominator < 10"
                checked_rates += int(small.sum())
                shown = ext[rate].notna()
                num = {"opte_share_of_offflows": "opte_offflows", "offflow_rate": "offflowed_by_week",
                       "conversion_rate": "opte_with_job_outcome"}[rate]
                assert ((ext.loc[shown, num] / ext.loc[shown, den] - ext.loc[shown, rate]).abs() < 1e-6).all()
    assert checked_rates > 0  # the fixture has small denominators to withhold
    manifest = json.loads((external / "manifest.json").read_text())
    assert manifest["release"] == "external" and manifest["disclosure_control"]["counts_rounded_to_nearest"] == 5
    agreement = pd.read_csv(external / "measure_agreement.csv")
    assert "office" not in set(agreement["level"])
    assert agreement["pearson_r"].isna().all() and agreement["mean_abs_pct_error"].isna().all()
    assert ((agreement["y_total"] / agreement["x_total"] - agreement["scale"]).abs() < 1e-6).all()
    sustained = pd.read_csv(external / "sustainability_national.csv")
    due = sustained[sustained["sustained_rate"].notna()]
    assert len(due) and ((1 - due["back_on_benefit"] / due["opte_offflows"] - due["sustained_rate"]).abs() < 1e-6).all()


def rag_rule(pct: float) -> str:
    return "green" if pct >= 1.0 else "amber" if pct >= 0.95 else "red"


def test_external_rag_always_agrees_with_the_published_percentage(external):
    checked = 0
    for csv in external.glob("*.csv"):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for pct_col, rag_col, num, den in (("pct_of_target_ytd", "rag", "opte_ytd", "opte_target_ytd"),
                                           ("projected_pct_of_target", "projected_rag", "opte_projected_annual",
                                            "opte_target_annual")):
            if pct_col not in df:
                continue
            for _, r in df.iterrows():
                if r[pct_col] == "":
                    assert r[rag_col] == ""
                    continue
                assert r[rag_col] == rag_rule(float(r[pct_col])), (csv.name, r.to_dict())
                # and the percentage is the published count over the published target
                assert abs(float(r[num]) / float(r[den]) - float(r[pct_col])) < 5e-7
                checked += 1
    assert checked > 20
    from openpyxl import load_workbook

    for path in (external / "districts").glob("*.xlsx"):
        ws = load_workbook(path)["Headline"]
        header = [c.value for c in ws[4]]
        pct, rag = header.index(dictionary.label("pct_of_target_ytd")), header.index("RAG")
        for row in ws.iter_rows(min_row=5, values_only=True):
            if row[pct] is not None:
                assert row[rag].lower() == rag_rule(row[pct])


def test_external_rag_comes_from_the_rounded_figures():
    """The LON02 2010-04 case: exact 94 of a 99.5 target is red, but the published 95 is 95.5 %: amber."""
    exact = pd.DataFrame({"level": ["district"], "unit_code": ["D"], "opte_ytd": pd.array([94], dtype="Int64"),
                          "opte_target_ytd": pd.array([99.5], dtype="Float64"),
                          "pct_of_target_ytd": pd.array([94 / 99.5], dtype="Float64"),
                          "rag": pd.array(["red"], dtype="string")})
    out = disclosure.control(exact, 0.95)
    assert out["opte_ytd"].tolist() == [95]
    assert out["pct_of_target_ytd"].tolist() == [round(95 / 99.5, 6)]
    assert out["rag"].tolist() == ["amber"]


def test_external_cohort_projection_carries_the_published_rate():
    rows = pd.DataFrame({
        "level": ["district"] * 2, "unit_code": ["D"] * 2, "benefit_code": ["JSA"] * 2,
        "cohort_month": [date(2010, 1, 1)] * 2, "cohort_size": pd.array([23, 23], dtype="Int64"),
        "week": pd.array([13, 26], dtype="Int64"), "is_due": pd.array([True, False], dtype="boolean"),
        "offflowed_by_week": pd.array([12, None], dtype="Int64"),
        "offflow_rate": pd.array([12 / 23, None], dtype="Float64"),
        "target_rate": pd.array([0.56, 0.78], dtype="Float64"),
        "projected_rate": pd.array([None, 1 - (11 / 23) * 0.5], dtype="Float64"),
        "projected_at_risk": pd.array([None, False], dtype="boolean")})
    out = disclosure.control(rows, 0.95)
    published_13 = 10 / 25  # 12 -> 10, 23 -> 25
    assert out["offflow_rate"].tolist()[0] == pytest.approx(published_13)
    assert out["projected_rate"].tolist()[1] == pytest.approx(1 - (1 - published_13) * 0.5, abs=1e-6)
    assert out["projected_at_risk"].tolist()[1] is True  # 0.7 < 0.78: at risk once worked from the rounded rate


def test_external_workbooks_and_pages_have_no_office_rows(external):
    from openpyxl import load_workbook

    for path in (external / "districts").glob("*.xlsx"):
        wb = load_workbook(path)
        codes = [row[0] for row in wb["Headline"].iter_rows(min_row=5, values_only=True)]
        assert codes == [path.stem]
        counts = [row[2] for row in wb["Headline"].iter_rows(min_row=5, values_only=True)]
        assert all(c is None or c % 5 == 0 for c in counts)
    for page in [external / "report.html", *(external / "districts").glob("*.html")]:
        text = page.read_text()
        assert "ranked against their year-to-date targets" not in text
        assert not re.search(r"\bO\d\d\b", text), page.name  # no office code anywhere
        assert UNKNOWN_OFFICE not in text


# ------------------------------------------------------------------ personal data


def published_text(folder: Path) -> str:
    """Every published file as text: CSV/HTML/JSON as they are, Parquet and workbooks by value."""
    from openpyxl import load_workbook

    parts = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            parts.append(pq.read_table(path).to_pandas().to_csv(index=False))
            parts.append(" ".join(pq.read_schema(path).names))
        elif path.suffix == ".xlsx":
            wb = load_workbook(path)
            for ws in wb.worksheets:
                for row in ws.iter_rows(values_only=True):
                    parts.append(" ".join("" if v is None else str(v) for v in row))
            with zipfile.ZipFile(path) as z:
                parts += [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        else:
            parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts)


def published_columns(folder: Path) -> set[str]:
    """The name of every column of every published table and workbook sheet."""
    from openpyxl import load_workbook

    names = set()
    for path in folder.rglob("*.csv"):
        names |= set(pd.read_csv(path, nrows=0).columns)
    for path in folder.rglob("*.parquet"):
        names |= set(pq.read_schema(path).names)
    for path in folder.rglob("*.xlsx"):
        for ws in load_workbook(path, read_only=True).worksheets:
            names |= {str(v) for row in ws.iter_rows(min_row=4, max_row=4, values_only=True) for v in row if v}
    dd = folder / "data_dictionary.csv"
    if dd.exists():
        names |= set(pd.read_csv(dd)["column"])
    return names


def assert_no_personal_data(folder: Path, person_keys, claim_ids) -> None:
    text = published_text(folder)
    tokens = set(re.findall(r"[A-Za-z0-9]+", text))
    assert not tokens & set(person_keys), "a person key was published"
    assert not tokens & set(claim_ids), "a claim id was published"
    columns = {c.lower() for c in published_columns(folder)}
    for word in ("person_key", "claim_id", "nino", "date_of_birth", "birth_date"):
        assert not any(word in c for c in columns), f"a published column is named like {word}"
    assert not re.search(r"\b[A-CEGHJ-PR-TW-Z]{2}\d{6}[A-D]\b", text), "something shaped like a NINO"


def test_no_personal_data_in_any_published_file(fixture_home, internal, external):
    home, ids = fixture_home
    assert ids["person_keys"] and ids["claim_ids"]
    assert_no_personal_data(internal, ids["person_keys"], ids["claim_ids"])
    assert_no_personal_data(external, ids["person_keys"], ids["claim_ids"])


# ------------------------------------------------------------------ workbooks


def check_workbooks(folder: Path, home: Path, month: str, planted: tuple[str, str] | None = None) -> int:
    """Every district workbook laid out for people; returns the office rows checked."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    units = warehouse(home, "select * from marts.reporting_units where month = ?", [date.fromisoformat(f"{month}-01")])
    districts = units[(units["level"] == "district") & (units["unit_code"] != "UNALLOCATED")]
    workbooks = sorted((folder / "districts").glob("*.xlsx"))
    assert [p.stem for p in workbooks] == sorted(districts["unit_code"])
    office_rows = 0
    for path in workbooks:
        wb = load_workbook(path)
        assert wb.sheetnames == list(SHEETS)
        ws = wb["Headline"]
        assert path.stem in ws["A1"].value and month_words(month) in ws["A2"].value
        header = [c.value for c in ws[4]]
        assert all(h and "_" not in h for h in header), header  # plain-English headers
        rows = list(ws.iter_rows(min_row=5, values_only=True))
        assert rows[0][0] == path.stem
        # every office of the district at the end of the month, with or without off-flows
        expected = units[(units["level"] == "office") & (units["district_code"] == path.stem)]
        assert sorted(r[0] for r in rows[1:]) == sorted(expected["unit_code"])
        names = dict(zip(expected["unit_code"], expected["unit_name"]))
        assert all(r[1] == names[r[0]] for r in rows[1:])  # whole names
        opte_col = header.index("OPtE off-flows this month")
        for r in rows[1:]:
            u = expected[expected["unit_code"] == r[0]].iloc[0]
            assert r[opte_col] == u["opte_offflows"]
            office_rows += 1
        if planted and path.stem == planted[1]:
            row = next(r for r in rows if r[0] == planted[0])
            assert row[opte_col] == 0 and row[header.index("OPtE year to date")] is not None
        # number formats: people as whole numbers, shares as percentages, no raw floats
        for label, fmt in (("OPtE off-flows this month", "#,##0"), ("Year-to-date target", "#,##0"),
                           ("% of year-to-date target", "0.0%"), ("Annual target", "#,##0")):
            col = header.index(label) + 1
            assert all(ws.cell(row=i, column=col).number_format == fmt for i in range(5, 5 + len(rows))), label
        # RAG: the status in words, filled by conditional formatting with the colour of that status
        rag_col = header.index("RAG") + 1
        letter = get_column_letter(rag_col)
        rules = {}
        for cf in ws.conditional_formatting:
            if any(letter in str(r) for r in cf.sqref.ranges):
                assert f"{letter}5" in str(cf.sqref) and f"{letter}{4 + len(rows)}" in str(cf.sqref)
                for rule in cf.rules:
                    rules[rule.formula[0].strip('"')] = rule.dxf.fill.fgColor.rgb[-6:]
        assert rules == RAG_FILLS
        pct_col = header.index("% of year-to-date target")
        for r in rows:
            if r[pct_col] is not None:
                assert r[rag_col - 1] == rag_rule(r[pct_col]).capitalize()
        # frozen header (and the code and name columns), A4 landscape one page wide
        for sheet in SHEETS[:-1]:
            s = wb[sheet]
            assert s.freeze_panes is not None and s.freeze_panes.endswith("5"), sheet
            assert s.page_setup.orientation == "landscape" and int(s.page_setup.paperSize) == 9
            assert s.page_setup.fitToWidth == 1 and s.page_setup.fitToHeight == 0
            assert s.sheet_properties.pageSetUpPr.fitToPage
            assert s.print_title_rows == "$4:$4"
        assert ws.column_dimensions["B"].width >= max(len(str(r[1])) for r in rows)
        # trend: 13 months for the district and each office
        trend = list(wb["Trend"].iter_rows(min_row=4, values_only=True))
        assert len(trend[0]) == 3 + 13
        assert {r[0] for r in trend[1:]} == {path.stem, *expected["unit_code"]}
        notes = "\n".join(r[0] or "" for r in wb["Notes"].iter_rows(values_only=True))
        assert "What counts" in notes and "move either way" in notes and "can still rise" not in notes
        cohorts = list(wb["Cohorts"].iter_rows(min_row=5, values_only=True))
        assert {r[0] for r in cohorts} <= {path.stem, *expected["unit_code"]}
    return office_rows


def month_words(month: str) -> str:
    return date.fromisoformat(f"{month}-01").strftime("%b %Y")


def test_every_district_workbook_is_laid_out_for_people(fixture_home, internal):
    home, _ = fixture_home
    from openpyxl import load_workbook

    assert check_workbooks(internal, home, MONTH, planted=EMPTY_OFFICE) >= 7
    notes = "\n".join(r[0] or "" for r in load_workbook(internal / "districts" / "D1.xlsx")["Notes"].iter_rows(
        values_only=True))
    assert CUTOFF.isoformat() in notes and "Provisional" in notes


def test_the_planted_office_with_no_offflows_is_on_its_district_pages(fixture_home, internal):
    office, district = EMPTY_OFFICE
    assert office not in pd.read_csv(internal / "opte_office.csv")["unit_code"].tolist()
    page = (internal / "districts" / f"{district}.html").read_text()
    headline = page.split('id="headline"')[1].split("<h2")[0]
    assert f"<td>{office}</td>" in headline


# ------------------------------------------------------------------ pages (static checks; the browser checks
# are in test_publish_views.py)


def check_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"https?:", text, flags=re.I), page.name
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", text, flags=re.I), page.name
    assert "@import" not in text and "url(" not in text.replace("url(#", ""), page.name


def check_charts_have_text_alternatives(page: Path) -> int:
    text = page.read_text()
    figures = re.findall(r'<figure id="chart-[^"]+" class="chart">(.*?)</figure>', text, flags=re.S)
    for fig in figures:
        svg_open = re.search(r"<svg [^>]*>", fig).group(0)
        assert 'role="img"' in svg_open and re.search(r'aria-label="[^"]{10,}"', svg_open)
        assert re.search(r"<title>[^<]{10,}</title><desc>[^<]{10,}</desc>", fig)
        assert re.search(r"<figcaption><b>[^<]+</b>[^<]{10,}</figcaption>", fig)
    return len(figures)


def test_pages_are_self_contained_and_every_chart_has_a_text_alternative(internal, external):
    for folder in (internal, external):
        for page in [folder / "report.html", *(folder / "districts").glob("*.html")]:
            check_page_is_self_contained(page)
    assert check_charts_have_text_alternatives(internal / "report.html") >= 6
    assert check_charts_have_text_alternatives(internal / "districts" / "D2.html") >= 4


def test_national_page_links_every_district_page_and_shows_unallocated_as_data_quality(internal):
    page = (internal / "report.html").read_text()
    links = set(re.findall(r'href="(districts/[^"]+\.html)"', page))
    assert links == {f"districts/{d}.html" for d in DISTRICTS}
    assert all((internal / link).exists() for link in links)
    assert "districts/UNALLOCATED" not in page
    assert "Data quality:" in page and "unallocated" in page
    assert "can still rise" not in page and "move either way" in page
    for d in DISTRICTS:
        district_page = (internal / "districts" / f"{d}.html").read_text()
        assert 'href="../report.html"' in district_page and f'href="{d}.xlsx"' in district_page


# ------------------------------------------------------------------ end to end on the sample


SAMPLE = REPO / "data_samples" / "inbox"


def sample_ready() -> bool:
    return SAMPLE.is_dir() and any(SAMPLE.iterdir()) and (REPO / "ingest" / "landing.py").exists()


@pytest.fixture(scope="session")
def sample_home(sample_built_home, tmp_path_factory) -> Path:
    """The real chain on the sample inbox (landed and built once per session by conftest),
    copied so that publishing into it leaves the shared home untouched."""
    if not sample_ready():
        pytest.skip("data_samples/inbox or ingest/landing.py missing")
    home = tmp_path_factory.mktemp("publish_sample") / "home"
    shutil.copytree(sample_built_home, home, ignore=shutil.ignore_patterns(".*.lock"))
    return home


def sample_month(home: Path) -> str:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        cutoff = con.execute("select max(data_cutoff) from intermediate.int_data_cutoff").fetchone()[0]
    finally:
        con.close()
    return f"{add_months(cutoff.replace(day=1), -2):%Y-%m}"  # two months before the cut-off


@pytest.mark.slow
def test_end_to_end_on_the_sample(sample_home, tmp_path):
    month = sample_month(sample_home)
    folder = publish_month(sample_home, month)
    ext = publish_month(sample_home, month, external=True)
    national = pd.read_csv(folder / "opte_national.csv")
    assert national["month"].max() == f"{month}-01"
    assert national["month"].nunique() <= 13
    assert check_workbooks(folder, sample_home, month) >= 10
    for page in [folder / "report.html", *(folder / "districts").glob("*.html")]:
        check_page_is_self_contained(page)
        assert check_charts_have_text_alternatives(page) >= 4
    con = duckdb.connect(str(sample_home / "warehouse.duckdb"), read_only=True)
    try:
        keys = [r[0] for r in con.execute("select distinct person_key from marts.offflow_events").fetchall()]
        claims = [r[0] for r in con.execute("select distinct claim_id from marts.offflow_events").fetchall()]
    finally:
        con.close()
    assert keys and claims
    assert_no_personal_data(folder, keys, claims)
    assert_no_personal_data(ext, keys, claims)
    again = publish_month(sample_home, month)
    assert table_hashes(again) == table_hashes(folder)
    assert len(pd.read_csv(again / "revisions.csv")) == 0


@pytest.mark.slow
def test_data_dictionary_agrees_with_the_dbt_manifest(sample_home):
    """The meanings published are the descriptions dbt itself rendered for the built warehouse."""
    month = sample_month(sample_home)
    folder = publish_month(sample_home, month)
    manifest = json.loads((sample_home / "dbt" / "target" / "manifest.json").read_text())
    rendered = {(n["name"], c): col["description"] for n in manifest["nodes"].values()
                if n["resource_type"] == "model" for c, col in n["columns"].items()}
    dd = pd.read_csv(folder / "data_dictionary.csv", dtype=str, keep_default_na=False)
    from_dbt = dd[dd["source"].str.startswith("dbt: ")]
    assert len(from_dbt) > 50
    for _, r in from_dbt.iterrows():
        model, column = r["source"].removeprefix("dbt: marts.").split(".")
        assert r["meaning"] == dictionary.plain(rendered[(model, column)]), (model, column)


@pytest.mark.slow
def test_cli_publish_and_errors(sample_home):
    env = {**os.environ, "OPTE_HOME": str(sample_home)}
    opte = [sys.executable, "-m", "measures.cli"]
    month = sample_month(sample_home)
    ok = subprocess.run([*opte, "publish", "--month", month], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*opte, "publish", "--month", "1999-01"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "not in the warehouse" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
