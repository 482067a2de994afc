"""The simulation: a client population and its life, one day after another.

Everything random is drawn here, from one ``numpy.random.Generator(PCG64)`` stream per
purpose, in the same order whatever is written: a day's draws depend only on the seed
and the state left by the days before. Output is optional per day (``emit``), so
``advance_one_day`` replays the days before silently and writes only its own day, and
the rows of a day never depend on how far a run goes.

Campaigns and offers have streams of their own (``_CAMPAIGNS``: the quarterly campaigns,
drawn campaign by campaign; ``_OFFERS``: campaign membership, offer type and value, and
the offer's effect for the managers' win-back contacts, drawn only on campaign days;
``_SWEEPS``: the campaigns' sweeps, which lost clients they target and those contacts,
drawn only on a campaign's start day and its sweep days), so that the rest of the
simulation draws what it drew before; only the clients an offer brings back change its
course.

Memory: the population is a set of numpy arrays of a few dozen bytes per client (no
per-line state); lines are generated per day in chunks of at most ``CHUNK_CLIENTS``
ordering clients and handed to the sink right away. Pending returns and corrections of
the last few weeks are the only carried-over rows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from winback.generator import _config as C
from winback.generator._config import GeneratorConfig

NEVER = np.int32(np.iinfo(np.int32).max)
CHUNK_CLIENTS = 1024
# Client rows are formatted and written in slices of this many.
CHUNK_ROWS = 512
# Arrivals of new clients continue this many days past as_of (for advance_one_day).
FUTURE_DAYS = 184
# Stream ids of the random generators (one per purpose, all from the seed).
_PLAN, _CALIBRATION, _DAYS, _CAMPAIGNS, _OFFERS, _SWEEPS = 1, 2, 3, 4, 5, 6
_OFFER_VALUE_SHARE = np.asarray(C.OFFER_VALUE_SHARE)
_OFFER_RETURN_P = np.asarray(C.OFFER_RETURN_P)


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream])))


def mix_hash(seed: int, salt: int, values: np.ndarray) -> np.ndarray:
    """A deterministic 64-bit hash (splitmix64) of integers: cosmetic attributes without RNG draws."""
    x = values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= np.uint64((seed * 1_000_003 + salt * 7919) & 0xFFFFFFFFFFFFFFFF)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _pick(rng: np.random.Generator, weights, size: int) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int8)


def _choose_by(u: np.ndarray, weights) -> np.ndarray:
    """Index into ``weights`` for uniforms ``u`` (inverse CDF)."""
    cdf = np.cumsum(np.asarray(weights, dtype=float))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int8)


# ------------------------------------------------------------------------- calendar
class Calendar:
    """Day numbers are days since ``start_date`` (negative before it)."""

    def __init__(self, start: dt.date):
        self.start = start
        self.start64 = np.datetime64(start, "D")
        self.weekday0 = start.weekday()

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=int(day))

    def day(self, date: dt.date) -> int:
        return (date - self.start).days

    def months(self, days: np.ndarray) -> np.ndarray:
        """Month number (1-12) of day numbers."""
        return ((self.start64 + days.astype("timedelta64[D]")).astype("datetime64[M]").astype(np.int64) % 12) + 1

    def next_season_start(self, days: np.ndarray, start_month: np.ndarray) -> np.ndarray:
        """The first day of the next month ``start_month`` strictly after the month of ``days``."""
        month_index = (self.start64 + days.astype("timedelta64[D]")).astype("datetime64[M]").astype(np.int64)
        ahead = (start_month.astype(np.int64) - 1 - month_index % 12) % 12
        ahead = np.where(ahead == 0, 12, ahead)
        target = (month_index + ahead).astype("datetime64[M]").astype("datetime64[D]")
        return (target - self.start64).astype(np.int64)

    def in_season(self, days: np.ndarray, start_month: np.ndarray, length: np.ndarray) -> np.ndarray:
        return ((self.months(days) - start_month) % 12) < length


def _to_season(cal: Calendar, days: np.ndarray, sea_start: np.ndarray, sea_len: np.ndarray,
               jitter: np.ndarray) -> np.ndarray:
    """Move days that fall outside their client's season to the next season start (+ jitter)."""
    out = days.astype(np.int64).copy()
    outside = ~cal.in_season(out, sea_start, sea_len)
    if outside.any():
        out[outside] = cal.next_season_start(out[outside], sea_start[outside]) + jitter[outside]
    return out


# ------------------------------------------------------------------------- campaigns
class Campaigns:
    """The seller's win-back campaigns, one per calendar quarter from the first quarter that
    begins a year after the start date (see the ``CAMPAIGN_*`` settings).

    Drawn quarter by quarter, on demand, from their own stream with the same draws for
    every quarter: the k-th campaign is the same however far a run goes. Windows never
    overlap, so at most one campaign runs on a day.
    """

    def __init__(self, seed: int, cal: Calendar, quarter_cost: float):
        self.rng = rng_for(seed, _CAMPAIGNS)
        self.cal = cal
        first = cal.start + dt.timedelta(days=365)
        month = (first.year * 12 + first.month - 1 + 2) // 3 * 3  # months since year 0, a quarter start
        if dt.date(month // 12, month % 12 + 1, 1) < first:
            month += 3
        self._month0 = month
        self.quarter_cost = quarter_cost  # cents
        self.start = np.empty(0, dtype=np.int64)
        self.end = np.empty(0, dtype=np.int64)  # last day, inclusive
        self.cost = np.empty(0, dtype=np.int64)  # cents
        self.theme = np.empty(0, dtype=np.int8)
        self.target = np.empty(0, dtype=np.int8)
        self.mix = np.empty((0, len(C.OFFER_TYPES)))

    def __len__(self) -> int:
        return len(self.start)

    def _quarter(self, k: int) -> tuple[int, int]:
        """(year, quarter 1-4) of campaign ``k``."""
        month = self._month0 + 3 * k
        return month // 12, month % 12 // 3 + 1

    def _cover(self, day: int) -> None:
        """Draw campaigns until the last one starts after ``day``."""
        if len(self.start) and self.start[-1] > day:
            return
        rng = self.rng
        start, end, cost, theme, target, mix = [], [], [], [], [], []
        k = len(self.start)
        while True:
            year, quarter = self._quarter(k)
            first = self.cal.day(dt.date(year, 3 * quarter - 2, 1)) + int(rng.integers(*C.CAMPAIGN_START_DAYS))
            weekday = (self.cal.weekday0 + first) % 7
            first += 2 if weekday == 5 else 1 if weekday == 6 else 0
            start.append(first)
            end.append(first + int(rng.integers(*C.CAMPAIGN_DAYS)))
            factor = rng.uniform(*C.CAMPAIGN_COST_FACTOR)
            cost.append(max(10_000, round(self.quarter_cost * factor / 10_000) * 10_000))  # whole hundreds of money
            theme.append(rng.integers(0, len(C.CAMPAIGN_THEMES)))
            target.append(rng.integers(0, len(C.CAMPAIGN_TARGETS)))
            mix.append(rng.dirichlet(C.OFFER_MIX_CONCENTRATION * np.asarray(C.OFFER_MIX) / sum(C.OFFER_MIX)))
            k += 1
            if first > day:
                break
        self.start = np.concatenate((self.start, start)).astype(np.int64)
        self.end = np.concatenate((self.end, end)).astype(np.int64)
        self.cost = np.concatenate((self.cost, cost)).astype(np.int64)
        self.theme = np.concatenate((self.theme, theme)).astype(np.int8)
        self.target = np.concatenate((self.target, target)).astype(np.int8)
        self.mix = np.concatenate((self.mix, mix))

    def on(self, day: int) -> int:
        """The campaign running on ``day``, or -1."""
        self._cover(day)
        k = int(np.searchsorted(self.start, day, side="right")) - 1
        return k if k >= 0 and self.end[k] >= day else -1

    def starting(self, day: int) -> np.ndarray:
        """The campaigns that start on ``day``."""
        self._cover(day)
        return np.flatnonzero(self.start == day)

    def campaign_id(self, k: int) -> str:
        year, quarter = self._quarter(k)
        return f"WB-{year}Q{quarter}"

    def name(self, k: int) -> str:
        year, quarter = self._quarter(k)
        return f"{C.CAMPAIGN_SEASONS[quarter - 1]} win-back {year}: {C.CAMPAIGN_THEMES[self.theme[k]]}"


# ------------------------------------------------------------------------- population
@dataclass
class Products:
    count: int
    price: np.ndarray  # cents per unit (float64)
    cost_ratio: np.ndarray
    by_weight: np.ndarray
    qty_base: np.ndarray
    popular_cdf: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, count: int) -> Products:
        price = np.clip(np.exp(rng.normal(math.log(2500), 0.9, count)), 150, 500_000).round()
        cost_ratio = rng.uniform(0.55, 0.88, count)
        by_weight = rng.random(count) < 0.2
        qty_base = np.clip(40.0 / np.sqrt(price / 100.0), 1.0, 80.0)
        rank = rng.permutation(count)
        weights = 1.0 / (rank + 5.0) ** 0.9
        cdf = np.cumsum(weights)
        return cls(count, price, cost_ratio, by_weight, qty_base, cdf / cdf[-1])

    def mean_line_cents(self) -> float:
        p = np.diff(np.concatenate(([0.0], self.popular_cdf)))
        return float((p * self.price * self.qty_base).sum())


