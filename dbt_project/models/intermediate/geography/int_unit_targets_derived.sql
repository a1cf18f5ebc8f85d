-- One row per financial year, level and unit that has a target base on 1 April of that year:
-- the annual OPtE target (MEASURES.md section 8). Financial years: those with an off-flow.
--   office:   district target x office register / district register, where the office's
--             district is that of its own `offices` row valid on 1 April; null when the district
--             has no target or its register is 0, or 1 April is before the coverage start
--             (the register is unknown: MEASURES.md section 9). (An office with no row valid on
--             1 April has no row here, so its target is null downstream.)
--   district: the district's target for the year.
--   region:   sum over the districts with an office in the region on 1 April; national: sum
--             over the distinct districts with any office on 1 April; null when any of those
--             districts lacks a target (no total over a partial base).
-- The target is kept as an exact fraction target_numerator / target_denominator so that the
-- year-to-date comparison can multiply before dividing.
-- (Financial years are recomputed from the off-flows: a year with no claim open on 1 April has
-- no register rows, but its districts still have targets.)
with registers as (
    select * from {{ ref('int_registers_counted') }}
),

financial_years as (
    select distinct
        {{ financial_year('offflows.offflow_date') }} as financial_year,
        {{ financial_year_start(financial_year('offflows.offflow_date')) }} as register_date,
        {{ financial_year_start(financial_year('offflows.offflow_date')) }} >= coverage.coverage_start
            as is_register_known
    from {{ ref('int_offflows_identified') }} as offflows
    cross join {{ ref('int_coverage_start') }} as coverage
    where not offflows.is_before_coverage
),

district_targets as (
    select financial_year, district_code, opte_target from {{ ref('stg_lake__opte_targets') }}
),

-- every offices row valid on 1 April of each financial year
offices_on_april_first as (
    select
        financial_years.financial_year,
        financial_years.is_register_known,
        periods.office_code,
        periods.reporting_office_code,
        periods.district_code,
        periods.region_code
    from financial_years
    inner join {{ ref('int_office_periods') }} as periods
        on periods.period_start <= financial_years.register_date
        and (periods.period_end is null or periods.period_end >= financial_years.register_date)
),

office_registers as (
    select financial_year, reporting_office_code, cast(sum(claims_open) as bigint) as office_register
    from registers
    group by 1, 2
),

district_registers as (
    select financial_year, district_code, cast(sum(claims_open) as bigint) as district_register
    from registers
    group by 1, 2
),

office_targets as (
    select
        offices.financial_year,
        'office' as level,
        offices.office_code as unit_code,
        offices.district_code as target_district_code,
        case when offices.is_register_known then coalesce(office_registers.office_register, 0) end
            as office_register,
        case when offices.is_register_known then coalesce(district_registers.district_register, 0) end
            as district_register,
        district_targets.opte_target as district_target,
        case when offices.is_register_known and coalesce(district_registers.district_register, 0) > 0
            then district_targets.opte_target * coalesce(office_registers.office_register, 0)
        end as target_numerator,
        case when offices.is_register_known and coalesce(district_registers.district_register, 0) > 0
                  and district_targets.opte_target is not null
            then district_registers.district_register
        end as target_denominator
    from offices_on_april_first as offices
    left join office_registers
        on office_registers.financial_year = offices.financial_year
        and office_registers.reporting_office_code = offices.office_code
    left join district_registers
        on district_registers.financial_year = offices.financial_year
        and district_registers.district_code = offices.district_code
    left join district_targets
        on district_targets.financial_year = offices.financial_year
        and district_targets.district_code = offices.district_code
),

districts as (
    select financial_year, district_code from offices_on_april_first
    union
    select district_targets.financial_year, district_targets.district_code
    from district_targets
    inner join financial_years
        on financial_years.financial_year = district_targets.financial_year
),

district_level as (
    select
        districts.financial_year,
        'district' as level,
        districts.district_code as unit_code,
        cast(district_targets.opte_target as bigint) as target_numerator,
        case when district_targets.opte_target is not null then cast(1 as bigint) end as target_denominator
    from districts
    left join district_targets
        on district_targets.financial_year = districts.financial_year
        and district_targets.district_code = districts.district_code
),

-- districts contributing to a region's or the nation's target
base_districts as (
    select distinct financial_year, 'region' as level, region_code as unit_code, district_code
    from offices_on_april_first
    union all
    select distinct financial_year, 'national' as level, '{{ var("national_code") }}' as unit_code, district_code
    from offices_on_april_first
),

rolled_up as (
    select
        base_districts.financial_year,
        base_districts.level,
        base_districts.unit_code,
        case when count(district_targets.opte_target) = count(*)
            then cast(sum(district_targets.opte_target) as bigint)
        end as target_numerator
    from base_districts
    left join district_targets
        on district_targets.financial_year = base_districts.financial_year
        and district_targets.district_code = base_districts.district_code
    group by 1, 2, 3
),

all_levels as (
    select financial_year, level, unit_code, target_numerator, target_denominator,
           target_district_code, office_register, district_register
    from office_targets
    union all
    select financial_year, level, unit_code, target_numerator, target_denominator,
           unit_code as target_district_code, cast(null as bigint) as office_register,
           cast(null as bigint) as district_register
    from district_level
    union all
    select financial_year, level, unit_code, target_numerator,
           case when target_numerator is not null then cast(1 as bigint) end as target_denominator,
           cast(null as {{ dbt.type_string() }}) as target_district_code,
           cast(null as bigint) as office_register, cast(null as bigint) as district_register
    from rolled_up
)

select
    financial_year,
    level,
    unit_code,
    target_numerator,
    target_denominator,
    cast(target_numerator as double) / target_denominator as opte_target_annual,
    target_district_code,
    office_register,
    district_register
from all_levels
