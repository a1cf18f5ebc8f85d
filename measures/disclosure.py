"""Disclosure control for files released outside the department (PUBLICATION.md).

Rules, applied to every external table:
- every count of people (and every points sum, which is a small multiple of a count of
  people) is rounded to the nearest multiple of 5, halves away from zero (as Nomis
  publishes the claimant count);
- a rate is withheld (null) where its exact denominator is below 10;
- a rate that is published is recomputed from the *rounded* numerator and denominator,
  so that no exact count can be recovered from a rate and its published denominator
  (likewise `pct_of_target_ytd` = rounded `opte_ytd` / `opte_target_ytd`; the RAG status,
  a three-way category, is kept as computed from the exact figures);
- targets and target rates are policy figures, not counts of people: published as they are;
- no file below district level (no office tables; workbooks and the report leave out
  office rows).
"""
from __future__ import annotations

import pandas as pd

ROUND_TO = 5
MIN_DENOMINATOR = 10

COUNT_COLUMNS = (
    "offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
    "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "job_outcomes",
    "opte_ytd", "opte_points", "jot_points", "cohort_size", "offflowed_by_week",
    "opte_with_job_outcome",
)
# rate column -> (numerator, denominator)
RATES = {
    "opte_share_of_offflows": ("opte_offflows", "offflows"),
    "offflow_rate": ("offflowed_by_week", "cohort_size"),
    "conversion_rate": ("opte_with_job_outcome", "opte_offflows"),
}
RULES = {
    "counts_rounded_to_nearest": ROUND_TO,
    "rate_withheld_when_denominator_below": MIN_DENOMINATOR,
    "rates_recomputed_from_rounded_counts": True,
    "lowest_level_published": "district",
}


def round_count(value):
    """Nearest multiple of 5, halves away from zero; null stays null."""
    if value is None or value is pd.NA or pd.isna(value):
        return pd.NA
    v = int(value)
    sign = -1 if v < 0 else 1
    return sign * ((abs(v) + ROUND_TO // 2) // ROUND_TO) * ROUND_TO


def control(df: pd.DataFrame) -> pd.DataFrame:
    """The externally releasable version of a published table (same columns and types)."""
    out = df.copy()
    exact = df.copy()
    for col in COUNT_COLUMNS:
        if col in out:
            out[col] = pd.array([round_count(v) for v in out[col]], dtype="Int64")
    for rate, (num, den) in RATES.items():
        if rate not in out or num not in out or den not in out:
            continue
        values = []
        for r_num, r_den, e_den, original in zip(out[num], out[den], exact[den], exact[rate]):
            if original is pd.NA or pd.isna(original) or pd.isna(e_den) or e_den < MIN_DENOMINATOR:
                values.append(pd.NA)
            else:
                values.append(float(r_num) / float(r_den) if r_den else pd.NA)
        out[rate] = pd.array(values, dtype="Float64")
    if {"pct_of_target_ytd", "opte_ytd", "opte_target_ytd"} <= set(out.columns):
        values = []
        for r_ytd, target, original in zip(out["opte_ytd"], out["opte_target_ytd"], exact["pct_of_target_ytd"]):
            if original is pd.NA or pd.isna(original) or pd.isna(target) or not target:
                values.append(pd.NA)
            else:
                values.append(float(r_ytd) / float(target))
        out["pct_of_target_ytd"] = pd.array(values, dtype="Float64")
    return out
