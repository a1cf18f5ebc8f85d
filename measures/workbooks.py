"""One Excel workbook per district, laid out for people (PUBLICATION.md).

Sheets: Headline (the district and every office it had at the end of the month, those with no
off-flows included: OPtE this month, year to date against target, RAG, projection), Trend (13
months, district and each office), Exclusions, Cohorts (district and each office, projections of
weeks not yet due), Monitors (the offices on each funnel indicator), Sustainability, Revisions
(what changed since the last publication) and Notes (what counts and what does not, the data
cut-off, which figures are provisional, what each headline column means).

Every sheet: a title and a subtitle, plain-English headers (labels from measures.dictionary),
whole names, integers for people, percentages (rounded down to 0.1 %, so that 100.0 % means
the target was met), RAG cells filled by conditional formatting on their status, frozen header,
A4 landscape one page wide. The external release has no office rows. Workbooks are written
byte-reproducibly (fixed document properties and zip entry times).
"""
from __future__ import annotations

import io
import re
import zipfile
from copy import copy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from measures import charts
from measures import dictionary as dd
from measures.views import EXCLUSION_COLUMNS, View, _none

SHEETS = ("Headline", "Trend", "Exclusions", "Cohorts", "Monitors", "Sustainability", "Revisions", "Notes")
FIXED_TIME = datetime(2000, 1, 1)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
HEADER_ROW = 4  # rows 1-3: title, subtitle, note

# fills of the RAG statuses (Excel's own good / neutral / bad), applied by conditional formatting
RAG_FILLS = {"Green": "C6EFCE", "Amber": "FFEB9C", "Red": "FFC7CE"}
RAG_FONTS = {"Green": "006100", "Amber": "9C5700", "Red": "9C0006"}
FORMATS = {dd.PEOPLE: "#,##0", dd.POINTS: "#,##0", dd.SHARE: "0.0%", dd.MONTH: "mmm yyyy", dd.DATE: "d mmm yyyy",
           dd.NUMBER: "0", dd.CODE: "@", dd.NAME: "@", dd.TEXT: "@", dd.FLAG: "@"}


@dataclass
class Col:
    """One column of a sheet: its header, unit (number format) and width hint."""

    key: str
    label: str
    unit: str
    number_format: str | None = None

    @classmethod
    def of(cls, key: str, label: str | None = None, unit: str | None = None, fmt: str | None = None) -> "Col":
        c = dd.COLUMNS.get(key)
        return cls(key, label or (c.label if c else key), unit or (c.unit if c else dd.TEXT), fmt)

    @property
    def fmt(self) -> str:
        return self.number_format or FORMATS.get(self.unit, "General")


