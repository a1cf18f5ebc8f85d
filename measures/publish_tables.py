"""The published tables of one report month, read from the warehouse's marts (MEASURES.md 10, 16).

Only aggregate marts are read, one query per table, filtered to the month's window in DuckDB:
`opte_monthly`, `cohort_offflow_rates`, `opte_jot_conversion`, `reporting_units` (names and
parents of every unit, and every office at the end of the month) and, once the warehouse has
them, `opte_sustainability`, `office_monitors`, `measure_agreement`. No person-level table is
read. Columns a mart does not have yet (an older warehouse) are simply not published.

Every row names its unit and the units above it (office rows: district and region; district
rows: region), taken from `reporting_units` for the row's month (cohorts: the cohort month, else
the report month). Every table carries a provisional flag: `opte_is_final` / `jot_is_final`
(joined from `opte_monthly` where a table has none of its own), `is_due` for cohorts and
sustainability, `includes_provisional_months` for monitors, `is_provisional` for agreement.

Windows (PUBLICATION.md, "Files for report month M"):
- `opte_<level>`, `opte_jot_conversion`: month M and the 12 months before it (13 months);
- `cohort_rates_<level>`: complete cohorts whose first week (13) fell due in the 24 months up to
  M, every week with its due date; a week counts as due when it had fallen due by the end of M
  (and at the data cut-off); a week not due shows no rate, and its projection where the mart has
  one;
- `sustainability_<level>`: off-flow months M-12 .. M-1 and earlier months with a week still not
  due;
- `office_monitors`: month M; `measure_agreement`: financial years up to that of M.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from measures.config import warehouse_path
from measures.errors import OpteError

LEVELS = ("office", "district", "region", "national")
TREND_MONTHS = 12  # months before M shown for trend
COHORT_DUE_MONTHS = 24  # cohorts whose first week fell due in the 24 months up to M
SUSTAINABILITY_MONTHS = 12  # off-flow months M-12 .. M-1

PARENTS = {
    "office": ["district_code", "district_name", "region_code", "region_name"],
    "district": ["region_code", "region_name"],
    "region": [],
    "national": [],
}
UNIT = ["level", "unit_code", "unit_name"]
OPTE_MEASURES = [
    "month", "offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
    "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "opte_share_of_offflows",
    "opte_points", "job_outcomes", "jot_points", "opte_target_annual", "opte_target_ytd", "opte_ytd",
    "pct_of_target_ytd", "rag",
]
# MEASURES.md section 16, published once the warehouse has them
OPTE_NEW = ["proxy_offflows", "opte_nowcast", "opte_projected_annual", "projected_pct_of_target", "projected_rag"]
FLAGS = ["opte_is_final", "jot_is_final"]
OPTE_COLUMNS = ["level", "unit_code", "unit_name", *OPTE_MEASURES, *FLAGS]  # the contract core
POINTS_COLUMNS = ["opte_points", "jot_points"]  # district level and up only
COHORT_MEASURES = ["benefit_code", "cohort_month", "cohort_size", "week", "due_date", "is_due",
                   "offflowed_by_week", "offflow_rate", "target_rate"]
COHORT_NEW = ["projected_rate", "projected_at_risk"]
CONVERSION_MEASURES = ["month", "customer_group", "opte_offflows", "opte_with_job_outcome", "conversion_rate"]
CONVERSION_LEVELS = ("district", "region", "national")
SUSTAINABILITY_MEASURES = ["month", "week", "opte_offflows", "back_on_benefit", "sustained_rate", "is_due",
                           "opte_is_final"]
MONITOR_COLUMNS = ["month", "office_code", "office_name", "district_code", "district_name", "region_code",
                   "region_name", "indicator", "numerator", "denominator", "share", "benchmark_share",
                   "lower_limit", "upper_limit", "flag", "warning", "includes_provisional_months"]
AGREEMENT_COLUMNS = ["level", "financial_year", "pair", "pairs", "x_total", "y_total", "scale", "pearson_r",
                     "mean_abs_pct_error", "is_provisional"]

# Column types of the published tables (Parquet is typed with these; CSV formats from them).
INT_COLUMNS = {
    "offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
    "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "opte_points",
    "job_outcomes", "jot_points", "opte_ytd", "cohort_size", "week", "offflowed_by_week",
    "opte_with_job_outcome", "proxy_offflows", "back_on_benefit", "numerator", "denominator",
    "pairs", "x_total", "y_total", "financial_year",
}
FLOAT_COLUMNS = {
    "opte_share_of_offflows", "opte_target_annual", "opte_target_ytd", "pct_of_target_ytd",
    "offflow_rate", "target_rate", "conversion_rate", "opte_nowcast", "opte_projected_annual",
    "projected_pct_of_target", "projected_rate", "sustained_rate", "share", "benchmark_share",
    "lower_limit", "upper_limit", "scale", "pearson_r", "mean_abs_pct_error",
}
DATE_COLUMNS = {"month", "cohort_month", "due_date"}
BOOL_COLUMNS = {"opte_is_final", "jot_is_final", "is_due", "projected_at_risk", "includes_provisional_months",
                "is_provisional"}
# Columns that must never appear in any published table (checked before writing).
FORBIDDEN_COLUMNS = {"nino", "person_key", "claim_id", "date_of_birth", "birth_date"}

CONTRACT_TABLES = ("opte_monthly", "cohort_offflow_rates", "opte_jot_conversion", "reporting_units")
NEW_MARTS = ("opte_sustainability", "office_monitors", "measure_agreement")


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
    def previous(self) -> "ReportMonth":
        return ReportMonth(add_months(self.first_day, -1))

    @property
    def financial_year(self) -> int:
        return self.first_day.year if self.first_day.month >= 4 else self.first_day.year - 1

    @property
    def months(self) -> list[date]:
        """The 13 months of the trend window, oldest first."""
        return [add_months(self.window_start, i) for i in range(TREND_MONTHS + 1)]


def add_months(d: date, n: int) -> date:
    """First day of the month n months after d's month."""
    index = d.year * 12 + d.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


