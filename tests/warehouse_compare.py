"""Cell-for-cell comparison of the marts of two warehouses (DuckDB files), without pandas."""
from __future__ import annotations

from pathlib import Path

import duckdb


def mart_tables(con: duckdb.DuckDBPyConnection, db: str, schema: str = "marts") -> list[str]:
    """The tables and views of `db.schema` (a released warehouse holds views over its snapshot)."""
    return [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_catalog = ? and table_schema = ? "
        "order by table_name", [db, schema]).fetchall()]


def marts_differences(a: Path, b: Path, memory_limit: str = "1GB", schema: str = "marts",
                      tables: tuple[str, ...] | None = None) -> list[str]:
    """What differs between the marts of warehouses `a` and `b`: missing tables, different column
    lists or types, and per table the number of rows of each side missing from the other (rows
    compared as multisets: every cell, nulls equal to nulls). Empty when they are identical.
    `schema`, `tables`: compare those tables of another schema instead (all of it by default)."""
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": 2})
    try:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        out = []
        ta, tb = mart_tables(con, "a", schema), mart_tables(con, "b", schema)
        if tables is not None:
            missing = [t for t in tables if t not in ta or t not in tb]
            if missing:
                return [f"{schema} tables missing: {missing}"]
            ta = tb = list(tables)
        if ta != tb:
            out.append(f"mart tables differ: {sorted(set(ta) ^ set(tb))}")
        for table in sorted(set(ta) & set(tb)):
            cols = {db: con.execute(
                "select column_name, data_type from duckdb_columns() where database_name = ? "
                "and schema_name = ? and table_name = ? order by column_index", [db, schema, table]).fetchall()
                for db in ("a", "b")}
            if cols["a"] != cols["b"]:
                out.append(f"{table}: columns differ: {cols['a']} vs {cols['b']}")
                continue
            only = {}
            for x, y in (("a", "b"), ("b", "a")):
                only[x] = con.execute(f"select count(*) from (select * from {x}.{schema}.{table} "
                                      f"except all select * from {y}.{schema}.{table})").fetchone()[0]
            if only["a"] or only["b"]:
                out.append(f"{table}: {only['a']} row(s) only in {a}, {only['b']} only in {b}")
        return out
    finally:
        con.close()
