-- CRM contacts without the free-text notes (PII possible). contact_date is the UTC
-- calendar date of contact_at: every day-based contact rule uses it.
with source as (

    select * from {{ source('crm', 'contacts') }}

),

renamed as (

    select
        contact_id,
        nullif(client_id, '') as client_id,
        nullif(manager_id, '') as manager_id,
        contact_at,
        cast(contact_at at time zone 'UTC' as date) as contact_date,
        lower(trim(channel)) as channel,
        nullif(lower(trim(direction)), '') as direction,
        nullif(lower(trim(outcome)), '') as outcome,
        nullif(lower(trim(loss_reason)), '') as loss_reason,
        nps_score,
        updated_at,
        _loaded_at as loaded_at
    from source

)

select * from renamed
