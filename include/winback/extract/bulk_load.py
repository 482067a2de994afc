"""The bulk path of a first load: clean chunks by COPY straight into ``raw.<entity>``.

A load's first delivery into an empty raw table this login owns takes it: the table's
key and indexes are dropped inside the savepoint ``winback_bulk``, every chunk is checked
on the client (``bulk.ChunkCheck``, Arrow), the rows that pass go by one COPY into raw,
the others (held back, or a chunk Arrow cannot read) through the staged path into
``_incoming``; then the key and indexes are built again. When the rows cannot stay (a key
twice, COPY refusing a row) the savepoint is rolled back and the loader loads the
delivery the staged way (:class:`BulkRefused`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

import psycopg
from psycopg import sql

from winback.extract import bulk, staged, upsert
from winback.extract.audit import LoadResult
from winback.extract.contract import Entity
from winback.extract.sources import Delivery
from winback.extract.validation import DeliveryColumns

log = logging.getLogger(__name__)

# Held-back rows of the bulk path are checked in SQL in batches of at most this many: a few
# bad rows scattered through a file do not break the COPY into raw at every chunk.
HELD_BACK_ROWS = 10_000
# From this many rows copied on, the key build may use parallel workers.
PARALLEL_BUILD_ROWS = 1_000_000


class BulkRefused(Exception):
    """The rows of the bulk path cannot stay: roll it back, load the delivery the usual way."""


def bulk_write(copy: psycopg.Copy, chunk: bytes) -> None:
    """Send one checked chunk into the open COPY into raw (a function of its own for the benchmark)."""
    copy.write(chunk)


class BulkPath:
    """The bulk path of one load into ``raw.<entity>``; ``rows`` are those it copied straight
    into raw (0 when it was not taken or was undone)."""

    def __init__(self, entity: Entity, as_of: dt.date):
        self.entity = entity
        self.as_of = as_of
        self.rows = 0
        self._indexes: list[tuple] = []

    def may_take(self, columns: DeliveryColumns, delivery: Delivery, index: int) -> bool:
        """Only a load's first delivery, one that can be read again, in a form the client checks know."""
        return index == 0 and delivery.reopen is not None and bulk.supports(columns)

    def start(self, conn: psycopg.Connection, source: str, load_id: int) -> bool:
        """Prepare ``raw.<entity>`` for the bulk path if it holds no row and this login owns
        it: inside the savepoint ``winback_bulk``, lock it, drop its key and indexes
        (remembered for :meth:`finish`), truncate it (so COPY may FREEZE the rows: no
        later VACUUM has to visit them) and give the load's columns this load's values as
        defaults. The lock keeps readers out until the commit, as the key drop of a large
        load always did. Returns False, having changed nothing, when the table is not empty
        or may not be altered."""
        table = sql.Identifier("raw", self.entity.name)
        name = f"raw.{self.entity.name}"
        owner = conn.execute("select pg_has_role(relowner, 'USAGE') from pg_class where oid = %s::regclass",
                             (name,)).fetchone()[0]
        if not owner or conn.execute(sql.SQL("select exists (select from {})").format(table)).fetchone()[0]:
            return False
        conn.execute("savepoint winback_bulk")
        try:
            conn.execute(sql.SQL("lock table {} in access exclusive mode").format(table))
            if conn.execute(sql.SQL("select exists (select from {})").format(table)).fetchone()[0]:
                raise BulkRefused("rows arrived meanwhile")
            self._indexes = conn.execute(
                "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname,"
                " pg_get_constraintdef(c.oid) from pg_index i left join pg_constraint c"
                " on c.conindid = i.indexrelid and c.conrelid = i.indrelid where i.indrelid = %s::regclass",
                (name,)).fetchall()
            for index, _, constraint, _ in self._indexes:
                conn.execute(sql.SQL("alter table {} drop constraint {}").format(table, sql.Identifier(constraint))
                             if constraint else sql.SQL("drop index {}").format(sql.SQL(index)))
            conn.execute(sql.SQL("truncate {}").format(table))
            conn.execute(sql.SQL("alter table {} alter column _source_object set default {},"
                                 " alter column _load_id set default {}").format(
                table, sql.Literal(source), sql.Literal(load_id)))
        except (psycopg.errors.Error, BulkRefused) as exc:  # e.g. a foreign key refers to the table
            log.info("%s: no bulk path (%s)", name, exc)
            self.undo(conn)
            return False
        return True

    def undo(self, conn: psycopg.Connection) -> None:
        """Roll back everything since :meth:`start`: raw, its key and indexes as they were."""
        conn.execute("rollback to savepoint winback_bulk")
        conn.execute("release savepoint winback_bulk")
        self.rows = 0

    def stage(self, conn: psycopg.Connection, delivery: Delivery, landing: staged.Landing, index: int,
              result: LoadResult) -> tuple[int, int]:
        """Clean rows by COPY straight into raw, the others (a chunk's held-back rows, or a
        chunk Arrow cannot read) through the landing table into ``_incoming``, numbered as
        their rows in the delivery; then :meth:`finish`.
        Raises :class:`BulkRefused` when the rows cannot stay (the caller calls :meth:`undo`
        and loads the delivery the usual way). Returns the rows moved to ``_incoming`` and
        the delivery's lines."""
        columns = landing.columns
        collect = "client_id" if upsert.references_clients(self.entity) else None
        check = bulk.ChunkCheck(columns, self.as_of, collect=collect)
        statement = bulk.copy_statement(columns)
        rows = moved = direct = expected = 0
        line = delivery.first_line
        held: list[tuple] = []  # held-back rows, numbered, waiting for the SQL path
        source, load_id = delivery.source_object, result.load_id
        with conn.cursor() as cur, contextlib.ExitStack() as copying:
            def end_copy() -> None:
                nonlocal direct, expected
                if expected:
                    copying.close()
                    if cur.rowcount != expected:
                        raise BulkRefused(f"COPY read {cur.rowcount} rows where the checks counted {expected}")
                    direct, expected = direct + expected, 0

            def flush_held() -> int:
                """Land the held-back rows and check them in SQL (one COPY ends for it)."""
                end_copy()
                conn.execute("truncate _landing")
                staged.copy_chunk(cur, landing.slow, held)
                landed = len(held)
                held.clear()
                return staged.move(conn, columns, landed, self.as_of, source, load_id, index)

            try:
                for chunk, verdict in bulk.checked_chunks(delivery.chunks, check):
                    chunk_line, line = line, line + verdict.lines
                    if verdict.copy_rows:
                        if not expected:
                            copy = copying.enter_context(cur.copy(statement))
                        bulk_write(copy, verdict.copy)
                        expected += verdict.copy_rows
                    if verdict.staged_whole:
                        end_copy()
                        landing.number_from(conn, rows + 1)
                        rows, landed = staged.land(conn, cur, landing, chunk, rows, source, chunk_line)
                        moved += staged.move(conn, columns, landed, self.as_of, source, load_id, index)
                        continue
                    held.extend((rows + 1 + position, *values) for position, *values in verdict.held_back)
                    rows += verdict.rows
                    if len(held) >= HELD_BACK_ROWS:
                        moved += flush_held()
                if held:
                    moved += flush_held()
                end_copy()
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                raise BulkRefused(f"COPY refused a row ({str(exc).splitlines()[0]})") from exc
        self.finish(conn, index, direct)
        if collect:
            conn.execute("create temp table _copied_client_ids (client_id text) on commit drop")
            with conn.cursor() as cur, cur.copy("copy _copied_client_ids from stdin with (format csv)") as copy:
                copy.write(check.distinct_csv())
        conn.execute("release savepoint winback_bulk")
        result.rows_read += rows
        self.rows = direct
        return moved, line - delivery.first_line

    def finish(self, conn: psycopg.Connection, index: int, copied: int) -> None:
        """Drop the load's defaults, build the key and indexes again, and make sure no key came
        twice: twice in the rows copied (the key build fails), or both copied and in
        ``_incoming`` (the usual path would have quarantined the later one)."""
        table = sql.Identifier("raw", self.entity.name)
        key = sql.Identifier(self.entity.key)
        conn.execute(sql.SQL("alter table {} alter column _source_object drop default,"
                             " alter column _load_id drop default").format(table))
        # The key build sorts every key: let it do so in memory. Below a million rows the
        # parallel workers PostgreSQL would start cost more than they save (bench/).
        conn.execute("set local maintenance_work_mem = '512MB'")
        if copied < PARALLEL_BUILD_ROWS:
            conn.execute("set local max_parallel_maintenance_workers = 0")
        try:
            for _, definition, constraint, constraint_definition in self._indexes:
                conn.execute(sql.SQL("alter table {} add constraint {} {}").format(
                    table, sql.Identifier(constraint), sql.SQL(constraint_definition))
                    if constraint else sql.SQL(definition))
        except psycopg.errors.UniqueViolation:
            raise BulkRefused(f"a {self.entity.key} repeats in the delivery") from None
        if conn.execute(sql.SQL("select exists (select from _incoming i join {} t using ({}) where i._delivery = %s)")
                        .format(table, key), (index,)).fetchone()[0]:
            raise BulkRefused(f"a {self.entity.key} repeats in the delivery")
