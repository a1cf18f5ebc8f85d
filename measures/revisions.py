"""revisions.csv: every published cell that differs from the earlier publication (PUBLICATION.md).

The earlier publication is the replaced publication of the same month when there is one (a
re-publication after a corrected extract), else the publication of the month before. Tables are
compared file by file as published (the CSV text, so a revision is exactly what a reader of the
two files would see change), row by row on each table's key, over the columns both hold:

- a row in both whose cell differs: `revised` (both values present), `filled` (a value where the
  cell was empty, e.g. a cohort week that fell due), `withdrawn` (empty where there was a value);
- a row in only one of them, within the months both publications cover: `row added` /
  `row removed`, one line per non-empty cell (rows that only entered or left the 13-month window
  are not revisions).

The comparison runs in DuckDB over the two CSV files, never holding a table in Python.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

REVISION_COLUMNS = ["file", "level", "unit_code", "unit_name", "district_code", "month", "row_key", "column",
                    "old_value", "new_value", "change"]

# file stem (or prefix ending in _) -> key columns; the first date-like key is the row's month
KEYS = {
    "opte_": ["level", "unit_code", "month"],
    "cohort_rates_": ["level", "unit_code", "benefit_code", "cohort_month", "week"],
    "opte_jot_conversion": ["level", "unit_code", "month", "customer_group"],
    "sustainability_": ["level", "unit_code", "month", "week"],
    "office_monitors": ["month", "office_code", "indicator"],
    "measure_agreement": ["level", "financial_year", "pair"],
}
MONTH_KEYS = ("month", "cohort_month", "financial_year")
NOT_COMPARED = {"data_dictionary", "revisions"}


def table_keys(stem: str) -> list[str] | None:
    if stem in KEYS:
        return KEYS[stem]
    for prefix, keys in KEYS.items():
        if prefix.endswith("_") and stem.startswith(prefix):
            return keys
    return None


def earlier_publication(target: Path, previous_month_folder: Path) -> Path | None:
    """The publication revisions are measured against: the one being replaced, else month M-1."""
    if (target / "manifest.json").exists():
        return target
    if (previous_month_folder / "manifest.json").exists():
        return previous_month_folder
    return None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _header(con, path: Path) -> list[str]:
    return [r[0] for r in con.execute(
        f"describe select * from read_csv('{path}', all_varchar = true, header = true)").fetchall()]


def compare_file(con, stem: str, old: Path, new: Path) -> str | None:
    """SQL selecting the revision rows of one table (None when nothing can be compared)."""
    keys = table_keys(stem)
    if keys is None:
        return None
    old_cols, new_cols = _header(con, old), _header(con, new)
    if not set(keys) <= set(old_cols) or not set(keys) <= set(new_cols):
        return None
    compared = [c for c in new_cols if c in old_cols and c not in keys]
    if not compared:
        return None
    month_key = next((k for k in keys if k in MONTH_KEYS), None)
    unit_key = "office_code" if "office_code" in keys else ("unit_code" if "unit_code" in keys else None)
    extra = [k for k in keys if k not in ("level", unit_key, month_key)]

    def side(path: Path, cols: list[str], tag: str) -> str:
        level = "level" if "level" in cols else "'office'"
        unit = _q(unit_key) if unit_key else "null"
        name = "office_name" if "office_name" in cols else ("unit_name" if "unit_name" in cols else None)
        district = ("district_code" if "district_code" in cols
                    else ("case when level = 'district' then unit_code end" if "level" in cols and "unit_code" in cols
                          else "null"))
        ids = ", ".join(_q(k) for k in keys)
        return (f"{tag}_rows as (select {ids}, {level} as _level, {unit} as _unit, "
                f"{_q(name) if name else 'null'} as _unit_name, {district} as _district, true as _present, "
                f"{', '.join(_q(c) for c in compared)} from read_csv('{path}', all_varchar = true, header = true))")

    join = " and ".join(f"o.{_q(k)} = n.{_q(k)}" for k in keys)
    coalesced = ", ".join(f"coalesce(n.{_q(k)}, o.{_q(k)}) as {_q(k)}" for k in keys)
    pack = lambda alias: "struct_pack(" + ", ".join(f"{_q('c' + str(i))} := {alias}.{_q(c)}"  # noqa: E731
                                                    for i, c in enumerate(compared)) + ")"
    if month_key:
        window = (f", overlap as (select greatest((select min({_q(month_key)}) from old_rows), "
                  f"(select min({_q(month_key)}) from new_rows)) as first, "
                  f"least((select max({_q(month_key)}) from old_rows), "
                  f"(select max({_q(month_key)}) from new_rows)) as last)")
        in_window = f"d.{_q(month_key)} between (select first from overlap) and (select last from overlap)"
    else:
        window, in_window = "", "true"
    row_key = (" || '; ' || ".join(f"'{k}=' || coalesce(d.{_q(k)}, '')" for k in extra)) if extra else "null"
    order_level = "case d._level when 'office' then 1 when 'district' then 2 when 'region' then 3 else 4 end"
    month_expr = f"d.{_q(month_key)}" if month_key else "null"
    # rows that differ at all (most rows are unchanged: compare whole rows first, then their cells)
    changed = (f"changed as (select {coalesced}, coalesce(n._level, o._level) as _level, "
               f"coalesce(n._unit, o._unit) as _unit, coalesce(n._unit_name, o._unit_name) as _unit_name, "
               f"coalesce(n._district, o._district) as _district, o._present as _in_old, n._present as _in_new, "
               + ", ".join(f"o.{_q(c)} as {_q('o_' + c)}, n.{_q(c)} as {_q('n_' + c)}" for c in compared)
               + f" from old_rows as o full join new_rows as n on {join} "
               f"where o._present is null or n._present is null or {pack('o')} is distinct from {pack('n')})")
    cells = " union all ".join(
        f"select {', '.join(_q(k) for k in keys)}, _level, _unit, _unit_name, _district, _in_old, _in_new, "
        f"'{c}' as _column, {_q('o_' + c)} as old_value, {_q('n_' + c)} as new_value from changed "
        f"where {_q('o_' + c)} is distinct from {_q('n_' + c)}" for c in compared)
    return f"""
        with {side(old, old_cols, 'old')}, {side(new, new_cols, 'new')}{window}, {changed},
        diff as (
            select *, case when _in_old is null then 'row added'
                           when _in_new is null then 'row removed'
                           when old_value is null then 'filled'
                           when new_value is null then 'withdrawn'
                           else 'revised' end as change
            from ({cells})
        )
        select '{stem}' as file, d._level as level, d._unit as unit_code, d._unit_name as unit_name,
            d._district as district_code, {month_expr} as month, {row_key} as row_key, d._column as "column",
            d.old_value, d.new_value, d.change,
            {order_level} as _order_level
        from diff as d
        where d.change in ('revised', 'filled', 'withdrawn') or {in_window}
    """


def compute(old_folder: Path | None, new_folder: Path, stems: list[str], out_csv: Path, out_parquet: Path) -> int:
    """Write revisions.csv / .parquet of `new_folder` against `old_folder`; returns the number of rows."""
    import duckdb

    spill = new_folder / ".revisions-spill"  # DuckDB works here; removed before the folder is published
    spill.mkdir(parents=True, exist_ok=True)
    # a database file, not memory: at national scale a month's revisions are millions of cells, and
    # each table is compared on its own (one full join at a time) into a table on disk
    con = duckdb.connect(str(spill / "revisions.duckdb"),
                         config={"memory_limit": "256MB", "threads": 2, "preserve_insertion_order": False,
                                 "temp_directory": str(spill)})
    try:
        columns = ", ".join(f"{_q(c)} varchar" for c in REVISION_COLUMNS)
        con.execute(f"create table revisions ({columns}, _order_level integer)")
        if old_folder is not None:
            for stem in sorted(stems):
                if stem in NOT_COMPARED:
                    continue
                old, new = old_folder / f"{stem}.csv", new_folder / f"{stem}.csv"
                if old.exists() and new.exists():
                    sql = compare_file(con, stem, old, new)
                    if sql:
                        con.execute(f"insert into revisions by name {sql}")
        cols = ", ".join(_q(c) for c in REVISION_COLUMNS)
        ordered = (f"(select {cols} from revisions order by file, _order_level, unit_code, month, row_key, "
                   f"\"column\")")
        con.execute(f"copy {ordered} to '{out_csv}' (format csv, header true, quote '\"', escape '\"', "
                    "new_line '\n')")
        con.execute(f"copy {ordered} to '{out_parquet}' (format parquet, compression zstd)")
        return con.execute("select count(*) from revisions").fetchone()[0]
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def summary(revisions_csv: Path, limit_per_district: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(counts by district_code, file and change; up to `limit_per_district` rows per district and
    for the national units) of a written revisions.csv, for the pages and workbooks."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "256MB", "threads": 1})
    try:
        src = f"read_csv('{revisions_csv}', all_varchar = true, header = true)"
        if con.execute(f"select count(*) from {src}").fetchone()[0] == 0:
            empty = pd.DataFrame(columns=REVISION_COLUMNS)
            return pd.DataFrame(columns=["district_code", "file", "change", "cells"]), empty
        counts = con.execute(
            f"select coalesce(district_code, '') as district_code, file, change, count(*) as cells "
            f"from {src} group by all order by all").df()
        rows = con.execute(
            f"""select * exclude (_n) from (
                    select *, row_number() over (partition by coalesce(district_code, level)
                                                 order by file, level, unit_code, month, row_key, "column") as _n
                    from {src}) where _n <= {int(limit_per_district)}
                order by file, level, unit_code, month, row_key, "column" """).df()
        return counts, rows
    finally:
        con.close()
