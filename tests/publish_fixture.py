"""A small warehouse holding only the contract tables (MEASURES.md section 10), for the
formatting tests of publication. It is a fixture, not a model of the measures: the numbers
are random but consistent with the contract's identities (offflows = opte + exclusions,
rates = numerator / denominator), so that publishing and disclosure control can be tested
without building dbt. The end-to-end tests use the real chain (land -> build -> publish).
"""
from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

import duckdb

REGIONS = {"R1": "North", "R2": "South"}
DISTRICTS = {"D1": ("R1", "Dale"), "D2": ("R1", "Fell"), "D3": ("R2", "Weald")}
OFFICES = {"O11": "D1", "O12": "D1", "O21": "D2", "O22": "D2", "O23": "D2", "O31": "D3"}
FIRST_MONTH = date(2009, 4, 1)
LAST_MONTH = date(2010, 6, 1)
CUTOFF = date(2010, 6, 30)


def _months():
    m = FIRST_MONTH
    while m <= LAST_MONTH:
        yield m
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)


def _second_thursday(m: date) -> date:
    return m + timedelta(days=(3 - m.weekday()) % 7 + 7)


def make_warehouse(home: Path, seed: int = 7) -> dict:
    """Write <home>/warehouse.duckdb, build_info.json and landing manifests; return the person ids used."""
    rng = random.Random(seed)
    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for schema in ("marts", "intermediate"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table intermediate.int_data_cutoff as select date '{CUTOFF}' as data_cutoff, "
                "false as is_explicit, 4 as datasets_landed")

    events, person_keys, claim_ids = [], [], []
    n = 0
    for month in _months():
        for office, district in OFFICES.items():
            region = DISTRICTS[district][0]
            for _ in range(rng.randint(0, 9)):
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
                               job, points if job else 0))
    con.execute("""create table marts.offflow_events (claim_id varchar, person_key varchar,
        benefit_code varchar, office_code varchar, reporting_office_code varchar, district_code varchar,
        region_code varchar, offflow_date date, offflow_month date, exclusion_reason varchar,
        is_opte boolean, priority_group integer, in_disadvantaged_area boolean, points integer,
        job_start_date date, is_job_outcome boolean, jot_points integer)""")
    con.executemany("insert into marts.offflow_events values (" + ", ".join(["?"] * 17) + ")", events)

    con.execute("create table targets (district_code varchar, fy integer, target integer)")
    con.executemany("insert into targets values (?, ?, ?)",
                    [(d, fy, rng.randint(40, 90)) for d in DISTRICTS for fy in (2009, 2010)])
    con.execute("""
    create table marts.opte_monthly as
    with units as (
        select 'office' as level, reporting_office_code as unit_code, 'Office ' || reporting_office_code as unit_name, * from marts.offflow_events
        union all select 'district', district_code, 'District ' || district_code, * from marts.offflow_events
        union all select 'region', region_code, 'Region ' || region_code, * from marts.offflow_events
        union all select 'national', 'ALL', 'National', * from marts.offflow_events
    ), agg as (
        select level, unit_code, unit_name, offflow_month as month, count(*) as offflows,
            count(*) filter (where exclusion_reason = 'died') as excluded_died,
            count(*) filter (where exclusion_reason = 'retired') as excluded_retired,
            count(*) filter (where exclusion_reason = 'returned_within_week') as excluded_returned_within_week,
            count(*) filter (where exclusion_reason = 'cross_flow') as excluded_cross_flow,
            count(*) filter (where exclusion_reason = 'programme_start') as excluded_programme_start,
            count(*) filter (where is_opte) as opte_offflows,
            coalesce(sum(points) filter (where is_opte), 0) as opte_points,
            count(*) filter (where is_job_outcome) as job_outcomes,
            coalesce(sum(jot_points), 0) as jot_points,
            any_value(district_code) as district_code
        from units group by all
    ), fy as (
        select *, case when month(month) >= 4 then year(month) else year(month) - 1 end as fy,
            (month(month) + 8) % 12 + 1 as months_elapsed
        from agg
    ), with_target as (
        select fy.*,
            case level when 'district' then (select target from targets t where t.district_code = fy.unit_code and t.fy = fy.fy)
                       when 'office' then (select target / 2.0 from targets t where t.district_code = fy.district_code and t.fy = fy.fy)
                       else (select sum(target) from targets t where t.fy = fy.fy) end as opte_target_annual,
            sum(opte_offflows) over (partition by level, unit_code, fy order by month) as opte_ytd
        from fy
    )
    select level, unit_code, unit_name, month, offflows, excluded_died, excluded_retired,
        excluded_returned_within_week, excluded_cross_flow, excluded_programme_start, opte_offflows,
        opte_offflows / offflows as opte_share_of_offflows, opte_points, job_outcomes, jot_points,
        opte_target_annual, opte_target_annual * months_elapsed / 12 as opte_target_ytd, opte_ytd,
        opte_ytd / (opte_target_annual * months_elapsed / 12) as pct_of_target_ytd,
        case when opte_target_annual is null then null
             when opte_ytd / (opte_target_annual * months_elapsed / 12) >= 1 then 'green'
             when opte_ytd / (opte_target_annual * months_elapsed / 12) >= 0.95 then 'amber' else 'red' end as rag,
        last_day(month) + 28 <= date '2010-06-30' as opte_is_final,
        last_day(month) + 183 <= date '2010-06-30' as jot_is_final
    from with_target
    """)
    con.execute("""
    create table marts.opte_jot_conversion as
    with units as (
        select 'office' as level, reporting_office_code as unit_code, * from marts.offflow_events
        union all select 'district', district_code, * from marts.offflow_events
        union all select 'region', region_code, * from marts.offflow_events
        union all select 'national', 'ALL', * from marts.offflow_events
    )
    select level, unit_code, offflow_month as month,
        case benefit_code when 'JSA' then 'jsa' when 'ESA' then 'sick_or_disabled' else 'other' end as customer_group,
        count(*) as opte_offflows, count(*) filter (where is_job_outcome) as opte_with_job_outcome,
        count(*) filter (where is_job_outcome) / count(*) as conversion_rate
    from units where is_opte group by all
    """)
    rows = []
    for level, units in (("office", list(OFFICES)), ("district", list(DISTRICTS)),
                         ("region", list(REGIONS)), ("national", ["ALL"])):
        for unit in units:
            for month in _months():
                for benefit in ("JSA", "ESA"):
                    size = rng.randint(1, 40)
                    cd = _second_thursday(month)
                    for week, target in ((13, 0.56), (26, 0.78), (52, 0.92)):
                        due = CUTOFF >= cd + timedelta(days=7 * week)
                        off = min(size, int(size * (target + rng.uniform(-0.2, 0.1)))) if due else None
                        rows.append((level, unit, benefit, month, size, week, off,
                                     off / size if due else None,
                                     target if benefit == "JSA" else None, due))
    con.execute("""create table marts.cohort_offflow_rates (level varchar, unit_code varchar,
        benefit_code varchar, cohort_month date, cohort_size bigint, week integer,
        offflowed_by_week bigint, offflow_rate double, target_rate double, is_due boolean)""")
    con.executemany("insert into marts.cohort_offflow_rates values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()

    (home / "build_info.json").write_text(json.dumps({
        "built_at": "2010-07-01T00:00:00+00:00", "code_version": "fixture", "cutoff_requested": None,
        "parameters": {"opte_maturity_days": 28, "jot_maturity_days": 183, "rag_amber_floor": 0.95},
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
