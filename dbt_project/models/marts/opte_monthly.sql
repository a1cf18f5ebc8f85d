-- One row per level (office, district, region, national), unit and month that has any
-- off-flow (MEASURES.md sections 8 and 10): off-flows, the five exclusions, OPtE off-flows and
-- points, job outcomes and JOT points; year to date against the annual target with RAG; and
-- whether the month's OPtE and JOT figures are final at the data cut-off.
with events as (
    select * from {{ ref('offflow_events') }}
),

by_level as (
    {{ union_reporting_levels('events', [
        'offflow_month as month',
        'exclusion_reason',
        'is_opte',
        'opte_points',
        'is_job_outcome',
        'jot_points',
    ]) }}
),

monthly as (
    select
        level,
        unit_code,
        month,
        count(*) as offflows,
        sum(case when exclusion_reason = 'died' then 1 else 0 end) as excluded_died,
        sum(case when exclusion_reason = 'retired' then 1 else 0 end) as excluded_retired,
        sum(case when exclusion_reason = 'returned_within_week' then 1 else 0 end)
            as excluded_returned_within_week,
        sum(case when exclusion_reason = 'cross_flow' then 1 else 0 end) as excluded_cross_flow,
        sum(case when exclusion_reason = 'programme_start' then 1 else 0 end) as excluded_programme_start,
        sum(case when is_opte then 1 else 0 end) as opte_offflows,
        sum(opte_points) as opte_points,
        sum(case when is_job_outcome then 1 else 0 end) as job_outcomes,
        sum(jot_points) as jot_points
    from by_level
    group by 1, 2, 3
),

year_to_date as (
    select
        monthly.*,
        {{ financial_year('month') }} as financial_year,
        {{ financial_year_months_elapsed('month') }} as months_elapsed,
        sum(opte_offflows) over (
            partition by level, unit_code, {{ financial_year('month') }}
            order by month
            rows between unbounded preceding and current row
        ) as opte_ytd
    from monthly
),

targeted as (
    select
        year_to_date.*,
        targets.target_numerator,
        targets.target_denominator,
        targets.opte_target_annual
    from year_to_date
    left join {{ ref('int_unit_targets_derived') }} as targets
        on targets.financial_year = year_to_date.financial_year
        and targets.level = year_to_date.level
        and targets.unit_code = year_to_date.unit_code
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
)

select
    targeted.level,
    targeted.unit_code,
    names.unit_name,
    targeted.month,
    targeted.financial_year,
    cast(targeted.offflows as bigint) as offflows,
    cast(targeted.excluded_died as bigint) as excluded_died,
    cast(targeted.excluded_retired as bigint) as excluded_retired,
    cast(targeted.excluded_returned_within_week as bigint) as excluded_returned_within_week,
    cast(targeted.excluded_cross_flow as bigint) as excluded_cross_flow,
    cast(targeted.excluded_programme_start as bigint) as excluded_programme_start,
    cast(targeted.opte_offflows as bigint) as opte_offflows,
    cast(targeted.opte_offflows as double) / targeted.offflows as opte_share_of_offflows,
    cast(coalesce(targeted.opte_points, 0) as bigint) as opte_points,
    cast(targeted.job_outcomes as bigint) as job_outcomes,
    cast(coalesce(targeted.jot_points, 0) as bigint) as jot_points,
    targeted.opte_target_annual,
    -- annual x months elapsed / 12, multiplied before dividing
    cast(targeted.target_numerator * targeted.months_elapsed as double)
        / (12 * targeted.target_denominator) as opte_target_ytd,
    cast(targeted.opte_ytd as bigint) as opte_ytd,
    targeted.months_elapsed,
    -- opte_ytd / opte_target_ytd = opte_ytd x 12 x denominator / (numerator x months elapsed)
    case when targeted.target_numerator > 0 then
        cast(targeted.opte_ytd * 12 * targeted.target_denominator as double)
        / (targeted.target_numerator * targeted.months_elapsed)
    end as pct_of_target_ytd,
    -- RAG compared in exact arithmetic (integers and decimals), never on a rounded ratio
    case
        when targeted.target_numerator is null or targeted.target_numerator = 0 then null
        when targeted.opte_ytd * 12 * targeted.target_denominator
            >= targeted.target_numerator * targeted.months_elapsed then 'green'
        when targeted.opte_ytd * 12 * targeted.target_denominator
            >= cast({{ var('rag_amber_floor') }} as decimal(18, 6))
               * targeted.target_numerator * targeted.months_elapsed then 'amber'
        else 'red'
    end as rag,
    cutoff.data_cutoff
        >= {{ dbt.dateadd('day', var('opte_maturity_days'), dbt.last_day('targeted.month', 'month')) }}
        as opte_is_final,
    cutoff.data_cutoff
        >= {{ dbt.dateadd('day', var('jot_maturity_days'), dbt.last_day('targeted.month', 'month')) }}
        as jot_is_final,
    cutoff.data_cutoff
from targeted
cross join cutoff  -- one row: the data cut-off
left join {{ ref('int_units_named') }} as names
    on names.level = targeted.level
    and names.unit_code = targeted.unit_code
