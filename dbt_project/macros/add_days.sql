{#- `date_expr` plus `days` days, still a date: DuckDB adds an integer to a date directly (dbt's
    dateadd goes through an interval, which turns every date of a join's pairs into a timestamp),
    Spark has date_add. For comparisons in the person-level joins; other engines use dbt's
    dateadd. -#}
{% macro add_days(days, date_expr) -%}
    {{ return(adapter.dispatch('add_days')(days, date_expr)) }}
{%- endmacro %}

{% macro default__add_days(days, date_expr) -%}
    {{ dbt.dateadd('day', days, date_expr) }}
{%- endmacro %}

{% macro duckdb__add_days(days, date_expr) -%}
    ({{ date_expr }} + cast({{ days }} as integer))
{%- endmacro %}

{% macro spark__add_days(days, date_expr) -%}
    date_add({{ date_expr }}, cast({{ days }} as int))
{%- endmacro %}
