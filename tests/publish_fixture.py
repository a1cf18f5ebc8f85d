"""A small warehouse holding only the aggregate marts publication reads (MEASURES.md sections 10 and
16, and marts.reporting_units), for the formatting tests of publication. It is a fixture, not a
model of the measures: the numbers are random but consistent with the contract's identities
(offflows = opte + exclusions, rates = numerator / denominator, year to date = the sum of the
months), so that publishing and disclosure control can be tested without building dbt. The
end-to-end tests use the real chain (land -> build -> publish).

Planted: office O24 of district D2 has an offices row at every month end but never an off-flow;
office code X99 has off-flows but no offices row (district and region UNALLOCATED).
`new_marts=False` leaves out what MEASURES.md section 16 adds (an older warehouse). `geometry`
gives another organisation and span (benchmarks/publish.py publishes a national-shaped one).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

REGIONS = {"R1": "North", "R2": "South"}
DISTRICTS = {"D1": ("R1", "Dale"), "D2": ("R1", "Fell"), "D3": ("R2", "Weald")}
OFFICES = {"O11": "D1", "O12": "D1", "O21": "D2", "O22": "D2", "O23": "D2", "O31": "D3"}
EMPTY_OFFICE = ("O24", "D2")  # in the organisation, never an off-flow
UNKNOWN_OFFICE = "X99"        # off-flows, no offices row
FIRST_MONTH = date(2009, 4, 1)
LAST_MONTH = date(2010, 6, 1)
CUTOFF = date(2010, 6, 30)
BENEFITS = ("JSA", "ESA")


@dataclass
class Geometry:
    """The organisation and span of a fixture warehouse."""

    regions: dict = field(default_factory=lambda: dict(REGIONS))
    districts: dict = field(default_factory=lambda: dict(DISTRICTS))
    offices: dict = field(default_factory=lambda: dict(OFFICES))
    empty_office: tuple = EMPTY_OFFICE
    unknown_office: str = UNKNOWN_OFFICE
    first_month: date = FIRST_MONTH
    last_month: date = LAST_MONTH
    cutoff: date = CUTOFF
    benefits: tuple = BENEFITS
    max_events: int = 9  # off-flows per office and month: 0 .. max_events

    def months(self):
        m = self.first_month
        while m <= self.last_month:
            yield m
            m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)

    @property
    def financial_years(self) -> list[int]:
        return sorted({m.year if m.month >= 4 else m.year - 1 for m in self.months()})


def _insert(con, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Bulk insert (a DataFrame scan; executemany is far too slow at national shape)."""
    frame = pd.DataFrame(rows, columns=columns)  # noqa: F841 (read by DuckDB by name)
    con.register("_rows", frame)
    con.execute(f"insert into {table} by name select * from _rows")
    con.unregister("_rows")


INDICATORS = ["opte_share", "cross_flow_share", "programme_start_share", "returned_within_week_share",
              "failed_to_sign_share"]


def _second_thursday(m: date) -> date:
    return m + timedelta(days=(3 - m.weekday()) % 7 + 7)


def _last_day(m: date) -> date:
    return date(m.year + (m.month == 12), m.month % 12 + 1, 1) - timedelta(days=1)


