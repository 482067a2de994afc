-- Win-back campaigns (data contract v2). Read by the campaign results only, where a
-- contact's campaign_id without a row here still counts (unknown name, dates and cost).
with source as (

    select * from {{ source('crm', 'campaigns') }}

),

renamed as (

    select
        campaign_id,
        nullif(trim(name), '') as campaign_name,
        start_date,
        end_date,
        nullif(trim(target_segment), '') as target_segment,
        cost as campaign_cost,
        _loaded_at as loaded_at
    from source

)

select * from renamed
