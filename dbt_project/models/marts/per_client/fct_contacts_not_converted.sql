-- Contacted but not converted: per client and quarter (of the contact), the contacts
-- after which the client had no purchase day within not_converted_window_days
-- (contact_date to contact_date + N, the contact day included: an order placed on the
-- day of the call counts as converted). Only contacts whose window has ended by D are
-- judged. managers_involved lists the managers of those contacts.

-- Per-client incremental (macros/changed_clients.sql); computed_as_of (the D of the run
-- that last computed the client) and processed_through are bookkeeping.

{{ config(post_hook=["{{ delete_placeholders('quarter_start') }}"]) }}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        contacts=ref('int_contacts'),
        contact_windows=ref('int_contacts')
    )
}}

contacts as (

    select
        contact_id,
        client_id,
        manager_id,
        contact_at,
        contact_date,
        channel,
        outcome
    from {{ ref('int_contacts') }}
    where
        contact_date + {{ var('not_converted_window_days') }} <= {{ as_of_date() }}
        and {{ changed_clients_filter('client_id') }}

),

not_converted as (

    select contacts.*
    from contacts
    where not exists (
            select 1
            from {{ ref('int_purchase_days') }} as purchase_days
            where
                contacts.client_id = purchase_days.client_id
                and purchase_days.purchase_date
                between contacts.contact_date and contacts.contact_date + {{ var('not_converted_window_days') }}
        )

),

judged_by_quarter as (

    select
        client_id,
        {{ quarter_start('contact_date') }} as quarter_start,
        count(*) as contacts_judged
    from contacts
    group by client_id, {{ quarter_start('contact_date') }}

),

last_contacts as (

    select distinct on (client_id, {{ quarter_start('contact_date') }})
        client_id,
        {{ quarter_start('contact_date') }} as quarter_start,
        contact_date as last_contact_date,
        manager_id as last_contact_manager_id,
        channel as last_contact_channel,
        outcome as last_contact_outcome
    from not_converted
    order by client_id asc, {{ quarter_start('contact_date') }}, contact_at desc, contact_id desc

),

aggregated as (

    select
        client_id,
        {{ quarter_start('contact_date') }} as quarter_start,
        count(*) as contacts_not_converted,
        min(contact_date) as first_contact_date,
        string_agg(distinct manager_id, ', ' order by manager_id) as managers_involved,
        count(distinct manager_id) as managers_count
    from not_converted
    group by client_id, {{ quarter_start('contact_date') }}

),

results as (

    select
        aggregated.client_id,
        aggregated.quarter_start,
        aggregated.contacts_not_converted,
        judged_by_quarter.contacts_judged,
        aggregated.first_contact_date,
        last_contacts.last_contact_date,
        last_contacts.last_contact_manager_id,
        last_contacts.last_contact_channel,
        last_contacts.last_contact_outcome,
        aggregated.managers_involved,
        aggregated.managers_count,
        {{ build_marks(ref('int_client_daily_revenue'), ref('int_contacts'), ref('int_clients')) }}
    from aggregated
    inner join judged_by_quarter
        on
            aggregated.client_id = judged_by_quarter.client_id
            and aggregated.quarter_start = judged_by_quarter.quarter_start
    inner join last_contacts
        on
            aggregated.client_id = last_contacts.client_id
            and aggregated.quarter_start = last_contacts.quarter_start

)

{{ with_placeholders('results') }}
