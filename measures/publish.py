"""`opte publish`: write one report month's publication (PUBLICATION.md is the contract).

For report month M, under `<home>/publish/<YYYY-MM>/` (or `<home>/publish/external/<YYYY-MM>/`
with `external=True`):

- `opte_<level>`, `cohort_rates_<level>`, `opte_jot_conversion`, and once the warehouse holds
  them `sustainability_<level>`, `office_monitors`, `measure_agreement`: CSV and typed Parquet,
  every row naming its unit and the units above it, every table with its provisional flag
  (measures.publish_tables has the windows);
- `revisions.csv|parquet`: every published cell that differs from the earlier publication (the one
  replaced, else month M-1; measures.revisions);
- `data_dictionary.csv|parquet`: every column of every published table (measures.dictionary);
- `districts/<district_code>.xlsx` and `districts/<district_code>.html`: one workbook and one page per
  real district of the month (measures.workbooks, measures.report); unallocated off-flows appear as a
  data-quality line on the national page, not as a district;
- `report.html`: the national front page, linking to every district page;
- `manifest.json`: report month, cut-off, coverage start, provisional months, code version, measure
  parameters, input extract checksums, the publication compared with, and every file with its row
  count and SHA-256.

External release (disclosure control, measures.disclosure): counts rounded to 5, rates withheld
under a denominator of 10, every derived figure worked out again from the rounded ones, nothing
below district level.

Publishing only reads the warehouse's aggregate marts, one query per table. The files are written
into a temporary folder beside the target and swapped in atomically (Linux
`renameat2(RENAME_EXCHANGE)`, else two renames), so readers see the old publication or the new
one, never a mix, and a failure part-way leaves the previous publication untouched. The replaced
publication's manifest is kept as `manifest.<published_at>.json` (with those it had kept) so that
revisions can be traced. No person-level column is ever read into a published file.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from measures import dictionary, disclosure, locks, revisions
from measures.config import code_version, publish_dir
from measures.manifest import file_entry, input_extracts, write_manifest
from measures.publish_tables import (
    LEVELS, ReportMonth, build_info, check_month, check_no_personal_columns, connect, data_cutoff,
    provisional_months, read_tables, write_csv, write_parquet,
)
from measures.housekeeping import remove_publish_leftovers
from measures.views import Context, View
from measures.workbooks import safe_name, write_workbook

log = logging.getLogger("opte.publish")

EXTERNAL_LEVELS = ("district", "region", "national")


def publication_folder(home: Path, month: str, external: bool = False) -> Path:
    root = publish_dir(Path(home))
    return (root / "external" if external else root) / ReportMonth.parse(month).label


@locks.reads_warehouse("opte publish")  # waits for a running build of the home, saying so
def publish_month(home: Path, month: str, external: bool = False) -> Path:
    """Publish report month `month` (YYYY-MM) from `<home>/warehouse.duckdb`; returns the folder.

    Raises OpteError when there is no warehouse or the month is outside it (before the
    first month with data, or after the data cut-off).
    """
    home = Path(home)
    rm = ReportMonth.parse(month)
    started = time.monotonic()
    con = connect(home)
    try:
        cutoff = data_cutoff(con, home)
        check_month(con, cutoff, rm)
        tables = read_tables(con, rm, EXTERNAL_LEVELS if external else LEVELS)
        provisional = provisional_months(con, rm)
        coverage_start = _coverage_start(con)
    finally:
        con.close()
    log.info("read the month's tables in %.1f s (%s rows)", time.monotonic() - started,
             f"{sum(len(df) for df in tables.values()):,}")

    target = publication_folder(home, rm.label, external)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _publish_lock(home):
        tmp = Path(tempfile.mkdtemp(prefix=f".{rm.label}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)
            info = build_info(home)
            parameters = info.get("parameters") or _default_parameters()
            if external:
                tables = external_tables(tables, float(parameters.get("rag_amber_floor", 0.95)))
            previous = revisions.earlier_publication(
                target, publication_folder(home, rm.previous.label, external))
            ctx = Context(rm, cutoff, provisional, external, parameters, code_version(),
                          previous=_previous_info(previous, target))
            files = write_publication(tmp, tables, ctx, previous)
            kept = _keep_previous_manifests(target, tmp)
            manifest = {
                "report_month": rm.label,
                "release": "external" if external else "internal",
                "published_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "data_cutoff": cutoff.isoformat(),
                "coverage_start": coverage_start,
                "provisional_months": provisional,
                "trend_window": {"from": f"{rm.window_start:%Y-%m}", "to": rm.label},
                "cohort_weeks_included": "complete cohorts whose first week fell due in the 24 months up to the "
                                         "report month; a week is due when count_date + 7 x week <= the last day "
                                         "of the report month and the data cut-off",
                "code_version": code_version(),
                "build": {k: info.get(k) for k in ("build_id", "built_at", "code_version", "cutoff_requested", "engine")},
                "measure_parameters": parameters,
                "disclosure_control": disclosure.RULES if external else None,
                "input_extracts": input_extracts(home),
                "revisions_compared_with": ctx.previous,
                "previous_manifests": kept,
                "files": files,
            }
            write_manifest(tmp / "manifest.json", manifest)
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("published %s%s: %d files in %s (%.1f s)", rm.label, " (external)" if external else "", len(files), target,
             time.monotonic() - started)
    return target


def external_tables(tables: dict[str, pd.DataFrame], amber_floor: float) -> dict[str, pd.DataFrame]:
    """The disclosure-controlled tables: nothing below district level, every count rounded, every
    derived figure worked out again from the rounded ones."""
    out = {}
    for name, df in tables.items():
        if name == "office_monitors" or name.endswith("_office"):
            continue
        if name == "measure_agreement":
            df = df[df["level"] != "office"].reset_index(drop=True)
        if name == "_units":
            df = df[df["level"] != "office"].reset_index(drop=True)
        out[name] = disclosure.control(df, amber_floor)
    return out


def published_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables written as files (the leading-underscore ones only feed workbooks and pages)."""
    return {k: v for k, v in tables.items() if not k.startswith("_")}


