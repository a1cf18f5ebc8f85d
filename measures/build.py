"""`opte build`: build and test the warehouse with dbt (models, seeds, data tests, unit tests).

dbt runs as a subprocess so that each build gets a clean dbt state and its own environment
(`OPTE_HOME` points the profile at `<home>/warehouse.duckdb`). DuckDB allows one writing
process per file, so a file lock serialises builds on the same home.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import yaml

from measures.config import DATASETS, DBT_PROJECT_DIR, code_version, lake_dir, warehouse_path
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
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def dbt_paths(home: Path) -> list[str]:
    """Per-home target and log folders, so that builds of different homes never collide."""
    return ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(home / "dbt" / "target"), "--log-path", str(home / "dbt" / "logs")]


def check_lake_ready(home: Path) -> None:
    """Every dataset needs at least one landed extract before the warehouse can be built."""
    manifests = lake_dir(home) / "_manifests"
    missing = [d for d in DATASETS if not any((manifests / d).glob("*.json"))]
    if missing:
        raise OpteError(f"no landed extract for {', '.join(missing)} under {lake_dir(home)}; "
                        "run `opte land --inbox DIR` first")


@contextmanager
def warehouse_lock(home: Path):
    """Hold an exclusive lock on the home's warehouse for the duration of a dbt process."""
    lock_path = home / ".warehouse.lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another build on %s to finish", home)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _failures(run_results: Path) -> list[str]:
    if not run_results.exists():
        return []
    results = json.loads(run_results.read_text()).get("results", [])
    return [f"{r['unique_id']} ({r['status']})" for r in results
            if r.get("status") in ("error", "fail", "runtime error")]


def run_dbt(home: Path, args: list[str], cutoff: date | None = None) -> None:
    """Run one dbt command on `home`'s warehouse; raise OpteError naming what failed."""
    cmd = [dbt_executable(), *args, *dbt_paths(home), "--vars", json.dumps(dbt_vars(home, cutoff))]
    log.info("running %s", " ".join(cmd[:2]))
    with warehouse_lock(home):
        proc = subprocess.run(cmd, env=dbt_env(home), capture_output=True, text=True)
    log_file = home / "dbt" / "logs" / "dbt.log"
    if proc.returncode != 0:
        failed = _failures(home / "dbt" / "target" / "run_results.json")
        detail = "; ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        if not detail:
            tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-3:]
            detail = " | ".join(tail)
        raise OpteError(f"dbt {args[0]} failed: {detail}; see {log_file}")


def build_fingerprint(home: Path, cutoff: date | str | None) -> str:
    """What a build's result depends on: the landed manifests, the dbt project's files and the cut-off.

    Two builds with the same fingerprint make the same warehouse (dbt is deterministic given
    its inputs), so the DAG can skip a rebuild, e.g. for the 2nd..nth month of a backfill.
    """
    digest = hashlib.sha256()
    for path in sorted((lake_dir(home) / "_manifests").glob("*/*.json")):
        digest.update(f"lake/{path.parent.name}/{path.name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(DBT_PROJECT_DIR.rglob("*")):
        rel = path.relative_to(DBT_PROJECT_DIR)
        if path.is_file() and rel.parts[0] not in skip and not rel.name.startswith("."):
            digest.update(f"dbt/{rel.as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(f"cutoff={cutoff}".encode())  # a date prints as YYYY-MM-DD, like the DAG's param
    return digest.hexdigest()


def build_needed(home: Path, cutoff: date | str | None = None) -> bool:
    """True unless the warehouse exists and its build_info.json records the current fingerprint."""
    info_path = Path(home) / "build_info.json"
    if not warehouse_path(Path(home)).exists() or not info_path.exists():
        return True
    try:
        recorded = json.loads(info_path.read_text()).get("fingerprint")
    except json.JSONDecodeError:
        return True
    needed = recorded != build_fingerprint(Path(home), cutoff)
    log.info("warehouse %s", "must be rebuilt" if needed else "is up to date with the lake and dbt project: no rebuild")
    return needed


def record_build(home: Path, cutoff: date | str | None, seconds: float | None = None) -> Path:
    """Write `<home>/build_info.json`: what made the warehouse (code version, cut-off requested,
    measure parameters) and the build fingerprint that lets the DAG skip an unchanged rebuild.

    Called by `build` and by the DAG after its Cosmos tasks built the warehouse.
    """
    info = {
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "cutoff_requested": str(cutoff) if cutoff else None,
        "parameters": measure_parameters(),
        "seconds": None if seconds is None else round(seconds, 1),
        "fingerprint": build_fingerprint(Path(home), cutoff),
    }
    path = Path(home) / "build_info.json"
    path.write_text(json.dumps(info, indent=2))
    return path


def build(home: Path, cutoff: date | None = None) -> Path:
    """Build and test the warehouse from the landed lake; returns the warehouse path.

    Records what made it in `<home>/build_info.json` (see `record_build`).
    """
    check_lake_ready(home)
    started = time.monotonic()
    run_dbt(home, ["build"], cutoff)
    seconds = time.monotonic() - started
    record_build(home, cutoff, seconds)
    log.info("warehouse built in %.1f s: %s", seconds, warehouse_path(home))
    return warehouse_path(home)