def safe_name(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", code) or "_"


def value(col: Col, v):
    """A published value as it goes into a cell."""
    v = _none(v)
    if v is None:
        return None
    if col.key in ("rag", "projected_rag"):
        return str(v).capitalize()
    if col.key in ("flag", "warning"):
        return str(v).capitalize()
    if col.unit == dd.SHARE:
        p = charts.floor_pct(v)
        return None if p is None else round(p / 100, 3)
    if col.unit in (dd.PEOPLE, dd.POINTS):  # whole people on display (#,##0); targets keep their value
        f = float(v)
        return int(f) if f.is_integer() else f
    if col.unit == dd.FLAG:
        if col.key in ("opte_is_final", "jot_is_final"):
            return "Final" if v else "Provisional"
        return "Yes" if v else "No"
    if col.unit in (dd.MONTH, dd.DATE):
        d = pd.Timestamp(v)
        return datetime(d.year, d.month, d.day)
    return v


class SheetWriter:
    """A titled table on a worksheet, formatted for reading and printing."""

    def __init__(self, ws, title: str, subtitle: str, note: str | None = None):
        from openpyxl.styles import Font

        self.ws = ws
        ws["A1"] = title
        ws["A1"].font = Font(bold=True, size=14)
        ws["A2"] = subtitle
        ws["A2"].font = Font(italic=True, size=10)
        if note:
            ws["A3"] = note
            ws["A3"].font = Font(size=10, color="7F4F00")
        self.row = HEADER_ROW
        self.columns: list[Col] = []
        self.rag_columns: list[int] = []
        self.widths: dict[int, int] = {}
        self._styles: dict[tuple[str, bool], object] = {}  # (number format, bold) -> a cell's style ids

    def header(self, columns: list[Col]) -> None:
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

        self.columns = columns
        thin = Side(style="thin", color="A6A6A6")
        fill = PatternFill("solid", start_color="DDEBF7", end_color="DDEBF7")
        for i, col in enumerate(columns, start=1):
            c = self.ws.cell(row=HEADER_ROW, column=i, value=col.label)
            c.font = Font(bold=True)
            c.fill = fill
            c.alignment = Alignment(wrap_text=True, vertical="top")
            c.border = Border(bottom=thin)
            longest_word = max((len(w) for w in col.label.split()), default=4)
            self.widths[i] = max(longest_word + 2, min(len(col.label), 14) + 1)
            if col.key in ("rag", "projected_rag"):
                self.rag_columns.append(i)
        self.ws.row_dimensions[HEADER_ROW].height = 45
        self.row = HEADER_ROW + 1

    def _style(self, fmt: str, bold: bool):
        """The style of a cell with number format `fmt` (bold or not), registered with the workbook
        once and then copied to each such cell (assigning a Font or format to every cell costs more
        than writing it)."""
        key = (fmt, bold)
        if key not in self._styles:
            from openpyxl.cell.cell import Cell
            from openpyxl.styles import Font

            probe = Cell(self.ws)
            probe.number_format = fmt
            if bold:
                probe.font = Font(bold=True)
            self._styles[key] = probe._style
        return self._styles[key]

    def append(self, values: list, bold: bool = False, formats: list[str] | None = None) -> None:
        """One row; `formats` overrides the columns' number formats cell by cell."""
        from openpyxl.cell.cell import Cell

        ws, row = self.ws, self.row
        for i, (col, v) in enumerate(zip(self.columns, values), start=1):
            fmt = formats[i - 1] if formats is not None else col.fmt
            c = Cell(ws, row=row, column=i, value=v)
            c._style = copy(self._style(fmt, bold))
            ws._cells[(row, i)] = c
            if v is not None:
                text = (charts.month_label(v) if isinstance(v, datetime) else
                        f"{v:,.1%}" if col.unit == dd.SHARE and isinstance(v, (int, float)) else
                        f"{v:,}" if isinstance(v, (int, float)) else str(v))
                self.widths[i] = max(self.widths.get(i, 8), min(len(text) + 2, 60))
        self.row += 1

    def message(self, text: str) -> None:
        self.ws.cell(row=self.row, column=1, value=text)
        self.row += 1

    def finish(self, frozen_columns: int = 0) -> int:
        """Widths, frozen header, RAG fills, print setup; returns the data rows written."""
        from openpyxl.formatting.rule import CellIsRule
        from openpyxl.styles import Font, PatternFill
        from openpyxl.utils import get_column_letter
        from openpyxl.worksheet.properties import PageSetupProperties

        ws = self.ws
        for i, width in self.widths.items():
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=frozen_columns + 1).coordinate
        last = max(self.row - 1, HEADER_ROW + 1)
        for i in self.rag_columns:
            letter = get_column_letter(i)
            area = f"{letter}{HEADER_ROW + 1}:{letter}{last}"
            for word, colour in RAG_FILLS.items():
                ws.conditional_formatting.add(area, CellIsRule(
                    operator="equal", formula=[f'"{word}"'],
                    fill=PatternFill("solid", start_color=colour, end_color=colour),
                    font=Font(color=RAG_FONTS[word])))
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
        ws.page_margins.left = ws.page_margins.right = 0.4
        ws.page_margins.top = ws.page_margins.bottom = 0.5
        ws.oddFooter.center.text = "Page &P of &N"
        ws.oddHeader.left.text = "&A"
        return self.row - HEADER_ROW - 1


def _subtitle(view: View, district_label: str) -> str:
    ctx = view.ctx
    return (f"{district_label}. Report month {charts.month_label(ctx.month.first_day)}; data cut-off "
            f"{ctx.cutoff.isoformat()}." + (" External release: counts rounded to 5, no office rows."
                                            if ctx.external else ""))


def _prov_note(view: View) -> str | None:
    ctx = view.ctx
    if ctx.provisional.get("opte") or ctx.provisional.get("jot"):
        return ctx.provisional_note()
    return None


HEADLINE = ["unit_code", "unit_name", "opte_offflows", "offflows", "opte_ytd", "opte_target_ytd", "pct_of_target_ytd",
            "rag", "opte_target_annual", "opte_projected_annual", "projected_pct_of_target", "projected_rag",
            "opte_points", "jot_points"]