# ---------------------------------------------------------------- reading the warehouse


def connect(home: Path):
    """A read-only connection to the built warehouse (publishing never writes to it)."""
    import duckdb

    from measures.release import check_complete

    path = warehouse_path(home)
    if not path.exists():
        raise OpteError(f"no warehouse at {path}; run `opte build` (or `opte run`) first")
    check_complete(home)
    con = duckdb.connect(str(path), read_only=True, config={"memory_limit": "256MB", "threads": 2})
    present = marts_columns(con)
    missing = [t for t in CONTRACT_TABLES if t not in present]
    if missing:
        con.close()
        raise OpteError(f"the warehouse {path} has no marts.{', marts.'.join(missing)}; "
                        "run `opte build` to build it")
    if "due_date" not in present["cohort_offflow_rates"]:  # publication never works out a due date itself
        con.close()
        raise OpteError(f"the warehouse {path} has no marts.cohort_offflow_rates.due_date; "
                        "run `opte build` to rebuild it")
    return con


def marts_columns(con) -> dict[str, set[str]]:
    """The marts of the warehouse and their columns (so that new columns slot in when built)."""
    out: dict[str, set[str]] = {}
    for table, col in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'marts'").fetchall():
        out.setdefault(table, set()).add(col)
    return out


def _has_relation(con, schema: str, name: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name]).fetchone()[0])


def data_cutoff(con, home: Path) -> date:
    """The build's data cut-off (MEASURES.md section 9), as dbt worked it out: `int_data_cutoff`."""
    row = None
    if _has_relation(con, "intermediate", "int_data_cutoff"):
        row = con.execute("select max(data_cutoff) from intermediate.int_data_cutoff").fetchone()
    if not row or row[0] is None:
        raise OpteError(f"the warehouse {warehouse_path(home)} records no data cut-off "
                        "(intermediate.int_data_cutoff); run `opte build` to rebuild it")
    return row[0]


def build_info(home: Path) -> dict:
    """The build record of the warehouse as readers open it (measures.release.current_record)."""
    from measures.release import current_record

    return current_record(Path(home))


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


