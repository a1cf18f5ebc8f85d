-- One row per report month M, reporting office and indicator (MEASURES.md section 14): the
-- office's share over the window M-11 .. M (var monitor_window_months) against the national
-- share, with funnel-plot limits p -/+ z x sqrt(p(1 - p) / n) (Spiegelhalter 2005), so that
-- small offices are not flagged for noise. Report months: every month with any off-flow
-- nationally (none before the coverage start, so earlier months contribute nothing). Rows only
-- for an office whose denominator in the window is >= 1. The office's district is that of its
-- own `offices` row valid on the last day of M (UNALLOCATED without one).
-- flag / warning: `high` when share > upper limit, `low` when share < lower limit (a share
-- exactly on a limit is not flagged), null otherwise and whenever p is 0 or 1; z = var funnel_z
-- (3.09, 99.8 %) for flag, var funnel_z_warning (1.96, 95 %) for warning. The comparison is
-- exact: with share = a/n and p = A/N, share > p + z sqrt(p(1-p)/n) holds exactly when
-- aN - An > 0 and (aN - An)^2 > z^2 A (N - A) n (likewise below), in integers and decimals.
{%- set indicators = [
    ('opte_share', 'opte_offflows', 'offflows'),
    ('cross_flow_share', 'excluded_cross_flow', 'offflows'),
    ('programme_start_share', 'excluded_programme_start', 'offflows'),
    ('returned_within_week_share', 'excluded_returned_within_week', 'offflows'),
    ('failed_to_sign_share', 'opte_failed_to_sign', 'opte_offflows'),
] %}
{#- exact integer arithmetic wide enough for (aN - An)^2 at national scale -#}
{%- set exact = 'decimal(38, 0)' %}
with events as (
    select * from {{ ref('offflow_events') }}
),

-- one row per reporting office and month with any off-flow
office_months as (
    select
        reporting_office_code as office_code,
        offflow_month as month,
        count(*) as offflows,
        sum(case when is_opte then 1 else 0 end) as opte_offflows,
        sum(case when exclusion_reason = 'cross_flow' then 1 else 0 end) as excluded_cross_flow,
        sum(case when exclusion_reason = 'programme_start' then 1 else 0 end) as excluded_programme_start,
        sum(case when exclusion_reason = 'returned_within_week' then 1 else 0 end) as excluded_returned_within_week,
        sum(case when is_opte and end_reason_code = '{{ var("failed_to_sign_end_reason") }}' then 1 else 0 end)
            as opte_failed_to_sign
    from events
    group by reporting_office_code, offflow_month
),

report_months as (
    select distinct
        offflow_month as month,
        cast({{ dbt.last_day('offflow_month', 'month') }} as date) as month_end
    from events
),

-- each office over the window M-11 .. M of each report month
windowed as (
    select
        report_months.month,
        report_months.month_end,
        office_months.office_code
        {%- for column in ['offflows', 'opte_offflows', 'excluded_cross_flow', 'excluded_programme_start',
                           'excluded_returned_within_week', 'opte_failed_to_sign'] %},
        sum(office_months.{{ column }}) as {{ column }}
        {%- endfor %}
    from report_months
    inner join office_months
        on office_months.month <= report_months.month
        and office_months.month
            > {{ dbt.dateadd('month', -var('monitor_window_months'), 'report_months.month') }}
    group by report_months.month, report_months.month_end, office_months.office_code
),

indicator_rows as (
    {%- for indicator, numerator, denominator in indicators %}
    select
        month,
        month_end,
        office_code,
        '{{ indicator }}' as indicator,
        {{ numerator }} as numerator,
        {{ denominator }} as denominator
    from windowed
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

-- the national share p = A / N: the same numerator over the same denominator, summed over every
-- reporting office in the window (unallocated office codes included)
benchmarks as (
    select
        month,
        indicator,
        sum(numerator) as benchmark_numerator,
        sum(denominator) as benchmark_denominator
    from indicator_rows
    group by month, indicator
),

compared as (
    select
        indicator_rows.month,
        indicator_rows.month_end,
        indicator_rows.office_code,
        indicator_rows.indicator,
        indicator_rows.numerator,
        indicator_rows.denominator,
        cast(indicator_rows.numerator as {{ type_double() }}) / indicator_rows.denominator as share,
        cast(benchmarks.benchmark_numerator as {{ type_double() }}) / benchmarks.benchmark_denominator
            as benchmark_share,
        -- no flag when p is 0 or 1
        benchmarks.benchmark_numerator > 0
            and benchmarks.benchmark_numerator < benchmarks.benchmark_denominator as can_flag,
        -- aN - An (its sign is that of share - p) and A (N - A) n, exact integers
        cast(indicator_rows.numerator as {{ exact }}) * benchmarks.benchmark_denominator
            - cast(benchmarks.benchmark_numerator as {{ exact }}) * indicator_rows.denominator as excess,
        cast(benchmarks.benchmark_numerator as {{ exact }})
            * (benchmarks.benchmark_denominator - benchmarks.benchmark_numerator)
            * indicator_rows.denominator as spread
    from indicator_rows
    inner join benchmarks
        on benchmarks.month = indicator_rows.month
        and benchmarks.indicator = indicator_rows.indicator
    where indicator_rows.denominator >= 1
)

select
    compared.month,
    compared.office_code,
    coalesce(office_period.district_code, '{{ var("unallocated_code") }}') as district_code,
    compared.indicator,
    cast(compared.numerator as {{ dbt.type_bigint() }}) as numerator,
    cast(compared.denominator as {{ dbt.type_bigint() }}) as denominator,
    compared.share,
    compared.benchmark_share
    {%- for limit, sign in [('lower_limit', '-'), ('upper_limit', '+')] %},
    compared.benchmark_share {{ sign }} {{ var('funnel_z') }}
        * sqrt(compared.benchmark_share * (1 - compared.benchmark_share) / compared.denominator) as {{ limit }}
    {%- endfor %}
    {%- for column, z in [('flag', var('funnel_z')), ('warning', var('funnel_z_warning'))] %},
    case
        when not compared.can_flag then null
        when compared.excess * compared.excess
            <= cast({{ z }} as decimal(18, 6)) * cast({{ z }} as decimal(18, 6)) * compared.spread then null
        when compared.excess > 0 then 'high'
        else 'low'
    end as {{ column }}
    {%- endfor %}
from compared
{{ join_office_period('compared.office_code', 'compared.month_end') }}
