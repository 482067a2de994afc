-- Per client with a contact dated <= D: its latest contact (date, manager, channel,
-- outcome) and its latest NPS answer. The one home of "the latest contact": the work
-- list (lost_clients) and the early-warning list (at_risk_clients) read it here.
-- Latest = the greatest contact_at; a tie goes to the greatest contact_id.
--
-- Per-client incremental (macros/changed_clients.sql): a night recomputes the clients
-- with contacts delivered since or dated in (previous D, D].

{{ config(post_hook=["{{ delete_placeholders('last_contact_date') }}"]) }}

with

{{ changed_clients_cte(revenue=ref('int_client_daily_revenue'), contacts=ref('stg_crm__contacts')) }}

results as (

    -- One pass: each column is the value of the latest contact (the latest answer for NPS).
    select
        client_id,
        (array_agg(contact_date order by contact_at desc, contact_id desc))[1] as last_contact_date,
        (array_agg(manager_id order by contact_at desc, contact_id desc))[1] as last_contact_manager_id,
        (array_agg(channel order by contact_at desc, contact_id desc))[1] as last_contact_channel,
        (array_agg(outcome order by contact_at desc, contact_id desc))[1] as last_contact_outcome,
        (
            array_agg(nps_score order by contact_at desc, contact_id desc) filter (where nps_score is not null)
        )[1] as latest_nps_score,
        (
            array_agg(contact_date order by contact_at desc, contact_id desc) filter (where nps_score is not null)
        )[1] as latest_nps_date,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from {{ ref('int_contacts') }}
    where {{ changed_clients_filter('client_id') }}
    group by client_id

)

{{ with_placeholders('results') }}
