-- One row per job outcome: an off-flow credited with one or more employment starts
-- (MEASURES.md section 4). job_start_date = the earliest employment credited to it. JOT points
-- = the off-flow's area-adjusted points, plus sustained_bonus_points when the off-flow was from
-- JSA and the person has no JSA claim (any, the off-flow's own included) starting in
-- (job_start_date, job_start_date + sustained_days].
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with credited as (
    select
        claim_id,
        min(employment_start_date) as job_start_date,
        count(*) as employments_credited
    from {{ ref('int_employments_matched') }}
    where {{ only_affected_persons('person_id') }}
    group by claim_id
),

offflows as (
    select claim_id, person_id, benefit_code, is_jsa, points
    from {{ ref('int_offflows_scored') }}
    where {{ only_affected_persons('person_id') }}
),

jsa_claim_starts as (
    select claims.person_id, claims.claim_start_date
    from {{ ref('stg_lake__benefit_claims') }} as claims
    inner join {{ ref('benefits') }} as benefits
        on benefits.benefit_code = claims.benefit_code
    where benefits.is_jsa
      and {{ only_affected_persons('claims.person_id') }}
),

outcomes as (
    select
        offflows.claim_id,
        offflows.person_id,
        offflows.is_jsa,
        offflows.points,
        credited.job_start_date,
        credited.employments_credited
    from credited
    inner join offflows
        on offflows.claim_id = credited.claim_id
),

-- a JSA claim starting in (job_start_date, job_start_date + sustained_days]
jsa_returns as (
    select distinct outcomes.claim_id
    from outcomes
    inner join jsa_claim_starts
        on jsa_claim_starts.person_id = outcomes.person_id
        and jsa_claim_starts.claim_start_date > outcomes.job_start_date
        and jsa_claim_starts.claim_start_date
            <= {{ add_days(var('sustained_days'), 'outcomes.job_start_date') }}
)

select
    outcomes.claim_id,
    outcomes.person_id,
    outcomes.is_jsa,
    outcomes.points,
    outcomes.job_start_date,
    outcomes.employments_credited,
    outcomes.is_jsa and jsa_returns.claim_id is null as has_sustained_bonus,
    outcomes.points
    + case
        when outcomes.is_jsa and jsa_returns.claim_id is null then {{ var('sustained_bonus_points') }}
        else 0
    end as jot_points
from outcomes
left join jsa_returns
    on jsa_returns.claim_id = outcomes.claim_id
