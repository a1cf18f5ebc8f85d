"""The Airflow DAG (dags/opte_monthly.py): it renders every dbt node of the project as a task in
Cosmos watcher mode (one `dbt build`, one task per model, seed and test), and it runs end to end
with `dag.test` (through `airflow dags test`, the command the README documents), where the
watchers poke instead of deferring. A model that fails fails its own task.

The scheduler, triggerer and API server on PostgreSQL (backfills, retries, task logs and the
landing alert included) are tested in tests/test_airflow_local.py.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from airflow_helpers import (  # noqa: E402
    BIN, DAGS, SAMPLE, airflow_env, dbt_invocations, dbt_subcommand, inbox_cutoff, run, shift, task_states,
)

PARSE_SCRIPT = r"""
import json, os, time
t = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
seconds = time.monotonic() - t
dag = bag.dags.get("opte_monthly")
out = {"errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
       "seconds": seconds}
if dag is not None:
    out.update({
        "tasks": {t.task_id: {"class": type(t).__name__, "pool": t.pool, "retries": t.retries,
                              "upstream": sorted(t.upstream_task_ids),
                              "node": getattr(t, "model_unique_id", None),
                              "deferrable": getattr(t, "deferrable", None), "mode": getattr(t, "mode", None),
                              "outlets": [a.name for a in t.outlets]}
                  for t in dag.tasks},
        "tests_per_model": {t.task_id: t.tests_per_model for t in dag.tasks if hasattr(t, "tests_per_model")},
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "timetable": type(dag.timetable).__name__,
        "doc": dag.doc_md or "",
    })
print("RESULT " + json.dumps(out))
"""

WATCHERS = ("DbtRunWatcherOperator", "DbtSeedWatcherOperator", "DbtTestWatcherOperator")


def parse_dags(env: dict) -> dict:
    proc = run([sys.executable, "-c", PARSE_SCRIPT], env, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def manifest_nodes(home: Path) -> dict[str, dict]:
    """The dbt project's nodes, from the manifest the DAG rendered (made by `dbt parse`)."""
    manifest = json.loads((home / "dbt" / "dag_parse" / "manifest.json").read_text())
    return {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] in ("model", "seed", "test")}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    base = tmp_path_factory.mktemp("dag_parse")
    env = airflow_env(base / "airflow", base / "home")
    return parse_dags(env), manifest_nodes(base / "home"), env, base


def test_dag_folder_imports_without_errors(parsed):
    result, _, _, _ = parsed
    assert result["errors"] == {}
    assert result["dags"] == ["opte_monthly"]
    tasks = result["tasks"]
    assert {"land", "spark_build", "check_build_needed", "release", "publish"} <= set(tasks)
    assert result["catchup"] is False and result["max_active_runs"] == 1
    assert result["timetable"] == "CronDataIntervalTimetable"
    assert all(t["retries"] >= 1 for t in tasks.values())
    assert {k: t["outlets"] for k, t in tasks.items() if t["outlets"]} == {
        "land": ["opte_lake"], "release": ["opte_warehouse"], "publish": ["opte_publication"]}
    assert tasks["publish"]["upstream"] == ["release"]
    assert tasks["spark_build"]["upstream"] == ["land"]  # param engine = spark: the build, in one task
    assert tasks["check_build_needed"]["upstream"] == ["spark_build"]
    assert "airflow_local.sh start" in result["doc"] and "OPTE ALERT" in result["doc"]
    print(f"DAG parse time: {result['seconds']:.1f} s")


def test_one_build_task_in_the_pool_and_one_watcher_per_node(parsed):
    """Every model and seed of the dbt project is a task of its own; one producer runs the build."""
    result, nodes, _, _ = parsed
    tasks = result["tasks"]
    producers = [k for k, t in tasks.items() if t["class"] == "DbtProducerWatcherOperator"]
    assert producers == ["dbt_build.dbt_producer_watcher"]
    # only the build, its release and publish open the warehouse: only they take the one-slot pool
    assert sorted(k for k, t in tasks.items() if t["pool"] == "opte_warehouse") == [producers[0], "publish", "release"]
    assert tasks[producers[0]]["upstream"] == ["check_build_needed"]
    watchers = {k: t for k, t in tasks.items() if t["class"] in WATCHERS}
    runs = {t["node"]: k for k, t in watchers.items() if t["class"] != "DbtTestWatcherOperator"}
    built = {uid for uid, n in nodes.items() if n["resource_type"] in ("model", "seed")}
    assert set(runs) == built and len(runs) == len([t for t in watchers.values()
                                                    if t["class"] != "DbtTestWatcherOperator"])
    assert {"model.opte.opte_monthly", "model.opte.offflow_events"} <= set(runs)
    # without a triggerer configured (and always under dag.test) the watchers poke in reschedule mode
    assert all(t["deferrable"] is False and t["mode"] == "reschedule" for t in watchers.values())
    # nothing floats: every dbt task hangs off the land -> check_build_needed chain
    for k, t in tasks.items():
        if k.startswith("dbt_build."):
            assert t["upstream"], f"{k} has no upstream task"
    assert "dbt_build.dbt_producer_watcher_done" in tasks["release"]["upstream"]


