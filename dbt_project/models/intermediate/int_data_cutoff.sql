-- One row: the data cut-off of this build (MEASURES.md section 9). Explicit (var data_cutoff)
-- or the earliest, over the four incremental datasets, of that dataset's latest landed extract
-- date (a header-only file counts, as it has a manifest).
with latest_by_dataset as (
    select dataset, max(extract_date) as latest_extract_date
    from {{ ref('stg_lake__landed_extracts') }}
    where is_within_cutoff
      and dataset in ('benefit_claims', 'customers', 'tax_employments', 'programme_starts')
    group by dataset
)

select
    {% if var('data_cutoff') is none -%}
    min(latest_extract_date)
    {%- else -%}
    cast('{{ var("data_cutoff") }}' as date)
    {%- endif %} as data_cutoff,
    {{ 'false' if var('data_cutoff') is none else 'true' }} as is_explicit,
    count(*) as datasets_landed
from latest_by_dataset
