"""`opte run` and `opte backfill`: the whole chain, land -> build -> publish, as functions.

The Airflow DAG (dags/opte_monthly.py) runs the same steps as separate tasks: `land`
and `publish_month` are called from there as they are here; the build is split into one
task per dbt model by Cosmos, after which its `release` task releases the warehouse with the
same build record that `opte build` writes (measures.release).

A backfill publishes every month in a range from **one** build of the warehouse, so every
month reflects one data cut-off: the lake as it is now (later extracts, corrections and late
job outcomes included; months older than the maturity windows are final), or, with
`opte backfill --cutoff YYYY-MM-DD`, the lake as it stood on that date (only extracts dated
on or before it), which reproduces what was published then.
"""
from __future__ import annotations

import logging
import time
from datetime import date
from pathlib import Path

from measures.errors import OpteError
from measures.publish_tables import ReportMonth, add_months

log = logging.getLogger("opte.pipeline")


def land(home: Path, inbox: Path) -> None:
    """Land every extract of `inbox`; OpteError (after landing the rest) if any file was rejected whole."""
    from ingest.landing import land_inbox

    inbox = Path(inbox)
    if not inbox.is_dir():
        raise OpteError(f"inbox {inbox} is not a folder; give the folder holding <dataset>/<files>")
    report = land_inbox(inbox, Path(home))
    log.info("%s", report.summary())
    if report.rejected_files:
        names = "; ".join(f"{r.file}: {r.reason}" for r in report.rejected_files)
        raise OpteError(f"{len(report.rejected_files)} file(s) rejected whole, the rest landed: {names}; "
                        "fix or remove them and run again")


def run_month(home: Path, month: str, inbox: Path | None = None, engine: str = "duckdb") -> Path:
    """Land `inbox` (when given), build the warehouse (on `engine`), publish `month`; returns the
    publication folder."""
    from measures.build import build
    from measures.publish import publish_month

    home = Path(home)
    ReportMonth.parse(month)  # a bad month fails before any work
    if inbox is not None:
        land(home, inbox)
    build(home, engine=engine)
    return publish_month(home, month)


def months_between(from_month: str, to_month: str) -> list[str]:
    first, last = ReportMonth.parse(from_month).first_day, ReportMonth.parse(to_month).first_day
    if first > last:
        raise OpteError(f"--from {from_month} is after --to {to_month}")
    months, m = [], first
    while m <= last:
        months.append(f"{m:%Y-%m}")
        m = add_months(m, 1)
    return months


def backfill(home: Path, from_month: str, to_month: str, external: bool = False,
             cutoff: date | None = None, engine: str = "duckdb") -> list[Path]:
    """Build once (at `cutoff` when given, MEASURES.md section 11), then publish every month from
    `from_month` to `to_month` (and the external files).

    Returns the internal publication folders in month order. Every month is published from
    the same warehouse, i.e. at that one data cut-off (see the module docstring). A range that ends
    after the cut-off's month fails before anything is built.
    """
    from tqdm import tqdm

    from measures.build import build
    from measures.publish import publish_month

    home = Path(home)
    months = months_between(from_month, to_month)
    if cutoff is not None and ReportMonth.parse(months[-1]).first_day > cutoff.replace(day=1):
        raise OpteError(f"--to {to_month} is after the month of --cutoff {cutoff.isoformat()}: a month can be "
                        "published only once the cut-off has reached it")
    started = time.monotonic()
    build(home, cutoff=cutoff, engine=engine)
    folders = []
    for month in tqdm(months, desc="publishing", unit="month"):
        folders.append(publish_month(home, month))
        if external:
            publish_month(home, month, external=True)
    log.info("backfilled %d month(s) in %.1f s", len(months), time.monotonic() - started)
    return folders
