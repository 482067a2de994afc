-- winback BI access layer: business-readable views in the reporting schema over the dbt marts.
--
-- Applied by winback.report.bi.ensure_bi_views(dsn) AFTER dbt has built the marts (the
-- marts do not exist when bootstrap runs). Idempotent: `create or replace view` only.
-- dbt rebuilds a mart by swapping in a new table and dropping the old one with CASCADE,
-- which drops these views with it: run ensure_bi_views after every dbt build (the report
-- renderer re-creates them when it finds one missing).
--
-- The quarterly KPI figures themselves are NOT here: they are the published, versioned
-- reporting.kpi_quarterly / reporting.kpi_quarterly_breakdown (see reporting.sql). These
-- views are the detail behind them (migration, cohorts, lost clients, win-back, contacts),
-- computed from the marts as of the marts' last build (column data_as_of_date).
-- No PII: the marts hold ids and business attributes only (no names, e-mails, phones,
-- contact notes), and these views add none.

-- ---------------------------------------------------------------- segment migration
create or replace view reporting.segment_migration as
select
    date_trunc('quarter', m.quarter_end)::date as quarter_start,
    m.quarter_end,
    m.segmentation,
    m.from_class as from_segment,
    m.to_class as to_segment,
    m.from_class = m.to_class as is_same_segment,
    m.clients,
    m.window_revenue as revenue_last_4_quarters,
    m.as_of_date as data_as_of_date
from marts.fct_segment_migrations as m;

comment on view reporting.segment_migration is
    'ABC / XYZ / ABC-XYZ segment migration matrix: per quarter, how many clients moved from the segment they had '
    'at the previous quarter end to the segment they have at this quarter end (N = no segment: no revenue).';
comment on column reporting.segment_migration.quarter_start is 'First day of the quarter (the migration is to its last day).';
comment on column reporting.segment_migration.quarter_end is 'Last day of the quarter: the segment the clients moved to is the one of this day.';
comment on column reporting.segment_migration.segmentation is 'Which segmentation: abc (revenue share), xyz (revenue stability) or abc_xyz (the nine combined cells).';
comment on column reporting.segment_migration.from_segment is 'Segment at the end of the previous quarter (N when the client had none).';
comment on column reporting.segment_migration.to_segment is 'Segment at the end of this quarter (N when the client has no revenue in the last 4 quarters).';
comment on column reporting.segment_migration.is_same_segment is 'True when the clients kept their segment.';
comment on column reporting.segment_migration.clients is 'Number of clients that moved from from_segment to to_segment.';
comment on column reporting.segment_migration.revenue_last_4_quarters is 'Their net revenue over the 4 quarters ending with this quarter.';
comment on column reporting.segment_migration.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

create or replace view reporting.manager_segment_moves as
select
    date_trunc('quarter', m.quarter_end)::date as quarter_start,
    m.quarter_end,
    m.manager_id,
    m.segmentation,
    m.clients,
    m.clients_up as clients_moved_up,
    m.clients_down as clients_moved_down,
    m.clients_same as clients_unchanged,
    m.as_of_date as data_as_of_date
from marts.fct_manager_segment_migrations as m;

comment on view reporting.manager_segment_moves is
    'Per quarter and manager: how many of the manager''s clients moved to a better segment, a worse one or kept it '
    '(A > B > C > N, X > Y > Z > N; ABC-XYZ by the ABC letter first).';
comment on column reporting.manager_segment_moves.quarter_start is 'First day of the quarter.';
comment on column reporting.manager_segment_moves.quarter_end is 'Last day of the quarter.';
comment on column reporting.manager_segment_moves.manager_id is 'The clients'' current manager (''unknown'' when none).';
comment on column reporting.manager_segment_moves.segmentation is 'abc, xyz or abc_xyz.';
comment on column reporting.manager_segment_moves.clients is 'The manager''s clients with a segment at this or the previous quarter end.';
comment on column reporting.manager_segment_moves.clients_moved_up is 'Clients that moved to a better segment.';
comment on column reporting.manager_segment_moves.clients_moved_down is 'Clients that moved to a worse segment.';
comment on column reporting.manager_segment_moves.clients_unchanged is 'Clients that kept their segment.';
comment on column reporting.manager_segment_moves.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

