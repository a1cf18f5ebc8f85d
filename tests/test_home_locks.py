"""Landing, building and publishing side by side on one home (measures.locks), with real processes.

Another process plays each part: a build in progress (holding the lake lock shared and the
warehouse lock with DuckDB's write lock), a landing, a dbt left over from a killed build, an
analyst with a read-only DuckDB connection, a live publisher. The commands under test are the
real `opte` command line. Nothing here runs dbt: every refusal happens before dbt would start.
The end-to-end versions with a real `opte build` are in test_build_processes.py.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from home_processes import error_lines, holding, opte, start_opte  # noqa: E402
from lake_builder import write_extract, write_minimal_lake  # noqa: E402
from landing_fixtures import row, write_csv  # noqa: E402
from publish_fixture import make_warehouse  # noqa: E402

MONTH = "2010-03"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def minimal_home(tmp_path: Path, with_warehouse: bool = True) -> Path:
    home = tmp_path / "home"
    write_minimal_lake(home / "lake")
    if with_warehouse:  # a populated warehouse, as a previous build left it
        import duckdb

        con = duckdb.connect(str(home / "warehouse.duckdb"))
        con.execute("create schema marts; create table marts.opte_monthly as select 1 as offflows")
        con.close()
    return home


def assert_one_clear_line(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr, command)
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == lines[0]  # the last word on stderr
    for fragment in ("Traceback", "^^^", " | ", "usage:"):
        assert fragment not in proc.stderr, proc.stderr
    return lines[0]


def still_running_after(proc: subprocess.Popen, seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


# ------------------------------------------------------------------ what holds the warehouse


def test_build_names_a_leftover_writer_of_the_working_database(tmp_path):
    """A dbt left running by a killed build (here: any process with DuckDB's write lock on the
    build's working database): the build stops before dbt, in one line naming the pid and command
    to stop; nothing changes."""
    home = minimal_home(tmp_path)
    before = sha(home / "warehouse.duckdb")
    (home / ".build").mkdir()
    with holding(duckdb=home / ".build" / "work.duckdb") as stray:
        proc = opte(home, "build")
    line = assert_one_clear_line(proc, "build")
    assert f"pid {stray.pid} (" in line and sys.executable in line and f"kill {stray.pid}" in line
    assert "held open for writing" in line
    assert not (home / "dbt" / "logs" / "dbt.log").exists()  # refused before dbt started
    assert sha(home / "warehouse.duckdb") == before and not (home / "build_info.json").exists()


def test_build_names_a_reader_holding_the_working_database(tmp_path):
    """Someone who opened the build's own database read-only: one line naming them and what to do
    (analysts read warehouse.duckdb, which never stands in a build's way: test_crash_build.py)."""
    home = minimal_home(tmp_path)
    (home / ".build").mkdir()
    import duckdb

    duckdb.connect(str(home / ".build" / "work.duckdb")).close()
    with holding(duckdb=home / ".build" / "work.duckdb", read_only=True) as reader:
        proc = opte(home, "build")
    line = assert_one_clear_line(proc, "build")
    assert f"open read-only in pid {reader.pid} (" in line and "close that connection" in line
    assert "analysts read" in line and "warehouse.duckdb instead" in line
    assert not (home / "dbt" / "logs" / "dbt.log").exists()


def test_build_waits_for_a_build_in_progress_and_names_it(tmp_path):
    """A build holding the warehouse lock (a live one, or one that hangs): a second build waits,
    saying for whom in one line, and goes on when the first lets go."""
    home = minimal_home(tmp_path)
    with holding(flocks=[(home / ".warehouse.lock", False)]) as first:
        second = start_opte(home, "build", "--cutoff", "1990-01-01")  # refused once it gets the locks
        assert still_running_after(second, 3)
    out, err = second.communicate(timeout=60)
    waits = [ln for ln in err.splitlines() if "waits for" in ln]
    assert len(waits) == 1 and f"pid {first.pid} (" in waits[0] and f"kill {first.pid}" in waits[0], err
    assert second.returncode == 2 and "before the landed data" in error_lines(err, "build")[0]


# ------------------------------------------------------------------ landing and building exclude each other


def test_landing_waits_for_a_build_and_says_for_whom(tmp_path):
    """While a build reads the lake (the lake lock held shared), `opte land` waits: nothing it
    lands can mix into that build. It goes on when the build ends."""
    home = tmp_path / "home"
    inbox = tmp_path / "inbox"
    write_csv(inbox, "offices", [row("offices")])
    with holding(flocks=[(home / ".lake.lock", True)]) as build:
        land = start_opte(home, "land", "--inbox", str(inbox))
        assert still_running_after(land, 3)
        assert not (home / "lake" / "_manifests").exists()  # nothing committed while the build runs
    out, err = land.communicate(timeout=60)
    assert land.returncode == 0, err
    waits = [ln for ln in err.splitlines() if "waits for" in ln]
    assert len(waits) == 1 and f"pid {build.pid} (" in waits[0] and "a build reads the lake" in waits[0]
    assert list((home / "lake" / "_manifests" / "offices").glob("*.json"))


def test_build_waits_for_a_landing(tmp_path):
    """A landing holds the lake exclusively: the build waits for it rather than reading a lake that changes."""
    home = minimal_home(tmp_path)
    with holding(flocks=[(home / ".lake.lock", False)]) as landing:
        build = start_opte(home, "build", "--cutoff", "1990-01-01")
        assert still_running_after(build, 3)
    out, err = build.communicate(timeout=60)
    waits = [ln for ln in err.splitlines() if "waits for" in ln]
    assert len(waits) == 1 and f"pid {landing.pid} (" in waits[0] and "a landing is changing the lake" in waits[0]


# ------------------------------------------------------------------ publication beside a build


@pytest.mark.slow  # publishes a month (about 15 s)
def test_publish_waits_for_a_running_build(tmp_path):
    """A build in progress (warehouse lock and DuckDB's write lock held): publish waits, saying so,
    then publishes once the build is done, instead of failing on DuckDB's lock."""
    home = tmp_path / "home"
    make_warehouse(home)
    with holding(flocks=[(home / ".warehouse.lock", False)], duckdb=home / "warehouse.duckdb") as build:
        pub = start_opte(home, "publish", "--month", MONTH)
        assert still_running_after(pub, 3)
    out, err = pub.communicate(timeout=120)
    assert pub.returncode == 0, err
    waits = [ln for ln in err.splitlines() if "waits for" in ln]
    assert len(waits) == 1 and f"pid {build.pid} (" in waits[0] and "the warehouse is being built" in waits[0]
    assert (home / "publish" / MONTH / "manifest.json").exists()


@pytest.mark.slow  # publishes a month (about 15 s)
def test_publish_removes_what_dead_publishers_left_and_spares_a_live_one(tmp_path):
    from measures.housekeeping import remove_publish_leftovers

    home = tmp_path / "home"
    make_warehouse(home)
    dead = [home / "publish" / ".2010-03.tmp-k2j4h1", home / "publish" / "external" / ".2010-02.old-4242",
            home / "publish" / ".2009-12.tmp-zz"]
    for folder in dead:
        (folder / "districts").mkdir(parents=True)
        (folder / "districts" / "D1.xlsx").write_bytes(b"x" * 1000)
    kept = home / "publish" / ".notes"
    kept.write_text("not ours")
    with pytest.raises(RuntimeError, match="needs the publish lock"):
        remove_publish_leftovers(home / "publish")  # without the lock a live publisher may own them
    assert all(f.exists() for f in dead)

    live = home / "publish" / ".2010-04.tmp-live01"
    with holding(flocks=[(home / "publish" / ".publish.lock", False)], mkdirs=[live]):
        pub = start_opte(home, "publish", "--month", MONTH)
        assert still_running_after(pub, 3)
        assert live.exists() and all(f.exists() for f in dead)  # a live publisher's folders are not touched
    out, err = pub.communicate(timeout=120)
    assert pub.returncode == 0, err
    assert not any(f.exists() for f in dead) and not live.exists()  # its holder is gone: debris now
    assert kept.read_text() == "not ours" and (home / "publish" / MONTH / "manifest.json").exists()
    assert sorted(p.name for p in (home / "publish").iterdir()) == [".notes", ".publish.lock", MONTH, "external"]


# ------------------------------------------------------------------ builds that could only be wrong


def test_cutoff_before_any_landed_data_is_refused_and_keeps_the_warehouse(tmp_path):
    home = minimal_home(tmp_path)
    (home / "build_info.json").write_text('{"built_at": "earlier"}')
    before = sha(home / "warehouse.duckdb")
    proc = opte(home, "build", "--cutoff", "1990-01-01")
    line = assert_one_clear_line(proc, "build")
    assert "--cutoff 1990-01-01 is before the landed data: no incremental dataset has an extract" in line
    assert "earliest cut-off with every dataset landed is 2010-03-31" in line
    assert sha(home / "warehouse.duckdb") == before
    assert (home / "build_info.json").read_text() == '{"built_at": "earlier"}'
    assert not (home / "dbt" / "logs" / "dbt.log").exists()


def test_cutoff_before_some_dataset_is_refused_naming_it(tmp_path):
    home = minimal_home(tmp_path)
    for dataset, rows in (("benefit_claims", []), ("customers", []), ("tax_employments", []),
                          ("programme_starts", []), ("offices", []), ("disadvantaged_areas", [])):
        write_extract(home / "lake", dataset, "2009-06-30", rows)
    proc = opte(home, "build", "--cutoff", "2009-12-31")  # opte_targets first landed 2010-03-31
    line = assert_one_clear_line(proc, "build")
    assert ("--cutoff 2009-12-31 is before the landed data: opte_targets has no extract dated on or before it; "
            "the earliest cut-off with every dataset landed is 2010-03-31") in line


def test_build_refuses_a_lake_of_two_pseudonym_keys(tmp_path):
    home = minimal_home(tmp_path)
    for i, path in enumerate(sorted((home / "lake" / "_manifests").glob("*/*.json"))):
        m = json.loads(path.read_text())
        m["key_fingerprint"] = ("a" if i < 3 else "b") * 64
        path.write_text(json.dumps(m))
    proc = opte(home, "build")
    line = assert_one_clear_line(proc, "build")
    assert "mixes person keys of 2 pseudonymisation keys" in line and "aaaaaaaaaaaa" in line
    assert not (home / "dbt" / "logs" / "dbt.log").exists()


def test_lock_holders_are_named_and_waiters_are_not(tmp_path):
    from measures.locks import holders

    lock = tmp_path / ".lake.lock"
    with holding(flocks=[(lock, True)]) as a, holding(flocks=[(lock, True)]) as b:
        waiter = subprocess.Popen([sys.executable, "-c", "import fcntl,sys; h=open(sys.argv[1],'a'); "
                                   "fcntl.flock(h, fcntl.LOCK_EX)", str(lock)])
        try:
            time.sleep(0.5)
            found = holders(lock)
        finally:
            waiter.kill()
            waiter.wait()
    assert [h.pid for h in found] == sorted([a.pid, b.pid])
    assert all(h.mode == "READ" and sys.executable in h.command for h in found)
