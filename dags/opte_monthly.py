"""
# opte_monthly: land, build and publish one report month

Thin wiring over the project's functions (`measures.pipeline`, `measures.build`,
`measures.publish`). The dbt build is rendered by astronomer-cosmos in **watcher mode**: one
task runs one `dbt build` of the whole project, and **every dbt model and seed keeps a task of
its own** that succeeds or fails with its node, so the run costs about one `opte build`.

## Report month = the data interval
The schedule is `CronDataIntervalTimetable("0 0 1 * *", UTC)`: each run's data interval is one
calendar month, [1st of the month 00:00, 1st of the next month 00:00), and the run fires when
the interval ends, at midnight on the 1st of the next month. Tasks never look at "now": the
report month is the month of `data_interval_start`, so re-runs and backfills publish the month
of their interval. A manual run (UI "Trigger", `airflow dags trigger -l 2011-04-01`,
`airflow dags test opte_monthly 2011-04-01`) takes the last complete interval before its date:
`2011-04-01` publishes 2011-03.

## Tasks
| task id | does |
|---|---|
| `land` | lands the inbox (param `inbox`, else env `OPTE_INBOX`); skipped when neither is set. An inbox that is not there (yet) is retried; a file rejected whole fails the task at once with an `OPTE ALERT` line, and the run stops before building or publishing |
| `spark_build` | param `engine` = `spark` only (else it does nothing): builds the warehouse on Spark in one task, as `opte build --engine spark` does, and records it |
| `check_build_needed` | skips the dbt tasks when the warehouse was already built by this DAG from the same landed extracts, dbt project files and vars (param `force_build` rebuilds anyway); else marks the working database as being built (a build that then fails leaves it incomplete, and the next build is a full refresh) |
| `dbt_build.dbt_producer_watcher` | the one `dbt build` (models, seeds and data tests; the test suite runs the unit tests), in pool `opte_warehouse`; its log is dbt's log |
| `dbt_build.<model>.run` / `dbt_build.<seed>.seed` (`<node>_seed`, `<node>_run` when it has no tests) | one task per model / seed: succeeds or fails when the build reaches that node |
| `dbt_build.<node>.test` | the data tests of that one node |
| `dbt_build.<test>_test` | a test of several nodes (relationships), after all of them |
| `dbt_build.dbt_producer_watcher_done` | Cosmos's gate after the build task (see Retries) |
| `release` | releases what dbt built (measures.release): the marts as a snapshot read through a new `<home>/warehouse.duckdb`, swapped in atomically, with the build record (also `<home>/build_info.json`: code version, cut-off requested, parameters, build fingerprint, `completed`) |
| `publish` | publishes the report month (`measures.publish.publish_month`; also the external files when param `external` is true) |

The watcher tasks wait in the **triggerer** (deferrable, no worker slot held) when Airflow's
`[operators] default_deferrable` is on, as in `scripts/airflow_local.sh`; otherwise, and always
under `airflow dags test` / `dag.test()` (which run tasks one by one in one process), they poke
every 5 s in reschedule mode. A failed model fails its own task, with dbt's error in the log; the
tasks after it end `upstream_failed`, and nothing is published.

Assets (outlets): `opte_lake` (land), `opte_warehouse` (release), `opte_publication` (publish).
Their URIs point into `OPTE_HOME`: one Airflow deployment (metadata database) serves one home
folder; give another home its own deployment (Airflow refuses an asset name whose URI changes).

## Single writer for DuckDB
DuckDB allows one writing process per database file. dbt writes the home's private working
database (`<home>/.build/work.duckdb`), which only builds open; readers, `publish` included,
open `<home>/warehouse.duckdb`, which only the release replaces (a new file, swapped in), so a
reader never sees a half-built warehouse and never stands in a build's way. The build task and
`publish` run in the Airflow **pool `opte_warehouse` with one slot**, across runs as
well as within one (`max_active_runs=1` keeps scheduled runs in order; a backfill keeps its own
`--max-active-runs`). The watcher tasks stay out of the pool: they only read the build's results
from Airflow, and in the pool they would wait behind the build that they watch. Every dbt
process the DAG starts (the build, and a watcher's own `dbt run` on a retry) goes through
`scripts/dbt_locked.sh`, which waits for the home's warehouse lock (the one `opte build` takes)
and lists each dbt invocation in `<home>/dbt/logs/invocations.log`.

## Retries
Every task retries twice, `retry_delay` 2 minutes (env `OPTE_RETRY_DELAY_SECONDS`). Cosmos never
runs the whole build twice: a second try of the build task skips itself, and a model task on
its second try runs its own node (`dbt run --select <node>`, a test task `dbt test --select`).
So after fixing the cause of a failed build, either clear the failed model tasks and their
downstream (each node rebuilt by itself), or trigger the month again (one new build).

## Deployment (runbook)
`bash scripts/airflow_local.sh start` starts the project's deployment on this machine:
PostgreSQL (Debian's package, its own cluster in `.airflow_local/postgresql`, 127.0.0.1 only)
as the metadata database, and Airflow with LocalExecutor: scheduler, DAG processor, triggerer
and API server (UI and REST API on http://127.0.0.1:8080, user `admin`, password in
`.airflow_local/secrets/api_passwords.json`), supervised and restarted if one exits, with the
pool created. `stop` stops everything by the processes' ids (pid files in
`.airflow_local/run/`); `status` shows each process and the health; `env` prints the
configuration (the same `AIRFLOW__*` / `OPTE_*` variables serve a deployment with its own
PostgreSQL: set `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` and keep the rest);
`bash scripts/airflow_local.sh airflow ...` runs the Airflow CLI against it.
Logs: `.airflow_local/logs/<component>.log`, task logs under `.airflow_local/logs/tasks/` and
in the UI. Secrets come from the environment: `OPTE_PSEUDO_KEY` (else the Airflow connection
`opte_pseudo_key`, its password), `OPTE_AIRFLOW_DB_PASSWORD` (else generated once, mode 0600).

- **Monthly schedule**: unpause the DAG (`... airflow dags unpause opte_monthly`, or the UI);
  at midnight on the 1st the scheduler runs the month just ended (set `OPTE_INBOX` to the
  delivery folder in the deployment's environment, or trigger with conf `{"inbox": ...}`).
- **One month by hand**: `... airflow dags trigger opte_monthly -l 2011-04-01 -c '{"inbox": "/path/to/inbox"}'`
  publishes 2011-03.
- **Backfill** (scheduler running, DAG unpaused):
  `... airflow backfill create --dag-id opte_monthly --from-date 2010-10-01 --to-date 2010-12-01 --max-active-runs 1`
  runs one run per interval starting in that range: report months 2010-10 to 2010-12.
  `--max-active-runs 1` matters (a backfill's own limit defaults to 10). The first run builds
  the warehouse if the lake or dbt project changed since the last build; the next ones find it
  built from the same inputs and skip dbt, so every month is published from one warehouse at the
  current data cut-off, exactly like `opte backfill --from 2010-10 --to 2010-12` (byte-identical
  tables; tests/test_airflow_local.py checks it). To reproduce what was published at an earlier
  date, pass `data_cutoff` in the run conf (or `opte build --cutoff`).
- **Landing alert**: `OPTE ALERT` in the `land` log names the file and why; fix or remove the
  file in the inbox, then clear `land`.

## Without a deployment
    export OPTE_HOME=/path/to/home AIRFLOW_HOME=/path/to/airflow_home
    export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=false
    airflow db migrate
    airflow dags test opte_monthly 2011-04-01 -c '{"inbox": "data_samples/inbox"}'   # publishes 2011-03

(SQLite, no scheduler: `dags test` runs the tasks itself, one by one; that is what
`scripts/run_sample.sh` does. SQLite allows one writer at a time, so a scheduler beside
another Airflow process belongs on PostgreSQL.)

## Configuration
- `OPTE_HOME` (environment of the Airflow processes): the pipeline's home folder
  (lake, warehouse.duckdb, publish). Read when the DAG is parsed, for the dbt tasks' env and vars.
- Params: `inbox`, `data_cutoff` (YYYY-MM-DD to reproduce an earlier publication; default
  null = derived from the landed extracts), `external` (also write the disclosure-controlled
  files), `force_build`, `engine` (`duckdb`, the default: the dbt tasks below; `spark`: the
  `spark_build` task, README "Spark").
- The dbt graph is rendered from dbt's manifest (`LoadMode.DBT_MANIFEST`), made by `dbt parse`
  when the DAG is parsed and the dbt project has changed since the last time (see `dbt_manifest`),
  kept in `$OPTE_HOME/dbt/dag_parse/` (or `$OPTE_DBT_PARSE_DIR`): new models appear as tasks.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

# The pipeline reaches no network when it runs: Cosmos's usage telemetry stays off unless the
# deployment sets SCARF_NO_ANALYTICS=false (or [cosmos] enable_telemetry) itself.
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Cosmos's "reliable retry" rewrites an Airflow Variable holding every result so far at each of
# the build's ~1,800 XCom pushes (quadratic: it made the build task ~1.5x a plain `dbt build` at the
# sample's scale). Off, the results are saved to that Variable only when the build task fails.
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY", "False")

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO / "dbt_project"
DBT_LOCKED = REPO / "scripts" / "dbt_locked.sh"
POOL = "opte_warehouse"
PSEUDO_KEY_CONN_ID = "opte_pseudo_key"
HOME = Path(os.environ.get("OPTE_HOME") or Path.cwd() / ".opte_home").expanduser().resolve()
RETRY_DELAY = timedelta(seconds=int(os.environ.get("OPTE_RETRY_DELAY_SECONDS") or 120))
POKE_SECONDS = 5

# Cosmos's cache (dbt's partial parse from one run to the next) per home, not the machine-wide
# /tmp/cosmos that every checkout and home would share (read when cosmos is first imported:
# scripts/airflow_local.py sets it for the deployment, whose components import cosmos early)
os.environ.setdefault("AIRFLOW__COSMOS__CACHE_DIR", str(HOME / "dbt" / "cosmos_cache"))

LAKE = Asset(name="opte_lake", uri=f"file://{HOME}/lake")
WAREHOUSE = Asset(name="opte_warehouse", uri=f"file://{HOME}/warehouse.duckdb")
PUBLICATION = Asset(name="opte_publication", uri=f"file://{HOME}/publish")

log = logging.getLogger("opte.dag")


def _dbt_executable() -> str:
    import sys

    for candidate in (REPO / ".venv" / "bin" / "dbt", Path(sys.executable).with_name("dbt")):
        if candidate.exists():
            return str(candidate)
    return "dbt"


def dbt_manifest() -> Path:
    """dbt's manifest.json, from which Cosmos renders one task per model and seed.

    Regenerated with `dbt parse` (a few seconds) only when the dbt project's files changed
    since it was made (their content hash is kept beside it), so an unchanged project costs a
    parse of this file no more than reading ~100 small files; nothing touches the Airflow
    database or the warehouse. Cosmos's own `dbt ls` cache would store its result in an
    Airflow Variable, i.e. write to the metadata database at every change, which the
    project's DAG rules forbid at parse time.
    """
    import hashlib
    import shutil
    import subprocess

    cache = Path(os.environ.get("OPTE_DBT_PARSE_DIR") or HOME / "dbt" / "dag_parse")
    manifest, stamp = cache / "manifest.json", cache / "project.sha256"
    digest = hashlib.sha256()
    for path in sorted(DBT_PROJECT_DIR.rglob("*")):
        rel = path.relative_to(DBT_PROJECT_DIR)
        if path.is_file() and rel.parts[0] not in ("target", "logs", "dbt_packages"):
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes())
    want = digest.hexdigest()
    if manifest.exists() and stamp.exists() and stamp.read_text() == want:
        return manifest
    work = cache / f".parse-{os.getpid()}"
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPTE_HOME": str(HOME), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run([_dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR),
                    "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(work),
                    "--log-path", str(work / "logs")], env=env, check=True, capture_output=True, timeout=300)
    os.replace(work / "manifest.json", manifest)
    stamp.write_text(want)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def watchers_defer() -> bool:
    """Whether the per-model watcher tasks defer to the triggerer while dbt runs.

    Airflow's own switch, `[operators] default_deferrable` (env
    AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE), which scripts/airflow_local.sh turns on because it
    runs a triggerer. Off (the default), the watchers poke in reschedule mode instead: they
    hold no worker slot between pokes and need no triggerer.
    """
    try:
        from airflow.sdk.configuration import conf

        return conf.getboolean("operators", "default_deferrable", fallback=False)
    except Exception:  # noqa: BLE001 (an unreadable config must not break parsing)
        return os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "").lower() in ("1", "true", "t")


def no_deferral_under_dag_test(context) -> None:
    """`airflow dags test` / `dag.test()` run every task in one process, one after the other, and
    run a deferred task's trigger in line until it fires: a watcher that deferred before the
    producer ran would wait for ever. In such a run the watchers poke in reschedule mode."""
    task_ = context["task"]
    if getattr(task_, "deferrable", False) and getattr(context.get("dag_run"), "triggering_user_name", None) == "dag_test":
        task_.deferrable = False
        task_.mode = "reschedule"


def tests_on_their_own_tasks(group) -> None:
    """Each data test reports in one task: a test of one node in that node's `<node>.test` task; a
    test of several (relationships, cross-model expressions) in its own detached test task, which
    runs after all its parents.

    The watcher producer learns which tests make up each test task from `tests_per_model`.
    Cosmos 1.15 lists a several-parent test under every parent there and none under its own
    detached task, so the detached task would wait for ever and each parent's test task would
    fail with the other parent (a seed failing because a model that references it failed).
    This gives the producer the mapping the rendered tasks have.
    """
    from cosmos.airflow.graph import is_detached_test
    from cosmos.constants import PRODUCER_WATCHER_TASK_ID, DbtResourceType

    producer = group.children[f"{group.group_id}.{PRODUCER_WATCHER_TASK_ID}"]
    nodes = group.dbt_graph.filtered_nodes
    mapping: dict[str, list[str]] = {}
    for uid, node in nodes.items():
        if node.resource_type != DbtResourceType.TEST:
            continue
        if is_detached_test(node):
            mapping[uid] = [uid]
        else:
            for parent in node.depends_on:
                if parent in nodes:
                    mapping.setdefault(parent, []).append(uid)
    producer.tests_per_model = mapping


def _report_month(data_interval_start) -> str:
    return f"{data_interval_start:%Y-%m}"


def _pseudo_key_from_connection() -> str | None:
    """The pseudonymisation key from the Airflow connection `opte_pseudo_key` (its password), if any."""
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(PSEUDO_KEY_CONN_ID).password or None
    except Exception:  # noqa: BLE001 (no such connection: the environment or the development key)
        return None


@dag(
    dag_id="opte_monthly",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=datetime(2008, 5, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # params reach dbt vars as null/str, not "None"
    default_args={"retries": 2, "retry_delay": RETRY_DELAY},
    params={
        "inbox": Param(None, type=["null", "string"], description="inbox folder to land (default: env OPTE_INBOX)"),
        "data_cutoff": Param(None, type=["null", "string"], format="date",
                             description="YYYY-MM-DD: build only from extracts dated on or before it"),
        "external": Param(False, type="boolean", description="also write the external (disclosure-controlled) files"),
        "force_build": Param(False, type="boolean", description="rebuild even if the inputs are unchanged"),
        "engine": Param("duckdb", type="string", enum=["duckdb", "spark"],
                        description="engine that builds the warehouse: duckdb (the dbt tasks) or spark (task spark_build)"),
    },
    doc_md=__doc__,
    tags=["opte"],
)
def opte_monthly():
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos import settings as cosmos_settings
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    # cosmos.settings read the environment when first imported (maybe before this file set it)
    cosmos_settings.no_analytics = os.environ["SCARF_NO_ANALYTICS"].lower() in ("1", "true", "yes")
    cosmos_settings.enable_watcher_reliable_retry = (
        os.environ["AIRFLOW__COSMOS__ENABLE_WATCHER_RELIABLE_RETRY"].lower() in ("1", "true", "yes"))

    @task(outlets=[LAKE])
    def land(data_interval_start=None, params=None):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        inbox = (params or {}).get("inbox") or os.environ.get("OPTE_INBOX")
        if not inbox:
            raise AirflowSkipException("no inbox given (param inbox or env OPTE_INBOX): nothing to land")
        from measures.config import resolve_home
        from measures.errors import OpteError
        from measures.pipeline import land as land_inbox

        if not os.environ.get("OPTE_PSEUDO_KEY") and (key := _pseudo_key_from_connection()):
            os.environ["OPTE_PSEUDO_KEY"] = key  # this task's process only
        if not Path(inbox).is_dir():  # e.g. the share is not mounted yet: worth a retry
            raise OpteError(f"inbox {inbox} is not a folder (yet); the task is retried after {RETRY_DELAY}")
        try:
            land_inbox(resolve_home(str(HOME)), Path(inbox))
        except OpteError as exc:  # a file rejected whole fails again: no retry
            month = _report_month(data_interval_start) if data_interval_start else "?"
            log.error("OPTE ALERT: report month %s: landing rejected a file of %s; this run stops before "
                      "building or publishing. %s. Then clear this task (or trigger the month again).",
                      month, inbox, exc)
            raise AirflowFailException(f"landing rejected a file of {inbox}: {exc}") from exc

    @task(trigger_rule="none_failed")
    def spark_build(params=None):
        """Param engine = spark: the whole build on Spark in one task (one Spark session; a Cosmos
        target is fixed when the DAG is parsed), recorded like `opte build --engine spark`, holding
        the home's warehouse lock as that does. Engine duckdb: nothing to do (success, so that a
        DuckDB run is all green)."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowSkipException

        from measures.build import build, build_needed
        from measures.config import resolve_home

        params = params or {}
        if params.get("engine", "duckdb") != "spark":
            log.info("engine duckdb: the dbt tasks build the warehouse; nothing to do here")
            return
        home, cutoff = resolve_home(str(HOME)), params.get("data_cutoff")
        if not (params.get("force_build") or build_needed(home, cutoff, engine="spark")):
            raise AirflowSkipException("the warehouse was built on Spark from the same inputs: no rebuild")
        build(home, date.fromisoformat(cutoff) if cutoff else None, engine="spark")

    @task.short_circuit(ignore_downstream_trigger_rules=False, trigger_rule="none_failed")
    def check_build_needed(params=None, ti=None) -> bool:
        from measures.build import begin_build, build_needed
        from measures.config import resolve_home

        params = params or {}
        if params.get("engine", "duckdb") == "spark":
            log.info("engine spark: spark_build built the warehouse (or it was up to date); no dbt tasks")
            return False
        home = resolve_home(str(HOME))
        if not (params.get("force_build") or build_needed(home, params.get("data_cutoff"))):
            return False
        # from here until `release` the working database is incomplete; incremental unless
        # measures.refresh says the build must be a full refresh (the producer's --full-refresh reads it)
        state = begin_build(home, params.get("data_cutoff"))
        ti.xcom_push(key="full_refresh", value=state["full_refresh_reason"])
        return True

    defer = watchers_defer()
    full_refresh_flag = "{{ ti.xcom_pull(task_ids='check_build_needed', key='full_refresh') is not none }}"
    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=dbt_manifest(),
                                     install_dbt_deps=False,
                                     # the env of dbt ls (parse) and of every dbt process (run)
                                     env_vars={"OPTE_HOME": str(HOME), "OPTE_DBT_EXECUTABLE": _dbt_executable(),
                                               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}),
        profile_config=ProfileConfig(profile_name="opte", target_name="local",
                                     profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"),
        # WATCHER: one producer task runs one `dbt build` of the whole project; every model and seed
        # keeps a task of its own that watches the producer's results (XCom) and succeeds or fails
        # with its node. Only the producer touches the warehouse, so only it takes the one-slot pool.
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.WATCHER,
                                         invocation_mode=InvocationMode.SUBPROCESS,
                                         dbt_executable_path=str(DBT_LOCKED),
                                         setup_operator_args={
                                             "pool": POOL,
                                             "full_refresh": full_refresh_flag,
                                             # like `opte build`: the test suite runs the unit tests
                                             "dbt_cmd_flags": ["--exclude-resource-type", "unit_test"]}),
        # AFTER_EACH: each model and seed with tests is a group `<node>.run` >> `<node>.test`, the test
        # task reporting its data tests; a test of several models (relationships) is a task of its
        # own after all of them (see tests_on_their_own_tasks).
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH,
                                   should_detach_multiple_parents_tests=True,
                                   # exposures (the published files) are the publish task's
                                   exclude=["resource_type:exposure"]),
        operator_args={
            "vars": {"lake_root": f"{HOME}/lake", "data_cutoff": "{{ params.data_cutoff }}"},
            "append_env": True,
            # the DAG's own assets say what changed (lake, warehouse, publication); no asset per table
            "emit_datasets": False,
            "deferrable": defer,
            "mode": "poke" if defer else "reschedule",
            "poke_interval": POKE_SECONDS,
            "pre_execute": no_deferral_under_dag_test,
        },
    )

    tests_on_their_own_tasks(dbt_build)

    @task(outlets=[WAREHOUSE], pool=POOL)
    def release(params=None):
        from datetime import date

        from measures.build import record_build as record
        from measures.config import resolve_home

        cutoff = (params or {}).get("data_cutoff")
        record(resolve_home(str(HOME)), date.fromisoformat(cutoff) if cutoff else None)

    @task(outlets=[PUBLICATION], trigger_rule="none_failed", pool=POOL)
    def publish(data_interval_start=None, params=None) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from measures.config import resolve_home
        from measures.errors import OpteError
        from measures.publish import publish_month

        home = resolve_home(str(HOME))
        month = _report_month(data_interval_start)
        try:
            folder = publish_month(home, month)
            if (params or {}).get("external"):
                publish_month(home, month, external=True)
        except OpteError as exc:  # e.g. a month outside the warehouse: retrying cannot help
            raise AirflowFailException(str(exc)) from exc
        return str(folder)

    land() >> spark_build() >> check_build_needed() >> dbt_build >> release() >> publish()


opte_monthly()
