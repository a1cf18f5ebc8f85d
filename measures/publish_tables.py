"""The published tables of one report month, read from the warehouse's contract tables.

Reads only `marts.opte_monthly`, `marts.cohort_offflow_rates` and `marts.opte_jot_conversion`
(MEASURES.md section 10) plus, for the office -> district map of the workbooks, the distinct
geography codes of `marts.offflow_events` (never a person column). Every table comes back as
a pandas DataFrame with the published columns, typed and sorted, so that two publications
of the same warehouse give identical files.

Windows (PUBLICATION.md, "Files for report month M"):
- `opte_<level>` and `opte_jot_conversion`: month M and the 12 months before it (13 months).
- `cohort_rates_<level>`: every cohort week that had **fallen due by the end of M**:
  count_date(cohort month) + 7 x week <= last day of M, and due at the data cut-off
  (`is_due`, which matters only when M is the month holding the cut-off). A week not yet due
  at M is left out of that month's file rather than shown as null; the `due_date` column
  says when each week fell due. Rates use the warehouse's current data (see pipeline.backfill).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from measures.config import lake_dir, warehouse_path
from measures.errors import OpteError

LEVELS = ("office", "district", "region", "national")
TREND_MONTHS = 12  # months before M shown for trend

OPTE_COLUMNS = [
    "level", "unit_code", "unit_name", "month", "offflows", "excluded_died", "excluded_retired",
    "excluded_returned_within_week", "excluded_cross_flow", "excluded_programme_start",
    "opte_offflows", "opte_share_of_offflows", "opte_points", "job_outcomes", "jot_points",
    "opte_target_annual", "opte_target_ytd", "opte_ytd", "pct_of_target_ytd", "rag",
    "opte_is_final", "jot_is_final",
]
POINTS_COLUMNS = ["opte_points", "jot_points"]  # district level and up only
COHORT_COLUMNS = [
    "level", "unit_code", "benefit_code", "cohort_month", "cohort_size", "week", "due_date",
    "offflowed_by_week", "offflow_rate", "target_rate", "is_due",
]
CONVERSION_COLUMNS = [
    "level", "unit_code", "month", "customer_group", "opte_offflows", "opte_with_job_outcome",
    "conversion_rate",
]
CONVERSION_LEVELS = ("district", "region", "national")

# Column types of the published tables (Parquet is typed with these; CSV formats from them).
INT_COLUMNS = {
    "offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
    "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "opte_points",
    "job_outcomes", "jot_points", "opte_ytd", "cohort_size", "week", "offflowed_by_week",
    "opte_with_job_outcome",
}
FLOAT_COLUMNS = {
    "opte_share_of_offflows", "opte_target_annual", "opte_target_ytd", "pct_of_target_ytd",
    "offflow_rate", "target_rate", "conversion_rate",
}
DATE_COLUMNS = {"month", "cohort_month", "due_date"}
BOOL_COLUMNS = {"opte_is_final", "jot_is_final", "is_due"}
# Columns that must never appear in any published table (checked before writing).
FORBIDDEN_COLUMNS = {"nino", "person_key", "claim_id", "date_of_birth", "birth_date"}

CONTRACT_TABLES = ("opte_monthly", "cohort_offflow_rates", "opte_jot_conversion")


@dataclass(frozen=True)
class ReportMonth:
    """Report month M and its trend window."""

    first_day: date

    @classmethod
    def parse(cls, month: str) -> "ReportMonth":
        try:
            d = date.fromisoformat(f"{month}-01")
        except (TypeError, ValueError):
            raise OpteError(f"expected a report month as YYYY-MM, got {month!r}") from None
        return cls(d)

    @property
    def label(self) -> str:
        return f"{self.first_day:%Y-%m}"

    @property
    def last_day(self) -> date:
        return add_months(self.first_day, 1) - timedelta(days=1)

    @property
    def window_start(self) -> date:
        return add_months(self.first_day, -TREND_MONTHS)

    @property
    def financial_year_start(self) -> date:
        year = self.first_day.year if self.first_day.month >= 4 else self.first_day.year - 1
        return date(year, 4, 1)


def add_months(d: date, n: int) -> date:
    """First day of the month n months after d's month."""
    index = d.year * 12 + d.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def count_date(month_first_day: date) -> date:
    """The month's second Thursday (MEASURES.md section 5)."""
    first_thursday = month_first_day + timedelta(days=(3 - month_first_day.weekday()) % 7)
    return first_thursday + timedelta(days=7)


