-- One row per off-flow, with its priority group, whether the customer's area is disadvantaged
-- at d, and its area-adjusted points (MEASURES.md section 3). Every off-flow is scored,
-- excluded or not; opte_points carries the points of OPtE off-flows only (0 otherwise).
{{ config(materialized=('table' if target.type == 'spark' else 'incremental'), incremental_strategy='append',
          pre_hook="{{ delete_affected_persons() }}", meta={'person_level': true}) }}
-- depends_on: {{ ref('int_persons_affected') }}
with offflows as (
    select * from {{ ref('int_offflows_classified') }}
    where {{ only_affected_persons('person_id') }}
),

benefits as (
    select benefit_code, is_jsa, is_inactive_benefit, customer_group from {{ ref('benefits') }}
),

priority_groups as (
    select priority_group, base_points, disadvantaged_area_points from {{ ref('priority_groups') }}
),

-- a programme start of any code, known or not, in [d - new_deal_lookback_days, d)
recent_programme_starts as (
    select distinct offflows.claim_id
    from offflows
    inner join {{ ref('stg_lake__programme_starts') }} as starts
        on starts.person_id = offflows.person_id
        and starts.start_date >= {{ add_days(-var('new_deal_lookback_days'), 'offflows.offflow_date') }}
        and starts.start_date < offflows.offflow_date
),

-- the customer's (latest) area is on the disadvantaged list valid at d
disadvantaged as (
    select distinct offflows.claim_id
    from offflows
    inner join {{ ref('stg_lake__disadvantaged_areas') }} as areas
        on areas.area_code = offflows.area_code
        and areas.valid_from <= offflows.offflow_date
        and (areas.valid_to is null or offflows.offflow_date <= areas.valid_to)
),

grouped as (
    select
        offflows.*,
        benefits.is_jsa,
        case when offflows.is_lone_parent then 'lone_parent' else benefits.customer_group end
            as customer_group,
        {{ dbt.datediff('offflows.claim_start_date', 'offflows.offflow_date', 'day') }} as claim_duration_days,
        recent_programme_starts.claim_id is not null as had_recent_programme_start,
        disadvantaged.claim_id is not null as in_disadvantaged_area,
        case
            when offflows.is_lone_parent or benefits.is_inactive_benefit then 1
            when benefits.is_jsa and (
                offflows.is_disabled
                or {{ dbt.datediff('offflows.claim_start_date', 'offflows.offflow_date', 'day') }}
                    >= {{ var('long_term_days') }}
                or recent_programme_starts.claim_id is not null
            ) then 2
            when benefits.is_jsa then 3
        end as priority_group
    from offflows
    inner join benefits
        on benefits.benefit_code = offflows.benefit_code
    left join recent_programme_starts
        on recent_programme_starts.claim_id = offflows.claim_id
    left join disadvantaged
        on disadvantaged.claim_id = offflows.claim_id
)

select
    grouped.*,
    priority_groups.base_points,
    case
        when grouped.in_disadvantaged_area then priority_groups.disadvantaged_area_points
        else priority_groups.base_points
    end as points,
    case
        when grouped.is_opte and grouped.in_disadvantaged_area then priority_groups.disadvantaged_area_points
        when grouped.is_opte then priority_groups.base_points
        else 0
    end as opte_points
from grouped
left join priority_groups
    on priority_groups.priority_group = grouped.priority_group