def typed(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Published columns, in order, with fixed dtypes (nullable where the contract allows null)."""
    out = {}
    n = len(df)
    for col in columns:
        s = df[col].reset_index(drop=True) if col in df else pd.Series([None] * n, dtype="object")
        if col in INT_COLUMNS:
            s = pd.array(pd.to_numeric(s), dtype="Int64")
        elif col in FLOAT_COLUMNS:
            s = pd.array(pd.to_numeric(s), dtype="Float64")
        elif col in DATE_COLUMNS:
            stamps = pd.to_datetime(s)
            s = pd.Series(stamps.dt.date.where(stamps.notna(), None), dtype="object")
        elif col in BOOL_COLUMNS:
            s = s.astype("boolean") if s.dtype != object else pd.array(
                [None if pd.isna(v) else bool(v) for v in s], dtype="boolean")
        else:
            s = s.astype("string")
        out[col] = s
    return pd.DataFrame(out, index=range(n), columns=columns)


def _parent_select(level: str, alias: str = "ru", fallback: str | None = None) -> list[str]:
    cols = []
    for col in PARENTS[level]:
        expr = f"{alias}.{col}" if fallback is None else f"coalesce({alias}.{col}, {fallback}.{col})"
        cols.append(f"{expr} as {col}")
    return cols


def opte_columns(level: str, present: set[str]) -> list[str]:
    """The published columns of opte_<level>: unit, parents, measures (people only for offices), flags."""
    measures = [c for c in OPTE_MEASURES if not (level == "office" and c in POINTS_COLUMNS)]
    return [*UNIT, *PARENTS[level], *measures, *[c for c in OPTE_NEW if c in present], *FLAGS]


def opte_table(con, level: str, month: ReportMonth, present: set[str]) -> pd.DataFrame:
    """`marts.opte_monthly` rows of one level for M and the 12 months before, by unit then month."""
    cols = opte_columns(level, present)
    select = [f"m.{c}" for c in cols if c not in PARENTS[level]]
    select[3:3] = _parent_select(level)
    df = con.execute(
        f"select {', '.join(select)} from marts.opte_monthly as m "
        "left join marts.reporting_units as ru "
        "  on ru.month = m.month and ru.level = m.level and ru.unit_code = m.unit_code "
        "where m.level = ? and m.month between ? and ? order by m.unit_code, m.month",
        [level, month.window_start, month.first_day]).df()
    return typed(df, cols)


def cohort_columns(level: str, present: set[str]) -> list[str]:
    return [*UNIT, *PARENTS[level], *COHORT_MEASURES, *[c for c in COHORT_NEW if c in present]]


def cohort_table(con, level: str, month: ReportMonth, present: set[str]) -> pd.DataFrame:
    """`marts.cohort_offflow_rates` of one level: complete cohorts whose first week fell due in the 24
    months up to M, every week; a week is published as due when it had fallen due by the end of M."""
    cols = cohort_columns(level, present)
    due = "c.due_date"  # dbt's (count date + 7k days; `connect` checks the mart has it), never worked out here
    new = [c for c in COHORT_NEW if c in present]
    projected = "".join(f", case when not c.is_due then c.{c} end as {c}" for c in new)
    df = con.execute(
        f"""
        with rates as (
            select c.level, c.unit_code, c.benefit_code, c.cohort_month, c.cohort_size, c.week,
                c.offflowed_by_week, c.offflow_rate, c.target_rate, {due} as due_date,
                c.is_due and {due} <= ? as is_due_by_month{projected}
            from marts.cohort_offflow_rates as c
            where c.level = ?
        ),
        cohorts as (
            select *, min(due_date) over (partition by unit_code, benefit_code, cohort_month) as first_due
            from rates
        )
        select c.level, c.unit_code, coalesce(ru.unit_name, ru_m.unit_name) as unit_name,
            {', '.join(_parent_select(level, 'ru', 'ru_m') + [''])}
            c.benefit_code, c.cohort_month, c.cohort_size, c.week, c.due_date,
            c.is_due_by_month as is_due,
            case when c.is_due_by_month then c.offflowed_by_week end as offflowed_by_week,
            case when c.is_due_by_month then c.offflow_rate end as offflow_rate,
            c.target_rate{''.join(f', c.{n}' for n in new)}
        from cohorts as c
        left join marts.reporting_units as ru
            on ru.month = c.cohort_month and ru.level = c.level and ru.unit_code = c.unit_code
        left join marts.reporting_units as ru_m
            on ru_m.month = ? and ru_m.level = c.level and ru_m.unit_code = c.unit_code
        where c.first_due between ? and ?
        order by c.unit_code, c.benefit_code, c.cohort_month, c.week
        """,
        [month.last_day, level, month.first_day, add_months(month.first_day, 1 - COHORT_DUE_MONTHS),
         month.last_day]).df()
    return typed(df, cols)


def conversion_columns() -> list[str]:
    return [*UNIT, "region_code", "region_name", *CONVERSION_MEASURES, *FLAGS]


def conversion_table(con, month: ReportMonth) -> pd.DataFrame:
    """`marts.opte_jot_conversion` at district level and above, M and the 12 months before, with the
    month's provisional flags from opte_monthly."""
    cols = conversion_columns()
    order = "case cv.level when 'district' then 1 when 'region' then 2 else 3 end"
    df = con.execute(
        f"""
        select cv.level, cv.unit_code, coalesce(ru.unit_name, m.unit_name) as unit_name,
            ru.region_code, ru.region_name, cv.month, cv.customer_group, cv.opte_offflows,
            cv.opte_with_job_outcome, cv.conversion_rate, m.opte_is_final, m.jot_is_final
        from marts.opte_jot_conversion as cv
        left join marts.opte_monthly as m
            on m.level = cv.level and m.unit_code = cv.unit_code and m.month = cv.month
        left join marts.reporting_units as ru
            on ru.month = cv.month and ru.level = cv.level and ru.unit_code = cv.unit_code
        where cv.level in ('district', 'region', 'national') and cv.month between ? and ?
        order by {order}, cv.unit_code, cv.month, cv.customer_group
        """,
        [month.window_start, month.first_day]).df()
    return typed(df, cols)


def sustainability_columns(level: str) -> list[str]:
    return [*UNIT, *PARENTS[level], *SUSTAINABILITY_MEASURES]


def sustainability_table(con, level: str, month: ReportMonth, present: set[str]) -> pd.DataFrame:
    """`marts.opte_sustainability` of one level: off-flow months M-12 .. M-1, and earlier months with a
    week still not due, with the month's OPtE provisional flag."""
    cols = sustainability_columns(level)
    due = "s.is_due and s.due_date <= ?" if "due_date" in present else "s.is_due and ? is not null"
    df = con.execute(
        f"""
        with s as (
            select s.*, {due} as is_due_by_month from marts.opte_sustainability as s where s.level = ?
        )
        select s.level, s.unit_code, coalesce(ru.unit_name, s.unit_name) as unit_name,
            {', '.join(_parent_select(level) + [''])}
            s.month, s.week, s.opte_offflows,
            case when s.is_due_by_month then s.back_on_benefit end as back_on_benefit,
            case when s.is_due_by_month then s.sustained_rate end as sustained_rate,
            s.is_due_by_month as is_due, m.opte_is_final
        from s
        left join marts.opte_monthly as m
            on m.level = s.level and m.unit_code = s.unit_code and m.month = s.month
        left join marts.reporting_units as ru
            on ru.month = s.month and ru.level = s.level and ru.unit_code = s.unit_code
        where s.month < ?
          and (s.month >= ? or not s.is_due_by_month)
        order by s.unit_code, s.month, s.week
        """,
        [month.last_day, level, month.first_day, add_months(month.first_day, -SUSTAINABILITY_MONTHS)]).df()
    return typed(df, cols)


def monitors_table(con, month: ReportMonth) -> pd.DataFrame:
    """`marts.office_monitors` for month M, with the office's names and whether the window holds
    provisional months."""
    df = con.execute(
        """
        with window_status as (
            select bool_or(not opte_is_final) as includes_provisional_months
            from marts.opte_monthly
            where level = 'national' and month between ? and ?
        )
        select mo.month, mo.office_code, ru.unit_name as office_name, mo.district_code,
            d.unit_name as district_name, coalesce(d.region_code, ru.region_code) as region_code,
            coalesce(d.region_name, ru.region_name) as region_name, mo.indicator, mo.numerator,
            mo.denominator, mo.share, mo.benchmark_share, mo.lower_limit, mo.upper_limit, mo.flag,
            mo.warning, coalesce(w.includes_provisional_months, false) as includes_provisional_months
        from marts.office_monitors as mo
        cross join window_status as w
        left join marts.reporting_units as ru
            on ru.month = mo.month and ru.level = 'office' and ru.unit_code = mo.office_code
        left join marts.reporting_units as d
            on d.month = mo.month and d.level = 'district' and d.unit_code = mo.district_code
        where mo.month = ?
        order by mo.district_code, mo.office_code, mo.indicator
        """,
        [add_months(month.first_day, -11), month.first_day, month.first_day]).df()
    return typed(df, MONITOR_COLUMNS)


def agreement_table(con, month: ReportMonth) -> pd.DataFrame:
    """`marts.measure_agreement` for the financial years up to that of M; provisional while some month
    of the year is not final for the pair's second measure (or the year is M's own)."""
    df = con.execute(
        """
        with status as (
            select financial_year, bool_or(not opte_is_final) as opte_open, bool_or(not jot_is_final) as jot_open
            from marts.opte_monthly where level = 'national' group by financial_year
        )
        select a.level, a.financial_year, a.pair, a.pairs, a.x_total, a.y_total, a.scale, a.pearson_r,
            a.mean_abs_pct_error,
            a.financial_year >= ? or coalesce(case when a.pair = 'proxy_vs_opte' then s.opte_open
                                                    else s.jot_open end, true) as is_provisional
        from marts.measure_agreement as a
        left join status as s on s.financial_year = a.financial_year
        where a.financial_year <= ?
        order by case a.level when 'office' then 1 when 'district' then 2 when 'region' then 3 else 4 end,
            a.financial_year, a.pair
        """,
        [month.financial_year, month.financial_year]).df()
    return typed(df, AGREEMENT_COLUMNS)


def units_table(con, month: ReportMonth) -> pd.DataFrame:
    """`marts.reporting_units` for the 13 months of the window (not published as a file: the workbooks
    and pages list every office at the end of M, and trends of every unit, from it)."""
    return con.execute(
        "select * from marts.reporting_units where month between ? and ? order by level, unit_code, month",
        [month.window_start, month.first_day]).df()


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


def read_tables(con, month: ReportMonth, levels=LEVELS) -> dict[str, pd.DataFrame]:
    """Every published table of the month, by file stem, plus `_units` (reporting_units, not published)."""
    marts = marts_columns(con)
    tables: dict[str, pd.DataFrame] = {}
    for level in levels:
        tables[f"opte_{level}"] = opte_table(con, level, month, marts["opte_monthly"])
        tables[f"cohort_rates_{level}"] = cohort_table(con, level, month, marts["cohort_offflow_rates"])
    tables["opte_jot_conversion"] = conversion_table(con, month)
    if "opte_sustainability" in marts:
        for level in levels:
            tables[f"sustainability_{level}"] = sustainability_table(
                con, level, month, marts["opte_sustainability"])
    if "office_monitors" in marts and "office" in levels:
        tables["office_monitors"] = monitors_table(con, month)
    if "measure_agreement" in marts:
        tables["measure_agreement"] = agreement_table(con, month)
    tables["_units"] = units_table(con, month)
    return tables


# ---------------------------------------------------------------- writing


def check_no_personal_columns(name: str, df: pd.DataFrame) -> None:
    bad = FORBIDDEN_COLUMNS.intersection(c.lower() for c in df.columns)
    if bad:  # a programming error, never a user error: stop before anything is written
        raise AssertionError(f"{name} would publish personal columns {sorted(bad)}")


def arrow_table(df: pd.DataFrame):
    """The table typed for Parquet: dates date32, counts int64, rates float64, flags bool, text string."""
    import pyarrow as pa

    fields, arrays = [], []
    for col in df.columns:
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
        values = df[col]
        if typ == pa.date32():
            values = [None if v is None or v is pd.NA else v for v in values]
            array = pa.array(values, type=typ)
        else:
            array = pa.array(values.to_numpy(dtype=object, na_value=None), type=typ, from_pandas=True)
        fields.append(pa.field(col, typ))
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_csv(df: pd.DataFrame, path: Path, con=None) -> None:
    """CSV with fixed formatting: floats to 6 decimals, booleans true/false, dates ISO, empty for null, LF.

    Written by DuckDB from the typed Arrow table (fast at national scale; same bytes every time).
    """
    import duckdb

    own = con is None
    con = con or duckdb.connect(config={"threads": 1})
    try:
        if len(df.columns) == 0:
            path.write_text("\n")
            return
        con.register("published_table", arrow_table(df))
        select = []
        for col in df.columns:
            q = '"' + col.replace('"', '""') + '"'
            if col in FLOAT_COLUMNS:
                select.append(f"printf('%.6f', {q}) as {q}")
            elif col in BOOL_COLUMNS:
                select.append(f"case when {q} then 'true' when not {q} then 'false' end as {q}")
            else:
                select.append(f"cast({q} as varchar) as {q}")
        con.execute(f"copy (select {', '.join(select)} from published_table) to '{path}' "
                    "(format csv, header true, delimiter ',', quote '\"', escape '\"', new_line '\n')")
        con.unregister("published_table")
    finally:
        if own:
            con.close()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(arrow_table(df), path, compression="zstd")
