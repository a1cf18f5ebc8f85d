-- One row per off-flow (in-scope claim ended on or before the data cut-off), with its OPtE
-- classification, priority group, points and job outcome: the person-level audit table
-- (MEASURES.md section 10). Never published as a file.
with offflows as (
    select * from {{ ref('int_offflows_scored') }}
),

job_outcomes as (
    select * from {{ ref('int_job_outcomes_scored') }}
)

select
    offflows.claim_id,
    offflows.person_key,
    offflows.benefit_code,
    offflows.office_code,
    offflows.reporting_office_code,
    offflows.district_code,
    offflows.region_code,
    offflows.is_office_allocated,
    offflows.claim_start_date,
    offflows.offflow_date,
    offflows.offflow_month,
    offflows.end_reason_code,
    offflows.exclusion_reason,
    offflows.is_opte,
    offflows.customer_group,
    offflows.priority_group,
    offflows.in_disadvantaged_area,
    offflows.points,
    offflows.opte_points,
    job_outcomes.job_start_date,
    job_outcomes.claim_id is not null as is_job_outcome,
    coalesce(job_outcomes.has_sustained_bonus, false) as has_sustained_bonus,
    coalesce(job_outcomes.jot_points, 0) as jot_points
from offflows
left join job_outcomes
    on job_outcomes.claim_id = offflows.claim_id
