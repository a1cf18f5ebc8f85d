"""DuckDB and Spark build times side by side: the bundled sample and a synthetic year.

    .venv/bin/python benchmarks/engines.py [--people 200000] [--work /tmp/opte_engines] [--skip-sample]

For each input (the sample inbox; a year of `--people` synthetic customers, 2009-04..2010-03)
it lands one home, copies it for the other engine, and times `opte build` and
`opte build --engine spark` (wall time, peak memory of the process tree), then checks that every
mart agrees between the two builds. Results are printed as a Markdown table and appended to
benchmarks/out/results.md. On a 2-core machine Spark is expected to be slower: the figures say by
how much, they are not a target. Needs the Spark extra and a Java runtime (README, "Spark").
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _measure import measure  # noqa: E402

OPTE = str(Path(sys.executable).with_name("opte"))


def marts_agree(spark_home: Path, duckdb_home: Path) -> str:
    """Every mart of the two builds and the relations publication reads besides, cell for cell
    (tests/warehouse_compare.py, the suite's one comparison): the number of marts, or what differs."""
    from warehouse_compare import mart_tables, marts_differences

    duck, spark = duckdb_home / "warehouse.duckdb", spark_home / "warehouse.duckdb"
    differ = marts_differences(duck, spark) + marts_differences(
        duck, spark, schema="intermediate", tables=("int_coverage_start", "int_data_cutoff"))
    if differ:
        return "DIFFER: " + "; ".join(differ)
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    try:
        con.execute(f"attach '{duck}' as duck (read_only)")
        count = len(mart_tables(con, "duck"))
    finally:
        con.close()
    return f"{count} marts, zero differences"


def run_pair(label: str, inbox: Path, work: Path, env: dict) -> list[str]:
    duck_home, spark_home = work / f"{label}_duckdb", work / f"{label}_spark"
    for h in (duck_home, spark_home):
        shutil.rmtree(h, ignore_errors=True)
    subprocess.run([OPTE, "--home", str(duck_home), "land", "--inbox", str(inbox)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.copytree(duck_home, spark_home, ignore=shutil.ignore_patterns(".*.lock"))
    rows = [measure(f"{label}: opte build (DuckDB)", [OPTE, "--home", str(duck_home), "build"], env).row(),
            measure(f"{label}: opte build --engine spark", [OPTE, "--home", str(spark_home), "build",
                                                           "--engine", "spark"], env).row()]
    rows.append(f"| {label}: marts agree | {marts_agree(spark_home, duck_home)} | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--work", default="/tmp/opte_engines")
    parser.add_argument("--skip-sample", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OPTE_DUCKDB_MEMORY_LIMIT=os.environ.get("OPTE_DUCKDB_MEMORY_LIMIT", "4GB"))
    rows = []
    if not args.skip_sample:
        rows += run_pair("sample", REPO / "data_samples" / "inbox", work, env)
    inbox = work / f"inbox_{args.people}"
    if not inbox.exists():
        subprocess.run([OPTE, "synth", "--out", str(inbox), "--people", str(args.people), "--start", "2009-04",
                        "--end", "2010-03"], env=env, check=True, stdout=subprocess.DEVNULL)
    rows += run_pair(f"{args.people:,} people, 2009-04..2010-03", inbox, work, env)
    code = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"],
                          capture_output=True, text=True).stdout.strip()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n## {stamp}, code {code}, DuckDB and Spark builds, {os.cpu_count()} cores\n"
            "| stage | wall time | peak memory |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    print(text)
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    with open(out / "results.md", "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
