"""Turning the simulation's numbers into contract rows, and writing them.

Rows are tuples of text (``None`` for null) in the contract's column order. Stores take
rows per entity and day: the source database (bulk COPY, or one day's upsert) and CSV
files in a landing location (a local folder or any fsspec URL).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack

import fsspec
import numpy as np
import psycopg
from psycopg import sql

from winback.generator import _config as C
from winback.generator._engine import ContactBatch, Emitter, LineBatch, Population, mix_hash

COLUMNS: dict[str, tuple[str, ...]] = {
    "sales_lines": ("line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "cost_amount",
                    "product_id", "channel", "status", "updated_at"),
    "clients": ("client_id", "name", "region", "industry", "manager_id", "acquisition_channel",
                "potential_revenue", "email", "phone", "created_at", "updated_at"),
    "managers": ("manager_id", "name", "team", "active"),
    "contacts": ("contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome",
                 "loss_reason", "nps_score", "notes", "campaign_id", "offer_type", "offer_value", "updated_at"),
    "campaigns": ("campaign_id", "name", "start_date", "end_date", "target_segment", "cost", "updated_at"),
}
# Sales lines are turned into text rows this many at a time.
FORMAT_ROWS = 2048
KEYS = {"sales_lines": "line_id", "clients": "client_id", "managers": "manager_id", "contacts": "contact_id",
        "campaigns": "campaign_id"}

SOURCE_DDL = {
    "managers": "create table public.managers (manager_id text not null, name text, team text, active boolean)",
    "clients": """create table public.clients (
        client_id text not null, name text, region text, industry text, manager_id text,
        acquisition_channel text, potential_revenue numeric(14, 2), email text, phone text,
        created_at timestamptz, updated_at timestamptz)""",
    "sales_lines": """create table public.sales_lines (
        line_id text not null, order_id text not null, client_id text not null, order_date date not null,
        quantity numeric(14, 2) not null, net_amount numeric(14, 2) not null, cost_amount numeric(14, 2),
        product_id text, channel text, status text, updated_at timestamptz)""",
}
SOURCE_TABLES = ("sales_lines", "clients", "managers")
# What the SQL-source outputs write as files in the landing location (the CRM's exports).
LANDING_ENTITIES = ("contacts", "campaigns")


class GeneratorError(RuntimeError):
    """The generator cannot do what was asked; the message says why."""


# ------------------------------------------------------------------------- notes
_ROUTINE_NOTES = {
    C.NO_ANSWER: ("No answer, will call again", "Left a voicemail", "Line busy; try again tomorrow morning"),
    C.REACHED: ("Discussed upcoming order volumes", "Checked stock needs for next month, will order soon",
                "Spoke to {person}; happy with deliveries", 'Client asked: "can you deliver on Saturdays?"',
                "Meeting summary:\n- volumes stable\n- wants the price list for next quarter"),
    C.OFFER_SENT: ("Sent offer with a volume discount", "Sent updated price list, 3% off on repeat orders"),
    C.ORDER_PROMISED: ("Promised an order next week", "Will order after budget approval, {person} to confirm"),
    C.REFUSED: ("Not interested right now", "Refused, budget frozen until next year"),
    C.COMPLAINT: ("Complaint about late delivery; escalated to logistics", 'Complaint: "two pallets damaged, again"'),
}
_REASON_NOTES = (
    ('Client said: "your prices went up too much"', "Moved to a cheaper supplier, asked for a counter-offer"),
    ("Unhappy with the quality of the last batch", "Quality issues, wants a guarantee before ordering again"),
    ("Delivery delays, lost trust in our service", "Support did not answer for a week, client annoyed"),
    ("Buys from a competitor now, their offer was 7% cheaper", "Competitor gave longer payment terms"),
    ("Previous manager left, client lost contact with us", "Did not get along with the new account manager"),
    ("No need for our products at the moment", "Project finished, no purchases planned"),
    ("Company is closing its business", "Business sold, the new owners have their own suppliers"),
    ("Did not give a reason", "Will think about it, call back in a month"),
)
_WINBACK_NO_ANSWER = ("Tried to reach after a long pause, no answer", "Win-back call, voicemail left for {person}")
_UNMATCHED_NOTES = ("Caller did not give a company name, asked for prices",
                    "Inbound call from unknown number {phone}",
                    "E-mail from a private address, could not match it to a client")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


# ------------------------------------------------------------------------- formatting
class Formatter:
    def __init__(self, pop: Population):
        self.pop = pop
        self.seed = pop.cfg.seed
        self._dates: dict[int, str] = {}

    def date(self, day: int) -> str:
        day = int(day)
        text = self._dates.get(day)
        if text is None:
            if len(self._dates) >= 512:  # a small cache: memory must not grow with the run
                self._dates.clear()
            text = self._dates[day] = self.pop.cal.date(day).isoformat()
        return text

    def stamps(self, days: np.ndarray | Sequence[int], secs: np.ndarray | Sequence[int]) -> list[str]:
        """'YYYY-MM-DD HH:MM:SS+00:00' for day numbers and seconds of the day (UTC)."""
        days = np.asarray(days, dtype=np.int64)
        secs = np.asarray(secs, dtype=np.int64)
        unique, position = np.unique(days, return_inverse=True)
        prefix = [self.date(day) for day in unique.tolist()]
        return [f"{prefix[i]} {h:02d}:{m:02d}:{s:02d}+00:00" for i, h, m, s in zip(
            position.tolist(), (secs // 3600).tolist(), (secs // 60 % 60).tolist(), (secs % 60).tolist(), strict=True)]

    @staticmethod
    def money(values: np.ndarray) -> list[str]:
        return [f"{v / 100:.2f}" for v in values.tolist()]

    @staticmethod
    def client_id(client: int) -> str:
        return f"C{client + 1:06d}"

    @staticmethod
    def manager_id(manager: int) -> str:
        return f"M{manager + 1:04d}"

    # -- sales lines ------------------------------------------------------------------
    def lines(self, b: LineBatch) -> list[tuple]:
        prefix = b.order_prefix
        date = self.date
        return list(zip(
            [f"L{n:08d}" for n in b.line_no.tolist()],
            [f"{prefix}{n:08d}" for n in b.order_no.tolist()],
            [f"C{c + 1:06d}" for c in b.client.tolist()],
            [date(d) for d in b.order_day.tolist()],
            self.money(b.qty), self.money(b.net), self.money(b.cost),
            [f"P{p + 1:05d}" for p in b.product.tolist()],
            [C.SALES_CHANNELS[c] for c in b.channel.tolist()],
            [C.STATUSES[s] for s in b.status.tolist()],
            self.stamps(b.upd_day, b.upd_sec),
            strict=True,
        ))

    # -- clients ----------------------------------------------------------------------
    def _people(self, salt: int, idx: np.ndarray) -> list[tuple[str, str]]:
        h = mix_hash(self.seed, salt, idx).tolist()
        return [(C.FIRST_NAMES[x % len(C.FIRST_NAMES)], C.SURNAMES[(x >> 12) % len(C.SURNAMES)]) for x in h]

    def _phone(self, x: int) -> str:
        return f"+1-{C.PHONE_AREAS[x % len(C.PHONE_AREAS)]}-555-01{(x >> 8) % 100:02d}"

    def company_names(self, clients: np.ndarray) -> list[str]:
        names = []
        for x in mix_hash(self.seed, 21, clients).tolist():
            word = C.NAME_WORDS[(x >> 8) % len(C.NAME_WORDS)]
            trade = C.NAME_TRADES[(x >> 16) % len(C.NAME_TRADES)]
            one = C.SURNAMES[(x >> 24) % len(C.SURNAMES)]
            two = C.SURNAMES[(x >> 32) % len(C.SURNAMES)]
            suffix = C.NAME_SUFFIXES[(x >> 40) % len(C.NAME_SUFFIXES)]
            pattern = x % 10
            if pattern < 3:
                names.append(f"{word} {trade} {suffix}")
            elif pattern < 6:
                names.append(f"{one} {trade} {suffix}")
            elif pattern == 6:
                names.append(f"{one} & {two} {suffix}")
            elif pattern == 7:
                names.append(f"{one}, {two} and Co")
            elif pattern == 8:
                names.append(f'{suffix} "{word} {trade}"')
            else:
                names.append(f"{word} {trade} of {C.REGIONS[(x >> 48) % len(C.REGIONS)]}")
        return names

    def clients(self, clients: np.ndarray, as_of: np.ndarray | int) -> list[tuple]:
        """Client rows as they stand on day ``as_of`` (an array: each client's own day)."""
        pop = self.pop
        as_of = np.broadcast_to(np.asarray(as_of), clients.shape)
        first_manager = pop.manager[clients]
        moved = pop.mgr_leave[first_manager] <= as_of
        manager = np.where(moved, pop.mgr_repl[first_manager], first_manager)
        created_sec = (8 * 3600 + mix_hash(self.seed, 31, clients) % np.uint64(10 * 3600)).astype(np.int64)
        created = self.stamps(pop.created[clients], created_sec)
        upd_day = np.where(moved, pop.mgr_leave[first_manager], pop.created[clients])
        upd_sec = np.where(moved, pop.mgr_leave_sec[first_manager], created_sec)
        updated = self.stamps(upd_day, upd_sec)
        names = self.company_names(clients)
        people = self._people(41, clients)
        h = mix_hash(self.seed, 51, clients).tolist()
        potential = pop.potential[clients].tolist()
        rows = []
        for i, c in enumerate(clients.tolist()):
            x = h[i]
            first, last = people[i]
            slug = _slug(names[i])[:24] or "client"
            email = None if x % 20 == 0 else f"{first.lower()}.{last.lower()}@{slug}.example.com"
            phone = None if (x >> 5) % 10 == 0 else self._phone(x >> 9)
            rows.append((
                f"C{c + 1:06d}", names[i], C.REGIONS[pop.region[c]], C.INDUSTRIES[pop.industry[c]],
                f"M{manager[i] + 1:04d}", C.ACQUISITION_CHANNELS[pop.acquisition[c]],
                None if potential[i] < 0 else f"{potential[i]}00.00", email, phone, created[i], updated[i],
            ))
        return rows

    # -- managers ---------------------------------------------------------------------
    def managers(self, managers: np.ndarray, active: np.ndarray) -> list[tuple]:
        people = self._people(61, managers)
        team = self.pop.mgr_team[managers].tolist()
        return [(f"M{m + 1:04d}", f"{people[i][0]} {people[i][1]}", C.TEAMS[team[i]], "true" if active[i] else "false")
                for i, m in enumerate(managers.tolist())]

    # -- campaigns --------------------------------------------------------------------
    def campaigns(self, campaigns: np.ndarray) -> list[tuple]:
        plan = self.pop.campaigns
        sec = (8 * 3600 + mix_hash(self.seed, 71, campaigns) % np.uint64(2 * 3600)).astype(np.int64)
        updated = self.stamps(plan.start[campaigns], sec)
        cost = self.money(plan.cost[campaigns])
        return [(plan.campaign_id(k), plan.name(k), self.date(plan.start[k]), self.date(plan.end[k]),
                 C.CAMPAIGN_TARGETS[plan.target[k]], cost[i], updated[i])
                for i, k in enumerate(campaigns.tolist())]

    # -- contacts ---------------------------------------------------------------------
    def contacts(self, b: ContactBatch) -> list[tuple]:
        at = self.stamps(np.full(len(b), b.day), b.sec)
        upd = self.stamps(np.full(len(b), b.day), b.upd_sec)
        clients = b.client
        people = self._people(41, np.maximum(clients, 0))
        plan = self.pop.campaigns
        campaign_ids = {k: plan.campaign_id(k) for k in np.unique(b.campaign[b.campaign >= 0]).tolist()}
        campaign_ids[-1] = None
        offer_types = (*C.OFFER_TYPES, None)  # index -1: no offer
        offer_values = [None if v < 0 else f"{v / 100:.2f}" for v in b.offer_value.tolist()]
        campaigns, offers = b.campaign.tolist(), b.offer.tolist()
        rows = []
        for i, (client, manager, channel, inbound, outcome, reason, nps, note, winback) in enumerate(zip(
                clients.tolist(), b.manager.tolist(), b.channel.tolist(), b.direction.tolist(), b.outcome.tolist(),
                b.reason.tolist(), b.nps.tolist(), b.note.tolist(), b.winback.tolist(), strict=True)):
            text = None
            if note >= 0:
                if client < 0:
                    options: Sequence[str] = _UNMATCHED_NOTES
                elif winback:
                    options = _WINBACK_NO_ANSWER if reason < 0 else _REASON_NOTES[reason]
                else:
                    options = _ROUTINE_NOTES[outcome]
                template = options[note % len(options)]
                text = template.format(person=f"{people[i][0]} {people[i][1]}", phone=self._phone(note >> 7))
            rows.append((
                f"CT{b.contact_no[i]:08d}", None if client < 0 else f"C{client + 1:06d}", f"M{manager + 1:04d}",
                at[i], C.CONTACT_CHANNELS[channel], C.DIRECTIONS[inbound], C.OUTCOMES[outcome],
                None if reason < 0 else C.LOSS_REASONS[reason], None if nps < 0 else str(nps), text,
                campaign_ids[campaigns[i]], offer_types[offers[i]], offer_values[i], upd[i],
            ))
        return rows


# ------------------------------------------------------------------------- emitter
class Writer(Emitter):
    """Formats what the simulation emits and hands it to a store; counts what it wrote."""

    def __init__(self, pop: Population, store: Store, final_until: int | None):
        self.pop = pop
        self.fmt = Formatter(pop)
        self.store = store
        self.final_until = final_until
        self.counts: Counter[str] = Counter()

    @staticmethod
    def date_of(pop: Population):
        """A day number -> 'YYYY-MM-DD' function (for file names)."""
        return Formatter(pop).date

    def new_clients(self, day: int, clients: np.ndarray) -> None:
        as_of = self.final_until if self.final_until is not None else self.pop.created[clients]
        self.store.rows("clients", day, self.fmt.clients(clients, as_of))
        self.counts["clients"] += len(clients)
        if self.final_until is not None:
            moved = self.pop.mgr_leave[self.pop.manager[clients]] <= self.final_until
            self.counts["client_updates"] += int(moved.sum())

    def reassigned_clients(self, day: int, clients: np.ndarray) -> None:
        self.store.rows("clients", day, self.fmt.clients(clients, day))
        self.counts["client_updates"] += len(clients)

    def managers(self, day: int, managers: np.ndarray, left: bool) -> None:
        if self.final_until is not None:
            if left:
                return
            active = self.pop.mgr_leave[managers] > self.final_until
            self.counts["manager_updates"] += int((~active).sum())
        else:
            active = np.full(len(managers), not left)
            if left:
                self.counts["manager_updates"] += len(managers)
        self.store.rows("managers", day, self.fmt.managers(managers, active))
        if not left:
            self.counts["managers"] += len(managers)

    def campaigns(self, day: int, campaigns: np.ndarray) -> None:
        self.store.rows("campaigns", day, self.fmt.campaigns(campaigns))
        self.counts["campaigns"] += len(campaigns)

    def lines(self, day: int, batch: LineBatch) -> None:
        if self.final_until is not None and batch.corr_day is not None:
            self.counts["corrections"] += int((batch.corr_day <= self.final_until).sum())
            batch = batch.final(self.final_until)
        self._count_lines(batch)
        self.counts["sales_lines"] += len(batch)
        self._write_lines(day, batch)

    def _write_lines(self, day: int, batch: LineBatch) -> None:
        """Format and write in slices, so the text rows in memory stay bounded."""
        if len(batch) <= FORMAT_ROWS:
            self.store.rows("sales_lines", day, self.fmt.lines(batch))
            return
        for begin in range(0, len(batch), FORMAT_ROWS):
            part = np.zeros(len(batch), dtype=bool)
            part[begin:begin + FORMAT_ROWS] = True
            self.store.rows("sales_lines", day, self.fmt.lines(batch.take(part)))

    def corrections(self, day: int, batch: LineBatch) -> None:
        self._count_lines(batch)
        self.counts["corrections"] += len(batch)
        self._write_lines(day, batch)

    def _count_lines(self, batch: LineBatch) -> None:
        self.counts["returns"] += int((batch.status == C.RETURNED).sum())
        self.counts["cancelled"] += int((batch.status == C.CANCELLED).sum())

    def contacts(self, day: int, batch: ContactBatch) -> None:
        self.counts["contacts"] += len(batch)
        self.store.rows("contacts", day, self.fmt.contacts(batch))

    def end_day(self, day: int) -> None:
        self.store.end_day(day)


# ------------------------------------------------------------------------- stores
def landing(landing_dir: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(str(landing_dir))
    root = root.rstrip("/") or "/"
    fs.makedirs(root, exist_ok=True)
    return fs, root


def clean_landing(fs: fsspec.AbstractFileSystem, root: str, entities: Sequence[str]) -> None:
    """Remove files this generator wrote before (``<entity>_YYYYMMDD.csv``, ``<entity>.csv``), so a
    new run leaves no rows dated after its as-of date behind. Other files are left alone."""
    for entity in entities:
        own = re.compile(rf"^{entity}(_\d{{8}})?\.csv$")
        for path in fs.glob(f"{root}/{entity}*.csv"):
            if own.match(path.rstrip("/").rsplit("/", 1)[-1]):
                fs.rm(path)


def _csv_text(rows: Sequence[tuple]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class Store:
    def rows(self, entity: str, day: int, rows: list[tuple]) -> None:
        raise NotImplementedError

    def end_day(self, day: int) -> None:
        """Called after the last rows of ``day``."""

    def close(self) -> dict[str, int]:
        """Finish; counts that replace the writer's (for upserts)."""
        return {}

    def abort(self, exc: BaseException) -> None:
        """Undo what can be undone after an error."""

    @property
    def files(self) -> list[str]:
        return []


class _CsvFile:
    """A CSV file written under a temporary name and renamed when complete."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, header: Sequence[str]):
        self.fs, self.path = fs, path
        folder, name = path.rsplit("/", 1)
        self.part = f"{folder}/.{name}.part"
        self.handle = fs.open(self.part, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle)  # RFC 4180: CRLF, quotes only where needed
        self.writer.writerow(header)

    def write(self, rows: Iterable[tuple]) -> None:
        self.writer.writerows(rows)

    def close(self) -> None:
        self.handle.close()
        self.fs.mv(self.part, self.path)

    def discard(self) -> None:
        self.handle.close()
        if self.fs.exists(self.part):
            self.fs.rm(self.part)


class FileStore(Store):
    """CSV files in a landing location: ``<entity>_YYYYMMDD.csv`` per day with rows (``daily``),
    or one ``<entity>.csv`` per entity for the whole run (``single``)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, entities: Sequence[str], layout: str,
                 date_text: Callable[[int], str]):
        if layout not in ("daily", "single"):
            raise ValueError(f"layout must be 'daily' or 'single' (got {layout!r})")
        self.fs, self.root, self.entities, self.layout = fs, root, tuple(entities), layout
        self._date = date_text  # day number -> 'YYYY-MM-DD'
        self._open: dict[str, _CsvFile] = {}
        self._written: list[str] = []
        if layout == "single":
            for entity in self.entities:
                self._open[entity] = _CsvFile(fs, f"{root}/{entity}.csv", COLUMNS[entity])

    def rows(self, entity: str, day: int, rows: list[tuple]) -> None:
        if entity not in self.entities or not rows:
            return
        handle = self._open.get(entity)
        if handle is None:
            stamp = self._date(day).replace("-", "")
            handle = self._open[entity] = _CsvFile(self.fs, f"{self.root}/{entity}_{stamp}.csv", COLUMNS[entity])
        handle.write(rows)

    def end_day(self, day: int) -> None:
        if self.layout == "daily":
            self._close_all()

    def _close_all(self) -> None:
        for handle in self._open.values():
            handle.close()
            self._written.append(handle.path)
        self._open.clear()

    def close(self) -> dict[str, int]:
        self._close_all()
        return {}

    def abort(self, exc: BaseException) -> None:
        for handle in self._open.values():
            handle.discard()
        self._open.clear()

    @property
    def files(self) -> list[str]:
        return list(self._written)


def _copy_statement(entity: str, table: str | None = None) -> sql.Composed:
    return sql.SQL("copy {} ({}) from stdin (format csv)").format(
        sql.Identifier(*(("public", entity) if table is None else (table,))),
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS[entity])))