HEADLINE_LABELS = {"unit_code": "Code", "unit_name": "District / office", "opte_offflows": "OPtE off-flows this month",
                   "offflows": "All off-flows this month", "opte_points": "OPtE points (district only)",
                   "jot_points": "JOT points (district only)"}


def headline_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.active
    ws.title = "Headline"
    w = SheetWriter(ws, f"OPtE headline: {label}", _subtitle(view, label), _prov_note(view))
    rows = view.headline(code)
    present = [c for c in HEADLINE if c in rows.columns and (c not in ("opte_projected_annual", "projected_pct_of_target",
                                                                        "projected_rag") or c in _opte_columns(view))]
    cols = [Col.of(c, HEADLINE_LABELS.get(c)) for c in present]
    w.header(cols)
    for i, (_, r) in enumerate(rows.iterrows()):
        vals = [value(c, r.get(c.key)) for c in cols]
        if r["level"] == "office":  # people only below district level
            vals = [None if c.key in ("opte_points", "jot_points") else v for c, v in zip(cols, vals)]
        w.append(vals, bold=i == 0)
    return w.finish(frozen_columns=2)


def _opte_columns(view: View) -> set[str]:
    t = view.table("opte_district")
    return set(t.columns) if t is not None else set()


def trend_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Trend")
    w = SheetWriter(ws, f"Trend over 13 months: {label}", _subtitle(view, label),
                    "(P) marks a month whose OPtE is provisional. " + (_prov_note(view) or ""))
    months = view.ctx.month.months
    prov = set(view.ctx.provisional.get("opte", []))
    cols = [Col("unit_code", "Code", dd.CODE), Col("unit_name", "District / office", dd.NAME),
            Col("measure", "Figure", dd.TEXT)]
    cols += [Col(f"m{i}", f"{charts.month_label(m)}{' (P)' if f'{m:%Y-%m}' in prov else ''}", dd.PEOPLE)
             for i, m in enumerate(months)]
    w.header(cols)
    offices = view.office_codes(code)
    blocks = [("opte_offflows", "OPtE off-flows", dd.PEOPLE), ("opte_ytd", "OPtE year to date", dd.PEOPLE),
              ("pct_of_target_ytd", "% of year-to-date target", dd.SHARE)]
    for key, measure, unit in blocks:
        for level, codes in (("district", [code]), ("office", offices)):
            if not codes:
                continue
            grid = view.trend_matrix(level, codes, key)
            names = view.trend_matrix(level, codes, "unit_name")
            for unit_code in codes:
                name = next((n for n in names.loc[unit_code].tolist() if isinstance(n, str)), None) \
                    if unit_code in names.index else None
                values = [value(Col("x", "", unit), v) for v in grid.loc[unit_code].tolist()]
                w.append([unit_code, name, measure, *values], bold=level == "district",
                         formats=[c.fmt for c in cols[:3]] + [FORMATS[unit]] * (len(cols) - 3))
    return w.finish(frozen_columns=3)


def exclusions_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Exclusions")
    w = SheetWriter(ws, f"What took off-flows out of OPtE: {label}", _subtitle(view, label), _prov_note(view))
    cols = [Col.of(c, {"unit_code": "Code", "unit_name": "District / office"}.get(c))
            for c in EXCLUSION_COLUMNS if c != "level"]
    w.header(cols)
    for i, (_, r) in enumerate(view.exclusions(code).iterrows()):
        w.append([value(c, r.get(c.key)) for c in cols], bold=i == 0)
    return w.finish(frozen_columns=2)


