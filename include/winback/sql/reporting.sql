-- winback published reporting layer and the quality gate's audit trail. Idempotent:
-- applied by winback.warehouse.bootstrap() after bootstrap.sql, every time.
--
-- audit.validation_results   one row per quality-gate run (winback.quality.run_gate)
-- reporting.kpi_publications one row per published version of a quarter
-- reporting.*_versions       every published version of the quarterly KPI rows (history)
-- reporting.kpi_quarterly*   views: the latest published version of every quarter (BI reads these)
--
-- Rows get into reporting only through winback.publish.publish_quarter(): one transaction
-- per quarter and version, refused unless a successful gate run validated exactly the rows
-- being published. Published rows are never updated or deleted; a correction is a new version.

-- ---------------------------------------------------------------- audit: quality gate runs
create table if not exists audit.validation_results (
    validation_id       text primary key,
    run_id              text not null,
    suite               text not null,
    as_of               date not null,
    quarter_start       date,
    success             boolean not null,
    failed_blocking     text[] not null default '{}',
    failed_warning      text[] not null default '{}',
    observed            jsonb not null default '{}'::jsonb,
    evaluated           integer not null default 0,
    staged_fingerprint  text,
    data_docs_path      text,
    created_at          timestamptz not null default now()
);
create index if not exists validation_results_suite_quarter
    on audit.validation_results (suite, quarter_start, created_at);
-- Blocking checks that failed but an operator's waiver turned into warnings for this run.
alter table audit.validation_results add column if not exists waived text[] not null default '{}';

-- ---------------------------------------------------------------- audit: waivers
-- An operator accepts a failed blocking check for one as-of date or one quarter, with a
-- reason (winback waive, or the winback_waive DAG from the Airflow UI). A gate run in that
-- scope treats the check as a warning and names the waiver; nothing else bypasses a check.
create table if not exists audit.waivers (
    waiver_id      bigserial primary key,
    check_name     text not null,
    as_of          date,
    quarter_start  date,
    reason         text not null check (length(btrim(reason)) > 0),
    waived_by      text not null,
    waived_at      timestamptz not null default now(),
    expires_at     timestamptz not null,
    check (as_of is not null or quarter_start is not null)
);
create index if not exists waivers_check on audit.waivers (check_name);
comment on table audit.waivers is
    'Failed blocking quality checks an operator accepted for one as-of date or quarter, with who, when and why; '
    'a gate run in that scope, before expires_at, records the check as a waived warning.';
comment on column audit.waivers.waiver_id is 'Identifier of the waiver (named in the gate runs it applied to).';
comment on column audit.waivers.check_name is 'The check waived, e.g. sales_lines.daily_volume.';
comment on column audit.waivers.as_of is 'The as-of date it applies to (runs for that date), or empty.';
comment on column audit.waivers.quarter_start is 'The quarter it applies to (kpi runs for that quarter), or empty.';
comment on column audit.waivers.reason is 'Why the failure is accepted.';
comment on column audit.waivers.waived_by is 'Who accepted it (the operating-system or Airflow user).';
comment on column audit.waivers.waived_at is 'When it was given.';
comment on column audit.waivers.expires_at is 'After this it no longer applies.';

comment on table audit.validation_results is
    'One row per quality-gate run (Great Expectations): which suite, for which as-of date and '
    'quarter, whether it passed (no blocking check failed), the failed checks and the observed values.';
comment on column audit.validation_results.validation_id is
    'Identifier of the gate run; publishing a quarter requires the id of a successful kpi run of it.';
comment on column audit.validation_results.run_id is 'The pipeline run (e.g. the Airflow run id) that ran the gate.';
comment on column audit.validation_results.suite is 'Which set of checks ran: raw (nightly load) or kpi (quarterly figures).';
comment on column audit.validation_results.as_of is 'The as-of date the checked data describes.';
comment on column audit.validation_results.quarter_start is 'First day of the quarter the kpi run validated for publishing (null for raw runs).';
comment on column audit.validation_results.success is 'True when no blocking check failed (warnings do not stop publishing).';
comment on column audit.validation_results.failed_blocking is 'Names of the failed blocking checks.';
comment on column audit.validation_results.failed_warning is 'Names of the failed warning checks.';
comment on column audit.validation_results.waived is
    'Failed blocking checks a waiver (audit.waivers) accepted for this run: they count as warnings.';
comment on column audit.validation_results.observed is 'Per check: severity, outcome, observed value and sample of offending rows.';
comment on column audit.validation_results.evaluated is 'Number of checks evaluated.';
comment on column audit.validation_results.staged_fingerprint is
    'Checksum of the quarter''s unpublished KPI rows at validation time; publishing compares it with the rows it copies.';
comment on column audit.validation_results.data_docs_path is 'The Data Docs page (HTML) of the run.';
comment on column audit.validation_results.created_at is 'When the gate ran.';

-- ---------------------------------------------------------------- reporting: publications
create table if not exists reporting.kpi_publications (
    quarter_start   date not null,
    version         integer not null check (version >= 1),
    published_at    timestamptz not null default now(),
    validation_id   text not null references audit.validation_results (validation_id),
    reason          text not null check (btrim(reason) <> ''),
    kpi_rows        integer not null,
    breakdown_rows  integer not null,
    primary key (quarter_start, version)
);

