"""Checks of a run's inputs before anything is written: the landing folder and the as-of date.

``winback run`` calls them before it starts the warehouse or Airflow, so a typo in the
folder, a sales export without a row or an as-of date in the future fails in a second with
one line naming the folder, file or setting and what to do, instead of four 0-row loads
followed by a misleading freshness failure of the quality gate.

They are cheap: the sales files are listed (the same discovery as the extract's), and a
file is opened only to read its first few kilobytes (CSV) or its footer (Parquet). A file
of a kind these checks cannot inspect cheaply is never called empty: the loader reads it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import fsspec

from winback.extract import sources
from winback.extract.contract import ENTITIES

# How much of a CSV file is read to tell "a header and no rows" from "rows": a file larger
# than this has rows (or a header no export writes); it is not read further.
HEAD_BYTES = 64 * 1024
SALES = "sales_lines"


class PreflightError(ValueError):
    """A run's input is unusable as given; the message is one line naming it and the fix."""


def _suffixes() -> str:
    suffixes = getattr(sources, "FILE_SUFFIXES", (".csv", ".parquet"))
    return "|".join(s.lstrip(".") for s in suffixes)


def check_landing(landing_url: str, allow_empty: bool = False) -> list[str]:
    """Raise :class:`PreflightError` when the landing location cannot give a sales delivery.

    A location that does not exist, one without a ``sales_lines`` file, and (unless
    ``allow_empty``) one whose every ``sales_lines`` file holds no record. Returns the
    sales files found.
    """
    try:
        fs, root = fsspec.core.url_to_fs(landing_url)
        exists = fs.exists(root.rstrip("/") or root)
        is_dir = exists and fs.isdir(root.rstrip("/") or root)
    except (OSError, ValueError, ImportError) as exc:
        raise PreflightError(f"landing location {landing_url} cannot be read ({exc}): "
                             "pass --landing with a folder or an fsspec URL you can read") from None
    if not exists:
        raise PreflightError(f"landing folder {landing_url} does not exist: "
                             "pass --landing with the folder of your exports")
    if not is_dir:
        raise PreflightError(f"landing location {landing_url} is a file, not a folder: "
                             "pass --landing with the folder that holds it")
    files = sources.discover_files(landing_url, ENTITIES[SALES])
    if not files:
        raise PreflightError(
            f"no {SALES}*.{{{_suffixes()}}} file in {landing_url} (nor below a {SALES}/ folder): "
            f"put the sales export there, named {SALES}.csv or {SALES}_<anything>.csv")
    if allow_empty:
        return files
    empty = {url: what for url in files if (what := _no_rows(url))}
    if len(empty) == len(files):
        hint = "export the sales lines again, or pass --allow-empty if an empty delivery is expected"
        if len(files) == 1:
            raise PreflightError(f"{files[0]} {empty[files[0]]}: {hint}")
        raise PreflightError(f"every {SALES} file in {landing_url} is empty or has a header and no rows "
                             f"({', '.join(files)}): {hint}")
    return files


def _no_rows(url: str) -> str | None:
    """How the file holds no record ("is empty", "has a header and no rows"), or None when
    it holds one or that cannot be told cheaply."""
    lowered = url.lower()
    try:
        if lowered.endswith(".csv"):
            return _csv_no_rows(url)
        if lowered.endswith(".parquet"):
            return _parquet_no_rows(url)
    except Exception:  # noqa: BLE001 - unreadable or corrupt: the loader reports it with its reason
        return None
    return None  # a kind these checks cannot inspect cheaply (e.g. a workbook): never called empty


def _csv_no_rows(url: str) -> str | None:
    with fsspec.open(url, "rb") as handle:
        head = handle.read(HEAD_BYTES + 1)
    if len(head) > HEAD_BYTES:
        return None  # more than a header
    if not head.strip():
        return "is empty (no header, no rows)"
    end = sources.first_record_end(head)
    rest = head[end:] if end >= 0 else b""
    return None if rest.strip() else "has a header and no rows"


def _parquet_no_rows(url: str) -> str | None:
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as handle:
        rows = pq.ParquetFile(handle).metadata.num_rows
    return "has columns and no rows" if rows == 0 else None


def check_as_of(as_of: dt.date, timezone: str, *, earliest: dt.date | None = None,
                now: dt.datetime | None = None) -> None:
    """Raise :class:`PreflightError` for an as-of date after today in the business time zone
    (``timezone``), or before ``earliest`` when given (the first date the DAGs can run for)."""
    zone = zoneinfo.ZoneInfo(timezone)
    today = (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()
    if as_of > today:
        raise PreflightError(
            f"as-of date {as_of} is after today ({today} in {timezone}): pass --as-of with the last day "
            "your export describes (today or earlier), or set WINBACK_TIMEZONE to the business time zone")
    if earliest is not None and as_of < earliest:
        raise PreflightError(f"as-of date {as_of} is before {earliest}, the earliest date the pipeline runs for: "
                             f"pass --as-of {earliest} or later")
