-- Current state: the latest version of each customer (later extract wins).
with landed as (
    {{ landed_rows('customers') }}
)

select
    person_key,
    {{ person_id('person_key') }} as person_id,
    date_of_birth,
    sex,
    date_of_death,
    area_code,
    _extract_date as extract_date
from landed
qualify row_number() over (partition by person_key order by _extract_date desc) = 1
