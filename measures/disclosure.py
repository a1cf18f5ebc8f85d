"""Disclosure control for files released outside the department (PUBLICATION.md).

Rules, applied to every external table:
- every count of people (and every points sum, which is a small multiple of a count of people),
  and every estimate of a count (nowcast, year-end projection), is rounded to the nearest
  multiple of 5, halves away from zero (as Nomis publishes the claimant count);
- a rate is withheld (null) where its exact denominator is below 10;
- every derived figure is derived again from the *published* figures, so that no released figure
  contradicts another: a rate from the rounded numerator and denominator; `pct_of_target_ytd`
  from the rounded `opte_ytd` over the published `opte_target_ytd`, and `rag` from that
  percentage as published (6 decimals) by the RAG rule's thresholds; `projected_pct_of_target`
  and `projected_rag` likewise from the rounded projection; a cohort's `projected_rate` carries
  the published rate of the week it projects from with the mart's own survival ratio, and
  `projected_at_risk` compares that with the target;
- statistics computed over unit-month figures that are not released (`measure_agreement`'s
  `pearson_r` and `mean_abs_pct_error`) are withheld; its `scale` comes from the rounded totals;
- targets and target rates are policy figures, not counts of people: published as they are;
- no file below district level (no office tables, no office_monitors, no office rows in
  workbooks and pages, no office-level agreement rows).
"""
from __future__ import annotations

import pandas as pd

ROUND_TO = 5
MIN_DENOMINATOR = 10
PUBLISHED_DECIMALS = 6  # rates and percentages in the CSV files

COUNT_COLUMNS = (
    "offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
    "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "job_outcomes",
    "opte_ytd", "opte_points", "jot_points", "cohort_size", "offflowed_by_week",
    "opte_with_job_outcome", "proxy_offflows", "back_on_benefit", "numerator", "denominator",
    "x_total", "y_total",
)
ESTIMATE_COLUMNS = ("opte_nowcast", "opte_projected_annual")
# rate column -> (numerator, denominator); a "1 - a / b" rate is marked by a leading "-"
RATES = {
    "opte_share_of_offflows": ("opte_offflows", "offflows"),
    "offflow_rate": ("offflowed_by_week", "cohort_size"),
    "conversion_rate": ("opte_with_job_outcome", "opte_offflows"),
    "sustained_rate": ("-back_on_benefit", "opte_offflows"),
    "share": ("numerator", "denominator"),
}
WITHHELD = ("pearson_r", "mean_abs_pct_error")
RULES = {
    "counts_rounded_to_nearest": ROUND_TO,
    "rate_withheld_when_denominator_below": MIN_DENOMINATOR,
    "derived_figures_recomputed_from_published_figures": True,
    "lowest_level_published": "district",
}


