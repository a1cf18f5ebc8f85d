-- One row per level (office, district, region, national), unit and month that has any
-- off-flow (MEASURES.md sections 8, 10, 12 and 15): off-flows, the five exclusions, OPtE
-- off-flows and points, job outcomes and JOT points, proxy off-flows; year to date against the
-- annual target with RAG; whether the month's OPtE and JOT figures are final at the data
-- cut-off; the nowcast of a provisional month from its proxy; and the year-end projection.
-- No month before the coverage start has a row (offflow_events holds no off-flow before it).
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
        'is_proxy',
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
        sum(jot_points) as jot_points,
        sum(case when is_proxy then 1 else 0 end) as proxy_offflows
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

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

coverage as (
    select coverage_start from {{ ref('int_coverage_start') }}
),

targeted as (
    select
        year_to_date.*,
        targets.target_numerator,
        targets.target_denominator,
        targets.opte_target_annual,
        cutoff.data_cutoff
            >= {{ dbt.dateadd('day', var('opte_maturity_days'), dbt.last_day('year_to_date.month', 'month')) }}
            as opte_is_final,
        cutoff.data_cutoff
            >= {{ dbt.dateadd('day', var('jot_maturity_days'), dbt.last_day('year_to_date.month', 'month')) }}
            as jot_is_final,
        cutoff.data_cutoff,
        coverage.coverage_start
    from year_to_date
    cross join cutoff  -- one row: the data cut-off
    cross join coverage  -- one row: the coverage start
    left join {{ ref('int_unit_targets_derived') }} as targets
        on targets.financial_year = year_to_date.financial_year
        and targets.level = year_to_date.level
        and targets.unit_code = year_to_date.unit_code
),

-- proxy scale of each unit (section 12): its OPtE and proxy off-flows over its latest
-- nowcast_scale_months (12) rows whose OPtE is final
proxy_scales as (
    select
        level,
        unit_code,
        count(*) as final_months,
        sum(opte_offflows) as final_opte_offflows,
        sum(proxy_offflows) as final_proxy_offflows
    from (
        select
            level,
            unit_code,
            opte_offflows,
            proxy_offflows,
            row_number() over (partition by level, unit_code order by month desc) as recency
        from targeted
        where opte_is_final
    ) as final_rows
    where recency <= {{ var('nowcast_scale_months') }}
    group by level, unit_code
),

-- the same elapsed months a year earlier and the whole of the previous financial year (section
-- 15), from the unit's rows of financial year Y-1 (a month with no row counts 0)
previous_year as (
    select
        current_year.level,
        current_year.unit_code,
        current_year.month,
        sum(case when earlier.month <= {{ dbt.dateadd('month', -12, 'current_year.month') }}
            then earlier.opte_offflows else 0 end) as previous_opte_same_months,
        sum(earlier.opte_offflows) as previous_opte_year
    from year_to_date as current_year
    inner join year_to_date as earlier
        on earlier.level = current_year.level
        and earlier.unit_code = current_year.unit_code
        and earlier.financial_year = current_year.financial_year - 1
    group by current_year.level, current_year.unit_code, current_year.month
),

-- year-end projection as an exact fraction projected_numerator / projected_denominator:
-- e = 12: opte_ytd; before: opte_ytd + g x R = opte_ytd x (previous year) / (previous same
-- months), null when the previous same months sum to 0 or financial year Y-1 starts before the
-- coverage start
projected as (
    select
        targeted.*,
        proxy_scales.final_months,
        proxy_scales.final_opte_offflows,
        proxy_scales.final_proxy_offflows,
        case
            when targeted.months_elapsed = 12 then targeted.opte_ytd
            when coalesce(previous_year.previous_opte_same_months, 0) = 0 then null
            when {{ financial_year_start('targeted.financial_year - 1') }} < targeted.coverage_start then null
            else targeted.opte_ytd * previous_year.previous_opte_year
        end as projected_numerator,
        case
            when targeted.months_elapsed = 12 then 1
            when coalesce(previous_year.previous_opte_same_months, 0) = 0 then null
            when {{ financial_year_start('targeted.financial_year - 1') }} < targeted.coverage_start then null
            else previous_year.previous_opte_same_months
        end as projected_denominator
    from targeted
    left join proxy_scales
        on proxy_scales.level = targeted.level
        and proxy_scales.unit_code = targeted.unit_code
    left join previous_year
        on previous_year.level = targeted.level
        and previous_year.unit_code = targeted.unit_code
        and previous_year.month = targeted.month
)