def make_warehouse(home: Path, seed: int = 7, new_marts: bool = True, geometry: Geometry | None = None) -> dict:
    """Write <home>/warehouse.duckdb, build_info.json and landing manifests; return the person ids used."""
    g = geometry or Geometry()
    CUTOFF, OFFICES, DISTRICTS, REGIONS = g.cutoff, g.offices, g.districts, g.regions  # noqa: N806
    UNKNOWN_OFFICE, EMPTY_OFFICE = g.unknown_office, g.empty_office  # noqa: N806
    rng = random.Random(seed)
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for schema in ("marts", "intermediate"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table intermediate.int_data_cutoff as select date '{CUTOFF}' as data_cutoff, "
                "false as is_explicit, 4 as datasets_landed")

    events, person_keys, claim_ids = [], [], []
    n = 0
    placement = {**{o: (d, DISTRICTS[d][0]) for o, d in OFFICES.items()}, UNKNOWN_OFFICE: ("UNALLOCATED", "UNALLOCATED")}
    for month in g.months():
        for office, (district, region) in placement.items():
            for _ in range(rng.randint(0, g.max_events if office != UNKNOWN_OFFICE else 2)):
                n += 1
                pk = f"{rng.getrandbits(128):032x}"
                cid = f"CLM{n:07d}"
                person_keys.append(pk)
                claim_ids.append(cid)
                reason = rng.choice([None, None, None, "died", "retired", "returned_within_week",
                                     "cross_flow", "programme_start"])
                points = rng.choice([4, 8, 12])
                job = reason is None and rng.random() < 0.4
                events.append((cid, pk, rng.choice(["JSA", "ESA", "IS"]), office, office, district, region,
                               month + timedelta(days=rng.randint(0, 27)), month, reason, reason is None,
                               rng.randint(1, 3), False, points, month + timedelta(days=20) if job else None,
                               job, points if job else 0, reason is None and rng.random() < 0.5))
    con.execute("""create table marts.offflow_events (claim_id varchar, person_key varchar,
        benefit_code varchar, office_code varchar, reporting_office_code varchar, district_code varchar,
        region_code varchar, offflow_date date, offflow_month date, exclusion_reason varchar,
        is_opte boolean, priority_group integer, in_disadvantaged_area boolean, points integer,
        job_start_date date, is_job_outcome boolean, jot_points integer, is_proxy boolean)""")
    _insert(con, "marts.offflow_events", ["claim_id", "person_key", "benefit_code", "office_code",
                                          "reporting_office_code", "district_code", "region_code", "offflow_date",
                                          "offflow_month", "exclusion_reason", "is_opte", "priority_group",
                                          "in_disadvantaged_area", "points", "job_start_date", "is_job_outcome",
                                          "jot_points", "is_proxy"], events)

    con.execute("create table targets (district_code varchar, fy integer, target integer)")
    _insert(con, "targets", ["district_code", "fy", "target"],
            [(d, fy, rng.randint(40, 90)) for d in DISTRICTS for fy in g.financial_years])
    con.execute("create table offices (office_code varchar, office_name varchar, district_code varchar, "
                "region_code varchar)")
    _insert(con, "offices", ["office_code", "office_name", "district_code", "region_code"],
            [(o, f"Office {o} Jobcentre Plus", d, DISTRICTS[d][0]) for o, d in [*OFFICES.items(), EMPTY_OFFICE]])
    # annual targets by level and unit (offices: half the district's; regions and nation: the sum)
    con.execute("""
    create table unit_targets as
    select 'district' as level, district_code as unit_code, fy, target as annual from targets
    union all select 'office', o.office_code, t.fy, t.target / 2.0 from offices o join targets t using (district_code)
    union all select 'region', d.region_code, t.fy, sum(t.target) from targets t
        join (select distinct district_code, region_code from offices) d using (district_code) group by all
    union all select 'national', 'ALL', fy, sum(target) from targets group by fy
    """)
    con.execute("""
    create table names as
    select 'office' as level, office_code as unit_code, office_name as unit_name from offices
    union all select distinct 'district', district_code, 'District ' || district_code from offices
    union all select distinct 'region', region_code, 'Region ' || region_code from offices
    union all select 'district', 'UNALLOCATED', 'Unallocated'
    union all select 'region', 'UNALLOCATED', 'Unallocated' union all select 'national', 'ALL', 'National'
    """)
    con.execute(f"""
    create table marts.opte_monthly as
    with units as (
        select 'office' as level, reporting_office_code as unit_code, * from marts.offflow_events
        union all select 'district', district_code, * from marts.offflow_events
        union all select 'region', region_code, * from marts.offflow_events
        union all select 'national', 'ALL', * from marts.offflow_events
    ), agg as (
        select level, unit_code, offflow_month as month, count(*) as offflows,
            count(*) filter (where exclusion_reason = 'died') as excluded_died,
            count(*) filter (where exclusion_reason = 'retired') as excluded_retired,
            count(*) filter (where exclusion_reason = 'returned_within_week') as excluded_returned_within_week,
            count(*) filter (where exclusion_reason = 'cross_flow') as excluded_cross_flow,
            count(*) filter (where exclusion_reason = 'programme_start') as excluded_programme_start,
            count(*) filter (where is_opte) as opte_offflows,
            coalesce(sum(points) filter (where is_opte), 0) as opte_points,
            count(*) filter (where is_job_outcome) as job_outcomes,
            coalesce(sum(jot_points), 0) as jot_points,
            count(*) filter (where is_proxy) as proxy_offflows
        from units group by all
    ), fy as (
        select *, case when month(month) >= 4 then year(month) else year(month) - 1 end as financial_year,
            (month(month) + 8) % 12 + 1 as months_elapsed
        from agg
    ), with_target as (
        select fy.*, t.annual as opte_target_annual,
            sum(opte_offflows) over (partition by fy.level, fy.unit_code, fy.financial_year order by month) as opte_ytd
        from fy left join unit_targets t on t.level = fy.level and t.unit_code = fy.unit_code and t.fy = fy.financial_year
    )
    select w.level, w.unit_code, n.unit_name, month, financial_year, offflows, excluded_died, excluded_retired,
        excluded_returned_within_week, excluded_cross_flow, excluded_programme_start, opte_offflows,
        opte_offflows / offflows as opte_share_of_offflows, opte_points, job_outcomes, jot_points,
        opte_target_annual, opte_target_annual * months_elapsed / 12 as opte_target_ytd, opte_ytd, months_elapsed,
        opte_ytd / (opte_target_annual * months_elapsed / 12) as pct_of_target_ytd,
        case when opte_target_annual is null then null
             when opte_ytd / (opte_target_annual * months_elapsed / 12) >= 1 then 'green'
             when opte_ytd / (opte_target_annual * months_elapsed / 12) >= 0.95 then 'amber' else 'red' end as rag,
        last_day(month) + 28 <= date '{CUTOFF}' as opte_is_final,
        last_day(month) + 183 <= date '{CUTOFF}' as jot_is_final,
        date '{CUTOFF}' as data_cutoff,
        proxy_offflows,
        case when not last_day(month) + 28 <= date '{CUTOFF}' then proxy_offflows * 1.6 end as opte_nowcast,
        opte_ytd * 12.0 / months_elapsed as opte_projected_annual,
        case when opte_target_annual > 0 then opte_ytd * 12.0 / months_elapsed / opte_target_annual end
            as projected_pct_of_target,
        case when not opte_target_annual > 0 then null
             when opte_ytd * 12.0 / months_elapsed / opte_target_annual >= 1 then 'green'
             when opte_ytd * 12.0 / months_elapsed / opte_target_annual >= 0.95 then 'amber' else 'red' end
            as projected_rag
    from with_target w left join names n on n.level = w.level and n.unit_code = w.unit_code
    """)
    _reporting_units(con)
    con.execute("""
    create table marts.opte_jot_conversion as
    with units as (
        select 'office' as level, reporting_office_code as unit_code, * from marts.offflow_events
        union all select 'district', district_code, * from marts.offflow_events
        union all select 'region', region_code, * from marts.offflow_events
        union all select 'national', 'ALL', * from marts.offflow_events
    )
    select u.level, u.unit_code, any_value(n.unit_name) as unit_name, offflow_month as month,
        case benefit_code when 'JSA' then 'jsa' when 'ESA' then 'sick_or_disabled' else 'other' end as customer_group,
        count(*) as opte_offflows, count(*) filter (where is_job_outcome) as opte_with_job_outcome,
        count(*) filter (where is_job_outcome) / count(*) as conversion_rate
    from units u left join names n on n.level = u.level and n.unit_code = u.unit_code
    where is_opte group by u.level, u.unit_code, offflow_month, customer_group
    """)
    rows = []
    for level, units in (("office", [*OFFICES, UNKNOWN_OFFICE]), ("district", [*DISTRICTS, "UNALLOCATED"]),
                         ("region", [*REGIONS, "UNALLOCATED"]), ("national", ["ALL"])):
        for unit in units:
            for month in g.months():
                for benefit in g.benefits:
                    size = rng.randint(1, 40)
                    cd = _second_thursday(month)
                    last_rate = None
                    for week, target in ((13, 0.56), (26, 0.78), (52, 0.92)):
                        due = CUTOFF >= cd + timedelta(days=7 * week)
                        off = min(size, int(size * (target + rng.uniform(-0.2, 0.1)))) if due else None
                        projected = None
                        if not due and last_rate is not None:
                            projected = min(1.0, last_rate + 0.1)
                        if due:
                            last_rate = off / size
                        rows.append((level, unit, benefit, month, cd, size, week, off,
                                     off / size if due else None,
                                     target if benefit == "JSA" else None, due, cd + timedelta(days=7 * week),
                                     projected, None if projected is None or benefit != "JSA" else projected < target))
    con.execute("""create table marts.cohort_offflow_rates (level varchar, unit_code varchar,
        benefit_code varchar, cohort_month date, cohort_count_date date, cohort_size bigint, week integer,
        offflowed_by_week bigint, offflow_rate double, target_rate double, is_due boolean, due_date date,
        projected_rate double, projected_at_risk boolean)""")
    _insert(con, "marts.cohort_offflow_rates", ["level", "unit_code", "benefit_code", "cohort_month",
                                                "cohort_count_date", "cohort_size", "week", "offflowed_by_week",
                                                "offflow_rate", "target_rate", "is_due", "due_date",
                                                "projected_rate", "projected_at_risk"], rows)
    if new_marts:
        _new_marts(con, rng, g)
    else:
        con.execute("alter table marts.opte_monthly drop column proxy_offflows")
        for col in ("opte_nowcast", "opte_projected_annual", "projected_pct_of_target", "projected_rag"):
            con.execute(f"alter table marts.opte_monthly drop column {col}")
        for col in ("projected_rate", "projected_at_risk"):
            con.execute(f"alter table marts.cohort_offflow_rates drop column {col}")
    for helper in ("targets", "unit_targets", "names", "offices"):
        con.execute(f"drop table {helper}")
    con.close()

    (home / "build_info.json").write_text(json.dumps({
        "built_at": "2010-07-01T00:00:00+00:00", "code_version": "fixture", "cutoff_requested": None,
        "parameters": {"opte_maturity_days": 28, "jot_maturity_days": 183, "rag_amber_floor": 0.95,
                       "funnel_z": 3.09, "funnel_z_warning": 1.96},
        "seconds": 0.0}))
    for dataset in ("benefit_claims", "customers", "tax_employments", "programme_starts",
                    "offices", "disadvantaged_areas", "opte_targets"):
        folder = home / "lake" / "_manifests" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{CUTOFF}.json").write_text(json.dumps({
            "dataset": dataset, "extract_date": str(CUTOFF),
            "source_file": f"{dataset}_{CUTOFF:%Y%m%d}.csv", "sha256": f"{rng.getrandbits(256):064x}",
            "history": []}))
    return {"person_keys": person_keys, "claim_ids": claim_ids}


