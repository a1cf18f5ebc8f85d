{#- Model-level invariant: every row satisfies `expression` (fails on the rows that do not).
    Our own copy of the familiar dbt_utils test, as dbt packages cannot be downloaded here. -#}
{% test expression_is_true(model, expression, where=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where %} and ({{ where }}){% endif %}
{% endtest %}
