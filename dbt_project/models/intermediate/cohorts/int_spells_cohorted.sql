-- One row per spell starting on or before the data cut-off, with its cohort month (MEASURES.md
-- section 5): cohort month m holds the spells with count_date(m-1) < spell start <=
-- count_date(m), labelled by m's first day. A spell starting after its month's count date
-- belongs to the next month's cohort. Spells starting after the data cut-off are not counted.
-- A cohort is complete (section 9) when it opens on or after the coverage start:
-- count_date(m-1) + 1 day >= coverage start. An incomplete cohort holds only the spells that
-- survived into the data, so cohort_offflow_rates shows complete cohorts only.
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with spells as (
    select * from {{ ref('int_spells') }}
    where {{ only_affected_persons('person_id') }}
),

count_dates as (
    select * from {{ ref('int_count_dates') }}
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

coverage as (
    select coverage_start from {{ ref('int_coverage_start') }}
),

assigned as (
    select
        spells.*,
        case
            when spells.spell_start_date <= start_month.count_date then start_month.month_start
            else cast({{ dbt.dateadd('month', 1, 'start_month.month_start') }} as date)
        end as cohort_month
    from spells
    left join count_dates as start_month
        on start_month.month_start = cast({{ dbt.date_trunc('month', 'spells.spell_start_date') }} as date)
    inner join cutoff
        on spells.spell_start_date <= cutoff.data_cutoff
)

select
    assigned.spell_id,
    assigned.person_id,
    assigned.benefit_code,
    assigned.spell_start_date,
    assigned.spell_end_date,
    assigned.office_code,
    assigned.reporting_office_code,
    assigned.district_code,
    assigned.region_code,
    assigned.is_office_allocated,
    assigned.cohort_month,
    cohort.count_date as cohort_count_date,
    cast({{ dbt.dateadd('day', 1, 'cohort.previous_count_date') }} as date) as cohort_opening_date,
    coalesce({{ dbt.dateadd('day', 1, 'cohort.previous_count_date') }} >= coverage.coverage_start, false)
        as is_cohort_complete
from assigned
cross join coverage  -- one row: the coverage start
left join count_dates as cohort
    on cohort.month_start = assigned.cohort_month
