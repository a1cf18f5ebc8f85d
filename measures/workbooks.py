"""One Excel workbook per district for its performance team (PUBLICATION.md).

Sheets: Headline (the district and each of its offices: OPtE this month, year to date
against target, RAG; points for the district only), Exclusions (the month's off-flows by
exclusion reason), Cohorts (the district's cohort off-flow rates due by the end of the
month), Notes (what counts and what does not, the data cut-off, which figures are
provisional). External workbooks leave out the office rows.

Workbooks are written byte-reproducibly: fixed document properties and zip entry times.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from measures.publish_tables import ReportMonth

SHEETS = ("Headline", "Exclusions", "Cohorts", "Notes")
HEADLINE_COLUMNS = ["level", "unit_code", "unit_name", "opte_offflows", "opte_ytd", "opte_target_ytd",
                    "pct_of_target_ytd", "rag", "opte_points", "jot_points", "opte_is_final"]
EXCLUSION_COLUMNS = ["level", "unit_code", "unit_name", "offflows", "excluded_died", "excluded_retired",
                     "excluded_returned_within_week", "excluded_cross_flow", "excluded_programme_start",
                     "opte_offflows", "opte_share_of_offflows"]
FIXED_TIME = datetime(2000, 1, 1)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class DistrictContext:
    month: ReportMonth
    cutoff: date
    provisional: dict[str, list[str]]
    external: bool
    parameters: dict


def safe_name(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", code) or "_"


def _cell(value):
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _write_sheet(ws, df: pd.DataFrame, percent_columns=()) -> None:
    from openpyxl.styles import Font

    ws.append(list(df.columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in df.itertuples(index=False, name=None):
        ws.append([_cell(v) for v in row])
    for idx, col in enumerate(df.columns, start=1):
        letter = ws.cell(row=1, column=idx).column_letter
        ws.column_dimensions[letter].width = max(12, min(40, len(col) + 2))
        fmt = "0.0%" if col in percent_columns else ("yyyy-mm-dd" if col in ("month", "cohort_month", "due_date")
                                                     else ("0.00" if col.startswith("opte_target") else None))
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                cell.number_format = fmt
    ws.freeze_panes = "A2"


def notes_lines(district_code: str, district_name: str | None, ctx: DistrictContext) -> list[str]:
    p = ctx.parameters
    provisional_opte = ", ".join(ctx.provisional.get("opte", [])) or "none"
    provisional_jot = ", ".join(ctx.provisional.get("jot", [])) or "none"
    lines = [
        f"District {district_code} {district_name or ''}".rstrip() + f": report month {ctx.month.label}",
        f"Data cut-off: {ctx.cutoff.isoformat()} (the earliest latest-extract date over claims, customers, "
        "tax employments and programme starts).",
        f"Provisional OPtE months shown here: {provisional_opte} (OPtE for a month is final once the cut-off "
        f"is {p.get('opte_maturity_days', 28)} days past its end).",
        f"Provisional JOT months shown here: {provisional_jot} (job outcomes are final once the cut-off is "
        f"{p.get('jot_maturity_days', 183)} days past the month's end).",
        "",
        "What counts: an off-flow is the end of a claim to a working-age benefit (JSA, ESA, IB, SDA, IS).",
        "What does not count as OPtE: off-flows of people who died, reached State Pension age, returned to "
        "the same benefit within a week, moved onto another benefit (cross-flow) or started a New Deal "
        "option; the Exclusions sheet counts each (one reason per off-flow, in that order).",
        "Year to date runs from April; the YTD target is the annual target x months elapsed / 12. "
        f"RAG: green at 100% of the YTD target or more, amber from {p.get('rag_amber_floor', 0.95):.0%}, "
        "else red; blank where there is no target.",
        "Office figures are numbers of people; points (OPtE points, JOT points) are reported for the "
        "district and above only.",
        "Cohorts: spells starting between two count dates (second Thursdays); the share off benefit by "
        "week 13, 26 and 52 against targets of 56%, 78% and 92% (JSA). Only weeks that had fallen due by "
        "the end of the report month are shown.",
        "Offices are the reporting offices with off-flows in this district in the report month "
        "(satellite offices report under their parent).",
    ]
    if ctx.external:
        lines += [
            "",
            "Disclosure control (external release): counts and points are rounded to the nearest 5; "
            "a rate whose denominator is below 10 is withheld; rates are recomputed from the rounded "
            "counts; office rows are not released.",
        ]
    return lines


def write_workbook(path: Path, district_code: str, district: pd.DataFrame, offices: pd.DataFrame,
                   cohorts: pd.DataFrame, ctx: DistrictContext) -> dict[str, int]:
    """Write one district workbook; returns the data rows per sheet."""
    from openpyxl import Workbook

    units = pd.concat([district, offices], ignore_index=True) if not ctx.external else district
    headline = units.reindex(columns=HEADLINE_COLUMNS)
    exclusions = units.reindex(columns=EXCLUSION_COLUMNS)
    name = district["unit_name"].iloc[0] if len(district) else None

    wb = Workbook()
    ws = wb.active
    ws.title = "Headline"
    _write_sheet(ws, headline, percent_columns=("pct_of_target_ytd",))
    _write_sheet(wb.create_sheet("Exclusions"), exclusions, percent_columns=("opte_share_of_offflows",))
    _write_sheet(wb.create_sheet("Cohorts"), cohorts, percent_columns=("offflow_rate", "target_rate"))
    notes = wb.create_sheet("Notes")
    notes.column_dimensions["A"].width = 120
    for line in notes_lines(district_code, name, ctx):
        notes.append([line])

    wb.properties.creator = "opte pipeline"
    wb.properties.title = f"OPtE {ctx.month.label} district {district_code}"
    wb.properties.created = FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_reproducible_zip(buf.getvalue()))
    return {"Headline": len(headline), "Exclusions": len(exclusions), "Cohorts": len(cohorts),
            "Notes": len(notes_lines(district_code, name, ctx))}


def _reproducible_zip(data: bytes) -> bytes:
    """Re-pack an xlsx with fixed entry times and fixed core properties (openpyxl stamps 'now')."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)",
                                 rb"\g<1>" + stamp.encode() + rb"\g<2>", content)
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, content)
    return out.getvalue()
