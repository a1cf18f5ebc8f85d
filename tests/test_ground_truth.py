"""The marts recover what the synthetic generator planted.

The generator (ingest/synth*.py) computes its ground truth by applying MEASURES.md with
numpy/DuckDB to the data it delivers (ingest/synth_rules.py): an independent
implementation. The warehouse, built by dbt from the landed lake, must agree with it
cell for cell, and the planted rates must sit within sampling error of what the marts
report. Two worlds, each landed and built for real:

- `sample`: the bundled sample (data_samples/), built once per session (conftest);
- `world`: a world generated here, large enough for the statistical checks (24,000
  customers over two financial years, 14 offices, four of them with planted outliers, its
  datasets ending on different dates), and still cheap: about a second to generate.

Where a mart of MEASURES.md sections 12-16 is missing from the warehouse, its checks skip
and say so.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest

from measures.config import SAMPLE_INBOX, warehouse_path, work_database_path

pytestmark = pytest.mark.slow

# staggered_ends: the four incremental datasets end on different dates (customers first), so that
# the data cut-off must be the earliest of their latest extracts (MEASURES.md section 9)
WORLD = dict(people=24_000, start="2008-04", end="2010-03", seed=11, dirty=0.002, staggered_ends=True)
Z_SAMPLING = 3.5  # a planted rate is recovered when within 3.5 standard errors (two-sided p = 0.0005)


@pytest.fixture(scope="module")
def world_home(tmp_path_factory):
    """The generated world: synth -> land -> dbt build, with a small DuckDB memory limit."""
    from ingest.landing import land_inbox
    from ingest.synth import synthesize
    from measures.build import build

    base = tmp_path_factory.mktemp("ground_truth_world")
    synthesize(base / "inbox", **WORLD)
    home = base / "home"
    report = land_inbox(base / "inbox", home)
    assert not report.rejected_files, report.summary()
    before = os.environ.get("OPTE_DUCKDB_MEMORY_LIMIT")
    os.environ["OPTE_DUCKDB_MEMORY_LIMIT"] = "2GB"
    try:
        build(home)
    finally:
        if before is None:
            os.environ.pop("OPTE_DUCKDB_MEMORY_LIMIT", None)
        else:
            os.environ["OPTE_DUCKDB_MEMORY_LIMIT"] = before
    return home, base / "inbox_truth"


@pytest.fixture(scope="module", params=["sample", "world"])
def w(request):
    if request.param == "sample":
        home, truth = request.getfixturevalue("sample_built_home"), SAMPLE_INBOX.parent / "inbox_truth"
    else:
        home, truth = request.getfixturevalue("world_home")
    con = duckdb.connect(str(warehouse_path(home)), read_only=True)
    yield SimpleNamespace(name=request.param, con=con, truth=truth, home=home,
                          summary=json.loads((truth / "summary.json").read_text()))
    con.close()


@pytest.fixture(scope="module")
def world(request):
    """The generated world only (the statistical checks need its size)."""
    home, truth = request.getfixturevalue("world_home")
    con = duckdb.connect(str(warehouse_path(home)), read_only=True)
    yield SimpleNamespace(name="world", con=con, truth=truth, summary=json.loads((truth / "summary.json").read_text()))
    con.close()


def require(con, table: str, columns: tuple[str, ...] = ()) -> None:
    """Skip (saying why) when the warehouse lacks a mart or columns of MEASURES.md sections 12-16."""
    got = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' and table_name = ?",
        [table]).fetchall()}
    if not got:
        pytest.skip(f"marts.{table} is not in this warehouse (MEASURES.md sections 12-16 not built yet)")
    missing = [c for c in columns if c not in got]
    if missing:
        pytest.skip(f"marts.{table} lacks {', '.join(missing)} (MEASURES.md section 16 not built yet)")


def truth(w, name: str) -> pd.DataFrame:
    return pd.read_parquet(w.truth / f"{name}.parquet")


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], what: str) -> None:
    """Equal sets of keys, and equal values (floats to 1e-9, nulls equal) in every other column of `want`."""
    assert len(want) > 0, f"{what}: the truth has no rows: nothing would be compared"
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    both = got.merge(want, on=keys, how="outer", indicator=True, suffixes=("", "_truth"))
    only = both[both["_merge"] != "both"]
    assert only.empty, f"{what}: {len(only)} rows in only one of marts/truth:\n{only[keys + ['_merge']].head(10)}"
    for c in [c for c in want.columns if c not in keys]:
        a, b = both[c], both[c + "_truth"]
        if pd.api.types.is_float_dtype(b) or pd.api.types.is_float_dtype(a):
            a, b = pd.to_numeric(a).astype(float), pd.to_numeric(b).astype(float)
            bad = ~((a.isna() & b.isna()) | (np.abs(a - b) <= 1e-9 * np.maximum(1, np.abs(b))))
        else:
            bad = ~((a.isna() & b.isna()) | (a.astype(object) == b.astype(object)))
        assert not bad.any(), f"{what}: column {c} differs in {int(bad.sum())} rows:\n" \
                              f"{both.loc[bad, keys + [c, c + '_truth']].head(10)}"


def _dates(df: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        df[c] = pd.to_datetime(df[c])
    return df


# ----------------------------------------------------------------------------- off-flows (sections 2-4, 12, 13, 16)

def test_every_planted_offflow_is_classified_as_planted(w):
    t = truth(w, "offflows")
    marts = w.con.sql("""
        select claim_id, benefit_code, offflow_date, exclusion_reason, is_job_outcome,
               job_start_date, district_code
        from marts.offflow_events""").df()
    assert len(marts) == len(t) > 1000
    both = t.merge(marts, on="claim_id", how="outer", indicator=True, suffixes=("_truth", ""))
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"].head()
    reason_truth = both["planted_reason"].fillna("OPTE")
    reason_marts = both["exclusion_reason"].fillna("OPTE")
    wrong = both[reason_truth != reason_marts]
    assert wrong.empty, f"{len(wrong)} off-flows classified differently:\n{wrong.head()}"
    assert (both["planted_job_start"] == both["is_job_outcome"]).all()
    with_job = both[both["planted_job_start"]]
    assert (pd.to_datetime(with_job["job_start_date_truth"]) == pd.to_datetime(with_job["job_start_date"])).all()
    assert (both["district_code_truth"] == both["district_code"]).all()
    # every exclusion reason is exercised, so the comparison means something for each rule
    assert set(t["planted_reason"].dropna()) == {
        "died", "retired", "returned_within_week", "cross_flow", "programme_start"}


def test_offflow_proxy_and_back_on_benefit_columns_match_truth(w):
    """Section 16: is_proxy and back_on_benefit_by_week_13/26 (null when not due or not OPtE)."""
    cols = ("is_proxy", "back_on_benefit_by_week_13", "back_on_benefit_by_week_26")
    require(w.con, "offflow_events", cols)
    got = w.con.sql(f"select claim_id, {', '.join(cols)} from marts.offflow_events").df()
    want = truth(w, "offflows")[["claim_id", *cols]]
    assert_same_rows(got, want, ["claim_id"], "offflow_events")
    # both values occur among the due OPtE off-flows, and nulls where not due
    for c in cols[1:]:
        assert set(want[c].dropna()) == {True, False} and want[c].isna().any()


def test_conversion_by_customer_group_matches_truth(w):
    got = w.con.sql("""
        select customer_group, sum(opte_offflows) as opte, sum(opte_with_job_outcome) as jobs
        from marts.opte_jot_conversion where level = 'national' group by 1""").df()
    got = got.set_index("customer_group")
    for group, planted in w.summary["conversion_by_group"].items():
        assert got.loc[group, "opte"] == planted["opte_offflows"], group
        assert got.loc[group, "jobs"] == planted["with_job_outcome"], group


@pytest.mark.parametrize("group, published", [("lone_parent", 0.65), ("sick_or_disabled", 0.33)])
def test_conversion_within_sampling_error_of_rr660(w, group, published):
    """RR660 4.3.1: 65 % of lone parents' and 33 % of sick/disabled OPtE off-flows became JOT."""
    opte, jobs = w.con.execute(f"""
        select sum(opte_offflows), sum(opte_with_job_outcome) from marts.opte_jot_conversion
        where level = 'national' and customer_group = '{group}'""").fetchall()[0]
    se = math.sqrt(published * (1 - published) / opte)
    assert abs(jobs / opte - published) < 3 * se + 0.02, (group, jobs / opte)


