-- One row per person whose person-level rows this build must recompute (the incremental
-- person-level models delete and reinsert exactly these persons): the persons whose current rows
-- changed since the previous build (int_person_state: new, corrected, vanished), and the persons
-- with a claim started or ended after an earlier build's data cut-off and by this one's (a
-- spell start or an off-flow that was beyond the previous cut-off and is within this one:
-- int_spells_cohorted, int_offflows_identified).
-- On a full refresh every person is affected.
with state as (
    select person_id, changed_in_invocation, changed_at_cutoff from {{ ref('int_person_state') }}
),

previous_cutoff as (
    -- the latest cut-off of an earlier build that changed a person: at or before the previous
    -- build's cut-off, so the window below holds every claim end that crossed it
    select max(changed_at_cutoff) as data_cutoff
    from state
    where changed_in_invocation <> '{{ invocation_id }}'
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
)

select person_id
from state
where changed_in_invocation = '{{ invocation_id }}'
union
select claims.person_id
from {{ ref('stg_lake__benefit_claims') }} as claims
cross join previous_cutoff
cross join cutoff
where (claims.claim_end_date > previous_cutoff.data_cutoff and claims.claim_end_date <= cutoff.data_cutoff)
   or (claims.claim_start_date > previous_cutoff.data_cutoff and claims.claim_start_date <= cutoff.data_cutoff)
