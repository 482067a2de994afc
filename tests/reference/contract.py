"""The metric contract (``docs/metrics.md``, v1) in plain Python: a test oracle.

Every function takes the raw inputs (sales lines, contacts) and the as-of date ``D`` and
recomputes one figure family from the contract text, as literally as possible. Speed does
not matter (test data has thousands of rows); readability and exactness do:

* money is :class:`decimal.Decimal` (exact for the decimal amounts of the sales system);
* the ABC cut-offs are compared exactly (``share_before < 0.80`` with Decimals, no floats);
* the XYZ cut-offs are compared exactly with :class:`fractions.Fraction`
  (``CV <= c``  <=>  ``variance <= c**2 * mean**2`` since the mean of a classed client is > 0);
* rates are returned as floats, ``NaN`` when the denominator is 0 (the contract says null).

Conventions taken from the contract / the mart interface, each applied in one place:

* Net revenue: lines whose status is not ``cancelled``, with ``order_date <= D``.
* Purchase day: a date with client net revenue > 0 (a return can make a day not count).
* A closed quarter as of D ends on or before D; quarters covered run from the quarter of
  the earliest purchase day to the last closed quarter.
* ``contact_at`` timestamps with a time zone are taken as dates in UTC.

The optional adaptive threshold (beyond v1, off by default) is not implemented: the
functions raise ``NotImplementedError`` when it is switched on.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]

# The defaults written in the contract (used when the dbt project does not exist yet).
CONTRACT_DEFAULTS: dict[str, Any] = {
    "as_of_date": None,
    "lost_after_days": 180,
    "abc_a_share": 0.80,
    "abc_b_share": 0.95,
    "xyz_x_max_cv": 0.5,
    "xyz_y_max_cv": 1.0,
    "return_windows_days": [90, 180, 365],
    "revenue_lost_window_days": 365,
    "revenue_recovered_window_days": 90,
    "contact_after_loss_days": 30,
    "attribution_window_days": 90,
    "not_converted_window_days": 30,
    "adaptive_threshold_enabled": False,
    "adaptive_k": 3,
    "adaptive_min_days": 90,
    "adaptive_max_days": 365,
    "campaign_return_windows_days": [90, 180],
}

KPI_COLUMNS = [
    "quarter_start",
    "active_clients_start",
    "new_clients",
    "lost_clients",
    "returned_clients",
    "lost_pool_start",
    "churn_rate",
    "winback_rate",
    "revenue_lost_ttm",
    "revenue_recovered_90d",
    "gross_margin_lost_ttm",
    "gross_margin_recovered_90d",
    "is_window_complete",
    "median_days_to_return",
    "lost_contacted_share",
    "as_of_date",
]
EPISODE_COLUMNS = [
    "client_id", "episode_number", "last_purchase_date", "lost_date", "return_date", "days_to_return", "is_returned",
]
SEGMENT_COLUMNS = ["client_id", "quarter_end", "window_revenue", "abc_class", "xyz_class", "abc_xyz_class"]
MIGRATION_COLUMNS = ["quarter_end", "segmentation", "from_class", "to_class", "clients", "window_revenue"]
SEGMENTATIONS = {"abc": "abc_class", "xyz": "xyz_class", "abc_xyz": "abc_xyz_class"}
NO_CLASS = "N"


# ----------------------------------------------------------------------------- parameters
def default_params(project_dir: Path | str | None = None) -> dict[str, Any]:
    """The contract's numbers: the dbt vars when the dbt project exists, else the contract's defaults."""
    project_dir = Path(project_dir) if project_dir is not None else REPO_ROOT
    params = dict(CONTRACT_DEFAULTS)
    if (project_dir / "dbt_project" / "dbt_project.yml").exists():
        from winback.config import metric_contract_defaults

        params.update(metric_contract_defaults(project_dir))
    return params


def resolve_params(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overridden by ``params``."""
    resolved = {**default_params(), **(params or {})}
    if resolved.get("adaptive_threshold_enabled"):
        raise NotImplementedError("the reference implements the fixed threshold L only (adaptive rule is off in v1)")
    return resolved


# ----------------------------------------------------------------------------- small helpers
def lost_after_of(params: dict[str, Any]) -> Callable[[str], int]:
    """client_id -> its L in days: its industry's (lost_after_days_by_industry, the industries
    given as params["client_industries"]) or the global lost_after_days."""
    default = int(params["lost_after_days"])
    by_industry = {str(k): int(v) for k, v in (params.get("lost_after_days_by_industry") or {}).items()}
    industries = params.get("client_industries") or {}
    return lambda client: by_industry.get(industries.get(client), default)


def _threshold(lost_after_days: int | Callable[[str], int]) -> Callable[[str], int]:
    return lost_after_days if callable(lost_after_days) else (lambda _client: int(lost_after_days))