def test_jsa_cohort_rates_match_truth_and_kmi_calibration(w):
    # The truth counts the complete cohorts (previous count date on or after the coverage start,
    # MEASURES.md 5 and 9): the cohort months after the first month of the data.
    first_day = w.summary["period"]["coverage_start"]
    rows = w.con.sql(f"""
        select week, sum(cohort_size) as n, sum(offflowed_by_week) as off
        from marts.cohort_offflow_rates
        where level = 'national' and benefit_code = 'JSA' and is_due
          and cohort_month > date '{first_day}'
        group by week order by week""").df().set_index("week")
    for week, planted in w.summary["jsa_cohort_offflow_shares"].items():
        assert rows.loc[int(week), "n"] == planted["cohort_spells"]
        assert rows.loc[int(week), "off"] == planted["offflowed"]
    for week, published in {13: 0.56, 26: 0.78, 52: 0.90}.items():
        if week not in rows.index:
            continue  # (a two-year world has no cohort due at week 52 and complete)
        n, off = rows.loc[week, "n"], rows.loc[week, "off"]
        se = math.sqrt(published * (1 - published) / n)
        assert abs(off / n - published) < 3 * se + 0.02, (week, off / n)


def test_quarantine_counts_match_the_planted_bad_rows(w):
    con = duckdb.connect(str(work_database_path(w.home)), read_only=True)  # staging: the build's own database
    try:
        got = dict(con.sql("select reject_reason, count(*) from staging.stg_lake__quarantine group by 1").fetchall())
    finally:
        con.close()
    planted = {k: v for k, v in w.summary["dirty_rows"].items() if k != "exact_duplicate" and v}
    assert got == planted