def _reporting_units(con) -> None:
    """marts.reporting_units as the dbt model defines it, for the fixture's organisation."""
    con.execute("""
    create table marts.reporting_units as
    with months as (select distinct month from marts.opte_monthly where level = 'national'),
    listed as (
        select m.month, 'office' as level, o.office_code as unit_code, o.district_code, o.region_code,
            true as is_open_at_month_end
        from months m cross join offices o
        union all select distinct month, 'office', unit_code, 'UNALLOCATED', 'UNALLOCATED', false
            from marts.opte_monthly where level = 'office' and unit_code not in (select office_code from offices)
        union all select distinct m.month, 'district', o.district_code, null, o.region_code, true
            from months m cross join offices o
        union all select distinct month, 'district', 'UNALLOCATED', null, 'UNALLOCATED', false
            from marts.opte_monthly where level = 'district' and unit_code = 'UNALLOCATED'
        union all select distinct m.month, 'region', o.region_code, null, null, true from months m cross join offices o
        union all select distinct month, 'region', 'UNALLOCATED', null, null, false
            from marts.opte_monthly where level = 'region' and unit_code = 'UNALLOCATED'
        union all select month, 'national', 'ALL', null, null, true from months
    ),
    standing as (
        select l.*, case when month(l.month) >= 4 then year(l.month) else year(l.month) - 1 end as financial_year,
            (month(l.month) + 8) % 12 + 1 as months_elapsed,
            coalesce(this.offflows, 0) as offflows, coalesce(this.opte_offflows, 0) as opte_offflows,
            this.unit_code is not null as has_offflows,
            (select coalesce(sum(m.opte_offflows), 0) from marts.opte_monthly m
             where m.level = l.level and m.unit_code = l.unit_code and m.month <= l.month
               and m.financial_year = case when month(l.month) >= 4 then year(l.month) else year(l.month) - 1 end)
                as opte_ytd
        from listed l
        left join marts.opte_monthly this on this.level = l.level and this.unit_code = l.unit_code and this.month = l.month
    ),
    targeted as (
        select s.*, t.annual as opte_target_annual, t.annual * s.months_elapsed / 12 as opte_target_ytd
        from standing s left join unit_targets t on t.level = s.level and t.unit_code = s.unit_code
            and t.fy = s.financial_year
    )
    select t.month, last_day(t.month) as month_end, t.level, t.unit_code, n.unit_name, t.district_code,
        d.unit_name as district_name, t.region_code, r.unit_name as region_name, t.is_open_at_month_end,
        t.has_offflows, t.financial_year, t.months_elapsed, t.offflows, t.opte_offflows, t.opte_ytd,
        t.opte_target_annual, t.opte_target_ytd, t.opte_ytd / t.opte_target_ytd as pct_of_target_ytd,
        case when t.opte_target_annual is null then null when t.opte_ytd / t.opte_target_ytd >= 1 then 'green'
             when t.opte_ytd / t.opte_target_ytd >= 0.95 then 'amber' else 'red' end as rag
    from targeted t
    left join names n on n.level = t.level and n.unit_code = t.unit_code
    left join names d on d.level = 'district' and d.unit_code = t.district_code
    left join names r on r.level = 'region' and r.unit_code = t.region_code
    """)


