-- Every client the warehouse knows of: the clients table plus client ids that only appear
-- in sales lines or contacts (a late-arriving dimension: the client exists with unknown
-- attributes until its row arrives; is_known_client says whether it has). No PII.
--
-- Per-client incremental (macros/changed_clients.sql), plus the clients of managers
-- whose row (team) was delivered since the last build; the mart dim_clients is a view
-- over this table.

{{ config(post_hook=["{{ delete_placeholders('is_known_client') }}"]) }}

with

{% if is_incremental() %}
    changed_clients as (

        {{
            changed_clients(
                revenue=ref('int_client_daily_revenue'),
                contacts=ref('stg_crm__contacts'),
                clients=ref('stg_erp__clients')
            )
        }}

        union

        select clients.client_id
        from {{ ref('stg_erp__clients') }} as clients
        inner join {{ ref('stg_erp__managers') }} as managers
            on clients.manager_id = managers.manager_id
        where managers.loaded_at > {{ last_build_mark('processed_through') }}

    ),
{% endif %}

client_ids as (

    select client_id from {{ ref('stg_erp__clients') }}
    where {{ changed_clients_filter('client_id') }}
    union
    select client_id from {{ ref('int_client_daily_revenue') }}
    where line_count > 0 and {{ changed_clients_filter('client_id') }}
    union
    select client_id from {{ ref('stg_crm__contacts') }}
    where client_id is not null and {{ changed_clients_filter('client_id') }}

),

results as (

    select
        client_ids.client_id,
        clients.client_id is not null as is_known_client,
        clients.region,
        clients.industry,
        clients.manager_id,
        managers.team as manager_team,
        clients.acquisition_channel,
        clients.potential_revenue,
        clients.created_at,
        {{ as_of_date() }} as as_of_date,
        {{ inputs_through(
            ref('int_client_daily_revenue'), ref('stg_crm__contacts'), ref('stg_erp__clients')
        ) }} as processed_through
    from client_ids
    left join {{ ref('stg_erp__clients') }} as clients
        on client_ids.client_id = clients.client_id
    left join {{ ref('stg_erp__managers') }} as managers
        on clients.manager_id = managers.manager_id

)

{{ with_placeholders('results') }}
