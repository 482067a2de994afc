-- Sales lines, typed and normalised. Cancelled lines are kept and flagged (is_cancelled):
-- every revenue figure downstream excludes them (net revenue excludes status 'cancelled').
-- No as-of filter here: the incremental daily model is independent of D; models that
-- compute figures filter on D.
--
-- One plain SELECT, without the usual import CTEs on purpose: PostgreSQL does not
-- flatten a view whose query has a WITH clause into a join, so a join by line_id (the
-- nightly run looks up a few thousand lines) would scan the whole raw table instead of
-- using its key.

select
    line_id,
    order_id,
    client_id,
    order_date,
    quantity,
    net_amount,
    cost_amount,
    product_id,
    coalesce(nullif(lower(trim(channel)), ''), 'unknown') as channel,
    coalesce(nullif(lower(trim(status)), ''), 'completed') as status,
    coalesce(lower(trim(status)) = 'cancelled', false) as is_cancelled,
    updated_at,
    _load_id as load_id,
    _loaded_at as loaded_at
from {{ source('erp', 'sales_lines') }}
