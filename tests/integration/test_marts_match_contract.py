"""The dbt marts against the independent reference of the metric contract, row for row.

For a few random shapes of sales history (few clients with a long history, many clients
with a short one, heavy churn) a small raw dataset is generated in Python (returns,
cancellations, lines that net a day to zero, gaps around L = 180 days, tied revenues,
lines and contacts after D), loaded into raw.sales_lines / raw.contacts of a fresh
warehouse, the dbt project is built for an as-of date D, and the marts are compared
with ``tests/reference/contract.py``: money to 0.01, rates to 1e-9, everything else
exactly. A mismatch prints the first differing rows of every table.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest
from reference import contract

from winback.analytics import campaign_uplift, signal_comparison
from winback.dbt import run_dbt

pytestmark = pytest.mark.integration

MONEY_TOLERANCE = Decimal("0.01")
RATE_TOLERANCE = 1e-9
STORED_4_PLACES = 0.00005 + 1e-12  # a figure the mart stores rounded to 4 places
SHOW_ROWS = 12


# ----------------------------------------------------------------------------- random raw data
@dataclass(frozen=True)
class Shape:
    name: str
    seed: int
    clients: int
    first_day: dt.date      # clients start buying from here (spread over start_spread_days)
    start_spread_days: int
    last_day: dt.date       # lines and contacts are generated up to here, also after D
    as_of: dt.date
    rhythm_days: tuple[int, int]  # a client's usual gap between orders is drawn from this range
    long_gap_share: float   # share of gaps that are long (near L, or far beyond)
    stop_share: float       # chance after each order that the client never buys again
    clones: int = 0         # clients with one identical order (tied window revenue)


SHAPES = [
    Shape("few_clients_long_history", 101, 12, dt.date(2016, 1, 1), 200, dt.date(2024, 12, 31),
          dt.date(2024, 9, 30), (4, 40), 0.08, 0.0),
    Shape("many_clients_short_history", 202, 240, dt.date(2023, 2, 15), 420, dt.date(2024, 10, 31),
          dt.date(2024, 8, 14), (15, 120), 0.10, 0.05, clones=20),
    Shape("heavy_churn", 303, 110, dt.date(2020, 1, 1), 700, dt.date(2024, 3, 31),
          dt.date(2024, 1, 1), (20, 90), 0.35, 0.08, clones=6),
]
NEAR_L_GAPS = [179, 180, 181, 182, 183]
CHANNELS = ["direct", "online", "dealer", "phone"]
CONTACT_CHANNELS = ["call", "email", "meeting", "messenger"]
OUTCOMES = ["no_answer", "reached", "offer_sent", "order_promised", "refused", None]
LOSS_REASONS = ["price", "quality", "service", "competitor", "no_need", None, None]
MANAGERS = [f"M{n}" for n in range(1, 6)]


def cents(value: int) -> Decimal:
    return Decimal(value) / 100


COST_SHARES = [Decimal("0.3"), Decimal("0.4"), Decimal("0.5"), Decimal("0.6"), Decimal("0.7"), Decimal("0.8")]


def generate(shape: Shape) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(sales lines, contacts, clients) for one shape, deterministic for its seed."""
    rng = random.Random(shape.seed)
    lines: list[dict[str, Any]] = []

    def line(client: str, order: str, day: dt.date, amount: Decimal, status: str = "completed") -> None:
        lines.append({
            "line_id": f"{order}-{len(lines)}", "order_id": order, "client_id": client, "order_date": day,
            "quantity": Decimal(1 if amount >= 0 else -1), "net_amount": amount,
            # a cost share of 30-80 % that differs by client, so margins do not rank as revenues do
            "cost_amount": (abs(amount) * COST_SHARES[sum(map(ord, client)) % len(COST_SHARES)]).quantize(
                Decimal("0.01")) * (1 if amount >= 0 else -1),
            "product_id": f"P{rng.randrange(30)}", "channel": rng.choice(CHANNELS), "status": status,
        })

    client_ids = [f"C{n:04d}" for n in range(1, shape.clients + 1)]
    for index, client in enumerate(client_ids):
        day = shape.first_day + dt.timedelta(days=rng.randrange(shape.start_spread_days))
        if index < shape.clones:
            # Identical single orders in one quarter: ties in window revenue, broken by client_id.
            clone_day = shape.first_day + dt.timedelta(days=120 + rng.randrange(60))
            line(client, f"O{client}-1", clone_day, Decimal("250.00"))
            continue
        if index == shape.clones and shape.clients > 30:
            # A client whose only order is returned the same day: lines but never a purchase day.
            zero_day = shape.first_day + dt.timedelta(days=150)
            line(client, f"O{client}-1", zero_day, Decimal("100.00"))
            line(client, f"O{client}-1", zero_day, Decimal("-100.00"), "returned")
            continue
        scale = rng.choice([1, 1, 2, 5, 20, 100])  # a long-tailed client size, for ABC
        rhythm = rng.randint(*shape.rhythm_days)
        number = 0
        while day <= shape.last_day:
            number += 1
            order = f"O{client}-{number}"
            kept = Decimal(0)
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                amount = cents(rng.randint(500, 40000) * scale)
                status = "cancelled" if rng.random() < 0.05 else "completed"
                line(client, order, day, amount, status)
                if status != "cancelled":
                    kept += amount
            roll = rng.random()
            if roll < 0.04 and kept > 0:
                line(client, order, day, -kept, "returned")  # the whole order back: the day nets to 0
            elif roll < 0.08 and kept > 0:
                line(client, order, day, -(kept * Decimal(rng.randint(10, 90)) / 100).quantize(Decimal("0.01")),
                     "returned")
            elif roll < 0.14 and kept > 0:
                later = day + dt.timedelta(days=rng.randint(1, 40))
                if later <= shape.last_day:
                    line(client, order, later, -(kept / 2).quantize(Decimal("0.01")), "returned")
            if rng.random() < shape.stop_share:
                break
            if rng.random() < shape.long_gap_share:
                gap = rng.choice(NEAR_L_GAPS) if rng.random() < 0.5 else rng.randint(184, 600)
            else:
                gap = max(1, int(rng.expovariate(1 / rhythm)))
            day += dt.timedelta(days=gap)
    sales = pd.DataFrame(lines)

    # Contacts: some at random, many right around lost dates (boundaries 0 and 30 days after).
    contacts: list[dict[str, Any]] = []

    def contact(client: str | None, day: dt.date) -> None:
        contacts.append({
            "contact_id": f"K{len(contacts)}", "client_id": client, "manager_id": rng.choice(MANAGERS),
            "contact_at": dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC),
            "channel": rng.choice(CONTACT_CHANNELS), "direction": rng.choice(["inbound", "outbound"]),
            "outcome": rng.choice(OUTCOMES), "loss_reason": rng.choice(LOSS_REASONS),
            "nps_score": rng.choice([None, None, rng.randint(0, 10)]),
        })

    span = (shape.last_day - shape.first_day).days
    for client in client_ids:
        for _ in range(rng.randint(0, 3)):
            contact(client, shape.first_day + dt.timedelta(days=rng.randrange(span)))
    every_episode = contract.lost_episodes(sales, shape.last_day, 180)
    for episode in every_episode.itertuples(index=False):
        if rng.random() < 0.6:
            offset = rng.choice([-1, 0, 1, 10, 29, 30, 31, 45])
            day = episode.lost_date + dt.timedelta(days=offset)
            if day <= shape.last_day:
                contact(episode.client_id, day)
    for _ in range(3):
        contact(None, shape.first_day + dt.timedelta(days=rng.randrange(span)))

    # Clients: most have a row; a few are late-arriving (sales and contacts without a client row).
    clients = [
        {"client_id": c, "name": f"Client {c}", "region": rng.choice(["North", "South", "West"]),
         "industry": rng.choice(["retail", "food", "construction"]), "manager_id": rng.choice(MANAGERS),
         "acquisition_channel": rng.choice(["referral", "web", "fair"]),
         "potential_revenue": cents(rng.randint(100000, 5000000)) if rng.random() < 0.5 else None}
        for c in client_ids if rng.random() < 0.93
    ]
    contact_frame = pd.DataFrame(contacts)
    contact_frame["nps_score"] = contact_frame["nps_score"].astype("Int64")
    return sales, with_campaigns(contact_frame, random.Random(shape.seed + 1)), clients


