{#- dbt's date macros on Spark, each argument written once. dbt-spark's own dateadd and datediff
    wrap every argument in assert_not_null, which writes it three times, and its dateadd uses
    the wrapped argument four times: nested date arithmetic (a dateadd of a last_day, a datediff
    of date_truncs of dateadds) compiled to queries of tens of kilobytes that Spark took minutes
    to analyse and plan. The results are those of dbt-spark's macros (same types, same values)
    on dates and timestamps, the only arguments the project gives them. -#}

{#- A timestamp, as dbt-spark's dateadd returns (a date argument at midnight, session time zone):
    Spark's timestampadd keeps the time of day and, for months, clamps to the month's last day
    like dbt-spark's add_months; weeks are 7 days, quarters 3 months, years 12 months, the
    interval times that cast to int, as there. -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- set units = {'day': ('DAY', 1), 'week': ('DAY', 7), 'month': ('MONTH', 1), 'quarter': ('MONTH', 3),
                     'year': ('MONTH', 12), 'hour': ('HOUR', 1), 'minute': ('MINUTE', 1),
                     'second': ('SECOND', 1)} -%}
    {%- set part = datepart | lower -%}
    {%- if part not in units -%}
        {{ exceptions.raise_compiler_error("dateadd: datepart '" ~ datepart ~ "' is not implemented on Spark") }}
    {%- endif -%}
    {%- set unit, multiplier = units[part] -%}
    {%- set quantity = interval if multiplier == 1 else '(' ~ interval ~ ') * ' ~ multiplier -%}
    timestampadd({{ unit }}, cast({{ quantity }} as int), {{ from_date_or_timestamp }})
{%- endmacro %}

{#- Whole days, months, quarters or years from first_date to second_date, counted as boundaries
    crossed, as DuckDB's datediff counts them (dbt-spark's month count from months_between says
    2 from 31 January to 28 February). -#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- set part = datepart | lower -%}
    {%- if part == 'day' -%}
        datediff(date({{ second_date }}), date({{ first_date }}))
    {%- elif part == 'month' -%}
        ((year({{ second_date }}) - year({{ first_date }})) * 12 + month({{ second_date }}) - month({{ first_date }}))
    {%- elif part == 'quarter' -%}
        ((year({{ second_date }}) - year({{ first_date }})) * 4 + quarter({{ second_date }}) - quarter({{ first_date }}))
    {%- elif part == 'year' -%}
        (year({{ second_date }}) - year({{ first_date }}))
    {%- else -%}
        {{ exceptions.raise_compiler_error("datediff: datepart '" ~ datepart ~ "' is not implemented on Spark") }}
    {%- endif -%}
{%- endmacro %}