def cohorts_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Cohorts")
    targets = view.kmi_targets()
    w = SheetWriter(ws, f"Cohort off-flow rates: {label}", _subtitle(view, label),
                    "Share of each monthly cohort of new spells off benefit by each week; JSA targets "
                    + ", ".join(f"{t:.0%} by week {k}" for k, t in targets.items())
                    + ". A week not yet due shows its projection, where there is one. The district: every benefit; "
                    "its offices: JSA (cohort_rates_office.csv has every benefit).")
    frames = [view.cohort_rows("district", [code])]
    offices = view.office_codes(code)
    if offices:  # offices: the JSA cohorts of the KMI (every benefit is in cohort_rates_office.csv)
        office_rows = view.cohort_rows("office", offices)
        frames.append(office_rows[office_rows["benefit_code"] == "JSA"])
    rows = pd.concat([f for f in frames if f is not None and len(f)], ignore_index=True) if any(
        f is not None and len(f) for f in frames) else pd.DataFrame()
    weeks = sorted(rows["week"].dropna().astype(int).unique()) if len(rows) else sorted(targets)
    has_projection = len(rows) and "projected_rate" in rows.columns
    cols = [Col("unit_code", "Code", dd.CODE), Col("unit_name", "District / office", dd.NAME),
            Col.of("benefit_code"), Col.of("cohort_month"), Col.of("cohort_size")]
    for wk in weeks:
        cols.append(Col(f"rate_{wk}", f"Off benefit by week {wk}", dd.SHARE))
        if has_projection:
            cols.append(Col(f"proj_{wk}", f"Week {wk} projected (not yet due)", dd.SHARE))
    w.header(cols)
    if not len(rows):
        w.message("No cohort has fallen due in the 24 months to the report month.")
        return w.finish(frozen_columns=2)
    order = {c: i for i, c in enumerate([code, *offices])}
    due = rows["is_due"].fillna(False).astype(bool)
    rows = rows.assign(_u=rows["unit_code"].map(order),
                       _b=(rows["benefit_code"] != "JSA").astype(int),
                       _rate=rows["offflow_rate"].astype("Float64").where(due),
                       _proj=(rows["projected_rate"].astype("Float64").where(~due) if has_projection else None))
    keys = ["_u", "unit_code", "_b", "benefit_code", "cohort_month"]
    first = rows.drop_duplicates(keys).set_index(keys)[["unit_name", "cohort_size"]]
    rate = _pivot_first(rows, keys, "week", "_rate")
    wide = first.join(rate.reindex(columns=weeks), how="left")
    if has_projection:
        proj = _pivot_first(rows, keys, "week", "_proj")
        wide = wide.join(proj.reindex(columns=weeks).add_prefix("p"), how="left")
    share, month_col, size_col = Col("r", "", dd.SHARE), Col.of("cohort_month"), Col.of("cohort_size")
    for key, r in zip(wide.index, wide.itertuples(index=False)):
        _, unit_code, _, benefit, cohort_month = key
        rec = dict(zip(wide.columns, r))
        vals = [unit_code, _none(rec["unit_name"]), benefit, value(month_col, cohort_month),
                value(size_col, rec["cohort_size"])]
        for wk in weeks:
            vals.append(value(share, rec.get(wk)))
            if has_projection:
                vals.append(value(share, rec.get(f"p{wk}")))
        w.append(vals, bold=unit_code == code)
    return w.finish(frozen_columns=2)


def _pivot_first(rows: pd.DataFrame, keys: list[str], column: str, values: str) -> pd.DataFrame:
    """`rows` wide: one row per `keys`, one column per value of `column`, the first non-null `values`
    of each cell (what pivot_table(aggfunc="first") gives for the keys present, without the
    product of every key level with every other that pivot_table(dropna=False) builds first)."""
    return rows.groupby([*keys, column], sort=True, dropna=False)[values].first().unstack(column)


def monitors_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Monitors")
    w = SheetWriter(ws, f"Comparing offices fairly: {label}", _subtitle(view, label),
                    "Each office's share over the 12 months to the report month against the national share; "
                    "High / Low: outside the 99.8 % (or 95 %) funnel limits for an office of its size.")
    cols = [Col("office_code", "Code", dd.CODE), Col("office_name", "Office", dd.NAME),
            Col("indicator", "Indicator", dd.TEXT), Col.of("numerator"), Col.of("denominator"), Col.of("share"),
            Col.of("benchmark_share"), Col.of("lower_limit"), Col.of("upper_limit"), Col.of("flag"),
            Col.of("warning")]
    w.header(cols)
    if view.ctx.external:
        w.message("Office monitors are not released outside the department (office level).")
        return w.finish(frozen_columns=2)
    monitors = view.monitors(code)
    if monitors is None:
        w.message("The office monitors appear here once the warehouse holds them (MEASURES.md section 14).")
        return w.finish(frozen_columns=2)
    if not len(monitors):
        w.message("No office of the district has a monitor this month.")
    for _, r in monitors.iterrows():
        vals = [value(c, r.get(c.key)) for c in cols]
        vals[2] = charts.INDICATOR_LABELS.get(r["indicator"], r["indicator"])
        w.append(vals)
    return w.finish(frozen_columns=2)


