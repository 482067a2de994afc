-- Sales managers (the name stays in the raw layer: BI shows ids and teams).
with source as (

    select * from {{ source('erp', 'managers') }}

),

renamed as (

    select
        manager_id,
        nullif(trim(team), '') as team,
        active as is_active,
        _loaded_at as loaded_at
    from source

)

select * from renamed
