{#- The mean of the non-negative doubles `expr` (a column: it is repeated), as a double that
    every engine and every run computes to the same bits. The definition is exact arithmetic:
      1. each value as an integer u of 1e-18 units, as DuckDB's cast to decimal(38, 18) makes it:
         round(d * 1e18 + 1e-9) with the product and the sum in double arithmetic, rounded half
         up. Here by exact double arithmetic on every engine (the product's whole 2^32s and the
         remainder below 2^32, the remainder rounded half up), because Spark's own cast goes
         through the shortest text of the double (0.097225884606219344 on DuckDB is
         0.097225884606219340 on Spark). The same u as DuckDB's cast for d below 1e10;
      2. the exact sum S of the u (a sum of doubles would depend on the order threads add them);
      3. T = S * 1e6 / count, rounded half up to an integer: the mean in 1e-24 units;
      4. T * 1e-24 correctly rounded to a double (the text `<T>E-24` read as a double: DuckDB's
         and Java's readers both round correctly).
    On the bundled sample and on random data this equals what DuckDB's avg() of the decimals
    gave (the published figures), but avg() itself is not the same on the engines: DuckDB
    divides the decimal sum in 80-bit floating point, Spark in decimal. Null over no values. -#}
{% macro mean_of_decimals(expr) -%}
    {%- set scaled -%} ({{ expr }} * cast(1e18 as {{ type_double() }}) + cast(1e-9 as {{ type_double() }})) {%- endset -%}
    {%- set two_32 -%} cast(4294967296 as {{ type_double() }}) {%- endset -%}
    {%- set high -%} floor({{ scaled }} / {{ two_32 }}) {%- endset -%}
    {%- set low -%} ({{ scaled }} - {{ high }} * {{ two_32 }}) {%- endset -%}
    {%- set units -%}
        (cast({{ high }} as {{ exact_integer() }}) * 4294967296 + cast(floor({{ low }}) as {{ exact_integer() }})
         + case when {{ low }} - floor({{ low }}) >= 0.5 then 1 else 0 end)
    {%- endset -%}
    {%- set mean_units = half_up_quotient('sum(' ~ units ~ ') * 1000000', 'count(' ~ expr ~ ')') -%}
    cast(concat(cast({{ mean_units }} as {{ dbt.type_string() }}), 'E-24') as {{ type_double() }})
{%- endmacro %}

{#- An exact integer type of 38 digits. -#}
{% macro exact_integer() -%}
    {{ return(adapter.dispatch('exact_integer', 'opte')()) }}
{%- endmacro %}

{% macro default__exact_integer() -%} decimal(38, 0) {%- endmacro %}
{% macro duckdb__exact_integer() -%} hugeint {%- endmacro %}

{#- numerator / denominator rounded half up to an integer, exactly, for exact integers
    numerator >= 0 and denominator > 0 (null when either is null). -#}
{% macro half_up_quotient(numerator, denominator) -%}
    {{ return(adapter.dispatch('half_up_quotient', 'opte')(numerator, denominator)) }}
{%- endmacro %}

{#- decimal division keeps 6 decimals (rounded half up), then round() to an integer: the same
    as rounding once for denominators below a million -#}
{% macro default__half_up_quotient(numerator, denominator) -%}
    round(({{ numerator }}) / ({{ denominator }}), 0)
{%- endmacro %}

{#- DuckDB divides decimals in floating point: integer division of hugeints instead -#}
{% macro duckdb__half_up_quotient(numerator, denominator) -%}
    ((2 * ({{ numerator }}) + ({{ denominator }})) // (2 * ({{ denominator }})))
{%- endmacro %}
