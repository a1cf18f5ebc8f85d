"""The local deployment (scripts/airflow_local.sh) as engineers run it: PostgreSQL as Airflow's
database, LocalExecutor, scheduler, DAG processor, triggerer and API server.

One test, end to end, through the deployment's own command and Airflow's REST API: start it
from nothing; the scheduler runs one month of the sample, whose inbox appears only after the
first try of `land` (the task is retried and lands it); the watchers wait in the triggerer; task
logs are read through the API server; then a three-month backfill runs while the scheduler is
up, and the four publications are byte-identical (manifests aside) to `opte backfill`; a file
that landing rejects stops a run with an alert; a component killed is restarted; finally
everything stops, by the pid files, and no process is left.

The scheduler's own cron runs are switched off (AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False): on
a real calendar they would be for last month, years after the sample ends. The month is
triggered through the API instead, which is what the UI's Trigger button does; the scheduler
and the executor do the rest.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from airflow_helpers import (  # noqa: E402
    REPO, SAMPLE, dbt_invocations, dbt_subcommand, free_port, inbox_cutoff, shift,
)

SCRIPT = REPO / "scripts" / "airflow_local.sh"
MARKER = "OPTE_AIRFLOW_DEPLOYMENT"  # scripts/airflow_local.py sets it in every process it starts


class Api:
    """Airflow's REST API (v2) as the admin user of the simple auth manager."""

    def __init__(self, port: int, password: str):
        self.base = f"http://127.0.0.1:{port}"
        token = self._call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        self.token = token["access_token"]

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def get(self, path: str):
        return self._call("GET", "/api/v2" + path)

    def post(self, path: str, body: dict):
        return self._call("POST", "/api/v2" + path, body)

    def patch(self, path: str, body: dict):
        return self._call("PATCH", "/api/v2" + path, body)

    @staticmethod
    def q(part: str) -> str:
        return urllib.parse.quote(part, safe="")

    def run(self, run_id: str) -> dict:
        return self.get(f"/dags/opte_monthly/dagRuns/{self.q(run_id)}")

    def task(self, run_id: str, task_id: str) -> dict:
        return self.get(f"/dags/opte_monthly/dagRuns/{self.q(run_id)}/taskInstances/{self.q(task_id)}")

    def tasks(self, run_id: str) -> dict[str, dict]:
        # page through: the API caps a page at [api] maximum_page_limit (100 by default)
        found: dict[str, dict] = {}
        offset = 0
        while True:
            out = self.get(f"/dags/opte_monthly/dagRuns/{self.q(run_id)}/taskInstances"
                           f"?limit=100&offset={offset}")
            page = out["task_instances"]
            found.update({t["task_id"]: t for t in page})
            offset += len(page)
            if not page or offset >= out["total_entries"]:
                return found

    def log(self, run_id: str, task_id: str, try_number: int) -> str:
        out = self.get(f"/dags/opte_monthly/dagRuns/{self.q(run_id)}/taskInstances/{self.q(task_id)}"
                       f"/logs/{try_number}?full_content=true")
        # structured entries: the message in `event`, an exception in `error_detail`
        return "\n".join(f"{e.get('event', '')} {json.dumps(e.get('error_detail', ''))}" if isinstance(e, dict)
                         else str(e) for e in out["content"])


