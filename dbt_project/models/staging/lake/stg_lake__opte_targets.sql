-- Current state: the rows of the latest landed OPtE targets snapshot.
with landed as (
    {{ latest_snapshot_rows('opte_targets') }}
)

select
    cast(financial_year as integer) as financial_year,
    district_code,
    cast(opte_target as bigint) as opte_target,
    _extract_date as extract_date
from landed
