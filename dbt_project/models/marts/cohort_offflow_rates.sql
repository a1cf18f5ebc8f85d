-- One row per level, unit, benefit, cohort month and week k of var cohort_weeks (MEASURES.md
-- sections 5, 9 and 15): the share of the cohort's spells off benefit by week k (spell end not
-- null and <= spell start + 7k days). Week k of cohort m is due on due_date = count_date(m) + 7k
-- days, i.e. when the data cut-off >= due_date; before that offflowed_by_week and offflow_rate
-- are null, never a partial figure, and the week is projected instead (section 15).
-- Rows only for complete cohort months (opening on or after the coverage start) where the unit
-- and benefit have at least one spell; cohort_size and target_rate (seed kmi_targets; null for
-- benefits without targets) are filled either way.
{%- set weeks = var('cohort_weeks') | sort %}
with spells as (
    select * from {{ ref('int_spells_cohorted') }}
    where is_cohort_complete
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
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
                and spell_end_date <= {{ add_days(7 * week, 'spell_start_date') }}
            then 1 else 0
        end) as offflowed_by_week_{{ week }}
        {%- endfor %}
    from spells
    group by reporting_office_code, district_code, region_code, benefit_code, cohort_month, cohort_count_date
),

levels as (
    select
        by_level.*
        {%- for week in weeks %},
        cutoff.data_cutoff >= {{ dbt.dateadd('day', 7 * week, 'by_level.cohort_count_date') }} as is_due_{{ week }}
        {%- endfor %}
    from (
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
    ) as by_level
    cross join cutoff  -- one row: the data cut-off
),

-- national conditional survival from week j to week k of each benefit (section 15): over the
-- national rows of the latest cohort_projection_months (12) cohort months whose week k is due,
-- sum(cohort_size - offflowed by k) / sum(cohort_size - offflowed by j); null when the
-- denominator is 0. One row per benefit and pair of weeks j < k.
survival_ratios as (
    {%- set week_pairs = [] %}
    {%- for week in weeks %}{% for from_week in weeks if from_week < week %}
    {%- do week_pairs.append((week, from_week)) %}
    {%- endfor %}{% endfor %}
    {%- for week, from_week in week_pairs %}
    select
        benefit_code,
        {{ week }} as week,
        {{ from_week }} as from_week,
        count(*) as cohort_months,
        case when sum(cohort_size - offflowed_by_week_{{ from_week }}) > 0 then
            cast(sum(cohort_size - offflowed_by_week_{{ week }}) as {{ type_double() }})
            / sum(cohort_size - offflowed_by_week_{{ from_week }})
        end as survival_ratio
    from (
        select
            benefit_code,
            cohort_size,
            offflowed_by_week_{{ from_week }},
            offflowed_by_week_{{ week }},
            row_number() over (partition by benefit_code order by cohort_month desc) as recency
        from levels
        where level = 'national' and is_due_{{ week }}
    ) as due_cohorts
    where recency <= {{ var('cohort_projection_months') }}
    group by benefit_code
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    -- a single cohort week: nothing to project from
    select
        cast(null as {{ dbt.type_string() }}) as benefit_code,
        cast(null as integer) as week,
        cast(null as integer) as from_week,
        cast(0 as {{ dbt.type_bigint() }}) as cohort_months,
        cast(null as {{ type_double() }}) as survival_ratio
    where 1 = 0
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
        cast({{ dbt.dateadd('day', '7 * weeks.week', 'levels.cohort_count_date') }} as date) as due_date,
        case weeks.week
            {%- for week in weeks %}
            when {{ week }} then levels.offflowed_by_week_{{ week }}
            {%- endfor %}
        end as offflowed_by_week_if_due,
        case weeks.week
            {%- for week in weeks %}
            when {{ week }} then levels.is_due_{{ week }}
            {%- endfor %}
        end as is_due,
        -- j: the largest week below k that is due (null: none is)
        case weeks.week
            {%- for week in weeks %}
            when {{ week }} then
                {%- set below = weeks | select('lt', week) | list | reverse | list %}
                {%- if below %}
                case
                    {%- for from_week in below %}
                    when levels.is_due_{{ from_week }} then {{ from_week }}
                    {%- endfor %}
                end
                {%- else %} cast(null as integer)
                {%- endif %}
            {%- endfor %}
        end as projected_from_week
        {%- for week in weeks %},
        levels.offflowed_by_week_{{ week }}
        {%- endfor %}
    from levels
    cross join weeks
),

projected as (
    select
        by_week.*,
        targets.target_rate,
        -- 1 - (1 - rate_j) x S: the share still on benefit at j carried to k by the national ratio
        case when not by_week.is_due and survival_ratios.survival_ratio is not null then
            1 - (cast(by_week.cohort_size - case by_week.projected_from_week
                    {%- for week in weeks %}
                    when {{ week }} then by_week.offflowed_by_week_{{ week }}
                    {%- endfor %}
                 end as {{ type_double() }}) / by_week.cohort_size) * survival_ratios.survival_ratio
        end as projected_rate
    from by_week
    left join {{ ref('kmi_targets') }} as targets
        on targets.benefit_code = by_week.benefit_code
        and targets.week = by_week.week
    left join survival_ratios
        on survival_ratios.benefit_code = by_week.benefit_code
        and survival_ratios.week = by_week.week
        and survival_ratios.from_week = by_week.projected_from_week
)

select
    level,
    unit_code,
    benefit_code,
    cohort_month,
    cohort_count_date,
    cohort_size,
    cast(week as {{ dbt.type_int() }}) as week,
    case when is_due then offflowed_by_week_if_due end as offflowed_by_week,
    case when is_due then cast(offflowed_by_week_if_due as {{ type_double() }}) / cohort_size end as offflow_rate,
    cast(target_rate as {{ type_double() }}) as target_rate,
    is_due,
    due_date,
    projected_rate,
    projected_rate < target_rate as projected_at_risk
from projected
