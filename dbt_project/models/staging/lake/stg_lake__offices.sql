-- Current state: the rows of the latest landed offices snapshot.
with landed as (
    {{ latest_snapshot_rows('offices') }}
)

select
    office_code,
    office_name,
    reporting_office_code,
    district_code,
    district_name,
    region_code,
    region_name,
    valid_from,
    valid_to,
    _row_number as source_row_number,
    _extract_date as extract_date
from landed
