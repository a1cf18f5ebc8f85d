-- One row per off-flow: the end of an in-scope claim (int_claims_in_scope) with a
-- non-null claim_end_date on or before the data cut-off (MEASURES.md sections 2 and 9).
-- The off-flow date d is claim_end_date. Attributed to the `offices` row of its office valid
-- at d (section 8), and carrying what the exclusion and scoring rules need from its customer.
-- An off-flow dated before the coverage start (is_before_coverage) is kept here, so that it
-- stays evidence for the rules (job matching), but is counted nowhere: offflow_events leaves it
-- out, and data_quality counts it as offflows_before_coverage.
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with claims as (
    select * from {{ ref('int_claims_in_scope') }}
    where {{ only_affected_persons('person_id') }}
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

coverage as (
    select coverage_start from {{ ref('int_coverage_start') }}
),

customers as (
    select person_id, date_of_birth, date_of_death, area_code from {{ ref('stg_lake__customers') }}
),

state_pension_age as (
    select person_id, state_pension_age_date from {{ ref('int_customers_state_pension_age') }}
),

offflows as (
    select
        claims.claim_id,
        claims.person_id,
        claims.person_key,
        claims.benefit_code,
        claims.office_code,
        claims.claim_start_date,
        claims.claim_end_date,
        claims.claim_end_date as offflow_date,
        cast({{ dbt.date_trunc('month', 'claims.claim_end_date') }} as date) as offflow_month,
        claims.end_reason_code,
        claims.is_lone_parent,
        claims.is_disabled,
        claims.claim_end_date < coverage.coverage_start as is_before_coverage
    from claims
    cross join cutoff  -- one row: the data cut-off
    cross join coverage  -- one row: the coverage start
    where claims.claim_end_date is not null
      and claims.claim_end_date <= cutoff.data_cutoff
)

select
    offflows.claim_id,
    offflows.person_id,
    offflows.person_key,
    offflows.benefit_code,
    offflows.office_code,
    {{ geography_columns('offflows.office_code') }},
    offflows.claim_start_date,
    offflows.claim_end_date,
    offflows.offflow_date,
    offflows.offflow_month,
    offflows.end_reason_code,
    offflows.is_lone_parent,
    offflows.is_disabled,
    offflows.is_before_coverage,
    customers.person_id is not null as has_customer,
    customers.date_of_birth,
    customers.date_of_death,
    customers.area_code,
    state_pension_age.state_pension_age_date
from offflows
{{ join_office_period('offflows.office_code', 'offflows.offflow_date') }}
left join customers
    on customers.person_id = offflows.person_id
left join state_pension_age
    on state_pension_age.person_id = offflows.person_id
