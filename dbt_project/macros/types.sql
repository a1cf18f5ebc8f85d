{#- A double-precision float, on every engine. dbt.type_float() is not it: on DuckDB and Spark
    `float` is single precision (4 bytes), and the measures' rates are published to 15
    significant digits, identical whichever engine built them. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'opte')()) }}
{%- endmacro %}

{% macro default__type_double() -%} double precision {%- endmacro %}
{% macro duckdb__type_double() -%} double {%- endmacro %}
{% macro spark__type_double() -%} double {%- endmacro %}
