"""The demo data generator, through its file output (no database).

Expected values come from the data contract and the metric contract (column names,
allowed values, the definitions of purchase day, lost episode and ABC class), computed
here from the written CSV files, never from the generator's own internals. One exception:
the statistical check of the offers' effect needs a million lines, so it reads the rows
the simulation hands to its writers (the numbers before they are formatted as CSV).
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json
import math
import re
import tracemalloc
from collections import Counter, defaultdict
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path

import fsspec
import numpy as np
import pytest

from winback.generator import GeneratorConfig, main, write_files
from winback.generator._config import CANCELLED
from winback.generator._config import OFFER_TYPES as OFFER_NAMES
from winback.generator._engine import Emitter, Simulation

# Column names exactly as in docs/data-contract.md.
CONTRACT = {
    "sales_lines": ["line_id", "order_id", "client_id", "order_date", "quantity", "net_amount", "cost_amount",
                    "product_id", "channel", "status", "updated_at"],
    "clients": ["client_id", "name", "region", "industry", "manager_id", "acquisition_channel", "potential_revenue",
                "email", "phone", "created_at", "updated_at"],
    "managers": ["manager_id", "name", "team", "active"],
    "contacts": ["contact_id", "client_id", "manager_id", "contact_at", "channel", "direction", "outcome",
                 "loss_reason", "nps_score", "notes", "campaign_id", "offer_type", "offer_value", "updated_at"],
    "campaigns": ["campaign_id", "name", "start_date", "end_date", "target_segment", "cost", "updated_at"],
}
LOSS_REASONS = {"price", "quality", "service", "competitor", "staff", "no_need", "closed_business", "other"}
OFFER_TYPES = {"gift", "service", "discount", "none"}
LOST_AFTER = 180  # the metric contract's default L

CONFIG = GeneratorConfig(seed=7, target_lines=20_000)
AS_OF = CONFIG.as_of


def read_csv(path: Path | str) -> list[dict[str, str]]:
    with fsspec.open(str(path), "r", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def day_of(timestamp: str) -> dt.date:
    return dt.datetime.fromisoformat(timestamp).date()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    summary = write_files(CONFIG, str(folder), layout="single")
    return summary, folder


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    folder = tmp_path_factory.mktemp("daily")
    summary = write_files(CONFIG, str(folder), layout="daily")
    return summary, folder


@pytest.fixture(scope="module")
def tables(single):
    _, folder = single
    return {entity: read_csv(folder / f"{entity}.csv") for entity in CONTRACT}


def purchase_days(lines: list[dict[str, str]]) -> dict[str, list[dt.date]]:
    """Per client, the sorted dates with net revenue > 0 (cancelled lines excluded)."""
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in lines:
        if row["status"] != "cancelled":
            revenue[(row["client_id"], row["order_date"])] += Decimal(row["net_amount"])
    days: dict[str, list[dt.date]] = defaultdict(list)
    for (client, day), amount in revenue.items():
        if amount > 0:
            days[client].append(dt.date.fromisoformat(day))
    return {client: sorted(values) for client, values in days.items()}


# ------------------------------------------------------------------------- determinism
def _all_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path):
    config = GeneratorConfig(seed=3, target_lines=3_000)
    write_files(config, str(tmp_path / "a"), layout="daily")
    write_files(config, str(tmp_path / "b"), layout="daily")
    first, second = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b")
    assert len(first) > 50
    assert any(name.startswith("campaigns_") for name in first)
    assert any(b",WB-" in data for name, data in first.items() if name.startswith("contacts_"))
    assert first == second


def test_other_seed_gives_other_data(tmp_path):
    write_files(GeneratorConfig(seed=3, target_lines=3_000), str(tmp_path / "a"), layout="single")
    write_files(GeneratorConfig(seed=4, target_lines=3_000), str(tmp_path / "b"), layout="single")
    for entity in ("sales_lines", "clients", "contacts"):
        assert (tmp_path / "a" / f"{entity}.csv").read_bytes() != (tmp_path / "b" / f"{entity}.csv").read_bytes()


# ------------------------------------------------------------------------- contract shape
def test_headers_are_exactly_the_contract_columns(single, daily):
    for _, folder in (single, daily):
        for path in folder.glob("*.csv"):
            entity = re.sub(r"(_\d{8})?\.csv$", "", path.name)
            with path.open(encoding="utf-8", newline="") as handle:
                assert next(csv.reader(handle)) == CONTRACT[entity], path.name


def test_file_names_and_one_file_per_day(single, daily):
    summary, folder = daily
    names = sorted(p.name for p in folder.iterdir())
    assert all(re.fullmatch(r"(sales_lines|clients|managers|contacts|campaigns)_\d{8}\.csv", n) for n in names), names[:5]
    assert len(summary.files) == len(names)
    contact_days = [n for n in names if n.startswith("contacts_")]
    assert len(contact_days) > 300  # about every working day has contacts
    _, single_folder = single
    assert sorted(p.name for p in single_folder.iterdir()) == sorted(f"{e}.csv" for e in CONTRACT)


def test_values_follow_the_contract(tables):
    two_decimals = re.compile(r"^-?\d+\.\d{2}$")
    lines = tables["sales_lines"]
    assert len({r["line_id"] for r in lines}) == len(lines)
    for row in lines:
        dt.date.fromisoformat(row["order_date"])
        dt.datetime.fromisoformat(row["updated_at"])
        assert all(two_decimals.match(row[c]) for c in ("quantity", "net_amount", "cost_amount")), row
        assert row["status"] in {"completed", "cancelled", "returned"}
        assert row["channel"] in {"direct", "online", "dealer", "phone"}
        assert row["line_id"] and row["order_id"] and row["client_id"] and row["product_id"]
    statuses = Counter(r["status"] for r in lines)
    assert statuses["completed"] > 0.9 * len(lines)
    completed = [r for r in lines if r["status"] == "completed"]
    cheaper = sum(Decimal(r["cost_amount"]) < Decimal(r["net_amount"]) for r in completed)
    assert cheaper > 0.9 * len(completed)
    # Orders group several lines.
    per_order = Counter(r["order_id"] for r in lines if r["status"] != "returned")
    assert max(per_order.values()) >= 4
    assert sum(1 for n in per_order.values() if n > 1) > 0.3 * len(per_order)

    clients = tables["clients"]
    assert len({r["client_id"] for r in clients}) == len(clients)
    for row in clients:
        assert row["name"].isascii() and row["region"] and row["industry"] and row["manager_id"]
        assert row["acquisition_channel"]
        assert row["potential_revenue"] == "" or float(row["potential_revenue"]) > 0
        assert row["email"] == "" or re.fullmatch(r"[a-z]+\.[a-z]+@[a-z0-9]+\.example\.com", row["email"])
        assert dt.datetime.fromisoformat(row["created_at"]) <= dt.datetime.fromisoformat(row["updated_at"])
    assert any(r["potential_revenue"] == "" for r in clients)  # the CRM does not know every potential

    managers = tables["managers"]
    assert {r["active"] for r in managers} <= {"true", "false"}
    assert len({r["team"] for r in managers}) >= 3
    known_managers = {r["manager_id"] for r in managers}
    assert {r["manager_id"] for r in clients} <= known_managers

    contacts = tables["contacts"]
    assert len({r["contact_id"] for r in contacts}) == len(contacts)
    for row in contacts:
        assert row["channel"] in {"call", "email", "meeting", "messenger", "visit"}
        assert row["direction"] in {"inbound", "outbound"}
        assert row["outcome"] in {"no_answer", "reached", "offer_sent", "order_promised", "refused", "complaint"}
        assert row["loss_reason"] == "" or row["loss_reason"] in LOSS_REASONS
        assert row["nps_score"] == "" or 0 <= int(row["nps_score"]) <= 10
        assert row["manager_id"] in known_managers
        assert day_of(row["contact_at"]) == day_of(row["updated_at"])
        assert row["contact_at"] <= row["updated_at"]


def test_csv_is_rfc4180_and_parses_with_dictreader(tables, single):
    _, folder = single
    contacts = tables["contacts"]
    notes = [r["notes"] for r in contacts if r["notes"]]
    # Notes carry commas, double quotes and line breaks: the quoting must round-trip them.
    assert any("," in n for n in notes) and any('"' in n for n in notes) and any("\n" in n for n in notes)
    raw = (folder / "contacts.csv").read_bytes()
    assert b"\r\n" in raw
    raw.decode("utf-8")
    assert all(len(row) == len(CONTRACT["contacts"]) for row in contacts)
    names = [r["name"] for r in tables["clients"]]
    assert any("," in n for n in names) or any('"' in n for n in names)


def test_nothing_is_dated_after_as_of(tables, daily):
    for row in tables["sales_lines"]:
        assert dt.date.fromisoformat(row["order_date"]) <= AS_OF
        assert day_of(row["updated_at"]) <= AS_OF
    for row in tables["clients"]:
        assert day_of(row["created_at"]) <= AS_OF and day_of(row["updated_at"]) <= AS_OF
    for row in tables["contacts"]:
        assert day_of(row["contact_at"]) <= AS_OF and day_of(row["updated_at"]) <= AS_OF
    for row in tables["campaigns"]:  # started by as_of; a running campaign may end after it
        assert dt.date.fromisoformat(row["start_date"]) <= AS_OF and day_of(row["updated_at"]) <= AS_OF
    _, folder = daily
    for path in folder.iterdir():
        assert dt.datetime.strptime(path.stem[-8:], "%Y%m%d").date() <= AS_OF


def test_daily_files_hold_the_rows_of_their_day(daily):
    _, folder = daily
    for path in sorted(folder.glob("sales_lines_*.csv"))[:120]:
        day = dt.datetime.strptime(path.stem[-8:], "%Y%m%d").date()
        for row in read_csv(path):
            assert day_of(row["updated_at"]) == day
            assert dt.date.fromisoformat(row["order_date"]) <= day
    for path in sorted(folder.glob("contacts_*.csv"))[:120]:
        day = dt.datetime.strptime(path.stem[-8:], "%Y%m%d").date()
        assert {day_of(r["contact_at"]) for r in read_csv(path)} == {day}
    campaign_files = sorted(folder.glob("campaigns_*.csv"))
    assert campaign_files
    for path in campaign_files:  # a campaign's row on its start day
        day = dt.datetime.strptime(path.stem[-8:], "%Y%m%d").date()
        rows = read_csv(path)
        assert {dt.date.fromisoformat(r["start_date"]) for r in rows} == {day}
        assert {day_of(r["updated_at"]) for r in rows} == {day}


# ------------------------------------------------------------------------- scale
@pytest.mark.parametrize("target", [3_000, 40_000])
def test_size_follows_target_lines(tmp_path, target):
    summary = write_files(GeneratorConfig(seed=5, target_lines=target), str(tmp_path), layout="single")
    lines = read_csv(tmp_path / "sales_lines.csv")
    assert len(lines) == summary.sales_lines
    assert 0.9 * target <= len(lines) <= 1.1 * target
    assert len(read_csv(tmp_path / "clients.csv")) == summary.clients
    # Clients and contacts in proportion: 20 to 120 lines per client, 3 to 40 lines per contact.
    assert 20 <= len(lines) / summary.clients <= 120
    assert 3 <= len(lines) / summary.contacts <= 40


def test_memory_does_not_grow_with_the_row_count(tmp_path):
    """Streaming: 4x the rows must not need much more memory (rows are never collected)."""
    year = {"start_date": dt.date(2024, 7, 1), "as_of": dt.date(2025, 6, 30)}  # a short span keeps it quick
    write_files(GeneratorConfig(seed=9, target_lines=1_000, **year), str(tmp_path / "warm"), layout="single")

    def peak(lines: int) -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        try:
            summary = write_files(GeneratorConfig(seed=9, target_lines=lines, **year), str(tmp_path / str(lines)),
                                  layout="single")
            return tracemalloc.get_traced_memory()[1], summary.sales_lines
        finally:
            tracemalloc.stop()

    small, small_rows = peak(6_000)
    large, large_rows = peak(24_000)
    assert large_rows > 3.5 * small_rows
    assert large <= 1.5 * small, (small, large)


# ------------------------------------------------------------------------- behaviour
def test_returns_cancellations_and_corrections(tables, daily):
    lines = tables["sales_lines"]
    returns = [r for r in lines if r["status"] == "returned"]
    assert returns and all(Decimal(r["quantity"]) < 0 and Decimal(r["net_amount"]) < 0 for r in returns)
    assert all(Decimal(r["quantity"]) > 0 and Decimal(r["net_amount"]) > 0 for r in lines if r["status"] != "returned")
    assert any(r["status"] == "cancelled" for r in lines)
    # Corrections: the same line_id delivered again on a later day, with a later updated_at and a
    # changed amount or status.
    _, folder = daily
    seen: dict[str, dict[str, str]] = {}
    corrections = []
    for path in sorted(folder.glob("sales_lines_*.csv")):
        for row in read_csv(path):
            before = seen.get(row["line_id"])
            if before is not None:
                assert row["updated_at"] > before["updated_at"]
                assert (row["net_amount"], row["status"]) != (before["net_amount"], before["status"])
                assert row["order_date"] == before["order_date"]
                corrections.append(row)
            seen[row["line_id"]] = row
    assert len(corrections) > 50
    assert any(r["status"] == "cancelled" for r in corrections)  # an order cancelled days later
    assert any(r["status"] == "completed" for r in corrections)  # an amount corrected


def test_daily_event_log_adds_up_to_the_final_state(single, daily):
    """Applying the daily files in order (latest updated_at wins) gives the as-of state."""
    _, daily_folder = daily
    _, single_folder = single
    keys = {"sales_lines": "line_id", "clients": "client_id", "managers": "manager_id", "contacts": "contact_id",
            "campaigns": "campaign_id"}
    for entity, key in keys.items():
        state: dict[str, dict[str, str]] = {}
        for path in sorted(daily_folder.glob(f"{entity}_*.csv")):
            for row in read_csv(path):
                old = state.get(row[key])
                if old is None or "updated_at" not in row or row["updated_at"] > old["updated_at"]:
                    state[row[key]] = row
        final = {row[key]: row for row in read_csv(single_folder / f"{entity}.csv")}
        assert state == final, entity


def test_the_next_day_continues_the_same_history(tmp_path):
    config = GeneratorConfig(seed=21, target_lines=10_000, correction_share=0.3)
    day = config.as_of + dt.timedelta(days=1)
    write_files(config, str(tmp_path / "before"), layout="single")
    write_files(config, str(tmp_path / "after"), layout="single", until=day)
    write_files(config, str(tmp_path / "log"), layout="daily", until=day)
    stamp = day.strftime("%Y%m%d")
    before = {r["line_id"]: r for r in read_csv(tmp_path / "before" / "sales_lines.csv")}
    after = {r["line_id"]: r for r in read_csv(tmp_path / "after" / "sales_lines.csv")}
    delta = read_csv(tmp_path / "log" / f"sales_lines_{stamp}.csv")
    assert delta and all(day_of(r["updated_at"]) == day for r in delta)
    new = [r for r in delta if r["line_id"] not in before]
    changed = [r for r in delta if r["line_id"] in before]
    assert new and changed
    assert all(dt.date.fromisoformat(r["order_date"]) == day for r in new)
    assert all(dt.date.fromisoformat(r["order_date"]) < day for r in changed)
    assert after == {**before, **{r["line_id"]: r for r in delta}}
    # Contacts: the day's file (if the day had any) holds exactly the day's rows of the longer run.
    all_contacts = read_csv(tmp_path / "after" / "contacts.csv")
    day_contacts = [r for r in all_contacts if day_of(r["contact_at"]) == day]
    day_file = tmp_path / "log" / f"contacts_{stamp}.csv"
    assert (read_csv(day_file) if day_file.exists() else []) == day_contacts
    assert [r for r in all_contacts if day_of(r["contact_at"]) < day] == read_csv(tmp_path / "before" / "contacts.csv")
    # Campaigns: those started by as_of are the same rows, whatever the run's length.
    campaigns = read_csv(tmp_path / "after" / "campaigns.csv")
    assert campaigns
    started = [r for r in campaigns if dt.date.fromisoformat(r["start_date"]) < day]
    assert started == read_csv(tmp_path / "before" / "campaigns.csv")


# ------------------------------------------------------------------------- archetypes
def test_clients_are_lost_and_some_come_back(tables):
    days = purchase_days(tables["sales_lines"])
    gaps = {c: [(a, b) for a, b in zip(d, d[1:], strict=False) if (b - a).days > LOST_AFTER + 1]
            for c, d in days.items()}
    returned = {c for c, g in gaps.items() if g}
    lost_now = {c for c, d in days.items() if (AS_OF - d[-1]).days >= LOST_AFTER + 1}
    assert len(returned) >= 0.05 * len(days)
    assert len(lost_now) >= 0.10 * len(days)
    assert len(lost_now) <= 0.60 * len(days)

    # Some returns follow a manager's contact after the loss (win-back), others come back alone.
    contacts = defaultdict(list)
    for row in tables["contacts"]:
        if row["client_id"]:
            contacts[row["client_id"]].append(row)
    after_contact = alone = 0
    for client, pairs in gaps.items():
        for last, back in pairs:
            lost = last + dt.timedelta(days=LOST_AFTER + 1)
            touched = [r for r in contacts[client] if lost <= day_of(r["contact_at"]) < back]
            if any((back - day_of(r["contact_at"])).days <= 90 for r in touched):
                after_contact += 1
            elif not touched:
                alone += 1
    assert after_contact >= 5 and alone >= 5

    # Lost clients are contacted within 30 days of the lost date and give loss reasons.
    contacted_soon = sum(
        1 for c in lost_now
        if any(0 <= (day_of(r["contact_at"]) - days[c][-1]).days - (LOST_AFTER + 1) <= 30 for r in contacts[c]))
    assert contacted_soon >= 0.15 * len(lost_now)
    reasons = Counter(r["loss_reason"] for r in tables["contacts"] if r["loss_reason"])
    assert set(reasons) >= {"price", "competitor", "service", "quality"}
    assert any(r["nps_score"] for r in tables["contacts"])
    assert any(not r["client_id"] for r in tables["contacts"])  # unmatched contacts


def test_purchase_rhythms_differ(tables):
    days = purchase_days(tables["sales_lines"])
    one_off = [c for c, d in days.items() if len(d) == 1]
    assert len(one_off) >= 0.04 * len(days)

    def gap_cv(d: list[dt.date]) -> float:
        gaps = [(b - a).days for a, b in zip(d, d[1:], strict=False)]
        mean = sum(gaps) / len(gaps)
        return (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean

    frequent = {c: d for c, d in days.items() if len(d) >= 20}
    regular = [c for c, d in frequent.items() if gap_cv(d) < 0.5]
    assert len(regular) >= 10
    mean_gaps = sorted((d[-1] - d[0]).days / (len(d) - 1) for c, d in frequent.items() if c in regular)
    assert mean_gaps[-1] > 2 * mean_gaps[0]  # each with its own rhythm
    # Seasonal buyers: purchases in at least two years, but only in a few calendar months.
    seasonal = [c for c, d in days.items()
                if len({x.year for x in d}) >= 2 and len({x.month for x in d}) <= 6 and len(d) >= 6]
    assert len(seasonal) >= 5


def _abc(lines: list[dict[str, str]], quarter_end: dt.date) -> dict[str, str]:
    """ABC class per the metric contract over the four quarters ending with ``quarter_end``."""
    start = dt.date(quarter_end.year - 1, quarter_end.month, 1) + dt.timedelta(days=31)
    start = start.replace(day=1)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for row in lines:
        day = dt.date.fromisoformat(row["order_date"])
        if row["status"] != "cancelled" and start <= day <= quarter_end:
            revenue[row["client_id"]] += Decimal(row["net_amount"])
    ranked = sorted(((-v, c) for c, v in revenue.items() if v > 0))
    total = sum(-v for v, _ in ranked)
    classes, before = {}, Decimal(0)
    for value, client in ranked:
        share = before / total
        classes[client] = "A" if share < Decimal("0.80") else "B" if share < Decimal("0.95") else "C"
        before += -value
    return classes


def test_abc_classes_migrate_between_quarters(tables):
    lines = tables["sales_lines"]
    earlier, later = _abc(lines, dt.date(2024, 6, 30)), _abc(lines, dt.date(2025, 6, 30))
    both = set(earlier) & set(later)
    up = sum(1 for c in both if later[c] < earlier[c])
    down = sum(1 for c in both if later[c] > earlier[c])
    assert up >= 5 and down >= 5
    share_a = sum(1 for c in later.values() if c == "A") / len(later)
    assert 0.10 <= share_a <= 0.45  # revenue is concentrated: a minority of clients makes 80 %


# ------------------------------------------------------------------------- campaigns and offers
MONEY = re.compile(r"^\d+\.\d{2}$")


def quarter_of(day: dt.date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def test_campaigns_follow_the_contract(tables):
    campaigns = tables["campaigns"]
    assert len({r["campaign_id"] for r in campaigns}) == len(campaigns)
    # One campaign per quarter, from the first quarter that begins a year after the start,
    # up to the as-of date (each starts in its quarter's first weeks).
    first = CONFIG.start_date + dt.timedelta(days=365)
    quarter_starts = [dt.date(y, m, 1) for y in range(first.year, AS_OF.year + 1) for m in (1, 4, 7, 10)]
    expected = [quarter_of(q) for q in quarter_starts if first <= q and q + dt.timedelta(days=20) <= AS_OF]
    assert [quarter_of(dt.date.fromisoformat(r["start_date"])) for r in campaigns] == expected
    for row in campaigns:
        start, end = dt.date.fromisoformat(row["start_date"]), dt.date.fromisoformat(row["end_date"])
        year, quarter = quarter_of(start)
        assert row["campaign_id"] == f"WB-{year}Q{quarter}"
        assert row["name"] and row["target_segment"]
        assert 30 <= (end - start).days <= 90
        assert start <= AS_OF and day_of(row["updated_at"]) == start
        assert MONEY.match(row["cost"]) and Decimal(row["cost"]) >= 0
    # One campaign at a time.
    windows = sorted((r["start_date"], r["end_date"]) for r in campaigns)
    assert all(end < next_start for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False))
    # A fixed cost of a realistic size: a fraction of a percent to a few percent of a quarter's revenue.
    revenue = sum(Decimal(r["net_amount"]) for r in tables["sales_lines"] if r["status"] != "cancelled")
    quarter_revenue = revenue / Decimal((AS_OF - CONFIG.start_date).days / 91.3)
    for row in campaigns:
        assert Decimal("0.0005") <= Decimal(row["cost"]) / quarter_revenue <= Decimal("0.05"), row


def test_contacts_name_campaigns_and_offers(tables):
    campaigns = {r["campaign_id"]: r for r in tables["campaigns"]}
    days = purchase_days(tables["sales_lines"])
    in_campaign: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in tables["contacts"]:
        if not row["campaign_id"]:  # routine and ad-hoc contacts make no offer
            assert row["offer_type"] == "" and row["offer_value"] == "", row
            continue
        campaign = campaigns[row["campaign_id"]]  # a campaign that was written
        assert campaign["start_date"] <= day_of(row["contact_at"]).isoformat() <= campaign["end_date"]
        assert row["client_id"]
        assert row["offer_type"] in OFFER_TYPES | {""}
        if row["offer_type"] in ("", "none"):
            assert row["offer_value"] == "", row
        else:
            assert MONEY.match(row["offer_value"]) and Decimal(row["offer_value"]) >= 0, row
        in_campaign[(row["client_id"], row["campaign_id"])].append(row)
    assert len(in_campaign) >= 10
    # A client's first contact in a campaign makes the offer (or none); follow-ups make none.
    for rows in in_campaign.values():
        rows.sort(key=lambda r: (r["contact_at"], r["contact_id"]))
        assert rows[0]["offer_type"] in OFFER_TYPES
        assert all(r["offer_type"] == "" for r in rows[1:])
    offered = Counter(rows[0]["offer_type"] for rows in in_campaign.values())
    assert len(offered) >= 3 and offered["none"] > 0  # a mix of offers and a control group
    # Campaign contacts are win-back contacts with lost clients: on or after the lost date.
    for (client, _), rows in in_campaign.items():
        for row in rows:
            day = day_of(row["contact_at"])
            before = [p for p in days.get(client, []) if p < day]
            assert not before or (day - before[-1]).days >= LOST_AFTER + 1, row


def test_campaign_sweeps_reach_lost_clients_and_leave_others_alone(tables):
    """At its start a campaign also contacts lost clients by itself (its sweep), clients lost
    long ago too, and leaves a good share of the lost clients without any contact: the
    comparison group of the campaigns' uplift (docs/metrics.md, "Uplift against a baseline")."""
    days = purchase_days(tables["sales_lines"])
    contacts: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    for row in tables["contacts"]:
        if row["client_id"]:
            contacts[row["client_id"]].append((day_of(row["contact_at"]), row["campaign_id"]))
    swept, swept_long_ago, lost_then, untouched = 0, 0, 0, 0
    for campaign in tables["campaigns"]:
        start = dt.date.fromisoformat(campaign["start_date"])
        first_weeks = start + dt.timedelta(days=15)
        for client, purchases in days.items():
            before = [p for p in purchases if p <= start]
            if not before or (start - before[-1]).days < LOST_AFTER + 1:
                continue  # not lost at the campaign's start
            away = (start - before[-1]).days
            if any(c == campaign["campaign_id"] and start <= day <= first_weeks for day, c in contacts[client]):
                swept += 1
                swept_long_ago += away > LOST_AFTER + 1 + 91  # lost more than a quarter before the start
            if start + dt.timedelta(days=180) <= AS_OF:
                lost_then += 1
                untouched += not any(start <= day <= start + dt.timedelta(days=180) for day, _ in contacts[client])
    # (Managers' own win-back contacts alone would put only a few lost clients in a campaign's
    # first weeks, hardly any lost that long.)
    assert swept >= 20 and swept_long_ago >= 3, (swept, swept_long_ago)
    assert lost_then and untouched >= 0.25 * lost_then, (untouched, lost_then)


