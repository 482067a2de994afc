-- Clients without PII: name, email and phone stay in the raw layer.
with source as (

    select * from {{ source('erp', 'clients') }}

),

renamed as (

    select
        client_id,
        nullif(trim(region), '') as region,
        nullif(trim(industry), '') as industry,
        nullif(manager_id, '') as manager_id,
        nullif(lower(trim(acquisition_channel)), '') as acquisition_channel,
        potential_revenue,
        created_at,
        updated_at,
        _loaded_at as loaded_at
    from source

)

select * from renamed
