-- The compact person key is one-to-one with person_key (macro person_id) over every person of
-- the landed datasets: a collision would merge two people's claims, so the build stops instead.
-- Fails with one row per person_id shared by more than one person_key. In an incremental build
-- only the affected persons' keys are read (macros/affected_tests.sql): a new collision changes
-- the fingerprint of the person_id it lands on.
-- depends_on: {{ ref('int_persons_affected') }}
with keys as (
    select person_key, person_id from {{ ref('stg_lake__benefit_claims') }}
    where {{ in_affected_persons('person_id') }}
    union
    select person_key, person_id from {{ ref('stg_lake__customers') }}
    where {{ in_affected_persons('person_id') }}
    union
    select person_key, person_id from {{ ref('stg_lake__tax_employments') }}
    where {{ in_affected_persons('person_id') }}
    union
    select person_key, person_id from {{ ref('stg_lake__programme_starts') }}
    where {{ in_affected_persons('person_id') }}
)

select person_id, count(*) as person_keys
from keys
group by person_id
having count(*) > 1
