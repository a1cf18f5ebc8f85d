"""The Airflow DAG (dags/opte_monthly.py): it imports cleanly, runs end to end on the sample
inbox with `dag.test` (through `airflow dags test`, the command the README documents), and
`airflow backfill create` over three months publishes byte-identical tables to `opte backfill`.

Airflow runs in subprocesses with its own AIRFLOW_HOME (a temporary folder, SQLite), so the
test process never imports Airflow's configuration. The backfill test starts a real API server
and scheduler (LocalExecutor) on free ports in their own process groups, bounded in time, and
stops them by process group id.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent
SAMPLE = REPO / "data_samples" / "inbox"


def airflow_env(airflow_home: Path, opte_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "OPTE_HOME": str(opte_home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def run(cmd: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise AssertionError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{tail}")
    return proc


PARSE_SCRIPT = r"""
import json, time
t = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
seconds = time.monotonic() - t
dag = bag.dags.get("opte_monthly")
out = {"errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
       "seconds": seconds}
if dag is not None:
    out.update({
        "tasks": sorted(t.task_id for t in dag.tasks),
        "pools": {t.task_id: t.pool for t in dag.tasks},
        "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "timetable": type(dag.timetable).__name__,
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "outlets": {t.task_id: [a.name for a in t.outlets] for t in dag.tasks if t.outlets},
        "doc": bool(dag.doc_md),
    })
