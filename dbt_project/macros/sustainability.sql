{#- Week k of off-flow month M is due (MEASURES.md section 13) when the data cut-off >= the last
    day of M + 7k days: every return by week k of every off-flow of M is then in the data. -#}
{% macro sustainability_week_is_due(month_expr, week, cutoff_expr) -%}
    ({{ cutoff_expr }} >= {{ dbt.dateadd('day', '7 * ' ~ week, dbt.last_day(month_expr, 'month')) }})
{%- endmacro %}
