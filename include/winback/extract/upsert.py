"""Into ``raw.<entity>`` by business key: the staged rows of a load (``_incoming``) are
upserted (the latest ``updated_at`` wins; identical rows are left untouched, so a re-run
changes nothing), each delivery's rows accounted for; then what follows a load into raw:
the client ids it references that raw does not know yet, and its BRIN summaries."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from winback.extract.audit import LoadResult
from winback.extract.contract import Entity

log = logging.getLogger(__name__)


def upsert(conn: psycopg.Connection, entity: Entity, result: LoadResult, incoming: int, bulk_rows: int) -> None:
    """Update changed rows, then insert new keys: the latest ``updated_at`` wins and
    identical rows are left untouched (so re-running a date changes nothing).

    Two plain statements rather than INSERT ... ON CONFLICT: on a bulk load the
    anti-join insert avoids the speculative insertion per row (measured: ~2x faster).
    When the rows are a large share of the table, its primary key is dropped for the two
    statements and built again after them (see :func:`drop_primary_key`). ``bulk_rows``:
    the rows the bulk path copied straight into raw in this load (its first delivery).

    Each statement reports its rows per delivery, into ``result.files`` (``loaded``,
    ``superseded``); ``audit.check_accounts`` counts the rest on its own.
    """
    business = [*entity.column_names, "_extra"]
    cols = sql.SQL(", ").join(map(sql.Identifier, business))
    target = sql.Identifier("raw", entity.name)
    key = sql.Identifier(entity.key)
    source = sql.SQL("_incoming")
    accounts = {a.delivery: a for a in result.files}
    by_object = {a.source_object: a for a in result.files}
    if result.deliveries > 1:
        # Several deliveries may carry the same key: the latest updated_at wins, then
        # the later delivery (a re-delivered file comes after the original).
        order = sql.SQL("{}, updated_at desc nulls last, _delivery desc").format(key) \
            if entity.has_updated_at else sql.SQL("{}, _delivery desc").format(key)
        incoming = conn.execute(sql.SQL("create temp table _latest on commit drop as "
                                        "select distinct on ({}) * from _incoming order by {}").format(
            key, order)).rowcount
        source = sql.SQL("_latest")
        # The versions that lost to another delivery of this load.
        for delivery, lost in conn.execute(
                "select i._delivery, i.n - coalesce(l.n, 0) from (select _delivery, count(*) n from _incoming"
                " group by 1) i left join (select _delivery, count(*) n from _latest group by 1) l"
                " using (_delivery)"):
            accounts[delivery].superseded += lost
    if not incoming:  # e.g. a clean first load: the bulk path copied every row, nothing is staged
        if bulk_rows:
            accounts[min(accounts)].loaded += bulk_rows
        result.rows_updated = result.rows_inserted = result.rows_unchanged = 0
        return
    primary_key = drop_primary_key(conn, entity, incoming)
    changed = sql.SQL("({}) is distinct from ({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in business),
        sql.SQL(", ").join(sql.SQL("i.{}").format(sql.Identifier(c)) for c in business))
    assignments = sql.SQL(", ").join(
        sql.SQL("{0} = i.{0}").format(sql.Identifier(c)) for c in [*business, "_source_object", "_load_id"])
    same_key = sql.SQL("update {target} as t set {assignments}, _loaded_at = now() from {source} as i "
                       "where t.{key} = i.{key}").format(
        target=target, assignments=assignments, source=source, key=key)
    update = same_key + sql.SQL(" and ") + changed
    if bulk_rows:
        # Keys the bulk path copied in this same load: as among the deliveries of one load,
        # the latest updated_at wins (an empty one loses), then the later delivery; and each
        # such key counts once, as inserted.
        own = sql.SQL(" and t._load_id = {}").format(sql.Literal(result.load_id))
        copied = accounts[min(accounts)]  # the bulk path takes a load's first delivery
        copied.loaded += bulk_rows
        for delivery, count in conn.execute(sql.SQL(
                "select i._delivery, count(*) from {source} i join {target} t using ({key})"
                " where true{own} group by 1").format(source=source, target=target, key=key, own=own)):
            accounts[delivery].superseded += count  # until it is found to have won, below
        latest = sql.SQL(" and (t.updated_at is null or i.updated_at >= t.updated_at)") \
            if entity.has_updated_at else sql.SQL("")
        # Also when only the metadata differs: the later delivery's row is the one kept.
        for delivery, won in per_delivery(conn, same_key + own + latest):
            accounts[delivery].superseded -= won
            accounts[delivery].loaded += won
            copied.loaded -= won
            copied.superseded += won
        update += sql.SQL(" and t._load_id <> {}").format(sql.Literal(result.load_id))
    if entity.has_updated_at:
        update += sql.SQL(" and (i.updated_at is null or t.updated_at is null or i.updated_at >= t.updated_at)")
    result.rows_updated = 0
    for delivery, count in per_delivery(conn, update):
        accounts[delivery].loaded += count
        result.rows_updated += count
    insert = sql.SQL(
        "insert into {target} ({cols}, _source_object, _load_id) "
        "select {cols}, _source_object, _load_id from {source} as i "
        "where not exists (select from {target} as t where t.{key} = i.{key}) returning _source_object").format(
        target=target, cols=cols, source=source, key=key)
    result.rows_inserted = 0
    for source_object, count in conn.execute(
            sql.SQL("with added as ({}) select _source_object, count(*) from added group by 1").format(insert)):
        by_object[source_object].loaded += count
        result.rows_inserted += count
    if primary_key:
        conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
            target, sql.Identifier(primary_key), key))
    # Unchanged: versions whose key raw holds from an earlier load (the same, or newer).
    for delivery, count in conn.execute(sql.SQL(
            "select i._delivery, count(*) from {source} i join {target} t using ({key})"
            " where t._load_id <> {load} group by 1").format(
            source=source, target=target, key=key, load=sql.Literal(result.load_id))):
        accounts[delivery].unchanged += count
    result.rows_unchanged = sum(a.unchanged for a in result.files)


def per_delivery(conn: psycopg.Connection, update: sql.Composable) -> list[tuple[int, int]]:
    """Run an UPDATE of raw from ``_incoming``/``_latest`` (alias ``i``); its rows per delivery."""
    return conn.execute(sql.SQL("with changed as ({} returning i._delivery) "
                                "select _delivery, count(*) from changed group by 1").format(update)).fetchall()


def drop_primary_key(conn: psycopg.Connection, entity: Entity, incoming: int) -> str | None:
    """Drop the raw table's primary key when the incoming rows are at least as many as the
    rows it holds (the first load, a backfill), and return its name for :func:`upsert` to
    build it again: one sort of all keys instead of one index insertion per row, as
    "Populating a Database" in the PostgreSQL manual advises. Dropping it locks the table
    against readers until the commit; a nightly load (a few rows next to the table)
    keeps the index and takes no such lock. Only the table's owner may drop it: a login
    with just winback_loader's grants keeps it too. Returns None when the key stays."""
    key = conn.execute(
        "select c.conname, t.reltuples, pg_has_role(t.relowner, 'USAGE')"
        " from pg_constraint c join pg_class t on t.oid = c.conrelid"
        " where c.conrelid = %s::regclass and c.contype = 'p'", (f"raw.{entity.name}",)).fetchone()
    # reltuples: the estimate of the last VACUUM, ANALYZE or index build; -1 if none yet.
    if key is None or incoming < key[1] or not key[2]:
        return None
    name = key[0]
    # The index build sorts every key: let it do so in memory.
    conn.execute("set local maintenance_work_mem = '512MB'")
    conn.execute(sql.SQL("alter table {} drop constraint {}").format(
        sql.Identifier("raw", entity.name), sql.Identifier(name)))
    return name


