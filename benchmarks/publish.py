"""Publication benchmark: `opte publish` time, peak memory and page sizes.

    .venv/bin/python benchmarks/publish.py                      # national shape: 11 regions, 48 districts, 741 offices
    .venv/bin/python benchmarks/publish.py --home .opte_home --month 2011-03   # an existing built home

Publishing reads only the aggregate marts, so its cost follows the organisation (units x months),
not the number of people. Without `--home`, the script writes a warehouse holding only those marts
(tests/publish_fixture.py, random but consistent figures) in the national shape, which measures
publication at national scale without building the warehouse from millions of people; with
`--home`, it publishes from a warehouse built by `opte build` (e.g. the sample, or a synthetic
home from `opte synth`). Each publication runs as its own process through the `opte` command line,
measured for wall time and peak RSS of its process tree (benchmarks/_measure.py). Results are
printed as a Markdown table and appended to benchmarks/out/results.md. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import date, datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from _measure import measure, report  # noqa: E402

from measures.config import code_version  # noqa: E402

BIN = Path(sys.executable).parent


def national_geometry(regions: int, districts: int, offices: int, start: str, end: str):
    """The organisation's shape: `offices` spread over `districts` spread over `regions`."""
    from publish_fixture import Geometry

    region_codes = [f"R{i + 1:02d}" for i in range(regions)]
    district_map = {f"D{i + 1:02d}": (region_codes[i * regions // districts], f"District {i + 1}")
                    for i in range(districts)}
    district_codes = list(district_map)
    office_map = {f"O{i + 1:03d}": district_codes[i * districts // offices] for i in range(offices - 1)}
    first = date.fromisoformat(f"{start}-01")
    last = date.fromisoformat(f"{end}-01")
    cutoff = date(last.year + (last.month == 12), last.month % 12 + 1, 1).replace(day=1)
    from datetime import timedelta

    return Geometry(regions={r: f"Region {r}" for r in region_codes}, districts=district_map, offices=office_map,
                    empty_office=(f"O{offices:03d}", district_codes[-1]), unknown_office="X999",
                    first_month=first, last_month=last, cutoff=cutoff - timedelta(days=1),
                    benefits=("JSA", "ESA", "IB", "SDA", "IS"), max_events=30)


def sizes(folder: Path) -> dict:
    pages = sorted((folder / "districts").glob("*.html"), key=lambda p: p.stat().st_size)
    books = sorted((folder / "districts").glob("*.xlsx"), key=lambda p: p.stat().st_size)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"national page": (folder / "report.html").stat().st_size,
            f"largest district page ({pages[-1].stem})": pages[-1].stat().st_size if pages else 0,
            f"largest workbook ({books[-1].stem})": books[-1].stat().st_size if books else 0,
            "district pages": len(pages), "whole publication": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="benchmarks/out/publish", help="scratch folder (the marts-only home)")
    ap.add_argument("--home", default=None, help="publish from this built home instead")
    ap.add_argument("--month", default="2011-01", help="report month (default 2011-01)")
    ap.add_argument("--regions", type=int, default=11)
    ap.add_argument("--districts", type=int, default=48)
    ap.add_argument("--offices", type=int, default=741)
    ap.add_argument("--start", default="2008-04")
    ap.add_argument("--end", default="2011-03")
    ap.add_argument("--repeat", type=int, default=2, help="publications to time (the 2nd compares with the 1st)")
    args = ap.parse_args()

    if args.home:
        home = Path(args.home).resolve()
        label = f"home {home}"
    else:
        from publish_fixture import make_warehouse

        home = Path(args.work).resolve() / "home"
        if home.exists():
            shutil.rmtree(home)
        geometry = national_geometry(args.regions, args.districts, args.offices, args.start, args.end)
        started = datetime.now()
        make_warehouse(home, geometry=geometry)
        print(f"marts-only warehouse written in {(datetime.now() - started).total_seconds():.0f} s: {home}")
        label = (f"marts-only warehouse, {args.regions} regions, {args.districts} districts, {args.offices} offices, "
                 f"{args.start}..{args.end}")
    env = {**os.environ, "OPTE_HOME": str(home)}
    rows = []
    for i in range(args.repeat):
        rows.append(measure(f"opte publish --month {args.month} (run {i + 1})",
                            [str(BIN / "opte"), "publish", "--month", args.month], env=env))
    rows.append(measure(f"opte publish --month {args.month} --external",
                        [str(BIN / "opte"), "publish", "--month", args.month, "--external"], env=env))
    folder = home / "publish" / args.month
    size = sizes(folder)
    lines = [f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, code {code_version()}, {label}, "
             f"{os.cpu_count()} cores", "| stage | wall time | peak memory |", "|---|---|---|",
             *[m.row() for m in rows], "", "| file | size |", "|---|---|",
             *[f"| {k} | {v:,} |" if k == "district pages" else f"| {k} | {v / 1024:,.0f} KB |"
              for k, v in size.items()]]
    report("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