def _draw_clients(rng: np.random.Generator, cfg: GeneratorConfig, cal: Calendar, n_base: int, n_new: int,
                  new_span: int) -> dict[str, np.ndarray]:
    """Plans of ``n_base`` clients that exist before the start and ``n_new`` that arrive over
    ``[0, new_span)``, sorted by creation day. Arrays are compact (int8/int32/float32), and
    per-archetype values are drawn only for the clients concerned, to keep the peak small."""
    n = n_base + n_new
    f32, i32 = np.float32, np.int32
    arch = _pick(rng, C.ARCHETYPE_WEIGHTS, n)
    masks = [arch == a for a in range(len(C.ARCHETYPES))]
    counts = [int(m.sum()) for m in masks]

    def per_arch(default, special: dict, dtype=f32) -> np.ndarray:
        """``default(size)`` for everyone, replaced by ``special[archetype](size)`` where given."""
        out = np.asarray(default(n), dtype=dtype)
        for a, draw in special.items():
            if counts[a]:
                out[masks[a]] = draw(counts[a])
        return out

    def lognormal(median: float, sigma: float):
        return lambda size: np.exp(rng.normal(math.log(median), sigma, size))

    # Arrival: base clients were created long before the start; new ones arrive uniformly.
    created = np.empty(n, dtype=i32)
    first = np.empty(n, dtype=i32)
    created[:n_base] = -rng.integers(30, 1500, n_base)
    acquired = rng.integers(0, max(new_span, 1), n_new)
    first[n_base:] = acquired + rng.integers(0, 22, n_new)
    late = rng.random(n_new) < cfg.late_client_share
    created[n_base:] = np.where(late, first[n_base:] + rng.integers(1, 11, n_new), acquired)
    del acquired, late

    interval = per_arch(lognormal(18, 0.6), {
        C.SEASONAL: lambda k: rng.uniform(8, 22, k), C.ONE_OFF: lambda k: rng.uniform(7, 35, k),
        C.GROWING: lognormal(40, 0.5), C.SHRINKING: lognormal(24, 0.5), C.CHURNER: lognormal(26, 0.55),
        C.WINBACK: lognormal(24, 0.5), C.ERRATIC: lognormal(50, 0.6)})
    np.clip(interval, 4, 150, out=interval)
    shape = per_arch(lambda k: rng.uniform(4, 12, k), {
        C.ERRATIC: lambda k: rng.uniform(0.6, 1.4, k), C.SEASONAL: lambda k: rng.uniform(3, 8, k),
        C.ONE_OFF: lambda k: np.full(k, 2.0)})
    scale = np.exp(rng.normal(0.0, 1.3, n)).astype(f32)
    scale[masks[C.ERRATIC]] *= 1.8
    scale[masks[C.ONE_OFF]] *= 0.5
    trend = per_arch(lambda k: rng.normal(0.0, 0.08, k), {
        C.GROWING: lambda k: rng.uniform(0.35, 0.9, k), C.SHRINKING: lambda k: rng.uniform(-1.1, -0.45, k)})
    lines_mean = np.clip(1.0 + np.exp(rng.normal(math.log(1.6), 0.5, n)), 1.2, 8.0).astype(f32)
    lines_mean[masks[C.ONE_OFF]] = 1.0 + (lines_mean[masks[C.ONE_OFF]] - 1.0) * 0.5
    discount = rng.uniform(0.0, 0.15, n).astype(f32)
    season_start = np.asarray((3, 4, 5, 9, 10, 11), dtype=np.int8)[rng.integers(0, 6, n)]
    season_len = rng.integers(3, 7, n).astype(np.int8)

    # First order in the period: a random phase for existing clients, soon after arrival for new ones.
    first[:n_base] = rng.random(n_base) * np.minimum(interval[:n_base], 75)
    seasonal = masks[C.SEASONAL]
    jitter = rng.integers(0, 15, n)
    first[seasonal] = _to_season(cal, first[seasonal], season_start[seasonal], season_len[seasonal],
                                 jitter[seasonal])
    del jitter
    weekday = (cal.weekday0 + first) % 7
    first += np.where(weekday == 5, 2, np.where(weekday == 6, 1, 0)).astype(i32)
    del weekday

    # Designed quiet periods (a loss): when the client's next order would fall after quiet_from.
    u_quiet = rng.random(n)
    quiet_offset = per_arch(lambda k: rng.integers(120, 800, k), {
        C.CHURNER: lambda k: rng.integers(90, 700, k), C.WINBACK: lambda k: rng.integers(45, 520, k),
        C.SHRINKING: lambda k: rng.integers(300, 900, k)}, dtype=i32)
    has_quiet = u_quiet < 0.10
    has_quiet[masks[C.CHURNER] | masks[C.WINBACK]] = True
    has_quiet[masks[C.SHRINKING]] = u_quiet[masks[C.SHRINKING]] < 0.55
    has_quiet[masks[C.SEASONAL] | masks[C.ONE_OFF]] = False
    quiet_from = np.where(has_quiet, first + quiet_offset, NEVER).astype(i32)
    del u_quiet, quiet_offset, has_quiet
    u_ret = rng.random(n)
    will_return = u_ret < 0.30
    will_return[masks[C.WINBACK]] = True
    will_return[masks[C.CHURNER]] = False
    will_return[masks[C.ONE_OFF]] = u_ret[masks[C.ONE_OFF]] < 0.12
    del u_ret
    via_p = np.where(arch == C.WINBACK, 0.85, np.where(arch == C.ONE_OFF, 0.8, 0.5))
    via_contact = rng.random(n) < via_p
    del via_p
    contact_prob = np.asarray((0.5, 0.35, 0.25, 0.6, 0.6, 0.7, 0.5, 0.45), dtype=f32)[arch]
    orders_left = np.full(n, 32_000, dtype=np.int16)
    orders_left[masks[C.ONE_OFF]] = _choose_by(rng.random(counts[C.ONE_OFF]), (0.72, 0.22, 0.06)) + 1

    region = _pick(rng, C.REGION_WEIGHTS, n)
    industry = _pick(rng, C.INDUSTRY_WEIGHTS, n)
    seasonal_industry = np.asarray(C.SEASONAL_INDUSTRIES, dtype=np.int8)[rng.integers(0, 3, n)]
    switch = seasonal & (rng.random(n) < 0.65)
    industry[switch] = seasonal_industry[switch]
    del seasonal_industry, switch
    acquisition = _pick(rng, (0.22, 0.14, 0.24, 0.16, 0.14, 0.10), n)
    channel_pref = _pick(rng, C.SALES_CHANNEL_WEIGHTS, n)
    reason_u = rng.random(n)
    reason = np.zeros(n, dtype=np.int8)
    for a in range(len(C.ARCHETYPES)):
        reason[masks[a]] = _choose_by(reason_u[masks[a]], C.LOSS_REASON_WEIGHTS[a])
    del reason_u
    potential_noise = np.exp(rng.normal(0.15, 0.35, n)).astype(f32)
    potential_noise[rng.random(n) >= 0.75] = -1.0  # unknown to the CRM
    manager_u = rng.random(n).astype(f32)

    plan = {
        "created": created, "first": first, "arch": arch, "interval": interval, "shape": shape, "scale": scale,
        "trend": trend, "lines_mean": lines_mean, "discount": discount, "season_start": season_start,
        "season_len": season_len, "quiet_from": quiet_from, "will_return": will_return,
        "via_contact": via_contact, "contact_prob": contact_prob, "orders_left": orders_left, "region": region,
        "industry": industry, "acquisition": acquisition, "channel_pref": channel_pref, "reason": reason,
        "potential_noise": potential_noise, "manager_u": manager_u,
    }
    del (created, first, arch, interval, shape, scale, trend, lines_mean, discount, season_start, season_len,
         quiet_from, will_return, via_contact, contact_prob, orders_left, region, industry, acquisition,
         channel_pref, reason, potential_noise, manager_u, seasonal)
    order = np.argsort(plan["created"], kind="stable")
    for key in plan:  # one array at a time: the unsorted one is freed as the sorted one arrives
        plan[key] = plan[key][order]
    return plan


