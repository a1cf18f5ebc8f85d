-- One row per off-flow (in-scope claim ended on or before the data cut-off, and on or after the
-- coverage start), with its OPtE classification and the evidence of its exclusion, whether it is
-- a proxy off-flow, priority group, points, job outcome, and for an OPtE off-flow whether the
-- person was back on benefit by each week of var sustainability_weeks: the person-level audit
-- table (MEASURES.md sections 10, 12, 13 and 16). Never published as a file.
-- Off-flows dated before the coverage start are left out here, so no mart counts them
-- (data_quality counts them as offflows_before_coverage); they remain evidence upstream.
{%- set weeks = var('sustainability_weeks') %}
with offflows as (
    select * from {{ ref('int_offflows_scored') }}
    where not is_before_coverage
),

proxies as (
    select claim_id, is_proxy from {{ ref('int_offflows_proxy_flagged') }}
),

sustainability as (
    select * from {{ ref('int_offflows_sustainability_checked') }}
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
    cast(offflows.priority_group as {{ dbt.type_int() }}) as priority_group,
    offflows.in_disadvantaged_area,
    cast(offflows.points as {{ dbt.type_int() }}) as points,
    cast(offflows.opte_points as {{ dbt.type_int() }}) as opte_points,
    job_outcomes.job_start_date,
    job_outcomes.claim_id is not null as is_job_outcome,
    coalesce(job_outcomes.has_sustained_bonus, false) as has_sustained_bonus,
    cast(coalesce(job_outcomes.jot_points, 0) as {{ dbt.type_int() }}) as jot_points,
    offflows.evidence_claim_id,
    offflows.evidence_date,
    offflows.evidence_programme_code,
    proxies.is_proxy
    {%- for week in weeks %},
    sustainability.back_on_benefit_by_week_{{ week }}
    {%- endfor %}
from offflows
inner join proxies
    on proxies.claim_id = offflows.claim_id
left join sustainability
    on sustainability.claim_id = offflows.claim_id
left join job_outcomes
    on job_outcomes.claim_id = offflows.claim_id
