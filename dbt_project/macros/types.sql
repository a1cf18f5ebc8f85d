{#- A double-precision float, on every engine. dbt.type_float() is not it: on DuckDB and Spark
    `float` is single precision (4 bytes), and the measures' rates are published to 15
    significant digits, identical whichever engine built them. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'opte')()) }}
{%- endmacro %}

{% macro default__type_double() -%} double precision {%- endmacro %}
{% macro duckdb__type_double() -%} double {%- endmacro %}
{% macro spark__type_double() -%} double {%- endmacro %}

{#- dbt.generate_series on Spark: dbt's default is a cross join of log2(n) two-row relations with
    `power(2, i)` (a double) and Spark inlines it at every reference of the CTE that holds it
    (reporting_units references its months many times: minutes of planning); Spark's own
    sequence is one integer column, like DuckDB's generate_series. -#}
{% macro spark__generate_series(upper_bound) -%}
    select explode(sequence(1, {{ upper_bound }})) as generated_number
{%- endmacro %}
