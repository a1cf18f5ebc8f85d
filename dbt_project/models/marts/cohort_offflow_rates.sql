-- One row per level, unit, benefit, cohort month and week k of var cohort_weeks (MEASURES.md
-- section 5): the share of the cohort's spells off benefit by week k (spell end not null and
-- <= spell start + 7k days). Week k of cohort m is due when the data cut-off >= count_date(m) +
-- 7k days; before that offflowed_by_week and offflow_rate are null, never a partial figure.
-- Rows only where the unit, benefit and cohort month have at least one spell; cohort_size and
-- target_rate (seed kmi_targets; null for benefits without targets) are filled either way.
{%- set weeks = var('cohort_weeks') %}
with spells as (
    select * from {{ ref('int_spells_cohorted') }}
),

-- the finest grain first, so that each level sums a small table instead of every spell
cells as (
    select
        reporting_office_code,
        district_code,
        region_code,
        benefit_code,
        cohort_month,
        cohort_count_date,
        count(*) as cohort_size
        {%- for week in weeks %},
        sum(case
            when spell_end_date is not null
                and spell_end_date <= {{ dbt.dateadd('day', 7 * week, 'spell_start_date') }}
            then 1 else 0
        end) as offflowed_by_week_{{ week }}
        {%- endfor %}
    from spells
    group by reporting_office_code, district_code, region_code, benefit_code, cohort_month, cohort_count_date
),

levels as (
    {%- for level, unit_expr in reporting_levels() %}
    select
        '{{ level }}' as level,
        {{ unit_expr }} as unit_code,
        benefit_code,
        cohort_month,
        cohort_count_date,
        cast(sum(cohort_size) as {{ dbt.type_bigint() }}) as cohort_size
        {%- for week in weeks %},
        cast(sum(offflowed_by_week_{{ week }}) as {{ dbt.type_bigint() }}) as offflowed_by_week_{{ week }}
        {%- endfor %}
    from cells
    group by {{ unit_expr }}, benefit_code, cohort_month, cohort_count_date
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

weeks as (
    {%- for week in weeks %}
    select {{ week }} as week
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

by_week as (
    select
        levels.level,
        levels.unit_code,
        levels.benefit_code,
        levels.cohort_month,
        levels.cohort_count_date,
        levels.cohort_size,
        weeks.week,
        case weeks.week
            {%- for week in weeks %}
            when {{ week }} then levels.offflowed_by_week_{{ week }}
            {%- endfor %}
        end as offflowed_by_week_if_due,
        cutoff.data_cutoff >= {{ dbt.dateadd('day', '7 * weeks.week', 'levels.cohort_count_date') }} as is_due
    from levels
    cross join weeks
    cross join {{ ref('int_data_cutoff') }} as cutoff
)

select
    by_week.level,
    by_week.unit_code,
    by_week.benefit_code,
    by_week.cohort_month,
    by_week.cohort_count_date,
    by_week.cohort_size,
    by_week.week,
    case when by_week.is_due then by_week.offflowed_by_week_if_due end as offflowed_by_week,
    case when by_week.is_due then cast(by_week.offflowed_by_week_if_due as double precision) / by_week.cohort_size end
        as offflow_rate,
    targets.target_rate,
    by_week.is_due
from by_week
left join {{ ref('kmi_targets') }} as targets
    on targets.benefit_code = by_week.benefit_code
    and targets.week = by_week.week
