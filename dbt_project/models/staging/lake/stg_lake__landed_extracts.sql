-- One row per landed file (dataset and extract date): the committed manifests.
select
    cast(dataset as {{ dbt.type_string() }}) as dataset,
    cast(extract_date as date) as extract_date,
    cast(source_file as {{ dbt.type_string() }}) as source_file,
    cast(sha256 as {{ dbt.type_string() }}) as sha256,
    '{{ lake_root() }}/' || data_file as data_path,
    '{{ lake_root() }}/' || quarantine_file as quarantine_path,
    cast(rows_read as bigint) as rows_read,
    cast(rows_landed as bigint) as rows_landed,
    cast(rows_quarantined as bigint) as rows_quarantined,
    cast(exact_duplicates_dropped as bigint) as exact_duplicates_dropped,
    cast(landed_at as timestamp) as landed_at,
    cast(code_version as {{ dbt.type_string() }}) as code_version,
    {{ within_cutoff('cast(extract_date as date)') }} as is_within_cutoff
from {{ lake_scan('manifests') }}
