-- Every client the warehouse knows of: the clients table plus client ids that only appear
-- in sales lines or contacts (a late-arriving dimension: the client exists with unknown
-- attributes until its row arrives; is_known_client says whether it has). No PII.
--
-- Per-client incremental (macros/changed_clients.sql); a client whose manager's row
-- (team) was delivered since the last build counts as changed (int_clients.loaded_at).

{{ config(post_hook=["{{ delete_placeholders('is_known_client') }}"]) }}

with

{{
    changed_clients_cte(
        revenue=ref('int_client_daily_revenue'),
        contacts=ref('int_contacts'),
        clients=ref('int_clients')
    )
}}

client_ids as (

    {% if is_incremental() %}
        -- The changed clients that a source knows: a lookup per client and source (the
        -- union below would read and sort every client-day of the changed clients).
        select changed.client_id
        from changed_clients as changed
        where
            exists (
                select from {{ ref('int_clients') }} as clients
                where clients.client_id = changed.client_id
            )
            or exists (
                select from {{ ref('int_client_daily_revenue') }} as revenue
                where revenue.client_id = changed.client_id and revenue.line_count > 0
            )
            or exists (
                select from {{ ref('int_contacts') }} as contacts
                where contacts.client_id = changed.client_id
            )
    {% else %}
        select client_id from {{ ref('int_clients') }}
        union
        select client_id from {{ ref('int_client_daily_revenue') }}
        where line_count > 0
        union
        select client_id from {{ ref('int_contacts') }}
    {% endif %}

),

results as (

    select
        client_ids.client_id,
        clients.client_id is not null as is_known_client,
        clients.region,
        clients.industry,
        clients.manager_id,
        clients.manager_team,
        clients.acquisition_channel,
        clients.potential_revenue,
        clients.created_at,
        {{ build_marks(ref('int_client_daily_revenue'), ref('int_contacts'), ref('int_clients')) }}
    from client_ids
    left join {{ ref('int_clients') }} as clients
        on client_ids.client_id = clients.client_id

)

{{ with_placeholders('results') }}