def test_data_cutoff_is_the_earliest_latest_extract(w):
    """Section 9: the cut-off is the earliest, over the four incremental datasets, of each one's
    latest landed extract. In the world they end on different dates (three of them with a
    header-only extract after the last day of the period), so any other choice shows."""
    con = duckdb.connect(str(work_database_path(w.home)), read_only=True)  # staging: the build's own database
    try:
        latest = dict(con.sql("""
            select dataset, max(extract_date) from staging.stg_lake__landed_extracts
            where dataset in ('benefit_claims', 'customers', 'tax_employments', 'programme_starts')
            group by dataset""").fetchall())
    finally:
        con.close()
    cutoff = w.con.execute("select data_cutoff from intermediate.int_data_cutoff").fetchone()[0]
    assert cutoff.isoformat() == w.summary["period"]["data_cutoff"] == min(latest.values()).isoformat()
    if w.name == "world":
        assert len(set(latest.values())) == 4 and latest["customers"] == cutoff
    assert w.con.execute("select max(data_cutoff) from marts.opte_monthly").fetchone()[0] == cutoff


# ----------------------------------------------------------------------------- opte_monthly and the proxy (section 12)

MONTHLY_COLUMNS = ["offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
                   "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "job_outcomes",
                   "opte_is_final", "jot_is_final"]


