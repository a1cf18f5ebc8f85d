-- One row per office code and period during which exactly one `offices` row applies to it.
-- Where two rows of one code are valid on the same day, the one with the later valid_from
-- applies (then the later row of the file). Attribution is then a plain range join.
with offices as (
    select * from {{ ref('stg_lake__offices') }}
),

boundaries as (
    select office_code, valid_from as boundary from offices
    union
    select office_code, cast({{ dbt.dateadd('day', 1, 'valid_to') }} as date) as boundary
    from offices
    where valid_to is not null
),

segments as (
    select
        office_code,
        boundary as period_start,
        cast({{ dbt.dateadd('day', -1, 'lead(boundary) over (partition by office_code order by boundary)') }} as date)
            as period_end
    from boundaries
)

select
    segments.office_code,
    segments.period_start,
    segments.period_end,
    offices.office_name,
    offices.reporting_office_code,
    offices.district_code,
    offices.district_name,
    offices.region_code,
    offices.region_name,
    offices.valid_from
from segments
inner join offices
    on offices.office_code = segments.office_code
    and offices.valid_from <= segments.period_start
    and (offices.valid_to is null or offices.valid_to >= segments.period_start)
qualify row_number() over (
    partition by segments.office_code, segments.period_start
    order by offices.valid_from desc, offices.source_row_number desc
) = 1
