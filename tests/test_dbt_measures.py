"""End-to-end checks of the measures: real `dbt build` on a planted scenario lake.

The lake (written in the landed format by tests/lake_builder.py) holds district DN with offices
N1 (main), N1S (a satellite of N1) and N2, district DM with office M1, and one office code with
no `offices` row (XXX). In June 2009 district DN has one off-flow excluded for each of the five
reasons and two OPtE off-flows; the figures below follow by hand from MEASURES.md.

Three rounds of extracts. The first benefit_claims extract, 2009-03-31, carries the stock of
claims open on that day (and two that ended in February and March), so the coverage start is
2009-03-01 (MEASURES.md section 9); 2009-06-30 brings everything else (the claims' ends included),
and 2009-07-31 a July off-flow, a late employment start and a new targets snapshot. Building with
the derived cut-off uses every round; building with `cutoff=2009-06-30` must reproduce the June
state exactly, snapshots included.
Each build is the pipeline's own `measures.build.build` (dbt build: models, data tests and unit
tests), so a build that returns at all has passed every dbt test.
"""
from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lake_builder import write_extract  # noqa: E402

from measures.build import build  # noqa: E402
from measures.config import warehouse_path, work_database_path  # noqa: E402

pytestmark = pytest.mark.slow

ROUND_0 = "2009-03-31"  # the first benefit_claims extract: coverage start 2009-03-01
ROUND_1 = "2009-06-30"
ROUND_2 = "2009-07-31"


def _office(code, reporting, district, region="RN"):
    return dict(office_code=code, office_name=f"Office {code}", reporting_office_code=reporting,
                district_code=district, district_name=f"District {district}", region_code=region,
                region_name=f"Region {region}", valid_from="2000-01-01", valid_to=None)


def _claim(claim_id, person, benefit, office, start, end=None, lone_parent="N", disabled="N"):
    return dict(claim_id=claim_id, person_key=person, benefit_code=benefit, office_code=office,
                claim_start_date=start, claim_end_date=end, end_reason_code="FW" if end else None,
                lone_parent=lone_parent, disabled=disabled)


def _customer(person, born="1970-01-01", sex="F", died=None, area=None):
    return dict(person_key=person, date_of_birth=born, sex=sex, date_of_death=died, area_code=area)


