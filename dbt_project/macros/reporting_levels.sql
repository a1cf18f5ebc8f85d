{#- The reporting levels (MEASURES.md section 8): each row of `relation` once per level, with
    its unit at that level: office = the reporting office, district, region, national (var
    national_code). Rows keep their own attribution at their date, so an office that moves
    district mid-year counts towards each district for its months there. -#}
{% macro reporting_levels() -%}
    {{ return([
        ('office', 'reporting_office_code'),
        ('district', 'district_code'),
        ('region', 'region_code'),
        ('national', "'" ~ var('national_code') ~ "'"),
    ]) }}
{%- endmacro %}

{% macro union_reporting_levels(relation, columns) -%}
    {%- for level, unit_expr in reporting_levels() %}
    select
        '{{ level }}' as level,
        {{ unit_expr }} as unit_code,
        {{ columns | join(',\n        ') }}
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
