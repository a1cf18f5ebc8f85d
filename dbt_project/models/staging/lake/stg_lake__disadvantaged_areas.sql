-- Current state: the rows of the latest landed disadvantaged-areas snapshot.
with landed as (
    {{ latest_snapshot_rows('disadvantaged_areas') }}
)

select
    area_code,
    area_name,
    valid_from,
    valid_to,
    _extract_date as extract_date
from landed