def sustainability_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Sustainability")
    w = SheetWriter(ws, f"Off-flows that last: {label}", _subtitle(view, label),
                    "Of each month's OPtE off-flows, how many were back on benefit (any benefit, any office) by "
                    "each week, and the share still off; blank until the week is due.")
    frames = [view.sustainability("district", [code])]
    offices = view.office_codes(code)
    if offices:
        frames.append(view.sustainability("office", offices))
    if frames[0] is None:
        w.header([Col("unit_code", "Code", dd.CODE), Col("unit_name", "District / office", dd.NAME)])
        w.message("Sustainability appears here once the warehouse holds it (MEASURES.md section 13).")
        return w.finish(frozen_columns=2)
    rows = pd.concat([f for f in frames if f is not None], ignore_index=True)
    weeks = sorted(rows["week"].dropna().astype(int).unique())
    cols = [Col("unit_code", "Code", dd.CODE), Col("unit_name", "District / office", dd.NAME), Col.of("month"),
            Col.of("opte_offflows"), Col.of("opte_is_final", "OPtE of the month")]
    for wk in weeks:
        cols += [Col(f"back_{wk}", f"Back on benefit by week {wk}", dd.PEOPLE),
                 Col(f"sus_{wk}", f"Still off benefit at week {wk}", dd.SHARE)]
    w.header(cols)
    if not len(rows):
        w.message("No OPtE off-flows in the months shown.")
        return w.finish(frozen_columns=2)
    order = {c: i for i, c in enumerate([code, *offices])}
    keys = ["_u", "unit_code", "month"]
    rows = rows.assign(_u=rows["unit_code"].map(order))
    first = rows.drop_duplicates(keys).set_index(keys)[["unit_name", "opte_offflows", "opte_is_final"]]
    back = _pivot_first(rows, keys, "week", "back_on_benefit")
    sus = _pivot_first(rows, keys, "week", "sustained_rate")
    wide = first.join(back.reindex(columns=weeks).add_prefix("b"), how="left").join(
        sus.reindex(columns=weeks).add_prefix("s"), how="left").sort_index()
    people, share = Col("b", "", dd.PEOPLE), Col("s", "", dd.SHARE)
    month_col, opte_col, final_col = Col.of("month"), Col.of("opte_offflows"), Col.of("opte_is_final")
    for key, r in zip(wide.index, wide.itertuples(index=False)):
        _, unit_code, month = key
        rec = dict(zip(wide.columns, r))
        vals = [unit_code, _none(rec["unit_name"]), value(month_col, month), value(opte_col, rec["opte_offflows"]),
                value(final_col, rec["opte_is_final"])]
        for wk in weeks:
            vals += [value(people, rec.get(f"b{wk}")), value(share, rec.get(f"s{wk}"))]
        w.append(vals, bold=unit_code == code)
    return w.finish(frozen_columns=2)


def revisions_sheet(wb, view: View, code: str, label: str) -> int:
    ws = wb.create_sheet("Revisions")
    w = SheetWriter(ws, f"What changed since the last publication: {label}", _subtitle(view, label),
                    view.ctx.previous_note())
    cols = [Col.of("file"), Col("unit_code", "Code", dd.CODE), Col("unit_name", "District / office", dd.NAME),
            Col("month", "Month", dd.TEXT), Col.of("row_key"), Col("column", "Figure", dd.TEXT),
            Col.of("old_value"), Col.of("new_value"), Col.of("change")]
    w.header(cols)
    counts, rows = view.revisions(code)
    if view.ctx.previous is None:
        w.message("No earlier publication to compare with.")
    elif not len(rows):
        w.message("No published figure of the district or its offices changed.")
    for _, r in rows.iterrows():
        column = r["column"]
        w.append([r["file"], r["unit_code"], _none(r["unit_name"]), _none(r["month"]), _none(r["row_key"]),
                  dd.COLUMNS[column].label if column in dd.COLUMNS else column, _none(r["old_value"]),
                  _none(r["new_value"]), r["change"]])
    total = int(counts["cells"].sum()) if len(counts) else 0
    if total > len(rows):
        w.message(f"{total - len(rows):,} more changed cells of this district are listed in revisions.csv.")
    return w.finish(frozen_columns=0)


