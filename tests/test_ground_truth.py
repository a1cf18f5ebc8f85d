"""The marts recover what the synthetic generator planted in the bundled sample.

The generator (ingest/synth*.py) computes its ground truth by applying MEASURES.md with
numpy to the data it delivers: an independent implementation. The warehouse, built by
dbt from the landed lake, must agree with it off-flow by off-flow, and the calibrated
rates must sit within sampling error of the published figures they were planted from.
"""
from __future__ import annotations

import json
import math

import duckdb
import pandas as pd
import pytest

from measures.config import SAMPLE_INBOX, warehouse_path

TRUTH = SAMPLE_INBOX.parent / "inbox_truth"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def con(sample_built_home):
    c = duckdb.connect(str(warehouse_path(sample_built_home)), read_only=True)
    yield c
    c.close()


@pytest.fixture(scope="module")
def summary():
    return json.loads((TRUTH / "summary.json").read_text())


def test_every_planted_offflow_is_classified_as_planted(con):
    truth = pd.read_parquet(TRUTH / "offflows.parquet")
    marts = con.sql("""
        select claim_id, benefit_code, offflow_date, exclusion_reason, is_job_outcome,
               job_start_date, district_code
        from marts.offflow_events""").df()
    assert len(marts) == len(truth) > 1000
    both = truth.merge(marts, on="claim_id", how="outer", indicator=True, suffixes=("_truth", ""))
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
    assert set(truth["planted_reason"].dropna()) == {
        "died", "retired", "returned_within_week", "cross_flow", "programme_start"}


def test_conversion_by_customer_group_matches_truth(con, summary):
    got = con.sql("""
        select customer_group, sum(opte_offflows) as opte, sum(opte_with_job_outcome) as jobs
        from marts.opte_jot_conversion where level = 'national' group by 1""").df()
    got = got.set_index("customer_group")
    for group, planted in summary["conversion_by_group"].items():
        assert got.loc[group, "opte"] == planted["opte_offflows"], group
        assert got.loc[group, "jobs"] == planted["with_job_outcome"], group


@pytest.mark.parametrize("group, published", [("lone_parent", 0.65), ("sick_or_disabled", 0.33)])
def test_conversion_within_sampling_error_of_rr660(con, group, published):
    """RR660 4.3.1: 65 % of lone parents' and 33 % of sick/disabled OPtE off-flows became JOT."""
    opte, jobs = con.execute(f"""
        select sum(opte_offflows), sum(opte_with_job_outcome) from marts.opte_jot_conversion
        where level = 'national' and customer_group = '{group}'""").fetchall()[0]
    se = math.sqrt(published * (1 - published) / opte)
    assert abs(jobs / opte - published) < 3 * se + 0.02, (group, jobs / opte)


def test_jsa_cohort_rates_match_truth_and_kmi_calibration(con, summary):
    # The truth counts cohorts wholly inside the inbox period (the first cohort month after
    # the period's first day), so that the stock of claims open at the start does not bias it.
    first_day = summary["period"]["first_day"]
    rows = con.sql(f"""
        select week, sum(cohort_size) as n, sum(offflowed_by_week) as off
        from marts.cohort_offflow_rates
        where level = 'national' and benefit_code = 'JSA' and is_due
          and cohort_month > date '{first_day}'
        group by week order by week""").df().set_index("week")
    for week, planted in summary["jsa_cohort_offflow_shares"].items():
        assert rows.loc[int(week), "n"] == planted["cohort_spells"]
        assert rows.loc[int(week), "off"] == planted["offflowed"]
    for week, published in {13: 0.56, 26: 0.78, 52: 0.90}.items():
        n, off = rows.loc[week, "n"], rows.loc[week, "off"]
        se = math.sqrt(published * (1 - published) / n)
        assert abs(off / n - published) < 3 * se + 0.02, (week, off / n)


def test_quarantine_counts_match_the_planted_bad_rows(con, summary):
    got = dict(con.sql("""
        select reject_reason, count(*) from staging.stg_lake__quarantine group by 1""").fetchall())
    planted = {k: v for k, v in summary["dirty_rows"].items() if k != "exact_duplicate"}
    assert got == planted