def write_publication(folder: Path, tables: dict[str, pd.DataFrame], ctx: Context, previous: Path | None) -> list[dict]:
    """Write every file of the publication into `folder`; returns their manifest entries."""
    import duckdb

    entries = []
    files = published_tables(tables)
    con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
    try:
        for name in sorted(files):
            df = files[name]
            check_no_personal_columns(name, df)
            write_csv(df, folder / f"{name}.csv", con)
            write_parquet(df, folder / f"{name}.parquet")
            for ext in ("csv", "parquet"):
                entries.append(file_entry(folder, folder / f"{name}.{ext}", len(df)))
        log.info("wrote %d tables; comparing with the earlier publication", len(files))
        stage = time.monotonic()
        n = revisions.compute(previous, folder, list(files), folder / "revisions.csv", folder / "revisions.parquet")
        log.info("revisions: %d changed cells (%.1f s)", n, time.monotonic() - stage)
        entries += [file_entry(folder, folder / f"revisions.{ext}", n) for ext in ("csv", "parquet")]
        columns = {name: list(df.columns) for name, df in files.items()}
        columns["revisions"] = list(revisions.REVISION_COLUMNS)
        columns["data_dictionary"] = list(dictionary.DICTIONARY_COLUMNS)
        dd = dictionary.data_dictionary(columns)
        write_csv(dd, folder / "data_dictionary.csv", con)
        write_parquet(dd, folder / "data_dictionary.parquet")
        entries += [file_entry(folder, folder / f"data_dictionary.{ext}", len(dd)) for ext in ("csv", "parquet")]
    finally:
        con.close()

    ctx.files = sorted([f"{name}.csv / .parquet" for name in [*files, "revisions", "data_dictionary"]])
    view = View(tables, ctx, *revisions.summary(folder / "revisions.csv"))
    stage = time.monotonic()
    entries += write_pages(folder, view)
    log.info("district workbooks and pages and the national page written (%.1f s)", time.monotonic() - stage)
    return sorted(entries, key=lambda e: e["path"])


NATIONAL = None  # the job of the national page among the district jobs