def notes_lines(view: View, code: str, label: str) -> list[str]:
    ctx = view.ctx
    p = ctx.parameters
    # the count date as the build's vars set it (MEASURES.md section 5: the 2nd Thursday by default)
    occurrence, weekday = int(p.get("count_date_occurrence", 2)), int(p.get("count_date_iso_weekday", 4))
    count_days = (f"{('first', 'second', 'third', 'fourth', 'fifth')[occurrence - 1]} "
                  f"{('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday')[weekday - 1]}s")
    lines = [
        f"{label}: report month {charts.month_label(ctx.month.first_day)}",
        f"Data cut-off: {ctx.cutoff.isoformat()} (the earliest latest-extract date over claims, customers, "
        "tax employments and programme starts).",
        f"Provisional OPtE months: {', '.join(ctx.provisional.get('opte', [])) or 'none'} (final once the cut-off "
        f"is {p.get('opte_maturity_days', 28)} days past the month's end).",
        f"Provisional job outcome (JOT) months: {', '.join(ctx.provisional.get('jot', [])) or 'none'} (final once "
        f"the cut-off is {p.get('jot_maturity_days', 183)} days past the month's end).",
        "Provisional figures can move either way as later extracts arrive: a late return to benefit or a "
        "cross-flow lowers OPtE; a late HMRC notice of a job start raises job outcomes and JOT points.",
        "",
        "What counts: an off-flow is the end of a claim to a working-age benefit (JSA, ESA, IB, SDA, IS).",
        "What does not count as OPtE: off-flows of people who died, reached State Pension age, returned to the "
        "same benefit within a week, moved onto another benefit (cross-flow) or started a New Deal option; the "
        "Exclusions sheet counts each (one reason per off-flow, in that order).",
        "Year to date runs from April; the year-to-date target is the annual target x months elapsed / 12. RAG: "
        f"green at 100% of the year-to-date target or more, amber from {float(p.get('rag_amber_floor', 0.95)):.0%}, "
        "else red; blank where there is no target.",
        "Percentages are shown to 0.1%, rounded down, so that 100.0% always means the target was met (the CSV "
        "files hold the unrounded figures).",
        "Office figures are numbers of people; points (OPtE points, JOT points) are reported for the district and "
        "above only.",
        "Offices: every reporting office of the district at the end of the month (satellite offices report under "
        "their parent), those with no off-flows included (shown with 0).",
        f"Cohorts: spells starting between two count dates ({count_days}); the share off benefit by each week, "
        "for the cohorts whose first week fell due in the 24 months to the report month.",
    ]
    if ctx.external:
        lines += ["", "Disclosure control (external release): counts and points are rounded to the nearest 5; a rate "
                  "whose denominator is below 10 is withheld; every rate, percentage of target, RAG status and "
                  "projection is worked out again from the rounded figures; office rows are not released."]
    lines += ["", "What the Headline columns mean (data_dictionary.csv describes every published column):"]
    for c in HEADLINE:
        if c in dd.COLUMNS:
            try:
                text, _ = dd.meaning("opte_district", c)
            except KeyError:
                continue
            lines.append(f"{HEADLINE_LABELS.get(c, dd.label(c))}: {text}")
    return lines


def notes_sheet(wb, view: View, code: str, label: str) -> int:
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.properties import PageSetupProperties

    ws = wb.create_sheet("Notes")
    ws["A1"] = f"Notes: {label}"
    ws["A1"].font = Font(bold=True, size=14)
    ws.column_dimensions["A"].width = 130
    lines = notes_lines(view, code, label)
    for i, line in enumerate(lines, start=HEADER_ROW):
        c = ws.cell(row=i, column=1, value=line)
        c.alignment = Alignment(wrap_text=True, vertical="top")
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    return len(lines)


def write_workbook(path: Path, view: View, code: str, name: str | None) -> dict[str, int]:
    """Write one district workbook; returns the data rows per sheet."""
    from openpyxl import Workbook

    label = f"{name or code} ({code})"
    wb = Workbook()
    rows = {
        "Headline": headline_sheet(wb, view, code, label),
        "Trend": trend_sheet(wb, view, code, label),
        "Exclusions": exclusions_sheet(wb, view, code, label),
        "Cohorts": cohorts_sheet(wb, view, code, label),
        "Monitors": monitors_sheet(wb, view, code, label),
        "Sustainability": sustainability_sheet(wb, view, code, label),
        "Revisions": revisions_sheet(wb, view, code, label),
        "Notes": notes_sheet(wb, view, code, label),
    }
    wb.properties.creator = "opte pipeline"
    wb.properties.title = f"OPtE {view.ctx.month.label} district {code}"
    wb.properties.created = FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_reproducible_zip(buf.getvalue()))
    return rows


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
