"""The measure rules of MEASURES.md re-implemented in numpy/pandas/DuckDB, for the synthetic ground truth.

The generator plants events (deaths, retirements, returns, cross-flows, programme starts,
HMRC job starts), then classifies every off-flow of the *final data* (the latest
version of each key that the inbox delivers) with these rules, so that the ground truth
equals what a correct implementation of MEASURES.md must produce, row for row.
Dates are int days since 1970-01-01 throughout.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

EPOCH = np.datetime64("1970-01-01", "D")

DEATH_GRACE_DAYS = 7
RETIREMENT_GRACE_DAYS = 7
RETURN_WINDOW_DAYS = 7
CROSSFLOW_WINDOW_DAYS = 14
PROGRAMME_WINDOW_BEFORE_DAYS = 7
PROGRAMME_WINDOW_AFTER_DAYS = 14
JOB_WINDOW_BEFORE_DAYS = 14
JOB_WINDOW_AFTER_DAYS = 91
COHORT_WEEKS = (13, 26, 52)
PROXY_END_REASONS = ("FW", "IW")
SUSTAINABILITY_WEEKS = (13, 26)
OPTE_MATURITY_DAYS = 28
JOT_MATURITY_DAYS = 183
FUNNEL_Z = 3.09
FUNNEL_Z_WARNING = 1.96

IN_SCOPE = ("JSA", "ESA", "IB", "SDA", "IS")
ALL_BENEFITS = ("JSA", "ESA", "IB", "SDA", "IS", "CA", "PC")
EXCLUDING_PROGRAMMES = ("NDYP_EMP", "NDYP_FTET", "NDYP_VS", "NDYP_ETF", "ND25_IAP", "FND")
OTHER_PROGRAMMES = ("NDLP", "NDDP", "ND50")
REASONS = ("died", "retired", "returned_within_week", "cross_flow", "programme_start")


def day(s: str) -> int:
    """ISO date -> int days since epoch."""
    return int((np.datetime64(s, "D") - EPOCH).astype(np.int64))


def to_datetime64(days: np.ndarray) -> np.ndarray:
    return np.asarray(days).astype("datetime64[D]")


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Add calendar months, clamping to the end of the month (31 Jan + 1 month = 28/29 Feb)."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    tm = m + np.asarray(months, dtype=np.int64)
    dim = ((tm + 1).astype("datetime64[D]") - tm.astype("datetime64[D]")).astype(np.int64)
    return tm.astype("datetime64[D]").astype(np.int64) + np.minimum(dom, dim - 1)


def _month_window_index(b: np.ndarray, first: str) -> np.ndarray:
    """i such that b lies between the 6th of month i and the 5th of month i+1 (i = 0: `first`'s month)."""
    d = b.astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64) + 1
    i = (m - np.datetime64(first[:7], "M")).astype(np.int64)
    return i - (dom < 6)


