-- One row per level, unit, off-flow month M and week k of var sustainability_weeks (13, 26)
-- where the unit has at least one OPtE off-flow in M (MEASURES.md section 13): how many of those
-- OPtE off-flows were back on benefit by week k, and the sustained rate 1 - back_on_benefit /
-- opte_offflows. Week k of M is due when the data cut-off >= the last day of M + 7k days; not
-- due, back_on_benefit and sustained_rate are null, never a partial figure.
{%- set weeks = var('sustainability_weeks') | sort %}
with opte_events as (
    select * from {{ ref('offflow_events') }}
    where is_opte
),

{%- set columns = ['offflow_month as month'] %}
{%- for week in weeks %}{% do columns.append('back_on_benefit_by_week_' ~ week) %}{% endfor %}
by_level as (
    {{ union_reporting_levels('opte_events', columns) }}
),

counted as (
    select
        level,
        unit_code,
        month,
        count(*) as opte_offflows
        {%- for week in weeks %},
        sum(case when back_on_benefit_by_week_{{ week }} then 1 else 0 end) as back_on_benefit_{{ week }}
        {%- endfor %}
    from by_level
    group by level, unit_code, month
),

weeks as (
    {%- for week in weeks %}
    select {{ week }} as week
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

by_week as (
    select
        counted.level,
        counted.unit_code,
        counted.month,
        weeks.week,
        counted.opte_offflows,
        case weeks.week
            {%- for week in weeks %}
            when {{ week }} then counted.back_on_benefit_{{ week }}
            {%- endfor %}
        end as back_on_benefit_if_due,
        {{ sustainability_week_is_due('counted.month', 'weeks.week', 'cutoff.data_cutoff') }} as is_due
    from counted
    cross join weeks
    cross join cutoff  -- one row: the data cut-off
)

select
    by_week.level,
    by_week.unit_code,
    names.unit_name,
    by_week.month,
    cast(by_week.week as {{ dbt.type_int() }}) as week,
    cast(by_week.opte_offflows as {{ dbt.type_bigint() }}) as opte_offflows,
    cast(case when by_week.is_due then by_week.back_on_benefit_if_due end as {{ dbt.type_bigint() }})
        as back_on_benefit,
    case when by_week.is_due then
        1 - cast(by_week.back_on_benefit_if_due as {{ type_double() }}) / by_week.opte_offflows
    end as sustained_rate,
    by_week.is_due
from by_week
left join {{ ref('int_units_named') }} as names
    on names.level = by_week.level
    and names.unit_code = by_week.unit_code