class _OfferWatch(Emitter):
    """Follows the clients of the simulated offers, from the rows the simulation hands to its
    writers: whether the client orders within ``window`` days of the offer, how long it had not
    bought before it, and the client's average order so far."""

    def __init__(self, clients: int, window: int):
        self.window = window
        self.last_order = np.full(clients, -(10**6), dtype=np.int64)
        self.spent = np.zeros(clients)
        self.orders = np.zeros(clients, dtype=np.int64)
        self.offer_day = np.full(clients, -1, dtype=np.int64)
        self.offer = np.zeros(clients, dtype=np.int64)
        self.came_back = np.zeros(clients, dtype=bool)
        self.away = np.zeros(clients, dtype=np.int64)
        self.done: list[tuple[np.ndarray, ...]] = []
        self.values: list[tuple[np.ndarray, np.ndarray]] = []

    def lines(self, day: int, batch) -> None:
        if batch.order_prefix != "O":
            return
        kept = batch.status != CANCELLED
        clients = batch.client[kept]
        np.add.at(self.spent, clients, batch.net[kept])
        order_no, first = np.unique(batch.order_no[kept], return_index=True)
        np.add.at(self.orders, clients[first], 1)
        clients = np.unique(clients)
        watched = (self.offer_day[clients] >= 0) & (day - self.offer_day[clients] <= self.window)
        self.came_back[clients[watched]] = True
        self.last_order[clients] = day

    def close(self, clients: np.ndarray) -> None:
        clients = clients[self.offer_day[clients] >= 0]
        self.done.append((self.offer[clients], self.away[clients], self.came_back[clients]))
        self.offer_day[clients] = -1

    def contacts(self, day: int, batch) -> None:
        made = batch.offer >= 0
        clients = batch.client[made]
        self.close(clients)
        self.offer_day[clients] = day
        self.offer[clients] = batch.offer[made]
        self.came_back[clients] = False
        self.away[clients] = day - self.last_order[clients]
        valued = (batch.offer_value[made] >= 0) & (self.spent[clients] > 0)
        typical = self.spent[clients[valued]] / self.orders[clients[valued]]
        self.values.append((batch.offer[made][valued], batch.offer_value[made][valued] / typical))