CAMPAIGNS = [  # W3 has contacts but no campaigns row: it counts with cost 0
    {"campaign_id": "W1", "name": "Spring win-back", "start_date": dt.date(2020, 3, 1), "end_date": None,
     "target_segment": "lost A/B", "cost": Decimal("1500.00")},
    {"campaign_id": "W2", "name": "Gift mailing", "start_date": dt.date(2021, 9, 1),
     "end_date": dt.date(2021, 10, 31), "target_segment": "lost", "cost": Decimal("400.00")},
]
OFFER_TYPES = ["gift", "service", "discount", "none", None]


def with_campaigns(contacts: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    """Contract v2 columns on about half the contacts (a campaign, an offer type and value,
    mixed case on purpose), drawn from their own random stream so that the v1 columns of the
    generated data stay as they were."""
    campaign, offer, value = [], [], []
    for _ in range(len(contacts)):
        chosen = rng.choice(["W1", "W2", "W3"]) if rng.random() < 0.5 else None
        kind = rng.choice(OFFER_TYPES) if chosen else None
        campaign.append(chosen)
        offer.append(kind.upper() if kind == "gift" and rng.random() < 0.3 else kind)
        value.append(cents(rng.randint(0, 30000)) if kind not in (None, "none") else None)
    return contacts.assign(campaign_id=campaign, offer_type=offer, offer_value=value)


# ----------------------------------------------------------------------------- loading
SALES_COLUMNS = ["line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "cost_amount",
                 "product_id", "channel", "status"]
CONTACT_COLUMNS = ["contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome",
                   "loss_reason", "nps_score", "campaign_id", "offer_type", "offer_value"]
CAMPAIGN_COLUMNS = ["campaign_id", "name", "start_date", "end_date", "target_segment", "cost"]
CLIENT_COLUMNS = ["client_id", "name", "region", "industry", "manager_id", "acquisition_channel",
                  "potential_revenue"]


def copy_rows(conn: psycopg.Connection, table: str, columns: list[str], rows: list[dict]) -> None:
    names = ", ".join(columns + ["_source_object", "_load_id"])
    with conn.cursor().copy(f"copy {table} ({names}) from stdin") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns] + ["test", 0])


