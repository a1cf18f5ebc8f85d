"""Where the district stage of `opte publish` spends its time, in one process (no worker pool).

    .venv/bin/python benchmarks/publish_profile.py --home /tmp/h7pub --month 2010-03 --districts 4
    .venv/bin/python benchmarks/publish_profile.py --home /tmp/h7pub --month 2010-03 --profile 40

Reads the month's tables from the home's warehouse exactly as `opte publish` does, then renders the
first `--districts` districts one by one into a temporary folder (removed afterwards), printing for
each the seconds spent on its workbook (measures.workbooks), its charts (measures.charts via
measures.report.district_charts) and its page (measures.report.district_page). `--profile N` also
prints the N costliest functions (cProfile, cumulative). Nothing is written into the home. Not part
of the test suite.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measures.config import code_version  # noqa: E402
from measures.publish_tables import (  # noqa: E402
    LEVELS, ReportMonth, build_info, connect, data_cutoff, provisional_months, read_tables,
)
from measures.report import district_charts, district_page  # noqa: E402
from measures.views import Context, View  # noqa: E402
from measures.workbooks import safe_name, write_workbook  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="a built (released) home; only read")
    ap.add_argument("--month", required=True, help="report month YYYY-MM")
    ap.add_argument("--districts", type=int, default=4, help="how many districts to render (default 4)")
    ap.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = ap.parse_args()

    rm = ReportMonth.parse(args.month)
    started = time.monotonic()
    con = connect(args.home)
    try:
        cutoff = data_cutoff(con, args.home)
        tables = read_tables(con, rm, LEVELS)
        provisional = provisional_months(con, rm)
    finally:
        con.close()
    info = build_info(args.home)
    ctx = Context(rm, cutoff, provisional, False, info.get("parameters") or {}, code_version())
    view = View(tables, ctx)
    print(f"tables read in {time.monotonic() - started:.1f} s; {len(view.districts())} districts", flush=True)

    folder = Path(tempfile.mkdtemp(prefix="opte-publish-profile-"))
    profiler = cProfile.Profile() if args.profile else None
    totals = [0.0, 0.0, 0.0]
    try:
        if profiler:
            profiler.enable()
        chosen = view.districts()[:args.districts]
        for code, name in chosen:
            a = time.monotonic()
            write_workbook(folder / f"{safe_name(code)}.xlsx", view, code, name)
            b = time.monotonic()
            charts = district_charts(view, code, name)
            c = time.monotonic()
            page = district_page(view, code, name, charts)
            d = time.monotonic()
            for i, s in enumerate((b - a, c - b, d - c)):
                totals[i] += s
            print(f"{code}: workbook {b - a:.2f} s, charts {c - b:.2f} s, page {d - c:.2f} s "
                  f"({len(page.encode()):,} bytes)", flush=True)
        if profiler:
            profiler.disable()
        n = max(1, len(chosen))
        print(f"mean per district: workbook {totals[0] / n:.2f} s, charts {totals[1] / n:.2f} s, "
              f"page {totals[2] / n:.2f} s")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
