{#- Data tests in an incremental build (docs/ARCHITECTURE.md "Incremental builds"). An incremental
    build recomputes only the persons of int_persons_affected; every other person's rows are the
    rows of the previous build, whose tests passed (a build whose tests fail is not released, and
    the build after it is a full refresh). So a data test of a person-level model (meta
    `person_level: true`: its rows belong to one person each, with a person_id column) reads only
    the affected persons' rows in an incremental build, and every row in a full refresh. Only
    models built after int_persons_affected qualify (they depend on it); staging's tests run
    before it and read every row.
    A key such as claim_id belongs to one person in staging (the latest version wins), and a row
    that moves from one person to another changes both persons' fingerprints, so a duplicate or
    an orphan can only appear among affected persons' rows. -#}

{#- The project's version of dbt's get_where_subquery (generic tests read their model through
    it): the test's own `where` config, and in an incremental build the affected-persons filter. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}{%- do conditions.append('(' ~ where ~ ')') -%}{%- endif -%}
    {%- set affected = affected_persons_filter() -%}
    {%- if affected -%}{%- do conditions.append(affected) -%}{%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- `person_id in (the affected persons)` when the current generic test's model is person-level
    and the build is incremental; else the empty string. -#}
{% macro affected_persons_filter(person_id_column='person_id') -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- if tested is none or not tested.config.meta.get('person_level') -%}{{ return('') }}{%- endif -%}
    {#- only a model built after this build's int_persons_affected (never staging, whose tests run
        before it) -#}
    {%- if affected_persons_node().unique_id not in tested.depends_on.nodes -%}{{ return('') }}{%- endif -%}
    {{ return(affected_persons_condition(person_id_column)) }}
{%- endmacro %}

{#- For a singular test of person-level rows (it must depend on int_persons_affected, so that it
    runs after it): `person_id_column in (the affected persons)` in an incremental build, else
    `true`. -#}
{% macro in_affected_persons(person_id_column) -%}
    {{ affected_persons_condition(person_id_column) or 'true' }}
{%- endmacro %}

{% macro affected_persons_condition(person_id_column) -%}
    {%- if not execute or flags.FULL_REFRESH or target.type == 'spark' -%}{{ return('') }}{%- endif -%}
    {%- set node = affected_persons_node() -%}
    {%- set affected = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
    {%- if affected is none -%}{{ return('') }}{%- endif -%}
    {{ return(person_id_column ~ ' in (select person_id from ' ~ affected ~ ')') }}
{%- endmacro %}

{% macro affected_persons_node() -%}
    {{ return(graph.nodes.get('model.' ~ project_name ~ '.int_persons_affected')) }}
{%- endmacro %}
