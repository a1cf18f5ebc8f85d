-- One row per off-flow, with the conditions of each OPtE exclusion and the exclusion reason:
-- the first that applies in the order died, retired, returned_within_week, cross_flow,
-- programme_start (MEASURES.md section 2). Null exclusion_reason = an OPtE off-flow.
-- The other-claim and programme conditions are equality joins on person_key with range filters
-- (never a cross join), so they scale with claims per person, not with the population.
with offflows as (
    select * from {{ ref('int_offflows_identified') }}
),

section_1_benefits as (
    select benefit_code from {{ ref('benefits') }}
),

claims as (
    select
        claims.claim_id,
        claims.person_key,
        claims.benefit_code,
        claims.claim_start_date,
        claims.claim_end_date
    from {{ ref('stg_lake__benefit_claims') }} as claims
    inner join section_1_benefits
        on section_1_benefits.benefit_code = claims.benefit_code
),

excluding_programme_starts as (
    select starts.person_key, starts.start_date
    from {{ ref('stg_lake__programme_starts') }} as starts
    inner join {{ ref('programmes') }} as programmes
        on programmes.programme_code = starts.programme_code
    where programmes.excludes_from_opte
),

-- another claim to the same benefit starting d <= start <= d + return_window_days
returns as (
    select distinct offflows.claim_id
    from offflows
    inner join claims
        on claims.person_key = offflows.person_key
        and claims.benefit_code = offflows.benefit_code
        and claims.claim_id <> offflows.claim_id
        and claims.claim_start_date >= offflows.offflow_date
        and claims.claim_start_date <= {{ dbt.dateadd('day', var('return_window_days'), 'offflows.offflow_date') }}
),

-- another claim to a different benefit starting by d + crossflow_window_days, not ended by d
cross_flows as (
    select distinct offflows.claim_id
    from offflows
    inner join claims
        on claims.person_key = offflows.person_key
        and claims.benefit_code <> offflows.benefit_code
        and claims.claim_start_date <= {{ dbt.dateadd('day', var('crossflow_window_days'), 'offflows.offflow_date') }}
        and (claims.claim_end_date is null or claims.claim_end_date > offflows.offflow_date)
),

-- an excluding programme start within [d - before, d + after]
programme_starts as (
    select distinct offflows.claim_id
    from offflows
    inner join excluding_programme_starts as starts
        on starts.person_key = offflows.person_key
        and starts.start_date >= {{ dbt.dateadd('day', -var('programme_window_before_days'), 'offflows.offflow_date') }}
        and starts.start_date <= {{ dbt.dateadd('day', var('programme_window_after_days'), 'offflows.offflow_date') }}
),

conditions as (
    select
        offflows.*,
        coalesce(
            offflows.date_of_death <= {{ dbt.dateadd('day', var('death_grace_days'), 'offflows.offflow_date') }},
            false) as meets_died,
        coalesce(
            offflows.state_pension_age_date <= {{ dbt.dateadd('day', var('retirement_grace_days'), 'offflows.offflow_date') }},
            false) as meets_retired,
        returns.claim_id is not null as meets_returned_within_week,
        cross_flows.claim_id is not null as meets_cross_flow,
        programme_starts.claim_id is not null as meets_programme_start
    from offflows
    left join returns on returns.claim_id = offflows.claim_id
    left join cross_flows on cross_flows.claim_id = offflows.claim_id
    left join programme_starts on programme_starts.claim_id = offflows.claim_id
)

select
    *,
    case
        when meets_died then 'died'
        when meets_retired then 'retired'
        when meets_returned_within_week then 'returned_within_week'
        when meets_cross_flow then 'cross_flow'
        when meets_programme_start then 'programme_start'
    end as exclusion_reason,
    not (meets_died or meets_retired or meets_returned_within_week
         or meets_cross_flow or meets_programme_start) as is_opte
from conditions