def references_clients(entity: Entity) -> bool:
    """Whether the entity's rows name a client (whose row in raw.clients may come later)."""
    return "client_id" in entity.column_names and entity.name != "clients"


def count_unknown_keys(conn: psycopg.Connection, entity: Entity, bulk_rows: int) -> int | None:
    """Client ids referenced by this load that have no row in raw.clients (late-arriving)."""
    if not references_clients(entity):
        return None
    ids = sql.SQL("select distinct client_id from _incoming where client_id is not null")
    if bulk_rows:  # and those of the rows the bulk path copied (collected while checking them)
        ids = sql.SQL("select client_id from _incoming where client_id is not null"
                      " union select client_id from _copied_client_ids")
    # The distinct ids first: the anti-join then probes raw.clients once per client, not per row.
    return conn.execute(sql.SQL(
        "select count(*) from ({}) i where not exists (select 1 from raw.clients c where c.client_id = i.client_id)"
    ).format(ids)).fetchone()[0]


def summarize_brin(conn: psycopg.Connection, entity: Entity) -> None:
    """Summarize the page ranges this load filled in the table's BRIN index (its time columns).

    The nightly dbt run finds the rows delivered since its last run through that index;
    ranges nobody summarized yet (autovacuum does it later) are read whole, which after a
    bulk load means the whole table. Needs ownership (or MAINTAIN); without it dbt is
    only slower until autovacuum catches up. Runs after the load's commit (``conn`` in
    autocommit mode).
    """
    indexes = conn.execute(
        "select i.indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indexrelid "
        "join pg_am a on a.oid = c.relam where i.indrelid = %s::regclass and a.amname = 'brin'",
        (f"raw.{entity.name}",)).fetchall()
    for (index,) in indexes:
        try:
            conn.execute("select brin_summarize_new_values(%s::regclass)", (index,))
        except psycopg.errors.InsufficientPrivilege:
            log.info("not allowed to summarize %s; autovacuum will", index)
