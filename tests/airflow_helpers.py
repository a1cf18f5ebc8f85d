"""Helpers shared by the Airflow tests (tests/test_dags.py, tests/test_airflow_local.py).

Airflow runs in subprocesses with its own AIRFLOW_HOME, so the test process never imports
Airflow's configuration.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent
SAMPLE = REPO / "data_samples" / "inbox"


def airflow_env(airflow_home: Path, opte_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPTE_AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        # a fresh home parses the dbt project when the DAG file is imported (Cosmos's manifest):
        # about 15 s, more than Airflow's default 30 s import timeout on a busy shared machine
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "OPTE_HOME": str(opte_home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    })
    return env


def run(cmd: list[str], env: dict, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise AssertionError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{tail}")
    return proc


def shift(month: str, n: int) -> str:
    y, m = map(int, month.split("-"))
    i = y * 12 + m - 1 + n
    return f"{i // 12}-{i % 12 + 1:02d}"


def inbox_cutoff(inbox: Path) -> str:
    """The month of the data cut-off the inbox will give (MEASURES.md section 9), from its file
    names: the earliest, over the incremental datasets, of the latest extract date."""
    latest = []
    for dataset in ("benefit_claims", "customers", "tax_employments", "programme_starts"):
        dates = [m.group(1) for p in (inbox / dataset).iterdir() if (m := re.search(r"_(\d{8})\.", p.name))]
        latest.append(max(dates))
    d = min(latest)
    return f"{d[:4]}-{d[4:6]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dbt_invocations(home: Path) -> list[str]:
    """The dbt commands the DAG ran on `home` (scripts/dbt_locked.sh lists each one)."""
    log = home / "dbt" / "logs" / "invocations.log"
    return log.read_text().splitlines() if log.exists() else []


def dbt_subcommand(line: str) -> tuple[str, bool]:
    """('build' | 'run' | 'test' ..., whether it selects nodes) of one invocations.log line."""
    words = line.split(" dbt ", 1)[1].split()
    return words[0], "--select" in words


def task_states(env: dict, run_id: str) -> dict[str, str]:
    """task_id -> state of one DAG run, from the Airflow command line."""
    out = run([str(BIN / "airflow"), "tasks", "states-for-dag-run", "opte_monthly", run_id, "-o", "json"], env).stdout
    for line in reversed(out.splitlines()):  # the JSON is one line among the log lines
        if line.startswith("["):
            return {t["task_id"]: t["state"] for t in json.loads(line)}
    raise AssertionError(f"no JSON in states-for-dag-run output: {out[-1000:]}")