def expected_lines(plan: dict[str, np.ndarray], period: int, lost_after: int, return_share: float) -> np.ndarray:
    """Approximate number of sales lines each planned client produces in ``[0, period)``."""
    first = plan["first"].astype(float)
    interval = plan["interval"] + 0.35  # weekend orders move to Monday
    g = 0.4 * plan["trend"] / 365.0
    arch = plan["arch"]

    def orders(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return _orders(a, b)

    def _orders(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = np.maximum(a, first)
        b = np.minimum(b, period)
        span = np.maximum(b - a, 0.0)
        safe_g = np.where(np.abs(g) < 1e-9, 1e-9, g)
        grown = (np.exp(safe_g * (b - first)) - np.exp(safe_g * (a - first))) / (safe_g * interval)
        count = np.where(np.abs(g) < 1e-9, span / interval, grown)
        return np.where(span > 0, count + 0.5, 0.0)

    quiet = np.minimum(plan["quiet_from"], 10 * period).astype(float)
    has_quiet = plan["quiet_from"] != NEVER
    comeback = np.where(plan["via_contact"], lost_after + 48.0, lost_after + 156.0)
    back = quiet + comeback
    count = np.where(
        has_quiet,
        orders(first, quiet) + np.where(plan["will_return"], orders(back, np.full_like(back, period)), 0.0),
        orders(first, np.full_like(first, period)),
    )
    seasonal = arch == C.SEASONAL
    span = np.maximum(period - first, 0.0)
    season_count = span * plan["season_len"] / 12.0 / interval + span / 365.0
    count = np.where(seasonal, season_count, count)
    count = np.where(arch == C.ONE_OFF, np.where(first < period, plan["orders_left"], 0.0), count)
    return count * plan["lines_mean"] * (1.0 + return_share)


class Population:
    """The clients, managers and products of one config, with the clients' mutable state."""

    def __init__(self, cfg: GeneratorConfig):
        self.cfg = cfg
        self.cal = Calendar(cfg.start_date)
        self.period = self.cal.day(cfg.as_of) + 1
        rng = rng_for(cfg.seed, _PLAN)
        self.products = Products.draw(rng, int(np.clip(round(2 * math.sqrt(cfg.target_lines)), 60, 5000)))

        # Size the population from a calibration sample of plans (its own stream).
        calibration = rng_for(cfg.seed, _CALIBRATION)
        sample_base = round(2000 * cfg.existing_client_share)
        sample = _draw_clients(calibration, cfg, self.cal, sample_base, 2000 - sample_base, self.period)
        per_client = float(expected_lines(sample, self.period, cfg.lost_after_days, cfg.return_share).mean())
        del sample
        # Draw about 30 % more clients than that, then keep a random subset whose expected lines
        # reach the target: this removes most of the sampling noise of a small population.
        in_period = max(20, round(1.3 * cfg.target_lines / per_client))
        n_base = max(1, round(in_period * cfg.existing_client_share))
        n_new_period = max(1, in_period - n_base)
        n_new = n_new_period + round(n_new_period * FUTURE_DAYS / self.period)
        plan = _draw_clients(rng, cfg, self.cal, n_base, n_new, self.period + FUTURE_DAYS)
        expected = expected_lines(plan, self.period, cfg.lost_after_days, cfg.return_share)
        shuffled = rng.permutation(len(expected))
        enough = int(np.searchsorted(np.cumsum(expected[shuffled]), cfg.target_lines)) + 1
        keep = np.sort(shuffled[:enough])
        del expected, shuffled
        for key in plan:
            plan[key] = plan[key][keep]
        self.n = len(keep)
        self.n_base = int((plan["created"] < 0).sum())
        del keep
        for key in ("created", "first", "arch", "interval", "shape", "scale", "trend", "lines_mean", "discount",
                    "season_start", "season_len", "quiet_from", "will_return", "via_contact", "contact_prob",
                    "orders_left", "region", "industry", "acquisition", "channel_pref", "reason"):
            setattr(self, key, plan.pop(key))
        product_base = mix_hash(cfg.seed, 11, np.arange(self.n)) % np.uint64(self.products.count)
        self.product_base = product_base.astype(np.int32)

        # Potential (the CRM's estimate of annual revenue) in hundreds of the currency; -1 when unknown.
        orders_per_year = 365.0 / self.interval
        orders_per_year[self.arch == C.SEASONAL] *= self.season_len[self.arch == C.SEASONAL] / 12.0
        orders_per_year[self.arch == C.ONE_OFF] = 1.0
        noise = plan.pop("potential_noise")
        potential = (orders_per_year * self.lines_mean * self.scale * (1 - self.discount) * noise
                     * np.float32(self.products.mean_line_cents() / 10_000.0))
        self.potential = np.where(noise < 0, -1, np.maximum(np.rint(potential), 1)).astype(np.int32)
        self.line_cents = self.products.mean_line_cents()
        annual = orders_per_year * self.lines_mean * self.scale * (1 - self.discount) * np.float32(self.line_cents)
        # Value segment (the offers' effect depends on it): the metric contract's ABC rule applied to
        # the expected annual revenue: A makes the first 80 % of it, B the next 15 %, C the rest.
        ranked = np.argsort(-annual, kind="stable")
        before = np.cumsum(annual[ranked], dtype=np.float64) - annual[ranked]
        share = before / max(float(before[-1] + annual[ranked[-1]]), 1.0)
        self.segment = np.empty(self.n, dtype=np.int8)
        self.segment[ranked] = np.where(share < 0.80, 0, np.where(share < 0.95, 1, 2))
        # The seller's money scale: expected revenue per quarter of ``target_lines`` over the period.
        lines_per_year = orders_per_year * self.lines_mean
        line_net = float(annual.sum(dtype=np.float64) / max(float(lines_per_year.sum(dtype=np.float64)), 1.0))
        quarter_revenue = cfg.target_lines / self.period * 365.25 / 4 * line_net
        self.campaigns = Campaigns(cfg.seed, self.cal, C.CAMPAIGN_COST_SHARE * quarter_revenue)
        del orders_per_year, potential, annual, noise, ranked, before, share, lines_per_year

        self._draw_managers(rng, plan.pop("manager_u"))

        # Mutable simulation state.
        self.next_order = self.first.copy()
        self.last_order = np.minimum(self.created, self.first) - 1
        self.contact_day = np.full(self.n, NEVER, dtype=np.int32)
        self.contact_stage = np.zeros(self.n, dtype=np.int8)
        self.return_pending = np.zeros(self.n, dtype=bool)
        self.campaign = np.full(self.n, -1, dtype=np.int16)  # the last campaign that contacted the client
        # The last order before the lost episode that the campaign sweeps hold out (NEVER: none).
        self.sweep_held = np.full(self.n, NEVER, dtype=np.int32)

    def order_cents(self, clients: np.ndarray, day: int) -> np.ndarray:
        """The expected net value of an order of ``clients`` on ``day`` (cents): what an offer is sized by."""
        years = np.maximum(day - self.first[clients], 0) / 365.0
        return (self.lines_mean[clients] * self.scale[clients] * np.exp(self.trend[clients] * 0.6 * years)
                * (1.0 - self.discount[clients]) * self.line_cents * (1.0 + 0.04 * day / 365.0))

    def _draw_managers(self, rng: np.random.Generator, manager_u: np.ndarray) -> None:
        n_mgr = max(len(C.TEAMS) + 2, round(self.n / 90))
        weights = np.asarray(C.TEAM_MANAGER_WEIGHTS) / sum(C.TEAM_MANAGER_WEIGHTS)
        per_team = np.maximum(1, np.round(weights * n_mgr)).astype(int)
        self.n_managers = int(per_team.sum())
        self.mgr_team = np.repeat(np.arange(len(C.TEAMS)), per_team).astype(np.int8)
        self.team_first = np.concatenate(([0], np.cumsum(per_team)[:-1])).astype(np.int32)
        self.team_size = per_team.astype(np.int32)
        m = np.arange(self.n_managers)
        # About one in eight managers leaves during the simulated time (at least one, when possible).
        eligible = m[m != self.team_first[self.mgr_team]]
        leavers = rng.permutation(eligible)[:max(1, round(0.12 * len(eligible)))]
        leaves = np.isin(m, leavers)
        leave_day = rng.integers(60, self.period + FUTURE_DAYS, self.n_managers)
        self.mgr_leave = np.where(leaves, leave_day, NEVER).astype(np.int32)
        self.mgr_leave_sec = rng.integers(9 * 3600, 17 * 3600, self.n_managers).astype(np.int32)
        # A leaver's clients go to a colleague of the same team who stays.
        repl = m.copy()
        pick_u = rng.random(self.n_managers)
        for team in range(len(C.TEAMS)):
            members = m[self.mgr_team == team]
            stayers = members[self.mgr_leave[members] == NEVER]
            chosen = stayers[(pick_u[members] * len(stayers)).astype(int)]
            repl[members] = np.where(self.mgr_leave[members] == NEVER, members, chosen)
        self.mgr_repl = repl.astype(np.int32)

        team = np.asarray(C.TEAM_OF_REGION, dtype=np.int8)[self.region]
        key_cut = np.quantile(self.scale, 0.94) if self.n > 20 else np.inf
        team = np.where(self.scale >= key_cut, C.KEY_ACCOUNTS, team)
        manager = self.team_first[team] + (manager_u * self.team_size[team]).astype(np.int32)
        manager = np.minimum(manager, self.team_first[team] + self.team_size[team] - 1)
        gone = self.mgr_leave[manager] <= self.created
        self.manager = np.where(gone, self.mgr_repl[manager], manager).astype(np.int32)

    def manager_on(self, clients: np.ndarray, day: int | np.ndarray) -> np.ndarray:
        """Each client's responsible manager on ``day`` (after reassignments)."""
        m = self.manager[clients]
        return np.where(self.mgr_leave[m] <= day, self.mgr_repl[m], m)


# ------------------------------------------------------------------------- batches
@dataclass
class LineBatch:
    """Sales lines as numbers (cents, hundredths of a unit, day numbers, seconds of the day)."""

    line_no: np.ndarray
    order_no: np.ndarray
    order_prefix: str  # 'O' (order) or 'R' (return / credit note)
    client: np.ndarray
    order_day: np.ndarray
    qty: np.ndarray
    net: np.ndarray
    cost: np.ndarray
    product: np.ndarray
    channel: np.ndarray
    status: np.ndarray
    upd_day: np.ndarray
    upd_sec: np.ndarray
    # A later correction of the line (NEVER when none): the writers of a final state apply it.
    corr_day: np.ndarray | None = None
    corr_qty: np.ndarray | None = None
    corr_net: np.ndarray | None = None
    corr_cost: np.ndarray | None = None
    corr_status: np.ndarray | None = None
    corr_sec: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.line_no)

    def take(self, mask: np.ndarray) -> LineBatch:
        fields = {}
        for name, value in self.__dict__.items():
            fields[name] = value[mask] if isinstance(value, np.ndarray) else value
        return LineBatch(**fields)

    def final(self, until: int) -> LineBatch:
        """The lines as they stand on day ``until``: corrections up to that day applied."""
        if self.corr_day is None:
            return self
        applied = self.corr_day <= until
        if not applied.any():
            return self
        return LineBatch(
            self.line_no, self.order_no, self.order_prefix, self.client, self.order_day,
            np.where(applied, self.corr_qty, self.qty), np.where(applied, self.corr_net, self.net),
            np.where(applied, self.corr_cost, self.cost), self.product, self.channel,
            np.where(applied, self.corr_status, self.status), np.where(applied, self.corr_day, self.upd_day),
            np.where(applied, self.corr_sec, self.upd_sec),
        )


@dataclass
class ContactBatch:
    contact_no: np.ndarray
    client: np.ndarray  # -1: not matched to a client
    manager: np.ndarray
    day: int
    sec: np.ndarray
    upd_sec: np.ndarray
    channel: np.ndarray
    direction: np.ndarray
    outcome: np.ndarray
    reason: np.ndarray  # -1: none
    nps: np.ndarray  # -1: not asked
    note: np.ndarray  # template choice; -1: no note
    winback: np.ndarray  # a win-back contact of a lost client
    campaign: np.ndarray  # index into the campaigns; -1: none
    offer: np.ndarray  # index into OFFER_TYPES; -1: no offer
    offer_value: np.ndarray  # cents; -1: none

    def __len__(self) -> int:
        return len(self.contact_no)


class Emitter:
    """Receives a day's batches (only for days that are written)."""

    final_until: int | None = None  # write final states as of this day instead of an event log

    def new_clients(self, day: int, clients: np.ndarray) -> None: ...
    def reassigned_clients(self, day: int, clients: np.ndarray) -> None: ...
    def managers(self, day: int, managers: np.ndarray, left: bool) -> None: ...
    def campaigns(self, day: int, campaigns: np.ndarray) -> None: ...
    def lines(self, day: int, batch: LineBatch) -> None: ...
    def corrections(self, day: int, batch: LineBatch) -> None: ...
    def contacts(self, day: int, batch: ContactBatch) -> None: ...
    def end_day(self, day: int) -> None: ...


# ------------------------------------------------------------------------- the days
class Simulation:
    def __init__(self, cfg: GeneratorConfig):
        self.cfg = cfg
        self.pop = Population(cfg)
        self.cal = self.pop.cal
        self.rng = rng_for(cfg.seed, _DAYS)
        self.offer_rng = rng_for(cfg.seed, _OFFERS)  # campaign membership, offers and their effect
        self.day = 0  # next day to simulate
        self.created_upto = 0  # clients [0, created_upto) exist
        self.line_no = 0
        self.order_no = 0
        self.return_no = 0
        self.contact_no = 0
        self.pending_returns: dict[int, list[tuple[np.ndarray, ...]]] = {}
        self.pending_corrections: dict[int, list[LineBatch]] = {}
        self.sweep_rng = rng_for(cfg.seed, _SWEEPS)  # the campaigns' sweeps
        self.pending_sweeps: dict[int, np.ndarray] = {}  # day -> the clients a sweep contacts that day
        self._lost = cfg.lost_after_days + 1

    def run(self, until: int, emitter: Emitter | None, emit_from: int = 0) -> None:
        """Simulate days up to and including ``until``; days >= ``emit_from`` go to ``emitter``."""
        while self.day <= until:
            d = self.day
            self._one_day(d, emitter if (emitter is not None and d >= emit_from) else None)
            self.day += 1

    # -- one day --------------------------------------------------------------------
    def _one_day(self, d: int, out: Emitter | None) -> None:
        pop = self.pop
        start = self.created_upto
        self.created_upto = int(np.searchsorted(pop.created, d, side="right"))
        if out is not None:
            if d == 0:
                out.managers(d, np.arange(pop.n_managers), left=False)
            for begin in range(start, self.created_upto, CHUNK_ROWS):
                out.new_clients(d, np.arange(begin, min(begin + CHUNK_ROWS, self.created_upto), dtype=np.int64))
            starting = pop.campaigns.starting(d)
            if starting.size:
                out.campaigns(d, starting)
        leaving = np.flatnonzero(pop.mgr_leave == d)
        if leaving.size and out is not None:
            out.managers(d, leaving, left=True)
            if out.final_until is None:
                moved = np.flatnonzero(np.isin(pop.manager, leaving))
                moved = moved[pop.created[moved] <= d]
                for begin in range(0, moved.size, CHUNK_ROWS):
                    out.reassigned_clients(d, moved[begin:begin + CHUNK_ROWS])

        ordering = np.flatnonzero(pop.next_order == d)
        for begin in range(0, ordering.size, CHUNK_CLIENTS):
            self._orders(d, ordering[begin:begin + CHUNK_CLIENTS], out)
        self._returns(d, out)
        corrections = self.pending_corrections.pop(d, None)
        if corrections and out is not None and out.final_until is None:
            for batch in corrections:
                out.corrections(d, batch)
        self._sweep(d)
        self._contacts(d, out)
        if out is not None:
            out.end_day(d)

    def _orders(self, d: int, idx: np.ndarray, out: Emitter | None) -> None:
        cfg, pop, rng, prod = self.cfg, self.pop, self.rng, self.pop.products
        k = idx.size
        n_lines = np.minimum(1 + rng.poisson(np.maximum(pop.lines_mean[idx] - 1.0, 0.0)), 12)
        other_channel = _choose_by(rng.random(k), C.SALES_CHANNEL_WEIGHTS)
        channel = np.where(rng.random(k) < 0.78, pop.channel_pref[idx], other_channel)
        order_sec = rng.integers(7 * 3600, 18 * 3600, k)
        u_cancel = rng.random(k)
        cancelled = u_cancel < cfg.cancel_share
        late_cancel = ~cancelled & (u_cancel < cfg.cancel_share + cfg.late_cancel_share)
        late_delay = rng.integers(1, 6, k)
        late_sec = rng.integers(8 * 3600, 18 * 3600, k)

        total = int(n_lines.sum())
        line_order = np.repeat(np.arange(k), n_lines)
        lc = idx[line_order]
        core = rng.random(total) < 0.6
        core_slot = rng.integers(0, 5, total)
        popular = np.minimum(np.searchsorted(prod.popular_cdf, rng.random(total), side="right"), prod.count - 1)
        stride = prod.count // 7 + 1
        product = np.where(core, (pop.product_base[lc] + core_slot * stride) % prod.count, popular)
        years = np.maximum(d - pop.first[lc], 0) / 365.0
        units = pop.scale[lc] * np.exp(pop.trend[lc] * 0.6 * years) * prod.qty_base[product]
        units = units * rng.lognormal(0.0, 0.35, total)
        weight = prod.by_weight[product]
        qty = np.where(weight, np.maximum(1, np.rint(units * 4)) * 25, np.maximum(1, np.rint(units)) * 100)
        qty = qty.astype(np.int64)
        price = prod.price[product] * (1.0 + 0.04 * d / 365.0)
        disc = pop.discount[lc] + rng.uniform(0.0, 0.03, total)
        net = np.maximum(1, np.rint(qty / 100.0 * price * (1.0 - disc))).astype(np.int64)
        cost = np.rint(qty / 100.0 * price * prod.cost_ratio[product]).astype(np.int64)
        line_sec = order_sec[line_order] + rng.integers(0, 2 * 3600, total)
        status = np.where(cancelled[line_order], C.CANCELLED, C.COMPLETED).astype(np.int8)

        fate = rng.random(total)
        ret_delay = rng.integers(3, 41, total)
        ret_full = rng.random(total) < 0.6
        ret_frac = rng.uniform(0.2, 0.8, total)
        corr_delay = rng.integers(1, 15, total)
        corr_price = rng.random(total) < 0.5
        corr_factor = np.where(corr_price, rng.uniform(0.85, 1.12, total), rng.uniform(0.4, 0.95, total))
        corr_sec = rng.integers(8 * 3600, 18 * 3600, total)

        late_line = late_cancel[line_order]
        eligible = (status == C.COMPLETED) & ~late_line
        is_return = eligible & (fate < cfg.return_share)
        is_corr = eligible & (fate >= cfg.return_share) & (fate < cfg.return_share + cfg.correction_share)

        step = np.where(weight, 25, 100)
        new_qty = np.where(corr_price, qty, np.maximum(step, np.rint(qty * corr_factor / step) * step)).astype(np.int64)
        ratio = new_qty / qty
        new_net = np.where(corr_price, np.rint(net * corr_factor), np.rint(net * ratio)).astype(np.int64)
        new_net = np.where(new_net == net, net + 1, np.maximum(new_net, 1))
        new_cost = np.where(corr_price, cost, np.rint(cost * ratio)).astype(np.int64)
        corr_day = np.where(is_corr, d + corr_delay, np.where(late_line, d + late_delay[line_order], NEVER))
        corr_day = corr_day.astype(np.int64)
        corr_status = np.where(late_line, C.CANCELLED, status).astype(np.int8)
        corr_sec = np.where(late_line, late_sec[line_order], corr_sec)
        corr_qty = np.where(is_corr, new_qty, qty)
        corr_net = np.where(is_corr, new_net, net)
        corr_cost = np.where(is_corr, new_cost, cost)

        line_no = self.line_no + 1 + np.arange(total, dtype=np.int64)
        order_no = self.order_no + 1 + line_order.astype(np.int64)
        self.line_no += total
        self.order_no += k
        day_arr = np.full(total, d, dtype=np.int32)
        batch = LineBatch(line_no, order_no, "O", lc, day_arr, qty, net, cost, product, channel[line_order],
                          status, day_arr, line_sec, corr_day, corr_qty, corr_net, corr_cost, corr_status, corr_sec)
        if out is not None:
            out.lines(d, batch)

        corrected = corr_day != NEVER
        if corrected.any():
            later = batch.take(corrected)
            fixed = LineBatch(later.line_no, later.order_no, "O", later.client, later.order_day, later.corr_qty,
                              later.corr_net, later.corr_cost, later.product, later.channel, later.corr_status,
                              later.corr_day.astype(np.int32), later.corr_sec)
            for due in np.unique(later.corr_day):
                self.pending_corrections.setdefault(int(due), []).append(fixed.take(later.corr_day == due))
        if is_return.any():
            r_qty = np.where(ret_full, qty, np.maximum(step, np.floor(qty * ret_frac / step) * step)).astype(np.int64)
            r_ratio = r_qty / qty
            r_net = np.rint(net * r_ratio).astype(np.int64)
            r_cost = np.rint(cost * r_ratio).astype(np.int64)
            due_days = d + ret_delay
            for due in np.unique(due_days[is_return]):
                m = is_return & (due_days == due)
                self.pending_returns.setdefault(int(due), []).append(
                    (lc[m], product[m], -r_qty[m], -r_net[m], -r_cost[m], channel[line_order][m]))

        self._schedule(d, idx)

    def _schedule(self, d: int, idx: np.ndarray) -> None:
        pop, rng = self.pop, self.rng
        k = idx.size
        years = np.maximum(d - pop.first[idx], 0) / 365.0
        interval = np.clip(pop.interval[idx] * np.exp(-0.4 * pop.trend[idx] * years), 2.0, 400.0)
        shape = pop.shape[idx]
        gap = np.maximum(1, np.rint(rng.gamma(shape, interval / shape)))
        nxt = d + gap.astype(np.int64)
        jitter = rng.integers(0, 15, k)
        shift = rng.random(k) < 0.85
        seasonal = pop.arch[idx] == C.SEASONAL
        if seasonal.any():
            nxt[seasonal] = _to_season(self.cal, nxt[seasonal], pop.season_start[idx][seasonal],
                                       pop.season_len[idx][seasonal], jitter[seasonal])
        weekday = (self.cal.weekday0 + nxt) % 7
        nxt = nxt + np.where(shift & (weekday == 5), 2, np.where(shift & (weekday == 6), 1, 0))
        pop.orders_left[idx] -= 1
        nxt = np.where(pop.orders_left[idx] <= 0, NEVER, np.minimum(nxt, NEVER - 1))
        pop.last_order[idx] = d
        pop.contact_stage[idx] = 0  # win-back contacts count per lost episode

        quiet_from = pop.quiet_from[idx]
        designed = (quiet_from != NEVER) & (nxt >= quiet_from)
        ended = (nxt == NEVER) & (quiet_from == NEVER)  # one-off buyers after their last order
        quiet = designed | ended
        pop.next_order[idx] = nxt
        if quiet.any():
            self._go_quiet(d, idx[quiet])

    def _go_quiet(self, d: int, cq: np.ndarray) -> None:
        """The clients ``cq`` have just placed their last order before a loss."""
        pop, rng = self.pop, self.rng
        k = cq.size
        lost = d + self._lost
        u_contact = rng.random(k)
        contact_soon = rng.integers(0, 31, k)
        contact_any = rng.integers(-25, 90, k)
        back_after_contact = rng.integers(5, 46, k)
        back_alone = rng.integers(10, 300, k)
        again = rng.random(k) < 0.25
        again_gap = rng.integers(150, 600, k)

        returns = pop.will_return[cq]
        via = returns & pop.via_contact[cq]
        contacted = via | (u_contact < pop.contact_prob[cq])
        contact_day = np.where(via, lost + contact_soon, lost + contact_any)
        back = np.where(via, contact_day + back_after_contact, lost + back_alone)
        contact_day = np.where(returns & ~via, np.minimum(contact_day, back - 3), contact_day)
        pop.next_order[cq] = np.where(returns, back, NEVER)
        pop.contact_day[cq] = np.where(contacted, contact_day, NEVER)
        pop.contact_stage[cq] = 0
        pop.return_pending[cq] = via
        pop.quiet_from[cq] = np.where(returns & again, back + again_gap, NEVER)

    def _returns(self, d: int, out: Emitter | None) -> None:
        parts = self.pending_returns.pop(d, None)
        if not parts:
            return
        client, product, qty, net, cost, channel = (np.concatenate(col) for col in zip(*parts, strict=True))
        n = client.size
        sec = self.rng.integers(8 * 3600, 18 * 3600, n)
        line_no = self.line_no + 1 + np.arange(n, dtype=np.int64)
        order_no = self.return_no + 1 + np.arange(n, dtype=np.int64)
        self.line_no += n
        self.return_no += n
        if out is not None:
            day_arr = np.full(n, d, dtype=np.int32)
            status = np.full(n, C.RETURNED, dtype=np.int8)
            out.lines(d, LineBatch(line_no, order_no, "R", client, day_arr, qty, net, cost, product, channel,
                                   status, day_arr, sec))

    def _contacts(self, d: int, out: Emitter | None) -> None:
        cfg, pop, rng = self.cfg, self.pop, self.rng
        # Win-back contacts planned when the client went quiet (and their follow-ups).
        cw = np.flatnonzero(pop.contact_day == d)
        kw = cw.size
        via = pop.return_pending[cw]
        u_out = rng.random(kw)
        channel_w = _choose_by(rng.random(kw), (0.55, 0.25, 0.12, 0.0, 0.08))
        inbound_w = rng.random(kw) < 0.08
        nps_w = np.clip(np.rint(rng.normal(np.asarray(C.NPS_MEAN)[pop.arch[cw]] - 1.0, 1.8)), 0, 10)
        ask_w = rng.random(kw) < 0.35
        follow = rng.random(kw) < 0.35
        follow_gap = rng.integers(14, 75, kw)
        pop.contact_stage[cw] += 1
        campaign_w, offer_w, value_w, won = self._campaign_contacts(d, cw, via)
        coming = via | won
        outcome_w = np.where(coming, _choose_by(u_out, (0.0, 0.15, 0.35, 0.5, 0.0, 0.0)),
                             _choose_by(u_out, (0.3, 0.2, 0.1, 0.0, 0.32, 0.08)))
        heard_w = outcome_w != C.NO_ANSWER  # the client answered: a loss reason, maybe an NPS answer
        # An offer that was made was sent, whatever the call's first outcome; no offer, nothing sent.
        offered = (offer_w >= 0) & (offer_w != C.NO_OFFER)
        outcome_w = np.where(offered & (outcome_w <= C.REACHED), C.OFFER_SENT, outcome_w)
        outcome_w = np.where((offer_w == C.NO_OFFER) & (outcome_w == C.OFFER_SENT), C.REACHED, outcome_w).astype(np.int8)
        # Follow-ups only for clients who are not coming back anyway (at most three contacts).
        again = ~via & follow & (pop.contact_stage[cw] < 3) & (pop.next_order[cw] == NEVER)
        pop.contact_day[cw] = np.where(again, d + follow_gap, NEVER)
        pop.return_pending[cw] = False

        # Routine contacts with existing clients (fewer at weekends), some unmatched.
        weekend = (self.cal.weekday0 + d) % 7 >= 5
        rate = cfg.contacts_per_client_year * self.created_upto / 365.0 / ((5 + 2 * 0.12) / 7)
        kr = int(rng.poisson(rate * (0.12 if weekend else 1.0))) if self.created_upto else 0
        cr = rng.integers(0, max(self.created_upto, 1), kr)
        keep_u = rng.random(kr)
        gone = (pop.next_order[cr] == NEVER) & (pop.last_order[cr] < d - 365)
        cr = cr[~gone | (keep_u < 0.15)]
        kr = cr.size
        outcome_r = _choose_by(rng.random(kr), (0.2, 0.45, 0.15, 0.09, 0.04, 0.07))
        channel_r = _choose_by(rng.random(kr), (0.42, 0.33, 0.10, 0.10, 0.05))
        inbound_r = rng.random(kr) < 0.30
        nps_r = np.clip(np.rint(rng.normal(np.asarray(C.NPS_MEAN)[pop.arch[cr]], 1.6)), 0, 10)
        ask_r = rng.random(kr) < 0.12
        share = cfg.unmatched_contact_share
        ku = int(rng.binomial(kr + kw, share / (1 - share))) if kr + kw else 0
        unmatched_mgr = rng.integers(0, pop.n_managers, ku)

        sweep = self._sweep_contacts(d)  # the day's contacts of a campaign's sweep (own stream)
        ks = len(sweep[0])
        total = kw + kr + ku
        sec = rng.integers(8 * 3600, 18 * 3600, total)
        upd = rng.integers(60, 1800, total)
        note = rng.integers(0, 1 << 30, total)
        no_note = rng.random(total) < 0.22
        if out is None or total + ks == 0:
            self.contact_no += total + ks
            return
        client = np.concatenate((cw, cr, np.full(ku, -1))).astype(np.int64)
        manager = np.concatenate((pop.manager_on(cw, d), pop.manager_on(cr, d),
                                  np.where(pop.mgr_leave[unmatched_mgr] <= d, pop.mgr_repl[unmatched_mgr],
                                           unmatched_mgr)))
        outcome = np.concatenate((outcome_w, outcome_r, _choose_by(note[kw + kr:] % 1000 / 1000.0,
                                                                   (0.4, 0.6, 0, 0, 0, 0))))
        channel = np.concatenate((channel_w, channel_r, np.zeros(ku, dtype=np.int8)))
        inbound = np.concatenate((inbound_w, inbound_r, np.ones(ku, dtype=bool)))
        reason = np.concatenate((np.where(heard_w, pop.reason[cw], -1), np.full(kr + ku, -1)))
        answered = outcome != C.NO_ANSWER
        answered[:kw] = heard_w
        nps = np.concatenate((np.where(ask_w, nps_w, -1), np.where(ask_r & (outcome_r == C.REACHED), nps_r, -1),
                              np.full(ku, -1)))
        nps = np.where(answered, nps, -1)
        winback = np.concatenate((np.ones(kw, dtype=bool), np.zeros(kr + ku, dtype=bool)))
        campaign = np.concatenate((campaign_w, np.full(kr + ku, -1, dtype=np.int32)))
        offer = np.concatenate((offer_w, np.full(kr + ku, -1, dtype=np.int8)))
        offer_value = np.concatenate((value_w, np.full(kr + ku, -1, dtype=np.int64)))
        note = np.where(no_note, -1, note)
        if ks:  # the sweep's contacts after the others (then all in time order)
            columns = (client, manager, outcome, channel, inbound, reason, nps, winback, campaign, offer,
                       offer_value, sec, upd, note)
            (client, manager, outcome, channel, inbound, reason, nps, winback, campaign, offer, offer_value, sec,
             upd, note) = (np.concatenate((a, b)) for a, b in zip(columns, sweep, strict=True))
        order = np.argsort(sec, kind="stable")
        contact_no = self.contact_no + 1 + np.arange(total + ks, dtype=np.int64)
        self.contact_no += total + ks
        out.contacts(d, ContactBatch(
            contact_no, client[order], manager[order], d, sec[order], sec[order] + upd[order], channel[order],
            inbound[order].astype(np.int8), outcome[order], reason[order], nps[order].astype(np.int64),
            note[order], winback[order], campaign[order], offer[order], offer_value[order]))

    # -- campaigns ------------------------------------------------------------------
    def _offers(self, k: int, clients: np.ndarray, d: int, u_type: np.ndarray,
                u_value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The offers campaign ``k`` makes to ``clients`` on day ``d``: the type drawn from the
        campaign's mix, the value (cents, whole units; -1 for ``none``) sized by the client's
        typical order."""
        pop = self.pop
        kind = _choose_by(u_type, pop.campaigns.mix[k])
        low, high = _OFFER_VALUE_SHARE[kind].T
        share = low + (high - low) * u_value
        cents = np.maximum(100, np.rint(pop.order_cents(clients, d) * share / 100) * 100).astype(np.int64)
        return kind, np.where(kind != C.NO_OFFER, cents, -1)

    def _won_back(self, clients: np.ndarray, back: np.ndarray, again: np.ndarray, again_gap: np.ndarray) -> None:
        """``clients``, brought back by an offer, order on ``back`` (a quarter of them go quiet
        again later, like other returning clients)."""
        self.pop.next_order[clients] = back
        self.pop.quiet_from[clients] = np.where(again, back + again_gap, NEVER)

    def _campaign_contacts(self, d: int, cw: np.ndarray, via: np.ndarray) -> tuple[np.ndarray, ...]:
        """Which of the day's win-back contacts ``cw`` belong to the running campaign (contacts
        on or after the client's lost date, with probability ``CAMPAIGN_CONTACT_SHARE``), the
        offer that a client's first contact in the campaign makes, and its effect: a client who
        would not have come back (no return planned) returns because of the offer with the
        probability of its offer type and value segment (``OFFER_RETURN_P``), by the usual
        via-contact path (an order ``OFFER_RETURN_DAYS`` later; a quarter of them go quiet
        again later).

        Draws come from the offer stream only, and only on campaign days.
        Returns (campaign index, offer type, offer value in cents, returns because of the offer).
        """
        pop = self.pop
        kw = cw.size
        campaign = np.full(kw, -1, dtype=np.int32)
        offer = np.full(kw, -1, dtype=np.int8)
        value = np.full(kw, -1, dtype=np.int64)
        won = np.zeros(kw, dtype=bool)
        k = pop.campaigns.on(d) if kw else -1
        if k < 0:
            return campaign, offer, value, won
        rng = self.offer_rng
        u_join = rng.random(kw)
        u_type = rng.random(kw)
        u_value = rng.random(kw)
        u_back = rng.random(kw)
        back_gap = rng.integers(*C.OFFER_RETURN_DAYS, kw)
        again = rng.random(kw) < 0.25
        again_gap = rng.integers(150, 600, kw)

        follow_up = pop.campaign[cw] == k
        lost = d - pop.last_order[cw] >= self._lost  # on or after the lost date (a contact before it stays ad hoc)
        joins = ~follow_up & lost & (u_join < C.CAMPAIGN_CONTACT_SHARE)
        campaign[follow_up | joins] = k
        pop.campaign[cw[joins]] = k
        kind, cents = self._offers(k, cw, d, u_type, u_value)
        offer = np.where(joins, kind, -1).astype(np.int8)
        value = np.where(joins, cents, -1)

        p = _OFFER_RETURN_P[kind, pop.segment[cw]]
        won = joins & ~via & (pop.next_order[cw] == NEVER) & (u_back < p)
        if won.any():
            self._won_back(cw[won], d + back_gap[won], again[won], again_gap[won])
        return campaign, offer, value, won

    def _sweep(self, d: int) -> None:
        """On a campaign's start day, its sweep: the lost clients nobody works on (lost and not
        back, no manager's win-back contact in the lost episode, not yet in a campaign in it),
        however long ago they were lost. Each such episode is drawn once, by the first campaign
        that finds it: targeted with probability ``CAMPAIGN_SWEEP_SHARE`` (a contact on a working
        day of the campaign's first weeks, ``CAMPAIGN_SWEEP_DAYS``), else held out of the sweeps
        until the client orders again. Draws come from the sweep stream, on start days only."""
        pop = self.pop
        starting = pop.campaigns.starting(d)
        if not starting.size:
            return
        k, upto = int(starting[0]), self.created_upto
        last = pop.last_order[:upto]
        earlier = pop.campaign[:upto].astype(np.int64)
        in_campaign = (earlier >= 0) & (pop.campaigns.start[np.maximum(earlier, 0)] > last)
        nobody = (pop.contact_day[:upto] == NEVER) & (pop.contact_stage[:upto] == 0)
        found = np.flatnonzero((last >= pop.first[:upto]) & (d - last >= self._lost) & nobody & ~in_campaign
                               & (pop.sweep_held[:upto] != last))
        rng = self.sweep_rng
        targeted = rng.random(found.size) < C.CAMPAIGN_SWEEP_SHARE
        day = d + rng.integers(*C.CAMPAIGN_SWEEP_DAYS, found.size)
        held = found[~targeted]
        pop.sweep_held[held] = last[held]
        found, day = found[targeted], day[targeted]
        weekday = (self.cal.weekday0 + day) % 7
        day += np.where(weekday == 5, 2, np.where(weekday == 6, 1, 0))
        for due in np.unique(day).tolist():  # all within the campaign (it runs 45 days or more)
            self.pending_sweeps[due] = found[day == due]
        pop.campaign[found] = k

    def _sweep_contacts(self, d: int) -> tuple[np.ndarray, ...]:
        """The day's contacts of a campaign's sweep, with the campaign's offers and their effect
        (as for a manager's contact in the campaign: ``OFFER_RETURN_P`` for a client who would
        not have come back). A client who came back in the meantime is left out. Draws come
        from the sweep stream, on sweep days only.

        Returns the columns client, manager, outcome, channel, inbound, reason, nps, winback,
        campaign, offer, offer value, second of the day, update delay, note (empty: none)."""
        pop, rng = self.pop, self.sweep_rng
        cs = self.pending_sweeps.pop(d, np.empty(0, dtype=np.int64))
        cs = cs[d - pop.last_order[cs] >= self._lost]
        ks = cs.size
        if ks == 0:
            empty = np.empty(0, dtype=np.int64)
            return (empty,) * 14
        k = pop.campaigns.on(d)
        u_type, u_value, u_back, u_out = (rng.random(ks) for _ in range(4))
        back_gap = rng.integers(*C.OFFER_RETURN_DAYS, ks)
        again = rng.random(ks) < 0.25
        again_gap = rng.integers(150, 600, ks)
        channel = _choose_by(rng.random(ks), C.SWEEP_CHANNEL_WEIGHTS)
        nps = np.clip(np.rint(rng.normal(np.asarray(C.NPS_MEAN)[pop.arch[cs]] - 1.0, 1.8)), 0, 10)
        ask = rng.random(ks) < 0.2
        sec = rng.integers(8 * 3600, 18 * 3600, ks)
        upd = rng.integers(60, 1800, ks)
        note = np.where(rng.random(ks) < 0.22, -1, rng.integers(0, 1 << 30, ks))

        kind, value = self._offers(k, cs, d, u_type, u_value)
        won = (pop.next_order[cs] == NEVER) & (u_back < _OFFER_RETURN_P[kind, pop.segment[cs]])
        if won.any():
            self._won_back(cs[won], d + back_gap[won], again[won], again_gap[won])
        outcome = np.where(won, _choose_by(u_out, (0.0, 0.15, 0.35, 0.5, 0.0, 0.0)),
                           _choose_by(u_out, C.SWEEP_OUTCOME_WEIGHTS))
        heard = outcome != C.NO_ANSWER
        offered = kind != C.NO_OFFER
        outcome = np.where(offered & (outcome <= C.REACHED), C.OFFER_SENT, outcome)
        outcome = np.where(~offered & (outcome == C.OFFER_SENT), C.REACHED, outcome).astype(np.int8)
        return (cs.astype(np.int64), pop.manager_on(cs, d), outcome, channel, np.zeros(ks, dtype=bool),
                np.where(heard, pop.reason[cs], -1), np.where(heard & ask, nps, -1), np.ones(ks, dtype=bool),
                np.full(ks, k, dtype=np.int32), kind.astype(np.int8), value, sec, upd, note)
