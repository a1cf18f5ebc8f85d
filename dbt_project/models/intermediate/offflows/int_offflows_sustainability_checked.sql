-- One row per OPtE off-flow, with whether the person was back on benefit by week k, for each k
-- of var sustainability_weeks (13, 26) (MEASURES.md section 13): the person has an in-scope claim
-- (int_claims_in_scope: any benefit, any office) with d < start <= d + 7k days. Week k of the
-- off-flow month M is due when the data cut-off >= the last day of M + 7k days; before that
-- back_on_benefit_by_week_k is null (a return could still land), never a partial answer.
{%- set weeks = var('sustainability_weeks') %}
with opte_offflows as (
    select claim_id, person_id, offflow_date, offflow_month
    from {{ ref('int_offflows_classified') }}
    where is_opte
),

claims as (
    select person_id, claim_start_date from {{ ref('int_claims_in_scope') }}
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
),

-- the person's first in-scope claim starting in (d, d + 7 x the longest week]
first_returns as (
    select
        opte_offflows.claim_id,
        min(claims.claim_start_date) as back_on_benefit_date
    from opte_offflows
    inner join claims
        on claims.person_id = opte_offflows.person_id
        and claims.claim_start_date > opte_offflows.offflow_date
        and claims.claim_start_date <= {{ add_days(7 * (weeks | max), 'opte_offflows.offflow_date') }}
    group by opte_offflows.claim_id
)

select
    opte_offflows.claim_id,
    opte_offflows.offflow_date,
    opte_offflows.offflow_month,
    first_returns.back_on_benefit_date
    {%- for week in weeks %},
    case when {{ sustainability_week_is_due('opte_offflows.offflow_month', week, 'cutoff.data_cutoff') }} then
        first_returns.back_on_benefit_date is not null
        and first_returns.back_on_benefit_date <= {{ add_days(7 * week, 'opte_offflows.offflow_date') }}
    end as back_on_benefit_by_week_{{ week }}
    {%- endfor %}
from opte_offflows
cross join cutoff  -- one row: the data cut-off
left join first_returns
    on first_returns.claim_id = opte_offflows.claim_id