def write_pages(folder: Path, view: View) -> list[dict]:
    """districts/<code>.xlsx and districts/<code>.html for every real district of the month, and
    the national page report.html.

    Rendering (charts and workbooks) is most of the publication's time, so with many districts it
    is shared between this process and one forked worker process per further core (at most
    `OPTE_PUBLISH_WORKERS` processes, default 2): the workers inherit the month's tables
    copy-on-write and write into the same temporary folder. Every process takes its next page from
    one shared queue, the costliest first (the national page, then the districts with the most
    offices), so that every core stays busy to the end. The files do not depend on who wrote them.
    """
    (folder / "districts").mkdir()
    districts = view.districts()
    workers = publish_workers(len(districts))
    if workers <= 1:
        return [e for job in [*districts, NATIONAL] for e in _page_files(folder, view, job)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    offices = {code: len(view.office_codes(code)) for code, _ in districts}
    jobs = [NATIONAL, *sorted(districts, key=lambda d: (-offices[d[0]], d[0]))]
    _import_renderers()  # once, before forking: each worker would otherwise import them again
    context = multiprocessing.get_context("fork")
    taken = context.Value("i", 0)  # the queue: the index of the next job, shared by every process
    global _FORKED
    _FORKED = (folder, view, jobs, taken)
    try:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
            futures = [pool.submit(_take_jobs) for _ in range(workers - 1)]
            try:
                entries = _take_jobs()
            except BaseException:
                with taken.get_lock():  # the workers stop after their current page
                    taken.value = len(jobs)
                raise
            for future in futures:
                entries += future.result()
        return entries
    finally:
        _FORKED = None


_FORKED: tuple | None = None  # (folder, view, jobs, index of the next job), inherited by the workers
PARALLEL_FROM_DISTRICTS = 6


def publish_workers(districts: int) -> int:
    if districts < PARALLEL_FROM_DISTRICTS:
        return 1
    try:
        wanted = int(os.environ.get("OPTE_PUBLISH_WORKERS", "2"))
    except ValueError:
        wanted = 2
    return max(1, min(wanted, os.cpu_count() or 1, districts))


def _import_renderers() -> None:
    """Import matplotlib's SVG backend and openpyxl (about a second of CPU) in the parent."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import openpyxl  # noqa: F401

    import measures.report  # noqa: F401


def _take_jobs() -> list[dict]:
    """Render the next job of the shared queue until none is left; returns the files' entries."""
    folder, view, jobs, taken = _FORKED
    entries = []
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value = i + 1
        if i >= len(jobs):
            return entries
        entries += _page_files(folder, view, jobs[i])


def _page_files(folder: Path, view: View, job: tuple[str, str | None] | None) -> list[dict]:
    """The files of one job: a district's workbook and page, or (NATIONAL) report.html."""
    from measures.report import district_charts, district_page, national_charts, national_page

    if job is NATIONAL:
        path = folder / "report.html"
        path.write_text(national_page(view, national_charts(view)), encoding="utf-8")
        return [file_entry(folder, path, None)]
    code, name = job
    path = folder / "districts" / f"{safe_name(code)}.xlsx"
    sheets = write_workbook(path, view, code, name)
    entry = file_entry(folder, path, sheets["Headline"])
    entry["sheets"] = sheets
    page = folder / "districts" / f"{safe_name(code)}.html"
    page.write_text(district_page(view, code, name, district_charts(view, code, name)), encoding="utf-8")
    return [entry, file_entry(folder, page, None)]


def _previous_info(previous: Path | None, target: Path) -> dict | None:
    if previous is None:
        return None
    try:
        m = json.loads((previous / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return {"kind": "replaced" if previous == target else "previous month", "report_month": m.get("report_month"),
            "published_at": m.get("published_at"), "data_cutoff": m.get("data_cutoff")}


def _coverage_start(con) -> str | None:
    """The warehouse's coverage start (MEASURES.md section 9), once it records one."""
    try:
        row = con.execute("select max(coverage_start) from marts.opte_monthly").fetchone()
    except Exception:  # an older warehouse: the column does not exist yet
        return None
    return row[0].isoformat() if row and row[0] is not None else None


def _default_parameters() -> dict:
    try:
        from measures.build import measure_parameters

        return measure_parameters()
    except Exception:  # the notes fall back to the spec's defaults
        return {}


# ---------------------------------------------------------------- atomic replacement


@contextmanager
def _publish_lock(home: Path):
    """One publisher at a time per home (the swap reads the previous manifest); whoever takes
    it first removes what dead publishers left (measures.housekeeping)."""
    with locks.publish_lock(home):
        remove_publish_leftovers(publish_dir(home))
        yield


def _keep_previous_manifests(target: Path, tmp: Path) -> list[str]:
    """Copy the replaced publication's manifest (and those it kept) into the new folder."""
    import json

    if not target.exists():
        return []
    kept = []
    for old in sorted(target.glob("manifest.*.json")):
        shutil.copy2(old, tmp / old.name)
        kept.append(old.name)
    current = target / "manifest.json"
    if current.exists():
        try:
            stamp = datetime.fromisoformat(json.loads(current.read_text())["published_at"])
        except (KeyError, ValueError, json.JSONDecodeError):
            stamp = datetime.fromtimestamp(current.stat().st_mtime, timezone.utc)
        name = f"manifest.{stamp.astimezone(timezone.utc):%Y%m%dT%H%M%S.%fZ}.json"
        shutil.copy2(current, tmp / name)
        kept.append(name)
    return sorted(set(kept))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2); False when the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_in(tmp: Path, target: Path) -> None:
    """Make `tmp` the publication at `target`, atomically; the old one is removed afterwards."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp)  # now holds the replaced publication
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