def state_pension_age_date(dob: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """MEASURES.md section 7. dob: int days (any value where unknown), sex: 'M', 'F' or ''/None.

    Null sex with a birth before 1954-10-06 takes the men's rule. Returns int days.
    """
    b = np.asarray(dob, dtype=np.int64)
    female = np.asarray(sex, dtype=object) == "F"
    out = add_months(b, 67 * 12)
    r = [
        (~female & (b < day("1953-12-06")), add_months(b, 65 * 12)),
        (female & (b < day("1950-04-06")), add_months(b, 60 * 12)),
        (female & (b >= day("1950-04-06")) & (b < day("1953-04-06")),
         add_months(np.full_like(b, day("2010-05-06")), 2 * _month_window_index(b, "1950-04-06"))),
        (female & (b >= day("1953-04-06")) & (b < day("1953-12-06")),
         add_months(np.full_like(b, day("2016-07-06")), 4 * _month_window_index(b, "1953-04-06"))),
        ((b >= day("1953-12-06")) & (b < day("1954-10-06")),
         add_months(np.full_like(b, day("2019-03-06")), 2 * _month_window_index(b, "1953-12-06"))),
        ((b >= day("1954-10-06")) & (b < day("1960-04-06")), add_months(b, 66 * 12)),
        ((b >= day("1960-04-06")) & (b < day("1961-03-06")),
         add_months(add_months(b, 66 * 12), _month_window_index(b, "1960-04-06") + 1)),
    ]
    for cond, val in r:
        out = np.where(cond, val, out)
    return out


def second_thursday(month_first: np.ndarray) -> np.ndarray:
    """Count date (second Thursday) of months given by their first day (int days)."""
    f = np.asarray(month_first, dtype=np.int64)
    dow = (f + 3) % 7            # 1970-01-01 was a Thursday: Monday = 0 ... Thursday = 3
    first_thu = f + (3 - dow) % 7
    return first_thu + 7


def _arrow(df, types: dict) -> "pa.Table":
    """A pandas frame or pyarrow table as a pyarrow table with the given column types."""
    import pyarrow as pa

    if isinstance(df, pa.Table):
        t = df
    else:
        t = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    return pa.table({c: t[c].cast(ty) for c, ty in types.items()})


def classify_offflows(claims, customers, programmes, employments, passthrough: tuple[str, ...] = (),
                      chunk_people: int = 1_000_000) -> pd.DataFrame:
    """Off-flows of the current data with their exclusion reason and job outcome (MEASURES.md 2 and 4).

    claims: claim_id (str), person (int), benefit_code, office_code, start, end (int days, null = open),
            lone_parent ('Y'/'N'), optionally end_reason_code [+ `passthrough` columns, returned unchanged].
    customers: person, dob (nullable), sex ('M'/'F'/null), dod (nullable) -- one row per person with a row.
    programmes: person, programme_code, start.   employments: person, paye_ref, start.
    (pandas frames or pyarrow tables.) Every rule involves one person only, so people are
    classified in chunks of `chunk_people` person ids to bound memory.
    Returns one row per off-flow, ordered by claim_id: claim_id, person, benefit_code, office_code,
    offflow_date (int), exclusion_reason (null = OPtE), job_start_date (int or null), is_job_outcome,
    customer_group, end_reason_code, is_proxy (section 12), back_on_benefit_13 / _26 (section 13: an
    in-scope claim starting in (d, d + 7k], whatever the exclusion and whether or not due) [, passthrough].
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    i64, s = pa.int64(), pa.string()
    has_reason = "end_reason_code" in (claims.column_names if isinstance(claims, pa.Table) else claims.columns)
    if not has_reason:
        claims = (claims.append_column("end_reason_code", pa.nulls(claims.num_rows, s)) if isinstance(claims, pa.Table)
                  else claims.assign(end_reason_code=None))
    cl = _arrow(claims, {"claim_id": s, "person": i64, "benefit_code": s, "office_code": s, "start": i64,
                         "end": i64, "lone_parent": s, "end_reason_code": s,
                         **{c: (claims[c].type if isinstance(claims, pa.Table) else
                                pa.Array.from_pandas(claims[c]).type) for c in passthrough}})
    cust = customers if isinstance(customers, pd.DataFrame) else customers.to_pandas()
    dob = cust["dob"]
    has_dob = dob.notna().to_numpy()
    spa = np.zeros(len(cust), dtype=np.int64)
    if has_dob.any():
        spa[has_dob] = state_pension_age_date(dob[has_dob].to_numpy(np.int64),
                                              cust["sex"][has_dob].astype(object).where(cust["sex"][has_dob].notna(), "")
                                              .to_numpy(object))
    cu = pa.table({"person": pa.array(cust["person"].to_numpy(np.int64)),
                   "dod": pa.array(cust["dod"], type=i64, from_pandas=True),
                   "spa": pa.array(spa, mask=~has_dob)})
    pr = _arrow(programmes, {"person": i64, "programme_code": s, "start": i64})
    em = _arrow(employments, {"person": i64, "paye_ref": s, "start": i64})
    in_scope = "('" + "','".join(IN_SCOPE) + "')"
    proxy = "('" + "','".join(PROXY_END_REASONS) + "')"
    back = ",\n          ".join(
        f"""exists (select 1 from cl c where c.person = o.person and c.benefit_code in {in_scope}
                  and c.start > o.d and c.start <= o.d + {7 * k}) as back_on_benefit_{k}"""
        for k in SUSTAINABILITY_WEEKS)
    excl = "('" + "','".join(EXCLUDING_PROGRAMMES) + "')"
    extra = "".join(f", r.{c}" for c in passthrough)
    sql = f"""
    with o as (
        select claim_id, person, benefit_code, office_code, "end" as d, lone_parent, end_reason_code
               {"".join(", " + c for c in passthrough)}
        from cl where benefit_code in {in_scope} and "end" is not null
    ),
    f as (
        select o.*,
          (cu.dod is not null and cu.dod <= o.d + {DEATH_GRACE_DAYS}) as is_died,
          (cu.spa is not null and cu.spa <= o.d + {RETIREMENT_GRACE_DAYS}) as is_retired,
          exists (select 1 from cl c where c.person = o.person and c.benefit_code = o.benefit_code
                  and c.claim_id <> o.claim_id
                  and c.start between o.d and o.d + {RETURN_WINDOW_DAYS}) as is_return,
          exists (select 1 from cl c where c.person = o.person and c.benefit_code <> o.benefit_code
                  and c.start <= o.d + {CROSSFLOW_WINDOW_DAYS}
                  and (c."end" is null or c."end" > o.d)) as is_cross,
          exists (select 1 from pr p where p.person = o.person and p.programme_code in {excl}
                  and p.start between o.d - {PROGRAMME_WINDOW_BEFORE_DAYS}
                                  and o.d + {PROGRAMME_WINDOW_AFTER_DAYS}) as is_prog,
          {back}
        from o left join cu on cu.person = o.person
    ),
    r as (
        select *, case when is_died then 'died' when is_retired then 'retired'
                       when is_return then 'returned_within_week' when is_cross then 'cross_flow'
                       when is_prog then 'programme_start' end as exclusion_reason
        from f
    ),
    cand as (
        select e.person, e.paye_ref, e.start as s, r.claim_id, r.d,
               row_number() over (partition by e.person, e.paye_ref, e.start
                                  order by abs(e.start - r.d), r.d desc, r.claim_id desc) as rk
        from em e join r on r.person = e.person
         and e.start between r.d - {JOB_WINDOW_BEFORE_DAYS} and r.d + {JOB_WINDOW_AFTER_DAYS}
        where r.exclusion_reason is null or r.exclusion_reason not in ('died', 'returned_within_week')
    ),
    j as (select claim_id, min(s) as job_start_date from cand where rk = 1 group by claim_id)
    select r.claim_id, r.person, r.benefit_code, r.office_code, r.d as offflow_date,
           r.exclusion_reason, j.job_start_date, j.job_start_date is not null as is_job_outcome,
           case when upper(r.lone_parent) = 'Y' then 'lone_parent'
                when r.benefit_code in ('ESA', 'IB', 'SDA') then 'sick_or_disabled'
                when r.benefit_code = 'JSA' then 'jsa' else 'other' end as customer_group,
           r.end_reason_code, coalesce(upper(r.end_reason_code) in {proxy}, false) as is_proxy,
           {", ".join(f"r.back_on_benefit_{k}" for k in SUSTAINABILITY_WEEKS)}{extra}
    from r left join j using (claim_id)
    """
    top = 0
    for t in (cl, cu, pr, em):
        if t.num_rows:
            top = max(top, int(pc.max(t["person"]).as_py()) + 1)
    parts = []
    con = duckdb.connect()
    try:
        con.execute("set threads = 2")
        con.execute("set memory_limit = '2GB'")
        con.execute("set preserve_insertion_order = false")
        for lo in range(0, max(top, 1), chunk_people):
            hi = lo + chunk_people

            def part(t):
                m = pc.and_(pc.greater_equal(t["person"], lo), pc.less(t["person"], hi))
                return t.filter(m)
            con.register("cl", part(cl))
            con.register("cu", part(cu))
            con.register("pr", part(pr))
            con.register("em", part(em))
            parts.append(con.sql(sql).to_arrow_table())
            for name in ("cl", "cu", "pr", "em"):
                con.unregister(name)
    finally:
        con.close()
    out = pa.concat_tables(parts)
    out = out.take(pc.sort_indices(out, [("claim_id", "ascending")]))
    return out.to_pandas()


def jsa_cohort_shares(claims, cutoff: int, first_day: int) -> dict:
    """Section 5 national JSA cohort off-flow shares at weeks 13/26/52 over due cohorts.

    claims: the current JSA claims (pyarrow table or pandas frame: person, claim_id, start, end).
    Only cohorts whose window lies wholly after `first_day` (the first day of the inbox
    period) count, so that the stock (spells that began before the period) does not bias them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(claims, pa.Table):
        claims = pa.Table.from_pandas(claims[["person", "claim_id", "start", "end"]].reset_index(drop=True),
                                      preserve_index=False)
    n = claims.num_rows
    if n == 0:
        return {}
    order = pc.sort_indices(claims, [("person", "ascending"), ("start", "ascending"), ("claim_id", "ascending")])
    BIG = np.int64(1) << 40
    person = claims["person"].take(order).to_numpy().astype(np.int64)
    start = claims["start"].take(order).to_numpy().astype(np.int64)
    end = pc.fill_null(claims["end"].take(order).cast(pa.int64()), int(BIG)).to_numpy().astype(np.int64)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = person[1:] != person[:-1]
    # running max of end within person (groups are contiguous)
    grp = np.cumsum(new_group) - 1
    cm = pd.Series(end).groupby(grp).cummax().to_numpy()
    prev = np.empty(n, dtype=np.int64)
    prev[1:] = cm[:-1]
    new_spell = new_group | (start > prev + RETURN_WINDOW_DAYS)
    sid = np.cumsum(new_spell) - 1
    s_start = start[new_spell]
    s_end = pd.Series(end).groupby(sid).max().to_numpy()
    s_end_known = s_end < BIG
    # cohort months
    m = s_start.astype("datetime64[D]").astype("datetime64[M]")
    first = m.astype("datetime64[D]").astype(np.int64)
    cd = second_thursday(first)
    m = np.where(s_start <= cd, m, m + 1)
    mfirst = m.astype("datetime64[D]").astype(np.int64)
    cd_m = second_thursday(mfirst)
    cd_prev = second_thursday((m - 1).astype("datetime64[D]").astype(np.int64))
    keep = cd_prev >= first_day
    out = {}
    for k in COHORT_WEEKS:
        due = keep & (cutoff >= cd_m + 7 * k)
        size = int(due.sum())
        off = int((due & s_end_known & (s_end <= s_start + 7 * k)).sum())
        out[str(k)] = {"cohort_spells": size, "offflowed": off,
                       "share": round(off / size, 4) if size else None}
    return out


# ----------------------------------------------------------------------------- sections 10-14 by unit

LEVELS = ("office", "district", "region", "national")
_LEVEL_UNIT = {"office": "reporting_office_code", "district": "district_code", "region": "region_code"}
REASON_COLUMNS = {"died": "excluded_died", "retired": "excluded_retired",
                  "returned_within_week": "excluded_returned_within_week", "cross_flow": "excluded_cross_flow",
                  "programme_start": "excluded_programme_start"}
COUNT_COLUMNS = ("offflows", *REASON_COLUMNS.values(), "opte_offflows", "proxy_offflows", "job_outcomes",
                 "opte_failed_to_sign", *(f"opte_back_{k}" for k in SUSTAINABILITY_WEEKS))
# planted expectations (sums of the generator's probabilities, for the statistical checks)
PLANTED_COLUMNS = ("proxy_p_sum", "proxy_p_var", *(f"back_p{k}_{s}" for k in SUSTAINABILITY_WEEKS
                                                    for s in ("sum", "var")), "opte_without_planted_back")
UNIT_KEYS = ("reporting_office_code", "district_code", "region_code", "month")
MONITORS = (  # indicator, numerator, denominator (MEASURES.md 14)
    ("opte_share", "opte_offflows", "offflows"),
    ("cross_flow_share", "excluded_cross_flow", "offflows"),
    ("programme_start_share", "excluded_programme_start", "offflows"),
    ("returned_within_week_share", "excluded_returned_within_week", "offflows"),
    ("failed_to_sign_share", "opte_failed_to_sign", "opte_offflows"),
)
AGREEMENT_PAIRS = (  # pair, x, y, the finality that selects the pairs
    ("proxy_vs_opte", "proxy_offflows", "opte_offflows", "opte_is_final"),
    ("opte_vs_jot", "opte_offflows", "job_outcomes", "jot_is_final"),
    ("proxy_vs_jot", "proxy_offflows", "job_outcomes", "jot_is_final"),
)


def month_first(days: np.ndarray) -> np.ndarray:
    """First day of the month of each day (int days)."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(
        "datetime64[D]").astype(np.int64)


def month_last(first: np.ndarray) -> np.ndarray:
    """Last day of the month starting on `first` (int days)."""
    m = np.asarray(first, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
    return ((m + 1).astype("datetime64[D]") - 1).astype(np.int64)


def financial_year(first: np.ndarray) -> np.ndarray:
    m = np.asarray(first, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
    y = m.astype("datetime64[Y]").astype(np.int64) + 1970
    mon = (m - m.astype("datetime64[Y]").astype("datetime64[M]")).astype(np.int64) + 1
    return np.where(mon >= 4, y, y - 1)


def office_month_counts(f: pd.DataFrame) -> pd.DataFrame:
    """The counts of the classified off-flows per reporting office, district, region and month.

    f: classify_offflows' output with reporting_office_code, district_code, region_code (the
    attribution at d, MEASURES.md 8), month (first day, int) and, where known, the planted
    probabilities proxy_p, back_p13, back_p26. Sums of these frames over chunks of people are
    again such frames (every column is additive)."""
    reason = f["exclusion_reason"]
    opte = reason.isna().to_numpy()
    cols = {k: f[k].to_numpy() for k in UNIT_KEYS}
    cols["offflows"] = np.ones(len(f), dtype=np.int64)
    for r, c in REASON_COLUMNS.items():
        cols[c] = (reason == r).to_numpy()
    cols["opte_offflows"] = opte
    cols["proxy_offflows"] = f["is_proxy"].to_numpy(bool)
    cols["job_outcomes"] = f["is_job_outcome"].to_numpy(bool)
    cols["opte_failed_to_sign"] = opte & (f["end_reason_code"].fillna("").str.upper() == "FTS").to_numpy()
    for k in SUSTAINABILITY_WEEKS:
        cols[f"opte_back_{k}"] = opte & f[f"back_on_benefit_{k}"].to_numpy(bool)
    q = f["proxy_p"].to_numpy(np.float64) if "proxy_p" in f else np.zeros(len(f))
    cols["proxy_p_sum"], cols["proxy_p_var"] = q, q * (1 - q)
    missing = np.zeros(len(f), dtype=bool)
    for k in SUSTAINABILITY_WEEKS:
        p = f[f"back_p{k}"].to_numpy(np.float64) if f"back_p{k}" in f else np.full(len(f), np.nan)
        missing |= opte & np.isnan(p)
        p = np.where(opte & ~np.isnan(p), p, 0.0)
        cols[f"back_p{k}_sum"], cols[f"back_p{k}_var"] = p, p * (1 - p)
    cols["opte_without_planted_back"] = missing
    d = pd.DataFrame(cols)
    return sum_office_months([d])


def sum_office_months(frames: list[pd.DataFrame]) -> pd.DataFrame:
    d = pd.concat(frames, ignore_index=True)
    out = d.groupby(list(UNIT_KEYS), dropna=False, sort=True).sum().reset_index()
    for c in COUNT_COLUMNS + ("opte_without_planted_back",):
        out[c] = out[c].astype(np.int64)
    return out


def monthly_by_level(om: pd.DataFrame, cutoff: int) -> pd.DataFrame:
    """opte_monthly's counts and finality per level, unit and month (MEASURES.md 9, 10, 12)."""
    parts = []
    value_cols = list(COUNT_COLUMNS + PLANTED_COLUMNS)
    for level in LEVELS:
        unit = om[_LEVEL_UNIT[level]] if level != "national" else pd.Series("ALL", index=om.index)
        g = om.assign(unit_code=unit).groupby(["unit_code", "month"], sort=True)[value_cols].sum().reset_index()
        g.insert(0, "level", level)
        parts.append(g)
    m = pd.concat(parts, ignore_index=True)
    last = month_last(m["month"].to_numpy())
    m["opte_is_final"] = cutoff >= last + OPTE_MATURITY_DAYS
    m["jot_is_final"] = cutoff >= last + JOT_MATURITY_DAYS
    m["financial_year"] = financial_year(m["month"].to_numpy())
    return m


