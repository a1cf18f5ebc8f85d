-- One row per spell (spell_id = claim_id of its first claim): a run of linked claims of one
-- person to one in-scope benefit (MEASURES.md section 5). Start = first claim's start; end = the
-- latest end of its claims, null if any of them is open; office = first claim's office,
-- attributed to its `offices` row valid at the spell start (MEASURES.md section 8).
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with linked_claims as (
    select * from {{ ref('int_claims_linked_into_spells') }}
    where {{ only_affected_persons('person_id') }}
),

spells as (
    select
        spell_id,
        person_id,
        benefit_code,
        spell_number,
        min(claim_start_date) as spell_start_date,
        case when count(claim_end_date) = count(*) then max(claim_end_date) end as spell_end_date,
        max(case when is_spell_first_claim then office_code end) as office_code,
        count(*) as claims_in_spell
    from linked_claims
    group by spell_id, person_id, benefit_code, spell_number
)

select
    spells.spell_id,
    spells.person_id,
    spells.benefit_code,
    spells.spell_number,
    spells.spell_start_date,
    spells.spell_end_date,
    spells.claims_in_spell,
    spells.office_code,
    {{ geography_columns('spells.office_code') }}
from spells
{{ join_office_period('spells.office_code', 'spells.spell_start_date') }}
