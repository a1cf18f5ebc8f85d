"""`opte build`: build and test the warehouse with dbt (models, seeds, data tests, unit tests).

dbt runs as a subprocess so that each build gets a clean dbt state and its own environment
(`OPTE_HOME` points the profile at `<home>/warehouse.duckdb`). DuckDB allows one writing
process per file, so a file lock serialises builds on the same home.
"""
from __future__ import annotations

import fcntl
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


def build(home: Path, cutoff: date | None = None) -> Path:
    """Build and test the warehouse from the landed lake; returns the warehouse path.

    Records what made it in `<home>/build_info.json`: code version, cut-off requested,
    parameters, and the manifests (checksums) of the landed extracts used.
    """
    check_lake_ready(home)
    started = time.monotonic()
    run_dbt(home, ["build"], cutoff)
    info = {
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "cutoff_requested": cutoff.isoformat() if cutoff else None,
        "parameters": measure_parameters(),
        "seconds": round(time.monotonic() - started, 1),
    }
    (home / "build_info.json").write_text(json.dumps(info, indent=2))
    log.info("warehouse built in %.1f s: %s", info["seconds"], warehouse_path(home))
    return warehouse_path(home)