def write_scenario(lake: Path) -> None:
    # ---- round 0: the first benefit_claims extract, the stock of claims open on 2009-03-31
    # (their ends arrive in round 1) and the changes of March: "pre" ended the day before the
    # coverage start (counted nowhere but data quality), "on" ended on it (counted, March 2009)
    stock = [("o0", "j", "JSA", "N1"), ("o1", "a", "JSA", "N1"), ("o2", "b", "ESA", "N1S"),
             ("o3", "c", "JSA", "N2"), ("o4", "d", "IS", "N2"), ("o5", "e", "JSA", "N2"),
             ("o6", "f", "JSA", "N1"), ("o7", "g", "IB", "N1"), ("u1", "h", "JSA", "XXX"),
             ("m1", "i", "JSA", "M1")]
    write_extract(lake, "benefit_claims", ROUND_0, [
        *(_claim(c, p, b, o, "2009-01-01") for c, p, b, o in stock),
        _claim("o4ca", "d", "CA", "N2", "2008-01-01"),
        _claim("pre", "p", "JSA", "N1", "2008-11-01", "2009-02-28"),
        _claim("on", "q", "JSA", "N1", "2008-11-01", "2009-03-01"),
    ])

    # ---- round 1: extracts of 2009-06-30
    write_extract(lake, "offices", ROUND_1, [
        _office("N1", "N1", "DN"), _office("N1S", "N1", "DN"), _office("N2", "N2", "DN"),
        _office("M1", "M1", "DM")])
    write_extract(lake, "disadvantaged_areas", ROUND_1, [
        dict(area_code="A1", area_name="Area one", valid_from="2000-01-01", valid_to=None)])
    write_extract(lake, "opte_targets", ROUND_1, [
        dict(financial_year=2009, district_code="DN", opte_target=120),
        dict(financial_year=2009, district_code="DM", opte_target=60)])
    write_extract(lake, "benefit_claims", ROUND_1, [
        _claim("o0", "j", "JSA", "N1", "2009-01-01", "2009-04-20"),   # April OPtE
        _claim("o1", "a", "JSA", "N1", "2009-01-01", "2009-06-10"),   # OPtE, job outcome, area
        _claim("o2", "b", "ESA", "N1S", "2009-01-01", "2009-06-10"),  # died (satellite of N1)
        _claim("o3", "c", "JSA", "N2", "2009-01-01", "2009-06-10"),   # returned within a week
        _claim("o3r", "c", "JSA", "N2", "2009-06-15"),
        _claim("o4", "d", "IS", "N2", "2009-01-01", "2009-06-10"),    # cross-flow onto CA
        _claim("o4ca", "d", "CA", "N2", "2008-01-01"),
        _claim("o5", "e", "JSA", "N2", "2009-01-01", "2009-06-10"),   # programme start (FND)
        _claim("o6", "f", "JSA", "N1", "2009-01-01", "2009-06-10"),   # retired (man born 1944-06-01)
        _claim("o7", "g", "IB", "N1", "2009-01-01", "2009-06-10"),    # OPtE, group 1
        _claim("u1", "h", "JSA", "XXX", "2009-01-01", "2009-06-10"),  # unknown office, no customer
        _claim("m1", "i", "JSA", "M1", "2009-01-01", "2009-06-10"),   # other district
        _claim("n1", "n", "JSA", "N2", "2009-04-15"),                  # the one complete cohort (May)
    ])
    write_extract(lake, "customers", ROUND_1, [
        _customer("j"), _customer("a", area="A1"), _customer("b", died="2009-06-12"),
        _customer("c"), _customer("d"), _customer("e"), _customer("f", born="1944-06-01", sex="M"),
        _customer("g"), _customer("i"), _customer("n"), _customer("p"), _customer("q")])
    write_extract(lake, "tax_employments", ROUND_1, [
        dict(person_key="a", paye_ref="100/A", start_date="2009-06-20", end_date=None, form="P46",
             received_date="2009-06-25")])
    write_extract(lake, "programme_starts", ROUND_1, [
        dict(person_key="e", programme_code="FND", start_date="2009-06-05", office_code="N2")])

    # ---- round 2: extracts of 2009-07-31
    write_extract(lake, "benefit_claims", ROUND_2, [
        _claim("k1", "k", "JSA", "N2", "2009-02-01", "2009-07-10")])  # July OPtE
    write_extract(lake, "customers", ROUND_2, [_customer("k")])
    write_extract(lake, "tax_employments", ROUND_2, [
        dict(person_key="g", paye_ref="200/G", start_date="2009-07-01", end_date=None, form="RTI",
             received_date="2009-07-20")])  # late news: o7 has a job outcome
    write_extract(lake, "programme_starts", ROUND_2, [])  # header-only file still counts
    write_extract(lake, "opte_targets", ROUND_2, [
        dict(financial_year=2009, district_code="DN", opte_target=240),
        dict(financial_year=2009, district_code="DM", opte_target=60)])


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """Two homes on the same lake: built with the derived cut-off and with cutoff=2009-06-30."""
    latest = tmp_path_factory.mktemp("measures_latest")
    write_scenario(latest / "lake")
    earlier = tmp_path_factory.mktemp("measures_cutoff")
    shutil.copytree(latest / "lake", earlier / "lake")
    build(latest)
    build(earlier, cutoff=date.fromisoformat(ROUND_1))
    return {"latest": latest, "earlier": earlier}