def test_offers_bring_lost_clients_back_by_offer_type():
    """Offers act through the simulation: lost clients offered a service come back most often,
    then a gift, then a discount, and all three more often than the campaigns' control group
    (offer ``none``).

    Early in a lost episode the contacted clients include those who come back after any
    contact (the generator's returning clients are contacted within a month of their lost
    date), so the offers are compared among the clients still away a month after the lost
    date: the share that orders within 60 days of the offer. The population is simulated
    without formatting rows (1 M lines take a second or two that way, much longer as files)."""
    window = 60
    config = GeneratorConfig(seed=7, target_lines=1_000_000, as_of=dt.date(2025, 12, 31))
    sim = Simulation(config)
    watch = _OfferWatch(sim.pop.n, window)
    last = sim.cal.day(config.as_of)
    sim.run(last, watch)
    watch.close(np.flatnonzero((watch.offer_day >= 0) & (watch.offer_day <= last - window)))
    offer, away, came_back = (np.concatenate(column) for column in zip(*watch.done, strict=True))
    names = np.asarray(OFFER_NAMES)[offer]
    late = away > config.lost_after_days + 1 + 30
    counts = {name: int((late & (names == name)).sum()) for name in OFFER_NAMES}
    returned = {name: int((late & (names == name) & came_back).sum()) for name in OFFER_NAMES}
    assert set(OFFER_NAMES) == OFFER_TYPES and min(counts.values()) >= 100, counts  # every type is tried
    share = {name: returned[name] / counts[name] for name in OFFER_NAMES}
    assert share["service"] > share["gift"] > share["discount"] > share["none"], share

    def z(better: str, worse: str) -> float:
        """One-sided two-proportion z statistic of ``better`` against ``worse``."""
        pooled = (returned[better] + returned[worse]) / (counts[better] + counts[worse])
        return (share[better] - share[worse]) / math.sqrt(
            pooled * (1 - pooled) * (1 / counts[better] + 1 / counts[worse]))

    # ... and not by chance (1 % level): a service against no offer, a gift against a discount.
    assert z("service", "none") > 2.33, (share, counts)
    assert z("gift", "discount") > 2.33, (share, counts)

    # What an offer costs, relative to the client's average order so far: a gift least, a discount most.
    kind, ratio = (np.concatenate(column) for column in zip(*watch.values, strict=True))
    median = {OFFER_NAMES[k]: float(np.median(ratio[kind == k])) for k in np.unique(kind)}
    assert "none" not in median
    assert median["gift"] < median["service"] < median["discount"] < 0.5, median


