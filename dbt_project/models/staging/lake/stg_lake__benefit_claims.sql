-- Current state: the latest version of each claim_id (later extract wins).
with landed as (
    {{ landed_rows('benefit_claims') }}
)

select
    claim_id,
    person_key,
    {{ person_id('person_key') }} as person_id,
    benefit_code,
    office_code,
    claim_start_date,
    claim_end_date,
    end_reason_code,
    lone_parent = 'Y' as is_lone_parent,
    disabled = 'Y' as is_disabled,
    _extract_date as extract_date
from landed
qualify row_number() over (partition by claim_id order by _extract_date desc) = 1
