"""The engines a warehouse can be built on: DuckDB (the default) and Apache Spark.

The dbt project is one; each engine is a dbt target (dbt_project/profiles.yml): `local` (DuckDB,
`<home>/warehouse.duckdb`) and `spark` (dbt-spark; locally `method: session`, in-process, with
its metastore and warehouse under `<home>/spark`). What differs between the engines is in the
dbt project's `adapter.dispatch` macros (dbt_project/macros/lake_scan.sql, types.sql,
financial_year.sql, add_days.sql, spark_dates.sql, window_functions.sql, mean_of_decimals.sql,
spark_seeds.sql), never in a model.

Publication reads `<home>/warehouse.duckdb` whichever engine built it. On Spark the marts are
Parquet files under `<home>/spark/marts/<model>/` (dbt_project.yml `location_root`), and
`write_marts_catalog` makes `<home>/warehouse.duckdb` a small DuckDB catalog of views over them
(schema `marts`, and `intermediate.int_data_cutoff`, which publication reads for the cut-off).

Spark needs the optional extra (`pip install .[spark]`: dbt-spark[session], pyspark) and a Java
runtime (17 or 21; Debian's `openjdk-17-jre-headless`). `check_spark_ready` says which is missing.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from measures.config import warehouse_path
from measures.errors import OpteError

ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"
DBT_TARGETS = {"duckdb": "local", "spark": "spark"}

# The relations publication reads, besides every mart: (schema, model).
CATALOG_EXTRA = (("intermediate", "int_data_cutoff"), ("intermediate", "int_coverage_start"))


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise OpteError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def dbt_target(engine: str) -> str:
    return DBT_TARGETS[check_engine(engine)]


def spark_dir(home: Path) -> Path:
    """Spark's folder under the home: metastore (Derby), warehouse, scratch space, the marts."""
    return Path(home) / "spark"


def spark_marts_dir(home: Path) -> Path:
    """Where a Spark build writes the marts (and int_data_cutoff) as Parquet, one folder per model:
    `<home>/spark/marts`, or $OPTE_SPARK_MARTS (dbt_project.yml `location_root` reads the same)."""
    chosen = os.environ.get("OPTE_SPARK_MARTS")
    return Path(chosen) if chosen else spark_dir(home) / "marts"


def java_executable() -> str | None:
    """The `java` Spark will start: $JAVA_HOME/bin/java, else `java` on PATH; None when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def java_major_version(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (out.stderr + out.stdout).splitlines():
        if "version" in line and '"' in line:
            number = line.split('"')[1]
            head = number.split(".")[0]
            if head == "1":  # 1.8.0_x: Java 8
                head = number.split(".")[1]
            return int(head) if head.isdigit() else None
    return None


def spark_missing() -> str | None:
    """Why a local Spark build cannot run here (None when it can): the extra or a JRE missing."""
    if not (_has_module("pyspark") and _has_module("dbt.adapters.spark")):
        return ("the Spark engine's Python packages are not installed (pyspark, dbt-spark): "
                "`pip install -c constraints.txt '.[spark]'` (scripts/bootstrap.sh installs them)")
    if os.environ.get("OPTE_SPARK_METHOD", "session") != "session":
        return None  # a cluster: no local JVM needed
    java = java_executable()
    if java is None:
        return ("no Java runtime for Spark: install one (Debian: `apt-get install openjdk-17-jre-headless`; "
                "scripts/test.sh does it when run as root) or set JAVA_HOME")
    major = java_major_version(java)
    if major is not None and major < 17:
        return f"Spark 4 needs Java 17 or later; {java} is Java {major}: install openjdk-17-jre-headless or set JAVA_HOME"
    return None


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def check_spark_ready() -> None:
    reason = spark_missing()
    if reason:
        raise OpteError(f"cannot build on Spark: {reason}; or build on DuckDB (`opte build`, the default)")


def write_marts_catalog(home: Path, marts_dir: Path | None = None, target: Path | None = None) -> Path:
    """Make `target` (default `<home>/warehouse.duckdb`; a Spark build gives its working database,
    which the release step then releases) a DuckDB catalog of views over the Parquet marts.

    One view `marts.<model>` per folder of `marts_dir` (default `<home>/spark/marts`) and
    `intermediate.int_data_cutoff`, each `select * from read_parquet('<folder>/*.parquet')`
    (absolute paths: the catalog belongs to its home). The file is written beside the
    warehouse and moved over it, so a reader sees the old catalog or the new one, never half.
    Returns `target`.
    """
    import duckdb

    home = Path(home)
    marts_dir = Path(marts_dir or spark_marts_dir(home))
    folders = sorted(p for p in marts_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) \
        if marts_dir.is_dir() else []
    if not folders:
        raise OpteError(f"no Parquet marts under {marts_dir}: the Spark build wrote none; see {home / 'dbt' / 'logs'}")
    extra = {name: schema for schema, name in CATALOG_EXTRA}
    target = Path(target or warehouse_path(home))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp), config={"threads": 1, "memory_limit": "256MB"})
    try:
        for schema in {"marts", *extra.values()}:
            con.execute(f'create schema "{schema}"')
        for folder in folders:
            schema = extra.get(folder.name, "marts")
            files = str(folder / "*.parquet").replace("'", "''")
            con.execute(f'create view "{schema}"."{folder.name}" as select * from read_parquet(\'{files}\')')
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