comment on table reporting.kpi_publications is
    'Publication log: one row per published version of a quarter''s KPI figures, with who validated it and why.';
comment on column reporting.kpi_publications.quarter_start is 'First day of the published calendar quarter.';
comment on column reporting.kpi_publications.version is 'Version of the quarter''s figures: 1 = first publication, higher = corrections.';
comment on column reporting.kpi_publications.published_at is 'When this version was published.';
comment on column reporting.kpi_publications.validation_id is 'The quality-gate run that approved exactly these figures.';
comment on column reporting.kpi_publications.reason is 'Why this version was published (first publication, correction of ...).';
comment on column reporting.kpi_publications.kpi_rows is 'Company-total rows published (always 1).';
comment on column reporting.kpi_publications.breakdown_rows is 'Breakdown rows published (manager, region, industry, sales channel, loss reason).';

-- ---------------------------------------------------------------- reporting: versioned KPI rows
-- Keys and bookkeeping only. The KPI columns (and the latest-version views
-- reporting.kpi_quarterly / reporting.kpi_quarterly_breakdown over these tables, and their
-- column comments) come from the one KPI definition, dbt_project/models/kpi/_kpi__models.yml:
-- winback.kpi_definition.apply_reporting_schema() adds them after this script (bootstrap).
create table if not exists reporting.kpi_quarterly_versions (
    quarter_start          date not null,
    version                integer not null,
    as_of_date             date not null,
    published_at           timestamptz not null,
    validation_id          text not null,
    reason                 text not null,
    primary key (quarter_start, version),
    foreign key (quarter_start, version) references reporting.kpi_publications (quarter_start, version)
);

create table if not exists reporting.kpi_quarterly_breakdown_versions (
    quarter_start          date not null,
    version                integer not null,
    dimension              text not null,
    dimension_value        text not null,
    as_of_date             date not null,
    published_at           timestamptz not null,
    validation_id          text not null,
    reason                 text not null,
    primary key (quarter_start, version, dimension, dimension_value),
    foreign key (quarter_start, version) references reporting.kpi_publications (quarter_start, version)
);

-- ---------------------------------------------------------------- business-language comments
comment on table reporting.kpi_quarterly_versions is
    'Every published version of the quarterly win-back KPIs (company total, one row per quarter and version). '
    'Corrections add a version; earlier versions stay here unchanged.';
comment on table reporting.kpi_quarterly_breakdown_versions is
    'Every published version of the quarterly win-back KPIs broken down by manager, region, industry, '
    'sales channel and loss reason.';

do $$
declare
    rel text;
begin
    -- The views' columns get the same comments (apply_reporting_schema), the KPI columns theirs
    -- from the definition's meta.kpi.comment.
    foreach rel in array array['reporting.kpi_quarterly_versions', 'reporting.kpi_quarterly_breakdown_versions'] loop
        execute format($c$comment on column %s.quarter_start is %L$c$, rel,
            'First day of the calendar quarter the figures describe.');
        execute format($c$comment on column %s.as_of_date is %L$c$, rel,
            'The date up to which data was used to compute the figures.');
        execute format($c$comment on column %s.version is %L$c$, rel,
            'Published version of the quarter''s figures (1 = first publication, higher = corrections).');
        execute format($c$comment on column %s.published_at is %L$c$, rel, 'When this version was published.');
        execute format($c$comment on column %s.reason is %L$c$, rel, 'Why this version was published.');
    end loop;
    foreach rel in array array['reporting.kpi_quarterly_breakdown_versions'] loop
        execute format($c$comment on column %s.dimension is %L$c$, rel,
            'What the figures are broken down by: manager, region, industry, sales_channel or loss_reason.');
        execute format($c$comment on column %s.dimension_value is %L$c$, rel,
            'The manager, region, industry, sales channel or loss reason (''unknown'' when not recorded).');
    end loop;
    foreach rel in array array['reporting.kpi_quarterly_versions', 'reporting.kpi_quarterly_breakdown_versions'] loop
        execute format($c$comment on column %s.validation_id is %L$c$, rel,
            'The quality-gate run that approved this version.');
    end loop;
end $$;

-- ---------------------------------------------------------------- privileges
-- BI reads the published figures (tables and views); nobody but the publisher writes them.
grant select on all tables in schema reporting to winback_bi_reader;
grant select, insert on audit.validation_results to winback_transformer;
-- Waivers are given by operators (winback waive) and read by the gate. Granted here as in
-- bootstrap.sql's grants on all of audit, which ran before this table existed.
grant select on audit.waivers to winback_transformer;
grant select, insert, update, delete on audit.waivers to winback_loader;
grant usage on sequence audit.waivers_waiver_id_seq to winback_loader;
grant select, insert on reporting.kpi_publications, reporting.kpi_quarterly_versions,
    reporting.kpi_quarterly_breakdown_versions to winback_transformer;
revoke update, delete, truncate on reporting.kpi_publications, reporting.kpi_quarterly_versions,
    reporting.kpi_quarterly_breakdown_versions from winback_transformer, winback_bi_reader;