-- ---------------------------------------------------------------- return rates by lost cohort
create or replace view reporting.cohort_return_rates as
select
    c.cohort_quarter,
    c.dimension,
    c.dimension_value,
    c.lost_episodes as lost_clients,
    c.returned_within_90 as returned_within_90_days,
    c.returned_within_180 as returned_within_180_days,
    c.returned_within_365 as returned_within_365_days,
    c.return_rate_90 as return_rate_90_days,
    c.return_rate_180 as return_rate_180_days,
    c.return_rate_365 as return_rate_365_days,
    c.window_closed_90 as is_final_90_days,
    c.window_closed_180 as is_final_180_days,
    c.window_closed_365 as is_final_365_days,
    c.as_of_date as data_as_of_date
from marts.fct_cohort_return_rates as c;

comment on view reporting.cohort_return_rates is
    'Return rates by lost cohort: of the clients that became lost in a quarter, the share that came back within '
    '90, 180 and 365 days, overall and per manager, region, industry, sales channel and loss reason.';
comment on column reporting.cohort_return_rates.cohort_quarter is 'First day of the quarter in which the clients became lost.';
comment on column reporting.cohort_return_rates.dimension is 'overall, manager, region, industry, sales_channel or loss_reason.';
comment on column reporting.cohort_return_rates.dimension_value is 'The manager, region, ... (''all'' for overall, ''unknown'' when not recorded).';
comment on column reporting.cohort_return_rates.lost_clients is 'Lost episodes of the cohort (a client lost twice counts twice).';
comment on column reporting.cohort_return_rates.returned_within_90_days is 'Of them, came back within 90 days of becoming lost.';
comment on column reporting.cohort_return_rates.returned_within_180_days is 'Of them, came back within 180 days.';
comment on column reporting.cohort_return_rates.returned_within_365_days is 'Of them, came back within 365 days.';
comment on column reporting.cohort_return_rates.return_rate_90_days is 'returned_within_90_days / lost_clients (empty when no clients).';
comment on column reporting.cohort_return_rates.return_rate_180_days is 'returned_within_180_days / lost_clients.';
comment on column reporting.cohort_return_rates.return_rate_365_days is 'returned_within_365_days / lost_clients.';
comment on column reporting.cohort_return_rates.is_final_90_days is 'True when 90 days have passed for every client of the cohort (the rate can no longer rise).';
comment on column reporting.cohort_return_rates.is_final_180_days is 'True when 180 days have passed for every client of the cohort.';
comment on column reporting.cohort_return_rates.is_final_365_days is 'True when 365 days have passed for every client of the cohort.';
comment on column reporting.cohort_return_rates.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

-- ---------------------------------------------------------------- clients lost per quarter
create or replace view reporting.lost_clients_top as
select
    date_trunc('quarter', e.lost_date)::date as quarter_start,
    row_number() over (
        partition by date_trunc('quarter', e.lost_date)
        order by e.revenue_lost_ttm desc nulls last, e.client_id asc, e.episode_number asc
    ) as revenue_rank,
    e.client_id,
    e.episode_number,
    e.last_purchase_date,
    e.lost_date,
    e.revenue_lost_ttm as revenue_12m_before_loss,
    e.gross_margin_lost_ttm as gross_margin_12m_before_loss,
    e.loss_reason,
    e.manager_id,
    e.region,
    e.industry,
    e.sales_channel,
    coalesce(w.potential_revenue, d.potential_revenue) as potential_revenue,
    case
        when w.client_id is not null then w.potential_source
        when d.potential_revenue is not null then 'crm'
    end as potential_source,
    e.is_contacted_after_loss as contacted_within_30_days,
    e.is_returned as has_returned,
    e.return_date,
    w.winback_rank,
    e.as_of_date as data_as_of_date
from marts.fct_lost_episodes as e
left join marts.lost_clients as w
    on e.client_id = w.client_id and e.episode_number = w.episode_number
left join marts.dim_clients as d
    on e.client_id = d.client_id;

comment on view reporting.lost_clients_top is
    'Clients that became lost, per quarter, ranked by the net revenue they brought in the 12 months before: '
    'why they left, their manager, their potential, whether a manager contacted them and whether they came back.';