# ---------------------------------------------------------------- reading the warehouse


def connect(home: Path):
    """A read-only connection to the built warehouse (publishing never writes to it)."""
    import duckdb

    path = warehouse_path(home)
    if not path.exists():
        raise OpteError(f"no warehouse at {path}; run `opte build` (or `opte run`) first")
    con = duckdb.connect(str(path), read_only=True)
    present = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()}
    missing = [t for t in CONTRACT_TABLES if t not in present]
    if missing:
        con.close()
        raise OpteError(f"the warehouse {path} has no marts.{', marts.'.join(missing)}; "
                        "run `opte build` to build it")
    return con


def _has_relation(con, schema: str, name: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name]).fetchone()[0])


def data_cutoff(con, home: Path) -> date:
    """The build's data cut-off: the warehouse's own record, else derived from the landed manifests."""
    if _has_relation(con, "intermediate", "int_data_cutoff"):
        row = con.execute("select max(data_cutoff) from intermediate.int_data_cutoff").fetchone()
        if row and row[0] is not None:
            return row[0]
    # Fallback, MEASURES.md section 9: the earliest over the incremental datasets of the
    # latest landed extract date (bounded by an explicitly requested cut-off).
    from measures.config import DATASETS_INCREMENTAL

    requested = build_info(home).get("cutoff_requested")
    latest = []
    for dataset in DATASETS_INCREMENTAL:
        dates = [date.fromisoformat(p.stem) for p in (lake_dir(home) / "_manifests" / dataset).glob("*.json")]
        if requested:
            dates = [d for d in dates if d <= date.fromisoformat(requested)]
        if dates:
            latest.append(max(dates))
    if requested:
        return date.fromisoformat(requested)
    if not latest:
        raise OpteError(f"cannot tell the data cut-off: no landed manifests under {lake_dir(home)}")
    return min(latest)


def build_info(home: Path) -> dict:
    path = home / "build_info.json"
    return json.loads(path.read_text()) if path.exists() else {}


def available_months(con, cutoff: date) -> tuple[date, date]:
    """First and last publishable report month: the first month with data to the cut-off's month."""
    first = con.execute("select min(month) from marts.opte_monthly").fetchone()[0]
    if first is None:
        raise OpteError("the warehouse has no off-flows (marts.opte_monthly is empty); "
                        "land extracts and run `opte build`")
    return first.replace(day=1), cutoff.replace(day=1)


def check_month(con, cutoff: date, month: ReportMonth) -> None:
    first, last = available_months(con, cutoff)
    if month.first_day < first or month.first_day > last:
        raise OpteError(
            f"report month {month.label} is not in the warehouse: it holds {first:%Y-%m} to "
            f"{last:%Y-%m} (data cut-off {cutoff.isoformat()}); choose a month in that range "
            "or land newer extracts and rebuild")