def load_raw(dsn: str, sales: pd.DataFrame, contacts: pd.DataFrame, clients: list[dict]) -> None:
    none = lambda frame: frame.astype(object).where(frame.notna(), None).to_dict("records")  # noqa: E731
    with psycopg.connect(dsn) as conn:
        copy_rows(conn, "raw.managers", ["manager_id", "name", "team", "active"],
                  [{"manager_id": m, "name": f"Manager {m}", "team": "T1", "active": True} for m in MANAGERS])
        copy_rows(conn, "raw.clients", CLIENT_COLUMNS, clients)
        copy_rows(conn, "raw.sales_lines", SALES_COLUMNS, none(sales))
        copy_rows(conn, "raw.contacts", CONTACT_COLUMNS, none(contacts.reindex(columns=CONTACT_COLUMNS)))
        if "campaign_id" in contacts and contacts.campaign_id.notna().any():
            copy_rows(conn, "raw.campaigns", CAMPAIGN_COLUMNS, CAMPAIGNS)


def read_relation(dsn: str, relation: str, where: str = "") -> pd.DataFrame | str:
    """The rows of a relation, or the error text when it cannot be read."""
    try:
        with psycopg.connect(dsn) as conn:
            cursor = conn.execute(f"select * from {relation} {where}")
            columns = [d.name for d in cursor.description]
            return pd.DataFrame(cursor.fetchall(), columns=columns)
    except psycopg.Error as exc:
        return f"cannot read {relation}: {str(exc).strip().splitlines()[0]}"


# ----------------------------------------------------------------------------- comparison
def is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normal(value: Any) -> Any:
    """One spelling per value: dates as date, integers as int, numpy scalars as Python scalars."""
    if is_null(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes, Decimal)):
        value = value.item()
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date()
    return value


def equal(kind: str, expected: Any, actual: Any) -> bool:
    expected, actual = normal(expected), normal(actual)
    if expected is None or actual is None:
        return expected is None and actual is None
    if kind == "money":
        return abs(Decimal(str(expected)) - Decimal(str(actual))) <= MONEY_TOLERANCE
    if kind == "rate":
        return abs(float(expected) - float(actual)) <= RATE_TOLERANCE
    if kind == "rounded4":
        return abs(float(expected) - float(actual)) <= STORED_4_PLACES
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float | Decimal) and isinstance(actual, int | float | Decimal):
        return Decimal(str(expected)) == Decimal(str(actual))
    return expected == actual


def show(value: Any) -> str:
    value = normal(value)
    return "null" if value is None else str(value)


@dataclass
class Table:
    title: str
    keys: list[str]
    money: tuple[str, ...] = ()
    rates: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    rounded4: tuple[str, ...] = ()

    def kind(self, column: str) -> str:
        if column in self.rounded4:
            return "rounded4"
        return "money" if column in self.money else "rate" if column in self.rates else "exact"

    @property
    def values(self) -> list[str]:
        return [*self.exact, *self.money, *self.rates, *self.rounded4]


