{#- The compact person key: a BIGINT derived deterministically from person_key, the first 15 hex
    digits (60 bits) of the MD5 of person_key, carried by every person-level model so that their
    joins, windows and sorts work on 8 bytes instead of a 64-character string. person_key itself
    is joined back only where it is shown (offflow_events). Distinct person_keys map to distinct
    person_ids: the test person_id_is_one_to_one guards it on every build (the chance of one
    collision among 10 million people is about 4 in 100,000; the build would then stop, never
    publish a merged person). The same value in every engine (MD5 is standard). -#}
{% macro person_id(person_key) -%}
    {{ return(adapter.dispatch('person_id')(person_key)) }}
{%- endmacro %}

{% macro default__person_id(person_key) -%}
    cast(conv(substr(md5({{ person_key }}), 1, 15), 16, 10) as bigint)
{%- endmacro %}

{% macro duckdb__person_id(person_key) -%}
    cast(('0x' || left(md5({{ person_key }}), 15)) as bigint)
{%- endmacro %}
