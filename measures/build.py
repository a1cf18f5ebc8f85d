"""`opte build`: build and test the warehouse with dbt (models, seeds, data tests, unit tests).

dbt runs as a subprocess so that each build gets a clean dbt state and its own environment
(`OPTE_HOME` points the profile at the build's private working database,
`<home>/.build/work.duckdb`); it is started through `measures.dies_with_parent`, so it dies with
the build whatever kills the build. When dbt's models and tests pass, the build is released
(measures.release): readers of `<home>/warehouse.duckdb` go from the whole previous build to the
whole new one in one atomic step, and a failed or killed build leaves them the previous one.

`engine` chooses the dbt target (measures.engines): DuckDB writes `<home>/warehouse.duckdb`
itself; Spark writes the marts as Parquet under `<home>/spark/marts`, after which the build makes
`<home>/warehouse.duckdb` a DuckDB catalog of views over them, so that publication reads either
the same way.

A build holds, for its whole run (measures.locks): the home's warehouse lock exclusively (one
writer; publishers wait for it) and the lake lock shared (no landing commits while it runs).
Under them it takes a `LakeSnapshot`, the landing manifests as they stand, checks it (every
dataset landed within the cut-off, one pseudonym key) and checks that no process outside the
protocol holds DuckDB's lock on the working database (an orphaned dbt, someone who opened it):
those are named in one line rather than met as a dbt traceback. Readers of the warehouse itself
never stand in a build's way. The build record (in the warehouse and `build_info.json`) names
exactly the extracts of the snapshot the build read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import yaml

from measures import engines, locks, refresh, release
from measures.config import (DATASETS, DATASETS_INCREMENTAL, DBT_PROJECT_DIR, code_version, lake_dir,
                             warehouse_path, work_database_path, work_dir)
from measures.errors import OpteError

log = logging.getLogger("opte.build")


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_vars(home: Path, cutoff: date | None) -> dict:
    """The vars a build passes to dbt: where the lake is and the cut-off (null = derived)."""
    return {"lake_root": str(lake_dir(home)), "data_cutoff": cutoff.isoformat() if cutoff else None}


def measure_parameters() -> dict:
    """The measure parameters in force: dbt_project.yml's vars (the spec's defaults)."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return dict(project.get("vars", {}))


def dbt_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPTE_HOME"] = str(home)
    env["OPTE_DBT_PROJECT_DIR"] = str(DBT_PROJECT_DIR)  # the spark target's log4j2.properties
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def dbt_paths(home: Path) -> list[str]:
    """Per-home target and log folders, so that builds of different homes never collide."""
    return ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(home / "dbt" / "target"), "--log-path", str(home / "dbt" / "logs")]


# ---------------------------------------------------------------- the lake a build reads