comment on column reporting.lost_clients_top.quarter_start is 'First day of the quarter in which the client became lost.';
comment on column reporting.lost_clients_top.revenue_rank is '1 = the biggest loss of the quarter (by revenue in the 12 months before).';
comment on column reporting.lost_clients_top.client_id is 'Client.';
comment on column reporting.lost_clients_top.episode_number is '1 for the client''s first time lost, 2 for the second, ...';
comment on column reporting.lost_clients_top.last_purchase_date is 'The client''s last purchase before becoming lost.';
comment on column reporting.lost_clients_top.lost_date is 'The day the client counted as lost (last purchase + the lost threshold + 1).';
comment on column reporting.lost_clients_top.revenue_12m_before_loss is 'Net revenue of the 365 days before lost_date.';
comment on column reporting.lost_clients_top.gross_margin_12m_before_loss is 'Net revenue minus cost of the 365 days before lost_date.';
comment on column reporting.lost_clients_top.loss_reason is 'Latest loss reason recorded in a contact (''unknown'' when none).';
comment on column reporting.lost_clients_top.manager_id is 'The client''s manager (''unknown'' when none).';
comment on column reporting.lost_clients_top.region is 'The client''s region.';
comment on column reporting.lost_clients_top.industry is 'The client''s industry.';
comment on column reporting.lost_clients_top.sales_channel is 'The channel that brought most of the client''s revenue in the 12 months before.';
comment on column reporting.lost_clients_top.potential_revenue is 'Annual purchase potential: the CRM estimate, else the best 12 months of the client''s history (work list).';
comment on column reporting.lost_clients_top.potential_source is 'crm or history (empty when unknown).';
comment on column reporting.lost_clients_top.contacted_within_30_days is 'A manager contacted the client within 30 days of lost_date.';
comment on column reporting.lost_clients_top.has_returned is 'The client bought again after becoming lost.';
comment on column reporting.lost_clients_top.return_date is 'First purchase after lost_date (empty while still lost).';
comment on column reporting.lost_clients_top.winback_rank is 'Rank on the current win-back work list (empty when no longer lost).';
comment on column reporting.lost_clients_top.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

-- ---------------------------------------------------------------- win-back attribution
create or replace view reporting.winback_attribution as
select
    a.return_quarter as quarter_start,
    a.client_id,
    a.episode_number,
    a.lost_date,
    a.return_date,
    a.days_to_return as days_lost,
    a.revenue_recovered_90d as revenue_first_90_days,
    a.is_attributed,
    a.attributed_contact_id as credited_contact_id,
    a.attributed_contact_date as credited_contact_date,
    a.attributed_manager_id as credited_manager_id,
    a.attributed_channel as credited_channel,
    a.attributed_contact_outcome as credited_contact_outcome,
    a.days_from_contact_to_return,
    a.as_of_date as data_as_of_date
from marts.fct_winback_attribution as a;

comment on view reporting.winback_attribution is
    'Every won-back client (one row per return), credited to the last contact (manager, channel) in the 90 days '
    'before the return, if there was one.';
comment on column reporting.winback_attribution.quarter_start is 'First day of the quarter of the return.';
comment on column reporting.winback_attribution.client_id is 'Client.';
comment on column reporting.winback_attribution.episode_number is 'Which time lost this return ends.';
comment on column reporting.winback_attribution.lost_date is 'The day the client had counted as lost.';
comment on column reporting.winback_attribution.return_date is 'The day the client bought again.';
comment on column reporting.winback_attribution.days_lost is 'return_date - lost_date.';
comment on column reporting.winback_attribution.revenue_first_90_days is 'Net revenue of the first 90 days back (days up to data_as_of_date).';
comment on column reporting.winback_attribution.is_attributed is 'A contact in the 90 days before the return gets the credit.';
comment on column reporting.winback_attribution.credited_contact_id is 'The credited contact.';
comment on column reporting.winback_attribution.credited_contact_date is 'Its date.';
comment on column reporting.winback_attribution.credited_manager_id is 'The manager who made it.';
comment on column reporting.winback_attribution.credited_channel is 'Its channel (call, e-mail, visit, ...).';
comment on column reporting.winback_attribution.credited_contact_outcome is 'Its recorded outcome.';
comment on column reporting.winback_attribution.days_from_contact_to_return is 'return_date - credited_contact_date.';
comment on column reporting.winback_attribution.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

create or replace view reporting.winback_by_manager as
select
    a.return_quarter as quarter_start,
    case when a.is_attributed then coalesce(a.attributed_manager_id, 'unknown') else 'not attributed' end
        as credited_manager_id,
    count(*) as clients_won_back,
    sum(a.revenue_recovered_90d) as revenue_first_90_days,
    percentile_cont(0.5) within group (order by a.days_from_contact_to_return) as median_days_from_contact_to_return,
    max(a.as_of_date) as data_as_of_date