class SourceBulkStore(Store):
    """Creates (replaces) the source tables and streams rows into them with COPY, one
    connection per big table; keys and indexes are built after the load."""

    def __init__(self, dsn: str, files: FileStore):
        self.dsn, self.files_store = dsn, files
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            for entity in SOURCE_TABLES:
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("public", entity)))
                conn.execute(SOURCE_DDL[entity])
        self._stack = ExitStack()
        self._copies = {}
        try:
            for entity in ("sales_lines", "clients"):
                conn = self._stack.enter_context(psycopg.connect(dsn))
                cur = self._stack.enter_context(conn.cursor())
                self._copies[entity] = self._stack.enter_context(cur.copy(_copy_statement(entity)))
        except BaseException:
            self._stack.close()
            raise
        self._managers: list[tuple] = []

    def rows(self, entity: str, day: int, rows: list[tuple]) -> None:
        if entity in LANDING_ENTITIES:
            self.files_store.rows(entity, day, rows)
        elif entity == "managers":
            self._managers.extend(rows)
        elif rows:
            self._copies[entity].write(_csv_text(rows))

    def end_day(self, day: int) -> None:
        self.files_store.end_day(day)

    def close(self) -> dict[str, int]:
        self._stack.close()  # ends the COPYs and commits
        self.files_store.close()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            with conn.cursor() as cur, cur.copy(_copy_statement("managers")) as copy:
                if self._managers:
                    copy.write(_csv_text(self._managers))
            for entity in SOURCE_TABLES:
                conn.execute(sql.SQL("alter table {} add primary key ({})").format(
                    sql.Identifier("public", entity), sql.Identifier(KEYS[entity])))
            for entity in ("sales_lines", "clients"):
                conn.execute(sql.SQL("create index {} on {} (updated_at)").format(
                    sql.Identifier(f"{entity}_updated_at_idx"), sql.Identifier("public", entity)))
            conn.execute("analyze public.sales_lines, public.clients, public.managers")
        return {}

    def abort(self, exc: BaseException) -> None:
        self._stack.__exit__(type(exc), exc, exc.__traceback__)
        self.files_store.abort(exc)

    @property
    def files(self) -> list[str]:
        return self.files_store.files


