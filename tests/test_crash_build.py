"""Crash test of `opte build` (issue 10): SIGKILL at several points, then read, publish and rerun.

The home holds the bundled sample, and a previous build released from it whose every mart
differs from the sample's (one row of each taken out before it was released), so a warehouse
that mixed the two builds would show. Then `opte build` runs and is killed with SIGKILL at
points chosen by watching what the build does (dbt's log, the release's files), never by
sleeping: the whole process group early in the models, the `opte` process alone once dbt has
created `marts.offflow_events` (some marts new, some not yet: the kill of issue 10), and the
`opte` process alone while the release writes its snapshot (with `OPTE_CRASH_EACH=1` also the
group once `marts.opte_monthly` is created, every other mart new). After each kill:

- no dbt survives and no lock is left (the next build needs the working database to itself);
- a reader opens `warehouse.duckdb` and finds every mart from one build: the previous one
  (before the release swapped the catalog in), or the new one;
- `opte publish` publishes the build the reader saw, naming its build id, consistently with its
  marts (or refuses in one line);
- the rerun finds the working database incomplete and refreshes fully.

The kills are chained to keep the test to a few minutes: the rerun after each kill is the build
killed at the next point, and the last rerun runs to the end and must equal, mart by mart and
cell by cell, the sample built without interruption (the session's `sample_built_home`). With
`OPTE_CRASH_EACH=1` every kill gets its own uninterrupted rerun, each compared cell for cell
(one more build per kill; the previous build is released again before the next kill). The count
of converged reruns is printed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from home_processes import alive, children, error_lines, kill_quietly, opte, start_opte  # noqa: E402
from warehouse_compare import marts_differences  # noqa: E402

from measures import locks, release  # noqa: E402
from measures.build import build_record  # noqa: E402
from measures.config import warehouse_path, work_database_path  # noqa: E402

pytestmark = pytest.mark.slow

MONTH = "2011-03"


# ---------------------------------------------------------------- what a reader sees


def mart_signatures(db: Path) -> dict[str, str]:
    """{mart: row count and order-independent content hash} of every table or view in schema marts."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'marts' order by 1").fetchall()]
        return {n: "{}:{}".format(*con.execute(f"select count(*), cast(sum(hash(t)) as varchar) "
                                                f"from marts.{n} as t").fetchone()) for n in names}
    finally:
        con.close()


def record_of(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return json.loads(con.execute("select record from opte.build_record").fetchone()[0])
    finally:
        con.close()


# ---------------------------------------------------------------- the home and its previous build


def release_a_previous_build(home: Path) -> None:
    """Release, as the home's current warehouse, its working database with the first row of every
    mart taken out: a previous build in which every mart differs from the sample's."""
    con = duckdb.connect(str(work_database_path(home)))
    try:
        for (name,) in con.execute("select table_name from information_schema.tables where table_schema = 'marts' "
                                   "and table_type = 'BASE TABLE'").fetchall():
            con.execute(f"delete from marts.{name} where rowid = (select min(rowid) from marts.{name})")
    finally:
        con.close()
    with locks.warehouse_lock(home, shared=False, who="test"):
        release.begin(home)
        release.release(home, build_record(home, None))


@pytest.fixture
def crash_home(sample_built_home, copy_home):
    """The sample's home whose warehouse is a previous build in which every mart differs."""
    home = copy_home(sample_built_home)
    release_a_previous_build(home)
    return home


# ---------------------------------------------------------------- kill points


def log_position(home: Path) -> tuple[int, int]:
    """(inode, size) of dbt's log now: where this build's lines start."""
    path = home / "dbt" / "logs" / "dbt.log"
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_ino, st.st_size)


def _log_after(home: Path, start: tuple[int, int]) -> str:
    """dbt's log since `start`, across a rotation (dbt moves a full dbt.log to dbt.log.1)."""
    logs = home / "dbt" / "logs"
    text = b""
    for path in (logs / "dbt.log.1", logs / "dbt.log"):
        try:
            with open(path, "rb") as handle:
                ino = os.fstat(handle.fileno()).st_ino
                if ino == start[0]:
                    handle.seek(start[1])
                elif path.name == "dbt.log.1":
                    continue  # an older rotation: none of this build's lines
                text += handle.read()
        except FileNotFoundError:
            continue
    return text.decode("utf-8", "replace")


def dbt_log_shows(pattern: str):
    regex = re.compile(pattern)

    def reached(home: Path, start: tuple[int, int]) -> bool:
        return bool(regex.search(_log_after(home, start)))
    return reached


def release_writing(home: Path, start: tuple[int, int]) -> bool:
    """The release has begun its snapshot (its half-written folder exists) and not swapped yet."""
    return any(p.name.endswith(".tmp") for p in (home / "snapshots").glob(".*"))


KILLS = [  # (name, what to wait for, whom to kill)
    ("early in the models", dbt_log_shows(r"OK created sql table model intermediate\.int_data_cutoff"), "group"),
    ("offflow_events created", dbt_log_shows(r"OK created sql table model marts\.offflow_events"), "parent"),
    ("opte_monthly created", dbt_log_shows(r"OK created sql table model marts\.opte_monthly"), "group"),
    ("while releasing", release_writing, "parent"),
]
CHAINED = ("early in the models", "offflow_events created", "while releasing")  # the default run's kills


