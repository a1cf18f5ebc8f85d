"""
# opte_monthly: land, build and publish one report month

Thin wiring over the project's functions (`measures.pipeline`, `measures.publish`); the dbt
build is rendered by astronomer-cosmos so that **every dbt model and seed is its own task**
(`dbt build --select <node>`: the node and its tests, unit tests included).

## Report month = the data interval
The schedule is `CronDataIntervalTimetable("0 0 1 * *", UTC)`: each run's data interval is one
calendar month, [1st of the month 00:00, 1st of the next month 00:00), and the run fires when
the interval ends, at midnight on the 1st of the next month. Tasks never look at "now": the
report month is the month of `data_interval_start`, so re-runs and backfills publish the month
of their interval. For a manual run (`airflow dags test opte_monthly <date>`,
`dag.test(logical_date=...)`) Airflow takes the last complete interval before that date:
`2010-04-01` publishes 2010-03.

## Tasks
| task id | does |
|---|---|
| `land` | lands the inbox (DAG param `inbox`, else env `OPTE_INBOX`); skipped when neither is set |
| `check_build_needed` | short-circuits the dbt tasks when the warehouse was already built by this DAG from the same landed extracts, dbt project files and vars (param `force_build` rebuilds anyway) |
| `dbt_build.<model>_model_build` / `dbt_build.<seed>_seed_build` | one Cosmos task per dbt model / seed, in dependency order: `dbt build --select <node>` (the node with its unit and data tests) |
| `dbt_build.<test>_test` | each test with several parents (relationships), after all its parents |
| `record_build` | writes `<home>/build_info.json` (code version, cut-off requested, parameters, build fingerprint) |
| `publish` | publishes the report month (`measures.publish.publish_month`; also the external files when param `external` is true) |

Assets (outlets): `opte_lake` (land), `opte_warehouse` (record_build), `opte_publication` (publish).
Their URIs point into `OPTE_HOME`: one Airflow deployment (metadata database) serves one home
folder. Pointing the same Airflow database at another `OPTE_HOME` makes Airflow refuse the
tasks (an asset name may not change its URI); give another home its own `AIRFLOW_HOME`.

## Single writer for DuckDB
DuckDB allows one writing process per database file (and no reader beside a writer), and every
Cosmos task is its own `dbt` process. All dbt tasks **and the publish task** run in the Airflow
**pool `opte_warehouse` with one slot**, so one process at a time opens the warehouse, across
runs as well as within one; `max_active_runs=1` keeps scheduled runs in order. A pool rather
than Cosmos's watcher mode: the watcher runs one `dbt build` and turns the per-model tasks into
sensors that need a triggerer, which `dag.test()` and a small deployment do not have; with the
pool each model stays an ordinary, retryable task. Create the pool once per Airflow database:

    airflow pools set opte_warehouse 1 "DuckDB warehouse: one process at a time"

(`dag.test()` / `airflow dags test` run tasks one by one and need no pool.)

## Configuration
- `OPTE_HOME` (environment of the Airflow processes): the pipeline's home folder
  (lake, warehouse.duckdb, publish). Read when the DAG is parsed, for the dbt tasks' env and vars.
- Params: `inbox` (folder to land, default env `OPTE_INBOX`), `data_cutoff` (YYYY-MM-DD to
  reproduce an earlier publication; default null = derived from the landed extracts),
  `external` (also write the disclosure-controlled files), `force_build`.
- The dbt graph is rendered from dbt's manifest (`LoadMode.DBT_MANIFEST`), made by `dbt parse`
  when the DAG is parsed and the dbt project has changed since the last time (see `dbt_manifest`),
  kept in `$OPTE_HOME/dbt/dag_parse/` (or `$OPTE_DBT_PARSE_DIR`).

## Run one month from the command line (no scheduler needed)
    export OPTE_HOME=/path/to/home AIRFLOW_HOME=/path/to/airflow_home
    export AIRFLOW__CORE__DAGS_FOLDER=$PWD/dags AIRFLOW__CORE__LOAD_EXAMPLES=false
    airflow db migrate
    airflow dags test opte_monthly 2010-04-01 -c '{"inbox": "data_samples/inbox"}'   # publishes 2010-03

## Backfill
    airflow backfill create --dag-id opte_monthly --from-date 2010-10-01 --to-date 2010-12-01 --max-active-runs 1

(with a scheduler and API server running, the DAG unpaused) creates one run per monthly interval
starting in that range: report months 2010-10 to 2010-12. `--max-active-runs 1` matters: a
backfill's own limit defaults to 10 concurrent runs, whatever the DAG says. The first run
builds the warehouse if the lake or dbt project changed since the last build; the next ones
find it built from the same inputs and skip dbt, so every month is published from one
warehouse at the current data cut-off, exactly like `opte backfill --from 2010-10 --to 2010-12`
(the published tables are byte-identical; tests/test_dags.py checks it). To reproduce what
was published at an earlier date, pass `data_cutoff` in the run conf (or `opte build --cutoff`).
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

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO / "dbt_project"
DBT_LOCKED = REPO / "scripts" / "dbt_locked.sh"
POOL = "opte_warehouse"
PSEUDO_KEY_CONN_ID = "opte_pseudo_key"
HOME = Path(os.environ.get("OPTE_HOME") or Path.cwd() / ".opte_home").expanduser().resolve()
RETRY_DELAY = timedelta(seconds=int(os.environ.get("OPTE_RETRY_DELAY_SECONDS") or 120))
POKE_SECONDS = 5

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
    },
    doc_md=__doc__,
    tags=["opte"],
)
def opte_monthly():
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos import settings as cosmos_settings
    from cosmos.constants import DbtResourceType, ExecutionMode, InvocationMode, LoadMode, TestBehavior

    # cosmos.settings read the environment when first imported (maybe before this file set it)
    cosmos_settings.no_analytics = os.environ["SCARF_NO_ANALYTICS"].lower() in ("1", "true", "yes")

    @task(outlets=[LAKE])
    def land(params=None):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from measures.config import resolve_home
        from measures.errors import OpteError
        from measures.pipeline import land as land_inbox

        inbox = (params or {}).get("inbox") or os.environ.get("OPTE_INBOX")
        if not inbox:
            raise AirflowSkipException("no inbox given (param inbox or env OPTE_INBOX): nothing to land")
        if not os.environ.get("OPTE_PSEUDO_KEY") and (key := _pseudo_key_from_connection()):
            os.environ["OPTE_PSEUDO_KEY"] = key  # this task's process only
        if not Path(inbox).is_dir():  # e.g. the share is not mounted yet: retried
            raise OpteError(f"inbox {inbox} is not a folder (yet); retrying in {RETRY_DELAY}")
        try:
            land_inbox(resolve_home(str(HOME)), Path(inbox))
        except OpteError as exc:  # a file rejected whole: the same file fails again, so no retry
            log.error("OPTE ALERT: landing rejected a file, the run stops before publishing: %s", exc)
            raise AirflowFailException(f"landing rejected a file: {exc}") from exc

    @task.short_circuit(ignore_downstream_trigger_rules=False, trigger_rule="none_failed")
    def check_build_needed(params=None) -> bool:
        from measures.config import resolve_home
        from measures.build import build_needed

        params = params or {}
        return params.get("force_build") or build_needed(resolve_home(str(HOME)), params.get("data_cutoff"))

    defer = watchers_defer()
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
                                         setup_operator_args={"pool": POOL}),
        # AFTER_EACH: each model and seed with tests is a group `<node>.run` >> `<node>.test`, the test
        # task reporting its data tests; a test of several models (relationships) is a task of its
        # own after all of them (see tests_on_their_own_tasks).
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH,
                                   should_detach_multiple_parents_tests=True,
                                   # exposures (the published files) are the publish task's
                                   node_converters={DbtResourceType.EXPOSURE: lambda **_: None}),
        operator_args={
            "vars": {"lake_root": f"{HOME}/lake", "data_cutoff": "{{ params.data_cutoff }}"},
            "append_env": True,
            "deferrable": defer,
            "mode": "poke" if defer else "reschedule",
            "poke_interval": POKE_SECONDS,
            "pre_execute": no_deferral_under_dag_test,
        },
    )

    tests_on_their_own_tasks(dbt_build)

    @task(outlets=[WAREHOUSE])
    def record_build(params=None):
        from datetime import date

        from measures.config import resolve_home
        from measures.build import record_build as record

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

    land() >> check_build_needed() >> dbt_build >> record_build() >> publish()


opte_monthly()
