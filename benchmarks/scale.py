"""Issue 9 benchmark, in one run: history length, incremental months, 10 years, the DAG.

    .venv/bin/python benchmarks/scale.py                          # 5M people, everything
    .venv/bin/python benchmarks/scale.py --inboxes /work/bench    # use ready-made inboxes y1, y5, y10
    .venv/bin/python benchmarks/scale.py --people 50000 --parts y1,dag --work /tmp/bench

Parts (each in its own home under --work):
- `y1`, `y5`: `opte synth` of 1 (5) financial years ending March 2010 plus April 2010 (synth is
  stable in its end month); land everything but April; the scan floor (DuckDB reads every column
  of every landed file once); the full build (`opte build --full-refresh`); `opte publish`; two
  more full builds (warehouse size after three full rebuilds); then April lands ("one more month")
  and `opte build` runs incrementally.
- `y10`: 10 financial years, April 2001 to March 2011 (`--years 10`): land, scan floor, full build.
- `dag`: on the y1 home (or y5 when y1 is not run), `opte run --month 2010-04` against
  `airflow dags test opte_monthly` for the same month (both rebuild the unchanged lake
  incrementally and publish; the DAG forces its build).

Every figure is a wall time and a peak RSS (summed over the process tree), with its ratio to the
scan floor of the same lake. The results are appended to benchmarks/RESULTS.md (and printed),
with where each build's time went (dbt's run_results.json). Not part of the test suite.
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

from _measure import Measurement, folder_size_mb, measure  # noqa: E402
from national import build_shares, landed_rows, scan_floor_cmd, task_split  # noqa: E402

from measures.config import code_version  # noqa: E402

BIN = Path(sys.executable).parent
LAST_MONTH = "20100430"  # the extracts of "one more month" (April 2010) in the y1 / y5 inboxes
HISTORIES = {"y1": ("2009-04", "2010-04"), "y5": ("2005-04", "2010-04"), "y10": ("2001-04", "2011-03")}
TARGETS = {
    "full build": "y1 full build <= 8x the scan floor",
    "incremental": "one incremental month <= 15 % of the y1 full build; y5 <= 1.2x y1",
    "y10": "10-year full build <= 15 min, peak RSS <= 8 GB",
    "dag": "DAG run <= 1.2x opte run",
    "size": "warehouse after three full rebuilds <= 1.2x after the first",
}


class Table:
    """The rows of one part: each figure with its ratio to that part's scan floor."""

    def __init__(self, title: str):
        self.title, self.rows, self.notes, self.floor = title, [], [], None

    def add(self, m: Measurement, extra: str = "") -> Measurement:
        ratio = f"{m.seconds / self.floor:,.1f}x" if self.floor else ""
        self.rows.append(f"| {m.label} | {m.seconds:,.1f} s | {ratio} | {m.peak_rss_mb:,.0f} MB | {extra} |")
        return m

    def text(self) -> str:
        head = ["", f"### {self.title}", "| stage | wall time | / scan floor | peak RSS | note |", "|---|---|---|---|---|"]
        return "\n".join(head + self.rows + [""] + [f"- {n}" for n in self.notes])


def split_inbox(inbox: Path, stage: Path, last: str) -> tuple[Path, Path]:
    """Hard-link the inbox's files into `stage/history` (all but the extracts dated `last`) and
    `stage/month` (those), so that the history lands first and the month after."""
    history, month = stage / "history", stage / "month"
    shutil.rmtree(stage, ignore_errors=True)
    for f in sorted(inbox.rglob("*")):
        if f.is_file():
            target = (month if last in f.name else history) / f.relative_to(inbox)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, target)
    return history, month


def warehouse_mb(home: Path) -> float:
    """Size of the home's DuckDB files (the warehouse, and a private working database under .build)."""
    return sum(p.stat().st_size for p in [*home.glob("*.duckdb"), *home.glob(".build/*.duckdb")]) / 2**20


