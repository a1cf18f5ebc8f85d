-- One row per month, level and reporting unit that exists at the month's end (has an `offices`
-- row in force on its last day) or has off-flows in the month: the unit's name, the units above
-- it, and its year-to-date standing at the month's end whether or not it had off-flows that
-- month (MEASURES.md section 8). Publication reads it to list every office of a district at the
-- end of a report month, those with no off-flows included, and to name the parents of every
-- published row; opte_monthly has rows only for units with off-flows.
-- Months: from the first month of opte_monthly (so none before the coverage start) to the month
-- of the data cut-off.
-- Parents (the hierarchy on the month's last day, as off-flows on that day would be attributed):
--   office:   district and region of the reporting office's own row in force (else of the
--             latest-starting row of one of its satellites; then smallest codes);
--   district: the region holding most of its reporting offices (ties: smallest region code);
--   a unit with off-flows in the month but no row in force at its end (closed or moved during
--   the month): the latest-starting row in force during the month; none at all: UNALLOCATED.
-- Year to date: as opte_monthly (April to the month, OPtE off-flows under their own attribution
-- at d; annual target x months elapsed / 12; RAG in exact arithmetic, var rag_amber_floor).
{%- set unallocated = var('unallocated_code') %}
with cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

monthly as (
    select level, unit_code, month, offflows, opte_offflows
    from {{ ref('opte_monthly') }}
),

bounds as (
    select
        min(monthly.month) as first_month,
        cast({{ dbt.date_trunc('month', 'cutoff.data_cutoff') }} as date) as last_month
    from monthly
    cross join cutoff  -- one row: the data cut-off
    group by cutoff.data_cutoff
),

month_numbers as (
    -- 1 .. count_date_calendar_months: the longest span of months the calendars cover
    {{ dbt.generate_series(var('count_date_calendar_months')) }}
),

months as (
    select
        cast({{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'bounds.first_month') }} as date)
            as month
    from bounds
    cross join month_numbers
    where {{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'bounds.first_month') }}
        <= bounds.last_month
),

month_ends as (
    select month, cast({{ dbt.last_day('month', 'month') }} as date) as month_end
    from months
),

periods as (
    select * from {{ ref('int_office_periods') }}
),

-- every offices row in force on some day of the month
during_month as (
    select
        month_ends.month,
        month_ends.month_end,
        periods.office_code,
        periods.reporting_office_code,
        periods.district_code,
        periods.region_code,
        periods.period_start,
        periods.period_end,
        periods.valid_from
    from month_ends
    inner join periods
        on periods.period_start <= month_ends.month_end
        and (periods.period_end is null or periods.period_end >= month_ends.month)
),

-- those in force on the month's last day
at_month_end as (
    select * from during_month
    where period_end is null or period_end >= month_end
),

office_at_end as (
    select month, reporting_office_code as unit_code, district_code, region_code
    from at_month_end
    qualify row_number() over (
        partition by month, reporting_office_code
        order by case when office_code = reporting_office_code then 0 else 1 end,
            valid_from desc, district_code, region_code
    ) = 1
),

office_during as (
    select month, reporting_office_code as unit_code, district_code, region_code
    from during_month
    qualify row_number() over (
        partition by month, reporting_office_code
        order by period_start desc, case when office_code = reporting_office_code then 0 else 1 end,
            district_code, region_code
    ) = 1
),

district_at_end as (
    select month, district_code as unit_code, region_code
    from (
        select month, district_code, region_code, count(distinct reporting_office_code) as offices
        from at_month_end
        group by month, district_code, region_code
    ) as counted
    qualify row_number() over (partition by month, district_code order by offices desc, region_code) = 1
),

district_during as (
    select month, district_code as unit_code, region_code
    from during_month
    qualify row_number() over (partition by month, district_code order by period_start desc, region_code) = 1
),

region_at_end as (
    select distinct month, region_code as unit_code
    from at_month_end
),

units as (
    select month, 'office' as level, unit_code from office_at_end
    union
    select month, 'district' as level, unit_code from district_at_end
    union
    select month, 'region' as level, unit_code from region_at_end
    union
    select month, 'national' as level, '{{ var("national_code") }}' as unit_code from months
    union
    select monthly.month, monthly.level, monthly.unit_code
    from monthly
    inner join months
        on months.month = monthly.month
),