@dataclass(frozen=True)
class LakeSnapshot:
    """The landing manifests of a home as they stood at one moment: `{relative path: bytes}`."""

    manifests: dict[str, bytes]

    @classmethod
    def take(cls, home: Path) -> "LakeSnapshot":
        root = lake_dir(Path(home)) / "_manifests"
        return cls({f"lake/{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(root.glob("*/*.json"))})

    def parsed(self) -> list[dict]:
        return [json.loads(raw) for raw in self.manifests.values()]

    def extracts(self, cutoff: date | str | None = None) -> list[dict]:
        """The landed extracts a build with `cutoff` reads (all when None), by dataset and date."""
        limit = str(cutoff) if cutoff else None
        out = []
        for m in self.parsed():
            if limit is None or m["extract_date"] <= limit:
                out.append({k: m.get(k) for k in ("dataset", "extract_date", "source_file", "sha256",
                                                  "rows_landed", "rows_quarantined")})
        return sorted(out, key=lambda e: (e["dataset"], e["extract_date"]))

    def key_fingerprints(self) -> dict[str, list[str]]:
        """Pseudonym key fingerprint -> the extracts landed with it (manifests that record one)."""
        out: dict[str, list[str]] = {}
        for m in self.parsed():
            if m.get("key_fingerprint"):
                out.setdefault(m["key_fingerprint"], []).append(f"{m['dataset']} {m['extract_date']}")
        return out


def check_lake_ready(home: Path, snapshot: LakeSnapshot | None = None, cutoff: date | None = None) -> None:
    """Refuse a build that could only give wrong figures, before it touches the warehouse:

    - every dataset needs at least one landed extract (dated on or before the cut-off, when one
      is given: a cut-off before the landed data would make an empty warehouse);
    - every extract must carry person keys of one pseudonymisation key.
    """
    snapshot = snapshot or LakeSnapshot.take(home)
    dates: dict[str, list[str]] = {d: [] for d in DATASETS}
    for m in snapshot.parsed():
        dates.setdefault(m["dataset"], []).append(m["extract_date"])
    missing = [d for d in DATASETS if not dates[d]]
    if missing:
        raise OpteError(f"no landed extract for {', '.join(missing)} under {lake_dir(home)}; "
                        "run `opte land --inbox DIR` first")
    if cutoff is not None:
        limit = cutoff.isoformat()
        before = [d for d in DATASETS if not any(x <= limit for x in dates[d])]
        if before:
            earliest = max(min(dates[d]) for d in DATASETS)
            if all(d in before for d in DATASETS_INCREMENTAL):
                which = "no incremental dataset has an extract"
            else:
                which = f"{', '.join(before)} {'has' if len(before) == 1 else 'have'} no extract"
            raise OpteError(f"--cutoff {limit} is before the landed data: {which} dated on or before it; the "
                            f"earliest cut-off with every dataset landed is {earliest}. Nothing was built and the "
                            "warehouse is unchanged")
    keys = snapshot.key_fingerprints()
    if len(keys) > 1:
        detail = "; ".join(f"key {fp[:12]}: {len(names)} extract(s), e.g. {names[0]}" for fp, names in keys.items())
        raise OpteError(f"the lake under {lake_dir(home)} mixes person keys of {len(keys)} pseudonymisation keys "
                        f"({detail}); its figures would be wrong. Land the retained inbox into a new, empty home "
                        "with one key and build there")


def check_warehouse_free(home: Path) -> None:
    """No process outside our locks may hold DuckDB's lock on the working database when dbt starts.

    Called holding the warehouse lock, so any holder is not a build of this home: an orphaned
    dbt (a writer) or someone who opened the working database (a reader). Named, in one line.
    (Readers of `warehouse.duckdb`, the released catalog, are no concern of a build.)
    """
    path = work_database_path(home)
    found = locks.holders(path)
    if found:
        raise OpteError(warehouse_busy_message(path, found))


def warehouse_busy_message(path: Path, found: list[locks.Holder]) -> str:
    writers = [h for h in found if h.mode == "WRITE"]
    if writers:
        return (f"the working database {path} is held open for writing by {locks.describe(writers)}, outside any "
                "`opte build` of this home: if it is a dbt left over from a killed build, stop it "
                f"(kill {writers[0].pid}), else wait for it to finish; then rerun `opte build`")
    return (f"the working database {path} is open read-only in {locks.describe(found)}; a build needs it to "
            f"itself (analysts read {path.parent.parent / 'warehouse.duckdb'} instead): close that connection "
            f"(or stop pid {found[0].pid}) and rerun `opte build`")


# ---------------------------------------------------------------- running dbt

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STAMP = re.compile(r"^\d\d:\d\d:\d\d(?:\.\d+)?\s+")
_ERROR_LINE = re.compile(r"(?:^|\s)(?:[\w.]*(?:Error|Exception)):\s*(?P<msg>.+)$")
_ERROR_HEADER = re.compile(r"^(?:\w+ )*Error(?: in .*)?$")
_DUCKDB_LOCK = re.compile(r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in '
                          r"(?P<cmd>.+?) \(PID (?P<pid>\d+)\)")


def _failures(run_results: Path) -> list[str]:
    if not run_results.exists():
        return []
    results = json.loads(run_results.read_text()).get("results", [])
    out = []
    for r in results:
        if r.get("status") in ("error", "fail", "runtime error"):
            message = " ".join(str(r.get("message") or "").split())
            out.append(f"{r['unique_id']} ({r['status']}{': ' + message[:200] if message else ''})")
    return out


def dbt_error_line(output: str) -> str:
    """The one line of dbt's console output that says what went wrong (not a traceback's code lines)."""
    lines = [_STAMP.sub("", _ANSI.sub("", ln)).strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln]
    for i in range(len(lines) - 1, -1, -1):
        m = _ERROR_LINE.search(lines[i])
        if m:
            return m["msg"]
        if _ERROR_HEADER.match(lines[i]) and i + 1 < len(lines):
            return f"{lines[i]}: {lines[i + 1]}"
    return lines[-1] if lines else "no output"


def run_dbt(home: Path, args: list[str], cutoff: date | None = None, engine: str = engines.DEFAULT_ENGINE) -> None:
    """Run one dbt command on `home`'s warehouse; raise OpteError naming what failed, in one line.

    Holds the warehouse lock (re-entrant: `build` already holds it) and starts dbt so that it
    dies with this process. `engine` chooses the dbt target.
    """
    dbt = [dbt_executable(), *args, *dbt_paths(home), "--target", engines.dbt_target(engine),
           "--vars", json.dumps(dbt_vars(home, cutoff))]
    cmd = [sys.executable, "-m", "measures.dies_with_parent", str(os.getpid()), *dbt]
    run_results = home / "dbt" / "target" / "run_results.json"
    with locks.warehouse_lock(home, shared=False, who=f"`dbt {' '.join(args[:2])}`"):
        work_dir(home).mkdir(parents=True, exist_ok=True)
        check_warehouse_free(home)
        log.info("running %s", " ".join(dbt[:2]))
        run_results.unlink(missing_ok=True)  # never report the failures of an earlier run
        proc = subprocess.run(cmd, env=dbt_env(home), capture_output=True, text=True)
    log_file = home / "dbt" / "logs" / "dbt.log"
    if proc.returncode != 0:
        output = proc.stdout + "\n" + proc.stderr
        busy = _DUCKDB_LOCK.search(output)
        if busy and Path(busy["path"]) == work_database_path(home):  # a reader came in after the check
            pid = int(busy["pid"])
            mode = "READ" if "read-only mode" in output else "WRITE"
            raise OpteError(warehouse_busy_message(work_database_path(home),
                                                   [locks.Holder(pid, locks.command_of(pid), mode)]))
        failed = _failures(run_results)
        detail = "; ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise OpteError(f"dbt {args[0]} failed: {detail or dbt_error_line(output)}; see {log_file}")


def build_fingerprint(home: Path, cutoff: date | str | None, snapshot: LakeSnapshot | None = None,
                      engine: str = engines.DEFAULT_ENGINE) -> str:
    """What a build's result depends on: the landed manifests, the dbt project's files and the cut-off.

    Two builds with the same fingerprint make the same warehouse (dbt is deterministic given
    its inputs), so the DAG can skip a rebuild, e.g. for the 2nd..nth month of a backfill.
    `snapshot`: the manifests the build read (default: as they are now).
    """
    snapshot = snapshot or LakeSnapshot.take(home)
    digest = hashlib.sha256()
    for rel, raw in snapshot.manifests.items():
        digest.update(f"{rel}\0".encode())
        digest.update(hashlib.sha256(raw).digest())
    for rel, file_digest in refresh.project_files():
        digest.update(f"dbt/{rel}\0".encode())
        digest.update(file_digest)
    digest.update(f"cutoff={cutoff}".encode())  # a date prints as YYYY-MM-DD, like the DAG's param
    if engine != engines.DEFAULT_ENGINE:  # DuckDB builds keep the fingerprints they had before engines
        digest.update(f"engine={engine}".encode())
    return digest.hexdigest()


def build_needed(home: Path, cutoff: date | str | None = None, engine: str = engines.DEFAULT_ENGINE) -> bool:
    """True unless the warehouse exists and its build record has the current fingerprint (which
    includes the engine: a switch of engine rebuilds)."""
    if not warehouse_path(Path(home)).exists():
        return True
    try:
        recorded = release.current_record(Path(home)).get("fingerprint")
    except OpteError:
        return True
    needed = recorded != build_fingerprint(Path(home), cutoff, engine=engine)
    log.info("warehouse %s", "must be rebuilt" if needed else "is up to date with the lake and dbt project: no rebuild")
    return needed


def build_record(home: Path, cutoff: date | str | None, seconds: float | None = None,
                 snapshot: LakeSnapshot | None = None, engine: str = engines.DEFAULT_ENGINE) -> dict:
    """What made the warehouse: code version, cut-off requested, engine, measure parameters, the
    landed extracts read (dataset, extract date, source file, SHA-256) and the build fingerprint
    that lets the DAG skip an unchanged rebuild. `release` adds the build id, `completed` and the
    snapshot, and writes it into the warehouse and `<home>/build_info.json`."""
    snapshot = snapshot or LakeSnapshot.take(home)
    keys = sorted(snapshot.key_fingerprints())
    return {
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "cutoff_requested": str(cutoff) if cutoff else None,
        "engine": engine,
        "parameters": measure_parameters(),
        "seconds": None if seconds is None else round(seconds, 1),
        "fingerprint": build_fingerprint(Path(home), cutoff, snapshot, engine),
        "key_fingerprint": keys[0] if len(keys) == 1 else None,
        "input_extracts": snapshot.extracts(cutoff),
        # what the next build compares to decide whether it may be incremental (measures.refresh)
        "incremental_basis": refresh.basis(snapshot.extracts(cutoff), cutoff, engine),
    }


# unit tests are run by the test suite (tests/test_dbt_unit_tests.py), not by production builds
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


def record_build(home: Path, cutoff: date | str | None, seconds: float | None = None,
                 snapshot: LakeSnapshot | None = None) -> Path:
    """Release the working database that dbt built (the DAG's step after its Cosmos tasks, which
    build it; `opte build` does the same in `build`), with its build record; returns
    `<home>/build_info.json`. Without `snapshot`, the record names the manifests as they are now.
    """
    home = Path(home)
    with locks.warehouse_lock(home, shared=False, who="release"), \
            locks.lake_lock(home, shared=True, who="release"):
        state = release.work_state(home)
        if state.get("completed") and release.current_record(home).get("build_id") == state.get("build_id"):
            log.info("build %s is released already (a retry of the release step)", state["build_id"])
            return home / "build_info.json"
        if state.get("completed") is not False:
            raise OpteError(f"no build of {work_database_path(home)} to release (its state: "
                            f"{'completed, already released' if state else 'none'}); run the dbt build first")
        release.release(home, build_record(home, cutoff, seconds, snapshot))
    return home / "build_info.json"


def _begin(home: Path, snapshot: LakeSnapshot, cutoff: date | str | None, full_refresh: bool,
           engine: str = engines.DEFAULT_ENGINE) -> dict:
    """Decide whether this build is incremental (measures.refresh) and mark the working database as
    being built (measures.release.begin: a full refresh starts from an empty file). Call holding the
    warehouse lock. Returns the working state (`full_refresh_reason` None for an incremental build).
    A Spark build is always a full build: its tables are Parquet, which cannot delete the affected
    persons' rows (docs/ARCHITECTURE.md, "Spark")."""
    reason = refresh.full_refresh_reason(home, work_database_path(home).exists(),
                                         refresh.basis(snapshot.extracts(cutoff), cutoff, engine), full_refresh)
    if engine == "spark":
        reason = reason or "engine spark: every Spark build is a full build"
    log.info("full refresh: %s" if reason else "incremental build%s", reason or "")
    return release.begin(home, reason)


def begin_build(home: Path, cutoff: date | str | None = None, full_refresh: bool = False) -> dict:
    """`_begin` for the DAG (whose Cosmos tasks then run dbt), holding the warehouse lock."""
    home = Path(home)
    with locks.warehouse_lock(home, shared=False, who="begin build"):
        return _begin(home, LakeSnapshot.take(home), cutoff, full_refresh)


def dbt_build_args(state: dict) -> list[str]:
    """`dbt build` without the unit tests (the test suite runs each once: tests/test_dbt_unit_tests.py),
    with `--full-refresh` when the build is one."""
    return BUILD_ARGS + (["--full-refresh"] if state.get("full_refresh") else [])


def build(home: Path, cutoff: date | None = None, full_refresh: bool = False,
          engine: str = engines.DEFAULT_ENGINE) -> Path:
    """Build and test the warehouse from the landed lake on `engine`, then release it; returns the
    warehouse path.

    Incremental when it may be (measures.refresh decides; `full_refresh` forces a full refresh).

    Waits for a running landing, build or publisher of the home (saying so), then reads the lake
    as it stands, which no landing can change until the build ends. dbt builds the working
    database; only when every model and test passed is it released (measures.release), with the
    record of what made it (see `build_record`). A build that fails or is killed leaves readers
    the previous warehouse, and makes the next build a full refresh.
    """
    home = Path(home)
    engines.check_engine(engine)
    if engine == "spark":
        engines.check_spark_ready()
    with locks.warehouse_lock(home, shared=False, who="opte build"), \
            locks.lake_lock(home, shared=True, who="opte build"):
        snapshot = LakeSnapshot.take(home)
        check_lake_ready(home, snapshot, cutoff)
        check_warehouse_free(home)
        started = time.monotonic()
        state = _begin(home, snapshot, cutoff, full_refresh, engine)
        if engine == "spark":
            build_on_spark(home, cutoff)
        else:
            run_dbt(home, dbt_build_args(state), cutoff)
        seconds = time.monotonic() - started
        if LakeSnapshot.take(home) != snapshot:  # only a landing that ignores the lake lock could do this
            raise OpteError(f"the landed manifests under {lake_dir(home)} changed while the warehouse was built; "
                            "the build is not released: run `opte build` again")
        release.release(home, build_record(home, cutoff, seconds, snapshot, engine))
    log.info("warehouse built on %s in %.1f s from %d landed extract(s): %s", engine, seconds,
             len(snapshot.extracts(cutoff)), warehouse_path(home))
    return warehouse_path(home)


def build_on_spark(home: Path, cutoff: date | None = None) -> None:
    """`dbt build --target spark`, then the working database as a DuckDB catalog of views over the
    Parquet marts it wrote (measures.engines.write_marts_catalog), which the release step then
    releases like a DuckDB build's.

    The marts' folders are emptied first: a mart Spark no longer writes must not stay readable.
    """
    marts = engines.spark_marts_dir(home)
    shutil.rmtree(marts, ignore_errors=True)
    log.info("building on Spark (a local Spark session takes a minute to start)")
    # every Spark build is a full build (its Parquet tables cannot delete rows), and it runs the unit
    # tests too: on Spark they check the engine's dispatch macros against the same fixtures
    run_dbt(home, ["build", "--full-refresh"], cutoff, engine="spark")
    engines.write_marts_catalog(home, marts, work_database_path(home))