select
    projected.level,
    projected.unit_code,
    names.unit_name,
    projected.month,
    projected.financial_year,
    cast(projected.offflows as {{ dbt.type_bigint() }}) as offflows,
    cast(projected.excluded_died as {{ dbt.type_bigint() }}) as excluded_died,
    cast(projected.excluded_retired as {{ dbt.type_bigint() }}) as excluded_retired,
    cast(projected.excluded_returned_within_week as {{ dbt.type_bigint() }}) as excluded_returned_within_week,
    cast(projected.excluded_cross_flow as {{ dbt.type_bigint() }}) as excluded_cross_flow,
    cast(projected.excluded_programme_start as {{ dbt.type_bigint() }}) as excluded_programme_start,
    cast(projected.opte_offflows as {{ dbt.type_bigint() }}) as opte_offflows,
    cast(projected.opte_offflows as {{ type_double() }}) / projected.offflows as opte_share_of_offflows,
    cast(coalesce(projected.opte_points, 0) as {{ dbt.type_bigint() }}) as opte_points,
    cast(projected.job_outcomes as {{ dbt.type_bigint() }}) as job_outcomes,
    cast(coalesce(projected.jot_points, 0) as {{ dbt.type_bigint() }}) as jot_points,
    projected.opte_target_annual,
    -- annual x months elapsed / 12, multiplied before dividing
    cast(projected.target_numerator * projected.months_elapsed as {{ type_double() }})
        / (12 * projected.target_denominator) as opte_target_ytd,
    cast(projected.opte_ytd as {{ dbt.type_bigint() }}) as opte_ytd,
    projected.months_elapsed,
    -- opte_ytd / opte_target_ytd = opte_ytd x 12 x denominator / (numerator x months elapsed)
    case when projected.target_numerator > 0 then
        cast(projected.opte_ytd * 12 * projected.target_denominator as {{ type_double() }})
        / (projected.target_numerator * projected.months_elapsed)
    end as pct_of_target_ytd,
    -- RAG compared in exact arithmetic (integers and decimals), never on a rounded ratio
    {{ rag_status('projected.opte_ytd * 12 * projected.target_denominator',
                  'projected.target_numerator * projected.months_elapsed',
                  'projected.target_numerator is null or projected.target_numerator = 0') }} as rag,
    projected.opte_is_final,
    projected.jot_is_final,
    projected.data_cutoff,
    cast(coalesce(projected.proxy_offflows, 0) as {{ dbt.type_bigint() }}) as proxy_offflows,
    -- a provisional month's proxy x the unit's proxy scale (section 12)
    case
        when not projected.opte_is_final
            and projected.final_months >= {{ var('nowcast_min_final_months') }}
            and projected.final_proxy_offflows > 0
        then cast(projected.proxy_offflows * projected.final_opte_offflows as {{ type_double() }})
            / projected.final_proxy_offflows
    end as opte_nowcast,
    -- year-end projection against the annual target (section 15); null without a target or a 0 one
    case when projected.target_numerator > 0 then
        cast(projected.projected_numerator as {{ type_double() }}) / projected.projected_denominator
    end as opte_projected_annual,
    case when projected.target_numerator > 0 then
        cast(projected.projected_numerator * projected.target_denominator as {{ type_double() }})
        / (projected.projected_denominator * projected.target_numerator)
    end as projected_pct_of_target,
    {{ rag_status('projected.projected_numerator * projected.target_denominator',
                  'projected.target_numerator * projected.projected_denominator',
                  'projected.target_numerator is null or projected.target_numerator = 0'
                  ~ ' or projected.projected_numerator is null') }} as projected_rag,
    projected.coverage_start
from projected
left join {{ ref('int_units_named') }} as names
    on names.level = projected.level
    and names.unit_code = projected.unit_code
