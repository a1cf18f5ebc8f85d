"""`opte publish`: write one report month's publication (PUBLICATION.md is the contract).

For report month M, under `<home>/publish/<YYYY-MM>/` (or `<home>/publish/external/<YYYY-MM>/`
with `external=True`):

- `opte_<level>.csv|parquet` (office, district, region, national): M and the 12 months before;
  office files carry people only (no points columns);
- `cohort_rates_<level>.csv|parquet`: cohort weeks that had fallen due by the end of M
  (measures.publish_tables explains the rule);
- `opte_jot_conversion.csv|parquet`: district level and above, M and the 12 months before;
- `districts/<district_code>.xlsx`: one workbook per district with off-flows in M;
- `report.html`: self-contained page with inline SVG charts;
- `manifest.json`: report month, cut-off, provisional months, code version, measure
  parameters, input extract checksums, and every file with its row count and SHA-256.

External release (disclosure control, measures.disclosure): counts rounded to 5, rates
withheld under a denominator of 10, nothing below district level: no office tables, and
the district workbooks and the report leave out office rows.

Publishing only reads the warehouse. The files are written into a temporary folder beside
the target and swapped in atomically (Linux `renameat2(RENAME_EXCHANGE)`, else two renames),
so readers see the old publication or the new one, never a mix, and a failure part-way
leaves the previous publication untouched. The replaced publication's manifest is kept as
`manifest.<published_at>.json` (with those it had kept) so that revisions can be traced.
No person-level column is ever read into a published file: the queries select the contract
columns of the aggregate marts only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from measures import disclosure, locks
from measures.config import DBT_PROJECT_DIR, code_version, publish_dir
from measures.manifest import file_entry, input_extracts, write_manifest
from measures.publish_tables import (
    LEVELS, ReportMonth, build_info, check_month, check_no_personal_columns, cohort_table,
    connect, conversion_table, data_cutoff, office_districts, opte_table, provisional_months, write_csv,
    write_parquet,
)
from measures.housekeeping import remove_publish_leftovers
from measures.workbooks import DistrictContext, safe_name, write_workbook

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
    con = connect(home)
    try:
        cutoff = data_cutoff(con, home)
        check_month(con, cutoff, rm)
        tables = read_tables(con, rm, external)
        provisional = provisional_months(con, rm)
        office_map = office_districts(con, rm) if not external else pd.DataFrame(
            columns=["office_code", "district_code"])
    finally:
        con.close()

    target = publication_folder(home, rm.label, external)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _publish_lock(home):
        tmp = Path(tempfile.mkdtemp(prefix=f".{rm.label}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)
            info = build_info(home)
            parameters = info.get("parameters") or _default_parameters()
            files = write_publication(tmp, rm, cutoff, provisional, tables, office_map, external, parameters)
            kept = _keep_previous_manifests(target, tmp)
            manifest = {
                "report_month": rm.label,
                "release": "external" if external else "internal",
                "published_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "data_cutoff": cutoff.isoformat(),
                "provisional_months": provisional,
                "trend_window": {"from": f"{rm.window_start:%Y-%m}", "to": rm.label},
                "cohort_weeks_included": "weeks with count_date(cohort month) + 7 x week <= last day "
                                         "of the report month (and due at the data cut-off)",
                "code_version": code_version(),
                "build": {k: info.get(k) for k in ("built_at", "code_version", "cutoff_requested")},
                "measure_parameters": parameters,
                "disclosure_control": disclosure.RULES if external else None,
                "input_extracts": input_extracts(home),
                "previous_manifests": kept,
                "files": files,
            }
            write_manifest(tmp / "manifest.json", manifest)
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("published %s%s: %d files in %s", rm.label, " (external)" if external else "", len(files), target)
    return target


def read_tables(con, rm: ReportMonth, external: bool) -> dict[str, pd.DataFrame]:
    """Every published table of the month, by file stem (disclosure-controlled when external)."""
    levels = EXTERNAL_LEVELS if external else LEVELS
    tables: dict[str, pd.DataFrame] = {}
    for level in levels:
        tables[f"opte_{level}"] = opte_table(con, level, rm)
        tables[f"cohort_rates_{level}"] = cohort_table(con, level, rm)
    tables["opte_jot_conversion"] = conversion_table(con, rm)
    if external:
        tables = {name: disclosure.control(df) for name, df in tables.items()}
    for name, df in tables.items():
        check_no_personal_columns(name, df)
    return tables


def write_publication(folder: Path, rm: ReportMonth, cutoff, provisional, tables, office_map,
                      external: bool, parameters: dict) -> list[dict]:
    """Write every file of the publication into `folder`; returns their manifest entries."""
    entries = []
    for name in sorted(tables):
        df = tables[name]
        for ext, writer in (("csv", write_csv), ("parquet", write_parquet)):
            path = folder / f"{name}.{ext}"
            writer(df, path)
            entries.append(file_entry(folder, path, len(df)))

    (folder / "districts").mkdir()
    ctx = DistrictContext(rm, cutoff, provisional, external, parameters)
    districts = tables["opte_district"]
    districts_m = districts[districts["month"] == rm.first_day]
    cohorts = tables["cohort_rates_district"]
    offices_m = tables["opte_office"][tables["opte_office"]["month"] == rm.first_day] if not external else None
    for code in sorted(districts_m["unit_code"]):
        district_rows = districts_m[districts_m["unit_code"] == code]
        if offices_m is not None:
            members = set(office_map[office_map["district_code"] == code]["office_code"])
            office_rows = offices_m[offices_m["unit_code"].isin(members)]
        else:
            office_rows = district_rows.iloc[0:0]
        path = folder / "districts" / f"{safe_name(code)}.xlsx"
        sheets = write_workbook(path, code, district_rows, office_rows,
                                cohorts[cohorts["unit_code"] == code].reset_index(drop=True), ctx)
        entry = file_entry(folder, path, sheets["Headline"])
        entry["sheets"] = sheets
        entries.append(entry)

    from measures.report import render

    page = render(rm, cutoff, provisional, {**tables, "_office_districts": office_map},
                  kmi_targets(tables["cohort_rates_national"]), external, code_version())
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    entries.append(file_entry(folder, path, None))
    return sorted(entries, key=lambda e: e["path"])


def kmi_targets(cohorts: pd.DataFrame) -> dict[int, float]:
    """JSA target rate by week: the policy seed (dbt_project/seeds/kmi_targets.csv), overridden by
    the targets carried on the published cohort rows (the same figures, from the warehouse)."""
    targets: dict[int, float] = {}
    seed = DBT_PROJECT_DIR / "seeds" / "kmi_targets.csv"
    if seed.exists():
        df = pd.read_csv(seed)
        df = df[df["benefit_code"] == "JSA"]
        targets.update({int(w): float(t) for w, t in zip(df["week"], df["target_rate"])})
    jsa = cohorts[(cohorts["benefit_code"] == "JSA") & cohorts["target_rate"].notna()]
    targets.update({int(w): float(t) for w, t in sorted(set(zip(jsa["week"], jsa["target_rate"])))})
    return dict(sorted(targets.items()))


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
