-- CRM contacts without the free-text notes (PII possible). contact_date is the UTC
-- calendar date of contact_at: every day-based contact rule uses it.
--
-- A table, unlike the other staging models (views): the nightly run's per-client models
-- look contacts up by client, by contact date and by delivery time, and raw keeps no
-- index beyond its key (include/winback/sql/bootstrap.sql), so this copy carries them.
-- Incremental: a night copies only the versions delivered since the last run (found
-- through the BRIN index on raw.contacts._loaded_at); raw never deletes a contact.
-- New contract columns are appended (data contract v2: campaign_id, offer_type,
-- offer_value) rather than refused like elsewhere: contacts loaded before the upgrade had
-- no such columns in raw either, so their rows stay right with nulls.

{{
    config(
        materialized='incremental',
        unique_key='contact_id',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['contact_id'], 'unique': True},
            {'columns': ['client_id', 'contact_date']},
            {'columns': ['contact_date']},
            {'columns': ['loaded_at']}
        ]
    )
}}

with source as (

    select * from {{ source('crm', 'contacts') }}
    {% if is_incremental() %}
        where _loaded_at > {{ last_build_mark('loaded_at') }}
    {% endif %}

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
        nullif(campaign_id, '') as campaign_id,
        nullif(lower(trim(offer_type)), '') as offer_type,
        offer_value,
        updated_at,
        _loaded_at as loaded_at
    from source

)

select * from renamed