def as_date(value: Any) -> dt.date:
    """A date from a date, datetime, pandas Timestamp or ISO string."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def money(value: Any) -> Decimal:
    """An exact Decimal from a Decimal, int, float (via its shortest repr) or string."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def add_months(first_of_month: dt.date, months: int) -> dt.date:
    index = first_of_month.year * 12 + (first_of_month.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def quarter_end(day: dt.date) -> dt.date:
    return add_months(quarter_start(day), 3) - days(1)


def rate(numerator: int, denominator: int) -> float:
    """numerator / denominator, NaN (null) when the denominator is 0."""
    return float(Fraction(numerator, denominator)) if denominator else float("nan")


def rate4(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 4 decimals, halves away from zero (as SQL's
    round(numeric, 4): 9 / 32 = 0.28125 is 0.2813, where round(0.28125, 4) gives 0.2812)."""
    if not denominator:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


class Ledger:
    """The sales lines as of D, reduced to what the contract uses: client net revenue per day."""

    def __init__(self, sales: pd.DataFrame, as_of: Any):
        self.as_of = as_of_date = as_date(as_of)
        self.daily: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        # Gross margin per client-day: net revenue - cost (a line without a cost counts 0).
        self.margin_daily: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for row in sales.itertuples(index=False):
            status = getattr(row, "status", None)
            if isinstance(status, str) and status == "cancelled":
                continue  # cancelled lines are ignored in every metric
            day = as_date(row.order_date)
            if day > as_of_date:
                continue  # nothing after D is used
            self.daily[str(row.client_id)][day] += money(row.net_amount)
            cost = getattr(row, "cost_amount", None)
            self.margin_daily[str(row.client_id)][day] += money(row.net_amount) - (
                Decimal(0) if cost is None or pd.isna(cost) else money(cost))
        # Every client with at least one non-cancelled line <= D (even if its day nets to <= 0).
        self.clients = sorted(self.daily)
        self.first_line_day = {client: min(by_day) for client, by_day in self.daily.items()}
        self.purchase_days: dict[str, list[dt.date]] = {
            client: sorted(day for day, amount in by_day.items() if amount > 0)
            for client, by_day in self.daily.items()
        }

    def net(self, client: str, first: dt.date, last: dt.date) -> Decimal:
        """Net revenue of a client with order_date in [first, last] (and <= D)."""
        last = min(last, self.as_of)
        return sum(
            (amount for day, amount in self.daily.get(client, {}).items() if first <= day <= last), Decimal(0)
        )

    def margin(self, client: str, first: dt.date, last: dt.date) -> Decimal:
        """Gross margin of a client with order_date in [first, last] (and <= D)."""
        last = min(last, self.as_of)
        return sum(
            (amount for day, amount in self.margin_daily.get(client, {}).items() if first <= day <= last), Decimal(0)
        )

    def is_lost_on(self, client: str, day: dt.date, lost_after_days: int | Callable[[str], int]) -> bool:
        """Lost on ``day``: a purchase day <= day exists and day - latest one >= L + 1."""
        pdays = self.purchase_days.get(client, [])
        latest = bisect.bisect_right(pdays, day)
        return latest > 0 and (day - pdays[latest - 1]).days >= _threshold(lost_after_days)(client) + 1

    def has_purchase_day_before(self, client: str, day: dt.date) -> bool:
        pdays = self.purchase_days.get(client, [])
        return bool(pdays) and pdays[0] < day

    def earliest_purchase_day(self) -> dt.date | None:
        firsts = [pdays[0] for pdays in self.purchase_days.values() if pdays]
        return min(firsts) if firsts else None

    def closed_quarters(self) -> list[tuple[dt.date, dt.date]]:
        """(first day, last day) of the covered closed quarters, oldest first."""
        earliest = self.earliest_purchase_day()
        quarters = []
        if earliest is None:
            return quarters
        start = quarter_start(earliest)
        while quarter_end(start) <= self.as_of:
            quarters.append((start, quarter_end(start)))
            start = add_months(start, 3)
        return quarters


# ----------------------------------------------------------------------------- purchase days, episodes
def purchase_days(sales: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """[client_id, day]: the dates <= D on which the client's net revenue is > 0."""
    ledger = Ledger(sales, as_of)
    rows = [(client, day) for client in ledger.clients for day in ledger.purchase_days[client]]
    return pd.DataFrame(rows, columns=["client_id", "day"])


def _episodes(ledger: Ledger, lost_after_days: int | Callable[[str], int]) -> list[dict[str, Any]]:
    episodes = []
    threshold = _threshold(lost_after_days)
    for client in ledger.clients:
        pdays = ledger.purchase_days[client]
        number = 0
        for i, last_purchase in enumerate(pdays):
            lost_date = last_purchase + days(threshold(client) + 1)
            next_purchase = pdays[i + 1] if i + 1 < len(pdays) else None
            if next_purchase is None:
                starts = ledger.as_of >= lost_date
            else:
                starts = next_purchase > lost_date
            if not starts:
                continue
            # The return: the first purchase day after lost_date, i.e. the next purchase day (if any <= D).
            return_date = next_purchase
            number += 1
            episodes.append({
                "client_id": client,
                "episode_number": number,  # purchase days ascend, so lost dates do too
                "last_purchase_date": last_purchase,
                "lost_date": lost_date,
                "return_date": return_date,
                "days_to_return": (return_date - lost_date).days if return_date else None,
                "is_returned": return_date is not None,
            })
    return episodes


def lost_episodes(sales: pd.DataFrame, as_of: Any, lost_after_days: int | Callable[[str], int] = 180) -> pd.DataFrame:
    """One row per lost episode with lost_date <= D."""
    rows = _episodes(Ledger(sales, as_of), lost_after_days)
    frame = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    frame["days_to_return"] = frame["days_to_return"].astype("Int64")
    frame["is_returned"] = frame["is_returned"].astype(bool)
    return frame


# ----------------------------------------------------------------------------- quarterly KPIs
def _contact_days(contacts: pd.DataFrame | None, as_of: dt.date) -> dict[str, list[dt.date]]:
    """client_id -> sorted contact dates (contact_at::date, in UTC when time-zone aware), <= D."""
    found: dict[str, list[dt.date]] = defaultdict(list)
    if contacts is None or contacts.empty:
        return found
    for row in contacts.itertuples(index=False):
        if row.client_id is None or pd.isna(row.client_id):
            continue
        stamp = pd.Timestamp(row.contact_at)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC")
        day = stamp.date()
        if day <= as_of:
            found[str(row.client_id)].append(day)
    return {client: sorted(found_days) for client, found_days in found.items()}


def quarterly_kpis(
    sales: pd.DataFrame, contacts: pd.DataFrame | None, as_of: Any, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per closed quarter, the columns of kpi_staging.kpi_quarterly."""
    params = resolve_params(params)
    lost_after = lost_after_of(params)
    lost_window = int(params["revenue_lost_window_days"])
    recovered_window = int(params["revenue_recovered_window_days"])
    contact_window = int(params["contact_after_loss_days"])

    ledger = Ledger(sales, as_of)
    as_of_day = ledger.as_of
    episodes = _episodes(ledger, lost_after)
    contact_days = _contact_days(contacts, as_of_day)
    contacts_delivered = contacts is not None and not contacts.empty

    rows = []
    for start, end in ledger.closed_quarters():
        day_before = start - days(1)
        starting = [e for e in episodes if start <= e["lost_date"] <= end]
        returns = [e for e in episodes if e["return_date"] is not None and start <= e["return_date"] <= end]

        active_start = sum(
            1 for c in ledger.clients
            if ledger.has_purchase_day_before(c, start) and not ledger.is_lost_on(c, day_before, lost_after)
        )
        new_clients = sum(1 for c in ledger.clients if ledger.purchase_days[c] and start <= ledger.purchase_days[c][0] <= end)
        lost_pool = sum(1 for c in ledger.clients if ledger.is_lost_on(c, day_before, lost_after))

        revenue_lost = sum(
            (ledger.net(e["client_id"], e["lost_date"] - days(lost_window), e["lost_date"] - days(1)) for e in starting),
            Decimal(0),
        )
        revenue_recovered = sum(
            (ledger.net(e["client_id"], e["return_date"], e["return_date"] + days(recovered_window - 1)) for e in returns),
            Decimal(0),
        )
        margin_lost = sum(
            (ledger.margin(e["client_id"], e["lost_date"] - days(lost_window), e["lost_date"] - days(1))
             for e in starting), Decimal(0))
        margin_recovered = sum(
            (ledger.margin(e["client_id"], e["return_date"], e["return_date"] + days(recovered_window - 1))
             for e in returns), Decimal(0))
        window_complete = all(e["return_date"] + days(recovered_window - 1) <= as_of_day for e in returns)
        median_days = statistics.median(e["days_to_return"] for e in returns) if returns else float("nan")
        contacted = sum(
            1 for e in starting
            if any(e["lost_date"] <= d <= e["lost_date"] + days(contact_window) for d in contact_days.get(e["client_id"], []))
        )
        rows.append({
            "quarter_start": start,
            "active_clients_start": active_start,
            "new_clients": new_clients,
            "lost_clients": len(starting),
            "returned_clients": len(returns),
            "lost_pool_start": lost_pool,
            "churn_rate": rate(len(starting), active_start),
            "winback_rate": rate(len(returns), lost_pool + len(starting)),
            "revenue_lost_ttm": revenue_lost,
            "revenue_recovered_90d": revenue_recovered,
            "gross_margin_lost_ttm": margin_lost,
            "gross_margin_recovered_90d": margin_recovered,
            "is_window_complete": window_complete,
            "median_days_to_return": float(median_days),
            # Unknown (null), not 0, while no contact log was ever delivered (docs/metrics.md).
            "lost_contacted_share": rate(contacted, len(starting)) if contacts_delivered else float("nan"),
            "as_of_date": as_of_day,
        })
    return pd.DataFrame(rows, columns=KPI_COLUMNS)


# ----------------------------------------------------------------------------- ABC-XYZ segments
def abc_classes(revenues: dict[str, Decimal], a_share: Any, b_share: Any) -> dict[str, str]:
    """client -> A/B/C/N from window revenue, with the contract's exact share_before rule."""
    a_cut, b_cut = money(a_share), money(b_share)
    classes = {client: NO_CLASS for client, revenue in revenues.items() if revenue <= 0}
    ranked = sorted(((r, c) for c, r in revenues.items() if r > 0), key=lambda rc: (-rc[0], rc[1]))
    total = sum((r for r, _ in ranked), Decimal(0))
    before = Decimal(0)
    for revenue, client in ranked:
        # share_before = before / total, compared without dividing (total > 0): exact.
        if before < a_cut * total:
            classes[client] = "A"
        elif before < b_cut * total:
            classes[client] = "B"
        else:
            classes[client] = "C"
        before += revenue
    return classes


def xyz_class(monthly: list[Decimal], x_max_cv: Any, y_max_cv: Any) -> str:
    """X/Y/Z from the monthly net revenues (population sd / mean), compared exactly."""
    values = [Fraction(v) for v in monthly]
    mean = sum(values, Fraction(0)) / len(values)
    if mean <= 0:
        raise ValueError("XYZ is only defined for classed clients (window revenue > 0)")
    variance = sum(((v - mean) ** 2 for v in values), Fraction(0)) / len(values)
    x_cut, y_cut = Fraction(money(x_max_cv)), Fraction(money(y_max_cv))
    if variance <= (x_cut * mean) ** 2:
        return "X"
    if variance <= (y_cut * mean) ** 2:
        return "Y"
    return "Z"


def coefficient_of_variation(monthly: list[Decimal]) -> float:
    """The CV itself (float, for messages): population sd / mean."""
    return statistics.pstdev([float(v) for v in monthly]) / statistics.fmean([float(v) for v in monthly])


def segment_window(quarter_end_day: dt.date) -> tuple[dt.date, dt.date]:
    """The four calendar quarters ending with the quarter of E: (first day, E's quarter end)."""
    return add_months(quarter_start(quarter_end_day), -9), quarter_end(quarter_end_day)


def segments(sales: pd.DataFrame, as_of: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per (client, closed quarter end E) for clients with a non-cancelled line <= E."""
    params = resolve_params(params)
    ledger = Ledger(sales, as_of)
    rows = []
    for _, end in ledger.closed_quarters():
        window_first, window_last = segment_window(end)
        clients = [c for c in ledger.clients if ledger.first_line_day[c] <= end]
        revenue = {c: ledger.net(c, window_first, window_last) for c in clients}
        measure = revenue if params["abc_basis"] != "gross_margin" else {
            c: ledger.margin(c, window_first, window_last) for c in clients}
        abc = abc_classes(measure, params["abc_a_share"], params["abc_b_share"])
        for client in clients:
            if abc[client] == NO_CLASS:
                xyz = NO_CLASS
            else:
                monthly = [
                    ledger.net(client, add_months(window_first, m), add_months(window_first, m + 1) - days(1))
                    for m in range(12)
                ]
                xyz = xyz_class(monthly, params["xyz_x_max_cv"], params["xyz_y_max_cv"])
            rows.append({
                "client_id": client,
                "quarter_end": end,
                "window_revenue": revenue[client],
                "abc_class": abc[client],
                "xyz_class": xyz,
                "abc_xyz_class": NO_CLASS if abc[client] == NO_CLASS else abc[client] + xyz,
            })
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def migrations(segment_rows: pd.DataFrame) -> pd.DataFrame:
    """The migration matrix: per (quarter end, segmentation, from, to) the clients and their window revenue.

    from_class is the class at the previous calendar quarter end (N when the client had no row
    there), to_class the class at this quarter end; window_revenue sums the clients' window
    revenue at this quarter end.
    """
    by_key = {(r.client_id, r.quarter_end): r for r in segment_rows.itertuples(index=False)}
    counts: dict[tuple, list] = {}
    for row in segment_rows.itertuples(index=False):
        previous_end = quarter_start(row.quarter_end) - days(1)
        previous = by_key.get((row.client_id, previous_end))
        for segmentation, column in SEGMENTATIONS.items():
            from_class = getattr(previous, column) if previous is not None else NO_CLASS
            key = (row.quarter_end, segmentation, from_class, getattr(row, column))
            cell = counts.setdefault(key, [0, Decimal(0)])
            cell[0] += 1
            cell[1] += row.window_revenue
    rows = [(*key, n, revenue) for key, (n, revenue) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=MIGRATION_COLUMNS)


# ----------------------------------------------------------------------------- cohort return rates
def cohort_return_rates(sales: pd.DataFrame, as_of: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The dimension='overall' rows of marts.fct_cohort_return_rates: one per quarter of lost_date."""
    params = resolve_params(params)
    windows = [int(n) for n in params["return_windows_days"]]
    ledger = Ledger(sales, as_of)
    episodes = _episodes(ledger, lost_after_of(params))
    cohorts: dict[dt.date, list[dict]] = defaultdict(list)
    for episode in episodes:
        cohorts[quarter_start(episode["lost_date"])].append(episode)
    rows = []
    for cohort in sorted(cohorts):
        members = cohorts[cohort]
        row: dict[str, Any] = {
            "cohort_quarter": cohort, "dimension": "overall", "dimension_value": "all", "lost_episodes": len(members),
        }
        for n in windows:
            row[f"returned_within_{n}"] = sum(1 for e in members if e["is_returned"] and e["days_to_return"] <= n)
        for n in windows:
            row[f"return_rate_{n}"] = rate(row[f"returned_within_{n}"], len(members))
        for n in windows:
            row[f"window_closed_{n}"] = all(e["lost_date"] + days(n) <= ledger.as_of for e in members)
        rows.append(row)
    columns = ["cohort_quarter", "dimension", "dimension_value", "lost_episodes"]
    columns += [f"{kind}_{n}" for kind in ("returned_within", "return_rate", "window_closed") for n in windows]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- clients at risk
def at_risk_clients(sales: pd.DataFrame, contacts: pd.DataFrame | None, as_of: Any,
                    params: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per active client as of D ("Clients at risk" in metrics.md): a purchase day
    <= D and D - last purchase day <= L; its rhythm, revenue trend, flags and rank."""
    params = resolve_params(params)
    lost_after = lost_after_of(params)
    window = int(params["at_risk_trend_window_days"])
    gap_factor = Fraction(str(params["at_risk_gap_factor"]))
    no_rhythm = int(params["at_risk_no_rhythm_days"])
    decline = Decimal(str(params["at_risk_decline_share"]))
    ledger = Ledger(sales, as_of)
    d = ledger.as_of
    contact_days = _contact_days(contacts, d)
    rows = []
    for client in ledger.clients:
        pdays = ledger.purchase_days[client]
        if not pdays or (d - pdays[-1]).days > lost_after(client):
            continue  # never bought, or lost as of D
        last = pdays[-1]
        since = (d - last).days
        gaps = [(later - earlier).days for earlier, later in zip(pdays, pdays[1:], strict=False)]
        gap = statistics.median(gaps) if gaps else None
        expected = last + days(math.ceil(gap)) if gaps else None
        recent = ledger.net(client, d - days(window - 1), d)
        year_before = ledger.net(client, d - days(365 + window - 1), d - days(365))
        twelve = ledger.net(client, d - days(364), d)
        risk = round(Decimal(since) / Decimal(lost_after(client)), 4)
        rows.append({
            "client_id": client,
            "last_purchase_date": last,
            "days_since_last_purchase": since,
            "purchase_days": len(pdays),
            "typical_gap_days": float(gap) if gap is not None else None,
            "expected_next_purchase_date": expected,
            "days_overdue": max((d - expected).days, 0) if expected else None,
            "revenue_recent": recent,
            "revenue_year_before": year_before,
            "revenue_12m": twelve,
            "days_since_last_contact": (d - contact_days[client][-1]).days if contact_days.get(client) else None,
            "is_overdue": since > gap_factor * Fraction(gap) if gaps else since > no_rhythm,
            "is_declining": year_before > 0 and recent < (1 - decline) * year_before,
            "risk_score": float(risk),
            "revenue_at_risk": (twelve * risk).quantize(Decimal("0.01")),
        })
    rows.sort(key=lambda r: (-(r["revenue_12m"] * Decimal(str(r["risk_score"]))), r["client_id"]))
    for rank, row in enumerate(rows, start=1):
        row["risk_rank"] = rank
    return pd.DataFrame(rows, columns=AT_RISK_COLUMNS)


def early_warning_backtest(sales: pd.DataFrame, as_of: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per closed quarter whose horizon ended by D ("Backtest of the early-warning
    list" in metrics.md): the list as of the eve of the quarter, from the data up to the
    eve, against the lost dates in [quarter start, quarter start + horizon - 1]."""
    params = resolve_params(params)
    horizon = int(params["at_risk_backtest_horizon_days"])
    ledger = Ledger(sales, as_of)
    episodes = lost_episodes(sales, ledger.as_of, lost_after_of(params))
    rows = []
    for start, end in ledger.closed_quarters():
        horizon_end = start + days(horizon - 1)
        if horizon_end > ledger.as_of:
            continue
        listed = at_risk_clients(sales, None, start - days(1), params)
        if listed.empty:
            continue
        in_horizon = (episodes.lost_date >= start) & (episodes.lost_date <= horizon_end)
        lost = listed.client_id.isin(set(episodes.loc[in_horizon, "client_id"]))
        flagged = listed.is_overdue | listed.is_declining
        lost_revenue = sum(listed.loc[lost, "revenue_12m"], Decimal(0))
        caught_revenue = sum(listed.loc[lost & flagged, "revenue_12m"], Decimal(0))
        rows.append({
            "quarter_start": start, "quarter_end": end, "flagged_as_of": start - days(1), "horizon_end": horizon_end,
            "active_clients": len(listed), "flagged_clients": int(flagged.sum()), "lost_clients": int(lost.sum()),
            "flagged_lost_clients": int((lost & flagged).sum()),
            "flag_precision": rate4(int((lost & flagged).sum()), int(flagged.sum())),
            "flag_recall": rate4(int((lost & flagged).sum()), int(lost.sum())),
            "loss_rate": rate4(int(lost.sum()), len(listed)),
            "lost_revenue_12m": lost_revenue, "flagged_lost_revenue_12m": caught_revenue,
            "flagged_revenue_share": float((caught_revenue / lost_revenue).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)) if lost_revenue else None,
        })
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)


def nps_quarterly(sales: pd.DataFrame, contacts: pd.DataFrame, clients: list[dict], as_of: Any) -> pd.DataFrame:
    """One row per closed quarter and dimension (overall, manager) with an NPS answer ("NPS
    per quarter" in metrics.md): each client once, its latest answer in the quarter."""
    ledger = Ledger(sales, as_of)
    managers = {str(c["client_id"]): c.get("manager_id") or "unknown" for c in clients}
    answers = []
    for row in contacts.itertuples(index=False):
        if row.client_id is None or pd.isna(row.client_id) or pd.isna(row.nps_score):
            continue
        stamp = pd.Timestamp(row.contact_at)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
        answers.append((stamp, str(row.contact_id), str(row.client_id), int(row.nps_score)))
    rows = []
    for start, end in ledger.closed_quarters():
        latest: dict[str, int] = {}
        for stamp, _contact, client, score in sorted(answers):  # later answers overwrite earlier ones
            if start <= stamp.date() <= min(end, ledger.as_of):
                latest[client] = score
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for client, score in latest.items():
            groups[("overall", "all")].append(score)
            groups[("manager", managers.get(client, "unknown"))].append(score)
        for (dimension, value), scores in sorted(groups.items()):
            promoters = sum(s >= 9 for s in scores)
            detractors = sum(s <= 6 for s in scores)
            rows.append({"quarter_start": start, "dimension": dimension, "dimension_value": value,
                         "responses": len(scores), "promoters": promoters,
                         "passives": len(scores) - promoters - detractors, "detractors": detractors,
                         "nps": float(round(Decimal(100 * (promoters - detractors)) / len(scores), 1))})
    return pd.DataFrame(rows, columns=NPS_COLUMNS)


def nps_category(score: int | None) -> str | None:
    """promoter 9-10, passive 7-8, detractor 0-6 ("NPS per quarter" in metrics.md)."""
    if score is None:
        return None
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _latest_nps(contacts: pd.DataFrame | None, as_of: dt.date) -> dict[str, int]:
    """client_id -> its latest NPS answer dated <= D (latest contact_at, then contact_id)."""
    answers = []
    for row in (contacts if contacts is not None else pd.DataFrame()).itertuples(index=False):
        if row.client_id is None or pd.isna(row.client_id) or pd.isna(row.nps_score):
            continue
        stamp = pd.Timestamp(row.contact_at)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
        if stamp.date() <= as_of:
            answers.append((stamp, str(row.contact_id), str(row.client_id), int(row.nps_score)))
    return {client: score for _stamp, _contact, client, score in sorted(answers)}


def loyalty_index(days_since: int, purchase_day_count: int, tenure: int, abc_class: str | None,
                  nps: int | None, params: dict[str, Any]) -> float:
    """The fixed-scale loyalty index ("Value and loyalty" in metrics.md), exact arithmetic."""
    recency = max(Fraction(0), 10 * (1 - Fraction(days_since, int(params["loyalty_recency_zero_days"]))))
    frequency = min(Fraction(10), Fraction(10 * purchase_day_count, int(params["loyalty_frequency_full_days"])))
    tenure_points = min(Fraction(10), Fraction(10 * tenure, int(params["loyalty_tenure_full_days"])))
    monetary = Fraction(str(params["loyalty_abc_points"].get(abc_class, 0))) if abc_class else Fraction(0)
    parts = [recency, frequency, monetary, tenure_points] + ([Fraction(nps)] if nps is not None else [])
    mean = sum(parts) / len(parts)
    return float((Decimal(mean.numerator) / Decimal(mean.denominator)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def client_value(sales: pd.DataFrame, contacts: pd.DataFrame | None, as_of: Any,
                 params: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per client with a purchase day <= D ("Value and loyalty" in metrics.md)."""
    params = resolve_params(params)
    lost_after = lost_after_of(params)
    ledger = Ledger(sales, as_of)
    d = ledger.as_of
    segment_rows = segments(sales, d, params)
    latest_end = segment_rows.quarter_end.max() if len(segment_rows) else None
    classes = {(row.client_id, row.quarter_end): row.abc_class for row in segment_rows.itertuples(index=False)}
    ends = sorted(set(segment_rows.quarter_end)) if len(segment_rows) else []
    nps = _latest_nps(contacts, d)
    contact_days = _contact_days(contacts, d)
    rows = []
    for client in ledger.clients:
        pdays = ledger.purchase_days[client]
        if not pdays:
            continue
        first, last = pdays[0], pdays[-1]
        is_lost = (d - last).days > lost_after(client)
        if is_lost:  # the class at the last quarter end before the lost date
            lost_date = last + days(lost_after(client) + 1)
            before = [end for end in ends if end < lost_date]
            abc = classes.get((client, before[-1])) if before else None
        else:
            abc = classes.get((client, latest_end))
        score = nps.get(client)
        contacted = [day for day in contact_days.get(client, [])]
        rows.append({
            "client_id": client, "first_purchase_date": first, "last_purchase_date": last,
            "days_since_last_purchase": (d - last).days, "tenure_days": (last - first).days,
            "purchase_days": len(pdays),
            "lifetime_net_revenue": ledger.net(client, dt.date.min, d),
            "lifetime_gross_margin": ledger.margin(client, dt.date.min, d),
            "is_lost": is_lost, "abc_class": abc, "latest_nps_score": score, "nps_category": nps_category(score),
            "days_since_last_contact": (d - contacted[-1]).days if contacted else None,
            "loyalty_index": loyalty_index((d - last).days, len(pdays), (last - first).days, abc, score, params),
        })
    rows.sort(key=lambda r: (-r["lifetime_gross_margin"], r["client_id"]))
    for rank, row in enumerate(rows, start=1):
        row["ltv_rank"] = rank
    frame = pd.DataFrame(rows, columns=CLIENT_VALUE_COLUMNS)
    frame["latest_nps_score"] = frame["latest_nps_score"].astype("Int64")
    frame["days_since_last_contact"] = frame["days_since_last_contact"].astype("Int64")
    return frame


def contact_coverage(value: pd.DataFrame, managers: dict[str, str | None], params: dict[str, Any] | None = None
                     ) -> pd.DataFrame:
    """Per manager: its active A and B clients (client_value's class) and those with a contact
    in the last contact_coverage_window_days days ("Contact coverage of key clients")."""
    params = resolve_params(params)
    window = int(params["contact_coverage_window_days"])
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in value.itertuples(index=False):
        if row.is_lost or row.abc_class not in ("A", "B"):
            continue
        manager = managers.get(row.client_id) or "unknown"
        counts[manager][0] += 1
        since = row.days_since_last_contact
        counts[manager][1] += int(since is not None and not pd.isna(since) and since < window)
    rows = [{"manager_id": m, "key_clients": n, "key_clients_contacted": c, "contact_coverage": rate4(c, n)}
            for m, (n, c) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["manager_id", "key_clients", "key_clients_contacted", "contact_coverage"])


def loss_reason_recording(sales: pd.DataFrame, contacts: pd.DataFrame | None, managers: dict[str, str | None],
                          as_of: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per quarter of lost_date and manager: the lost episodes and those with a loss reason
    recorded in a contact dated after the last purchase and before the return (or up to D)
    ("Loss-reason recording rate")."""
    params = resolve_params(params)
    d = as_date(as_of)
    episodes = lost_episodes(sales, d, lost_after_of(params))
    reasons: dict[str, list[tuple[Any, str, dt.date]]] = defaultdict(list)
    for row in (contacts if contacts is not None else pd.DataFrame()).itertuples(index=False):
        reason = getattr(row, "loss_reason", None)
        if row.client_id is None or pd.isna(row.client_id) or reason is None or pd.isna(reason):
            continue
        stamp = pd.Timestamp(row.contact_at)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
        reasons[str(row.client_id)].append((stamp, str(row.contact_id), stamp.date()))
    counts: dict[tuple[dt.date, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in episodes.itertuples(index=False):
        until = e.return_date if e.return_date is not None and not pd.isna(e.return_date) else d + days(1)
        recorded = any(e.last_purchase_date < day < until for _s, _c, day in reasons.get(e.client_id, []))
        key = (quarter_start(e.lost_date), managers.get(e.client_id) or "unknown")
        counts[key][0] += 1
        counts[key][1] += int(recorded)
    rows = [{"quarter_start": q, "manager_id": m, "lost_clients": n, "reason_recorded": r,
             "recording_rate": rate4(r, n)} for (q, m), (n, r) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["quarter_start", "manager_id", "lost_clients", "reason_recorded",
                                       "recording_rate"])


CLIENT_VALUE_COLUMNS = ["client_id", "first_purchase_date", "last_purchase_date", "days_since_last_purchase",
                        "tenure_days", "purchase_days", "lifetime_net_revenue", "lifetime_gross_margin", "ltv_rank",
                        "is_lost", "abc_class", "latest_nps_score", "nps_category", "loyalty_index",
                        "days_since_last_contact"]
NPS_COLUMNS = ["quarter_start", "dimension", "dimension_value", "responses", "promoters", "passives", "detractors",
               "nps"]
BACKTEST_COLUMNS = ["quarter_start", "quarter_end", "flagged_as_of", "horizon_end", "active_clients", "flagged_clients",
                    "lost_clients", "flagged_lost_clients", "flag_precision", "flag_recall", "loss_rate",
                    "lost_revenue_12m", "flagged_lost_revenue_12m", "flagged_revenue_share"]
AT_RISK_COLUMNS = ["client_id", "last_purchase_date", "days_since_last_purchase", "purchase_days",
                   "typical_gap_days", "expected_next_purchase_date", "days_overdue", "revenue_recent",
                   "revenue_year_before", "revenue_12m", "days_since_last_contact", "is_overdue", "is_declining",
                   "risk_score", "revenue_at_risk", "risk_rank"]


# ----------------------------------------------------------------------------- win-back campaigns
UNCLASSIFIED = "unclassified"
UPLIFT_CELL_COLUMNS = ["campaign_id", "offer_type", "lost_quarter", "abc_class", "entry_month", "treated_episodes",
                       "treated_returned", "comparison_episodes", "comparison_returned"]


def _utc_day(stamp: Any) -> dt.date:
    stamp = pd.Timestamp(stamp)
    return (stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp).date()


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA \
        and str(value).strip() != ""


def _contacts_of_clients(contacts: pd.DataFrame | None, as_of: dt.date) -> list[dict[str, Any]]:
    """The contacts matched to a client and dated <= D, each with its day (UTC), in the order
    contact_at, contact_id; the contract v2 columns None where an export lacks them."""
    found = []
    if contacts is None or contacts.empty:
        return found
    for row in contacts.to_dict("records"):
        if not _present(row.get("client_id")):
            continue
        day = _utc_day(row["contact_at"])
        if day > as_of:
            continue
        offer = row.get("offer_type")
        value = row.get("offer_value")
        found.append({
            "contact_id": str(row["contact_id"]), "client_id": str(row["client_id"]), "day": day,
            "at": pd.Timestamp(row["contact_at"]),
            "campaign_id": str(row["campaign_id"]) if _present(row.get("campaign_id")) else None,
            "offer_type": str(offer).strip().lower() if _present(offer) else None,
            "offer_value": money(value) if _present(value) else None,
            "outcome": str(row["outcome"]).strip().lower() if _present(row.get("outcome")) else None,
        })
    return sorted(found, key=lambda c: (c["at"], c["contact_id"]))


def _episodes_with_segments(sales: pd.DataFrame, as_of: dt.date, params: dict[str, Any]
                            ) -> tuple[Ledger, list[dict[str, Any]]]:
    """Every lost episode with its lost quarter and its ABC class at the last quarter end
    before lost_date ('unclassified' before the first)."""
    ledger = Ledger(sales, as_of)
    classes: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    for row in segments(sales, as_of, params).itertuples(index=False):
        classes[str(row.client_id)].append((as_date(row.quarter_end), row.abc_class))
    episodes = _episodes(ledger, lost_after_of(params))
    for episode in episodes:
        before = sorted(c for c in classes.get(episode["client_id"], []) if c[0] < episode["lost_date"])
        episode["abc_class"] = before[-1][1] if before else UNCLASSIFIED
        episode["lost_quarter"] = quarter_start(episode["lost_date"])
    return ledger, episodes


def campaign_episodes(sales: pd.DataFrame, contacts: pd.DataFrame | None, as_of: Any,
                      params: dict[str, Any] | None = None) -> pd.DataFrame:
    """docs/metrics.md "Win-back campaigns": one row per campaign and lost episode it targeted."""
    params = resolve_params(params)
    as_of = as_date(as_of)
    ledger, episodes = _episodes_with_segments(sales, as_of, params)
    windows = [int(n) for n in params["campaign_return_windows_days"]]
    recovered = int(params["revenue_recovered_window_days"])
    by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for episode in episodes:
        by_client[episode["client_id"]].append(episode)
    targeted: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for contact in _contacts_of_clients(contacts, as_of):
        if contact["campaign_id"] is None:
            continue
        for episode in by_client.get(contact["client_id"], []):
            open_then = episode["lost_date"] <= contact["day"] and (
                episode["return_date"] is None or contact["day"] < episode["return_date"])
            if open_then:
                targeted[(contact["campaign_id"], contact["client_id"], episode["episode_number"])].append(contact)
    rows = []
    for (campaign, client, number), found in targeted.items():
        episode = next(e for e in by_client[client] if e["episode_number"] == number)
        entry = min(c["day"] for c in found)
        offers = [c["offer_type"] for c in found if c["offer_type"] is not None]
        back = episode["return_date"]
        row = {
            "campaign_id": campaign, "client_id": client, "episode_number": number,
            "lost_date": episode["lost_date"], "lost_quarter": episode["lost_quarter"],
            "abc_class": episode["abc_class"], "entry_date": entry, "offer_type": offers[0] if offers else "none",
            "offer_value": sum((c["offer_value"] for c in found if c["offer_value"] is not None), Decimal(0)),
            "campaign_contacts": len(found),
            "is_reached": any(c["outcome"] is not None and c["outcome"] != "no_answer" for c in found),
            "return_date": back,
            "revenue_recovered": ledger.net(client, back, back + days(recovered - 1)) if back else None,
            "gross_margin_recovered": ledger.margin(client, back, back + days(recovered - 1)) if back else None,
        }
        for n in windows:
            row[f"returned_{n}d"] = back is not None and (back - entry).days <= n
            row[f"window_complete_{n}d"] = entry + days(n) <= as_of
        rows.append(row)
    return pd.DataFrame(rows)


def campaign_results(targeted: pd.DataFrame, campaigns: list[dict[str, Any]],
                     params: dict[str, Any] | None = None) -> pd.DataFrame:
    """fct_campaign_results from campaign_episodes(): per campaign x segment x offer type."""
    params = resolve_params(params)
    windows = [int(n) for n in params["campaign_return_windows_days"]]
    longest = max(windows)
    costs = {str(c["campaign_id"]): money(c["cost"]) if _present(c.get("cost")) else Decimal(0) for c in campaigns}
    names = {str(c["campaign_id"]): c.get("name") for c in campaigns}
    if targeted.empty:
        return pd.DataFrame()
    per_campaign = targeted.groupby("campaign_id").size().to_dict()
    rows = []
    for (campaign, segment, offer), group in targeted.groupby(["campaign_id", "abc_class", "offer_type"]):
        back = group[group[f"returned_{longest}d"]]
        margin = sum(back.gross_margin_recovered, Decimal(0))
        offer_cost = sum(back.offer_value, Decimal(0))
        cost = costs.get(campaign, Decimal(0)) * len(group) / per_campaign[campaign]
        row = {"campaign_id": campaign, "campaign_name": names.get(campaign), "abc_class": segment,
               "offer_type": offer, "targeted_episodes": len(group), "reached_episodes": int(group.is_reached.sum()),
               "return_rate": rate4(len(back), len(group)),
               "revenue_recovered": sum(back.revenue_recovered, Decimal(0)), "gross_margin_recovered": margin,
               "offer_cost": offer_cost, "campaign_cost": cost, "net_margin": margin - offer_cost - cost}
        for n in windows:
            row[f"returned_{n}d"] = int(group[f"returned_{n}d"].sum())
            row[f"window_complete_{n}d"] = bool(group[f"window_complete_{n}d"].all())
        rows.append(row)
    return pd.DataFrame(rows)


def campaign_uplift_cells(sales: pd.DataFrame, contacts: pd.DataFrame | None, targeted: pd.DataFrame, as_of: Any,
                          params: dict[str, Any] | None = None) -> pd.DataFrame:
    """int_campaign_uplift_cells from campaign_episodes(): docs/metrics.md "Uplift against a baseline"."""
    params = resolve_params(params)
    as_of = as_date(as_of)
    window = max(int(n) for n in params["campaign_return_windows_days"])
    _, episodes = _episodes_with_segments(sales, as_of, params)
    contact_days: dict[str, list[dt.date]] = defaultdict(list)
    for contact in _contacts_of_clients(contacts, as_of):
        contact_days[contact["client_id"]].append(contact["day"])
    if targeted.empty:
        return pd.DataFrame(columns=UPLIFT_CELL_COLUMNS)
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for row in targeted.itertuples(index=False):
        month = row.entry_date.replace(day=1)
        if add_months(month, 1) + days(window) > as_of + days(1):
            continue  # the cell's window has not passed for every entry of the month
        counts = cells[(row.campaign_id, row.offer_type, row.lost_quarter, row.abc_class, month)]
        counts[0] += 1
        counts[1] += bool(getattr(row, f"returned_{window}d"))
    rows = []
    for (campaign, offer, quarter, segment, month), (treated, treated_back) in cells.items():
        horizon = month + days(window)
        comparison = [
            e for e in episodes
            if e["lost_quarter"] == quarter and e["abc_class"] == segment and e["lost_date"] <= month
            and (e["return_date"] is None or e["return_date"] > month)
            and not any(e["lost_date"] <= day <= horizon for day in contact_days.get(e["client_id"], []))
        ]
        if not comparison:
            continue
        rows.append({"campaign_id": campaign, "offer_type": offer, "lost_quarter": quarter, "abc_class": segment,
                     "entry_month": month, "treated_episodes": treated, "treated_returned": treated_back,
                     "comparison_episodes": len(comparison),
                     "comparison_returned": sum(e["return_date"] is not None and e["return_date"] <= horizon
                                                for e in comparison)})
    return pd.DataFrame(rows, columns=UPLIFT_CELL_COLUMNS)


def campaign_uplift(cells: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The uplift of docs/metrics.md per group of cells (``by``: e.g. ["offer_type"]): the cells'
    differences of return shares pooled with inverse-variance (fixed-effect) weights, each
    cell's variance p1(1-p1)/n1 + p2(1-p2)/n2, from the shares with 0.5 added to every count
    when a share of the cell is 0 or 1 (its difference stays the observed one); the 95 %
    interval is the pooled value +- 1.959964 / sqrt(sum of weights), clipped to [-1, 1]."""
    rows = []
    for key, group in cells.groupby(by):
        weights, weighted = 0.0, 0.0
        for cell in group.itertuples(index=False):
            n1, r1 = cell.treated_episodes, cell.treated_returned
            n2, r2 = cell.comparison_episodes, cell.comparison_returned
            difference = r1 / n1 - r2 / n2
            if r1 in (0, n1) or r2 in (0, n2):
                n1, r1, n2, r2 = n1 + 1, r1 + 0.5, n2 + 1, r2 + 0.5
            p1, p2 = r1 / n1, r2 / n2
            weight = 1 / (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
            weights += weight
            weighted += weight * difference
        uplift = weighted / weights
        half = 1.959963984540054 / math.sqrt(weights)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     "uplift": uplift, "uplift_ci_low": max(uplift - half, -1.0),
                     "uplift_ci_high": min(uplift + half, 1.0)})
    return pd.DataFrame(rows, columns=[*by, "uplift", "uplift_ci_low", "uplift_ci_high"])
