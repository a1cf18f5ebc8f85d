{#- RAG status of an achievement against a target (MEASURES.md section 8), decided in exact
    arithmetic: the ratio achieved / target is passed as two products, `achieved_expr` and
    `target_expr`, whose quotient it is (multiply before dividing, no rounding). `green` when the
    ratio >= 1, `amber` when >= var rag_amber_floor (0.95), else `red`; null when `null_when`
    holds (no target, a target of 0, or nothing to compare). -#}
{% macro rag_status(achieved_expr, target_expr, null_when) -%}
    case
        when {{ null_when }} then null
        when {{ achieved_expr }} >= {{ target_expr }} then 'green'
        when {{ achieved_expr }}
            >= cast({{ var('rag_amber_floor') }} as decimal(18, 6)) * {{ target_expr }} then 'amber'
        else 'red'
    end
{%- endmacro %}