def test_opte_monthly_counts_and_proxy_match_truth(w):
    """Every level, unit and month: the counts, the proxy off-flows and the finality."""
    require(w.con, "opte_monthly", ("proxy_offflows",))
    cols = MONTHLY_COLUMNS + ["proxy_offflows"]
    got = _dates(w.con.sql(f"select level, unit_code, month, {', '.join(cols)} from marts.opte_monthly").df(),
                 ["month"])
    want = _dates(truth(w, "opte_monthly")[["level", "unit_code", "month", *cols]], ["month"])
    assert_same_rows(got, want, ["level", "unit_code", "month"], "opte_monthly")
    # the proxy is a "worst case": it undercounts OPtE in every unit and year
    assert (want.groupby("level")[["proxy_offflows", "opte_offflows"]].sum()
            .pipe(lambda s: s["proxy_offflows"] < s["opte_offflows"])).all()


def test_measure_agreement_matches_truth(w):
    require(w.con, "measure_agreement")
    cols = ["pairs", "x_total", "y_total", "scale", "pearson_r", "mean_abs_pct_error"]
    got = w.con.sql(f"select level, financial_year, pair, {', '.join(cols)} from marts.measure_agreement").df()
    want = truth(w, "measure_agreement")[["level", "financial_year", "pair", *cols]]
    assert set(want["pair"]) == {"proxy_vs_opte", "opte_vs_jot", "proxy_vs_jot"}
    assert_same_rows(got, want, ["level", "financial_year", "pair"], "measure_agreement")


def test_measure_agreement_reports_the_planted_correlation(world):
    """The planted recording behaviour (FW/IW with known probability per closure) implies, given the
    OPtE counts, an expected proxy total and a correlation; the mart must report them within sampling
    error: the total within 3.5 standard errors (SE = sqrt(sum p (1 - p)), a sum of independent
    Bernoulli draws), the correlation within 3.5 Fisher-z standard errors (1 / sqrt(pairs - 3))."""
    require(world.con, "measure_agreement")
    got = world.con.sql("""select level, financial_year, pairs, x_total, pearson_r, scale
                           from marts.measure_agreement where pair = 'proxy_vs_opte'""").df()
    planted = truth(world, "measure_agreement")
    planted = planted[planted["pair"] == "proxy_vs_opte"]
    both = got.merge(planted[["level", "financial_year", "planted_x_total", "planted_x_total_se",
                              "planted_pearson_r", "planted_scale"]], on=["level", "financial_year"])
    assert len(both) == len(planted) >= 8
    for r in both.itertuples():
        assert abs(r.x_total - r.planted_x_total) < Z_SAMPLING * r.planted_x_total_se, r
        if r.pairs >= 10:
            tol = Z_SAMPLING / math.sqrt(r.pairs - 3)
            assert abs(math.atanh(r.pearson_r) - math.atanh(r.planted_pearson_r)) < tol, r
    office = both[both["level"] == "office"]
    # RR660: the proxy "consistently correlates" with OPtE across office-months, an undercount by
    # the planted scale (OPtE per proxy off-flow)
    assert (office["pearson_r"] > 0.9).all() and (office["planted_pearson_r"] > 0.9).all()
    assert (office["scale"] > 1.5).all()


# ----------------------------------------------------------------------------- sustainability (section 13)

def test_sustainability_matches_truth(w):
    require(w.con, "opte_sustainability")
    cols = ["opte_offflows", "back_on_benefit", "sustained_rate", "is_due"]
    got = _dates(w.con.sql(f"select level, unit_code, month, week, {', '.join(cols)} "
                           f"from marts.opte_sustainability").df(), ["month"])
    want = _dates(truth(w, "opte_sustainability")[["level", "unit_code", "month", "week", *cols]], ["month"])
    assert want["is_due"].any() and not want["is_due"].all()
    assert_same_rows(got, want, ["level", "unit_code", "month", "week"], "opte_sustainability")


