"""Where things live and what made them: the pipeline's home folder and code version.

Every output records the code version (`code_version()`); every command resolves
its home folder the same way (`resolve_home()`): `--home`, else `OPTE_HOME`, else
`./.opte_home` under the current directory.
"""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SAMPLE_INBOX = REPO_ROOT / "data_samples" / "inbox"

DATASETS_INCREMENTAL = ("benefit_claims", "customers", "tax_employments", "programme_starts")
DATASETS_SNAPSHOT = ("offices", "disadvantaged_areas", "opte_targets")
DATASETS = DATASETS_INCREMENTAL + DATASETS_SNAPSHOT


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The folder holding lake/, warehouse.duckdb and publish/ (created if missing)."""
    chosen = home or os.environ.get("OPTE_HOME") or Path.cwd() / ".opte_home"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def lake_dir(home: Path) -> Path:
    return home / "lake"


def warehouse_path(home: Path) -> Path:
    """What readers open: a small catalog of views over the released snapshot (measures.release)."""
    return home / "warehouse.duckdb"


def work_dir(home: Path) -> Path:
    """The build's private folder: dbt's target database and its state (measures.release)."""
    return home / ".build"


def work_database_path(home: Path) -> Path:
    """dbt's target database: every model, incremental state included; only builds open it."""
    return work_dir(home) / "work.duckdb"


def snapshots_dir(home: Path) -> Path:
    """The released, immutable snapshots: `<home>/snapshots/<build_id>/<schema>/<table>/*.parquet`."""
    return home / "snapshots"


def publish_dir(home: Path) -> Path:
    return home / "publish"


@functools.cache
def code_version() -> str:
    """The git commit of the code (with `-dirty` for uncommitted changes), else the package version."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version
        try:
            return "opte-pipeline " + version("opte-pipeline")
        except PackageNotFoundError:
            return "unknown"
