"""When a build must be a full refresh, and what an incremental build may rely on.

The incremental models of the dbt project keep their state in dbt's target database (whatever
its path): rows of the landed files the previous build read, keyed by file. An incremental build
adds the rows of new files and drops those of files no longer current (a correction replaces its
earlier delivery; an explicit cut-off leaves later files out). That is only equal to a full
refresh when nothing else the state was built from has changed, so a build is a full refresh when:

- it is asked for (`opte build --full-refresh`);
- there is no previous build record, or the previous build did not complete (a killed or failed
  build leaves its incremental tables half-updated): the working database's state
  (`measures.release.work_state`) is not `completed`, or the record says `completed: false`;
- the dbt project changed (models, macros, seeds, vars: any file of it), or dbt or DuckDB did;
- the explicit cut-off (`--cutoff`) differs from the previous build's (null = derived);
- a snapshot dataset (offices, disadvantaged areas, targets) changed: geography and area
  points of everyone depend on it;
- the earliest benefit_claims extract changed (the coverage start, MEASURES.md section 9).

`basis()` is what the build record stores for the next build to compare with.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path

from measures import release
from measures.config import DBT_PROJECT_DIR

SNAPSHOT_DATASETS = ("offices", "disadvantaged_areas", "opte_targets")


def project_files():
    """(relative path, SHA-256) of each file of the dbt project, in order (not target/ or logs/)."""
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(DBT_PROJECT_DIR.rglob("*")):
        rel = path.relative_to(DBT_PROJECT_DIR)
        if path.is_file() and rel.parts[0] not in skip and not rel.name.startswith("."):
            yield rel.as_posix(), hashlib.sha256(path.read_bytes()).digest()


def project_digest() -> str:
    """SHA-256 over the dbt project's files (not target/logs) and the dbt and DuckDB versions."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for rel, file_digest in project_files():
        digest.update(f"{rel}\0".encode())
        digest.update(file_digest)
    for package in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{package}={version(package)}\0".encode())
    return digest.hexdigest()


def basis(extracts: list[dict], cutoff: date | str | None, engine: str = "duckdb") -> dict:
    """What an incremental build relies on being unchanged since the previous build.

    `extracts`: the landed extracts the build reads (LakeSnapshot.extracts(cutoff)); `engine`:
    the dbt target's engine (the working database of one engine is no state for the other).
    """
    claims = sorted(e["extract_date"] for e in extracts if e["dataset"] == "benefit_claims")
    return {
        "project": project_digest(),
        "engine": engine,
        "cutoff_requested": str(cutoff) if cutoff else None,
        "snapshots": sorted(f"{e['dataset']} {e['extract_date']} {e['sha256']}"
                            for e in extracts if e["dataset"] in SNAPSHOT_DATASETS),
        "earliest_benefit_claims": claims[0] if claims else None,
    }


_LABELS = {
    "project": "the dbt project (or dbt / DuckDB) changed",
    "engine": "the engine differs from the previous build's",
    "cutoff_requested": "the explicit cut-off differs from the previous build's",
    "snapshots": "a snapshot dataset (offices, disadvantaged areas, targets) changed",
    "earliest_benefit_claims": "the earliest benefit_claims extract (the coverage start) changed",
}


def full_refresh_reason(home: Path, target_exists: bool, now: dict, requested: bool = False) -> str | None:
    """Why this build must be a full refresh (one phrase), or None when it may be incremental.

    `now`: `basis()` of this build; `target_exists`: whether dbt's target (the working database) exists.
    """
    if requested:
        return "asked for (--full-refresh)"
    if not target_exists:
        return "no previous build"
    state = release.work_state(home)
    if state.get("completed") is not True:
        return (f"the previous build ({state['build_id']}) did not complete" if state.get("build_id")
                else "the working database has no recorded state")
    info_path = Path(home) / "build_info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "no readable record of the previous build"
    if info.get("completed") is False:
        return "the previous build did not complete"
    before = info.get("incremental_basis")
    if not isinstance(before, dict):
        return "the previous build recorded no incremental basis"
    for key, label in _LABELS.items():
        if before.get(key) != now.get(key):
            return label
    return None