def test_sustained_rates_match_the_planted_return_rates(world):
    """Back on benefit by week 13 / 26 (any in-scope benefit, any office), national and by planted group
    (JSA or not, with or without a job outcome): the count the marts report against the sum of the
    planted probabilities, within 3.5 standard errors, SE = sqrt(sum p (1 - p)) (independent
    Bernoulli returns, one per OPtE off-flow of a due month)."""
    require(world.con, "opte_sustainability")
    s = world.con.sql("""select week, sum(opte_offflows) as n, sum(back_on_benefit) as back
                         from marts.opte_sustainability where level = 'national' and is_due
                         group by week""").df().set_index("week")
    planted = world.summary["planted_returns"]["national"]
    for k in (13, 26):
        p = planted[str(k)]
        assert p["opte_without_planted_rate"] == 0   # every due OPtE off-flow has its planted probability
        assert s.loc[k, "n"] == p["due_opte_offflows"] > 10_000
        assert abs(s.loc[k, "back"] - p["planted_expected"]) < Z_SAMPLING * p["planted_se"], (k, s.loc[k], p)
    # by planted group, per off-flow (section 16's columns)
    require(world.con, "offflow_events", ("back_on_benefit_by_week_13", "back_on_benefit_by_week_26"))
    ev = world.con.sql("""select claim_id, back_on_benefit_by_week_13 as b13, back_on_benefit_by_week_26 as b26
                          from marts.offflow_events where is_opte""").df()
    t = truth(world, "offflows").merge(ev, on="claim_id")
    t["group"] = np.where(t["benefit_code"] == "JSA", "JSA", "other") + np.where(t["planted_job_start"], "/job", "")
    rates = {}
    for k in (13, 26):
        due = t[t[f"b{k}"].notna()]
        for g, d in due.groupby("group"):
            p = d[f"planted_back_p{k}"].to_numpy()
            se = math.sqrt((p * (1 - p)).sum())
            got = d[f"b{k}"].astype(bool).sum()
            assert abs(got - p.sum()) < Z_SAMPLING * se, (k, g, got, p.sum(), se)
            rates[(k, g)] = got / len(d)
    # the planted ordering: people with a job outcome come back less often, JSA leavers more
    for k in (13, 26):
        assert rates[(k, "JSA/job")] < rates[(k, "JSA")] and rates[(k, "other/job")] < rates[(k, "JSA/job")]


# ----------------------------------------------------------------------------- funnel monitors (section 14)

MONITOR_COLUMNS = ["district_code", "numerator", "denominator", "share", "benchmark_share", "lower_limit",
                   "upper_limit", "flag", "warning"]


def _monitors(con) -> pd.DataFrame:
    return _dates(con.sql(f"select month, office_code, indicator, {', '.join(MONITOR_COLUMNS)} "
                          f"from marts.office_monitors").df(), ["month"])


def test_office_monitors_match_truth(w):
    require(w.con, "office_monitors")
    want = _dates(truth(w, "office_monitors"), ["month"])
    assert_same_rows(_monitors(w.con), want, ["month", "office_code", "indicator"], "office_monitors")


def _planted(summary) -> tuple[dict, dict]:
    """(planted (office, indicator) -> direction, and the same with the plants' documented side effects)."""
    planted, explained = {}, {}
    for p in summary["planted_outliers"]:
        planted[(p["office_code"], p["indicator"])] = p["direction"]
        explained[(p["office_code"], p["indicator"])] = p["direction"]
        for e in p["side_effects"]:
            explained[(p["office_code"], e["indicator"])] = e["direction"]
    return planted, explained


def _full_windows(mon: pd.DataFrame, summary) -> pd.DataFrame:
    first = pd.Timestamp(summary["period"]["coverage_start"]) + pd.DateOffset(months=11)
    return mon[mon["month"] >= first]


