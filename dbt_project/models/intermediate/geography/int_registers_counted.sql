-- One row per financial year and attribution (reporting office, district, region) of the
-- in-scope claims open on 1 April of that year (MEASURES.md section 8): the registers from which
-- office targets are apportioned. A claim is open on a day when start <= day and (end is null or
-- end >= day); it counts through its office's `offices` row valid on that day (UNALLOCATED when
-- none). Financial years: those with at least one off-flow counted (on or after the coverage
-- start) whose 1 April is on or after the coverage start: a register on an earlier day is
-- unknown (MEASURES.md section 9), as claims that ended before the coverage start are absent.
with financial_years as (
    select distinct
        {{ financial_year('offflow_date') }} as financial_year
    from {{ ref('int_offflows_identified') }}
    where not is_before_coverage
),

april_firsts as (
    select
        financial_years.financial_year,
        {{ financial_year_start('financial_years.financial_year') }} as register_date
    from financial_years
    cross join {{ ref('int_coverage_start') }} as coverage
    where {{ financial_year_start('financial_years.financial_year') }} >= coverage.coverage_start
),

claims as (
    select claims.claim_id, claims.office_code, claims.claim_start_date, claims.claim_end_date
    from {{ ref('int_claims_in_scope') }} as claims
),

open_claims as (
    -- a range join against a handful of dates (one per financial year)
    select
        april_firsts.financial_year,
        april_firsts.register_date,
        claims.claim_id,
        claims.office_code
    from claims
    inner join april_firsts
        on claims.claim_start_date <= april_firsts.register_date
        and (claims.claim_end_date is null or claims.claim_end_date >= april_firsts.register_date)
)

select
    open_claims.financial_year,
    open_claims.register_date,
    {{ geography_columns('open_claims.office_code') }},
    cast(count(*) as bigint) as claims_open
from open_claims
{{ join_office_period('open_claims.office_code', 'open_claims.register_date') }}
group by 1, 2, 3, 4, 5, 6
