"""The nightly extract: one call per entity, used by the extract DAG and the CLI.

Time: a run describes the as-of date ``D`` (see ``winback.calendar``); rows updated after
the end of ``D`` wait for the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from winback import warehouse
from winback.calendar import day_end
from winback.config import Settings, get_settings
from winback.extract import audit
from winback.extract.audit import LoadResult, RecordsUnaccounted
from winback.extract.contract import ENTITIES, Entity
from winback.extract.formats import FileFormat
from winback.extract.loader import DeliveryRejected, QuarantineLimitExceeded, RawLoader
from winback.extract.sources import Delivery, SourceError, discover_files, file_checksum, read_file, read_sql_table

__all__ = [
    "ENTITIES", "DeliveryRejected", "LoadResult", "QuarantineLimitExceeded", "RecordsUnaccounted", "SourceError",
    "extract_entity", "source_kind_for",
]

# Contacts and campaigns are CRM exports, not tables of the sales system: read from the SQL
# source, a sales system without a campaigns table would fail every nightly extract.
SQL_CAPABLE = ("sales_lines", "clients", "managers")


def source_kind_for(entity: str, settings: Settings) -> str:
    """Contacts and campaigns always come as file drops; the sales entities from the configured kind."""
    return settings.sales_source if entity in SQL_CAPABLE else "files"


def _new_files(dsn: str, landing: str, entity: Entity, chunk_bytes: int, fmt: FileFormat) -> Iterator[Delivery]:
    """Files not loaded before (by URL and content checksum), opened one at a time. A URL
    never loaded is new whatever its content: its checksum is taken while it is read, so
    a first load reads each file once."""
    seen = audit.landed_files(dsn, entity.name)
    seen_urls = {url for url, _ in seen}
    for url in discover_files(landing, entity):
        if url not in seen_urls:
            yield read_file(url, entity, chunk_bytes=chunk_bytes, fmt=fmt)
            continue
        checksum, size = file_checksum(url)
        if (url, checksum) not in seen:
            yield read_file(url, entity, checksum, size, chunk_bytes, fmt)


def extract_entity(
    entity_name: str,
    *,
    as_of: dt.date,
    settings: Settings | None = None,
    dag_run_id: str | None = None,
) -> LoadResult:
    """Extract one entity for the as-of date into ``raw.<entity>``."""
    settings = settings or get_settings()
    entity = ENTITIES[entity_name]
    dsn = warehouse.warehouse_dsn(settings)
    kind = source_kind_for(entity_name, settings)
    loader = RawLoader(dsn, entity, as_of=as_of, timezone=settings.timezone,
                       quarantine_max_share=settings.quarantine_max_share,
                       dag_run_id=dag_run_id, bulk_load=settings.bulk_load)
    if kind == "files":
        return loader.load(_new_files(dsn, settings.landing, entity, settings.chunk_bytes, settings.file_format()),
                           "files")

    before = audit.watermark(dsn, entity_name)
    lookback = dt.timedelta(days=settings.lookback_days)
    until = day_end(as_of, settings.timezone)
    # A re-run or backfill of an older date re-reads that date's window; a normal nightly
    # run reads from the watermark. Both look back for late updates.
    day_start = until - dt.timedelta(days=1)
    after = min(before, day_start) - lookback if before is not None else None
    deliveries = read_sql_table(warehouse.source_dsn(settings), entity, after, until, settings.timezone,
                                chunk_bytes=settings.chunk_bytes)
    return loader.load(deliveries, "sql", watermark_before=before)
