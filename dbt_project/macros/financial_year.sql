{#- UK financial years run April to March: financial year 2009 is April 2009 to March 2010
    (EXTRACTS.md, opte_targets). These macros keep that definition in one place. -#}

{#- The financial year of a date: the calendar year of the date three months earlier. -#}
{% macro financial_year(date_expr) -%}
    cast(extract(year from {{ dbt.dateadd('month', -3, date_expr) }}) as integer)
{%- endmacro %}

{#- 1 April of financial year `fy_expr`. -#}
{% macro financial_year_start(fy_expr) -%}
    {{ date_from_parts(fy_expr, 4, 1) }}
{%- endmacro %}

{#- The date of year, month and day expressions. dbt.date takes expressions on DuckDB (its
    make_date) but only Python literals on Spark, so Spark gets its own make_date. -#}
{% macro date_from_parts(year_expr, month_expr, day_expr) -%}
    {{ return(adapter.dispatch('date_from_parts', 'opte')(year_expr, month_expr, day_expr)) }}
{%- endmacro %}

{% macro default__date_from_parts(year_expr, month_expr, day_expr) -%}
    {{ dbt.date(year_expr, month_expr, day_expr) }}
{%- endmacro %}

{% macro spark__date_from_parts(year_expr, month_expr, day_expr) -%}
    make_date({{ year_expr }}, {{ month_expr }}, {{ day_expr }})
{%- endmacro %}

{#- Months from April of its financial year to the month of `date_expr`, inclusive (1 to 12). -#}
{% macro financial_year_months_elapsed(date_expr) -%}
    (cast({{ dbt.datediff(financial_year_start(financial_year(date_expr)),
                          dbt.date_trunc('month', date_expr), 'month') }} as integer) + 1)
{%- endmacro %}