def diff(table: Table, expected: pd.DataFrame, actual: pd.DataFrame | str,
         allow_extra=None) -> list[str]:
    """Readable differences between the reference rows and the mart rows (empty when equal)."""
    if isinstance(actual, str):
        return [f"{table.title}: {actual}"]
    missing = [c for c in table.keys + table.values if c not in actual.columns]
    if missing:
        return [f"{table.title}: the mart has no column(s) {', '.join(missing)} (has: {', '.join(actual.columns)})"]

    def keyed(frame: pd.DataFrame, side: str, problems: list[str]) -> dict[tuple, dict]:
        rows: dict[tuple, dict] = {}
        for record in frame.to_dict("records"):
            key = tuple(normal(record[k]) for k in table.keys)
            if key in rows:
                problems.append(f"  duplicate key in the {side}: {dict(zip(table.keys, key, strict=True))}")
            rows[key] = record
        return rows

    lines: list[str] = []
    want, got = keyed(expected, "reference", lines), keyed(actual, "mart", lines)
    for key in sorted(set(want) | set(got), key=lambda k: tuple(str(v) for v in k)):
        label = ", ".join(f"{k}={show(v)}" for k, v in zip(table.keys, key, strict=True))
        if key not in got:
            values = "; ".join(f"{c}={show(want[key][c])}" for c in table.values)
            lines.append(f"  [{label}] missing from the mart; reference: {values}")
        elif key not in want:
            if allow_extra is not None and allow_extra(got[key]):
                continue
            values = "; ".join(f"{c}={show(got[key][c])}" for c in table.values)
            lines.append(f"  [{label}] only in the mart: {values}")
        else:
            cells = [f"{c}: reference={show(want[key][c])} mart={show(got[key][c])}"
                     for c in table.values if not equal(table.kind(c), want[key][c], got[key][c])]
            if cells:
                lines.append(f"  [{label}] " + "; ".join(cells))
    if not lines:
        return []
    head = (f"{table.title}: {len(lines)} differing row(s) (reference {len(expected)} rows, mart {len(actual)} rows)"
            + (f", first {SHOW_ROWS}:" if len(lines) > SHOW_ROWS else ":"))
    return [head, *lines[:SHOW_ROWS]]


EPISODES = Table("marts.fct_lost_episodes", ["client_id", "episode_number"],
                 exact=("last_purchase_date", "lost_date", "return_date", "days_to_return", "is_returned"))
KPIS = Table("kpi_staging.kpi_quarterly", ["quarter_start"],
             exact=("active_clients_start", "new_clients", "lost_clients", "returned_clients", "lost_pool_start",
                    "is_window_complete", "as_of_date"),
             money=("revenue_lost_ttm", "revenue_recovered_90d", "gross_margin_lost_ttm", "gross_margin_recovered_90d"),
             rates=("churn_rate", "winback_rate", "median_days_to_return", "lost_contacted_share"))
SEGMENTS = Table("marts.fct_client_segments", ["client_id", "quarter_end"],
                 exact=("abc_class", "xyz_class", "abc_xyz_class"), money=("window_revenue",))
MIGRATIONS = Table("marts.fct_segment_migrations", ["quarter_end", "segmentation", "from_class", "to_class"],
                   exact=("clients",), money=("window_revenue",))
AT_RISK = Table("marts.at_risk_clients", ["client_id"],
                exact=("last_purchase_date", "days_since_last_purchase", "purchase_days", "expected_next_purchase_date",
                       "days_overdue", "days_since_last_contact", "is_overdue", "is_declining", "risk_rank"),
                money=("revenue_recent", "revenue_year_before", "revenue_12m", "revenue_at_risk"),
                rates=("typical_gap_days", "risk_score"))
BACKTEST = Table("marts.fct_early_warning_backtest", ["quarter_start"],
                 exact=("quarter_end", "flagged_as_of", "horizon_end", "active_clients", "flagged_clients",
                        "lost_clients", "flagged_lost_clients"),
                 money=("lost_revenue_12m", "flagged_lost_revenue_12m"),
                 rates=("flag_precision", "flag_recall", "loss_rate", "flagged_revenue_share"))
CLIENT_VALUE = Table("marts.client_value", ["client_id"],
                     exact=("first_purchase_date", "last_purchase_date", "days_since_last_purchase", "tenure_days",
                            "purchase_days", "ltv_rank", "is_lost", "abc_class", "latest_nps_score", "nps_category",
                            "loyalty_index", "days_since_last_contact"),
                     money=("lifetime_net_revenue", "lifetime_gross_margin"))
COVERAGE = Table("reporting.contact_coverage_by_manager", ["manager_id"],
                 exact=("key_clients", "key_clients_contacted"), rates=("contact_coverage",))
RECORDING = Table("reporting.loss_reason_recording", ["quarter_start", "manager_id"],
                  exact=("lost_clients", "reason_recorded"), rates=("recording_rate",))
NPS = Table("marts.fct_nps_quarterly", ["quarter_start", "dimension", "dimension_value"],
            exact=("responses", "promoters", "passives", "detractors"), rates=("nps",))
CAMPAIGN_RESULTS = Table("marts.fct_campaign_results", ["campaign_id", "abc_class", "offer_type"],
                         exact=("campaign_name", "targeted_episodes", "reached_episodes", "returned_90d",
                                "window_complete_90d", "returned_180d", "window_complete_180d"),
                         money=("revenue_recovered", "gross_margin_recovered", "offer_cost", "campaign_cost",
                                "net_margin"),
                         rates=("return_rate",))