print("RESULT " + json.dumps(out))
"""


def parse_dags(env: dict) -> dict:
    proc = run([sys.executable, "-c", PARSE_SCRIPT], env, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_dag_folder_imports_without_errors(tmp_path):
    env = airflow_env(tmp_path / "airflow", tmp_path / "home")
    result = parse_dags(env)
    assert result["errors"] == {}
    assert result["dags"] == ["opte_monthly"]
    tasks = result["tasks"]
    dbt_tasks = [t for t in tasks if t.startswith("dbt_build.")]
    assert {"land", "check_build_needed", "record_build", "publish"} <= set(tasks)
    # one task per dbt model and seed, all in the single-writer pool
    assert "dbt_build.opte_monthly_model_build" in dbt_tasks
    assert "dbt_build.offflow_events_model_build" in dbt_tasks
    assert any(t.endswith("_seed_build") for t in dbt_tasks)
    assert all(result["pools"][t] == "opte_warehouse" for t in dbt_tasks)
    assert result["catchup"] is False and result["max_active_runs"] == 1
    assert result["timetable"] == "CronDataIntervalTimetable"
    assert all(r >= 1 for r in result["retries"].values())
    assert result["outlets"] == {"land": ["opte_lake"], "record_build": ["opte_warehouse"],
                                 "publish": ["opte_publication"]}
    assert result["upstream"]["publish"] == ["record_build"]
    assert result["upstream"]["check_build_needed"] == ["land"]
    assert result["doc"]
    print(f"DAG parse time: {result['seconds']:.1f} s")


def test_dag_file_does_no_work_at_import():
    text = (DAGS / "opte_monthly.py").read_text()
    top = text.split("@dag(")[0]
    for heavy in ("import duckdb", "import pandas", "from measures.publish", "from ingest", "publish_month("):
        assert heavy not in top


# ------------------------------------------------------------------ end to end


def prepare_lake(home: Path) -> Path | None:
    """The inbox the DAG will land: the sample when present, else a minimal lake written directly."""
    if SAMPLE.is_dir() and any(SAMPLE.iterdir()) and (REPO / "ingest" / "landing.py").exists():
        return SAMPLE
    from lake_builder import write_minimal_lake

    write_minimal_lake(home / "lake")
    return None


def shift(month: str, n: int) -> str:
    y, m = map(int, month.split("-"))
    i = y * 12 + m - 1 + n
    return f"{i // 12}-{i % 12 + 1:02d}"


def dags_test(env: dict, report_month: str, conf: dict | None = None) -> float:
    """`airflow dags test` for the run whose data interval is `report_month`; returns seconds."""
    started = time.monotonic()
    cmd = [str(BIN / "airflow"), "dags", "test", "opte_monthly", f"{shift(report_month, 1)}-01"]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    proc = run(cmd, env)
    assert "state=success" in proc.stdout + proc.stderr
    return time.monotonic() - started


def inbox_cutoff(inbox: Path) -> str:
    """The data cut-off the inbox will give (MEASURES.md section 9), from its file names:
    the earliest, over the incremental datasets, of the latest extract date."""
    import re

    latest = []
    for dataset in ("benefit_claims", "customers", "tax_employments", "programme_starts"):
        dates = [m.group(1) for p in (inbox / dataset).iterdir()
                 if (m := re.search(r"_(\d{8})\.", p.name))]
        latest.append(max(dates))
    d = min(latest)
    return f"{d[:4]}-{d[4:6]}"


@pytest.fixture(scope="session")
def airflow_run(tmp_path_factory):
    """One monthly DAG run through `airflow dags test`, landing the sample inbox (else a minimal lake)."""
    base = tmp_path_factory.mktemp("airflow_e2e")
    home = base / "home"
    home.mkdir()
    inbox = prepare_lake(home)
    env = airflow_env(base / "airflow", home)
    run([str(BIN / "airflow"), "db", "migrate"], env, timeout=300)
    parse = parse_dags(env)
    # two months before the cut-off's month (the minimal lake: off-flows from 2009-08, cut-off 2010-03-31)
    month = shift(inbox_cutoff(inbox), -2) if inbox else "2009-12"
    seconds = dags_test(env, month, {"inbox": str(inbox)} if inbox else None)
    return {"env": env, "home": home, "month": month, "seconds": seconds, "parse": parse["seconds"],
            "inbox": inbox}


@pytest.mark.slow
def test_monthly_dag_runs_end_to_end(airflow_run):
    home, month = airflow_run["home"], airflow_run["month"]
    folder = home / "publish" / month
    assert (folder / "manifest.json").exists(), f"nothing published for {month}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["report_month"] == month
    assert sorted(p.name for p in (home / "publish").iterdir() if not p.name.startswith(".")) == [month]
    info = json.loads((home / "build_info.json").read_text())
    assert info["fingerprint"] and info["parameters"]
    print(f"dag.test on {'the sample' if airflow_run['inbox'] else 'the minimal lake'}: "
          f"parse {airflow_run['parse']:.1f} s, run {airflow_run['seconds']:.1f} s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowServices:
    """An API server and a scheduler (LocalExecutor) for one test, stopped by process group id."""

    def __init__(self, env: dict, logs: Path):
        api_port, log_port = free_port(), free_port()
        self.env = {
            **env,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "opte-test-only-secret",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            # only the backfill's runs: no run for the latest interval of the cron schedule
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # several processes write the SQLite metadata DB: wait for locks instead of failing
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "airflow_sqlite_settings.CONNECT_ARGS",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")])),
        }
        self.logs = logs
        self.procs: list[subprocess.Popen] = []
        self.api_port = api_port

    def start(self) -> None:
        airflow = str(BIN / "airflow")
        for name, cmd in (("api", [airflow, "api-server", "--port", str(self.api_port), "--workers", "1"]),
                          ("scheduler", [airflow, "scheduler"])):
            out = open(self.logs / f"{name}.log", "w")
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                               cwd=REPO, start_new_session=True))

    def stop(self) -> None:
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def cli(self, *args: str, timeout: int = 300) -> str:
        return run([str(BIN / "airflow"), *args], self.env, timeout=timeout).stdout

    def runs(self) -> list[dict]:
        out = self.cli("dags", "list-runs", "opte_monthly", "-o", "json")
        for line in reversed(out.splitlines()):  # the JSON is one line among the log lines
            if line.startswith("[{") or line.strip() == "[]":
                return json.loads(line)
        raise AssertionError(f"no JSON in list-runs output: {out[-1000:]}")


@pytest.mark.slow
def test_airflow_backfill_matches_opte_backfill(airflow_run, tmp_path):
    """`airflow backfill create` (a real scheduler, bounded in time) == `opte backfill`, byte for byte."""
    from test_publish import table_hashes

    from measures.pipeline import backfill, land

    env, home, month = airflow_run["env"], airflow_run["home"], airflow_run["month"]
    months = [shift(month, -2), shift(month, -1), month]
    services = AirflowServices(env, tmp_path)
    services.cli("dags", "reserialize")
    services.cli("pools", "set", "opte_warehouse", "1", "DuckDB warehouse: one process at a time")
    services.cli("dags", "unpause", "opte_monthly")
    started = time.monotonic()
    # The backfill's runs are created before the scheduler and API server start, so that no two
    # processes write the SQLite metadata DB at once while they are made; the scheduler runs them.
    services.cli("backfill", "create", "--dag-id", "opte_monthly", "--from-date", f"{months[0]}-01",
                 "--to-date", f"{months[-1]}-01", "--max-active-runs", "1")
    services.start()
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                runs = [r for r in services.runs() if r["run_id"].startswith("backfill__")]
            except AssertionError:  # a transient CLI failure (busy SQLite); poll again
                runs = []
                assert time.monotonic() < deadline, "could not list the backfill's runs for 10 minutes"
                time.sleep(5)
                continue
            states = sorted(r["state"] for r in runs)
            if len(runs) == 3 and all(s in ("success", "failed") for s in states):
                break
            assert time.monotonic() < deadline, f"backfill not finished in 10 minutes: {states}"
            time.sleep(5)
    finally:
        services.stop()
    airflow_seconds = time.monotonic() - started
    assert states == ["success"] * 3, (states, (tmp_path / "scheduler.log").read_text()[-3000:])
    # the command line, on its own home landed from the same inbox
    cli_home = tmp_path / "cli_home"
    cli_home.mkdir()
    if airflow_run["inbox"]:
        land(cli_home, airflow_run["inbox"])
    else:
        shutil.copytree(home / "lake", cli_home / "lake")
    # the same publication history as the Airflow home, where `airflow dags test` (airflow_run) had
    # already published `month`: revisions, and the pages and workbooks that show them, compare each
    # publication with the one it replaces, else with the month before
    cli_first = backfill(cli_home, month, month)
    assert [f.name for f in cli_first] == [month]
    folders = backfill(cli_home, months[0], months[-1])
    assert [f.name for f in folders] == months
    for m in months:
        ours, theirs = table_hashes(home / "publish" / m), table_hashes(cli_home / "publish" / m)
        assert ours and ours == theirs, f"{m}: Airflow and opte backfill differ"
    print(f"airflow backfill create of 3 months (scheduler start to finish): {airflow_seconds:.1f} s")
