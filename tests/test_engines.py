"""Choosing the engine: the DuckDB catalog over Parquet marts, what Spark needs, `--engine`.

Fast tests; the Spark build itself is tests/test_spark.py (slow).
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from measures import engines
from measures.errors import OpteError


def _write_mart(folder: Path, sql: str, files: int = 1) -> None:
    folder.mkdir(parents=True)
    con = duckdb.connect()
    for i in range(files):
        con.execute(f"copy ({sql}) to '{folder / f'part-{i:05d}.parquet'}' (format parquet)")
    con.close()


def test_the_catalog_is_a_view_per_mart_over_all_its_files(tmp_path):
    marts = tmp_path / "spark" / "marts"
    _write_mart(marts / "opte_monthly", "select 1 as offflows, date '2010-04-01' as month", files=2)
    _write_mart(marts / "reporting_units", "select 'ALL' as unit_code")
    _write_mart(marts / "int_data_cutoff", "select date '2011-03-31' as data_cutoff")
    (marts / "_SUCCESS").write_text("")  # Spark's marker files are not marts
    (marts / "empty_folder").mkdir()  # a folder without Parquet files is not a mart either

    path = engines.write_marts_catalog(tmp_path)

    assert path == tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    views = con.execute("select schema_name, view_name from duckdb_views() where not internal "
                        "order by 1, 2").fetchall()
    assert views == [("intermediate", "int_data_cutoff"), ("marts", "opte_monthly"), ("marts", "reporting_units")]
    assert con.execute("select count(*), sum(offflows) from marts.opte_monthly").fetchone() == (2, 2)
    assert con.execute("select data_cutoff from intermediate.int_data_cutoff").fetchone()[0] == date(2011, 3, 31)
    con.close()
    assert not list(tmp_path.glob(".warehouse.duckdb.tmp-*"))


def test_a_new_catalog_replaces_the_old_one_whole(tmp_path):
    marts = tmp_path / "spark" / "marts"
    _write_mart(marts / "opte_monthly", "select 1 as offflows")
    engines.write_marts_catalog(tmp_path)
    (marts / "opte_monthly" / "part-00000.parquet").unlink()
    _write_mart(marts / "cohort_offflow_rates", "select 0.5 as offflow_rate")
    engines.write_marts_catalog(tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    names = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
    con.close()
    assert names == ["cohort_offflow_rates"]  # the mart Spark no longer wrote is gone


def test_no_parquet_marts_is_a_clear_error_and_leaves_the_warehouse(tmp_path):
    (tmp_path / "warehouse.duckdb").write_bytes(b"the previous warehouse")
    with pytest.raises(OpteError, match=r"no Parquet marts under .*spark/marts"):
        engines.write_marts_catalog(tmp_path)
    assert (tmp_path / "warehouse.duckdb").read_bytes() == b"the previous warehouse"


def test_an_unknown_engine_is_refused():
    with pytest.raises(OpteError, match="unknown engine 'postgres': choose one of duckdb, spark"):
        engines.dbt_target("postgres")
    assert engines.dbt_target("duckdb") == "local" and engines.dbt_target("spark") == "spark"


def test_without_a_java_runtime_spark_says_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("pyspark", reason="the Spark extra is not installed: the missing-JRE message is not reached")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("OPTE_SPARK_METHOD", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    reason = engines.spark_missing()
    assert reason and "openjdk-17-jre-headless" in reason and "JAVA_HOME" in reason
    with pytest.raises(OpteError, match="cannot build on Spark: no Java runtime .* or build on DuckDB"):
        engines.check_spark_ready()
    monkeypatch.setenv("OPTE_SPARK_METHOD", "thrift")  # a cluster: no local JVM needed
    assert engines.spark_missing() is None


def test_an_old_java_is_named(tmp_path, monkeypatch):
    pytest.importorskip("pyspark", reason="the Spark extra is not installed")
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.delenv("OPTE_SPARK_METHOD", raising=False)
    assert engines.spark_missing() == (f"Spark 4 needs Java 17 or later; {java} is Java 11: install "
                                       "openjdk-17-jre-headless or set JAVA_HOME")


def test_opte_build_engine_is_checked_by_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "measures.cli", "--home", str(tmp_path), "build",
                           "--engine", "oracle"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid choice: 'oracle'" in proc.stderr


def test_a_spark_build_has_its_own_fingerprint(tmp_path):
    """Switching engine rebuilds (the DAG and `build_needed` compare fingerprints); a DuckDB build
    keeps the fingerprint it had before there were engines."""
    from measures.build import build_fingerprint, build_needed

    manifests = tmp_path / "lake" / "_manifests" / "offices"
    manifests.mkdir(parents=True)
    (manifests / "2008-04-30.json").write_text(json.dumps({"dataset": "offices", "extract_date": "2008-04-30"}))
    duck = build_fingerprint(tmp_path, None)
    assert build_fingerprint(tmp_path, None, engine="duckdb") == duck
    spark = build_fingerprint(tmp_path, None, engine="spark")
    assert spark != duck
    import duckdb

    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()  # a warehouse without a catalog record:
    (tmp_path / "build_info.json").write_text(json.dumps({"fingerprint": spark}))  # its record is this
    assert not build_needed(tmp_path, engine="spark")
    assert build_needed(tmp_path, engine="duckdb")
