{#- The reporting levels are partitions of one population: for every `partition_by` group
    (e.g. month), the sums of `measures` are the same at every level (office sums = district =
    region = national), and every level is present. Fails on the groups where they are not. -#}
{% test level_totals_agree(model, measures, partition_by=['month'], level_column='level',
                           levels=['office', 'district', 'region', 'national']) %}
with totals as (
    select
        {{ partition_by | join(', ') }},
        {{ level_column }} as level,
        {%- for measure in measures %}
        sum({{ measure }}) as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}
    group by {{ partition_by | join(', ') }}, {{ level_column }}
)

select {{ partition_by | join(', ') }}
from totals
group by {{ partition_by | join(', ') }}
having count(distinct level) <> {{ levels | length }}
    {%- for measure in measures %}
    or count(distinct {{ measure }}) > 1
    {%- endfor %}
{% endtest %}