def _typed(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Published columns, in order, with fixed dtypes (nullable where the contract allows null)."""
    out = pd.DataFrame(index=range(len(df)))
    for col in columns:
        s = df[col].reset_index(drop=True) if col in df else pd.Series([None] * len(df))
        if col in INT_COLUMNS:
            s = pd.array(pd.to_numeric(s), dtype="Int64")
        elif col in FLOAT_COLUMNS:
            s = pd.array(pd.to_numeric(s), dtype="Float64")
        elif col in DATE_COLUMNS:
            s = pd.Series([None if pd.isna(v) else pd.Timestamp(v).date() for v in s], dtype="object")
        elif col in BOOL_COLUMNS:
            s = pd.array([None if pd.isna(v) else bool(v) for v in s], dtype="boolean")
        else:
            s = pd.array([None if pd.isna(v) else str(v) for v in s], dtype="string")
        out[col] = s
    return out


def opte_table(con, level: str, month: ReportMonth) -> pd.DataFrame:
    """`marts.opte_monthly` rows of one level for M and the 12 months before, by unit then month."""
    cols = [c for c in OPTE_COLUMNS if not (level == "office" and c in POINTS_COLUMNS)]
    df = con.execute(
        f"select {', '.join(cols)} from marts.opte_monthly "
        "where level = ? and month between ? and ? order by unit_code, month",
        [level, month.window_start, month.first_day]).df()
    return _typed(df, cols)


def cohort_table(con, level: str, month: ReportMonth) -> pd.DataFrame:
    """`marts.cohort_offflow_rates` rows of one level whose week had fallen due by the end of M."""
    source_cols = [c for c in COHORT_COLUMNS if c != "due_date"]
    df = con.execute(
        f"""
        with rates as (
            select {', '.join(source_cols)},
                cast(cohort_month + to_days(cast(
                    (4 - isodow(cohort_month) + 7) % 7 + 7 + 7 * week as integer)) as date) as due_date
            from marts.cohort_offflow_rates
            where level = ?
        )
        select {', '.join(COHORT_COLUMNS)} from rates
        where is_due and due_date <= ?
        order by unit_code, benefit_code, cohort_month, week
        """,
        [level, month.last_day]).df()
    return _typed(df, COHORT_COLUMNS)


def conversion_table(con, month: ReportMonth) -> pd.DataFrame:
    """`marts.opte_jot_conversion` at district level and above, M and the 12 months before."""
    order = "case level when 'district' then 1 when 'region' then 2 else 3 end"
    df = con.execute(
        f"select {', '.join(CONVERSION_COLUMNS)} from marts.opte_jot_conversion "
        f"where level in ('district', 'region', 'national') and month between ? and ? "
        f"order by {order}, unit_code, month, customer_group",
        [month.window_start, month.first_day]).df()
    return _typed(df, CONVERSION_COLUMNS)


def office_districts(con, month: ReportMonth) -> pd.DataFrame:
    """Which reporting offices reported under which district in month M.

    Only the distinct geography codes of `marts.offflow_events` are read (no person column).
    An office that moved district during M appears under both.
    """
    return con.execute(
        "select distinct reporting_office_code as office_code, district_code "
        "from marts.offflow_events where offflow_month = ? order by district_code, office_code",
        [month.first_day]).df()


def provisional_months(con, month: ReportMonth) -> dict[str, list[str]]:
    """The months of the published window whose OPtE (or JOT) figures are provisional."""
    rows = con.execute(
        "select month, bool_and(opte_is_final), bool_and(jot_is_final) from marts.opte_monthly "
        "where month between ? and ? group by month order by month",
        [month.window_start, month.first_day]).fetchall()
    return {
        "opte": [f"{m:%Y-%m}" for m, opte_final, _ in rows if not opte_final],
        "jot": [f"{m:%Y-%m}" for m, _, jot_final in rows if not jot_final],
    }


# ---------------------------------------------------------------- writing


def check_no_personal_columns(name: str, df: pd.DataFrame) -> None:
    bad = FORBIDDEN_COLUMNS.intersection(c.lower() for c in df.columns)
    if bad:  # a programming error, never a user error: stop before anything is written
        raise AssertionError(f"{name} would publish personal columns {sorted(bad)}")


def _csv_cell(value, col: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if col in FLOAT_COLUMNS:
        return f"{float(value):.6f}"
    if col in BOOL_COLUMNS:
        return "true" if value else "false"
    if col in DATE_COLUMNS:
        return value.isoformat()
    return str(value)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """CSV with fixed formatting: floats to 6 decimals, booleans true/false, empty for null, LF."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(df.columns)
    cols = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        writer.writerow([_csv_cell(v, c) for v, c in zip(row, cols)])
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Typed Parquet: dates date32, counts int64, rates float64, flags bool, text string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields, arrays = [], []
    for col in df.columns:
        values = [None if (v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v))) else v
                  for v in df[col].tolist()]
        if col in INT_COLUMNS:
            typ = pa.int64()
        elif col in FLOAT_COLUMNS:
            typ = pa.float64()
        elif col in DATE_COLUMNS:
            typ = pa.date32()
        elif col in BOOL_COLUMNS:
            typ = pa.bool_()
        else:
            typ = pa.string()
        fields.append(pa.field(col, typ))
        arrays.append(pa.array(values, type=typ))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    pq.write_table(table, path, compression="zstd")
