{#- The rows of `dataset` in files named by a committed landing manifest and within the
    data cut-off. Files not named by a manifest (an interrupted landing) are never read. -#}
{% macro landed_rows(dataset) %}
    select src.*
    from {{ lake_scan(dataset) }} as src
    inner join {{ ref('stg_lake__landed_extracts') }} as ext
        on src.filename = ext.data_path
    where ext.dataset = '{{ dataset }}'
      and ext.is_within_cutoff
{% endmacro %}

{#- Snapshot datasets: only the latest landed file within the cut-off counts (a file whose rows
    were all quarantined still replaces earlier ones). -#}
{% macro latest_snapshot_rows(dataset) %}
    select landed.*
    from ({{ landed_rows(dataset) }}) as landed
    where landed._extract_date = (
        select max(extract_date)
        from {{ ref('stg_lake__landed_extracts') }}
        where dataset = '{{ dataset }}' and is_within_cutoff
    )
{% endmacro %}

{#- True for every extract when no explicit cut-off is set. -#}
{% macro within_cutoff(date_column) -%}
    {%- if var('data_cutoff') is none -%} true
    {%- else -%} {{ date_column }} <= cast('{{ var("data_cutoff") }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- The landed lake's folder: var lake_root, else $OPTE_HOME/lake. -#}
{% macro lake_root() -%}
    {{ var('lake_root', env_var('OPTE_HOME', '.') ~ '/lake') }}
{%- endmacro %}
