"""The release step (measures/release.py) on a real DuckDB working database, without dbt: what
readers see, the reuse of unchanged files, pruning, the state a killed build leaves, refusals.

The working database is the publication fixture's (tests/publish_fixture.py: the aggregate marts
and `offflow_events`), written where dbt writes it, `<home>/.build/work.duckdb`. The end-to-end
kills of a real `opte build` are in test_crash_build.py.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from publish_fixture import make_warehouse  # noqa: E402
from warehouse_compare import marts_differences  # noqa: E402

from measures import locks, release  # noqa: E402
from measures.config import snapshots_dir, warehouse_path, work_database_path  # noqa: E402
from measures.errors import OpteError  # noqa: E402


def built_home(tmp_path: Path) -> Path:
    """A home with its first build released: the fixture's marts, written where dbt writes them."""
    home = tmp_path / "home"
    make_warehouse(tmp_path / "made")

    def dbt_builds(_con):
        pass

    with locks.warehouse_lock(home, shared=False, who="test"):
        release.begin(home)  # no working database yet: nothing to remove
        os.replace(tmp_path / "made" / "warehouse.duckdb", work_database_path(home))
    do_release(home, dbt_builds, begin=False)
    return home


def do_release(home: Path, dbt=None, begin: bool = True) -> dict:
    """Begin a build, let `dbt(con)` change the working database, release it."""
    with locks.warehouse_lock(home, shared=False, who="test"):
        if begin:
            release.begin(home)
        if dbt is not None:
            con = duckdb.connect(str(work_database_path(home)))
            try:
                dbt(con)
            finally:
                con.close()
        return release.release(home, {"fingerprint": "f"})


def rows(db: Path, sql: str) -> list[tuple]:
    """`sql` on `db`, opened afresh (attached, so never a connection this process already holds)."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{db}' as db (read_only)")
        con.execute("use db")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def columns(db: Path, schema: str) -> list[tuple]:
    return rows(db, "select table_name, column_name, data_type, ordinal_position from information_schema.columns "
                    f"where table_schema = '{schema}' order by 1, 4")


def test_the_catalog_shows_every_released_relation_as_dbt_built_it(tmp_path):
    home = built_home(tmp_path)
    record = release.current_record(home)
    work, catalog = work_database_path(home), warehouse_path(home)
    assert columns(catalog, "marts") == columns(work, "marts") != []  # names, order and types
    assert columns(catalog, "intermediate") == columns(work, "intermediate")
    assert marts_differences(work, catalog) == []  # the same marts, cell for cell, as multisets
    assert rows(catalog, "select distinct table_type from information_schema.tables "
                         "where table_schema = 'marts'") == [("VIEW",)]
    # the record is in the catalog and in build_info.json, completed, naming its snapshot
    assert release.current_record(home) == json.loads((home / "build_info.json").read_text()) == record
    assert record["completed"] is True and Path(record["snapshot"]).parent == snapshots_dir(home)
    assert catalog.stat().st_size < 2 * 2**20  # a small catalog, not a copy of the marts


def test_unchanged_partitions_are_linked_and_changed_ones_written(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "PARTITION_MIN_ROWS", 10)  # split the fixture's tables by month
    home = built_home(tmp_path)
    first = release.current_record(home)
    month = rows(work_database_path(home), "select max(offflow_month) from marts.offflow_events")[0][0]
    second = do_release(home, lambda con: con.execute(
        "update marts.offflow_events set points = points + 1 where offflow_month = ?", [month]))
    index = json.loads((Path(second["snapshot"]) / "_index.json").read_text())
    events = index["tables"]["marts.offflow_events"]
    assert events["partition_by"] == "offflow_month" and len(events["parts"]) > 3
    old = json.loads((Path(first["snapshot"]) / "_index.json").read_text())["tables"]["marts.offflow_events"]
    for part, entry in events["parts"].items():
        new_file = Path(second["snapshot"]) / entry["files"][0]
        old_entry = old["parts"].get(part)
        linked = old_entry is not None and os.path.samefile(Path(first["snapshot"]) / old_entry["files"][0], new_file)
        assert linked == (part != str(month)), part  # only the changed month was written again
    assert second["release"]["files_written"] >= 1 and second["release"]["files_linked"] > 0
    got = rows(warehouse_path(home), f"select sum(points) from marts.offflow_events where offflow_month = '{month}'")
    want = rows(work_database_path(home), f"select sum(points) from marts.offflow_events where offflow_month = '{month}'")
    assert got == want


def test_a_reader_keeps_its_build_and_old_snapshots_go_after_the_next_but_one(tmp_path):
    home = built_home(tmp_path)
    first = release.current_record(home)
    reader = duckdb.connect(str(warehouse_path(home)), read_only=True)  # an analyst, left open
    before = reader.execute("select count(*), sum(offflows) from marts.opte_monthly").fetchone()
    # the analyst's connection does not stand in the way
    second = do_release(home, lambda con: con.execute("update marts.opte_monthly set offflows = offflows + 1"))
    assert reader.execute("select count(*), sum(offflows) from marts.opte_monthly").fetchone() == before
    assert reader.execute("select build_id from opte.build_record").fetchone()[0] == first["build_id"]
    after = rows(warehouse_path(home), "select count(*), sum(offflows) from marts.opte_monthly")[0]
    assert after == (before[0], before[1] + before[0])
    third = do_release(home)
    kept = sorted(p.name for p in snapshots_dir(home).iterdir())
    assert kept == sorted([second["build_id"], third["build_id"]])  # the first is gone
    reader.close()


def test_a_killed_build_leaves_the_working_database_incomplete_and_the_next_refreshes_fully(tmp_path):
    home = built_home(tmp_path)
    with locks.warehouse_lock(home, shared=False, who="test"):
        state = release.begin(home)  # a build starts ... and is killed before its release
    assert state["full_refresh"] is False and release.work_state(home)["completed"] is False
    with locks.warehouse_lock(home, shared=False, who="test"):
        again = release.begin(home)
    assert again["full_refresh"] is True and "did not complete" in again["full_refresh_reason"]
    assert state["build_id"] in again["full_refresh_reason"]
    assert not work_database_path(home).exists()  # the next dbt build starts from an empty file
    assert release.current_record(home)["completed"] is True  # readers still have the released build


def test_publication_refuses_a_warehouse_whose_build_did_not_complete_in_one_line(tmp_path):
    home = built_home(tmp_path)
    catalog = warehouse_path(home)
    con = duckdb.connect(str(catalog))
    record = json.loads(con.execute("select record from opte.build_record").fetchone()[0])
    con.execute("update opte.build_record set completed = false, record = ?",
                [json.dumps({**record, "completed": False})])
    con.close()
    with pytest.raises(OpteError, match="from a build that did not complete") as exc:
        release.check_complete(home)
    assert "\n" not in str(exc.value) and "run `opte build`" in str(exc.value)


def test_a_copied_home_is_repointed_to_its_own_snapshot(tmp_path):
    home = built_home(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns(".*.lock"))
    shutil.rmtree(home)
    with pytest.raises(OpteError, match="is gone"):
        release.check_complete(copy)
    release.repoint(copy)
    assert Path(release.check_complete(copy)["snapshot"]).parent == snapshots_dir(copy)
    assert rows(warehouse_path(copy), "select count(*) from marts.opte_monthly")[0][0] > 0


def test_release_and_begin_need_the_warehouse_lock(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(RuntimeError, match="warehouse lock"):
        release.begin(home)
    with pytest.raises(RuntimeError, match="warehouse lock"):
        release.release(home, {})
