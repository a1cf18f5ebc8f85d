"""Publication (PUBLICATION.md): files, columns, windows, manifest, re-publication, disclosure
control, personal data, workbooks and the self-contained report.

The fast tests publish from a fixture warehouse holding only the contract tables
(tests/publish_fixture.py). The slow end-to-end test lands the sample inbox, builds the
warehouse with dbt and publishes from it.
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

import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from publish_fixture import CUTOFF, make_warehouse  # noqa: E402

from measures import publish as publish_mod  # noqa: E402
from measures.errors import OpteError  # noqa: E402
from measures.manifest import sha256_file  # noqa: E402
from measures.publish import publish_month  # noqa: E402
from measures.publish_tables import COHORT_COLUMNS, CONVERSION_COLUMNS, OPTE_COLUMNS, count_date  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MONTH = "2010-03"
LEVELS = ("office", "district", "region", "national")
POINTS = ("opte_points", "jot_points")


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


# ------------------------------------------------------------------ files and columns


def test_internal_files_and_columns(internal):
    assert internal.name == MONTH and internal.parent.name == "publish"
    for level in LEVELS:
        for stem in (f"opte_{level}", f"cohort_rates_{level}"):
            assert (internal / f"{stem}.csv").exists() and (internal / f"{stem}.parquet").exists()
        cols = list(pd.read_csv(internal / f"opte_{level}.csv", nrows=0).columns)
        expected = [c for c in OPTE_COLUMNS if not (level == "office" and c in POINTS)]
        assert cols == expected
        assert list(pd.read_csv(internal / f"cohort_rates_{level}.csv", nrows=0).columns) == COHORT_COLUMNS
    conv = pd.read_csv(internal / "opte_jot_conversion.csv")
    assert list(conv.columns) == CONVERSION_COLUMNS
    assert set(conv["level"]) == {"district", "region", "national"}
    assert (internal / "report.html").exists() and (internal / "manifest.json").exists()
    assert sorted(p.name for p in (internal / "districts").glob("*.xlsx")) == ["D1.xlsx", "D2.xlsx", "D3.xlsx"]


def test_office_files_carry_people_only(internal):
    for name in ("opte_office.csv", "opte_office.parquet"):
        cols = (pd.read_csv(internal / name, nrows=0).columns if name.endswith("csv")
                else pq.read_schema(internal / name).names)
        assert not set(POINTS) & set(cols)
    for level in ("district", "region", "national"):
        assert set(POINTS) <= set(pd.read_csv(internal / f"opte_{level}.csv", nrows=0).columns)


def test_parquet_is_typed(internal):
    schema = pq.read_schema(internal / "opte_district.parquet")
    assert str(schema.field("month").type) == "date32[day]"
    assert str(schema.field("offflows").type) == "int64"
    assert str(schema.field("pct_of_target_ytd").type) == "double"
    assert str(schema.field("opte_is_final").type) == "bool"
    csv = pd.read_csv(internal / "opte_district.csv")
    assert len(pq.read_table(internal / "opte_district.parquet")) == len(csv)


def test_trend_window_is_13_months(fixture_home):
    home, _ = fixture_home
    folder = publish_month(home, "2010-06")
    national = pd.read_csv(folder / "opte_national.csv")
    assert national["month"].tolist() == [f"{y}-{m:02d}-01" for y, m in
                                          [(2009, m) for m in range(6, 13)] + [(2010, m) for m in range(1, 7)]]
    office = pd.read_csv(folder / "opte_office.csv")
    assert office["month"].min() >= "2009-06-01" and office["month"].max() == "2010-06-01"
    # sorted by unit then month
    assert office[["unit_code", "month"]].apply(tuple, axis=1).is_monotonic_increasing


def test_cohort_rows_are_weeks_due_by_the_report_month(internal):
    cohorts = pd.read_csv(internal / "cohort_rates_national.csv", parse_dates=["cohort_month", "due_date"])
    assert len(cohorts) > 0
    last_day = pd.Timestamp("2010-03-31")
    assert (cohorts["due_date"] <= last_day).all()
    assert cohorts["is_due"].all() and cohorts["offflow_rate"].notna().all()
    for _, r in cohorts.iterrows():
        assert r["due_date"].date() == count_date(r["cohort_month"].date()) + pd.Timedelta(days=7 * r["week"])
    # a week due in April 2010 is not in March's file
    assert not ((cohorts["cohort_month"] == "2009-04-01") & (cohorts["week"] == 52)).any()


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


def test_republication_is_byte_identical_and_keeps_the_old_manifest(fixture_home):
    home, _ = fixture_home
    first = publish_month(home, "2010-01")
    before = table_hashes(first)
    old_manifest = json.loads((first / "manifest.json").read_text())
    second = publish_month(home, "2010-01")
    assert second == first
    assert table_hashes(second) == before
    kept = sorted(second.glob("manifest.*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == old_manifest
    new_manifest = json.loads((second / "manifest.json").read_text())
    assert new_manifest["previous_manifests"] == [kept[0].name]
    third = publish_month(home, "2010-01")
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
        ext = pd.read_csv(csv)
        exact = pd.read_csv(internal / csv.name)
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
    assert checked_rates > 0  # the fixture has small denominators to withhold
    manifest = json.loads((external / "manifest.json").read_text())
    assert manifest["release"] == "external" and manifest["disclosure_control"]["counts_rounded_to_nearest"] == 5


def test_external_workbooks_and_report_have_no_office_rows(external):
    from openpyxl import load_workbook

    for path in (external / "districts").glob("*.xlsx"):
        wb = load_workbook(path)
        levels = [row[0] for row in wb["Headline"].iter_rows(min_row=2, values_only=True)]
        assert levels == ["district"]
        counts = [row[3] for row in wb["Headline"].iter_rows(min_row=2, values_only=True)]
        assert all(c is None or c % 5 == 0 for c in counts)
    page = (external / "report.html").read_text()
    assert "offices ranked" not in page.lower()
    assert not re.search(r"\bO\d\d\b", page)  # no office code anywhere


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


def assert_no_personal_data(folder: Path, person_keys, claim_ids) -> None:
    text = published_text(folder)
    tokens = set(re.findall(r"[A-Za-z0-9]+", text))
    assert not tokens & set(person_keys), "a person key was published"
    assert not tokens & set(claim_ids), "a claim id was published"
    lowered = text.lower()
    for word in ("person_key", "claim_id", "nino", "date_of_birth", "birth_date"):
        assert word not in lowered, f"{word} appears in a published file"
    assert not re.search(r"\b[A-CEGHJ-PR-TW-Z]{2}\d{6}[A-D]\b", text), "something shaped like a NINO"


def test_no_personal_data_in_any_published_file(fixture_home, internal, external):
    home, ids = fixture_home
    assert ids["person_keys"] and ids["claim_ids"]
    assert_no_personal_data(internal, ids["person_keys"], ids["claim_ids"])
    assert_no_personal_data(external, ids["person_keys"], ids["claim_ids"])


# ------------------------------------------------------------------ workbooks and report


def test_workbooks_have_the_four_sheets(internal):
    from openpyxl import load_workbook

    for path in (internal / "districts").glob("*.xlsx"):
        wb = load_workbook(path)
        assert wb.sheetnames == ["Headline", "Exclusions", "Cohorts", "Notes"]
        rows = list(wb["Headline"].iter_rows(values_only=True))
        assert rows[0][:3] == ("level", "unit_code", "unit_name")
        assert rows[1][0] == "district" and rows[1][1] == path.stem
        assert all(r[0] == "office" for r in rows[2:]) and len(rows) > 2
        assert all(r[8] is None for r in rows[2:])  # no points for offices
        notes = "\n".join(r[0] or "" for r in wb["Notes"].iter_rows(values_only=True))
        assert CUTOFF.isoformat() in notes and "Provisional" in notes and "What counts" in notes
        cohorts = list(wb["Cohorts"].iter_rows(values_only=True))
        assert cohorts[0] == tuple(COHORT_COLUMNS)
        assert all(r[1] == path.stem for r in cohorts[1:])


def test_report_is_self_contained(internal):
    page = (internal / "report.html").read_text()
    assert not re.search(r"https?:", page, flags=re.I)
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=", page, flags=re.I)
    assert "@import" not in page and "url(" not in page.replace("url(#", "")
    assert page.count("<svg") >= 3 + 3  # three national charts + one per district


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_report_renders(report: Path, tmp: Path) -> None:
    import numpy as np
    from matplotlib.image import imread

    png = tmp / "shot.png"
    chromium([f"--screenshot={png}", "--window-size=1400,4000", report.as_uri()], tmp)
    assert png.exists(), "chromium wrote no screenshot"
    pixels = imread(png)[:, :, :3]
    non_white = (pixels < 0.95).any(axis=2).mean()
    assert non_white > 0.02, f"screenshot nearly blank ({non_white:.3%} non-white)"
    dom = chromium(["--dump-dom", report.as_uri()], tmp).stdout
    assert dom.count("<svg") >= 4
    assert len(re.findall(r"<(path|rect|line|polyline)\b", dom)) > 50, "charts have no drawn elements"
    assert np.isfinite(non_white)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs "
                                             "Debian's chromium when run as root)")
def test_report_renders_in_headless_chromium(internal, tmp_path):
    check_report_renders(internal / "report.html", tmp_path)


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
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        cutoff = con.execute("select max(data_cutoff) from intermediate.int_data_cutoff").fetchone()[0]
    finally:
        con.close()
    m = cutoff.replace(day=1)
    return f"{m.year - (m.month <= 2)}-{(m.month - 3) % 12 + 1:02d}"  # two months before the cut-off


@pytest.mark.slow
def test_end_to_end_on_the_sample(sample_home, tmp_path):
    import duckdb

    month = sample_month(sample_home)
    folder = publish_month(sample_home, month)
    ext = publish_month(sample_home, month, external=True)
    national = pd.read_csv(folder / "opte_national.csv")
    assert national["month"].max() == f"{month}-01"
    assert national["month"].nunique() <= 13
    assert list((folder / "districts").glob("*.xlsx"))
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
    if CHROMIUM:
        check_report_renders(folder / "report.html", tmp_path)


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
    assert date.fromisoformat(f"{month}-01")
