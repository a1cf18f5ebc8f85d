-- One row per off-flow, with whether it is a proxy off-flow (MEASURES.md section 12): its claim's
-- end_reason_code, recorded by staff when closing the claim, is one of var proxy_end_reasons
-- (FW found work, IW increased work). A proxy needs no later evidence, so it is known as soon as
-- the closure lands: the real-time indicator that opte_monthly scales into a nowcast.
select
    claim_id,
    end_reason_code,
    coalesce(end_reason_code in (
        {%- for code in var('proxy_end_reasons') %}'{{ code }}'{{ ', ' if not loop.last }}{% endfor -%}
    ), false) as is_proxy
from {{ ref('int_offflows_identified') }}
