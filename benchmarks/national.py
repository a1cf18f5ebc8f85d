"""National-scale benchmark: synth, land, build (and the scan floor), publish, Airflow run.

    .venv/bin/python benchmarks/national.py                  # everything, 5M customers, FY 2009-10
    .venv/bin/python benchmarks/national.py --stages synth,land --people 500000

Each stage runs as its own process through the `opte` command line (or Airflow), measured
for wall time and peak RSS of its whole process tree. Results are printed as a Markdown
table and appended to benchmarks/out/results.md with the code version and parameters.
Not part of the test suite: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import folder_size_mb, measure  # noqa: E402

from measures.config import DATASETS, code_version  # noqa: E402

BIN = Path(sys.executable).parent
STAGES = ("synth", "land", "scan", "build", "publish", "run", "dag")


def scan_floor_cmd(lake: Path) -> list[str]:
    """One full read of every landed column (a hash of every value) with DuckDB: the I/O floor."""
    script = (
        "import duckdb,sys\n"
        "c=duckdb.connect()\n"
        f"for ds in {list(DATASETS)!r}:\n"
        f"    c.sql(f\"select sum(hash(columns(*))) from read_parquet('{lake}/{{ds}}/*/*.parquet')\").fetchall()\n"
    )
    return [sys.executable, "-c", script]


def task_split(airflow_db: Path) -> dict[str, float]:
    """Where the latest DAG run's time went, from its task instances (seconds of wall time).

    The dbt tasks run in Cosmos watcher mode: one task runs the `dbt build`, the per-model tasks
    only watch it, so their durations overlap the build and are not added up. "watchers after the
    build" is the time from the end of the build to the last dbt task's end.
    """
    import sqlite3
    from datetime import datetime

    con = sqlite3.connect(airflow_db)
    run_id = con.execute("select run_id from dag_run where dag_id = 'opte_monthly' "
                         "order by start_date desc limit 1").fetchall()[0][0]
    rows = con.execute("select task_id, start_date, end_date from task_instance "
                       "where dag_id = 'opte_monthly' and run_id = ?", (run_id,)).fetchall()
    times = {t: (datetime.fromisoformat(a), datetime.fromisoformat(b)) for t, a, b in rows if a and b}

    def seconds(task_id: str) -> float:
        start, end = times.get(task_id, (None, None))
        return (end - start).total_seconds() if start else 0.0

    producer = "dbt_build.dbt_producer_watcher"
    dbt_ends = [end for t, (_, end) in times.items() if t.startswith("dbt_build.")]
    tail = (max(dbt_ends) - times[producer][1]).total_seconds() if producer in times and dbt_ends else 0.0
    return {"land": seconds("land"), "the one dbt build (producer task)": seconds(producer),
            "watchers after the build": tail, "release": seconds("release"), "publish": seconds("publish")}


# the models of MEASURES.md sections 9 and 12-16 (coverage start, proxy, sustainability, agreement,
# funnel monitors): their share of the build is reported on their own
NEW_MEASURE_MODELS = ("int_coverage_start", "int_offflows_proxy_flagged", "int_offflows_sustainability_checked",
                      "measure_agreement", "opte_sustainability", "office_monitors")


def build_shares(run_results: Path, top: int = 10) -> list[str]:
    """Where a build's time went, from dbt's run_results.json: node time by resource type, the
    slowest models, and the share of each model of NEW_MEASURE_MODELS (execution time / the sum
    of every node's execution time; dbt runs nodes on several threads, so shares of node time,
    not of wall time)."""
    results = json.loads(run_results.read_text())["results"]
    total = sum(r["execution_time"] for r in results) or 1.0
    by_type: dict[str, float] = {}
    for r in results:
        kind = r["unique_id"].split(".")[0]
        by_type[kind] = by_type.get(kind, 0.0) + r["execution_time"]
    models = sorted(((r["execution_time"], r["unique_id"].split(".")[-1]) for r in results
                     if r["unique_id"].startswith("model.")), reverse=True)
    lines = ["dbt node time by type: " + ", ".join(f"{k} {v:,.1f} s ({v / total:.0%})" for k, v in sorted(by_type.items()))]
    lines.append("slowest models: " + ", ".join(f"{name} {t:,.1f} s ({t / total:.1%})" for t, name in models[:top]))
    times = {name: t for t, name in models}
    lines.append("new measure models: " + ", ".join(
        f"{name} {times[name]:,.1f} s ({times[name] / total:.1%})" for name in NEW_MEASURE_MODELS if name in times))
    return lines


def landed_rows(lake: Path) -> int:
    return sum(json.loads(p.read_text())["rows_read"] for p in (lake / "_manifests").glob("*/*.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="benchmarks/out/national", help="scratch folder (inbox, home)")
    ap.add_argument("--people", type=int, default=5_000_000)
    ap.add_argument("--start", default="2009-04")
    ap.add_argument("--end", default="2010-03")
    ap.add_argument("--month", default=None, help="report month for publish/run/dag (default: --end)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--dag-lands", action="store_true",
                    help="the DAG stage lands the inbox itself, into a fresh home (work/dag_home)")
    args = ap.parse_args()
    stages = args.stages.split(",")
    month = args.month or args.end
    work = Path(args.work).resolve()
    inbox, home = work / "inbox", work / "home"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OPTE_HOME=str(home))
    opte = [str(BIN / "opte"), "--home", str(home)]
    rows = ["| stage | wall time | peak memory |", "|---|---|---|"]
    notes = []

    if "synth" in stages:
        m = measure("opte synth", [str(BIN / "opte"), "synth", "--out", str(inbox), "--people",
                                   str(args.people), "--start", args.start, "--end", args.end, "--seed", "1"])
        rows.append(m.row())
        notes.append(f"inbox size {folder_size_mb(inbox):,.0f} MB, "
                     f"{sum(1 for f in inbox.rglob('*') if f.is_file())} files")
    if "land" in stages:
        m = measure("opte land", [*opte, "land", "--inbox", str(inbox)], env)
        rows.append(m.row())
        n = landed_rows(home / "lake")
        notes.append(f"landed {n:,} rows read at {n / m.seconds:,.0f} rows/s; "
                     f"lake {folder_size_mb(home / 'lake'):,.0f} MB")
    if "scan" in stages:
        rows.append(measure("DuckDB scan of the landed Parquet (floor)", scan_floor_cmd(home / "lake")).row())
    if "build" in stages:
        rows.append(measure("opte build (dbt build: models + tests)", [*opte, "build"], env).row())
        notes += build_shares(home / "dbt" / "target" / "run_results.json")
    if "publish" in stages:
        rows.append(measure(f"opte publish --month {month}", [*opte, "publish", "--month", month], env).row())
    run_seconds = None
    if "run" in stages:
        m = measure(f"opte run --month {month} (build + publish)", [*opte, "run", "--month", month], env)
        rows.append(m.row())
        run_seconds = m.seconds
    if "dag" in stages:
        airflow_home = work / "airflow_home"
        conf = {"force_build": True}  # with the inbox already landed, land is skipped and dbt always runs
        if args.dag_lands:
            dag_home = work / "dag_home"
            shutil.rmtree(dag_home, ignore_errors=True)
            env = dict(env, OPTE_HOME=str(dag_home))
            conf = {"inbox": str(inbox)}
            airflow_home = work / "dag_airflow_home"  # one Airflow database per home (assets)
            shutil.rmtree(airflow_home, ignore_errors=True)
        dag_env = dict(env, AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="false",
                       AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).resolve().parents[1] / "dags"))
        measure("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], dag_env)
        y, m = map(int, month.split("-"))
        logical = f"{y + m // 12}-{m % 12 + 1:02d}-01"
        dag_m = measure(f"airflow dags test opte_monthly {logical} (month {month})",
                        [str(BIN / "airflow"), "dags", "test", "opte_monthly", logical, "-c", json.dumps(conf)],
                        dag_env)
        rows.append(dag_m.row())
        split = task_split(airflow_home / "airflow.db")
        for group, seconds in split.items():
            rows.append(f"| &nbsp;&nbsp;DAG: {group} | {seconds:,.1f} s | |")
        overhead = dag_m.seconds - sum(split.values())
        rows.append(f"| &nbsp;&nbsp;DAG: the rest (CLI start, DAG parse, scheduling, task start-up) | {overhead:,.1f} s | |")
        if run_seconds and not args.dag_lands:
            notes.append(f"DAG run / opte run for {month}: {dag_m.seconds / run_seconds:.2f}x "
                         f"({dag_m.seconds:,.1f} s / {run_seconds:,.1f} s; target at most 1.2x)")

    header = (f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, code {code_version()}, "
              f"{args.people:,} people, {args.start}..{args.end}, {os.cpu_count()} cores\n")
    text = header + "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(text)
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    with open(out / "results.md", "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
