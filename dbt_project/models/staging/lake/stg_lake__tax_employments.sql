-- Current state: the latest version of each employment (person, PAYE scheme, start date).
with landed as (
    {{ landed_rows('tax_employments') }}
)

select
    person_key,
    {{ person_id('person_key') }} as person_id,
    paye_ref,
    start_date,
    end_date,
    form,
    received_date,
    _extract_date as extract_date
from landed
qualify row_number() over (
    partition by person_key, paye_ref, start_date order by _extract_date desc
) = 1