class SourceDayStore(Store):
    """One day's changes to an existing source: new rows inserted, re-delivered rows
    updated when newer (sales lines and clients by ``updated_at``), in one transaction."""

    def __init__(self, dsn: str, files: FileStore):
        self.dsn, self.files_store = dsn, files
        self._rows: dict[str, list[tuple]] = {entity: [] for entity in SOURCE_TABLES}

    def rows(self, entity: str, day: int, rows: list[tuple]) -> None:
        if entity in LANDING_ENTITIES:
            self.files_store.rows(entity, day, rows)
        else:
            self._rows[entity].extend(rows)

    def end_day(self, day: int) -> None:
        self.files_store.end_day(day)

    def close(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        names = {"sales_lines": ("sales_lines", "corrections"), "clients": ("clients", "client_updates"),
                 "managers": ("managers", "manager_updates")}
        with psycopg.connect(self.dsn) as conn:
            for entity in SOURCE_TABLES:
                found = conn.execute("select to_regclass(%s)", (f"public.{entity}",)).fetchone()[0]
                if found is None:
                    raise GeneratorError(f"the source has no table public.{entity}: run generate_source first")
            for entity in SOURCE_TABLES:
                inserted, updated = self._upsert(conn, entity, self._rows[entity])
                counts[names[entity][0]] = inserted
                counts[names[entity][1]] = updated
        self.files_store.close()
        return counts

    @staticmethod
    def _upsert(conn: psycopg.Connection, entity: str, rows: list[tuple]) -> tuple[int, int]:
        if not rows:
            return 0, 0
        temp = f"_winback_gen_{entity}"
        conn.execute(sql.SQL("create temp table {} (like {}) on commit drop").format(
            sql.Identifier(temp), sql.Identifier("public", entity)))
        with conn.cursor() as cur, cur.copy(_copy_statement(entity, temp)) as copy:
            copy.write(_csv_text(rows))
        columns = COLUMNS[entity]
        key = KEYS[entity]
        target = sql.Identifier("t")
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = excluded.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns if c != key)
        if "updated_at" in columns:
            newer = sql.SQL("{t}.updated_at is null or excluded.updated_at > {t}.updated_at").format(t=target)
        else:
            newer = sql.SQL("({}) is distinct from ({})").format(
                sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in columns),
                sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in columns))
        statement = sql.SQL(
            "insert into {table} as t ({cols}) select {cols} from {temp} "
            "on conflict ({key}) do update set {assign} where {newer} returning (xmax = 0)"
        ).format(table=sql.Identifier("public", entity), cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
                 temp=sql.Identifier(temp), key=sql.Identifier(key), assign=assignments, newer=newer)
        flags = [row[0] for row in conn.execute(statement).fetchall()]
        inserted = sum(1 for flag in flags if flag)
        return inserted, len(flags) - inserted

    def abort(self, exc: BaseException) -> None:
        self.files_store.abort(exc)

    @property
    def files(self) -> list[str]:
        return self.files_store.files

