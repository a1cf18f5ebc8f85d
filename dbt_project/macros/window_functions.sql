{#- last_value(expr) over a window, skipping nulls: the latest non-null value of the frame.
    DuckDB writes the null treatment inside the call, `last_value(x ignore nulls)`, and rejects
    it after; Spark 4 writes it after the call, `last_value(x) ignore nulls` (the SQL standard's
    place), and rejects it inside. The caller writes the `over (...)`. -#}
{% macro last_value_ignore_nulls(expr) -%}
    {{ return(adapter.dispatch('last_value_ignore_nulls', 'opte')(expr)) }}
{%- endmacro %}

{% macro default__last_value_ignore_nulls(expr) -%}
    last_value({{ expr }} ignore nulls)
{%- endmacro %}

{% macro spark__last_value_ignore_nulls(expr) -%}
    last_value({{ expr }}) ignore nulls
{%- endmacro %}
