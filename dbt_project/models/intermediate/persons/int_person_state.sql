-- One row per person ever seen by this warehouse (person_id): a fingerprint of all the person's
-- current rows (claims, customer row, programme starts, employments), and the build that last
-- changed it. Incremental: each build recomputes every fingerprint (one hash aggregate over the
-- current state) and writes only the persons whose fingerprint changed, appeared or vanished
-- (fingerprint null), stamped with this invocation; int_persons_affected reads them.
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='delete+insert', unique_key='person_id') }}
with person_rows as (
    select person_id, {{ row_hash(["'claim'", 'claim_id', 'benefit_code', 'office_code', 'claim_start_date',
                                   'claim_end_date', 'end_reason_code', 'is_lone_parent', 'is_disabled',
                                   'extract_date']) }} as row_hash
    from {{ ref('stg_lake__benefit_claims') }}
    union all
    select person_id, {{ row_hash(["'customer'", 'date_of_birth', 'sex', 'date_of_death', 'area_code',
                                   'extract_date']) }}
    from {{ ref('stg_lake__customers') }}
    union all
    select person_id, {{ row_hash(["'programme'", 'programme_code', 'start_date', 'office_code',
                                   'extract_date']) }}
    from {{ ref('stg_lake__programme_starts') }}
    union all
    select person_id, {{ row_hash(["'employment'", 'paye_ref', 'start_date', 'end_date', 'form',
                                   'received_date', 'extract_date']) }}
    from {{ ref('stg_lake__tax_employments') }}
),

current_state as (
    select person_id, {{ fingerprint_agg('row_hash') }} as fingerprint
    from person_rows
    group by person_id
),

cutoff as (
    select data_cutoff from {{ ref('int_data_cutoff') }}
)

{% if is_incremental() %}
, previous_state as (
    select person_id, fingerprint from {{ this }}
)

select
    coalesce(current_state.person_id, previous_state.person_id) as person_id,
    current_state.fingerprint,
    '{{ invocation_id }}' as changed_in_invocation,
    cutoff.data_cutoff as changed_at_cutoff
from current_state
full outer join previous_state
    on previous_state.person_id = current_state.person_id
cross join cutoff  -- one row: the data cut-off
where previous_state.fingerprint is distinct from current_state.fingerprint
{% else %}
select
    current_state.person_id,
    current_state.fingerprint,
    '{{ invocation_id }}' as changed_in_invocation,
    cutoff.data_cutoff as changed_at_cutoff
from current_state
cross join cutoff  -- one row: the data cut-off
{% endif %}
