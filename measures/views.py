"""The published tables seen district by district: what a district workbook and page show.

Both the workbooks (measures.workbooks) and the pages (measures.report) read their figures from
here, so that a district's workbook and page always agree with each other and with the published
CSV files. Nothing here applies a rule of the measures: every figure is a published one (for the
external release, the disclosure-controlled one), selected and arranged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from measures import charts
from measures.publish_tables import ReportMonth

UNALLOCATED = "UNALLOCATED"
HEADLINE_COLUMNS = ["level", "unit_code", "unit_name", "offflows", "opte_offflows", "opte_ytd", "opte_target_ytd",
                    "pct_of_target_ytd", "rag", "opte_target_annual", "opte_projected_annual",
                    "projected_pct_of_target", "projected_rag", "proxy_offflows", "opte_nowcast", "opte_points",
                    "jot_points", "has_offflows", "is_open_at_month_end"]
EXCLUSION_COLUMNS = ["level", "unit_code", "unit_name", "offflows", "excluded_died", "excluded_retired",
                     "excluded_returned_within_week", "excluded_cross_flow", "excluded_programme_start",
                     "opte_offflows", "opte_share_of_offflows"]
FROM_MONTHLY = ["excluded_died", "excluded_retired", "excluded_returned_within_week", "excluded_cross_flow",
                "excluded_programme_start", "opte_share_of_offflows", "opte_points", "job_outcomes",
                "jot_points", "proxy_offflows", "opte_nowcast", "opte_projected_annual",
                "projected_pct_of_target", "projected_rag", "opte_is_final", "jot_is_final"]
COUNTS_ZERO_WITHOUT_ROW = ["offflows", "opte_offflows", "excluded_died", "excluded_retired",
                           "excluded_returned_within_week", "excluded_cross_flow", "excluded_programme_start",
                           "proxy_offflows"]


@dataclass
class Context:
    """What every page and workbook of one publication says about itself."""

    month: ReportMonth
    cutoff: date
    provisional: dict[str, list[str]]
    external: bool
    parameters: dict
    code_version: str
    previous: dict | None = None  # the publication revisions are measured against
    files: list[str] = field(default_factory=list)

    @property
    def amber_floor(self) -> float:
        return float(self.parameters.get("rag_amber_floor", 0.95))

    @property
    def opte_provisional(self) -> bool:
        return self.month.label in self.provisional.get("opte", [])

    def provisional_note(self) -> str:
        parts = []
        if self.provisional.get("opte"):
            parts.append("OPtE (off-flows and exclusions) for " + ", ".join(self.provisional["opte"]))
        if self.provisional.get("jot"):
            parts.append("job outcomes and JOT points for " + ", ".join(self.provisional["jot"]))
        return ("Provisional: " + "; ".join(parts or ["nothing"]) + ". Provisional figures can move either way "
                "as later extracts arrive: a late return to benefit or a cross-flow lowers OPtE, a late HMRC "
                "notice of a job start raises job outcomes and JOT points.")

    def previous_note(self) -> str:
        if not self.previous:
            return "This is the first publication these figures can be compared with: nothing has changed yet."
        kind = ("the publication of this month it replaces" if self.previous.get("kind") == "replaced"
                else f"the publication of {self.previous.get('report_month')}")
        when = self.previous.get("data_cutoff")
        return f"Compared with {kind} (data cut-off {when})." if when else f"Compared with {kind}."


def _none(v):
    if v is None or v is pd.NA:
        return None
    t = type(v)
    if t is str or t is int or t is bool:  # the common cases, without pd.isna
        return v
    if t is float:
        return None if v != v else v
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v.item() if hasattr(v, "item") else v


class View:
    """The month's tables, indexed for district-by-district reading."""

    def __init__(self, tables: dict[str, pd.DataFrame], ctx: Context,
                 revision_counts: pd.DataFrame | None = None, revision_rows: pd.DataFrame | None = None):
        self.tables = tables
        self.ctx = ctx
        m = ctx.month.first_day
        units = tables["_units"]
        self.units_all = units
        self.units = units[units["month"].map(lambda v: pd.Timestamp(v).date()) == m].reset_index(drop=True)
        self.revision_counts = revision_counts if revision_counts is not None else pd.DataFrame(
            columns=["district_code", "file", "change", "cells"])
        self.revision_rows = revision_rows if revision_rows is not None else pd.DataFrame()
        self._merged_cache: dict[str, pd.DataFrame] = {}
        self._grid_cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._positions_cache: dict[tuple[str, str], dict] = {}
        self._offices_cache: dict[str, list[str]] = {}

    def _select(self, name: str, column: str, codes: list) -> pd.DataFrame | None:
        """The rows of table `name` whose `column` is one of `codes`, in the table's order: the same
        frame as `t[t[column].isin(codes)]`, from positions grouped once per table (a district's
        pages and workbook select from the same national tables many times)."""
        t = self.tables.get(name) if name != "_units" else self.units_all
        if t is None:
            return None
        key = (name, column)
        if key not in self._positions_cache:
            self._positions_cache[key] = {k: v for k, v in t.groupby(column, sort=False).indices.items()}
        positions = self._positions_cache[key]
        found = [positions[c] for c in dict.fromkeys(codes) if c in positions]
        return t.iloc[np.sort(np.concatenate(found)) if found else np.array([], dtype=np.intp)]

    # ------------------------------------------------------------ units

    def table(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)

    def districts(self) -> list[tuple[str, str | None]]:
        """The real districts of the month (not UNALLOCATED): open at its end or with off-flows in it."""
        d = self.units[(self.units["level"] == "district") & (self.units["unit_code"] != UNALLOCATED)]
        return [(r.unit_code, _none(r.unit_name)) for r in d.sort_values("unit_code").itertuples()]

    def regions(self) -> list[tuple[str, str | None]]:
        d = self.units[(self.units["level"] == "region") & (self.units["unit_code"] != UNALLOCATED)]
        return [(r.unit_code, _none(r.unit_name)) for r in d.sort_values("unit_code").itertuples()]

    def unit(self, level: str, code: str) -> dict:
        rows = self.units[(self.units["level"] == level) & (self.units["unit_code"] == code)]
        return {k: _none(v) for k, v in rows.iloc[0].items()} if len(rows) else {"level": level, "unit_code": code}

    def office_codes(self, district: str) -> list[str]:
        """Every office of the district at the end of the month (and any that had off-flows in it)."""
        if self.ctx.external:
            return []
        if district not in self._offices_cache:
            o = self.units[(self.units["level"] == "office") & (self.units["district_code"] == district)]
            self._offices_cache[district] = o.sort_values(["unit_name", "unit_code"],
                                                          na_position="last")["unit_code"].tolist()
        return list(self._offices_cache[district])

    # ------------------------------------------------------------ headline and exclusions

    def _month_rows(self, level: str) -> pd.DataFrame:
        t = self.tables.get(f"opte_{level}")
        if t is None:
            return pd.DataFrame(columns=["unit_code"])
        return t[t["month"] == self.ctx.month.first_day]

    def _merged(self, level: str) -> pd.DataFrame:
        """Every unit of the level at the report month: its standing from reporting_units with the month's
        published opte_monthly figures (zero counts where it had no off-flows), indexed by unit code."""
        if level not in self._merged_cache:
            units = self.units[self.units["level"] == level]
            monthly = self._month_rows(level)
            keep = ["unit_code", *[c for c in FROM_MONTHLY if c in monthly.columns]]
            merged = units.merge(monthly[keep], on="unit_code", how="left", suffixes=("", "_monthly"))
            for col in COUNTS_ZERO_WITHOUT_ROW:
                if col in merged and col in monthly.columns:
                    merged[col] = merged[col].fillna(0)
            self._merged_cache[level] = merged.set_index("unit_code", drop=False)
        return self._merged_cache[level]

    def rows(self, level: str, codes: list[str], columns: list[str]) -> pd.DataFrame:
        """One row per unit of `codes` (in that order, those the month has) for the report month."""
        merged = self._merged(level)
        present = [c for c in codes if c in merged.index]
        return merged.loc[present].reindex(columns=columns).reset_index(drop=True)

    def headline(self, district: str) -> pd.DataFrame:
        rows = [self.rows("district", [district], HEADLINE_COLUMNS)]
        offices = self.office_codes(district)
        if offices:
            rows.append(self.rows("office", offices, HEADLINE_COLUMNS))
        return pd.concat(rows, ignore_index=True)

    def exclusions(self, district: str) -> pd.DataFrame:
        rows = [self.rows("district", [district], EXCLUSION_COLUMNS)]
        offices = self.office_codes(district)
        if offices:
            rows.append(self.rows("office", offices, EXCLUSION_COLUMNS))
        return pd.concat(rows, ignore_index=True)

    def exclusion_values(self, level: str, code: str) -> dict | None:
        rows = self.rows(level, [code], EXCLUSION_COLUMNS)
        return {k: _none(v) for k, v in rows.iloc[0].items()} if len(rows) else None

    def ranked(self, level: str, codes: list[str]) -> list[charts.Ranked]:
        r = self.rows(level, codes, HEADLINE_COLUMNS)
        return [charts.Ranked(x.unit_code, _none(x.unit_name) or "", _none(x.pct_of_target_ytd), _none(x.rag),
                              _none(x.opte_ytd), _none(x.opte_target_ytd)) for x in r.itertuples()]

    # ------------------------------------------------------------ trends

    def trend_points(self, level: str, code: str) -> list[charts.TrendPoint]:
        u = self._select("_units", "unit_code", [code])
        u = u[u["level"] == level]
        t = self._select(f"opte_{level}", "unit_code", [code])
        monthly = t if t is not None else pd.DataFrame(columns=["month"])
        by_month = {pd.Timestamp(r["month"]).date(): r for _, r in monthly.iterrows()}
        prov = set(self.ctx.provisional.get("opte", []))
        points = []
        for _, r in u.sort_values("month").iterrows():
            m = pd.Timestamp(r["month"]).date()
            row = by_month.get(m)
            points.append(charts.TrendPoint(
                month=m, opte=float(_none(r["opte_offflows"]) or 0), ytd=_none(r["opte_ytd"]),
                target_ytd=_none(r["opte_target_ytd"]), target_annual=_none(r["opte_target_annual"]),
                provisional=f"{m:%Y-%m}" in prov,
                proxy=None if row is None or "proxy_offflows" not in row else _none(row["proxy_offflows"]),
                nowcast=None if row is None or "opte_nowcast" not in row else _none(row["opte_nowcast"])))
        return points

    def projection(self, level: str, code: str) -> tuple[date, float | None, float | None] | None:
        r = self.rows(level, [code], HEADLINE_COLUMNS)
        if not len(r):
            return None
        fy = self.ctx.month.financial_year
        return (date(fy + 1, 3, 1), _none(r.iloc[0]["opte_projected_annual"]), _none(r.iloc[0]["opte_target_annual"]))

    def trend_matrix(self, level: str, codes: list[str], column: str) -> pd.DataFrame:
        """Units x the 13 months of `column` from reporting_units (OPtE off-flows, % of target, ...)."""
        key = (level, column)
        if key not in self._grid_cache:
            u = self.units_all[self.units_all["level"] == level]
            grid = u.pivot_table(index="unit_code", columns="month", values=column, aggfunc="first", dropna=False)
            grid.columns = [pd.Timestamp(c).date() for c in grid.columns]
            self._grid_cache[key] = grid.reindex(columns=self.ctx.month.months)
        return self._grid_cache[key].reindex(index=codes)

    # ------------------------------------------------------------ cohorts, monitors, sustainability

    def cohort_rows(self, level: str, codes: list[str]) -> pd.DataFrame:
        t = self._select(f"cohort_rates_{level}", "unit_code", codes)
        return pd.DataFrame() if t is None else t

    def cohort_curves(self, level: str, code: str, benefit: str = "JSA", latest: int = 6) -> list[charts.CohortCurve]:
        rows = self.cohort_rows(level, [code])
        rows = rows[rows["benefit_code"] == benefit]
        curves = []
        for cohort_month, g in rows.groupby("cohort_month", sort=True):
            weeks = []
            for _, r in g.sort_values("week").iterrows():
                due = bool(_none(r["is_due"]))
                weeks.append((int(r["week"]), _none(r["offflow_rate"]) if due else None,
                              _none(r.get("projected_rate")) if not due else None))
            if any(w[1] is not None for w in weeks):
                curves.append(charts.CohortCurve(cohort_month, int(g["cohort_size"].iloc[0] or 0), weeks))
        return curves[-latest:]

    def kmi_targets(self, benefit: str = "JSA") -> dict[int, float]:
        t = self.tables.get("cohort_rates_national")
        if t is None:
            return {}
        jsa = t[(t["benefit_code"] == benefit) & t["target_rate"].notna()]
        return {int(w): float(r) for w, r in sorted(set(zip(jsa["week"], jsa["target_rate"])))}

    def monitors(self, district: str | None) -> pd.DataFrame | None:
        t = self.tables.get("office_monitors")
        if t is None or self.ctx.external:
            return None
        return t if district is None else self._select("office_monitors", "district_code", [district])

    def funnel_panels(self, monitors: pd.DataFrame) -> dict[str, tuple[float, list[charts.FunnelPoint]]]:
        panels = {}
        for indicator in charts.INDICATOR_LABELS:
            g = monitors[monitors["indicator"] == indicator]
            g = g[g["share"].notna() & g["denominator"].notna()]
            if not len(g) or g["benchmark_share"].isna().all():
                continue
            panels[indicator] = (float(g["benchmark_share"].dropna().iloc[0]), [
                charts.FunnelPoint(r.office_code, float(r.denominator), float(r.share), _none(r.flag), _none(r.warning))
                for r in g.itertuples()])
        return panels

    def sustainability(self, level: str, codes: list[str]) -> pd.DataFrame | None:
        return self._select(f"sustainability_{level}", "unit_code", codes)

    def sustainability_series(self, level: str, code: str) -> dict[int, list[tuple[date, float | None, bool]]] | None:
        rows = self.sustainability(level, [code])
        if rows is None:
            return None
        series: dict[int, list] = {}
        for _, r in rows.sort_values(["week", "month"]).iterrows():
            series.setdefault(int(r["week"]), []).append(
                (r["month"], _none(r["sustained_rate"]), _none(r["opte_is_final"]) is False))
        return series

    def agreement_points(self) -> list[tuple]:
        t = self.tables["opte_national"]
        prov_opte = set(self.ctx.provisional.get("opte", []))
        prov_jot = set(self.ctx.provisional.get("jot", []))
        return [(r["month"], _none(r.get("proxy_offflows")), _none(r["opte_offflows"]), _none(r["job_outcomes"]),
                 f"{r['month']:%Y-%m}" in prov_opte, f"{r['month']:%Y-%m}" in prov_jot)
                for _, r in t.sort_values("month").iterrows()]

    # ------------------------------------------------------------ revisions

    def revisions(self, district: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(counts by file and change, up to 200 changed cells) for a district (its own rows and its
        offices'), or for the national, regional and district-level rows (district None)."""
        counts, rows = self.revision_counts, self.revision_rows
        if district is None:
            c = counts.groupby(["file", "change"], as_index=False)["cells"].sum() if len(counts) else counts
            r = rows[rows["level"].isin(["national", "region", "district"])] if len(rows) else rows
        else:
            c = counts[counts["district_code"] == district] if len(counts) else counts
            r = rows[rows["district_code"] == district] if len(rows) else rows
        return c.reset_index(drop=True), r.reset_index(drop=True)

    def unallocated(self) -> dict | None:
        """The month's off-flows of office codes with no office record (a data-quality line, not a district)."""
        d = self.units[(self.units["level"] == "district") & (self.units["unit_code"] == UNALLOCATED)]
        n = self.units[self.units["level"] == "national"]
        if not len(d) or not len(n):
            return None
        return {"offflows": _none(d.iloc[0]["offflows"]), "opte_offflows": _none(d.iloc[0]["opte_offflows"]),
                "national_offflows": _none(n.iloc[0]["offflows"]),
                "offices": int(((self.units["level"] == "office") & (self.units["district_code"] == UNALLOCATED)).sum())}