UPLIFT_CELLS = Table("intermediate.int_campaign_uplift_cells",
                     ["campaign_id", "offer_type", "lost_quarter", "abc_class", "entry_month"],
                     exact=("treated_episodes", "treated_returned", "comparison_episodes", "comparison_returned"))
COHORTS = Table("marts.fct_cohort_return_rates (overall)", ["cohort_quarter", "dimension", "dimension_value"],
                exact=("lost_episodes", "returned_within_90", "returned_within_180", "returned_within_365",
                       "window_closed_90", "window_closed_180", "window_closed_365"),
                rates=("return_rate_90", "return_rate_180", "return_rate_365"))


def empty_cohort(row: dict) -> bool:
    """A cohort row with no episodes (the reference lists only quarters with episodes): fine if it says 0/null."""
    return (normal(row["lost_episodes"]) == 0
            and all(normal(row[f"returned_within_{n}"]) == 0 for n in (90, 180, 365))
            and all(normal(row[f"return_rate_{n}"]) is None for n in (90, 180, 365)))


def test_diff_reports_every_kind_of_difference():
    """The comparison itself can fail: a changed, a missing and an extra row are all reported."""
    table = Table("t", ["k"], exact=("n",), money=("m",), rates=("r",))
    expected = pd.DataFrame([{"k": 1, "n": 1, "m": Decimal("1.00"), "r": 0.5},
                             {"k": 2, "n": 2, "m": Decimal("2.00"), "r": float("nan")}])
    same = pd.DataFrame([{"k": 1, "n": 1, "m": Decimal("1.004"), "r": 0.5 + 1e-12},
                         {"k": 2, "n": 2, "m": Decimal("2.00"), "r": None}])
    assert diff(table, expected, same) == []
    changed = pd.DataFrame([{"k": 1, "n": 1, "m": Decimal("1.02"), "r": 0.5},
                            {"k": 3, "n": 2, "m": Decimal("2.00"), "r": 0.0}])
    report = "\n".join(diff(table, expected, changed))
    assert "[k=1] m: reference=1.00 mart=1.02" in report
    assert "[k=2] missing from the mart" in report
    assert "[k=3] only in the mart" in report
    assert diff(table, expected.assign(r=[0.5, 0.0]), same) != []  # 0 is not null


