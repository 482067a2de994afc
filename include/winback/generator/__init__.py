"""Demo, test and benchmark data: a simulated B2B seller's sales system and CRM exports.

A population of clients (sized from ``GeneratorConfig.target_lines``) lives day by day
from ``start_date``: regular buyers with their own rhythm, seasonal buyers, one-off
buyers, growing and shrinking accounts (their ABC-XYZ classes migrate between
quarters), erratic buyers, clients that go quiet and are lost, and lost clients that
come back, most of them after a manager's win-back contact. Managers work in regional
teams plus a key-account team; some leave and hand their clients to a colleague.

Sales lines come in orders of several lines; a few orders are cancelled (at once or a
few days later, as a correction), some lines are returned (a separate negative line with
status ``returned``) and some are corrected later (same ``line_id``, new amount, later
``updated_at``). Contacts are calls, e-mails, meetings, ... with outcomes, loss reasons
of lost clients, NPS answers and free-text notes (with commas, quotes and line breaks);
a few cannot be matched to a client.

Win-back campaigns (data contract v2): from the first quarter that begins a year after
``start_date`` the seller runs one campaign per quarter (``WB-2024Q3``: starts in the
quarter's first two weeks, runs 45-74 days, a fixed cost of about 0.4 % of the seller's
quarterly revenue). A campaign reaches lost clients two ways. Its sweep: at its start it
targets the lost clients nobody works on (lost and not back, no manager's win-back contact
in the lost episode, not yet in a campaign in it), however long ago they were lost; each
such lost episode is drawn once, by the first campaign that finds it: contacted in the
campaign's first two weeks with probability 0.5, else held out until the client buys again
(``_config.CAMPAIGN_SWEEP_SHARE``). And a manager's win-back contact on or after the lost
date during a campaign belongs to it with probability 0.8 (the others stay ad hoc). The
client's first contact in the campaign makes an offer drawn from the campaign's own mix of
``gift``, ``service``, ``discount`` and ``none`` (a control group), with a cost sized by the
client's typical order (gift 1-3 %, service 3-7 %, discount 8-15 %: the dearest); follow-ups
in the campaign name it without an offer. The offers act in the simulation itself: a
contacted lost client who would not have come back returns (an order 5-60 days later) with
a probability by offer type and the client's value segment A/B/C (``_config.OFFER_RETURN_P``:
service 0.75/0.65/0.60, gift 0.45/0.40/0.35, discount 0.15/0.15/0.12, none 0); a client who
would have come back anyway does so as planned. The held-out and the other lost clients
nobody contacts are the natural comparison group of the campaigns' uplift (docs/metrics.md):
at demo size (60-70k lines) the uplift differs visibly by offer type.

Outputs
  * ``generate_source``: the sales system as PostgreSQL tables ``public.sales_lines``,
    ``public.clients``, ``public.managers`` (the data contract's columns) as of
    ``config.as_of``, and the CRM's daily exports ``contacts_YYYYMMDD.csv`` and
    ``campaigns_YYYYMMDD.csv`` (a campaign's row on its start day).
  * ``advance_one_day``: the sales system and CRM one day further (new lines, corrections
    and returns of recent lines, new clients, that day's contacts file and, when a
    campaign starts that day, its campaigns file).
  * ``write_files``: everything as CSV files instead (bring-your-own-data path).

Everything is deterministic: the same config gives byte-identical rows, and a day's
data does not depend on how far a run goes. Generation streams: rows are produced per
day in bounded chunks and written at once (COPY / CSV), never collected; what is kept is
a few dozen bytes of state per client.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time

from winback.generator._config import GenerationSummary, GeneratorConfig
from winback.generator._engine import Simulation
from winback.generator._output import (
    COLUMNS,
    LANDING_ENTITIES,
    FileStore,
    GeneratorError,
    SourceBulkStore,
    SourceDayStore,
    Store,
    Writer,
    clean_landing,
    landing,
)

__all__ = [
    "COLUMNS",
    "GenerationSummary",
    "GeneratorConfig",
    "GeneratorError",
    "advance_one_day",
    "generate_source",
    "main",
    "write_files",
]


def _run(sim: Simulation, store: Store, last_day: int, final: bool, emit_from: int,
         first_day: dt.date, started: float) -> GenerationSummary:
    writer = Writer(sim.pop, store, final_until=last_day if final else None)
    try:
        if emit_from > 0:
            sim.run(emit_from - 1, None)  # replay the days before, writing nothing
        sim.run(last_day, writer, emit_from=emit_from)
    except BaseException as exc:
        store.abort(exc)
        raise
    counts = dict(writer.counts)
    counts.update(store.close())
    fields = {f.name for f in dataclasses.fields(GenerationSummary)}
    return GenerationSummary(
        as_of=sim.cal.date(last_day), first_day=first_day,
        files=tuple(store.files), seconds=round(time.perf_counter() - started, 3),
        **{k: v for k, v in counts.items() if k in fields},
    )


def generate_source(config: GeneratorConfig, source_dsn: str, landing_dir: str) -> GenerationSummary:
    """Create (replace) the sales system's tables as of ``config.as_of`` and write the CRM's
    daily exports ``contacts_YYYYMMDD.csv`` for every day up to it that had contacts, and
    ``campaigns_YYYYMMDD.csv`` for every day a campaign started.

    Contact and campaign files this generator wrote before are removed first (other files
    are kept).
    """
    started = time.perf_counter()
    sim = Simulation(config)
    fs, root = landing(landing_dir)
    clean_landing(fs, root, LANDING_ENTITIES)
    files = FileStore(fs, root, LANDING_ENTITIES, "daily", Writer.date_of(sim.pop))
    store = SourceBulkStore(source_dsn, files)
    return _run(sim, store, sim.cal.day(config.as_of), True, 0, config.start_date, started)


def advance_one_day(config: GeneratorConfig, source_dsn: str, landing_dir: str, day: dt.date) -> GenerationSummary:
    """Move the sales system to ``day``: insert the day's new sales lines, returns and
    clients, re-deliver the corrections due that day (same ``line_id``, ``updated_at`` on
    ``day``), apply the day's manager changes, and write ``contacts_<day>.csv`` (and
    ``campaigns_<day>.csv`` when a campaign starts that day).

    Meant for the days after ``config.as_of``, one after another; the rows are the same
    ones a longer run would produce for that day. Applying a day twice changes nothing
    (an upsert where the newer ``updated_at`` wins).
    """
    started = time.perf_counter()
    sim = Simulation(config)
    target = sim.cal.day(day)
    if target < 0:
        raise ValueError(f"day {day} is before the start date {config.start_date}")
    fs, root = landing(landing_dir)
    files = FileStore(fs, root, LANDING_ENTITIES, "daily", Writer.date_of(sim.pop))
    store = SourceDayStore(source_dsn, files)
    return _run(sim, store, target, False, target, day, started)


def write_files(config: GeneratorConfig, landing_dir: str, layout: str = "daily",
                until: dt.date | None = None) -> GenerationSummary:
    """Everything as CSV files in ``landing_dir`` (a folder or an fsspec URL).

    ``layout="daily"``: ``<entity>_YYYYMMDD.csv`` for each day with rows, an event log: a
    corrected line or reassigned client appears again in the file of the day it changed.
    ``layout="single"``: one ``<entity>.csv`` per entity with the state as of the last day.
    ``until`` (default ``config.as_of``) is the last day; a later day continues the same
    population, as ``advance_one_day`` does. Files this generator wrote before are removed.
    """
    started = time.perf_counter()
    sim = Simulation(config)
    last = sim.cal.day(until or config.as_of)
    if last < 0:
        raise ValueError(f"until ({until}) is before the start date {config.start_date}")
    fs, root = landing(landing_dir)
    clean_landing(fs, root, tuple(COLUMNS))
    store = FileStore(fs, root, tuple(COLUMNS), layout, Writer.date_of(sim.pop))
    return _run(sim, store, last, layout == "single", 0, config.start_date, started)


# ------------------------------------------------------------------------- command line
def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(prog="python -m winback.generator",
                                     description="Generate the winback demo sales system and CRM exports.")
    parser.add_argument("--lines", type=int, default=defaults.target_lines, help="target number of sales lines")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--start", type=_date, default=defaults.start_date, help="first day (YYYY-MM-DD)")
    parser.add_argument("--as-of", type=_date, default=defaults.as_of, help="last day (YYYY-MM-DD)")
    parser.add_argument("--source-url", help="PostgreSQL URI of the source database (default: the configured "
                        "sales source, else the embedded server's source database)")
    parser.add_argument("--landing", required=True, help="landing folder or fsspec URL for the CSV files")
    parser.add_argument("--files", choices=("daily", "single"),
                        help="write every entity as CSV files in this layout instead of a source database")
    parser.add_argument("--advance", type=_date, metavar="DAY",
                        help="instead of a full generation, advance an existing source to DAY")
    args = parser.parse_args(argv)
    config = GeneratorConfig(seed=args.seed, target_lines=args.lines, start_date=args.start, as_of=args.as_of)
    if args.files:
        summary = write_files(config, args.landing, layout=args.files)
    else:
        dsn = args.source_url
        if not dsn:
            from winback import warehouse

            dsn = warehouse.source_dsn()
        if args.advance:
            summary = advance_one_day(config, dsn, args.landing, args.advance)
        else:
            summary = generate_source(config, dsn, args.landing)
    report = {k: v for k, v in dataclasses.asdict(summary).items() if k != "files"}
    report.update(files=len(summary.files), lines_per_second=round(summary.lines_per_second))
    json.dump(report, sys.stdout, default=str, indent=2)
    sys.stdout.write("\n")
    return 0
