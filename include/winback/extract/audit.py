"""The audit and watermark bookkeeping of a load: ``audit.load_runs``, ``audit.load_files``,
``audit.quarantine``, ``audit.landed_files`` and ``audit.watermarks``.

The load's row in ``audit.load_runs`` is opened and closed on connections of their own
(committed whatever becomes of the load); everything else is written in the load's
transaction, so it is committed together with the rows it describes, or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from winback.extract.contract import Entity
from winback.extract.sources import Delivery

log = logging.getLogger(__name__)

# Class of the advisory lock (two-key form) a load holds on its audit row while it runs.
LOAD_LOCK_CLASS = 7_201


class RecordsUnaccounted(RuntimeError):
    """A delivery's records do not add up to loaded + unchanged + superseded + quarantined."""


@dataclass
class FileAccount:
    """Where every record of one delivery went (``audit.load_files``), each count measured on its own."""

    delivery: int
    source_object: str
    records: int = 0  # as read: COPY's row count, or the records the careful reader found
    lines: int | None = None  # physical lines after the header (files only)
    loaded: int = 0  # inserted or updated in raw by this load
    unchanged: int = 0  # raw already held the same version or a newer one
    superseded: int = 0  # another version of the key in the same load won
    quarantined: int = 0

    @property
    def balanced(self) -> bool:
        return self.records == self.loaded + self.unchanged + self.superseded + self.quarantined

    def describe(self) -> str:
        return (f"{self.source_object}: {self.records} records read, but {self.loaded} loaded + {self.unchanged} "
                f"unchanged + {self.superseded} superseded + {self.quarantined} quarantined = "
                f"{self.loaded + self.unchanged + self.superseded + self.quarantined}")


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
    files: list[FileAccount] = field(default_factory=list)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("files")
        for key in ("watermark_before", "watermark_after"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


# ----------------------------------------------------------------------------- load_runs
def open_load(conn: psycopg.Connection, entity: str, as_of: dt.date, dag_run_id: str | None,
              source_kind: str) -> LoadResult:
    """Close the audit rows of loads whose process died, then open this load's row.

    A load holds a session advisory lock on its own row for as long as it runs (taken
    in the statement that inserts the row, so no other process sees the row unlocked).
    A ``running`` row whose lock nobody holds belongs to a process that died (``kill -9``,
    a lost worker): it is closed as failed. ``conn`` is in autocommit mode here.
    """
    abandoned = conn.execute(
        "update audit.load_runs set status = 'failed', finished_at = now(), message = 'abandoned: the process"
        " that ran this load ended without finishing it (found when a later load started); nothing of it"
        " was committed' where status = 'running' and pg_try_advisory_xact_lock(%s, (load_id %% 2147483647)::int)"
        " returning load_id", (LOAD_LOCK_CLASS,)).fetchall()
    if abandoned:
        log.warning("closed the audit rows of abandoned loads: %s", ", ".join(str(r[0]) for r in abandoned))
    load_id = conn.execute(
        "insert into audit.load_runs (dag_run_id, logical_date, entity, source_kind) values (%s, %s, %s, %s)"
        " returning load_id, pg_advisory_lock(%s, (load_id %% 2147483647)::int)",
        (dag_run_id, as_of, entity, source_kind, LOAD_LOCK_CLASS),
    ).fetchone()[0]
    return LoadResult(entity=entity, load_id=load_id, source_kind=source_kind)


def close_load(conn: psycopg.Connection, result: LoadResult, status: str, message: str | None,
               objects: list[str]) -> None:
    """Write the load's outcome and figures into its row (``conn`` in autocommit mode)."""
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


# ----------------------------------------------------------------------------- in the load's transaction
def store_quarantine(conn: psycopg.Connection, entity: str, load_id: int, source_kind: str) -> None:
    """The load's rejected rows (temporary table ``_rejects``) into ``audit.quarantine``."""
    conn.execute(
        """insert into audit.quarantine (load_id, entity, source_kind, source_object, row_number, line_number,
                                         raw_row, reason)
           select %s, %s, %s, source_object, row_number, line_number, raw_row, reason from _rejects
           order by source_object, row_number""",
        (load_id, entity, source_kind),
    )


def check_accounts(conn: psycopg.Connection, entity: str, result: LoadResult) -> None:
    """Count each delivery's quarantined records, check that every record read is
    accounted for, and store the accounts in ``audit.load_files``. A record unaccounted
    for fails the load (nothing is committed), naming the delivery."""
    by_object = {a.source_object: a for a in result.files}
    for source_object, count in conn.execute("select source_object, count(*) from _rejects group by 1"):
        by_object[source_object].quarantined += count
    wrong = [a.describe() for a in result.files if not a.balanced]
    if wrong:
        raise RecordsUnaccounted(f"{entity}: records unaccounted for, nothing was loaded: " + "; ".join(wrong))
    with conn.cursor() as cur:
        cur.executemany(
            "insert into audit.load_files (load_id, delivery, source_object, records, lines, loaded, unchanged,"
            " superseded, quarantined) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(result.load_id, a.delivery, a.source_object, a.records, a.lines, a.loaded, a.unchanged,
              a.superseded, a.quarantined) for a in result.files])


def record_landed_files(conn: psycopg.Connection, entity: str, landed: Iterable[Delivery], load_id: int) -> None:
    """The files read whole by this load, by URL and checksum: a later run skips them."""
    with conn.cursor() as cur:
        cur.executemany(
            "insert into audit.landed_files (file_url, checksum, entity, size_bytes, load_id)"
            " values (%s, %s, %s, %s, %s) on conflict do nothing",
            [(d.source_object, d.checksum, entity, d.size_bytes, load_id) for d in landed],
        )


def advance_watermark(conn: psycopg.Connection, entity: Entity, result: LoadResult, bulk_rows: int) -> None:
    """Move the entity's watermark to the newest ``updated_at`` loaded (SQL sources only):
    that of ``_incoming``, and of the rows the bulk path copied into raw (``bulk_rows``)."""
    if result.source_kind != "sql" or not entity.has_updated_at:
        return
    newest = conn.execute("select max(updated_at) from _incoming").fetchone()[0]
    if bulk_rows:
        copied = conn.execute(sql.SQL("select max(updated_at) from {} where _load_id = %s").format(
            sql.Identifier("raw", entity.name)), (result.load_id,)).fetchone()[0]
        newest = max((t for t in (newest, copied) if t is not None), default=None)
    candidates = [w for w in (result.watermark_before, newest) if w is not None]
    result.watermark_after = max(candidates) if candidates else None
    if result.watermark_after is not None:
        conn.execute(
            """insert into audit.watermarks (entity, watermark, load_id) values (%s, %s, %s)
               on conflict (entity) do update set watermark = excluded.watermark,
                   load_id = excluded.load_id, updated_at = now()""",
            (entity.name, result.watermark_after, result.load_id),
        )


# ----------------------------------------------------------------------------- read before a load
def watermark(dsn: str, entity: str) -> dt.datetime | None:
    """The newest ``updated_at`` loaded so far from the sales system (None before the first load)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select watermark from audit.watermarks where entity = %s", (entity,)).fetchone()
    return row[0] if row else None


def landed_files(dsn: str, entity: str) -> set[tuple[str, str]]:
    """The (URL, checksum) of every file loaded before."""
    with psycopg.connect(dsn) as conn:
        return {(u, c) for u, c in conn.execute(
            "select file_url, checksum from audit.landed_files where entity = %s", (entity,))}