def history_part(name: str, args, work: Path, results: dict) -> Table:
    start, end = HISTORIES[name]
    years = int(name[1:])
    table = Table(f"{name}: {args.people:,} people, {years} year(s) of history ({start}..{end})")
    part = work / name
    home = part / "home"
    env = dict(os.environ, OPTE_HOME=str(home))
    opte = [str(BIN / "opte"), "--home", str(home)]
    given = Path(args.inboxes) / name / "inbox" if args.inboxes else None
    if given:
        if not (given.parent / "DONE").exists():
            raise SystemExit(f"{given} is not complete yet (no DONE file beside it)")
        inbox = given
        table.notes.append(f"inbox {inbox} (made beforehand)")
    else:
        inbox = part / "inbox"
        shutil.rmtree(inbox, ignore_errors=True)
        synth = table.add(measure("opte synth", [str(BIN / "opte"), "synth", "--out", str(inbox), "--people",
                                                 str(args.people), "--start", start, "--end", end, "--seed", "1"]))
        results[f"{name} synth"] = synth.seconds
    shutil.rmtree(home, ignore_errors=True)
    incremental = name != "y10"
    history, month = split_inbox(inbox, part / "split", LAST_MONTH if incremental else "\0")
    table.add(measure("opte land (history)", [*opte, "land", "--inbox", str(history)], env))
    table.notes.append(f"landed {landed_rows(home / 'lake'):,} rows; lake {folder_size_mb(home / 'lake'):,.0f} MB")
    floors = [measure("scan floor", scan_floor_cmd(home / "lake")) for _ in range(2)]
    table.floor = min(f.seconds for f in floors)
    table.add(min(floors, key=lambda f: f.seconds), "DuckDB reads every column of every landed file once (best of 2)")
    full = table.add(measure("opte build --full-refresh", [*opte, "build", "--full-refresh"], env))
    results[f"{name} full"] = full
    results[f"{name} floor"] = table.floor
    table.notes += build_shares(home / "dbt" / "target" / "run_results.json")
    first_size = warehouse_mb(home)
    if not incremental:
        return table
    table.add(measure("opte publish --month 2010-03", [*opte, "publish", "--month", "2010-03"], env))
    if args.rebuilds:
        for i in (2, 3):
            table.add(measure(f"opte build --full-refresh (rebuild {i})", [*opte, "build", "--full-refresh"], env))
        size = warehouse_mb(home)
        table.notes.append(f"warehouse {first_size:,.0f} MB after the first full build, {size:,.0f} MB after "
                           f"three ({size / first_size:.2f}x; {TARGETS['size']})")
    table.add(measure("opte land (one more month: April 2010)", [*opte, "land", "--inbox", str(month)], env))
    inc = table.add(measure("opte build (incremental: one more month)", [*opte, "build"], env),
                    f"{{share}} of the full build")
    results[f"{name} incremental"] = inc
    table.rows[-1] = table.rows[-1].replace("{share}", f"{inc.seconds / full.seconds:.0%}")
    info = json.loads((home / "build_info.json").read_text())
    table.notes.append(f"incremental build: full_refresh recorded as {info.get('full_refresh')!r}")
    table.notes += [f"incremental: {line}" for line in build_shares(home / "dbt" / "target" / "run_results.json")]
    table.add(measure("opte publish --month 2010-04", [*opte, "publish", "--month", "2010-04"], env))
    results[f"{name} home"] = home
    return table


