-- One row per customer: the State Pension age date from date of birth and sex (MEASURES.md
-- section 7), by the rule bands of seed state_pension_age_bands. Null when the birth date is
-- null. A null sex follows the men's rule: before 1953-12-06 that is the men's row, and from
-- 1953-12-06 on every row applies to anyone, so "null sex = men" holds throughout.
-- Adding years or months clamps to the end of the month (29 Feb + 1 year = 28 Feb).
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with customers as (
    select person_id, person_key, date_of_birth, sex
    from {{ ref('stg_lake__customers') }}
    where {{ only_affected_persons('person_id') }}
),

bands as (
    select * from {{ ref('state_pension_age_bands') }}
),

banded as (
    select
        customers.person_id,
        customers.person_key,
        customers.date_of_birth,
        customers.sex,
        bands.band_id,
        bands.method,
        bands.add_years,
        bands.base_date,
        bands.step_months,
        bands.month_offset,
        -- month index i of a stepped band: births from the 6th of a month to the 5th of the
        -- next share one i (i = 0 for the band's first month). Shifting both dates back 5 days
        -- moves the 6th to the 1st, so i is a plain count of calendar months.
        {{ dbt.datediff(
            dbt.date_trunc('month', dbt.dateadd('day', -5, 'bands.born_from')),
            dbt.date_trunc('month', dbt.dateadd('day', -5, 'customers.date_of_birth')),
            'month') }} as band_month_index
    from customers
    left join bands
        on bands.applies_to in ('anyone', case when customers.sex = 'F' then 'women' else 'men' end)
        and (bands.born_from is null or customers.date_of_birth >= bands.born_from)
        and (bands.born_to is null or customers.date_of_birth <= bands.born_to)
)

select
    person_id,
    person_key,
    date_of_birth,
    sex,
    band_id as state_pension_age_band_id,
    cast(case method
        when 'add_years' then
            {{ dbt.dateadd('year', 'add_years', 'date_of_birth') }}
        when 'step_months' then
            {{ dbt.dateadd('month', 'step_months * band_month_index', 'base_date') }}
        when 'add_years_plus_months' then
            {{ dbt.dateadd('month', 'month_offset + step_months * band_month_index',
                           dbt.dateadd('year', 'add_years', 'date_of_birth')) }}
    end as date) as state_pension_age_date
from banded
