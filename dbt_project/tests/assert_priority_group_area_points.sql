-- Seed priority_groups holds the disadvantaged-area points of every group (18, 12, 6, 4, 3);
-- they must follow the rule of MEASURES.md section 3: base + max(2, base / 2).
select *
from {{ ref('priority_groups') }}
where disadvantaged_area_points <> base_points + greatest(2, base_points / 2)