def _new_marts(con, rng: random.Random, g: Geometry) -> None:
    """opte_sustainability, office_monitors and measure_agreement (MEASURES.md sections 12-14), random
    but consistent with their definitions."""
    rows = []
    for level, unit, name, month, opte in con.execute(
            "select level, unit_code, unit_name, month, opte_offflows from marts.opte_monthly "
            "where opte_offflows > 0 order by all").fetchall():
        for week in (13, 26):
            due = g.cutoff >= _last_day(month) + timedelta(days=7 * week)
            back = rng.randint(0, opte) if due else None
            rows.append((level, unit, name, month, week, opte, back, 1 - back / opte if due else None, due))
    con.execute("""create table marts.opte_sustainability (level varchar, unit_code varchar, unit_name varchar,
        month date, week integer, opte_offflows bigint, back_on_benefit bigint, sustained_rate double,
        is_due boolean)""")
    _insert(con, "marts.opte_sustainability", ["level", "unit_code", "unit_name", "month", "week", "opte_offflows",
                                               "back_on_benefit", "sustained_rate", "is_due"], rows)

    rows = []
    offices = [*g.offices, g.unknown_office]
    district_of = {**g.offices, g.unknown_office: "UNALLOCATED"}
    for month in g.months():
        for indicator in INDICATORS:
            counts = {o: (rng.randint(0, 30), rng.randint(30, 60)) for o in offices}
            p = sum(a for a, _ in counts.values()) / sum(b for _, b in counts.values())
            for office, (a, b) in counts.items():
                share = a / b
                limit = lambda z: z * math.sqrt(p * (1 - p) / b)  # noqa: E731
                flag = "high" if share > p + limit(3.09) else "low" if share < p - limit(3.09) else None
                warning = "high" if share > p + limit(1.96) else "low" if share < p - limit(1.96) else None
                rows.append((month, office, district_of[office], indicator, a, b, share, p, p - limit(3.09),
                             p + limit(3.09), flag, warning))
    con.execute("""create table marts.office_monitors (month date, office_code varchar, district_code varchar,
        indicator varchar, numerator bigint, denominator bigint, share double, benchmark_share double,
        lower_limit double, upper_limit double, flag varchar, warning varchar)""")
    _insert(con, "marts.office_monitors", ["month", "office_code", "district_code", "indicator", "numerator",
                                           "denominator", "share", "benchmark_share", "lower_limit", "upper_limit",
                                           "flag", "warning"], rows)

    rows = []
    for level in ("office", "district", "region", "national"):
        for fy in g.financial_years:
            for pair in ("proxy_vs_opte", "opte_vs_jot", "proxy_vs_jot"):
                x, y = rng.randint(100, 900), rng.randint(100, 900)
                rows.append((level, fy, pair, rng.randint(3, 60), x, y, y / x, rng.uniform(0.2, 0.95),
                             rng.uniform(0.05, 0.4)))
    con.execute("""create table marts.measure_agreement (level varchar, financial_year integer, pair varchar,
        pairs bigint, x_total bigint, y_total bigint, scale double, pearson_r double, mean_abs_pct_error double)""")
    _insert(con, "marts.measure_agreement", ["level", "financial_year", "pair", "pairs", "x_total", "y_total",
                                             "scale", "pearson_r", "mean_abs_pct_error"], rows)
