-- One row per calendar month from the month before the earliest spell start to the month after
-- the latest: its count date (MEASURES.md section 5), the count_date_occurrence-th (2nd)
-- weekday count_date_iso_weekday (4, Thursday) of the month, and the previous month's.
-- Derived with date arithmetic: the ISO weekday of the 1st is its distance from the Monday
-- that starts its week.
with spell_range as (
    select
        cast({{ dbt.dateadd('month', -1, dbt.date_trunc('month', 'min(spell_start_date)')) }} as date) as first_month,
        cast({{ dbt.dateadd('month', 1, dbt.date_trunc('month', 'max(spell_start_date)')) }} as date) as last_month
    from {{ ref('int_spells') }}
),

month_numbers as (
    -- 1 .. count_date_calendar_months: the longest span the calendar can cover
    {{ dbt.generate_series(var('count_date_calendar_months')) }}
),

months as (
    select cast({{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'spell_range.first_month') }} as date)
        as month_start
    from spell_range
    cross join month_numbers
    where {{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'spell_range.first_month') }}
        <= spell_range.last_month
),

first_days as (
    select
        month_start,
        -- 0 = Monday ... 6 = Sunday
        {{ dbt.datediff(dbt.date_trunc('week', 'month_start'), 'month_start', 'day') }} as weekday_of_first
    from months
),

count_dates as (
    select
        month_start,
        cast({{ dbt.dateadd(
            'day',
            '(' ~ (var('count_date_iso_weekday') - 1) ~ ' - weekday_of_first + 7) % 7 + '
                ~ (7 * (var('count_date_occurrence') - 1)),
            'month_start') }} as date) as count_date
    from first_days
)

select
    month_start,
    count_date,
    lag(count_date) over (order by month_start) as previous_count_date
from count_dates