def test_funnel_flags_every_planted_outlier(world):
    """Each planted office is flagged beyond the 99.8 % limit, in the planted direction, in every report
    month whose 12-month window lies wholly in the data."""
    require(world.con, "office_monitors")
    mon = _full_windows(_monitors(world.con), world.summary)
    months = mon["month"].nunique()
    assert months >= 12
    planted, _ = _planted(world.summary)
    assert {i for _, i in planted} == {"cross_flow_share", "failed_to_sign_share", "programme_start_share"}
    assert {d for (_, i), d in planted.items() if i == "programme_start_share"} == {"high", "low"}
    for (office, indicator), direction in planted.items():
        rows = mon[(mon["office_code"] == office) & (mon["indicator"] == indicator)]
        assert len(rows) == months and (rows["flag"] == direction).all(), (office, indicator, rows["flag"].tolist())


def _binomial_flag_probability(n: int, p: float, lower: float, upper: float) -> float:
    """P(X/n < lower or X/n > upper) for X ~ Binomial(n, p): the exact false-alarm probability."""
    ks = np.arange(n + 1)
    logpmf = (np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in ks])
              + ks * math.log(p) + (n - ks) * math.log1p(-p))
    out = (ks / n < lower) | (ks / n > upper)
    return float(np.exp(logpmf[out]).sum())


def test_funnel_flags_nothing_else_beyond_the_expected_false_alarm_rate(world):
    """Outside the planted offices (and the side effects their plants imply, e.g. more cross-flows mean a
    lower OPtE share) every flag is a false alarm. Counted over the disjoint 12-month windows of the
    financial years (report month March), the false alarms must not exceed the 99.9th percentile of a
    Poisson count with the expected number of false alarms:
    - large cells (n p >= 5 and n (1 - p) >= 5): 2 Phi(-z / sqrt(phi)), z = 3.09 (1.96 for warnings),
      phi = the overdispersion of the ordinary offices, the mean squared z-score (at least 1):
      off-flows cluster within people, and the planted offices move the national benchmark, so the
      ordinary offices vary a little more than binomially (Spiegelhalter 2005);
    - small cells (unallocated office codes): the exact binomial probability of falling outside the
      limits, where the normal approximation of the funnel fails."""
    require(world.con, "office_monitors")
    mon = _full_windows(_monitors(world.con), world.summary)
    _, explained = _planted(world.summary)
    march = mon[(mon["month"].dt.month == 3)].copy()
    assert march["month"].nunique() == 2 and len(march) > 100  # two disjoint full windows: FY 2008, FY 2009
    ordinary = march[[k not in explained for k in zip(march["office_code"], march["indicator"])]].copy()
    p, n = ordinary["benchmark_share"], ordinary["denominator"]
    large = (n * p >= 5) & (n * (1 - p) >= 5)
    z = (ordinary["share"] - p) / np.sqrt(p * (1 - p) / n)
    phi = max(1.0, float((z[large] ** 2).mean()))
    assert phi < 2.0, f"ordinary offices vary far more than binomially (phi = {phi:.2f})"
    small = ordinary[~large]
    for column, zz in (("flag", 3.09), ("warning", 1.96)):
        p_large = math.erfc(zz / math.sqrt(phi) / math.sqrt(2))  # 2 Phi(-z / sqrt(phi))
        expected = int(large.sum()) * p_large
        for r in small.itertuples():
            lo = r.benchmark_share - zz * math.sqrt(r.benchmark_share * (1 - r.benchmark_share) / r.denominator)
            hi = 2 * r.benchmark_share - lo
            expected += _binomial_flag_probability(int(r.denominator), r.benchmark_share, lo, hi)
        bound = _poisson_quantile(expected, 0.999)
        false_alarms = int(ordinary[column].notna().sum())
        assert false_alarms <= bound, (column, false_alarms, expected, bound, phi,
                                       ordinary[ordinary[column].notna()][["office_code", "indicator", "share",
                                                                          "benchmark_share", "denominator"]])


def _poisson_quantile(lam: float, q: float) -> int:
    k, pmf = 0, math.exp(-lam)
    cdf = pmf
    while cdf < q:
        k += 1
        pmf *= lam / k
        cdf += pmf
    return k