def test_each_test_reports_in_exactly_one_task(parsed):
    """A one-node test reports in `<node>.test`; a several-node test (relationships) in its own task
    after all its nodes; the producer's map of tests to tasks matches the rendered tasks."""
    result, nodes, _, _ = parsed
    tasks = result["tasks"]
    mapping = result["tests_per_model"]["dbt_build.dbt_producer_watcher"]
    test_tasks = {t["node"]: k for k, t in tasks.items() if t["class"] == "DbtTestWatcherOperator"}
    assert set(mapping) == set(test_tasks), "a test task the producer never reports (it would wait for ever)"
    reported = [uid for uids in mapping.values() for uid in uids]
    tests = {uid: n for uid, n in nodes.items() if n["resource_type"] == "test"}
    assert sorted(reported) == sorted(tests), "every data test reports in exactly one task"
    several = {uid for uid, n in tests.items() if len(n["depends_on"]["nodes"]) > 1}
    assert several and any("relationships" in uid for uid in several)
    for uid in several:
        assert mapping[uid] == [uid]
        upstream_nodes = {tasks[u]["node"] for u in tasks[test_tasks[uid]]["upstream"]}
        assert set(tests[uid]["depends_on"]["nodes"]) <= upstream_nodes, f"{uid} runs before one of its nodes"
    for uid, n in tests.items():
        if uid not in several:
            (parent,) = n["depends_on"]["nodes"]
            assert uid in mapping[parent]


def test_watchers_defer_when_the_deployment_has_a_triggerer(parsed):
    _, _, env, _ = parsed
    result = parse_dags({**env, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"})
    watchers = [t for t in result["tasks"].values() if t["class"] in WATCHERS]
    assert watchers and all(t["deferrable"] is True for t in watchers)


def test_dag_file_does_no_work_at_import():
    text = (DAGS / "opte_monthly.py").read_text()
    top = text.split("@dag(")[0]
    for heavy in ("import duckdb", "import pandas", "from measures.publish", "from ingest", "publish_month("):
        assert heavy not in top


# ------------------------------------------------------------------ end to end


def dags_test(env: dict, report_month: str, conf: dict | None = None, check: bool = True):
    """`airflow dags test` for the run whose data interval is `report_month`: (run_id, seconds, output)."""
    started = time.monotonic()
    cmd = [str(BIN / "airflow"), "dags", "test", "opte_monthly", f"{shift(report_month, 1)}-01"]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    proc = run(cmd, env, check=check)
    output = proc.stdout + proc.stderr
    run_id = re.search(r"run_id=(manual__\S+?)[,\s]", output).group(1)
    return run_id, time.monotonic() - started, output


@pytest.fixture(scope="session")
def airflow_run(tmp_path_factory):
    """One monthly DAG run through `airflow dags test`, landing the sample inbox."""
    base = tmp_path_factory.mktemp("airflow_e2e")
    home = base / "home"
    home.mkdir()
    env = airflow_env(base / "airflow", home)
    run([str(BIN / "airflow"), "db", "migrate"], env, timeout=300)
    month = shift(inbox_cutoff(SAMPLE), -2)  # two months before the cut-off's month
    run_id, seconds, output = dags_test(env, month, {"inbox": str(SAMPLE)})
    assert "state=success" in output
    return {"env": env, "home": home, "month": month, "seconds": seconds, "run_id": run_id, "base": base}


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
    states = task_states(airflow_run["env"], airflow_run["run_id"])
    assert set(states.values()) == {"success"}, {k: v for k, v in states.items() if v != "success"}
    assert sum(k.startswith("dbt_build.") for k in states) > 60
    # one dbt process paid for the whole build: one `dbt build` of everything, no per-model dbt
    assert [dbt_subcommand(line) for line in dbt_invocations(home)] == [("build", False)]
    print(f"dags test on the sample: {airflow_run['seconds']:.1f} s")


@pytest.mark.slow
def test_a_failing_model_fails_its_own_task(airflow_run, parsed, tmp_path):
    """A landed Parquet file of benefit_claims is corrupt: the model reading it fails, in its own
    task (after its retries, each running that model alone); everything after it is
    upstream_failed, the rest succeeds, nothing is published. The Airflow config asks for
    deferrable watchers, as in the deployment: under dag.test they must still poke, or the run
    would wait for ever."""
    home = tmp_path / "home"
    shutil.copytree(airflow_run["home"], home, ignore=shutil.ignore_patterns(".*.lock", "publish", "invocations.log"))
    parquet = sorted((home / "lake" / "benefit_claims").rglob("*.parquet"))[0]
    parquet.write_bytes(b"not a parquet file")
    env = airflow_env(tmp_path / "airflow", home, AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True",
                      OPTE_RETRY_DELAY_SECONDS="1")
    run([str(BIN / "airflow"), "db", "migrate"], env, timeout=300)
    month = airflow_run["month"]
    run_id, _, output = dags_test(env, month, {"force_build": True}, check=False)
    assert "state=failed" in output
    states = task_states(env, run_id)
    failed = sorted(k for k, v in states.items() if v == "failed")
    assert failed == ["dbt_build.stg_lake__benefit_claims.run"], failed
    # everything after it is upstream_failed; everything else succeeds (the build task skips its
    # second try, land has no inbox): the seeds its relationship tests point at included
    upstream = {k: t["upstream"] for k, t in parsed[0]["tasks"].items()}  # the same dbt project
    after, frontier = set(), {failed[0]}
    while frontier:
        frontier = {k for k, ups in upstream.items() if set(ups) & frontier} - after
        after |= frontier
    assert {"dbt_build.opte_monthly.run", "release", "publish"} <= after
    assert any("relationships_stg_lake__benefit_claims" in k for k in after)
    for task_id, state in states.items():
        expected = ("upstream_failed" if task_id in after else "failed" if task_id == failed[0]
                    else "skipped" if task_id in ("land", "dbt_build.dbt_producer_watcher") else "success")
        assert state == expected, (task_id, state)
    assert "Model 'model.opte.stg_lake__benefit_claims' finished with status 'error'" in output
    assert not (home / "publish" / month).exists()
    calls = [dbt_subcommand(line) for line in dbt_invocations(home)]
    assert calls == [("build", False), ("run", True), ("run", True)], calls  # the build, then 2 retries