# ----------------------------------------------------------------------------- hand-made edge datasets
def handmade(lines: list[tuple], contact_days: list[tuple] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Lines (client, 'YYYY-MM-DD', 'amount'[, status]) and contacts (client, 'YYYY-MM-DD') at noon UTC."""
    sales = pd.DataFrame([
        {"line_id": f"H{n}", "order_id": f"HO{n}", "client_id": client, "order_date": dt.date.fromisoformat(day),
         "quantity": Decimal(1), "net_amount": Decimal(amount), "cost_amount": None, "product_id": "P1",
         "channel": "direct", "status": rest[0] if rest else "completed"}
        for n, (client, day, amount, *rest) in enumerate(lines)
    ])
    contacts = pd.DataFrame([
        {"contact_id": f"HK{n}", "client_id": client, "manager_id": "M1",
         "contact_at": dt.datetime.combine(dt.date.fromisoformat(day), dt.time(12, 0), tzinfo=dt.UTC),
         "channel": "call", "direction": "outbound", "outcome": "reached", "loss_reason": "price", "nps_score": None}
        for n, (client, day) in enumerate(contact_days)
    ], columns=CONTACT_COLUMNS)
    contacts["nps_score"] = contacts["nps_score"].astype("Int64")
    return sales, contacts, [{"client_id": "KA", "name": "Client KA", "region": "North", "industry": "food",
                              "manager_id": "M1", "acquisition_channel": "web", "potential_revenue": None}]


def lost_edges() -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """The lost / return / window boundaries of the contract, one client per case (D = 2024-12-31)."""
    return handmade([
        ("KA", "2023-01-15", "100.00"), ("KA", "2023-02-10", "50.00"),  # lost 2023-08-10
        ("KA", "2024-03-01", "200.00"),                                # back after 204 days; lost 2024-08-29
        ("KA", "2025-01-05", "999.00"),                                # after D
        ("KB", "2023-03-31", "1000.00"), ("KB", "2023-06-01", "500.00", "cancelled"),  # lost 2023-09-28
        ("KC", "2024-04-02", "300.00"), ("KC", "2024-05-01", "-50.00", "returned"),     # lost 2024-09-30
        ("L1", "2024-01-01", "10.00"), ("L1", "2024-06-30", "10.00"),  # bought again on day L+1: never lost
        ("L2", "2024-01-01", "10.00"), ("L2", "2024-07-01", "10.00"),  # on day L+2: lost for one day
        ("T1", "2023-01-10", "10.00"), ("T1", "2023-12-01", "10.00"), ("T1", "2024-01-15", "10.00"),  # 2 episodes
        ("Z1", "2023-01-10", "10.00"),
        ("Z1", "2023-09-01", "10.00"), ("Z1", "2023-09-01", "-10.00", "returned"),  # nets to 0: not a return
        ("Z1", "2023-10-01", "10.00", "cancelled"), ("Z1", "2023-11-01", "10.00"),  # the return
        ("W1", "2022-07-01", "1.00"), ("W1", "2022-07-02", "2.00"), ("W1", "2022-10-01", "4.00"),
        ("W1", "2023-01-02", "8.00"), ("W1", "2023-07-02", "-0.50", "returned"),  # lost 2023-07-02
        ("W1", "2023-11-15", "40.00"), ("W1", "2023-12-20", "60.00"),
        ("W1", "2024-02-12", "7.00"), ("W1", "2024-02-13", "1000.00"),  # return + 89 / + 90
        ("R1", "2022-01-01", "10.00"), ("R1", "2022-09-29", "10.00"),  # back after 90 days
        ("R2", "2022-01-01", "10.00"), ("R2", "2022-09-30", "10.00"),  # after 91
        ("R3", "2022-01-01", "10.00"), ("R3", "2023-07-01", "10.00"),  # after 365
        ("R4", "2022-01-01", "10.00"), ("R4", "2023-07-02", "10.00"),  # after 366
        ("R5", "2022-01-01", "10.00"),
    ], [
        ("KA", "2023-08-09"), ("KA", "2023-09-10"),  # lost date - 1 and + 31: outside
        ("KB", "2023-10-28"), ("KC", "2024-09-30"),  # + 30 and + 0: inside
        ("L2", "2025-01-02"), (None, "2024-09-30"),  # after D; unmatched
    ])


def abc_edges() -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """share_before exactly 0.80 and 0.95 with cent amounts (0.70 + 0.10 is not 0.80 in floats), a tie."""
    return handmade([
        ("A1", "2024-01-10", "0.70"),
        ("A3", "2024-02-10", "0.10"), ("A2", "2024-02-10", "0.10"),  # tie: A2 first (A), A3 at 0.80 (B)
        ("A4", "2024-03-10", "0.05"),                                # 0.90: B
        ("A5", "2024-03-10", "0.05"), ("A5", "2024-03-11", "9.00", "cancelled"),  # exactly 0.95: C
        ("A6", "2024-01-05", "0.10"), ("A6", "2024-01-20", "-0.10", "returned"),  # window revenue 0: N
        ("A7", "2024-03-01", "-0.03", "returned"),                                # negative: N
        ("A8", "2024-03-05", "5.00", "cancelled"),                                # only cancelled: no row
    ])


def xyz_edges() -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """CV exactly 0.5 and exactly 1.0 (months without sales count as 0), in whole units and in cents."""
    months = [dt.date(2023 + (3 + i) // 12, (3 + i) % 12 + 1, 15) for i in range(12)]  # Apr 2023 .. Mar 2024
    lines = [("X0", "2023-03-15", "100")]  # before the window of 2024-03-31
    lines += [("X1", m.isoformat(), "100") for m in months]                                  # CV 0
    lines += [("X2", m.isoformat(), "30" if i % 2 == 0 else "10") for i, m in enumerate(months)]  # CV 0.5
    lines += [("X3", m.isoformat(), "0.30" if i % 2 == 0 else "0.10") for i, m in enumerate(months)]
    lines += [("X4", m.isoformat(), "31" if i % 2 == 0 else "10") for i, m in enumerate(months)]  # CV 0.51
    lines += [("X5", m.isoformat(), "10") for m in months[:6]]                                # CV 1.0
    lines += [("X6", m.isoformat(), "0.10") for m in months[6:]]
    lines += [("X7", m.isoformat(), "10") for m in months[:5]]                                # CV 1.18
    lines += [("X8", "2023-12-24", "10")]
    return handmade(lines)


@dataclass(frozen=True)
class Case:
    name: str
    build: Any              # () -> (sales, contacts, clients)
    as_of: dt.date
    overrides: tuple = ()   # dbt vars besides as_of_date, as (name, value) pairs
    min_episodes: int = 0
    generated: bool = False  # generated data (winback.generator), not a hand-made edge case


CASES = [
    *(Case(s.name, lambda s=s: generate(s), s.as_of, min_episodes=5, generated=True) for s in SHAPES),
    Case("lost_edges", lost_edges, dt.date(2024, 12, 31), min_episodes=8),
    Case("abc_edges", abc_edges, dt.date(2024, 4, 15)),
    Case("xyz_edges", xyz_edges, dt.date(2024, 5, 1)),
    # The contract's numbers are settings: other values must flow through the marts too.
    Case("heavy_churn_other_vars", lambda: generate(SHAPES[2]), SHAPES[2].as_of,
         (("lost_after_days", 120), ("abc_a_share", 0.7), ("abc_b_share", 0.9), ("xyz_x_max_cv", 0.25),
          ("xyz_y_max_cv", 0.8), ("revenue_lost_window_days", 180), ("revenue_recovered_window_days", 60),
          ("contact_after_loss_days", 14), ("abc_basis", "gross_margin"),
          ("lost_after_days_by_industry", {"construction": 240, "food": 90})), min_episodes=5, generated=True),
]


def test_the_hand_made_data_holds_the_edge_cases():
    """The reference sees the boundaries the hand-made datasets are built for (no database needed)."""
    params = contract.default_params()
    sales, _, _ = abc_edges()
    at_e = contract.segments(sales, dt.date(2024, 4, 15), params).set_index("client_id")["abc_class"].to_dict()
    assert at_e == {"A1": "A", "A2": "A", "A3": "B", "A4": "B", "A5": "C", "A6": "N", "A7": "N"}
    sales, _, _ = xyz_edges()
    segments = contract.segments(sales, dt.date(2024, 5, 1), params)
    at_e = segments[segments.quarter_end == dt.date(2024, 3, 31)].set_index("client_id")["xyz_class"].to_dict()
    assert at_e == {"X0": "N", "X1": "X", "X2": "X", "X3": "X", "X4": "Y", "X5": "Y", "X6": "Y", "X7": "Z",
                    "X8": "Z"}
    sales, _, _ = lost_edges()
    episodes = contract.lost_episodes(sales, dt.date(2024, 12, 31), 180)
    by_client = {c: list(rows.itertuples(index=False)) for c, rows in episodes.groupby("client_id")}
    # L1 bought again on its would-be lost date: its only episode starts after the second purchase.
    assert [e.last_purchase_date for e in by_client["L1"]] == [dt.date(2024, 6, 30)]
    assert by_client["L2"][0].lost_date == dt.date(2024, 6, 30) and by_client["L2"][0].days_to_return == 1
    assert episodes[episodes.client_id == "T1"].episode_number.tolist() == [1, 2]


# ----------------------------------------------------------------------------- the test
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_marts_match_the_reference(warehouse_dsn, case):
    sales, contacts, clients = case.build()
    assert len(sales) <= 4000, len(sales)  # small test data: the machine is shared
    load_raw(warehouse_dsn, sales, contacts, clients)
    dbt_vars = dict(case.overrides)

    problems: list[str] = []
    try:
        run_dbt(["build", "--exclude", "test_type:unit"], warehouse_dsn, vars=dbt_vars, as_of=case.as_of)
    except Exception as exc:  # keep comparing whatever was built, and report the failure too
        problems.append(f"dbt build failed: {type(exc).__name__}: {exc}"[:4000])

    params = {**contract.default_params(), **dict(case.overrides),
              "client_industries": {str(c["client_id"]): c.get("industry") for c in clients}}
    as_of = case.as_of
    reference = {
        "episodes": contract.lost_episodes(sales, as_of, contract.lost_after_of(params)),
        "kpis": contract.quarterly_kpis(sales, contacts, as_of, params),
        "segments": contract.segments(sales, as_of, params),
        "cohorts": contract.cohort_return_rates(sales, as_of, params),
    }
    reference["migrations"] = contract.migrations(reference["segments"])
    reference["at_risk"] = contract.at_risk_clients(sales, contacts, as_of, params)
    reference["backtest"] = contract.early_warning_backtest(sales, as_of, params)
    reference["nps"] = contract.nps_quarterly(sales, contacts, clients, as_of)
    reference["client_value"] = contract.client_value(sales, contacts, as_of, params)
    managers = {str(c["client_id"]): c.get("manager_id") for c in clients}
    reference["coverage"] = contract.contact_coverage(reference["client_value"], managers, params)
    reference["recording"] = contract.loss_reason_recording(sales, contacts, managers, as_of, params)
    targeted = contract.campaign_episodes(sales, contacts, as_of, params)
    reference["campaigns"] = contract.campaign_results(targeted, CAMPAIGNS, params)
    reference["uplift_cells"] = contract.campaign_uplift_cells(sales, contacts, targeted, as_of, params)
    episodes = reference["episodes"]
    assert len(episodes) >= case.min_episodes  # the data really exercises the lost-client rules
    if case.min_episodes:
        assert episodes.is_returned.any() and (~episodes.is_returned).any()
        assert len(reference["kpis"]) >= 4
    if case.generated:  # the early-warning rules are exercised both ways
        at_risk = reference["at_risk"]
        assert at_risk.is_overdue.any() and at_risk.is_declining.any()
        assert not (at_risk.is_overdue | at_risk.is_declining).all()
        assert len(reference["nps"]) >= 4 and (reference["nps"].nps != 0).any()
        value = reference["client_value"]  # lost and active, every NPS category, loyalty spread out
        assert value.is_lost.any() and (~value.is_lost).any()
        assert set(value.nps_category.dropna()) == {"promoter", "passive", "detractor"}
        assert value.loyalty_index.max() - value.loyalty_index.min() >= 2
        recording = reference["recording"]  # losses with and without a recorded reason
        assert 0 < recording.reason_recorded.sum() < recording.lost_clients.sum()
        if not case.overrides:  # (the heavy-churn data's key clients are all quiet at D)
            assert reference["coverage"].key_clients_contacted.sum() > 0
        campaigns = reference["campaigns"]  # campaigns that pay and that do not, cells to compare with
        assert (campaigns.net_margin > 0).any() and (campaigns.net_margin < 0).any()
        assert set(campaigns.offer_type) >= {"gift", "service", "discount", "none"}
        if len(episodes) >= 100:  # (a dozen clients leave no lost client uncontacted to compare with)
            assert len(reference["uplift_cells"]) >= 1
        backtest = reference["backtest"]  # quarters judged, with hits and misses
        assert len(backtest) >= 2 and (backtest.flagged_lost_clients > 0).any()
        assert (backtest.flagged_lost_clients < backtest.lost_clients).any()

    problems += diff(EPISODES, episodes, read_relation(warehouse_dsn, "marts.fct_lost_episodes"))
    problems += diff(KPIS, reference["kpis"], read_relation(warehouse_dsn, "kpi_staging.kpi_quarterly"))
    problems += diff(SEGMENTS, reference["segments"], read_relation(warehouse_dsn, "marts.fct_client_segments"))
    problems += diff(COHORTS, reference["cohorts"],
                     read_relation(warehouse_dsn, "marts.fct_cohort_return_rates", "where dimension = 'overall'"),
                     allow_extra=empty_cohort)
    problems += diff(MIGRATIONS, reference["migrations"],
                     read_relation(warehouse_dsn, "marts.fct_segment_migrations"))
    problems += diff(AT_RISK, reference["at_risk"], read_relation(warehouse_dsn, "marts.at_risk_clients"))
    problems += diff(BACKTEST, reference["backtest"], read_relation(warehouse_dsn, "marts.fct_early_warning_backtest"))
    problems += diff(NPS, reference["nps"], read_relation(warehouse_dsn, "marts.fct_nps_quarterly"))
    problems += diff(CLIENT_VALUE, reference["client_value"], read_relation(warehouse_dsn, "marts.client_value"))
    problems += diff(COVERAGE, reference["coverage"],
                     read_relation(warehouse_dsn, "reporting.contact_coverage_by_manager"))
    problems += diff(RECORDING, reference["recording"], read_relation(warehouse_dsn, "reporting.loss_reason_recording"))
    if not reference["campaigns"].empty or case.generated:
        problems += diff(CAMPAIGN_RESULTS, reference["campaigns"],
                         read_relation(warehouse_dsn, "marts.fct_campaign_results"))
        problems += diff(UPLIFT_CELLS, reference["uplift_cells"],
                         read_relation(warehouse_dsn, "intermediate.int_campaign_uplift_cells"))
    if case.generated:  # the uplift pooled from those cells
        campaign_uplift.refresh(warehouse_dsn)
        for grouping, by in (("offer_type", ["offer_type"]), ("offer_type_segment", ["offer_type", "abc_class"])):
            problems += diff(Table(f"reporting.campaign_uplift ({grouping})", by,
                                   rounded4=("uplift", "uplift_ci_low", "uplift_ci_high")),
                             contract.campaign_uplift(reference["uplift_cells"], by),
                             read_relation(warehouse_dsn, "reporting.campaign_uplift",
                                           f"where grouping = '{grouping}'"))
    if case.generated:  # the signal comparison judges the rhythm list as the backtest does
        with psycopg.connect(warehouse_dsn) as conn:
            compared = {q.quarter_start: (q.active, q.rhythm.flagged, q.lost, q.rhythm.flagged_lost)
                        for q in signal_comparison.compare(conn)}
        expected = {row.quarter_start: (row.active_clients, row.flagged_clients, row.lost_clients,
                                        row.flagged_lost_clients) for row in reference["backtest"].itertuples()}
        if compared != expected:
            problems.append(f"signal comparison, rhythm: {compared} != reference backtest {expected}")
    if problems:
        report = f"case {case.name} (D = {as_of}, vars {dbt_vars}):\n" + "\n".join(problems)
        print(report)
        pytest.fail(report, pytrace=False)
