"""Load deliveries into the raw layer: validate, COPY, de-duplicate, upsert, audit.

One call loads every delivery of one entity in ONE warehouse transaction:

1. each delivery streams by COPY, in bounded chunks, into a temporary text landing table
   (rows COPY cannot take — ragged, not UTF-8 — go to a temporary reject table with their
   reason); each chunk is checked and cast into the temporary ``_incoming`` table before
   the next one lands, bad rows into the rejects (see ``validation``: a cheap pass first,
   the careful one only when a row fails it);
2. duplicate keys inside one delivery are moved to the rejects (the first one stays);
3. if the quarantined share passes the limit, only the quarantine rows are kept and the
   run fails; otherwise the rows are upserted into ``raw.<entity>`` by business key (the
   latest ``updated_at`` wins; identical rows are left untouched, so a re-run changes
   nothing), and the quarantine rows, landed files and watermark are written;
4. commit. A crash anywhere before the commit leaves the raw tables as they were.

The audit row in ``audit.load_runs`` is written on its own connection, so a failed run
is recorded as failed even though its data was rolled back.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from winback.extract.contract import Entity
from winback.extract.sources import Delivery
from winback.extract.validation import DeliveryColumns, MissingColumnsError

log = logging.getLogger(__name__)


def _raw(values: list[str]) -> str:
    """A row for the quarantine, readable even when it holds bytes that are not UTF-8."""
    shown = [v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for v in values]
    return json.dumps(shown, ensure_ascii=False)


class QuarantineLimitExceeded(RuntimeError):
    """Too large a share of the rows broke the contract: the run loads nothing."""


class DeliveryRejected(RuntimeError):
    """At least one delivery was rejected whole (e.g. a missing required column)."""


class _NotAllRowsPassed(Exception):
    """The cheap checks held back a row: the careful checks must find out why."""


@dataclass
class LoadResult:
    entity: str
    load_id: int
    source_kind: str
    deliveries: int = 0
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    watermark_before: dt.datetime | None = None
    watermark_after: dt.datetime | None = None
    drift_columns: list[str] = field(default_factory=list)
    unknown_keys: int | None = None
    rejected: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def summary(self) -> dict:
        data = asdict(self)
        for key in ("watermark_before", "watermark_after"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def copy_chunk(cur: psycopg.Cursor, statement: sql.Composable, chunk: bytes | list[tuple]) -> None:
    """COPY one bounded chunk: CSV bytes, or rows (a separate function so tests can inject a failure)."""
    with cur.copy(statement) as copy:
        if isinstance(chunk, bytes):
            copy.write(chunk)
        else:
            for row in chunk:
                copy.write_row(row)


class RawLoader:
    """Loads the deliveries of one entity into ``raw.<entity>``; see the module docstring."""

    def __init__(self, warehouse_dsn: str, entity: Entity, *, as_of: dt.date, timezone: str,
                 quarantine_max_share: float, dag_run_id: str | None = None):
        self.dsn = warehouse_dsn
        self.entity = entity
        self.as_of = as_of
        self.timezone = timezone
        self.max_share = quarantine_max_share
        self.dag_run_id = dag_run_id

    # ---- audit (own autocommit connection) ----------------------------------------------
    def _audit_start(self, source_kind: str) -> LoadResult:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            load_id = conn.execute(
                "insert into audit.load_runs (dag_run_id, logical_date, entity, source_kind) "
                "values (%s, %s, %s, %s) returning load_id",
                (self.dag_run_id, self.as_of, self.entity.name, source_kind),
            ).fetchone()[0]
        return LoadResult(entity=self.entity.name, load_id=load_id, source_kind=source_kind)

    def _audit_finish(self, result: LoadResult, status: str, message: str | None, objects: list[str]) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                """update audit.load_runs set status = %s, message = %s, finished_at = now(),
                       duration_s = %s, source_object = %s, rows_read = %s, rows_inserted = %s,
                       rows_updated = %s, rows_unchanged = %s, rows_quarantined = %s,
                       watermark_before = %s, watermark_after = %s, drift_columns = %s, unknown_keys = %s
                   where load_id = %s""",
                (status, message, round(result.duration_s, 3), ", ".join(objects)[:4000] or None,
                 result.rows_read, result.rows_inserted, result.rows_updated, result.rows_unchanged,
                 result.rows_quarantined, result.watermark_before, result.watermark_after,
                 result.drift_columns or None, result.unknown_keys, result.load_id),
            )

    # ---- the load -----------------------------------------------------------------------
    def load(self, deliveries: Iterable[Delivery], source_kind: str,
             watermark_before: dt.datetime | None = None) -> LoadResult:
        started = time.monotonic()
        result = self._audit_start(source_kind)
        result.watermark_before = watermark_before
        objects: list[str] = []
        try:
            with psycopg.connect(self.dsn) as conn:
                conn.execute(sql.SQL("set timezone = {}").format(sql.Literal(self.timezone)))
                # The checks compare dates with their ISO text output (see validation).
                conn.execute("set datestyle = 'ISO'")
                # The de-duplication and the distinct-key counts sort or hash whole loads: keep them in memory.
                conn.execute("set local work_mem = '256MB'")
                self._create_temp_tables(conn)
                landed = []
                incoming = 0  # rows in _incoming, counted as they move rather than by a scan
                for index, delivery in enumerate(deliveries):
                    objects.append(delivery.source_object)
                    try:
                        incoming += self._stage(conn, delivery, index, result)
                    except MissingColumnsError as exc:
                        result.rejected.append(str(exc))
                        log.error("%s", exc)
                        continue
                    result.deliveries += 1
                    if delivery.checksum:
                        landed.append(delivery)
                incoming -= self._reject_duplicates(conn, incoming)
                result.rows_quarantined = conn.execute("select count(*) from _rejects").fetchone()[0]
                self._store_quarantine(conn, result.load_id, source_kind)
                share = result.rows_quarantined / result.rows_read if result.rows_read else 0.0
                if share > self.max_share:
                    conn.commit()  # keep the quarantine rows for diagnosis, load nothing else
                    raise QuarantineLimitExceeded(
                        f"{self.entity.name}: {result.rows_quarantined} of {result.rows_read} rows "
                        f"({share:.1%}) broke the contract, above the limit of {self.max_share:.1%} "
                        "(WINBACK_QUARANTINE_MAX_SHARE); nothing was loaded, see audit.quarantine "
                        f"where load_id = {result.load_id}"
                    )
                self._upsert(conn, result, incoming)
                self._record_landed_files(conn, landed, result.load_id)
                self._advance_watermark(conn, result)
                result.unknown_keys = self._count_unknown_keys(conn)
                conn.commit()
                self._summarize_brin(conn)
        except BaseException as exc:
            result.duration_s = time.monotonic() - started
            self._audit_finish(result, "failed", f"{type(exc).__name__}: {exc}"[:2000], objects)
            raise
        result.duration_s = time.monotonic() - started
        status = "rejected" if result.rejected else "success"
        self._audit_finish(result, status, "; ".join(result.rejected) or None, objects)
        log.info("loaded %s: %s", self.entity.name, result.summary())
        if result.rejected:
            raise DeliveryRejected("; ".join(result.rejected))
        return result

    def _create_temp_tables(self, conn: psycopg.Connection) -> None:
        raw = sql.Identifier("raw", self.entity.name)
        conn.execute(sql.SQL(
            "create temp table _incoming (like {} including defaults) on commit drop").format(raw))
        conn.execute("alter table _incoming add column _row_number bigint, add column _delivery integer")
        conn.execute(
            "create temp table _rejects (source_object text, row_number bigint, raw_row text, reason text)"
            " on commit drop")

    def _stage(self, conn: psycopg.Connection, delivery: Delivery, index: int, result: LoadResult) -> int:
        """COPY the delivery's CSV chunk by chunk into a text landing table, checking and moving
        each chunk to ``_incoming`` before the next: the landing table stays one chunk small, and
        a bad row sends only its own chunk to the careful checks. Returns the rows moved."""
        columns = DeliveryColumns(self.entity, delivery.header, delivery.source_object)
        result.drift_columns.extend(c for c in columns.drift if c not in result.drift_columns)
        names = sql.SQL(", ").join(map(sql.Identifier, columns.landing))
        conn.execute("drop table if exists _landing")
        conn.execute(sql.SQL(
            "create temp table _landing (_row_number bigint generated by default as identity, {}) on commit drop"
        ).format(sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(n)) for n in columns.landing)))
        sequence = conn.execute("select pg_get_serial_sequence('_landing', '_row_number')").fetchone()[0]
        fast = sql.SQL("copy _landing ({}) from stdin with (format csv)").format(names)
        slow = sql.SQL("copy _landing (_row_number, {}) from stdin").format(names)
        rows = moved = 0
        with conn.cursor() as cur:
            for chunk in delivery.chunks:
                try:
                    with conn.transaction():  # a savepoint: a chunk COPY can fail on its own
                        copy_chunk(cur, fast, chunk)
                    rows += cur.rowcount
                    landed = cur.rowcount
                except psycopg.errors.DataError:  # a ragged row or bytes that are not UTF-8 somewhere
                    rows, landed = self._stage_row_by_row(cur, slow, chunk, rows, len(columns.landing),
                                                          delivery.source_object)
                    # The rolled-back COPY used up row numbers: the next chunk continues after this one.
                    conn.execute(sql.SQL("alter sequence {} restart with {}").format(
                        sql.SQL(sequence), sql.Literal(rows + 1)))
                moved += self._move(conn, columns, landed, delivery.source_object, result.load_id, index)
                conn.execute("truncate _landing")
        result.rows_read += rows
        return moved

    def _move(self, conn: psycopg.Connection, columns: DeliveryColumns, landed: int, source: str, load_id: int,
              index: int) -> int:
        """Check and cast the landed rows into ``_incoming``: the cheap pass, and the careful
        one (which also finds the reasons) only if a row did not pass it. Returns the rows moved."""
        if not landed:
            return 0
        try:
            with conn.transaction():
                moved = conn.execute(columns.fast_move_statement(self.as_of, source, load_id, index)).rowcount
                if moved != landed:
                    raise _NotAllRowsPassed
            return moved
        except (psycopg.errors.DataError, _NotAllRowsPassed):
            pass  # a value that does not cast, or a row that broke a check: rolled back
        return conn.execute(columns.move_statement(self.as_of, source, load_id, index)).rowcount

    def _stage_row_by_row(self, cur: psycopg.Cursor, statement: sql.Composable, chunk: bytes, rows: int,
                          width: int, source: str) -> tuple[int, int]:
        """The slow path for a chunk COPY refused: parse it in Python, reject the bad rows.
        Returns the rows read so far and the rows of this chunk landed."""
        good: list[tuple] = []
        bad: list[tuple] = []
        text = chunk.decode("utf-8", errors="surrogateescape")
        reader = csv.reader(io.StringIO(text, newline=""))
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                rows += 1
                bad.append((source, rows, json.dumps([]), f"malformed CSV: {exc}"))
                continue
            if not values:
                continue  # a blank line is not a row
            rows += 1
            joined = "\x1f".join(values)
            if len(values) != width:
                bad.append((source, rows, _raw(values), f"row has {len(values)} fields, the header has {width}"))
            elif "\x00" in joined:
                bad.append((source, rows, _raw(values), "NUL byte in a value"))
            else:
                try:
                    joined.encode("utf-8")
                except UnicodeEncodeError:
                    bad.append((source, rows, _raw(values), "undecodable bytes (the file is not valid UTF-8)"))
                    continue
                good.append((rows, *values))
        copy_chunk(cur, statement, good)
        copy_chunk(cur, sql.SQL("copy _rejects (source_object, row_number, raw_row, reason) from stdin"), bad)
        return rows, len(good)

    def _reject_duplicates(self, conn: psycopg.Connection, incoming: int) -> int:
        """Move every row whose key came earlier in the same delivery to the rejects; returns how many."""
        key = sql.Identifier(self.entity.key)
        # Usually no key repeats at all, and then no delivery has a duplicate: counting the
        # distinct keys answers that for a fraction of the cost of the grouping below.
        if conn.execute(sql.SQL("select count(distinct {}) from _incoming").format(key)).fetchone()[0] == incoming:
            return 0
        return conn.execute(sql.SQL("""
            with firsts as (
                select _delivery, {key}, min(_row_number) as first_row
                from _incoming group by _delivery, {key} having count(*) > 1
            ), moved as (
                delete from _incoming i using firsts f
                where i._delivery = f._delivery and i.{key} = f.{key} and i._row_number > f.first_row
                returning i.*, f.first_row
            )
            insert into _rejects (source_object, row_number, raw_row, reason)
            select _source_object, _row_number,
                   (to_jsonb(moved) - '_delivery' - '_load_id' - '_loaded_at' - 'first_row'
                    - '_source_object' - '_row_number')::text,
                   format('duplicate %s %s in this delivery (first at row %s)', {name}, {key}, first_row)
            from moved
        """).format(key=key, name=sql.Literal(self.entity.key))).rowcount

    def _store_quarantine(self, conn: psycopg.Connection, load_id: int, source_kind: str) -> None:
        conn.execute(
            """insert into audit.quarantine (load_id, entity, source_kind, source_object, row_number, raw_row, reason)
               select %s, %s, %s, source_object, row_number, raw_row, reason from _rejects
               order by source_object, row_number""",
            (load_id, self.entity.name, source_kind),
        )

    def _upsert(self, conn: psycopg.Connection, result: LoadResult, incoming: int) -> None:
        """Update changed rows, then insert new keys: the latest ``updated_at`` wins and
        identical rows are left untouched (so re-running a date changes nothing).

        Two plain statements rather than INSERT ... ON CONFLICT: on a bulk load the
        anti-join insert avoids the speculative insertion per row (measured: ~2x faster).
        When the rows are a large share of the table, its primary key is dropped for the two
        statements and built again after them (see ``_drop_primary_key``).
        """
        entity = self.entity
        business = [*entity.column_names, "_extra"]
        cols = sql.SQL(", ").join(map(sql.Identifier, business))
        target = sql.Identifier("raw", entity.name)
        key = sql.Identifier(entity.key)
        source = sql.SQL("_incoming")
        if result.deliveries > 1:
            # Several deliveries may carry the same key: the latest updated_at wins, then
            # the later delivery (a re-delivered file comes after the original).
            order = sql.SQL("{}, updated_at desc nulls last, _delivery desc").format(key) \
                if entity.has_updated_at else sql.SQL("{}, _delivery desc").format(key)
            incoming = conn.execute(sql.SQL("create temp table _latest on commit drop as "
                                            "select distinct on ({}) * from _incoming order by {}").format(
                key, order)).rowcount
            source = sql.SQL("_latest")
        primary_key = self._drop_primary_key(conn, incoming)
        changed = sql.SQL("({}) is distinct from ({})").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in business),
            sql.SQL(", ").join(sql.SQL("i.{}").format(sql.Identifier(c)) for c in business))
        if entity.has_updated_at:
            changed += sql.SQL(" and (i.updated_at is null or t.updated_at is null or i.updated_at >= t.updated_at)")
        assignments = sql.SQL(", ").join(
            sql.SQL("{0} = i.{0}").format(sql.Identifier(c)) for c in [*business, "_source_object", "_load_id"])
        result.rows_updated = conn.execute(sql.SQL(
            "update {target} as t set {assignments}, _loaded_at = now() from {source} as i "
            "where t.{key} = i.{key} and {changed}").format(
            target=target, assignments=assignments, source=source, key=key, changed=changed)).rowcount
        result.rows_inserted = conn.execute(sql.SQL(
            "insert into {target} ({cols}, _source_object, _load_id) "
            "select {cols}, _source_object, _load_id from {source} as i "
            "where not exists (select from {target} as t where t.{key} = i.{key})").format(
            target=target, cols=cols, source=source, key=key)).rowcount
        if primary_key:
            conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
                target, sql.Identifier(primary_key), key))
        result.rows_unchanged = incoming - result.rows_inserted - result.rows_updated

    def _drop_primary_key(self, conn: psycopg.Connection, incoming: int) -> str | None:
        """Drop the raw table's primary key when the incoming rows are at least as many as the
        rows it holds (the first load, a backfill), and return its name for ``_upsert`` to
        build it again: one sort of all keys instead of one index insertion per row, as
        "Populating a Database" in the PostgreSQL manual advises. Dropping it locks the table
        against readers until the commit; a nightly load (a few rows next to the table)
        keeps the index and takes no such lock. Only the table's owner may drop it: a login
        with just winback_loader's grants keeps it too. Returns None when the key stays."""
        key = conn.execute(
            "select c.conname, t.reltuples, pg_has_role(t.relowner, 'USAGE')"
            " from pg_constraint c join pg_class t on t.oid = c.conrelid"
            " where c.conrelid = %s::regclass and c.contype = 'p'", (f"raw.{self.entity.name}",)).fetchone()
        # reltuples: the estimate of the last VACUUM, ANALYZE or index build; -1 if none yet.
        if key is None or incoming < key[1] or not key[2]:
            return None
        name = key[0]
        # The index build sorts every key: let it do so in memory.
        conn.execute("set local maintenance_work_mem = '512MB'")
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(
            sql.Identifier("raw", self.entity.name), sql.Identifier(name)))
        return name

    def _record_landed_files(self, conn: psycopg.Connection, landed: list[Delivery], load_id: int) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into audit.landed_files (file_url, checksum, entity, size_bytes, load_id)"
                " values (%s, %s, %s, %s, %s) on conflict do nothing",
                [(d.source_object, d.checksum, self.entity.name, d.size_bytes, load_id) for d in landed],
            )

    def _advance_watermark(self, conn: psycopg.Connection, result: LoadResult) -> None:
        if result.source_kind != "sql" or not self.entity.has_updated_at:
            return
        newest = conn.execute("select max(updated_at) from _incoming").fetchone()[0]
        candidates = [w for w in (result.watermark_before, newest) if w is not None]
        result.watermark_after = max(candidates) if candidates else None
        if result.watermark_after is not None:
            conn.execute(
                """insert into audit.watermarks (entity, watermark, load_id) values (%s, %s, %s)
                   on conflict (entity) do update set watermark = excluded.watermark,
                       load_id = excluded.load_id, updated_at = now()""",
                (self.entity.name, result.watermark_after, result.load_id),
            )

    def _summarize_brin(self, conn: psycopg.Connection) -> None:
        """Summarize the page ranges this load filled in the table's BRIN index (_loaded_at).

        The nightly dbt run finds the rows delivered since its last run through that index;
        ranges nobody summarized yet (autovacuum does it later) are read whole, which after a
        bulk load means the whole table. Needs ownership (or MAINTAIN); without it dbt is
        only slower until autovacuum catches up.
        """
        indexes = conn.execute(
            "select i.indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indexrelid "
            "join pg_am a on a.oid = c.relam where i.indrelid = %s::regclass and a.amname = 'brin'",
            (f"raw.{self.entity.name}",)).fetchall()
        for (index,) in indexes:
            try:
                conn.execute("select brin_summarize_new_values(%s::regclass)", (index,))
                conn.commit()
            except psycopg.errors.InsufficientPrivilege:
                conn.rollback()
                log.info("not allowed to summarize %s; autovacuum will", index)

    def _count_unknown_keys(self, conn: psycopg.Connection) -> int | None:
        """Client ids referenced by this load that have no row in raw.clients (late-arriving)."""
        if "client_id" not in self.entity.column_names or self.entity.name == "clients":
            return None
        # The distinct ids first: the anti-join then probes raw.clients once per client, not per row.
        return conn.execute(
            "select count(*) from (select distinct client_id from _incoming where client_id is not null) i"
            " where not exists (select 1 from raw.clients c where c.client_id = i.client_id)"
        ).fetchone()[0]
