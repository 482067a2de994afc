"""Parameters, result summary and the vocabularies of the demo data generator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


def _contract_lost_after_days() -> int:
    """L from the dbt vars, the metric contract's one home."""
    from winback.config import get_settings

    return int(get_settings().dbt_vars()["lost_after_days"])


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The same config always yields byte-identical data.

    ``target_lines`` sizes everything: the number of clients, managers, products and
    contacts follows from it, so that about that many sales lines fall in
    ``[start_date, as_of]``. The simulated client population depends on the config
    only; the days after ``as_of`` continue the same population (``advance_one_day``).
    """

    seed: int = 42
    target_lines: int = 20_000
    start_date: dt.date = dt.date(2023, 1, 1)
    as_of: dt.date = dt.date(2025, 6, 30)
    # The metric contract's L (dbt var lost_after_days). The generator only uses it to place
    # the designed quiet periods and the managers' win-back contacts around the lost date.
    lost_after_days: int = field(default_factory=_contract_lost_after_days)
    # Share of the clients active in the period that already existed before start_date.
    existing_client_share: float = 0.45
    # Routine CRM contacts per client and year (win-back contacts come on top).
    contacts_per_client_year: float = 2.5
    # Shares of sales lines that are later returned / corrected, of orders cancelled.
    return_share: float = 0.015
    correction_share: float = 0.012
    cancel_share: float = 0.015
    late_cancel_share: float = 0.005
    # Share of contacts that cannot be matched to a client (client_id null).
    unmatched_contact_share: float = 0.015
    # Share of clients whose CRM row arrives a few days after their first order.
    late_client_share: float = 0.01

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must not be negative (got {self.seed})")
        if self.target_lines < 200:
            raise ValueError(f"target_lines must be at least 200 (got {self.target_lines})")
        if self.as_of <= self.start_date:
            raise ValueError(f"as_of ({self.as_of}) must be after start_date ({self.start_date})")
        if self.lost_after_days < 1:
            raise ValueError("lost_after_days must be positive")
        for name in ("existing_client_share", "return_share", "correction_share", "cancel_share",
                     "late_cancel_share", "unmatched_contact_share", "late_client_share"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1) (got {value})")
        if self.return_share + self.correction_share >= 0.5:
            raise ValueError("return_share + correction_share must stay below 0.5")
        if self.contacts_per_client_year < 0:
            raise ValueError("contacts_per_client_year must not be negative")


@dataclass(frozen=True)
class GenerationSummary:
    """What one call produced.

    For ``generate_source`` and ``write_files`` the counts are the rows now in the tables
    (or files); for ``advance_one_day`` they are the rows that day inserted (``sales_lines``,
    ``clients``) or updated (``corrections``, ``client_updates``, ``manager_updates``).
    """

    as_of: dt.date
    first_day: dt.date
    sales_lines: int = 0
    corrections: int = 0
    returns: int = 0
    cancelled: int = 0
    clients: int = 0
    client_updates: int = 0
    managers: int = 0
    manager_updates: int = 0
    contacts: int = 0
    campaigns: int = 0
    files: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    @property
    def lines_per_second(self) -> float:
        return self.sales_lines / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- vocabularies
SALES_CHANNELS = ("direct", "online", "dealer", "phone")
SALES_CHANNEL_WEIGHTS = (0.38, 0.24, 0.20, 0.18)
STATUSES = ("completed", "cancelled", "returned")
COMPLETED, CANCELLED, RETURNED = 0, 1, 2

REGIONS = ("Capital", "Central", "North", "North-West", "South", "East", "Urals", "Siberia")
REGION_WEIGHTS = (0.22, 0.16, 0.07, 0.12, 0.14, 0.10, 0.11, 0.08)
# Regional teams (by region index) plus a key-account team for the largest clients.
TEAMS = ("Team Capital", "Team Center", "Team West", "Team East", "Key Accounts")
TEAM_OF_REGION = (0, 1, 1, 2, 2, 3, 3, 3)
KEY_ACCOUNTS = 4
TEAM_MANAGER_WEIGHTS = (0.22, 0.22, 0.24, 0.22, 0.10)

INDUSTRIES = ("construction", "retail", "manufacturing", "agriculture", "hospitality", "healthcare",
              "logistics", "education", "automotive", "energy")
INDUSTRY_WEIGHTS = (0.16, 0.18, 0.15, 0.08, 0.09, 0.08, 0.09, 0.05, 0.07, 0.05)
SEASONAL_INDUSTRIES = (0, 3, 4)  # construction, agriculture, hospitality

ACQUISITION_CHANNELS = ("referral", "trade_show", "website", "cold_call", "partner", "marketplace")

CONTACT_CHANNELS = ("call", "email", "meeting", "messenger", "visit")
DIRECTIONS = ("outbound", "inbound")
OUTCOMES = ("no_answer", "reached", "offer_sent", "order_promised", "refused", "complaint")
NO_ANSWER, REACHED, OFFER_SENT, ORDER_PROMISED, REFUSED, COMPLAINT = range(6)
LOSS_REASONS = ("price", "quality", "service", "competitor", "staff", "no_need", "closed_business", "other")

# ---------------------------------------------------------------------------- campaigns and offers
# One win-back campaign per calendar quarter, from the first quarter that begins a year after
# the start: it starts in the quarter's first two weeks (on a working day) and runs this many
# days (start + 45 ... start + 74: never into the next quarter's campaign).
CAMPAIGN_START_DAYS = (0, 13)
CAMPAIGN_DAYS = (45, 75)
# Fixed cost (preparation, mailing, agency; without the offers): this share of the seller's
# expected quarterly revenue, times a factor drawn per campaign.
CAMPAIGN_COST_SHARE = 0.004
CAMPAIGN_COST_FACTOR = (0.6, 1.4)
CAMPAIGN_THEMES = ("We miss you", "Welcome back", "Let's talk again", "Back in business", "Come back to us")
CAMPAIGN_SEASONS = ("Winter", "Spring", "Summer", "Autumn")  # by quarter
CAMPAIGN_TARGETS = ("lost A", "lost A/B", "lost B/C", "all lost clients")
# A lost client's win-back contact during a campaign belongs to it with this probability
# (the others are ad-hoc contacts).
CAMPAIGN_CONTACT_SHARE = 0.8
# The campaign's sweep: at its start a campaign also targets the lost clients nobody works on
# (lost and not back, no manager's win-back contact in the lost episode, not yet in a campaign
# in it), including clients lost long ago. Each such lost episode is drawn once, by the first
# campaign that finds it: targeted with this probability, else held out of the sweeps for the
# rest of the episode (a holdout: the lost clients nobody contacts, the uplift's comparison group).
CAMPAIGN_SWEEP_SHARE = 0.5
# Sweep contacts are spread over the campaign's first weeks: start + 0 ... start + 13 days
# (a weekend day moves to the Monday).
CAMPAIGN_SWEEP_DAYS = (0, 14)
# Sweep contacts: channel (CONTACT_CHANNELS) and first outcome (OUTCOMES) of a client who does not
# come back; one who does answers as after a manager's call.
SWEEP_CHANNEL_WEIGHTS = (0.30, 0.55, 0.0, 0.12, 0.03)
SWEEP_OUTCOME_WEIGHTS = (0.45, 0.22, 0.08, 0.0, 0.20, 0.05)

OFFER_TYPES = ("gift", "service", "discount", "none")
GIFT, SERVICE, DISCOUNT, NO_OFFER = range(len(OFFER_TYPES))
# Each campaign tests every offer type against a no-offer control (A/B style): its mix is
# drawn from a Dirichlet distribution around these shares (concentration OFFER_MIX_CONCENTRATION).
OFFER_MIX = (0.25, 0.25, 0.25, 0.25)
OFFER_MIX_CONCENTRATION = 16.0
# What an offer costs, as a share of the client's typical order (drawn uniformly in the range):
# a small gift, a medium service (free delivery, installation, extended support), a discount
# on the next order the largest. No value for "none".
OFFER_VALUE_SHARE = ((0.01, 0.03), (0.03, 0.07), (0.08, 0.15), (0.0, 0.0))
# The offer's effect: the probability that a contacted lost client who would NOT have come
# back returns because of it, by offer type (rows, OFFER_TYPES) and value segment (columns:
# A, B, C, the client's class by expected revenue as in the metric contract's ABC rule).
# A service works best, above all for A clients; a gift less; a discount, the dearest offer,
# little; a contact without an offer changes nothing.
OFFER_RETURN_P = (
    (0.45, 0.40, 0.35),  # gift
    (0.75, 0.65, 0.60),  # service
    (0.15, 0.15, 0.12),  # discount
    (0.00, 0.00, 0.00),  # none
)
# A client an offer brings back orders this many days after it (5 ... 60).
OFFER_RETURN_DAYS = (5, 61)
SEGMENTS = ("A", "B", "C")

# ---------------------------------------------------------------------------- archetypes
ARCHETYPES = ("regular", "seasonal", "one_off", "growing", "shrinking", "churner", "winback", "erratic")
(REGULAR, SEASONAL, ONE_OFF, GROWING, SHRINKING, CHURNER, WINBACK, ERRATIC) = range(len(ARCHETYPES))
ARCHETYPE_WEIGHTS = (0.28, 0.10, 0.14, 0.10, 0.10, 0.12, 0.09, 0.07)

# Loss reasons by archetype (rows follow ARCHETYPES, columns LOSS_REASONS).
LOSS_REASON_WEIGHTS = (
    (0.25, 0.10, 0.15, 0.20, 0.10, 0.08, 0.05, 0.07),  # regular
    (0.15, 0.05, 0.05, 0.15, 0.05, 0.35, 0.10, 0.10),  # seasonal
    (0.15, 0.05, 0.05, 0.10, 0.00, 0.45, 0.05, 0.15),  # one_off
    (0.30, 0.10, 0.15, 0.25, 0.10, 0.00, 0.05, 0.05),  # growing
    (0.25, 0.10, 0.10, 0.30, 0.05, 0.10, 0.05, 0.05),  # shrinking
    (0.22, 0.12, 0.14, 0.24, 0.08, 0.04, 0.11, 0.05),  # churner
    (0.30, 0.15, 0.20, 0.12, 0.15, 0.03, 0.00, 0.05),  # winback
    (0.20, 0.10, 0.10, 0.20, 0.05, 0.20, 0.05, 0.10),  # erratic
)
# Mean NPS answer by archetype.
NPS_MEAN = (8.3, 7.6, 7.0, 8.7, 5.8, 4.2, 5.2, 6.6)

# ---------------------------------------------------------------------------- fake names
SURNAMES = ("Adams", "Baker", "Carter", "Dalton", "Ellis", "Fischer", "Garcia", "Hughes", "Ivanov", "Jensen",
            "Keller", "Larsen", "Morozov", "Novak", "Olsen", "Petrov", "Quinn", "Romero", "Schmidt", "Turner",
            "Ulrich", "Volkov", "Walsh", "Young", "Zimmer", "Bennett", "Coleman", "Dixon", "Foster", "Grant",
            "Harper", "Kovacs", "Lebedev", "Moreno", "Nash", "Orlov", "Porter", "Reyes", "Sokolov", "Vance")
FIRST_NAMES = ("Anna", "Boris", "Clara", "David", "Elena", "Felix", "Galina", "Henrik", "Irina", "James",
               "Katrin", "Leon", "Maria", "Nikolai", "Olga", "Pavel", "Rosa", "Sergei", "Tatiana", "Victor",
               "Alexei", "Daria", "Emma", "Igor", "Lucas", "Marta", "Oscar", "Sofia", "Yuri", "Zoe")
NAME_WORDS = ("North", "Blue", "Summit", "Atlas", "Pioneer", "Silver", "Granite", "Harbor", "Evergreen",
              "Prime", "Union", "Crest", "Delta", "Polar", "Meridian", "Falcon", "Vector", "Oak", "Cedar", "Nova")
NAME_TRADES = ("Logistics", "Foods", "Builders", "Supply", "Engineering", "Trading", "Farms", "Retail",
               "Metals", "Systems", "Clinics", "Motors", "Hotels", "Energy", "Plastics", "Textiles")
NAME_SUFFIXES = ("Ltd", "LLC", "Inc", "GmbH", "Group", "Co", "JSC", "Partners")
PHONE_AREAS = (201, 212, 305, 312, 415, 503, 617, 702, 713, 808, 904, 971)
