"""The baselines of the sales load: plain PostgreSQL COPY and pandas ``to_sql``."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

# The contract's types (data-contract.md), no key, no index, no constraint.
SALES_LINES_DDL = """create table bench_copy_sales_lines (
    line_id text, order_id text, client_id text, order_date date, quantity numeric,
    net_amount numeric, cost_amount numeric, product_id text, channel text, status text,
    updated_at timestamptz)"""
BLOCK = 8 << 20
TO_SQL_CAP = 200_000


def with_bad_rows(csv_file: Path, out_file: Path, every: int = 1000) -> int:
    """Copy the file with every ``every``-th record's net_amount replaced by 'x' (not a number):
    a first load with a few bad rows scattered through it. Returns how many were spoiled.
    Expects the generator's files: one record per line, net_amount the sixth field, no quotes."""
    spoiled = 0
    with open(csv_file, "rb") as source, open(out_file, "wb") as target:
        target.write(source.readline())  # the header
        for number, line in enumerate(source, start=1):
            if number % every == 0:
                fields = line.split(b",")
                fields[5] = b"x"
                line = b",".join(fields)
                spoiled += 1
            target.write(line)
    return spoiled


def plain_copy(dsn: str, csv_file: Path) -> dict:
    """``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the file's bytes into an empty, unindexed
    table; the time covers reading the file, the COPY and the commit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop table if exists bench_copy_sales_lines")
        conn.execute(SALES_LINES_DDL)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            with cur.copy("copy bench_copy_sales_lines from stdin (format csv, header)") as copy, \
                    open(csv_file, "rb") as handle:
                while block := handle.read(BLOCK):
                    copy.write(block)
            rows = cur.rowcount
        conn.commit()
    seconds = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop table bench_copy_sales_lines")
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def pandas_to_sql(dsn: str, csv_file: Path, cap: int = TO_SQL_CAP) -> dict:
    """``pandas.read_csv(...).to_sql(...)`` with SQLAlchemy (postgresql+psycopg), pandas'
    defaults (inferred types, ``method=None``, no chunksize), on at most ``cap`` rows."""
    import pandas as pd
    import sqlalchemy

    from winback.quality.gate import sqlalchemy_url  # a libpq URI (Unix socket too) as a SQLAlchemy URL

    engine = sqlalchemy.create_engine(sqlalchemy_url(dsn))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("drop table if exists bench_pandas_sales_lines")
        started = time.perf_counter()
        frame = pd.read_csv(csv_file, nrows=cap)
        frame.to_sql("bench_pandas_sales_lines", engine, if_exists="replace", index=False)
        seconds = time.perf_counter() - started
        rows = len(frame)
        with engine.begin() as conn:
            stored = conn.exec_driver_sql("select count(*) from bench_pandas_sales_lines").scalar()
            conn.exec_driver_sql("drop table bench_pandas_sales_lines")
    finally:
        engine.dispose()
    if stored != rows:
        raise RuntimeError(f"to_sql stored {stored} rows of {rows}")
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}
