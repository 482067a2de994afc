-- winback warehouse bootstrap. Idempotent: running it twice changes nothing.
-- Layers: raw (landing, written by the extract) -> staging / intermediate / marts (dbt)
-- -> kpi_staging (dbt, unpublished) -> reporting (published by the quality gate).
-- audit holds load runs, quarantine, watermarks, landed files and validation results.

create schema if not exists raw;
create schema if not exists audit;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;
create schema if not exists kpi_staging;
create schema if not exists reporting;

-- Roles are group roles (NOLOGIN): grant them to the login users of each job.
do $$
declare r text;
begin
    foreach r in array array['winback_loader', 'winback_transformer', 'winback_bi_reader'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            execute format('create role %I nologin', r);
        end if;
    end loop;
end $$;

-- ---------------------------------------------------------------- raw layer
-- One table per contract entity, typed as in the data contract, keyed by the business
-- key. _extra keeps columns the contract does not know (schema drift), _load_id points
-- to audit.load_runs, _source_object names the table or file the row came from.
-- A key no other table refers to (line_id, contact_id) is compared byte by byte
-- (collate "C"): its order means nothing, and the key build after a first load sorts
-- millions of them, ~25 % faster than in a language's collation.

create table if not exists raw.sales_lines (
    line_id         text collate "C" primary key,
    order_id        text not null,
    client_id       text not null,
    order_date      date not null,
    quantity        numeric not null,
    net_amount      numeric not null,
    cost_amount     numeric,
    product_id      text,
    channel         text,
    status          text not null default 'completed',
    updated_at      timestamptz,
    _extra          jsonb,
    _source_object  text not null,
    _load_id        bigint not null,
    _loaded_at      timestamptz not null default now()
);
-- No B-tree beyond the key on purpose: raw is written in bulk every night and read in
-- bulk by dbt; each extra B-tree would cost the nightly load more than it saves the
-- reads. The one exception is a BRIN index (a few pages, next to free to maintain) on the
-- three dates rows arrive in order of: _loaded_at (the nightly dbt run reads only the rows
-- delivered since its last run), order_date and updated_at (the raw gate's checks of the
-- last days: at 10 M lines each read the whole table, twice, ~11 s a night). One index of
-- three columns: a first load builds it in one pass over the table. (It replaces a BRIN
-- index on _loaded_at alone, dropped once the new one is built: the drop locks the table.)
create index if not exists sales_lines_arrival on raw.sales_lines using brin (_loaded_at, order_date, updated_at);
drop index if exists raw.sales_lines_loaded_at;

create table if not exists raw.clients (
    client_id            text primary key,
    name                 text,
    region               text,
    industry             text,
    manager_id           text,
    acquisition_channel  text,
    potential_revenue    numeric,
    email                text,
    phone                text,
    created_at           timestamptz,
    updated_at           timestamptz,
    _extra               jsonb,
    _source_object       text not null,
    _load_id             bigint not null,
    _loaded_at           timestamptz not null default now()
);

create table if not exists raw.managers (
    manager_id      text primary key,
    name            text,
    team            text,
    active          boolean,
    _extra          jsonb,
    _source_object  text not null,
    _load_id        bigint not null,
    _loaded_at      timestamptz not null default now()
);

create table if not exists raw.contacts (
    contact_id      text collate "C" primary key,
    client_id       text,
    manager_id      text,
    contact_at      timestamptz not null,
    channel         text not null,
    direction       text,
    outcome         text,
    loss_reason     text,
    nps_score       integer check (nps_score between 0 and 10),
    notes           text,
    updated_at      timestamptz,
    _extra          jsonb,
    _source_object  text not null,
    _load_id        bigint not null,
    _loaded_at      timestamptz not null default now()
);
create index if not exists contacts_loaded_at on raw.contacts using brin (_loaded_at);
-- Data contract v2: the campaign and the offer of a contact. Appended to the table rather
-- than written into it above, so that a new warehouse and an upgraded v1 one have the
-- same columns in the same order. Only when one is missing: ALTER TABLE locks the table
-- even when it changes nothing, and every DAG run bootstraps while dbt may be reading it.
do $$
begin
    if (select count(*) from information_schema.columns where table_schema = 'raw' and table_name = 'contacts'
            and column_name in ('campaign_id', 'offer_type', 'offer_value')) < 3 then
        alter table raw.contacts
            add column if not exists campaign_id text,
            add column if not exists offer_type  text,
            add column if not exists offer_value numeric check (offer_value >= 0);
    end if;
end $$;

-- Win-back campaigns (data contract v2, optional). campaign_id keeps the database's
-- collation: contacts refer to it, as sales lines refer to client_id.
create table if not exists raw.campaigns (
    campaign_id     text primary key,
    name            text,
    start_date      date not null,
    end_date        date,
    target_segment  text,
    cost            numeric check (cost >= 0),
    updated_at      timestamptz,
    _extra          jsonb,
    _source_object  text not null,
    _load_id        bigint not null,
    _loaded_at      timestamptz not null default now(),
    constraint campaigns_end_not_before_start check (end_date >= start_date)
);

-- ---------------------------------------------------------------- audit
create table if not exists audit.load_runs (
    load_id           bigserial primary key,
    dag_run_id        text,
    logical_date      date,
    entity            text not null,
    source_kind       text not null,          -- 'sql' or 'files'
    source_object     text,                   -- table or file URL(s) read
    status            text not null default 'running',  -- running / success / failed / rejected
    started_at        timestamptz not null default now(),
    finished_at       timestamptz,
    duration_s        numeric,
    rows_read         bigint not null default 0,
    rows_inserted     bigint not null default 0,
    rows_updated      bigint not null default 0,
    rows_unchanged    bigint not null default 0,
    rows_quarantined  bigint not null default 0,
    watermark_before  timestamptz,
    watermark_after   timestamptz,
    drift_columns     text[],
    unknown_keys      bigint,
    message           text
);

create table if not exists audit.quarantine (
    quarantine_id   bigserial primary key,
    load_id         bigint not null references audit.load_runs (load_id),
    entity          text not null,
    source_kind     text not null,
    source_object   text not null,
    row_number      bigint,
    raw_row         text not null,
    reason          text not null,
    quarantined_at  timestamptz not null default now()
);
create index if not exists quarantine_load on audit.quarantine (load_id);
-- The file line a malformed record starts on (an unterminated quote, a ragged row).
alter table audit.quarantine add column if not exists line_number bigint;

-- Every record of every delivery accounted for, one row per file or table read of a load:
-- records = loaded + unchanged + superseded + quarantined, each counted on its own and
-- checked by the loader before it commits (a mismatch fails the load, naming the file).
create table if not exists audit.load_files (
    load_id        bigint not null references audit.load_runs (load_id),
    delivery       integer not null,         -- order within the load
    source_object  text not null,            -- file URL or table
    records        bigint not null,          -- records read (blank lines are none)
    lines          bigint,                   -- physical lines after the header (files)
    loaded         bigint not null,          -- inserted or updated in raw by this load
    unchanged      bigint not null,          -- raw already held it (identical, or newer)
    superseded     bigint not null,          -- a later version in the same load won
    quarantined    bigint not null,          -- in audit.quarantine
    primary key (load_id, delivery)
);

-- The SQL-source watermark, committed in the same transaction as the rows it covers.
create table if not exists audit.watermarks (
    entity        text primary key,
    watermark     timestamptz not null,
    load_id       bigint not null,
    updated_at    timestamptz not null default now()
);

-- Files loaded from the landing location, by content checksum: a file is loaded once;
-- the same name with new content is a re-delivery and is loaded again.
create table if not exists audit.landed_files (
    file_url      text not null,
    checksum      text not null,
    entity        text not null,
    size_bytes    bigint,
    load_id       bigint not null,
    loaded_at     timestamptz not null default now(),
    primary key (file_url, checksum)
);

-- ---------------------------------------------------------------- privileges
grant usage on schema raw, audit to winback_loader;
grant select, insert, update, delete on all tables in schema raw, audit to winback_loader;
grant usage on all sequences in schema audit to winback_loader;

grant usage on schema raw, audit to winback_transformer;
grant select on all tables in schema raw, audit to winback_transformer;
grant usage, create on schema staging, intermediate, marts, kpi_staging, reporting to winback_transformer;

-- BI reads the marts and the published reporting layer, nothing else (no raw, no PII).
grant usage on schema marts, reporting to winback_bi_reader;
grant select on all tables in schema marts, reporting to winback_bi_reader;
revoke all on schema raw, audit, staging, intermediate, kpi_staging from winback_bi_reader;

-- Tables dbt creates later stay readable by BI: default privileges for objects created
-- by the bootstrapping user and by the transformer role.
alter default privileges in schema marts grant select on tables to winback_bi_reader;
alter default privileges in schema reporting grant select on tables to winback_bi_reader;
alter default privileges for role winback_transformer in schema marts
    grant select on tables to winback_bi_reader;
alter default privileges for role winback_transformer in schema reporting
    grant select on tables to winback_bi_reader;
alter default privileges in schema raw, audit grant select, insert, update, delete on tables to winback_loader;