def build_killed_at(home: Path, reached, victim: str, timeout: float = 600) -> tuple[str, bool]:
    """Start `opte build`, SIGKILL it (its group, or the `opte` process alone) once `reached`;
    returns its stderr and whether the kill came before the build ended by itself."""
    start = log_position(home)
    build = start_opte(home, "build")
    deadline = time.monotonic() + timeout
    killed = False
    dbt_pids: set[int] = set()
    try:
        while time.monotonic() < deadline and build.poll() is None:
            dbt_pids.update(p for p in children(build.pid))
            if reached(home, start):
                if victim == "group":
                    os.killpg(build.pid, signal.SIGKILL)
                else:
                    os.kill(build.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
        _, err = build.communicate(timeout=60)
    finally:
        kill_quietly(build.pid)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in dbt_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in dbt_pids), "a child of the killed build is still running"
    assert build.returncode == -signal.SIGKILL or not killed, err
    return err, killed and build.returncode == -signal.SIGKILL


def check_after_kill(home: Path, previous: dict, new: dict, name: str) -> str:
    """A reader finds every mart of one build; publish publishes that build or refuses in one line.
    Returns which build the warehouse holds ("previous" or "new")."""
    assert locks.holders(work_database_path(home)) == [] and locks.holders(home / ".warehouse.lock") == []
    seen = mart_signatures(warehouse_path(home))
    matches = [label for label, sig in (("previous", previous), ("new", new)) if seen == sig]
    assert matches, f"{name}: the warehouse's marts are not those of one build: " + ", ".join(
        f"{m}: {'previous' if s == previous.get(m) else 'new' if s == new.get(m) else 'neither'}" for m, s in seen.items())
    held = matches[0]
    record = record_of(warehouse_path(home))
    assert record["completed"] is True

    proc = opte(home, "publish", "--month", MONTH)
    if proc.returncode == 0:
        manifest = json.loads((home / "publish" / MONTH / "manifest.json").read_text())
        assert manifest["build"]["build_id"] == record["build_id"], name
        national = (home / "publish" / MONTH / "opte_national.csv").read_text().splitlines()
        con = duckdb.connect(str(warehouse_path(home)), read_only=True)
        try:
            offflows = con.execute("select offflows from marts.opte_monthly where level = 'national' "
                                   "and month = date '2011-03-01'").fetchone()[0]
        finally:
            con.close()
        header = national[0].split(",")
        row = dict(zip(header, next(ln for ln in national[1:] if ln.split(",")[header.index("month")] == "2011-03-01")
                       .split(",")))
        assert int(row["offflows"]) == offflows, name  # the published figures are the warehouse's
    else:
        assert proc.returncode == 2 and len(error_lines(proc.stderr, "publish")) == 1, proc.stderr
    return held


def test_killed_builds_leave_one_build_readable_and_a_rerun_converges(crash_home, sample_built_home, capsys):
    home = crash_home
    previous = mart_signatures(warehouse_path(home))
    new = mart_signatures(warehouse_path(sample_built_home))
    assert all(previous[m] != new[m] for m in new), "every mart of the previous build must differ"
    each = os.environ.get("OPTE_CRASH_EACH") == "1"
    kills = KILLS if each else [k for k in KILLS if k[0] in CHAINED]
    outcomes, converged, reruns = [], 0, 0

    for i, (name, reached, victim) in enumerate(kills):
        if each and i > 0:  # the rerun released the new build: make the previous one current again
            release_a_previous_build(home)
            previous = mart_signatures(warehouse_path(home))
        err, killed = build_killed_at(home, reached, victim)
        if i > 0 and not each:  # a build after a kill starts from an empty working database
            assert "full refresh: the previous build" in err, err
        assert killed, f"{name}: the build ended before the kill point was seen: {err[-500:]}"
        held = check_after_kill(home, previous, new, name)
        if name != "while releasing":
            assert held == "previous", f"{name}: a killed build was released"
        assert release.work_state(home)["completed"] is False or held == "new"
        outcomes.append(f"{name} ({victim}): reader sees the {held} build")
        if each:
            reruns += 1
            converged += _rerun_converges(home, sample_built_home)
            shutil.rmtree(home / "publish", ignore_errors=True)

    if not each:
        reruns += 1
        converged += _rerun_converges(home, sample_built_home)
    with capsys.disabled():
        print(f"\ncrash test: {len(kills)} kills; " + "; ".join(outcomes)
              + f"; reruns converged to the uninterrupted build: {converged} of {reruns}")
    assert converged == reruns
    kept = sorted(p.name for p in (home / "snapshots").iterdir())
    assert len(kept) <= 2 and not any(n.startswith(".") for n in kept)  # old and half-written snapshots pruned


def _rerun_converges(home: Path, reference: Path) -> int:
    proc = opte(home, "build")
    assert proc.returncode == 0, proc.stderr
    diff = marts_differences(warehouse_path(home), warehouse_path(reference))
    assert record_of(warehouse_path(home))["completed"] is True
    return int(not diff)
