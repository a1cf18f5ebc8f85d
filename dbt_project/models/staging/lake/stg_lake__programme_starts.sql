-- Current state: the latest version of each programme start (person, programme, start date).
with landed as (
    {{ landed_rows('programme_starts') }}
)

select
    person_key,
    {{ person_id('person_key') }} as person_id,
    programme_code,
    start_date,
    office_code,
    _extract_date as extract_date
from landed
qualify row_number() over (
    partition by person_key, programme_code, start_date order by _extract_date desc
) = 1
