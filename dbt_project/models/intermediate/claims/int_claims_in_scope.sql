-- One row per claim to a working-age benefit in scope of OPtE (seed benefits.is_opte_in_scope:
-- JSA, ESA, IB, SDA, IS; MEASURES.md section 1), open or ended: the claims off-flows, spells and
-- registers are made of. Claims to CA and PC are only cross-flow destinations and are left out.
{{ config(materialized='view') }}
select
    claims.claim_id,
    claims.person_id,
    claims.person_key,
    claims.benefit_code,
    claims.office_code,
    claims.claim_start_date,
    claims.claim_end_date,
    claims.end_reason_code,
    claims.is_lone_parent,
    claims.is_disabled
from {{ ref('stg_lake__benefit_claims') }} as claims
inner join {{ ref('benefits') }} as benefits
    on benefits.benefit_code = claims.benefit_code
where benefits.is_opte_in_scope