def wait_for(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (urllib.error.URLError, OSError, KeyError):  # the API server busy or restarting
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(every)


def wait_for_runs(api: Api, run_ids: list[str], timeout: float) -> dict[str, str]:
    def done():
        states = {r: api.run(r)["state"] for r in run_ids}
        return states if all(s in ("success", "failed") for s in states.values()) else None
    return wait_for(f"runs {run_ids}", done, timeout)


def deployment_processes(state: Path) -> list[str]:
    """Every live process that belongs to the deployment: its marker in the environment, or its
    folder on the command line (PostgreSQL's processes)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            cmdline = " ".join(proc.cmdline())
            if proc.environ().get(MARKER) == str(state) or str(state) in cmdline:
                found.append(f"{proc.pid} {cmdline[:200]}")
        except (psutil.Error, OSError):
            continue
    return found


def have_postgresql() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb") is not None


@pytest.mark.slow
def test_local_deployment_runs_a_month_and_a_backfill_like_opte_backfill(tmp_path, request, copy_home):
    if os.geteuid() != 0 and not have_postgresql():
        pytest.skip("PostgreSQL is not installed and the test is not root (the script installs it as root)")
    from test_publish import table_hashes

    from measures.pipeline import backfill

    # PostgreSQL runs as user postgres when we are root: its folder must be reachable (pytest's
    # tmp_path is not, under /tmp/pytest-of-root, mode 0700)
    state = Path(tempfile.mkdtemp(prefix="opte-airflow-")) / "deployment"
    state.parent.chmod(0o711)
    home = tmp_path / "deployment_home"
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPTE_AIRFLOW"))}
    env.update({
        "OPTE_AIRFLOW_DIR": str(state), "OPTE_HOME": str(home),
        "AIRFLOW__API__PORT": str(api_port), "OPTE_AIRFLOW_PG_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "OPTE_RETRY_DELAY_SECONDS": "6",
    })
    month = inbox_cutoff(SAMPLE)  # the sample's last month
    months = [shift(month, -3), shift(month, -2), shift(month, -1)]
    times: dict[str, float] = {}

    def script(command: str, timeout: int = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)

    started = time.monotonic()
    try:
        proc = script("start")
        times["start"] = time.monotonic() - started
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        status = script("status")
        assert status.returncode == 0, status.stdout + status.stderr
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            assert f"running, pid" in [ln for ln in status.stdout.splitlines() if ln.startswith(component)][0]
        assert "postgresql    running" in status.stdout

        api = Api(api_port, json.loads((state / "secrets" / "api_passwords.json").read_text())["admin"])
        wait_for("the DAG parsed", lambda: api.get("/dags/opte_monthly"), 180)
        api.patch("/dags/opte_monthly", {"is_paused": False})

        # ---- the month: its inbox is not there yet when `land` first runs; the retry lands it
        late = tmp_path / "late_inbox"
        t0 = time.monotonic()
        run_id = api.post("/dags/opte_monthly/dagRuns", {
            "logical_date": f"{shift(month, 1)}-01T00:00:00Z", "conf": {"inbox": str(late)}})["dag_run_id"]
        wait_for("land's first try to fail", lambda: api.task(run_id, "land")["state"] == "up_for_retry", 300, 0.5)
        shutil.copytree(SAMPLE, late)
        assert wait_for_runs(api, [run_id], 900) == {run_id: "success"}, api.tasks(run_id)
        times["month"] = time.monotonic() - t0
        print(f"local deployment: started in {times['start']:.0f} s, month run {times['month']:.0f} s")
        tasks = api.tasks(run_id)
        assert {t["state"] for t in tasks.values()} == {"success"}
        assert tasks["land"]["try_number"] == 2
        # task logs through the API server: the failed try, the retry, dbt's own log, a watcher
        assert f"inbox {late} is not a folder (yet)" in api.log(run_id, "land", 1)
        assert "landed benefit_claims_" in api.log(run_id, "land", 2)
        assert "Finished running" in api.log(run_id, "dbt_build.dbt_producer_watcher", 1)
        # the first model's watcher starts with the build and waits for it in the triggerer
        watcher_log = api.log(run_id, "dbt_build.stg_lake__landed_extracts.run", 1)
        assert "Deferring model 'model.opte.stg_lake__landed_extracts'" in watcher_log, watcher_log[-2000:]
        assert (home / "publish" / month / "manifest.json").exists()
        builds = [dbt_subcommand(line) for line in dbt_invocations(home)]
        assert builds.count(("build", False)) == 1 and all(sel for _, sel in builds if _ != "build"), builds

        # ---- a backfill of the three months before, created while the scheduler runs
        t0 = time.monotonic()
        api.post("/backfills", {"dag_id": "opte_monthly", "from_date": f"{months[0]}-01T00:00:00Z",
                                "to_date": f"{months[-1]}-01T00:00:00Z", "max_active_runs": 1,
                                "reprocess_behavior": "none", "run_backwards": False, "dag_run_conf": {}})
        def backfill_runs():
            runs = api.get("/dags/opte_monthly/dagRuns?run_type=backfill&limit=50")["dag_runs"]
            return sorted(r["dag_run_id"] for r in runs) if len(runs) == 3 else None
        backfill_runs = wait_for("the backfill's three runs", backfill_runs, 120)
        states = wait_for_runs(api, backfill_runs, 900)
        times["backfill"] = time.monotonic() - t0
        assert set(states.values()) == {"success"}, states
        # built once for the month; the backfill's months found the warehouse up to date
        assert [dbt_subcommand(line) for line in dbt_invocations(home)].count(("build", False)) == 1

        # ---- a file that landing rejects whole: no retry, an alert in the task log, nothing published
        bad = tmp_path / "bad_inbox" / "benefit_claims"
        bad.mkdir(parents=True)
        bad_name = f"benefit_claims_{shift(month, 1).replace('-', '')}30.csv"
        (bad / bad_name).write_text("nino,wrong_column\nAB123456C,1\n")
        rejected_month = shift(month, -6)  # its logical date is no backfill run's (those are interval starts)
        run_id = api.post("/dags/opte_monthly/dagRuns", {
            "logical_date": f"{shift(rejected_month, 1)}-01T00:00:00Z", "conf": {"inbox": str(bad.parent)}})["dag_run_id"]
        assert wait_for_runs(api, [run_id], 300) == {run_id: "failed"}
        tasks = api.tasks(run_id)
        assert tasks["land"]["state"] == "failed" and tasks["land"]["try_number"] == 1
        assert tasks["publish"]["state"] == "upstream_failed"
        alert = [ln for ln in api.log(run_id, "land", 1).splitlines() if "OPTE ALERT" in ln]
        assert alert and f"report month {rejected_month}" in alert[0] and "missing contract column" in alert[0]
        assert bad_name in alert[0]
        assert not (home / "publish" / rejected_month).exists()

        # ---- supervised: a component that dies is started again
        pid_file = state / "run" / "dag-processor.pid"
        old_pid = int(pid_file.read_text())
        os.kill(old_pid, 9)
        wait_for("the DAG processor restarted", lambda: int(pid_file.read_text()) != old_pid, 60, 0.5)
        wait_for("all healthy again", lambda: script("status").returncode == 0, 120)
    finally:
        t0 = time.monotonic()
        stop = script("stop", timeout=600)
        times["stop"] = time.monotonic() - t0
        left = deployment_processes(state)
        pids = sorted(p.name for p in (state / "run").glob("*.pid")) if (state / "run").exists() else []
        postmaster = (state / "postgresql" / "data" / "postmaster.pid").exists()
        secret = (state / "secrets" / "db_password").read_text() if (state / "secrets" / "db_password").exists() else None
        cfg = (state / "airflow_home" / "airflow.cfg").read_text() if (state / "airflow_home" / "airflow.cfg").exists() else ""
        shutil.rmtree(state.parent, ignore_errors=True)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not left, f"processes left behind: {left}"
    assert pids == [] and not postmaster
    assert secret and secret not in cfg  # the generated database password stays in secrets/

    # ---- the command line, on its own home landed from the same inbox (the suite's built sample)
    # in the same order as the deployment published them (the month, then the three before), since
    # revisions compare each publication with the one it replaces, else with the month before
    # (asked for only now, so that the deployment starts at once; with two workers the other one
    # builds it meanwhile)
    cli_home = copy_home(request.getfixturevalue("sample_built_home"))
    first = backfill(cli_home, month, month)
    folders = first + backfill(cli_home, months[0], months[-1])
    assert [f.name for f in folders] == [month, *months]
    for m in [*months, month]:
        ours, theirs = table_hashes(home / "publish" / m), table_hashes(cli_home / "publish" / m)
        assert ours and ours == theirs, f"{m}: Airflow and opte backfill differ"
    print("local deployment: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