def _pearson(x: np.ndarray, y: np.ndarray):
    if len(x) < 3:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    vx, vy = (dx * dx).mean(), (dy * dy).mean()
    if vx == 0 or vy == 0:
        return None
    return float((dx * dy).mean() / np.sqrt(vx * vy))


AGREEMENT_COLUMNS = ["level", "financial_year", "pair", "pairs", "x_total", "y_total", "scale", "pearson_r",
                     "mean_abs_pct_error", "planted_x_total", "planted_x_total_se", "planted_scale",
                     "planted_pearson_r"]


def measure_agreement(monthly: pd.DataFrame) -> pd.DataFrame:
    """MEASURES.md 12: per level, financial year and pair; with the planted proxy correlation."""
    rows = []
    for (level, fy), g in monthly.groupby(["level", "financial_year"], sort=True):
        for pair, xc, yc, final in AGREEMENT_PAIRS:
            p = g[g[final]]
            if len(p) == 0:
                continue
            x = p[xc].to_numpy(np.float64)
            y = p[yc].to_numpy(np.float64)
            xt, yt = float(x.sum()), float(y.sum())
            scale = yt / xt if xt else None
            pos = y > 0
            mape = (float(np.mean(np.abs(scale * x[pos] - y[pos]) / y[pos]))
                    if scale is not None and pos.any() else None)
            row = dict(level=level, financial_year=int(fy), pair=pair, pairs=len(p), x_total=int(xt),
                       y_total=int(yt), scale=scale, pearson_r=_pearson(x, y), mean_abs_pct_error=mape)
            if pair == "proxy_vs_opte":
                # what the planted recording behaviour implies: x = sum of Bernoulli(proxy_p) given y
                mu = p["proxy_p_sum"].to_numpy(np.float64)
                var = p["proxy_p_var"].to_numpy(np.float64)
                row["planted_x_total"] = float(mu.sum())
                row["planted_x_total_se"] = float(np.sqrt(var.sum()))
                row["planted_scale"] = yt / mu.sum() if mu.sum() else None
                r = None
                if len(p) >= 3:
                    dm, dy = mu - mu.mean(), y - y.mean()
                    den = np.sqrt(((dm * dm).mean() + var.mean()) * (dy * dy).mean())
                    r = float((dm * dy).mean() / den) if den > 0 else None
                row["planted_pearson_r"] = r
            rows.append(row)
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def sustainability(monthly: pd.DataFrame, cutoff: int) -> pd.DataFrame:
    """MEASURES.md 13: per level, unit, off-flow month and week (units with an OPtE off-flow that month)."""
    base = monthly[monthly["opte_offflows"] >= 1]
    last = month_last(base["month"].to_numpy())
    parts = []
    for k in SUSTAINABILITY_WEEKS:
        due = cutoff >= last + 7 * k
        back = base[f"opte_back_{k}"].astype("Int64").where(due, pd.NA)
        parts.append(pd.DataFrame({
            "level": base["level"].to_numpy(), "unit_code": base["unit_code"].to_numpy(),
            "month": base["month"].to_numpy(), "week": k, "opte_offflows": base["opte_offflows"].to_numpy(),
            "back_on_benefit": back.to_numpy(), "is_due": due,
            "planted_back_sum": base[f"back_p{k}_sum"].to_numpy(), "planted_back_var": base[f"back_p{k}_var"].to_numpy(),
            "opte_without_planted_back": base["opte_without_planted_back"].to_numpy()}))
    s = pd.concat(parts, ignore_index=True)
    s["sustained_rate"] = 1 - s["back_on_benefit"].astype("Float64") / s["opte_offflows"]
    return s.sort_values(["level", "unit_code", "month", "week"]).reset_index(drop=True)


