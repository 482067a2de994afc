-- Per client with a contact dated <= D: its latest contact (date, manager, channel,
-- outcome) and its latest NPS answer. The one home of "the latest contact": the work
-- list (lost_clients) and the early-warning list (at_risk_clients) read it here.
-- Latest = the greatest contact_at; a tie goes to the greatest contact_id.
--
-- Per-client incremental (macros/changed_clients.sql): a night recomputes the clients
-- with contacts delivered since or dated in (previous D, D].

{{ config(post_hook=["{{ delete_placeholders('last_contact_date') }}"]) }}

with

{% if is_incremental() %}
    changed_clients as (

        {{ changed_clients(revenue=ref('int_client_daily_revenue'), contacts=ref('stg_crm__contacts')) }}

    ),
{% endif %}

contacts as (

    select
        contact_id,
        client_id,
        manager_id,
        contact_at,
        contact_date,
        channel,
        outcome,
        nps_score
    from {{ ref('int_contacts') }}
    where {{ changed_clients_filter('client_id') }}

),

last_contacts as (

    select distinct on (client_id)
        client_id,
        contact_date as last_contact_date,
        manager_id as last_contact_manager_id,
        channel as last_contact_channel,
        outcome as last_contact_outcome
    from contacts
    order by client_id asc, contact_at desc, contact_id desc

),

latest_nps as (

    select distinct on (client_id)
        client_id,
        nps_score as latest_nps_score,
        contact_date as latest_nps_date
    from contacts
    where nps_score is not null
    order by client_id asc, contact_at desc, contact_id desc

),

results as (

    select
        last_contacts.client_id,
        last_contacts.last_contact_date,
        last_contacts.last_contact_manager_id,
        last_contacts.last_contact_channel,
        last_contacts.last_contact_outcome,
        latest_nps.latest_nps_score,
        latest_nps.latest_nps_date,
        {{ build_marks(ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')) }}
    from last_contacts
    left join latest_nps
        on last_contacts.client_id = latest_nps.client_id

)

{{ with_placeholders('results') }}
