-- One row per level, financial year Y and pair of measures x versus y (MEASURES.md section 12):
-- proxy_vs_opte (proxy_offflows vs opte_offflows), opte_vs_jot (opte_offflows vs job_outcomes)
-- and proxy_vs_jot (proxy_offflows vs job_outcomes), over the pairs = the opte_monthly rows of
-- that level with month in Y whose y measure is final (OPtE final for proxy_vs_opte, JOT final
-- for the other two). Rows only where there is at least one pair.
--   scale              y_total / x_total (null when x_total is 0)
--   pearson_r          population formula over the pairs; null with fewer than
--                      agreement_min_pairs (3) pairs or zero variance in x or y
--   mean_abs_pct_error mean over the pairs with y > 0 of |scale x x - y| / y
-- The sums are integers, so zero variance (n Sxx = Sx^2) is decided exactly.
{%- set pairs = [
    ('proxy_vs_opte', 'proxy_offflows', 'opte_offflows', 'opte_is_final'),
    ('opte_vs_jot', 'opte_offflows', 'job_outcomes', 'jot_is_final'),
    ('proxy_vs_jot', 'proxy_offflows', 'job_outcomes', 'jot_is_final'),
] %}
with monthly as (
    select * from {{ ref('opte_monthly') }}
),

paired as (
    {%- for pair, x, y, y_is_final in pairs %}
    select
        level,
        financial_year,
        '{{ pair }}' as pair,
        cast({{ x }} as {{ dbt.type_bigint() }}) as x,
        cast({{ y }} as {{ dbt.type_bigint() }}) as y
    from monthly
    where {{ y_is_final }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

sums as (
    select
        level,
        financial_year,
        pair,
        count(*) as pairs,
        sum(x) as x_total,
        sum(y) as y_total,
        sum(x * x) as x_squares,
        sum(y * y) as y_squares,
        sum(x * y) as xy_products
    from paired
    group by level, financial_year, pair
),

moments as (
    select
        sums.*,
        case when x_total > 0 then cast(y_total as {{ type_double() }}) / x_total end as scale,
        -- n x (co)variance sums, exact in integers
        pairs * x_squares - x_total * x_total as n_x_variance,
        pairs * y_squares - y_total * y_total as n_y_variance,
        pairs * xy_products - x_total * y_total as n_covariance
    from sums
),

pair_errors as (
    select
        paired.level,
        paired.financial_year,
        paired.pair,
        abs(moments.scale * paired.x - paired.y) / paired.y as abs_pct_error
    from paired
    inner join moments
        on moments.level = paired.level
        and moments.financial_year = paired.financial_year
        and moments.pair = paired.pair
    where paired.y > 0
      and moments.scale is not null
),

errors as (
    select
        level,
        financial_year,
        pair,
        -- summed as decimals: a sum of doubles depends on the order DuckDB's threads add them in,
        -- so two builds of the same data would publish different last bits; the same bits on
        -- every engine (macros/mean_of_decimals.sql)
        {{ mean_of_decimals('abs_pct_error') }} as mean_abs_pct_error
    from pair_errors
    group by level, financial_year, pair
)

select
    moments.level,
    moments.financial_year,
    moments.pair,
    cast(moments.pairs as {{ dbt.type_bigint() }}) as pairs,
    cast(moments.x_total as {{ dbt.type_bigint() }}) as x_total,
    cast(moments.y_total as {{ dbt.type_bigint() }}) as y_total,
    moments.scale,
    case
        when moments.pairs >= {{ var('agreement_min_pairs') }}
            and moments.n_x_variance > 0 and moments.n_y_variance > 0
        then moments.n_covariance
            / (sqrt(cast(moments.n_x_variance as {{ type_double() }}))
               * sqrt(cast(moments.n_y_variance as {{ type_double() }})))
    end as pearson_r,
    errors.mean_abs_pct_error
from moments
left join errors
    on errors.level = moments.level
    and errors.financial_year = moments.financial_year
    and errors.pair = moments.pair
