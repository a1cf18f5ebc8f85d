{#- Reading the landed lake: the one place where the engines differ in how they scan files.
    `{{ lake_scan('benefit_claims') }}` is a relation over every file of a source of the `lake`
    source set (models/staging/lake/_lake__sources.yml), with the columns of its files united by
    name and, for the Parquet datasets, a column `filename`: the file's path as the landing
    manifests name it (`<lake_root>/<data_file>`), so that only committed files are read
    (landed_rows). The manifests are one JSON object per file. -#}
{% macro lake_scan(table) -%}
    {#- declares the dependency on the source (lineage, docs); the engine's macro reads the files -#}
    {%- set declared = source('lake', table) -%}
    {#- in a unit test, dbt puts the test's rows in place of the source: read those, not files -#}
    {%- if model is mapping and model.get('resource_type') == 'unit_test' -%}
        {{ return(declared) }}
    {%- endif -%}
    {{ return(adapter.dispatch('lake_scan', 'opte')(table, lake_root() ~ '/' ~ lake_glob(table))) }}
{%- endmacro %}

{#- The files of a lake source, relative to the lake root (ingest/lake.py writes them). -#}
{% macro lake_glob(table) -%}
    {%- if table == 'manifests' -%} _manifests/*/*.json
    {%- elif table == 'quarantine' -%} _quarantine/*/*/*.parquet
    {%- else -%} {{ table }}/*/*.parquet
    {%- endif -%}
{%- endmacro %}

{#- DuckDB: its readers unite files by name and name each row's file. -#}
{% macro duckdb__lake_scan(table, path) -%}
    {%- if table == 'manifests' -%}
    read_json('{{ path }}', format = 'auto', union_by_name = true)
    {%- else -%}
    read_parquet('{{ path }}', filename = true, union_by_name = true)
    {%- endif -%}
{%- endmacro %}

{#- Spark: `parquet.`<glob>`` with spark.sql.parquet.mergeSchema (the target's session
    parameters; a cluster sets it too) unites the files by name; `_metadata.file_path` is the
    file's URI, here without its `file:` scheme so that it equals the manifests' local path (a lake
    on a cluster's file system, e.g. `s3a://...`, keeps its scheme on both sides). The manifests
    are pretty-printed JSON, which Spark's JSON reader only reads with an option a path query
    cannot pass: each file is read whole (`binaryFile`) and parsed with the manifest's schema. -#}
{% macro spark__lake_scan(table, path) -%}
    {%- if table == 'manifests' -%}
    (
        select manifest.*
        from (
            select from_json(cast(content as string), '{{ lake_manifest_schema() }}') as manifest
            from binaryFile.`{{ path }}`
        ) as files
    )
    {%- else -%}
    (
        {#- file_path is a URI: percent-encoded (a space is %20); url_decode reads `+` as a space, so
            a literal `+` is encoded first -#}
        select *, url_decode(replace(regexp_replace(_metadata.file_path, '^file:(//)?', ''), '+', '%2B')) as filename
        from parquet.`{{ path }}`
    )
    {%- endif -%}
{%- endmacro %}

{#- The manifest fields the build reads (ingest/lake.py writes them), as a Spark schema. -#}
{% macro lake_manifest_schema() -%}
    dataset string, extract_date string, source_file string, sha256 string, data_file string,
    quarantine_file string, rows_read bigint, rows_landed bigint, rows_quarantined bigint,
    exact_duplicates_dropped bigint, landed_at string, code_version string
{%- endmacro %}