# ------------------------------------------------------------------------- interface
def test_landing_accepts_an_fsspec_url():
    url = "memory://winback-generator-test"
    try:
        summary = write_files(GeneratorConfig(seed=1, target_lines=1_000), url, layout="single")
        rows = read_csv(f"{url}/sales_lines.csv")
        assert len(rows) == summary.sales_lines > 0
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists("/winback-generator-test"):
            fs.rm("/winback-generator-test", recursive=True)


def test_old_generator_files_are_replaced_and_others_kept(tmp_path):
    (tmp_path / "contacts_20991231.csv").write_text("contact_id\nX\n")
    (tmp_path / "contacts_manual_export.csv").write_text("contact_id\nY\n")
    (tmp_path / "readme.txt").write_text("keep me")
    write_files(GeneratorConfig(seed=1, target_lines=1_000), str(tmp_path), layout="single")
    names = {p.name for p in tmp_path.iterdir()}
    assert "contacts_20991231.csv" not in names
    assert {"contacts_manual_export.csv", "readme.txt", "sales_lines.csv"} <= names
    assert not any(n.startswith(".") for n in names)  # no temporary files left


def test_command_line_writes_files_and_reports(tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--lines", "1500", "--seed", "2", "--as-of", "2024-12-31", "--landing", str(tmp_path),
                     "--files", "single"])
    assert code == 0
    report = json.loads(out.getvalue())
    assert report["as_of"] == "2024-12-31"
    rows = read_csv(tmp_path / "sales_lines.csv")
    assert report["sales_lines"] == len(rows)
    assert max(r["order_date"] for r in rows) <= "2024-12-31"


@pytest.mark.parametrize("kwargs", [
    {"as_of": dt.date(2022, 12, 31)},
    {"target_lines": 10},
    {"return_share": 1.5},
    {"seed": -1},
])
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)
