-- One row per data-quality check and dataset, and per landed extract where the check counts
-- rows of an extract (MEASURES.md section 10), with the number of rows concerned:
--   rows_quarantined        rows rejected at landing, one row per extract and reject reason
--   unknown_office_code     off-flows whose office code has no `offices` row valid at d
--                           (reported under UNALLOCATED)
--   customer_missing        off-flows whose person has no customers row (cannot be died/retired)
--   null_date_of_birth      off-flows whose customer has a null date of birth (cannot be retired)
--   offflows_before_coverage off-flows dated before the coverage start (counted in no other mart;
--                           the three checks above count only the off-flows that are counted)
--   missing_end_reason      closed claims (current state) with no end reason, by the extract of
--                           their current version
--   unknown_end_reason      closed claims with an end reason not in seed end_reasons
--   unknown_programme_code  programme starts with a code not in seed programmes (exclude nothing)
-- Checks over extracts have a row for every landed extract of their dataset, 0 included;
-- checks over off-flows have one row with extract_date null.
with extracts as (
    select dataset, extract_date from {{ ref('stg_lake__landed_extracts') }} where is_within_cutoff
),

-- every off-flow up to the cut-off, those before the coverage start included (one scan: the
-- checks of the counted off-flows filter on is_before_coverage themselves)
offflows as (
    select * from {{ ref('int_offflows_identified') }}
),

claims as (
    select * from {{ ref('stg_lake__benefit_claims') }}
),

quarantined as (
    select
        'rows_quarantined' as check_name,
        dataset,
        extract_date,
        reject_reason as detail,
        count(*) as row_count
    from {{ ref('stg_lake__quarantine') }}
    group by 1, 2, 3, 4
),

offflow_checks as (
    select
        'unknown_office_code' as check_name,
        'benefit_claims' as dataset,
        sum(case when not is_before_coverage and not is_office_allocated then 1 else 0 end) as row_count
    from offflows
    union all
    select
        'customer_missing',
        'customers',
        sum(case when not is_before_coverage and not has_customer then 1 else 0 end)
    from offflows
    union all
    select
        'null_date_of_birth',
        'customers',
        sum(case when not is_before_coverage and has_customer and date_of_birth is null then 1 else 0 end)
    from offflows
    union all
    select
        'offflows_before_coverage',
        'benefit_claims',
        sum(case when is_before_coverage then 1 else 0 end)
    from offflows
),

claim_rows as (
    select
        claims.extract_date,
        sum(case when claims.claim_end_date is not null and claims.end_reason_code is null
            then 1 else 0 end) as missing_end_reason,
        sum(case when claims.claim_end_date is not null and claims.end_reason_code is not null
                      and end_reasons.end_reason_code is null
            then 1 else 0 end) as unknown_end_reason
    from claims
    left join {{ ref('end_reasons') }} as end_reasons
        on end_reasons.end_reason_code = claims.end_reason_code
    group by 1
),

programme_rows as (
    select
        starts.extract_date,
        sum(case when programmes.programme_code is null then 1 else 0 end) as unknown_programme_code
    from {{ ref('stg_lake__programme_starts') }} as starts
    left join {{ ref('programmes') }} as programmes
        on programmes.programme_code = starts.programme_code
    group by 1
),

extract_checks as (
    select 'missing_end_reason' as check_name, extracts.dataset, extracts.extract_date,
           coalesce(claim_rows.missing_end_reason, 0) as row_count
    from extracts
    left join claim_rows on claim_rows.extract_date = extracts.extract_date
    where extracts.dataset = 'benefit_claims'
    union all
    select 'unknown_end_reason', extracts.dataset, extracts.extract_date,
           coalesce(claim_rows.unknown_end_reason, 0)
    from extracts
    left join claim_rows on claim_rows.extract_date = extracts.extract_date
    where extracts.dataset = 'benefit_claims'
    union all
    select 'unknown_programme_code', extracts.dataset, extracts.extract_date,
           coalesce(programme_rows.unknown_programme_code, 0)
    from extracts
    left join programme_rows on programme_rows.extract_date = extracts.extract_date
    where extracts.dataset = 'programme_starts'
),

all_checks as (
    select check_name, dataset, extract_date, detail, row_count from quarantined
    union all
    select check_name, dataset, cast(null as date), cast(null as {{ dbt.type_string() }}),
           coalesce(row_count, 0)
    from offflow_checks
    union all
    select check_name, dataset, extract_date, cast(null as {{ dbt.type_string() }}), row_count
    from extract_checks
)

select
    check_name,
    dataset,
    extract_date,
    detail,
    cast(row_count as {{ dbt.type_bigint() }}) as row_count
from all_checks
