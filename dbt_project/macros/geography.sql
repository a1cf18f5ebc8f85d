{#- Attribution of a row to the `offices` row of its office valid at a date (MEASURES.md
    section 8). Use as:
        select ..., {{ geography_columns('c.office_code') }}
        from claims as c
        {{ join_office_period('c.office_code', 'c.claim_end_date') }}
    An office code with no valid row is its own reporting office, in district and region
    UNALLOCATED. -#}
{% macro join_office_period(office_col, date_col, alias='office_period') %}
    left join {{ ref('int_office_periods') }} as {{ alias }}
        on {{ alias }}.office_code = {{ office_col }}
        and {{ date_col }} >= {{ alias }}.period_start
        and ({{ alias }}.period_end is null or {{ date_col }} <= {{ alias }}.period_end)
{% endmacro %}

{% macro geography_columns(office_col, alias='office_period') %}
    coalesce({{ alias }}.reporting_office_code, {{ office_col }}) as reporting_office_code,
    coalesce({{ alias }}.district_code, '{{ var("unallocated_code") }}') as district_code,
    coalesce({{ alias }}.region_code, '{{ var("unallocated_code") }}') as region_code,
    {{ alias }}.office_code is not null as is_office_allocated
{% endmacro %}
