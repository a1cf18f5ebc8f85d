-- The compact person key is one-to-one with person_key (macro person_id) over every person of
-- the landed datasets: a collision would merge two people's claims, so the build stops instead.
-- Fails with one row per person_id shared by more than one person_key.
-- depends_on: {{ ref('int_persons_affected') }}
with keys as (
    select person_key, person_id from {{ ref('stg_lake__benefit_claims') }}
    union
    select person_key, person_id from {{ ref('stg_lake__customers') }}
    union
    select person_key, person_id from {{ ref('stg_lake__tax_employments') }}
    union
    select person_key, person_id from {{ ref('stg_lake__programme_starts') }}
)

select person_id, count(*) as person_keys
from keys
where {{ in_affected_persons('person_id') }}  -- in an incremental build (macros/affected_tests.sql)
group by person_id
having count(*) > 1