MONITOR_COLUMNS = ["month", "office_code", "district_code", "indicator", "numerator", "denominator", "share",
                   "benchmark_share", "lower_limit", "upper_limit", "flag", "warning"]


def _funnel_flags(a: np.ndarray, n: np.ndarray, A: int, N: int, z: float) -> np.ndarray:
    """'high' / 'low' / None: share a/n beyond p -/+ z sqrt(p (1 - p) / n), p = A/N, decided exactly
    in integers ((aN - An)^2 against z^2 A (N - A) n), so that a share on a limit is never flagged."""
    from fractions import Fraction

    z2 = Fraction(str(z)) ** 2
    out = np.full(len(a), None, dtype=object)
    for i, (ai, ni) in enumerate(zip(a.tolist(), n.tolist())):
        excess = ai * N - A * ni
        if excess * excess * z2.denominator > z2.numerator * A * (N - A) * ni:
            out[i] = "high" if excess > 0 else "low"
    return out


def office_monitors(om: pd.DataFrame, district_at) -> pd.DataFrame:
    """MEASURES.md 14: the funnel monitors per report month, reporting office and indicator.

    district_at(office_codes, day) -> district codes of those reporting offices on that day."""
    months = np.sort(om["month"].unique())
    idx = {m: i for i, m in enumerate(months)}
    m_no = (months.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64))
    offices = np.sort(om["reporting_office_code"].unique())
    oi = pd.Index(offices).get_indexer(om["reporting_office_code"])
    mi = om["month"].map(idx).to_numpy()
    needed = sorted({c for _, a, b in MONITORS for c in (a, b)})
    cum = {}
    for c in needed:
        a = np.zeros((len(offices), len(months) + 1), dtype=np.int64)
        np.add.at(a, (oi, mi + 1), om[c].to_numpy(np.int64))
        cum[c] = np.cumsum(a, axis=1)
    rows = []
    for j, M in enumerate(months):
        # the window M-11 .. M in calendar months; months without any off-flow have no column
        lo = int(np.searchsorted(m_no, m_no[j] - 11))
        win = {c: cum[c][:, j + 1] - cum[c][:, lo] for c in needed}
        dist = district_at(offices, int(month_last(np.array([M]))[0]))
        for ind, num, den in MONITORS:
            n, d = win[num], win[den]
            p = n.sum() / d.sum() if d.sum() else np.nan
            keep = d >= 1
            share = n[keep] / d[keep]
            with np.errstate(invalid="ignore"):
                half = FUNNEL_Z * np.sqrt(p * (1 - p) / d[keep])
                half_w = FUNNEL_Z_WARNING * np.sqrt(p * (1 - p) / d[keep])
            testable = 0 < p < 1
            flag = _funnel_flags(n[keep], d[keep], int(n.sum()), int(d.sum()), FUNNEL_Z) if testable else \
                np.full(int(keep.sum()), None, dtype=object)
            warn = _funnel_flags(n[keep], d[keep], int(n.sum()), int(d.sum()), FUNNEL_Z_WARNING) if testable else \
                np.full(int(keep.sum()), None, dtype=object)
            rows.append(pd.DataFrame({
                "month": M, "office_code": offices[keep], "district_code": dist[keep], "indicator": ind,
                "numerator": n[keep], "denominator": d[keep], "share": share, "benchmark_share": p,
                "lower_limit": p - half, "upper_limit": p + half, "flag": flag, "warning": warn}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=MONITOR_COLUMNS)
