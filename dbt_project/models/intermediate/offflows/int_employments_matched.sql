-- One row per employment start (current tax_employments row, whatever its form) credited to an
-- eligible off-flow (MEASURES.md section 4). Eligible: every off-flow not excluded as died or
-- returned_within_week. Candidates: the person's eligible off-flows with
-- d - job_window_before_days <= start <= d + job_window_after_days. The employment goes to the
-- candidate with the smallest |start - d|; ties to the later off-flow, then to the larger
-- claim_id compared as text. Employments with no candidate have no row.
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with employments as (
    select person_id, paye_ref, start_date as employment_start_date, form
    from {{ ref('stg_lake__tax_employments') }}
    where {{ only_affected_persons('person_id') }}
),

eligible_offflows as (
    select claim_id, person_id, offflow_date
    from {{ ref('int_offflows_classified') }}
    where (exclusion_reason is null
           or exclusion_reason not in ('died', 'returned_within_week'))
      and {{ only_affected_persons('person_id') }}
),

candidates as (
    select
        employments.person_id,
        employments.paye_ref,
        employments.employment_start_date,
        employments.form,
        eligible_offflows.claim_id,
        eligible_offflows.offflow_date,
        {{ dbt.datediff('eligible_offflows.offflow_date', 'employments.employment_start_date', 'day') }}
            as days_from_offflow
    from employments
    inner join eligible_offflows
        on eligible_offflows.person_id = employments.person_id
        and employments.employment_start_date
            >= {{ add_days(-var('job_window_before_days'), 'eligible_offflows.offflow_date') }}
        and employments.employment_start_date
            <= {{ add_days(var('job_window_after_days'), 'eligible_offflows.offflow_date') }}
)

select
    person_id,
    paye_ref,
    employment_start_date,
    form,
    claim_id,
    offflow_date,
    days_from_offflow
from candidates
qualify row_number() over (
    partition by person_id, paye_ref, employment_start_date
    order by abs(days_from_offflow), offflow_date desc, cast(claim_id as {{ dbt.type_string() }}) desc
) = 1
