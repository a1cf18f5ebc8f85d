{#- Incremental person-level models (docs/ARCHITECTURE.md "Incremental builds"): a person's
    off-flows, spells and job outcomes depend only on that person's claims, customer row,
    programme starts and employments (plus geography, seeds, vars and the coverage start, whose
    change makes `opte build` a full refresh: measures/refresh.py). An incremental build deletes
    the rows of the persons of int_persons_affected and inserts their recomputed rows. -#}

{#- An incremental run of the current model (never in a unit test, which has no `this`). -#}
{% macro incremental_run() -%}
    {{ return(this is not none and is_incremental()) }}
{%- endmacro %}

{#- pre_hook of an incremental person-level model: drop the affected persons' rows. -#}
{% macro delete_affected_persons() -%}
    {%- if incremental_run() -%}
    delete from {{ this }} where person_id in (select person_id from {{ ref('int_persons_affected') }})
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- A filter on `person_id_column` to the affected persons, in an incremental run only. -#}
{% macro only_affected_persons(person_id_column) -%}
    {%- if incremental_run() -%}
    {{ person_id_column }} in (select person_id from {{ ref('int_persons_affected') }})
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Order-independent fingerprint of a set of rows: the XOR of a hash of each row's columns. -#}
{% macro row_hash(columns) -%}
    {{ return(adapter.dispatch('row_hash')(columns)) }}
{%- endmacro %}

{% macro default__row_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}

{% macro duckdb__row_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro fingerprint_agg(expression) -%}
    {{ return(adapter.dispatch('fingerprint_agg')(expression)) }}
{%- endmacro %}

{% macro default__fingerprint_agg(expression) -%}
    bit_xor({{ expression }})
{%- endmacro %}
