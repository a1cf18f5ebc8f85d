"""Incremental builds equal full refreshes, cell for cell (measures.refresh, the incremental models).

A sequence of monthly landings from `opte synth` (stable in its end month: each longer inbox only
adds the new month's files, which carry late HMRC notices and closures of earlier months), one
of them with a correction of an earlier delivery. After each landing the home is built as it
would be in production (`build`: incremental when measures.refresh allows), and a fresh home
with a copy of the same lake is built from scratch; every mart, and every incremental
person-level table, must hold the same rows.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest.landing import land_inbox
from ingest.synth import synthesize
from measures.build import build, run_dbt
from measures.config import work_database_path
from warehouse_compare import marts_differences

pytestmark = pytest.mark.slow

WORLD = dict(people=1200, start="2009-04", seed=5)
INCREMENTAL_TABLES = ("int_customers_state_pension_age", "int_offflows_identified", "int_offflows_classified",
                      "int_offflows_scored", "int_employments_matched", "int_job_outcomes_scored",
                      "int_claims_linked_into_spells", "int_spells", "int_spells_cohorted")


@pytest.fixture(autouse=True)
def small_memory(monkeypatch):
    monkeypatch.setenv("OPTE_DUCKDB_MEMORY_LIMIT", "1GB")


def new_files(short: Path, long_: Path) -> list[Path]:
    """The files of inbox `long_` that inbox `short` does not have (the new month's)."""
    have = {p.relative_to(short) for p in short.rglob("*") if p.is_file()}
    return [p for p in sorted(long_.rglob("*")) if p.is_file() and p.relative_to(long_) not in have]


def land_files(home: Path, files: list[Path], root: Path, stage: Path) -> None:
    """Land exactly `files` (paths under inbox `root`) as one delivery."""
    for f in files:
        (stage / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, stage / f.relative_to(root))
    report = land_inbox(stage, home)
    assert not report.rejected_files, report.summary()


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.column_names, [{k: None if v is None else str(v) for k, v in r.items()}
                                    for r in table.to_pylist()]
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    return list(reader.fieldnames), list(reader)


def write_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def corrected_delivery(inbox: Path, stage: Path) -> tuple[Path, int, str]:
    """A correction of an earlier (May to August) benefit_claims CSV delivery (same file name): one ended claim ends
    earlier (its off-flow moves), one row is withdrawn (its claim's earlier version, if any, is
    current again). Returns the corrected file, how many rows it has, and the claim moved."""
    source = next(p for p in sorted((inbox / "benefit_claims").iterdir())
                  if "20090531" <= p.name[15:23] <= "20090831" and p.suffix in (".csv", ".gz"))
    header, rows = read_rows(source)
    later = {r["claim_id"] for p in (inbox / "benefit_claims").iterdir() if p.name[15:23] > source.name[15:23]
             for r in read_rows(p)[1]}  # claims delivered again later: the July version is not current
    moved = next(r for r in rows if r["claim_id"] not in later and r["benefit_code"] in ("JSA", "ESA", "IS")
                 and r["claim_end_date"]
                 and r["claim_end_date"] > r["claim_start_date"] >= WORLD["start"] + "-01")
    moved["claim_end_date"] = moved["claim_start_date"]
    withdrawn = next(r for r in rows if r is not moved)
    rows = [r for r in rows if r is not withdrawn]
    target = stage / "benefit_claims" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_rows(target, header, rows)
    return target, len(rows), moved["claim_id"]


def full_refresh_of_the_same_lake(home: Path, fresh: Path) -> Path:
    """A home that never built before, with a copy of `home`'s lake: a full build from scratch
    (seeds and models; the data tests ran on the incremental build)."""
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    shutil.copytree(home / "lake", fresh / "lake")
    work_database_path(fresh).parent.mkdir(parents=True)
    run_dbt(fresh, ["build", "--resource-type", "seed", "--resource-type", "model"])
    return work_database_path(fresh)


def assert_same_warehouse(home: Path, fresh: Path) -> None:
    reference = full_refresh_of_the_same_lake(home, fresh)
    # the released marts (the catalog readers open) and the incremental state (the working database)
    differences = marts_differences(home / "warehouse.duckdb", reference)
    differences += marts_differences(work_database_path(home), reference, schema="intermediate",
                                     tables=INCREMENTAL_TABLES)
    assert not differences, differences


def executed_test_sql(home: Path, name: str) -> str:
    """The SQL dbt ran for the data test `name` in the home's last build."""
    [path] = (home / "dbt" / "target" / "run").rglob(f"{name}.sql")
    return path.read_text()


def assert_tests_read_only_affected_persons(home: Path, incremental: bool) -> None:
    """In an incremental build the data tests of person-level models read only the affected persons
    (macros/affected_tests.sql); staging's tests, and every test of a full refresh, read every row."""
    person_level = ["unique_int_spells_spell_id", "unique_int_offflows_identified_claim_id",
                    "person_id_is_one_to_one"]
    for name in person_level:
        filtered = re.search(r"person_id in \(select person_id from \S*int_persons_affected", executed_test_sql(home, name))
        assert bool(filtered) == incremental, name
    assert "int_persons_affected" not in executed_test_sql(home, "unique_stg_lake__benefit_claims_claim_id")


def recorded_refresh(home: Path) -> str | None:
    return json.loads((home / "build_info.json").read_text())["full_refresh_reason"]


def test_incremental_builds_equal_full_refreshes(tmp_path):
    inboxes = {}
    for end in ("2009-08", "2009-09", "2009-10"):
        inboxes[end] = tmp_path / f"inbox_{end}"
        synthesize(inboxes[end], end=end, truth_dir=tmp_path / f"truth_{end}", **WORLD)
    home = tmp_path / "home"

    # the first build of a home is a full refresh
    report = land_inbox(inboxes["2009-08"], home)
    assert not report.rejected_files
    build(home)
    assert recorded_refresh(home) == "no previous build"
    assert_tests_read_only_affected_persons(home, incremental=False)

    # one more month, with late HMRC notices (employment starts of earlier months) and closures
    added = new_files(inboxes["2009-08"], inboxes["2009-09"])
    employments = [f for f in added if f.parent.name == "tax_employments"]
    assert employments and any(r["start_date"] < "2009-09-01" for r in read_rows(employments[0])[1])
    land_files(home, added, inboxes["2009-09"], tmp_path / "stage_1")
    build(home)
    assert recorded_refresh(home) is None  # incremental
    assert_tests_read_only_affected_persons(home, incremental=True)
    assert_same_warehouse(home, tmp_path / "fresh_1")

    # a correction of an earlier claims delivery, landed with the next month
    corrected, rows, moved = corrected_delivery(inboxes["2009-10"], tmp_path / "stage_2")
    extract_date = f"{corrected.name[15:19]}-{corrected.name[19:21]}-{corrected.name[21:23]}"
    land_files(home, new_files(inboxes["2009-09"], inboxes["2009-10"]), inboxes["2009-10"], tmp_path / "stage_2")
    manifest = json.loads((home / "lake" / "_manifests" / "benefit_claims" / f"{extract_date}.json").read_text())
    assert manifest["rows_landed"] == rows  # the correction replaced the earlier delivery
    build(home)
    assert recorded_refresh(home) is None
    assert_same_warehouse(home, tmp_path / "fresh_2")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        moved_offflow = con.execute("select offflow_date = claim_start_date from marts.offflow_events "
                                    "where claim_id = ?", [moved]).fetchall()
    assert moved_offflow == [(True,)]  # the corrected off-flow ends on its start day
