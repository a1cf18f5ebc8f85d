"""Helpers for the landing tests: tiny hand-built inbox files and readers of the lake."""
from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contracts import CONTRACTS

TEST_KEY = "test-pseudonymisation-key"
EXTRACT = date(2009, 1, 5)

# One valid row per dataset (text values as they would appear in a CSV).
VALID = {
    "benefit_claims": dict(claim_id="C1", nino="AB123456C", benefit_code="JSA", office_code="NCL",
                           claim_start_date="2008-06-01", claim_end_date="2008-09-01", end_reason_code="FW",
                           lone_parent="N", disabled="N"),
    "customers": dict(nino="AB123456C", date_of_birth="1960-03-04", sex="F", date_of_death="", area_code="E01"),
    "tax_employments": dict(nino="AB123456C", paye_ref="123/AB456", start_date="2008-09-02", end_date="",
                            form="P46", received_date="2008-09-20"),
    "programme_starts": dict(nino="AB123456C", programme_code="NDYP_EMP", start_date="2008-07-01", office_code="NCL"),
    "offices": dict(office_code="NCL", office_name="Newcastle", reporting_office_code="NCL", district_code="D1",
                    district_name="Tyneside", region_code="NE", region_name="North East",
                    valid_from="2000-01-01", valid_to=""),
    "disadvantaged_areas": dict(area_code="E01", area_name="Somewhere", valid_from="2000-01-01", valid_to=""),
    "opte_targets": dict(financial_year="2008", district_code="D1", opte_target="1200"),
}


def person_key(normalised_nino: str, key: str = TEST_KEY) -> str:
    return hmac.new(key.encode(), normalised_nino.encode(), hashlib.sha256).hexdigest()


def row(dataset: str, **changes) -> dict:
    r = dict(VALID[dataset])
    r.update(changes)
    return r


def file_name(dataset: str, extract: date = EXTRACT, ext: str = "csv") -> str:
    return f"{dataset}_{extract:%Y%m%d}.{ext}"


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV with a header; None and "" are written as empty fields."""
    columns = columns or list(rows[0].keys())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


def write_raw(inbox: Path, dataset: str, data: bytes | str, extract: date = EXTRACT, ext: str = "csv",
              name: str | None = None) -> Path:
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or file_name(dataset, extract, ext))
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def write_csv(inbox: Path, dataset: str, rows: list[dict], extract: date = EXTRACT,
              columns: list[str] | None = None, gz: bool = False) -> Path:
    text = csv_text(rows, columns or list(CONTRACTS[dataset].names))
    data = text.encode("utf-8")
    if gz:
        return write_raw(inbox, dataset, gzip.compress(data), extract, "csv.gz")
    return write_raw(inbox, dataset, data, extract)


def write_parquet(inbox: Path, dataset: str, table: pa.Table, extract: date = EXTRACT) -> Path:
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(dataset, extract, "parquet")
    pq.write_table(table, path)
    return path


def manifests(home: Path, dataset: str) -> list[dict]:
    folder = home / "lake" / "_manifests" / dataset
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _read_named(home: Path, dataset: str, which: str) -> list[dict]:
    """Rows of the files named by manifests (what a reader such as dbt may see), via DuckDB."""
    files = [str(home / "lake" / m[which]) for m in manifests(home, dataset)]
    if not files:
        return []
    con = duckdb.connect()
    try:
        rel = con.sql(f"SELECT * FROM read_parquet({files!r}, union_by_name = true) ORDER BY _extract_date, _row_number")
        cols = rel.columns
        return [dict(zip(cols, r)) for r in rel.fetchall()]
    finally:
        con.close()


def landed(home: Path, dataset: str) -> list[dict]:
    return _read_named(home, dataset, "data_file")


def quarantined(home: Path, dataset: str) -> list[dict]:
    return _read_named(home, dataset, "quarantine_file")


def lake_snapshot(home: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime (ns) of every file under lake/."""
    out = {}
    for p in sorted((home / "lake").rglob("*")):
        if p.is_file():
            out[str(p.relative_to(home))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out