def round_count(value):
    """Nearest multiple of 5, halves away from zero; null stays null."""
    if value is None or value is pd.NA or pd.isna(value):
        return pd.NA
    v = float(value)
    sign = -1 if v < 0 else 1
    return int(sign * int((abs(v) + ROUND_TO / 2) // ROUND_TO) * ROUND_TO)


def published(value: float) -> float:
    """A rate as it appears in the published file (6 decimals)."""
    return round(float(value), PUBLISHED_DECIMALS)


def rag_of(pct, amber_floor: float):
    """The RAG rule of MEASURES.md section 8 applied to a published percentage."""
    if pct is None or pct is pd.NA or pd.isna(pct):
        return pd.NA
    return "green" if pct >= 1.0 else "amber" if pct >= amber_floor else "red"


def _missing(v) -> bool:
    return v is None or v is pd.NA or pd.isna(v)


def control(df: pd.DataFrame, amber_floor: float) -> pd.DataFrame:
    """The externally releasable version of a published table (same columns and types)."""
    out = df.copy()
    exact = df
    for col in (*COUNT_COLUMNS, *ESTIMATE_COLUMNS):
        if col in out:
            rounded = [round_count(v) for v in out[col]]
            out[col] = pd.array(rounded, dtype="Int64" if col in COUNT_COLUMNS else "Float64")
    for rate, (num, den) in RATES.items():
        complement = num.startswith("-")
        num = num.lstrip("-")
        if rate not in out or num not in out or den not in out:
            continue
        values = []
        for r_num, r_den, e_den, original in zip(out[num], out[den], exact[den], exact[rate]):
            if _missing(original) or _missing(e_den) or e_den < MIN_DENOMINATOR or not r_den:
                values.append(pd.NA)
            else:
                share = float(r_num) / float(r_den)
                values.append(published(1.0 - share if complement else share))
        out[rate] = pd.array(values, dtype="Float64")
    if {"pct_of_target_ytd", "opte_ytd", "opte_target_ytd"} <= set(out.columns):
        pct = [pd.NA if _missing(orig) or _missing(target) or not published(target)
               else published(float(ytd) / published(target))
               for ytd, target, orig in zip(out["opte_ytd"], out["opte_target_ytd"], exact["pct_of_target_ytd"])]
        out["pct_of_target_ytd"] = pd.array(pct, dtype="Float64")
        if "rag" in out:
            out["rag"] = pd.array([rag_of(p, amber_floor) for p in pct], dtype="string")
    if {"projected_pct_of_target", "opte_projected_annual", "opte_target_annual"} <= set(out.columns):
        pct = [pd.NA if _missing(orig) or _missing(proj) or _missing(target) or not published(target)
               else published(float(proj) / published(target))
               for proj, target, orig in zip(out["opte_projected_annual"], out["opte_target_annual"],
                                             exact["projected_pct_of_target"])]
        out["projected_pct_of_target"] = pd.array(pct, dtype="Float64")
        if "projected_rag" in out:
            out["projected_rag"] = pd.array([rag_of(p, amber_floor) for p in pct], dtype="string")
    if "projected_rate" in out:
        out = _cohort_projections(out, exact)
    if "scale" in out and {"x_total", "y_total"} <= set(out.columns):
        out["scale"] = pd.array([pd.NA if _missing(x) or not x or _missing(s) else published(float(y) / float(x))
                                 for x, y, s in zip(out["x_total"], out["y_total"], exact["scale"])],
                                dtype="Float64")
        for col in WITHHELD:
            if col in out:
                out[col] = pd.array([pd.NA] * len(out), dtype="Float64")
    return out


def _cohort_projections(out: pd.DataFrame, exact: pd.DataFrame) -> pd.DataFrame:
    """A projected week k carries the published rate of the latest due week j below it:
    1 - (1 - published rate_j) x S, with the survival ratio S = (1 - projected_k) / (1 - rate_j)
    the mart used (exact); withheld where rate_j is withheld."""
    keys = ["level", "unit_code", "benefit_code", "cohort_month"]
    projected, at_risk = [], []
    exact_rate = {}
    published_rate = {}
    for i, row in exact.iterrows():
        k = tuple(row[c] for c in keys)
        if not _missing(row["offflow_rate"]):
            exact_rate.setdefault(k, {})[int(row["week"])] = float(row["offflow_rate"])
            value = out.at[i, "offflow_rate"]
            published_rate.setdefault(k, {})[int(row["week"])] = None if _missing(value) else float(value)
    for i, row in exact.iterrows():
        value = row["projected_rate"]
        if _missing(value):
            projected.append(pd.NA)
            at_risk.append(pd.NA)
            continue
        k = tuple(row[c] for c in keys)
        below = [w for w in exact_rate.get(k, {}) if w < int(row["week"])]
        j = max(below) if below else None
        rate_j = exact_rate.get(k, {}).get(j)
        pub_j = published_rate.get(k, {}).get(j)
        if j is None or pub_j is None or rate_j is None:
            new = pd.NA
        elif rate_j >= 1.0:
            new = published(1.0) if pub_j >= 1.0 else pd.NA
        else:
            survival = (1.0 - float(value)) / (1.0 - rate_j)
            new = published(1.0 - (1.0 - pub_j) * survival)
        projected.append(new)
        target = row["target_rate"]
        at_risk.append(pd.NA if _missing(new) or _missing(target) else bool(new < float(target)))
    out["projected_rate"] = pd.array(projected, dtype="Float64")
    if "projected_at_risk" in out:
        out["projected_at_risk"] = pd.array(at_risk, dtype="boolean")
    return out
