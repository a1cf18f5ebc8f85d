-- One row per quarantined row of a committed landing, within the cut-off.
select
    q._dataset as dataset,
    cast(q._extract_date as date) as extract_date,
    q._source_file as source_file,
    cast(q._row_number as bigint) as row_number,
    q.reject_reason
from {{ lake_scan('quarantine') }} as q
inner join {{ ref('stg_lake__landed_extracts') }} as ext
    on q.filename = ext.quarantine_path
where ext.is_within_cutoff
