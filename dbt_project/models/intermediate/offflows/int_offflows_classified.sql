-- One row per off-flow, with the conditions of each OPtE exclusion, the exclusion reason (the
-- first that applies in the order died, retired, returned_within_week, cross_flow,
-- programme_start; MEASURES.md section 2) and the evidence of that reason (section 16).
-- Null exclusion_reason = an OPtE off-flow, with null evidence.
-- One pass: each evidence source is joined once, on person_id with range filters (never a
-- cross join), and the same join that decides a condition carries its evidence:
--   other claims      one join for both returns (same benefit) and cross-flows (other benefit);
--                     evidence = the earliest-starting qualifying claim, ties to the smallest
--                     claim_id compared as text;
--   programme starts  evidence = the earliest qualifying start, ties to the smallest
--                     programme_code compared as text;
--   died, retired     evidence = the date of death, the State Pension age date.
{%- set return_days = var('return_window_days') %}
{%- set crossflow_days = var('crossflow_window_days') %}
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
{#- The five exclusions in precedence order (MEASURES.md section 2): the condition, and the
    evidence of the reason (section 16) as claim, date and programme code. -#}
{%- set exclusions = [
    ('died',
     "coalesce(offflows.date_of_death <= " ~ add_days(var('death_grace_days'), 'offflows.offflow_date') ~ ", false)",
     none, 'offflows.date_of_death', none),
    ('retired',
     "coalesce(offflows.state_pension_age_date <= " ~ add_days(var('retirement_grace_days'), 'offflows.offflow_date') ~ ", false)",
     none, 'offflows.state_pension_age_date', none),
    ('returned_within_week', 'other_claims.return_claim_id is not null',
     'other_claims.return_claim_id', 'other_claims.return_start_date', none),
    ('cross_flow', 'other_claims.cross_flow_claim_id is not null',
     'other_claims.cross_flow_claim_id', 'other_claims.cross_flow_start_date', none),
    ('programme_start', 'programme_evidence.claim_id is not null',
     none, 'programme_evidence.evidence_date', 'programme_evidence.evidence_programme_code'),
] %}

with offflows as (
    select * from {{ ref('int_offflows_identified') }}
    where {{ only_affected_persons('person_id') }}
),

section_1_benefits as (
    select benefit_code from {{ ref('benefits') }}
),

claims as (
    select
        claims.claim_id,
        claims.person_id,
        claims.benefit_code,
        claims.claim_start_date,
        claims.claim_end_date
    from {{ ref('stg_lake__benefit_claims') }} as claims
    inner join section_1_benefits
        on section_1_benefits.benefit_code = claims.benefit_code
    where {{ only_affected_persons('claims.person_id') }}
),

excluding_programme_starts as (
    select starts.person_id, starts.programme_code, starts.start_date
    from {{ ref('stg_lake__programme_starts') }} as starts
    inner join {{ ref('programmes') }} as programmes
        on programmes.programme_code = starts.programme_code
    where programmes.excludes_from_opte
      and {{ only_affected_persons('starts.person_id') }}
),

-- another claim of the person that is a return (same benefit, d <= start <= d +
-- return_window_days) or a cross-flow (different benefit, start <= d + crossflow_window_days and
-- not ended by d): one join for both conditions
other_claim_matches as (
    select
        offflows.claim_id,
        case when claims.benefit_code = offflows.benefit_code
            then 'returned_within_week' else 'cross_flow' end as condition,
        claims.claim_id as evidence_claim_id,
        claims.claim_start_date as evidence_date
    from offflows
    inner join claims
        on claims.person_id = offflows.person_id
        and claims.claim_id <> offflows.claim_id
        and claims.claim_start_date
            <= {{ add_days([return_days, crossflow_days] | max, 'offflows.offflow_date') }}
        and (
            (claims.benefit_code = offflows.benefit_code
             and claims.claim_start_date >= offflows.offflow_date
             and claims.claim_start_date <= {{ add_days(return_days, 'offflows.offflow_date') }})
            or (claims.benefit_code <> offflows.benefit_code
                and claims.claim_start_date <= {{ add_days(crossflow_days, 'offflows.offflow_date') }}
                and (claims.claim_end_date is null or claims.claim_end_date > offflows.offflow_date))
        )
),

-- the evidence of each condition: the earliest-starting qualifying claim, ties to the smallest
-- claim_id as text
other_claim_evidence as (
    select claim_id, condition, evidence_claim_id, evidence_date
    from other_claim_matches
    qualify row_number() over (
        partition by claim_id, condition
        order by evidence_date, cast(evidence_claim_id as {{ dbt.type_string() }})
    ) = 1
),

-- an excluding programme start within [d - before, d + after], the earliest first
programme_evidence as (
    select
        offflows.claim_id,
        starts.start_date as evidence_date,
        starts.programme_code as evidence_programme_code
    from offflows
    inner join excluding_programme_starts as starts
        on starts.person_id = offflows.person_id
        and starts.start_date >= {{ add_days(-var('programme_window_before_days'), 'offflows.offflow_date') }}
        and starts.start_date <= {{ add_days(var('programme_window_after_days'), 'offflows.offflow_date') }}
    qualify row_number() over (
        partition by offflows.claim_id
        order by starts.start_date, cast(starts.programme_code as {{ dbt.type_string() }})
    ) = 1
),

-- one row per off-flow with another claim as evidence: the return and the cross-flow side by side
other_claims as (
    select
        claim_id,
        max(case when condition = 'returned_within_week' then evidence_claim_id end) as return_claim_id,
        max(case when condition = 'returned_within_week' then evidence_date end) as return_start_date,
        max(case when condition = 'cross_flow' then evidence_claim_id end) as cross_flow_claim_id,
        max(case when condition = 'cross_flow' then evidence_date end) as cross_flow_start_date
    from other_claim_evidence
    group by claim_id
)

select
    offflows.*,
    {%- for exclusion in exclusions %}
    {{ exclusion[1] }} as meets_{{ exclusion[0] }},
    {%- endfor %}
    case
        {%- for exclusion in exclusions %}
        when {{ exclusion[1] }} then '{{ exclusion[0] }}'
        {%- endfor %}
    end as exclusion_reason,
    not (
        {%- for exclusion in exclusions %}
        {{ exclusion[1] }}{{ ' or' if not loop.last }}
        {%- endfor %}
    ) as is_opte,
    {#- the evidence of the first exclusion that applies; null for an OPtE off-flow #}
    {%- for column, index, null_type in [('evidence_claim_id', 2, dbt.type_string()),
                                         ('evidence_date', 3, 'date'),
                                         ('evidence_programme_code', 4, dbt.type_string())] %}
    case
        {%- for exclusion in exclusions %}
        when {{ exclusion[1] }} then {{ exclusion[index] if exclusion[index] is not none
                                        else 'cast(null as ' ~ null_type ~ ')' }}
        {%- endfor %}
    end as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from offflows
left join other_claims on other_claims.claim_id = offflows.claim_id
left join programme_evidence on programme_evidence.claim_id = offflows.claim_id
