"""Write a tiny lake directly in the landed format (docs/ARCHITECTURE.md), bypassing landing.

For dbt scenario tests and model development: each call commits one file of one dataset
and extract date, exactly as `opte land` would (typed Parquet, empty quarantine, manifest).
"""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contracts import CONTRACTS

# The landed columns of each dataset, from the extract contracts landing itself uses.
SCHEMAS: dict[str, list[tuple[str, pa.DataType]]] = {
    dataset: [(c.landed_name, c.landing.landed_type) for c in contract.columns]
    for dataset, contract in CONTRACTS.items()
}


def _as_date(v):
    return date.fromisoformat(v) if isinstance(v, str) else v


def write_extract(lake: Path, dataset: str, extract_date: str, rows: list[dict]) -> Path:
    """Commit `rows` as the landed file of `dataset` at `extract_date`; returns the manifest path."""
    schema = SCHEMAS[dataset]
    ed = date.fromisoformat(extract_date)
    stem = f"{dataset}_{ed:%Y%m%d}"
    landed_at = datetime.now(timezone.utc).replace(tzinfo=None)
    cols = {}
    for name, typ in schema:
        values = [r.get(name) for r in rows]
        if typ == pa.date32():
            values = [_as_date(v) for v in values]
        cols[name] = pa.array(values, type=typ)
    n = len(rows)
    cols["_extract_date"] = pa.array([ed] * n, type=pa.date32())
    cols["_source_file"] = pa.array([stem + ".csv"] * n, type=pa.string())
    cols["_row_number"] = pa.array(range(1, n + 1), type=pa.int64())
    table = pa.table(cols)
    sha = hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()
    part = f"extract_date={ed.isoformat()}"
    data_rel = f"{dataset}/{part}/{stem}.{sha[:8]}.parquet"
    q_rel = f"_quarantine/{dataset}/{part}/{stem}.{sha[:8]}.parquet"
    (lake / data_rel).parent.mkdir(parents=True, exist_ok=True)
    (lake / q_rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, lake / data_rel)
    quarantine = pa.table({
        "reject_reason": pa.array([], pa.string()), "_dataset": pa.array([], pa.string()),
        "_extract_date": pa.array([], pa.date32()), "_source_file": pa.array([], pa.string()),
        "_row_number": pa.array([], pa.int64()), "_raw_line": pa.array([], pa.string()),
    })
    pq.write_table(quarantine, lake / q_rel)
    manifest = {
        "dataset": dataset, "extract_date": ed.isoformat(), "source_file": stem + ".csv", "sha256": sha,
        "data_file": data_rel, "quarantine_file": q_rel, "rows_read": n, "rows_landed": n,
        "rows_quarantined": 0, "quarantined_by_reason": {}, "exact_duplicates_dropped": 0,
        "landed_at": landed_at.isoformat() + "Z", "code_version": "test", "history": [],
    }
    mpath = lake / "_manifests" / dataset / f"{ed.isoformat()}.json"
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(manifest, indent=2))
    return mpath


def write_minimal_lake(lake: Path, extract_date: str = "2010-03-31") -> None:
    """One tiny extract of every dataset: enough for every dbt model to build."""
    write_extract(lake, "offices", extract_date, [
        dict(office_code="AAA", office_name="Alpha", reporting_office_code="AAA", district_code="D1",
             district_name="District One", region_code="R1", region_name="Region One",
             valid_from="2000-01-01", valid_to=None)])
    write_extract(lake, "disadvantaged_areas", extract_date, [
        dict(area_code="A1", area_name="Area one", valid_from="2000-01-01", valid_to=None)])
    write_extract(lake, "opte_targets", extract_date, [
        dict(financial_year=2009, district_code="D1", opte_target=12)])
    write_extract(lake, "customers", extract_date, [
        dict(person_key="p1", date_of_birth="1970-05-01", sex="F", date_of_death=None, area_code="A1")])
    write_extract(lake, "benefit_claims", extract_date, [
        dict(claim_id="C1", person_key="p1", benefit_code="JSA", office_code="AAA",
             claim_start_date="2009-05-01", claim_end_date="2009-08-01", end_reason_code="FW",
             lone_parent="N", disabled="N")])
    write_extract(lake, "tax_employments", extract_date, [
        dict(person_key="p1", paye_ref="123/AB", start_date="2009-08-10", end_date=None, form="P46",
             received_date="2009-09-01")])
    write_extract(lake, "programme_starts", extract_date, [
        dict(person_key="p1", programme_code="NDLP", start_date="2009-06-01", office_code="AAA")])


if __name__ == "__main__":  # python tests/lake_builder.py <home>
    import sys
    write_minimal_lake(Path(sys.argv[1]) / "lake")
