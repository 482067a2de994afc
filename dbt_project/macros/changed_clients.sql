{#
    Per-client incremental models.

    A model whose rows for a client depend only on that client's own data and on D
    recomputes, on an incremental run, only the clients whose rows can have changed since
    its last build. Its rows carry two bookkeeping columns: processed_through (the newest
    input timestamp the build saw, inputs_through()) and computed_as_of (the D of the build).
    changed_clients() lists, against those, the clients

    - whose client-days were recomputed since (new lines, corrections, lines moved to
      another client or day: int_client_daily_revenue.processed_through) or are dated in
      (previous D, D] (delivered before a run for an earlier D): always;
    - with contacts delivered since or dated in (previous D, D] (contacts=true);
    - whose CRM row (manager, region, ...) was delivered since (clients=true);
    - for whom passing time alone changes a figure between the previous D and this one:
      a purchase day p with no purchase day up to its lost date p + threshold + 1, which
      falls in (previous D, D] (lost_dates=true: read from int_purchase_days, so only for
      models downstream of it), a return whose revenue-recovered window ends in it
      (recovered_windows=true: from int_lost_episodes), a contact whose not-converted
      window ends in it (contact_windows=true), a client-day leaving or entering a window
      of revenue before D (revenue_windows);
    - every client when D moved backwards (a re-run for an earlier date) or when the
      model is empty.

    A model asks for the triggers its own figures depend on plus those of the per-client
    models it reads, so a client recomputed upstream is recomputed downstream too. Each
    model compares against its own last build, so a model that failed or was skipped
    catches up on its next run. (Figures per closed quarter are not per-client: see
    quarters_to_rebuild() below.)

    These macros name no model: the calling model passes in every relation they read (its
    own ref of int_client_daily_revenue as revenue, of stg_crm__contacts as contacts, ...),
    so dbt's graph shows the real parents. A trigger is on when its relation is passed:

    - revenue: int_client_daily_revenue (always);
    - contacts: stg_crm__contacts, for contacts delivered or dated in (previous D, D];
    - clients: stg_erp__clients, for CRM rows delivered since;
    - lost_dates: int_purchase_days, for lost dates reached in (previous D, D];
    - recovered_windows: int_lost_episodes, for revenue-recovered windows ending then;
    - contact_windows: stg_crm__contacts, for not-converted windows ending then;
    - revenue_windows: a list of window lengths w in days (not a relation): the clients with
      a client-day dated in (previous D - w, D - w], which a window (D - w, D] lost or a
      window ending at D - w gained as D moved on.

    A client whose recomputation yields no row (e.g. a correction removed its only
    episode) must still lose its old rows: such models end with
    with_placeholders(), which adds one all-null row for such a client; the
    delete+insert then clears the client and a post-hook (delete_placeholders())
    removes the placeholder.
#}

{# The CTE changed_clients (followed by a comma) on an incremental run, nothing on a full
   refresh: the first CTE of every per-client incremental model. Its arguments are those of
   changed_clients(), given where dbt's parser sees every ref. #}
{% macro changed_clients_cte() -%}
    {%- if is_incremental() -%}
        changed_clients as (
            {{ changed_clients(**kwargs) }}
        ),
    {%- endif -%}
{%- endmacro %}


{% macro changed_clients(revenue, contacts=none, clients=none, lost_dates=none, recovered_windows=none,
                         contact_windows=none, revenue_windows=none) -%}
    {%- set threshold_low, threshold_high = lost_threshold_bounds() -%}
    {%- set recovered_window = var('revenue_recovered_window_days') | int -%}
    {%- set not_converted_window = var('not_converted_window_days') | int -%}
    {%- set since, previous_as_of = last_build_marks(['processed_through', 'computed_as_of']) -%}
    select revenue.client_id
    from {{ revenue }} as revenue
    where
        revenue.processed_through > {{ since }}
        or (revenue.order_date > {{ previous_as_of }} and revenue.order_date <= {{ as_of_date() }})

    {% if contacts is not none %}
        union

        -- Two branches rather than one OR: each condition uses its own index.
        select contacts.client_id
        from {{ contacts }} as contacts
        where contacts.loaded_at > {{ since }} and contacts.client_id is not null

        union

        select contacts.client_id
        from {{ contacts }} as contacts
        where
            contacts.contact_date > {{ previous_as_of }}
            and contacts.contact_date <= {{ as_of_date() }}
            and contacts.client_id is not null
    {% endif %}

    {% if clients is not none %}
        union

        select clients.client_id
        from {{ clients }} as clients
        where clients.loaded_at > {{ since }}
    {% endif %}

    {% if lost_dates is not none %}
        union

        -- A purchase day whose lost date falls in (previous D, D] and that no purchase
        -- day follows before it: an episode starts (int_lost_episodes' rule). The range
        -- on purchase_date only lets the index narrow the days to look at.
        select purchase_days.client_id
        from (
            select
                client_id,
                next_purchase_date,
                purchase_date + threshold_days + 1 as lost_date
            from {{ lost_dates }}
            where
                purchase_date between {{ previous_as_of }} - {{ threshold_high + 1 }} + 1
                and {{ as_of_date() }} - {{ threshold_low + 1 }}
        ) as purchase_days
        where
            purchase_days.lost_date > {{ previous_as_of }}
            and purchase_days.lost_date <= {{ as_of_date() }}
            and (purchase_days.next_purchase_date is null or purchase_days.next_purchase_date > purchase_days.lost_date)
    {% endif %}

    {% if recovered_windows is not none %}
        union

        -- A return whose revenue-recovered window ends in (previous D, D].
        select episodes.client_id
        from {{ recovered_windows }} as episodes
        where
            episodes.return_date between {{ previous_as_of }} - {{ recovered_window - 1 }} + 1
            and {{ as_of_date() }} - {{ recovered_window - 1 }}
    {% endif %}

    {% for window_days in revenue_windows or [] %}
        union

        -- A client-day that left a window (D - w, D], or entered one ending at D - w, as D
        -- moved from the previous D to this one.
        select revenue.client_id
        from {{ revenue }} as revenue
        where
            revenue.order_date > {{ previous_as_of }} - {{ window_days }}
            and revenue.order_date <= {{ as_of_date() }} - {{ window_days }}
    {% endfor %}

    {% if contact_windows is not none %}
        union

        select contacts.client_id
        from {{ contact_windows }} as contacts
        where
            contacts.contact_date between {{ previous_as_of }} - {{ not_converted_window }} + 1
            and {{ as_of_date() }} - {{ not_converted_window }}
            and contacts.client_id is not null
    {% endif %}

    union

    -- A constant condition: PostgreSQL skips this scan unless it holds.
    select revenue.client_id
    from {{ revenue }} as revenue
    where
        {{ previous_as_of }} is null
        or {{ as_of_date() }} < {{ previous_as_of }}
{%- endmacro %}


{#
    The newest input timestamp a per-client build sees: stored as processed_through, it
    is where the next incremental run starts looking for changes. revenue, contacts and
    clients: the relations int_client_daily_revenue, stg_crm__contacts, stg_erp__clients.
#}
{% macro inputs_through(revenue, contacts, clients) -%}
    (
        select max(loaded_at) from (
            select max(processed_through) as loaded_at from {{ revenue }}
            union all
            select max(loaded_at) from {{ contacts }}
            union all
            select max(loaded_at) from {{ clients }}
        ) as inputs
    )
{%- endmacro %}


{# The clients an incremental run recomputes (every client on a full refresh). #}
{% macro changed_clients_filter(column) -%}
    {%- if is_incremental() -%}
        {{ column }} in (select changed.client_id from changed_clients as changed)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#
    The final SELECT of a per-client model over its CTE `relation` (client_id first): on
    an incremental run every changed client, with its rows or, when it has none, one row
    of nulls (USING keeps the columns and their order: client_id, then the others).
#}
{% macro with_placeholders(relation) -%}
    {%- if is_incremental() -%}
        select *
        from changed_clients
        left join {{ relation }} using (client_id)
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}


{% macro delete_placeholders(marker_column) -%}
    delete from {{ this }} where {{ marker_column }} is null
{%- endmacro %}


{#
    Per-quarter incremental models (segments, transitions, migrations, deviations).

    A closed quarter's figures only change when client-days dated on or before its end
    change. An incremental run rebuilds (delete+insert on the quarter) the quarters of
    int_quarters (alias quarters_alias) that are not built yet (after the last one
    built), that end on or after the earliest client-day recomputed since the model's
    last build, or all of them when D moved backwards; quarter_changes_post_hook()
    removes the quarters no longer closed as of D. Rows carry computed_as_of and
    processed_through (max processed_through of int_client_daily_revenue at the build).
#}
{% macro quarters_to_rebuild(quarters_alias, revenue, quarter_column='quarter_end') -%}
    {%- if is_incremental() -%}
        {%- set since, previous_as_of, last_quarter = last_build_marks(['processed_through', 'computed_as_of', quarter_column]) -%}
        {{ quarters_alias }}.quarter_end >= {{ earliest_change(revenue, since) }}
        or {{ as_of_date() }} < {{ previous_as_of }}
        -- quarters are built in order and only removed from the end: a quarter after the
        -- last one built is new
        or {{ quarters_alias }}.{{ quarter_column }} > coalesce({{ last_quarter }}, '-infinity'::date)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#
    The earliest order_date among the client-days recomputed since this model's last
    build (since: its processed_through mark), read before the model's SQL is compiled
    and inlined as a literal date (null when nothing changed). "offset 0" keeps
    PostgreSQL from walking an order_date index in the hope of meeting a changed row
    early: it reads the few changed rows through the processed_through index instead.
#}
{% macro earliest_change(revenue, since) -%}
    {%- set changed -%}
        select revenue.order_date
        from {{ revenue }} as revenue
        where revenue.processed_through > {{ since }}
        offset 0
    {%- endset -%}
    {%- if execute and is_incremental() and this is not string and load_relation(this) is not none -%}
        {%- set value = run_query('select min(order_date)::text from (' ~ changed ~ ') as changed').columns[0].values()[0] -%}
        {{- return("cast(null as date)" if value is none else "cast('" ~ value ~ "' as date)") -}}
    {%- endif -%}
    {{- return('(select min(changed.order_date) from (' ~ changed ~ ') as changed)') -}}
{%- endmacro %}


{# Post-hook of a per-quarter model: removes the quarters (of `quarters`, int_quarters) no longer closed. #}
{% macro quarter_changes_post_hook(quarters, quarter_column='quarter_end') -%}
    delete from {{ this }}
    where {{ quarter_column }} not in (select quarters.{{ quarter_column }} from {{ quarters }} as quarters)
{%- endmacro %}


{# The high-water mark of `revenue` (int_client_daily_revenue) at a per-quarter build. #}
{% macro revenue_through(revenue) -%}
    (select max(processed_through) from {{ revenue }})
{%- endmacro %}


{#
    The two bookkeeping columns of an incremental model's rows: computed_as_of (this run's
    D) and processed_through (the newest input timestamp this run saw: of the revenue
    alone for a per-quarter model, of revenue, contacts and clients for a per-client one).
#}
{% macro build_marks(revenue, contacts=none, clients=none) -%}
    {{ as_of_date() }} as computed_as_of,
    {% if contacts is none -%}
        {{ revenue_through(revenue) }}
    {%- else -%}
        {{ inputs_through(revenue, contacts, clients) }}
    {%- endif %} as processed_through
{%- endmacro %}