placed as (
    select
        units.month,
        units.level,
        units.unit_code,
        case when units.level = 'office'
            then coalesce(office_at_end.district_code, office_during.district_code, '{{ unallocated }}')
        end as district_code,
        case
            when units.level = 'office'
                then coalesce(office_at_end.region_code, office_during.region_code, '{{ unallocated }}')
            when units.level = 'district'
                then coalesce(district_at_end.region_code, district_during.region_code, '{{ unallocated }}')
        end as region_code,
        case units.level
            when 'office' then office_at_end.unit_code is not null
            when 'district' then district_at_end.unit_code is not null
            when 'region' then region_at_end.unit_code is not null
            else true
        end as is_open_at_month_end
    from units
    left join office_at_end
        on units.level = 'office'
        and office_at_end.month = units.month
        and office_at_end.unit_code = units.unit_code
    left join office_during
        on units.level = 'office'
        and office_during.month = units.month
        and office_during.unit_code = units.unit_code
    left join district_at_end
        on units.level = 'district'
        and district_at_end.month = units.month
        and district_at_end.unit_code = units.unit_code
    left join district_during
        on units.level = 'district'
        and district_during.month = units.month
        and district_during.unit_code = units.unit_code
    left join region_at_end
        on units.level = 'region'
        and region_at_end.month = units.month
        and region_at_end.unit_code = units.unit_code
),

year_to_date as (
    select
        placed.month,
        placed.level,
        placed.unit_code,
        count(case when monthly.month = placed.month then 1 end) > 0 as has_offflows,
        coalesce(sum(case when monthly.month = placed.month then monthly.offflows end), 0) as offflows,
        coalesce(sum(case when monthly.month = placed.month then monthly.opte_offflows end), 0)
            as opte_offflows,
        coalesce(sum(monthly.opte_offflows), 0) as opte_ytd
    from placed
    left join monthly
        on monthly.level = placed.level
        and monthly.unit_code = placed.unit_code
        and monthly.month <= placed.month
        and {{ financial_year('monthly.month') }} = {{ financial_year('placed.month') }}
    group by placed.month, placed.level, placed.unit_code
),

standing as (
    select
        placed.*,
        year_to_date.has_offflows,
        year_to_date.offflows,
        year_to_date.opte_offflows,
        year_to_date.opte_ytd,
        {{ financial_year('placed.month') }} as financial_year,
        {{ financial_year_months_elapsed('placed.month') }} as months_elapsed
    from placed
    inner join year_to_date
        on year_to_date.month = placed.month
        and year_to_date.level = placed.level
        and year_to_date.unit_code = placed.unit_code
),

targeted as (
    select
        standing.*,
        targets.target_numerator,
        targets.target_denominator,
        targets.opte_target_annual
    from standing
    left join {{ ref('int_unit_targets_derived') }} as targets
        on targets.financial_year = standing.financial_year
        and targets.level = standing.level
        and targets.unit_code = standing.unit_code
),

names as (
    select level, unit_code, unit_name from {{ ref('int_units_named') }}
)

select
    targeted.month,
    cast({{ dbt.last_day('targeted.month', 'month') }} as date) as month_end,
    targeted.level,
    targeted.unit_code,
    unit_names.unit_name,
    targeted.district_code,
    district_names.unit_name as district_name,
    targeted.region_code,
    region_names.unit_name as region_name,
    targeted.is_open_at_month_end,
    targeted.has_offflows,
    targeted.financial_year,
    targeted.months_elapsed,
    cast(targeted.offflows as {{ dbt.type_bigint() }}) as offflows,
    cast(targeted.opte_offflows as {{ dbt.type_bigint() }}) as opte_offflows,
    cast(targeted.opte_ytd as {{ dbt.type_bigint() }}) as opte_ytd,
    targeted.opte_target_annual,
    -- annual x months elapsed / 12, multiplied before dividing (as opte_monthly)
    cast(targeted.target_numerator * targeted.months_elapsed as {{ type_double() }})
        / (12 * targeted.target_denominator) as opte_target_ytd,
    case when targeted.target_numerator > 0 then
        cast(targeted.opte_ytd * 12 * targeted.target_denominator as {{ type_double() }})
        / (targeted.target_numerator * targeted.months_elapsed)
    end as pct_of_target_ytd,
    -- RAG in exact arithmetic, by the rule of opte_monthly (a data test checks that they agree)
    {{ rag_status('targeted.opte_ytd * 12 * targeted.target_denominator',
                  'targeted.target_numerator * targeted.months_elapsed',
                  'targeted.target_numerator is null or targeted.target_numerator = 0') }} as rag
from targeted
left join names as unit_names
    on unit_names.level = targeted.level
    and unit_names.unit_code = targeted.unit_code
left join names as district_names
    on district_names.level = 'district'
    and district_names.unit_code = targeted.district_code
left join names as region_names
    on region_names.level = 'region'
    and region_names.unit_code = targeted.region_code