from marts.fct_winback_attribution as a
group by 1, 2;

comment on view reporting.winback_by_manager is
    'Won-back clients per quarter of return, by the manager credited with the win-back (''not attributed'' when no '
    'contact in the 90 days before the return).';
comment on column reporting.winback_by_manager.quarter_start is 'First day of the quarter of the returns.';
comment on column reporting.winback_by_manager.credited_manager_id is 'The credited manager, or ''not attributed''.';
comment on column reporting.winback_by_manager.clients_won_back is 'Returns credited to the manager.';
comment on column reporting.winback_by_manager.revenue_first_90_days is 'Their net revenue in the first 90 days back.';
comment on column reporting.winback_by_manager.median_days_from_contact_to_return is 'Median days from the credited contact to the return.';
comment on column reporting.winback_by_manager.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

create or replace view reporting.winback_by_channel as
select
    a.return_quarter as quarter_start,
    case when a.is_attributed then coalesce(a.attributed_channel, 'unknown') else 'not attributed' end
        as credited_channel,
    count(*) as clients_won_back,
    sum(a.revenue_recovered_90d) as revenue_first_90_days,
    percentile_cont(0.5) within group (order by a.days_from_contact_to_return) as median_days_from_contact_to_return,
    max(a.as_of_date) as data_as_of_date
from marts.fct_winback_attribution as a
group by 1, 2;

comment on view reporting.winback_by_channel is
    'Won-back clients per quarter of return, by the channel of the credited contact (''not attributed'' when no '
    'contact in the 90 days before the return).';
comment on column reporting.winback_by_channel.quarter_start is 'First day of the quarter of the returns.';
comment on column reporting.winback_by_channel.credited_channel is 'The credited contact''s channel, or ''not attributed''.';
comment on column reporting.winback_by_channel.clients_won_back is 'Returns credited to the channel.';
comment on column reporting.winback_by_channel.revenue_first_90_days is 'Their net revenue in the first 90 days back.';
comment on column reporting.winback_by_channel.median_days_from_contact_to_return is 'Median days from the credited contact to the return.';
comment on column reporting.winback_by_channel.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

-- ---------------------------------------------------------------- contacted but not converted
create or replace view reporting.contacts_not_converted as
select
    n.quarter_start,
    n.client_id,
    n.contacts_not_converted,
    n.contacts_judged,
    n.first_contact_date,
    n.last_contact_date,
    n.last_contact_manager_id,
    n.last_contact_channel,
    n.last_contact_outcome,
    n.managers_involved,
    n.managers_count,
    n.as_of_date as data_as_of_date
from marts.fct_contacts_not_converted as n;

comment on view reporting.contacts_not_converted is
    'Clients contacted in a quarter that did not buy within 30 days of the contact, with the managers involved.';
comment on column reporting.contacts_not_converted.quarter_start is 'First day of the quarter of the contacts.';
comment on column reporting.contacts_not_converted.client_id is 'Client.';
comment on column reporting.contacts_not_converted.contacts_not_converted is 'Contacts of the quarter not followed by a purchase within 30 days.';
comment on column reporting.contacts_not_converted.contacts_judged is 'All the client''s contacts of the quarter whose 30 days have passed.';
comment on column reporting.contacts_not_converted.first_contact_date is 'First not-converted contact of the quarter.';
comment on column reporting.contacts_not_converted.last_contact_date is 'Last not-converted contact of the quarter.';
comment on column reporting.contacts_not_converted.last_contact_manager_id is 'Its manager.';
comment on column reporting.contacts_not_converted.last_contact_channel is 'Its channel.';
comment on column reporting.contacts_not_converted.last_contact_outcome is 'Its recorded outcome.';
comment on column reporting.contacts_not_converted.managers_involved is 'The managers of the not-converted contacts (comma-separated ids).';
comment on column reporting.contacts_not_converted.managers_count is 'How many managers were involved.';
comment on column reporting.contacts_not_converted.data_as_of_date is 'The date up to which data was used (the marts'' as-of date).';

-- ---------------------------------------------------------------- privileges
grant select on
    reporting.segment_migration,
    reporting.manager_segment_moves,
    reporting.cohort_return_rates,
    reporting.lost_clients_top,
    reporting.winback_attribution,
    reporting.winback_by_manager,
    reporting.winback_by_channel,
    reporting.contacts_not_converted
to winback_bi_reader;