def query(home: Path, sql: str, work: bool = False) -> list[dict]:
    """Rows of `sql` on the released warehouse (the marts as readers see them), or with `work` on the
    build's working database (the intermediate models too)."""
    con = duckdb.connect(str(work_database_path(home) if work else warehouse_path(home)), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def monthly(home: Path, level: str, unit: str, month: str) -> dict:
    rows = query(home, f"select * from marts.opte_monthly where level = '{level}' "
                       f"and unit_code = '{unit}' and month = date '{month}'")
    assert len(rows) == 1, rows
    return rows[0]


def test_planted_district_exclusions_and_opte(homes):
    row = monthly(homes["earlier"], "district", "DN", "2009-06-01")
    assert row["unit_name"] == "District DN"
    assert (row["offflows"], row["excluded_died"], row["excluded_retired"],
            row["excluded_returned_within_week"], row["excluded_cross_flow"],
            row["excluded_programme_start"], row["opte_offflows"]) == (7, 1, 1, 1, 1, 1, 2)
    # o1: JSA, 160 days, disadvantaged area: group 3, 4 + 2 = 6 points; o7: IB, group 1, 12
    assert row["opte_points"] == 18
    # o1's job 10 days after d, no JSA return: 6 + 1 sustained bonus
    assert (row["job_outcomes"], row["jot_points"]) == (1, 7)


def test_offflow_events_classify_each_planted_case(homes):
    events = {r["claim_id"]: r for r in query(homes["earlier"], "select * from marts.offflow_events")}
    # "pre" ended before the coverage start: not an off-flow of any mart
    assert set(events) == {"on", "o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7", "u1", "m1"}
    assert {c: events[c]["exclusion_reason"] for c in ("o2", "o3", "o4", "o5", "o6")} == {
        "o2": "died", "o3": "returned_within_week", "o4": "cross_flow", "o5": "programme_start",
        "o6": "retired"}
    o1 = events["o1"]
    assert (o1["priority_group"], o1["in_disadvantaged_area"], o1["points"]) == (3, True, 6)
    assert (o1["is_job_outcome"], o1["job_start_date"], o1["jot_points"]) == (True, date(2009, 6, 20), 7)
    assert events["o2"]["reporting_office_code"] == "N1"  # satellite reports under its parent
    assert (events["u1"]["district_code"], events["u1"]["region_code"]) == ("UNALLOCATED", "UNALLOCATED")
    assert all(e["jot_points"] == 0 for e in events.values() if not e["is_job_outcome"])


def test_year_to_date_target_and_rag(homes):
    row = monthly(homes["earlier"], "district", "DN", "2009-06-01")
    # April o0 + June o1, o7; target 120 x 3 / 12 = 30; 3 / 30 = 0.1: red
    assert (row["opte_ytd"], row["opte_target_annual"], row["opte_target_ytd"]) == (3, 120, 30)
    assert row["pct_of_target_ytd"] == pytest.approx(0.1)
    assert row["rag"] == "red"
    # register on 1 April 2009: N1 has 5 claims (satellite N1S included), DN 8: 120 x 5 / 8
    n1 = monthly(homes["earlier"], "office", "N1", "2009-06-01")
    assert n1["opte_target_annual"] == pytest.approx(75.0)
    # region and national: DN + DM
    assert monthly(homes["earlier"], "region", "RN", "2009-06-01")["opte_target_annual"] == 180
    assert monthly(homes["earlier"], "national", "ALL", "2009-06-01")["opte_target_annual"] == 180
    assert not row["opte_is_final"]  # cut-off 2009-06-30 < 30 June + 28 days


def test_unallocated_rolls_into_national(homes):
    home = homes["earlier"]
    national = monthly(home, "national", "ALL", "2009-06-01")
    unallocated = monthly(home, "district", "UNALLOCATED", "2009-06-01")
    assert (unallocated["unit_name"], unallocated["offflows"]) == ("Unallocated", 1)
    assert monthly(home, "office", "XXX", "2009-06-01")["unit_name"] is None
    assert (national["unit_name"], national["offflows"], national["opte_offflows"]) == ("National", 9, 4)
    districts = query(home, "select sum(offflows) as n from marts.opte_monthly "
                            "where level = 'district' and month = date '2009-06-01'")
    assert districts[0]["n"] == national["offflows"]
    checks = {(r["check_name"]): r["row_count"] for r in query(
        home, "select * from marts.data_quality where extract_date is null")}
    assert checks == {"unknown_office_code": 1, "customer_missing": 1, "null_date_of_birth": 0,
                      "offflows_before_coverage": 1}


def test_conversion_by_customer_group(homes):
    rows = query(homes["earlier"], "select * from marts.opte_jot_conversion where level = 'district' "
                                   "and unit_code = 'DN' and month = date '2009-06-01' order by customer_group")
    assert [(r["customer_group"], r["opte_offflows"], r["opte_with_job_outcome"]) for r in rows] == [
        ("jsa", 1, 1), ("sick_or_disabled", 1, 0)]


def test_later_extracts_move_the_latest_build(homes):
    home = homes["latest"]
    assert query(home, "select data_cutoff from marts.opte_monthly limit 1")[0]["data_cutoff"] == date(2009, 7, 31)
    june = monthly(home, "district", "DN", "2009-06-01")
    # o7 now has a job outcome (IB, no bonus: 12); the new targets snapshot replaces the old
    assert (june["job_outcomes"], june["jot_points"]) == (2, 19)
    assert june["opte_target_annual"] == 240 and june["opte_is_final"]
    july = monthly(home, "district", "DN", "2009-07-01")
    assert (july["offflows"], july["opte_offflows"], july["opte_ytd"]) == (1, 1, 4)
    # k's claim was open on 1 April at N2: DN register 9, N1 keeps 5: 240 x 5 / 9
    assert monthly(home, "office", "N1", "2009-06-01")["opte_target_annual"] == pytest.approx(240 * 5 / 9)


def test_cutoff_reproduces_the_earlier_state(homes):
    earlier = homes["earlier"]
    assert query(earlier, "select distinct data_cutoff from marts.opte_monthly") == [
        {"data_cutoff": date(2009, 6, 30)}]
    assert query(earlier, "select count(*) as n from marts.offflow_events where offflow_date > date '2009-06-30'")[0]["n"] == 0
    # the cut-off build ignores the later targets snapshot and the later employment
    assert monthly(earlier, "district", "DN", "2009-06-01")["opte_target_annual"] == 120
    assert query(earlier, "select is_job_outcome from marts.offflow_events where claim_id = 'o7'") == [
        {"is_job_outcome": False}]
    # and the June figures that no later extract touched are the same in both builds
    columns = ("offflows", "excluded_died", "excluded_retired", "excluded_returned_within_week",
               "excluded_cross_flow", "excluded_programme_start", "opte_offflows", "opte_points")
    for level, unit in (("office", "N1"), ("office", "N2"), ("district", "DN"), ("national", "ALL")):
        a = monthly(earlier, level, unit, "2009-06-01")
        b = monthly(homes["latest"], level, unit, "2009-06-01")
        assert {c: a[c] for c in columns} == {c: b[c] for c in columns}, (level, unit)


def test_exclusion_evidence_proxy_and_sustainability_of_the_planted_cases(homes):
    events = {r["claim_id"]: r for r in query(homes["earlier"], "select * from marts.offflow_events")}
    evidence = {c: (events[c]["evidence_claim_id"], events[c]["evidence_date"], events[c]["evidence_programme_code"])
                for c in ("o1", "o2", "o3", "o4", "o5", "o6")}
    assert evidence == {
        "o1": (None, None, None),                   # OPtE: no evidence
        "o2": (None, date(2009, 6, 12), None),      # date of death
        "o3": ("o3r", date(2009, 6, 15), None),     # the return claim and its start
        "o4": ("o4ca", date(2008, 1, 1), None),     # the CA claim open since 2008
        "o5": (None, date(2009, 6, 5), "FND"),      # the programme start
        "o6": (None, date(2009, 6, 1), None),       # State Pension age: 1944-06-01 + 65 years
    }
    # every planted claim closed as FW (found work): all proxies, excluded or not
    assert all(e["is_proxy"] for e in events.values())
    # June + 13 weeks is after the cut-off: not due, so not answered
    assert (events["o1"]["back_on_benefit_by_week_13"], events["o1"]["back_on_benefit_by_week_26"]) == (None, None)
    # April's OPtE off-flow: week 13 due on 30 April + 91 days = 30 July, after the cut-off too
    assert events["o0"]["back_on_benefit_by_week_13"] is None
    # and an excluded off-flow is never answered
    assert events["o3"]["back_on_benefit_by_week_13"] is None


def test_offflows_and_cohorts_before_the_coverage_start_count_nowhere(homes):
    for home in homes.values():
        assert query(home, "select coverage_start from marts.opte_monthly limit 1") == [
            {"coverage_start": date(2009, 3, 1)}]
        # "on" (d = the coverage start) is counted in March 2009; "pre" (the day before) is not
        assert monthly(home, "office", "N1", "2009-03-01")["offflows"] == 1
        assert query(home, "select min(month) as m from marts.opte_monthly") == [{"m": date(2009, 3, 1)}]
        # every spell planted in January 2009 or earlier opened before the coverage start: only
        # n1 (April 2009, cohort May) is in a complete cohort
        cohorts = query(home, "select distinct level, unit_code, cohort_month, cohort_size "
                              "from marts.cohort_offflow_rates order by 1, 2")
        assert cohorts == [
            {"level": level, "unit_code": unit, "cohort_month": date(2009, 5, 1), "cohort_size": 1}
            for level, unit in (("district", "DN"), ("national", "ALL"), ("office", "N2"), ("region", "RN"))]
        incomplete = query(home, "select count(*) as n from intermediate.int_spells_cohorted "
                                 "where not is_cohort_complete", work=True)
        assert incomplete[0]["n"] >= 10


def _coverage_start(con) -> date:
    return con.execute("select coverage_start from intermediate.int_coverage_start").fetchone()[0]


def test_sample_has_no_cohort_or_month_before_the_coverage_start(sample_built_home):
    """On the bundled sample: every mart starts at the coverage start (MEASURES.md section 9).

    The sample's first claims extract carries the stock of claims open on its day, so spells
    that started long before it exist (and are evidence); their cohorts are incomplete and must
    not appear. Checked mart by mart, with each mart's own month column."""
    con = duckdb.connect(str(work_database_path(sample_built_home)), read_only=True)  # staging, intermediate
    try:
        coverage = _coverage_start(con)
        first_extract = con.execute("select min(extract_date) from staging.stg_lake__landed_extracts "
                                    "where dataset = 'benefit_claims'").fetchone()[0]
        assert coverage == first_extract.replace(day=1)
        month_columns = {"offflow_events": "offflow_month", "opte_monthly": "month",
                         "opte_jot_conversion": "month", "opte_sustainability": "month",
                         "office_monitors": "month", "cohort_offflow_rates": "cohort_month"}
        for mart, column in month_columns.items():
            earliest, rows = con.execute(f"select min({column}), count(*) from marts.{mart}").fetchone()
            assert rows > 0 and earliest >= coverage, (mart, earliest, coverage)
        fy_start = date(coverage.year - (coverage.month < 4), 4, 1)
        earliest_year = con.execute("select min(financial_year) from marts.measure_agreement").fetchone()[0]
        assert earliest_year >= fy_start.year
        # complete cohorts only: each opens (previous count date + 1 day) on or after the coverage start
        opened_early = con.execute("""
            select count(*) from marts.cohort_offflow_rates as rates
            inner join intermediate.int_count_dates as dates on dates.month_start = rates.cohort_month
            where dates.previous_count_date + interval 1 day < ?""", [coverage]).fetchone()[0]
        assert opened_early == 0
        # not vacuous: the sample does hold spells of incomplete cohorts (the opening stock)
        incomplete = con.execute("select count(*), min(cohort_month) from intermediate.int_spells_cohorted "
                                 "where not is_cohort_complete").fetchone()
        assert incomplete[0] > 0 and incomplete[1] < coverage
        # off-flows dated before the coverage start are counted in data quality and nowhere else
        before = con.execute("select count(*) from intermediate.int_offflows_identified "
                             "where offflow_date < ?", [coverage]).fetchone()[0]
        counted = con.execute("select row_count from marts.data_quality "
                              "where check_name = 'offflows_before_coverage'").fetchone()[0]
        assert counted == before
        # office targets of a financial year whose 1 April is before the coverage start are null
        early_targets = con.execute("""
            select count(*) from marts.opte_monthly
            where level = 'office' and opte_target_annual is not null
              and make_date(financial_year, 4, 1) < ?""", [coverage]).fetchone()[0]
        assert early_targets == 0
    finally:
        con.close()
