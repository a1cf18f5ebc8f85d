-- One row per level, unit, month and customer group with at least one OPtE off-flow
-- (MEASURES.md section 10): how many OPtE off-flows had a job outcome. Customer group:
-- lone_parent (lone parent = Y), else sick_or_disabled (ESA, IB, SDA), else jsa (JSA), else
-- other (seed benefits.customer_group).
with opte_events as (
    select * from {{ ref('offflow_events') }}
    where is_opte
),

by_level as (
    {{ union_reporting_levels('opte_events', [
        'offflow_month as month',
        'customer_group',
        'is_job_outcome',
    ]) }}
),

converted as (
    select
        level,
        unit_code,
        month,
        customer_group,
        count(*) as opte_offflows,
        sum(case when is_job_outcome then 1 else 0 end) as opte_with_job_outcome
    from by_level
    group by 1, 2, 3, 4
)

select
    converted.level,
    converted.unit_code,
    names.unit_name,
    converted.month,
    converted.customer_group,
    cast(converted.opte_offflows as {{ dbt.type_bigint() }}) as opte_offflows,
    cast(converted.opte_with_job_outcome as {{ dbt.type_bigint() }}) as opte_with_job_outcome,
    cast(converted.opte_with_job_outcome as {{ type_double() }}) / converted.opte_offflows as conversion_rate
from converted
left join {{ ref('int_units_named') }} as names
    on names.level = converted.level
    and names.unit_code = converted.unit_code