def dag_part(home: Path, work: Path, results: dict) -> Table:
    table = Table(f"DAG against opte run, month 2010-04, on {home}")
    table.floor = results.get(f"{home.parent.name} floor")
    if table.floor is None:  # a home of an earlier run: measure its floor now
        table.floor = measure("scan floor", scan_floor_cmd(home / "lake")).seconds
    env = dict(os.environ, OPTE_HOME=str(home))
    run = table.add(measure("opte run --month 2010-04", [str(BIN / "opte"), "--home", str(home), "run",
                                                          "--month", "2010-04"], env))
    airflow_home = work / "airflow_home"
    shutil.rmtree(airflow_home, ignore_errors=True)
    dag_env = dict(env, AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="false",
                   AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).resolve().parents[1] / "dags"),
                   # the first parse of a changed dbt project (for Cosmos's manifest) can take longer
                   # than Airflow's default 30 s on a busy machine
                   AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600")
    measure("airflow db migrate", [str(BIN / "airflow"), "db", "migrate"], dag_env)
    dag = table.add(measure("airflow dags test opte_monthly 2010-05-01", [
        str(BIN / "airflow"), "dags", "test", "opte_monthly", "2010-05-01", "-c", json.dumps({"force_build": True})],
        dag_env))
    for group, seconds in task_split(airflow_home / "airflow.db").items():
        table.rows.append(f"| &nbsp;&nbsp;DAG: {group} | {seconds:,.1f} s | | | |")
    table.notes.append(f"DAG / opte run: {dag.seconds / run.seconds:.2f}x ({TARGETS['dag']}); both rebuild the "
                       "unchanged lake incrementally and publish 2010-04")
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="benchmarks/out/scale", help="scratch folder (inboxes, homes)")
    ap.add_argument("--people", type=int, default=5_000_000)
    ap.add_argument("--parts", default="y1,y5,y10,dag")
    ap.add_argument("--inboxes", default=None, help="folder with ready-made y1/inbox, y5/inbox, y10/inbox")
    ap.add_argument("--no-rebuilds", dest="rebuilds", action="store_false",
                    help="skip the 2nd and 3rd full builds (warehouse size after three rebuilds)")
    ap.add_argument("--results", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = ap.parse_args()
    parts = args.parts.split(",")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    header = (f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, `benchmarks/scale.py --people {args.people} "
              f"--parts {args.parts}`, code {code_version()}, {os.cpu_count()} cores, "
              f"OPTE_DUCKDB_MEMORY_LIMIT={os.environ.get('OPTE_DUCKDB_MEMORY_LIMIT', '6GB (default)')}\n")
    append(args.results, header)
    tables = []
    for name in ("y1", "y5", "y10"):
        if name in parts:  # each part's table is written as soon as it is done (a later part may fail)
            tables.append(history_part(name, args, work, results))
            append(args.results, tables[-1].text() + "\n")
    if "dag" in parts:
        home = results.get("y1 home") or results.get("y5 home")
        for name in ("y1", "y5"):  # else a home an earlier run of this script left in --work
            if home is None and (work / name / "home" / "build_info.json").exists():
                home = work / name / "home"
        if home is None:
            raise SystemExit("the dag part needs a built y1 or y5 home: run it with y1 or y5")
        tables.append(dag_part(home, work, results))
        append(args.results, tables[-1].text() + "\n")
    summary = []
    if "y1 full" in results:
        summary.append(f"y1 full build / scan floor: {results['y1 full'].seconds / results['y1 floor']:.1f}x "
                       f"({TARGETS['full build']})")
    if "y1 incremental" in results:
        line = f"y1 incremental month / y1 full build: {results['y1 incremental'].seconds / results['y1 full'].seconds:.0%}"
        if "y5 incremental" in results:
            line += (f"; y5 incremental / y1 incremental: "
                     f"{results['y5 incremental'].seconds / results['y1 incremental'].seconds:.2f}x")
        summary.append(f"{line} ({TARGETS['incremental']})")
    if "y10 full" in results:
        m = results["y10 full"]
        summary.append(f"y10 full build: {m.seconds / 60:.1f} min, peak RSS {m.peak_rss_mb / 1024:.1f} GB ({TARGETS['y10']})")
    text = "\n### Against the targets\n" + "\n".join(f"- {s}" for s in summary) + "\n"
    print(header + "\n".join(t.text() for t in tables) + text)
    append(args.results, text)


def append(path: str, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
