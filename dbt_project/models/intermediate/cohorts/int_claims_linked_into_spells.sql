-- One row per in-scope benefit claim (claim_id), with the spell it belongs to (MEASURES.md
-- section 5). Per person and benefit, claims are ordered by start date, then claim_id (as text);
-- a claim joins the current spell when its start <= the spell's running end + return_window_days,
-- the running end being the latest end of the spell's claims so far, or open if any is open.
-- One window pass (running max) instead of recursion: claims of earlier spells all end before
-- the current spell's first claim starts, so the running max over all earlier claims of the
-- person and benefit is the running max over the current spell's claims.
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with claims as (
    select
        claims.claim_id,
        claims.person_id,
        claims.benefit_code,
        claims.office_code,
        claims.claim_start_date,
        claims.claim_end_date
    from {{ ref('int_claims_in_scope') }} as claims
    where {{ only_affected_persons('claims.person_id') }}
),

running_ends as (
    select
        *,
        -- latest end of the earlier claims (nulls, i.e. open claims, ignored here)
        max(claim_end_date) over earlier_claims as running_end_before,
        -- whether any earlier claim is open (then the spell is open)
        max(case when claim_end_date is null then 1 else 0 end) over earlier_claims as is_open_before,
        count(*) over earlier_claims as earlier_claims
    from claims
    window earlier_claims as (
        partition by person_id, benefit_code
        order by claim_start_date, claim_id
        rows between unbounded preceding and 1 preceding
    )
),

flagged as (
    select
        *,
        case
            when earlier_claims = 0 then true
            when is_open_before = 1 then false
            when claim_start_date <= {{ add_days(var('return_window_days'), 'running_end_before') }}
                then false
            else true
        end as is_spell_first_claim
    from running_ends
),

numbered as (
    -- one more pass, in the same order: the spell number (a running count of spell-first claims)
    -- and the spell id (the claim_id of the latest spell-first claim so far: this spell's first)
    select
        *,
        cast(sum(case when is_spell_first_claim then 1 else 0 end) over claims_so_far
            as {{ dbt.type_bigint() }}) as spell_number,
        {{ last_value_ignore_nulls('case when is_spell_first_claim then claim_id end') }} over claims_so_far
            as spell_id
    from flagged
    window claims_so_far as (
        partition by person_id, benefit_code
        order by claim_start_date, claim_id
        rows between unbounded preceding and current row
    )
)

select
    claim_id,
    person_id,
    benefit_code,
    office_code,
    claim_start_date,
    claim_end_date,
    spell_number,
    spell_id,
    is_spell_first_claim
from numbered
