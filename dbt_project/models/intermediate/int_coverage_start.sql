-- One row: the coverage start of this build (MEASURES.md section 9), the first day from which
-- every claim is in the data. Explicit (var coverage_start), or the first day of the month of the
-- earliest landed benefit_claims extract within the data cut-off: the first extract carries the
-- stock of claims open on that day and the changes since, so claims that had ended before it are
-- absent. Null only when no benefit_claims extract has landed (the build refuses to run then).
select
    {% if var('coverage_start') is none -%}
    cast({{ dbt.date_trunc('month', 'min(extract_date)') }} as date)
    {%- else -%}
    cast('{{ var("coverage_start") }}' as date)
    {%- endif %} as coverage_start,
    {{ 'false' if var('coverage_start') is none else 'true' }} as is_explicit,
    min(extract_date) as earliest_claims_extract_date
from {{ ref('stg_lake__landed_extracts') }}
where dataset = 'benefit_claims'
  and is_within_cutoff
