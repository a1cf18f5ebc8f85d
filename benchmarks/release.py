"""What the build's atomicity costs: the release step (measures/release.py) beside the dbt build.

    .venv/bin/python benchmarks/release.py --people 50000            # synth, land, build, then release alone
    .venv/bin/python benchmarks/release.py --home /path/to/built/home # a home already built (e.g. national)

A build is atomic because dbt writes a private working database and the release then writes the
released relations (marts, reference seeds, cut-off) as a Parquet snapshot and swaps in a small
catalog. This measures, on one home:

1. `opte build` (full): wall time, peak RSS, and the release's own figures from its build record
   (hashing, writing, catalog, files written and linked);
2. the release alone with nothing to reuse (every file written: what a full build pays);
3. the release alone with everything reusable (only hashed and linked: what a monthly build pays
   when a month's landing changes a few partitions, at most);

and reports each as seconds and as a share of the dbt build, with the sizes of the working
database, the snapshot and the catalog. Printed as Markdown and appended to
benchmarks/out/results.md. Not part of the test suite; do not run it at national scale on a shared
machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _measure import folder_size_mb, measure, report  # noqa: E402

from measures.config import code_version, warehouse_path, work_database_path  # noqa: E402

BIN = Path(sys.executable).parent


def release_alone(home: Path, reuse: bool) -> dict:
    """Release the working database again (same build record), in this process; the release's figures."""
    from measures import locks, release
    from measures.build import build_record

    with locks.warehouse_lock(home, shared=False, who="benchmark"):
        release.begin(home)  # the working database is complete: begin keeps it
        started = time.monotonic()
        record = release.release(home, build_record(home, None), reuse=reuse)
        wall = time.monotonic() - started
        # the catalog, the swap, the record and pruning: what the release does after the snapshot
        return {**record["release"], "wall": wall, "catalog_seconds": wall - record["release"]["snapshot_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--work", default=str(HERE / "out" / "release"), help="folder for the synthetic home")
    parser.add_argument("--home", default=None, help="a home already landed and built: skip synth, land, build")
    args = parser.parse_args()

    rows = []
    if args.home:
        home = Path(args.home).resolve()
        label = f"home {home}"
    else:
        work = Path(args.work).resolve()
        shutil.rmtree(work, ignore_errors=True)
        home, inbox = work / "home", work / "inbox"
        env = {**os.environ, "OPTE_HOME": str(home)}
        rows.append(measure(f"opte synth --people {args.people} --years {args.years}",
                            [str(BIN / "opte"), "synth", "--out", str(inbox), "--people", str(args.people),
                             "--years", str(args.years)], env=env))
        rows.append(measure("opte land", [str(BIN / "opte"), "land", "--inbox", str(inbox)], env=env))
        rows.append(measure("opte build (full, release included)", [str(BIN / "opte"), "build"], env=env))
        label = f"synthetic, {args.people:,} people, {args.years} years"
    record = json.loads((home / "build_info.json").read_text())
    dbt_seconds = float(record.get("seconds") or 0) or None
    in_build = record.get("release") or {}
    full = release_alone(home, reuse=False)
    linked = release_alone(home, reuse=True)

    def share(seconds):
        return f"{100 * seconds / dbt_seconds:.1f} %" if dbt_seconds else "-"

    snapshot = Path(json.loads((home / "build_info.json").read_text())["snapshot"])
    lines = [f"\n## Release (atomic build) {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, code {code_version()}, "
             f"{label}, {os.cpu_count()} cores",
             "| stage | wall time | peak memory |", "|---|---|---|", *[m.row() for m in rows], "",
             f"dbt build: {dbt_seconds or 0:,.1f} s; released rows: {full['rows']:,}", "",
             "| release | seconds | share of the dbt build | hashing | writing | catalog, swap, record, prune | files written | files linked |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in (("in the build above (snapshot only)", in_build), ("alone, nothing reused (a full build)", full),
                    ("alone, everything reused (nothing changed)", linked)):
        if r:
            seconds = r.get("wall", r.get("snapshot_seconds", 0.0)) or 0.0
            lines.append(f"| {name} | {seconds:,.2f} | {share(seconds)} | {r.get('hash_seconds', 0):,.2f} | "
                         f"{r.get('write_seconds', 0):,.2f} | {r.get('catalog_seconds', 0) or 0:,.2f} | "
                         f"{r.get('files_written', 0)} | {r.get('files_linked', 0)} |")
    lines += ["", "| size | MB |", "|---|---|",
              f"| working database ({work_database_path(home).name}) | {work_database_path(home).stat().st_size / 2**20:,.1f} |",
              f"| snapshot ({snapshot.name}) | {folder_size_mb(snapshot):,.1f} |",
              f"| catalog ({warehouse_path(home).name}) | {warehouse_path(home).stat().st_size / 2**20:,.2f} |"]
    report("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
