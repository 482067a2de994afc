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

A first load (``raw.<entity>`` empty) takes the bulk path for its first delivery: clean
chunks go by COPY straight into the raw table, the others as in 1. (see ``bulk``).

The audit row in ``audit.load_runs`` is written on its own connection, so a failed run
is recorded as failed even though its data was rolled back.

:class:`RawLoader` coordinates; each step has its module: ``staged`` (1. and 2.: the
landing table, the checks, ``_incoming``, duplicates), ``bulk_load`` (the bulk path, with
the client checks of ``bulk``), ``upsert`` (3.: into raw by key, unknown client ids, BRIN
summaries) and ``audit`` (load runs, per-file accounts, quarantine, landed files,
watermarks).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

import psycopg
from psycopg import sql

from winback.extract import audit, staged, upsert
from winback.extract.audit import FileAccount, LoadResult, RecordsUnaccounted
from winback.extract.bulk_load import BulkPath, BulkRefused
from winback.extract.contract import Entity
from winback.extract.sources import Delivery
from winback.extract.validation import DeliveryColumns, MissingColumnsError

__all__ = ["DeliveryRejected", "FileAccount", "LoadResult", "QuarantineLimitExceeded", "RawLoader",
           "RecordsUnaccounted"]

log = logging.getLogger(__name__)


class QuarantineLimitExceeded(RuntimeError):
    """Too large a share of the rows broke the contract: the run loads nothing."""


class DeliveryRejected(RuntimeError):
    """At least one delivery was rejected whole (e.g. a missing required column)."""


class RawLoader:
    """Loads the deliveries of one entity into ``raw.<entity>``; see the module docstring."""

    def __init__(self, warehouse_dsn: str, entity: Entity, *, as_of: dt.date, timezone: str,
                 quarantine_max_share: float, dag_run_id: str | None = None, bulk_load: bool = True):
        self.dsn = warehouse_dsn
        self.entity = entity
        self.as_of = as_of
        self.timezone = timezone
        self.max_share = quarantine_max_share
        self.dag_run_id = dag_run_id
        self.bulk_load = bulk_load  # whether a first load may take the bulk path (see bulk_load)
        self.bulk = BulkPath(entity, as_of)

    @property
    def bulk_rows(self) -> int:
        """Rows the bulk path copied straight into raw in the current load."""
        return self.bulk.rows

    def load(self, deliveries: Iterable[Delivery], source_kind: str,
             watermark_before: dt.datetime | None = None) -> LoadResult:
        started = time.monotonic()
        conn = psycopg.connect(self.dsn, autocommit=True)
        try:
            result = audit.open_load(conn, self.entity.name, self.as_of, self.dag_run_id, source_kind)
            conn.autocommit = False
        except BaseException:
            conn.close()
            raise
        result.watermark_before = watermark_before
        objects: list[str] = []
        self.bulk = BulkPath(self.entity, self.as_of)
        try:
            with conn:
                conn.execute(sql.SQL("set timezone = {}").format(sql.Literal(self.timezone)))
                # The checks compare dates with their ISO text output (see validation).
                conn.execute("set datestyle = 'ISO'")
                # The de-duplication and the distinct-key counts sort or hash whole loads: keep them in memory.
                conn.execute("set local work_mem = '256MB'")
                staged.create_work_tables(conn, self.entity)
                landed = []
                incoming = 0  # rows in _incoming, counted as they move rather than by a scan
                for index, delivery in enumerate(deliveries):
                    objects.append(delivery.source_object)
                    read_before = result.rows_read
                    try:
                        moved, delivery, lines = self._stage(conn, delivery, index, result)
                    except MissingColumnsError as exc:
                        result.rejected.append(str(exc))
                        log.error("%s", exc)
                        continue
                    result.files.append(FileAccount(index, delivery.source_object, result.rows_read - read_before,
                                                    lines if delivery.source_kind == "files" else None))
                    incoming += moved
                    result.deliveries += 1
                    if delivery.checksum:  # a file read whole (its checksum may have been taken while reading)
                        landed.append(delivery)
                incoming -= staged.reject_duplicates(conn, self.entity, incoming)
                result.rows_quarantined = conn.execute("select count(*) from _rejects").fetchone()[0]
                audit.store_quarantine(conn, self.entity.name, result.load_id, source_kind)
                share = result.rows_quarantined / result.rows_read if result.rows_read else 0.0
                if share > self.max_share:
                    if self.bulk_rows:  # the table was empty before this load: empty it again
                        conn.execute(sql.SQL("truncate {}").format(sql.Identifier("raw", self.entity.name)))
                    conn.commit()  # keep the quarantine rows for diagnosis, load nothing else
                    raise QuarantineLimitExceeded(
                        f"{self.entity.name}: {result.rows_quarantined} of {result.rows_read} rows "
                        f"({share:.1%}) broke the contract, above the limit of {self.max_share:.1%} "
                        "(WINBACK_QUARANTINE_MAX_SHARE); nothing was loaded, see audit.quarantine "
                        f"where load_id = {result.load_id}"
                    )
                upsert.upsert(conn, self.entity, result, incoming, self.bulk_rows)
                result.rows_inserted += self.bulk_rows
                audit.check_accounts(conn, self.entity.name, result)
                audit.record_landed_files(conn, self.entity.name, landed, result.load_id)
                audit.advance_watermark(conn, self.entity, result, self.bulk_rows)
                result.unknown_keys = upsert.count_unknown_keys(conn, self.entity, self.bulk_rows)
                conn.commit()
                conn.autocommit = True
                if incoming or not self.bulk_rows:  # the bulk path built the BRIN index over every row
                    upsert.summarize_brin(conn, self.entity)
                result.duration_s = time.monotonic() - started
                status = "rejected" if result.rejected else "success"
                audit.close_load(conn, result, status, "; ".join(result.rejected) or None, objects)
        except BaseException as exc:
            result.duration_s = time.monotonic() - started
            # On a connection of its own: this one may be broken, its transaction rolled back.
            with psycopg.connect(self.dsn, autocommit=True) as own:
                audit.close_load(own, result, "failed", f"{type(exc).__name__}: {exc}"[:2000], objects)
            raise
        log.info("loaded %s: %s", self.entity.name, result.summary())
        if result.rejected:
            raise DeliveryRejected("; ".join(result.rejected))
        return result

    def _stage(self, conn: psycopg.Connection, delivery: Delivery, index: int,
               result: LoadResult) -> tuple[int, Delivery, int]:
        """Stage one delivery: by the bulk path when it is the first delivery into an empty raw
        table (see ``bulk_load``), else chunk by chunk through the text landing table into
        ``_incoming`` (see ``staged``). Returns the rows moved to ``_incoming``, the delivery
        as last read (the bulk path may have had to read it a second time) and its physical lines."""
        columns = DeliveryColumns(self.entity, delivery.header, delivery.source_object)
        result.drift_columns.extend(c for c in columns.drift if c not in result.drift_columns)
        landing = staged.Landing.create(conn, columns)
        if self.bulk_load and self.bulk.may_take(columns, delivery, index) \
                and self.bulk.start(conn, delivery.source_object, result.load_id):
            try:
                moved, lines = self.bulk.stage(conn, delivery, landing, index, result)
                return moved, delivery, lines
            except BulkRefused as exc:
                log.info("%s: %s; loading it the usual way", delivery.source_object, exc)
                self.bulk.undo(conn)
                delivery = delivery.reopen()
                landing = staged.Landing.create(conn, columns)
        rows, moved, lines = staged.stage(conn, delivery, landing, self.as_of, result.load_id, index)
        result.rows_read += rows
        return moved, delivery, lines
