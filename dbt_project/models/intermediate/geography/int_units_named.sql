-- One row per level and unit code with the unit's name (MEASURES.md section 8): taken from the
-- unit's `offices` row with the latest valid_from in the current snapshot (between equal dates,
-- the later row of the file). Adds the unallocated district and region and the national unit,
-- named from vars. An office code with no row at all has no row here (its name is null).
with offices as (
    select * from {{ ref('stg_lake__offices') }}
),

office_names as (
    select 'office' as level, office_code as unit_code, office_name as unit_name
    from offices
    qualify row_number() over (
        partition by office_code order by valid_from desc, source_row_number desc
    ) = 1
),

district_names as (
    select 'district' as level, district_code as unit_code, district_name as unit_name
    from offices
    qualify row_number() over (
        partition by district_code order by valid_from desc, source_row_number desc
    ) = 1
),

region_names as (
    select 'region' as level, region_code as unit_code, region_name as unit_name
    from offices
    qualify row_number() over (
        partition by region_code order by valid_from desc, source_row_number desc
    ) = 1
),

fixed_units as (
    select 'district' as level, '{{ var("unallocated_code") }}' as unit_code, '{{ var("unallocated_name") }}' as unit_name
    union all
    select 'region', '{{ var("unallocated_code") }}', '{{ var("unallocated_name") }}'
    union all
    select 'national', '{{ var("national_code") }}', '{{ var("national_name") }}'
)

select level, unit_code, unit_name from office_names
union all
select level, unit_code, unit_name from district_names
union all
select level, unit_code, unit_name from region_names
union all
select level, unit_code, unit_name from fixed_units
