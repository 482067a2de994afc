"""The input data contract (v2) as data: entities, their columns, types, keys and value rules.

This mirrors ``docs/data-contract.md``; the raw tables in ``sql/bootstrap.sql``
have the same columns. Validation, readers and the loader all work from these specs.

v2 is backward compatible with v1: the contacts' campaign and offer columns are optional,
and so is the whole ``campaigns`` entity. A v1 delivery loads exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

# Limits the contract states for text values (docs/data-contract.md): a longer value is
# quarantined. An identifier is also trimmed of surrounding whitespace and must fit a
# B-tree index entry (PostgreSQL refuses keys over about 2.7 kB).
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 10_000
# What "surrounding whitespace" of an identifier is (the SQL and the client checks agree on it).
ID_WHITESPACE = " \t\r\n\f\v\u00a0"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text | date | numeric | timestamp | integer | boolean
    required: bool = False
    # Inclusive bounds of a numeric or integer value; None leaves that side open.
    minimum: int | None = None
    maximum: int | None = None

    def __post_init__(self) -> None:
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("numeric", "integer"):
            raise ValueError(f"{self.name}: only a numeric or integer column has bounds")

    @property
    def bounded(self) -> bool:
        return self.minimum is not None or self.maximum is not None

    @property
    def out_of_range(self) -> str:
        """How a quarantine reason ends for a value out of bounds: "nps_score 11 outside 0-10",
        "offer_value -5 is negative"."""
        if self.minimum is not None and self.maximum is not None:
            return f"outside {self.minimum}-{self.maximum}"
        if self.minimum is not None:
            return "is negative" if self.minimum == 0 else f"is below {self.minimum}"
        return f"is above {self.maximum}"

    @property
    def is_identifier(self) -> bool:
        """A key or a reference to one (``line_id``, ``client_id``, ...): trimmed, at most MAX_ID_CHARS."""
        return self.name.endswith("_id")

    @property
    def max_chars(self) -> int | None:
        if self.type != "text":
            return None
        return MAX_ID_CHARS if self.is_identifier else MAX_TEXT_CHARS


@dataclass(frozen=True)
class NotBefore:
    """A rule across two columns of one row: ``column`` may not lie before ``other`` (a
    campaign may not end before it starts). A row with either value empty keeps it."""

    column: str
    other: str


@dataclass(frozen=True)
class Entity:
    name: str
    key: str
    columns: tuple[Column, ...]
    # The column that must not lie after the as-of date (a sale "in the future").
    event_date: str | None = None
    row_rules: tuple[NotBefore, ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def has_updated_at(self) -> bool:
        return "updated_at" in self.column_names


SALES_LINES = Entity(
    name="sales_lines",
    key="line_id",
    event_date="order_date",
    columns=(
        Column("line_id", "text", True),
        Column("order_id", "text", True),
        Column("client_id", "text", True),
        Column("order_date", "date", True),
        Column("quantity", "numeric", True),
        Column("net_amount", "numeric", True),
        Column("cost_amount", "numeric"),
        Column("product_id", "text"),
        Column("channel", "text"),
        Column("status", "text"),
        Column("updated_at", "timestamp"),
    ),
)

CLIENTS = Entity(
    name="clients",
    key="client_id",
    columns=(
        Column("client_id", "text", True),
        Column("name", "text"),
        Column("region", "text"),
        Column("industry", "text"),
        Column("manager_id", "text"),
        Column("acquisition_channel", "text"),
        Column("potential_revenue", "numeric"),
        Column("email", "text"),
        Column("phone", "text"),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
    ),
)

MANAGERS = Entity(
    name="managers",
    key="manager_id",
    columns=(
        Column("manager_id", "text", True),
        Column("name", "text"),
        Column("team", "text"),
        Column("active", "boolean"),
    ),
)

CONTACTS = Entity(
    name="contacts",
    key="contact_id",
    event_date="contact_at",
    columns=(
        Column("contact_id", "text", True),
        Column("client_id", "text"),
        Column("manager_id", "text"),
        Column("contact_at", "timestamp", True),
        Column("channel", "text", True),
        Column("direction", "text"),
        Column("outcome", "text"),
        Column("loss_reason", "text"),
        Column("nps_score", "integer", minimum=0, maximum=10),
        Column("notes", "text"),
        Column("updated_at", "timestamp"),
        # v2: after updated_at, as in raw.contacts, where the upgrade of a v1 warehouse appends them.
        Column("campaign_id", "text"),
        Column("offer_type", "text"),
        Column("offer_value", "numeric", minimum=0),
    ),
)

# No event_date: a campaign planned to start after the as-of date is a legitimate row.
CAMPAIGNS = Entity(
    name="campaigns",
    key="campaign_id",
    row_rules=(NotBefore("end_date", "start_date"),),
    columns=(
        Column("campaign_id", "text", True),
        Column("name", "text"),
        Column("start_date", "date", True),
        Column("end_date", "date"),
        Column("target_segment", "text"),
        Column("cost", "numeric", minimum=0),
        Column("updated_at", "timestamp"),
    ),
)

ENTITIES: dict[str, Entity] = {e.name: e for e in (SALES_LINES, CLIENTS, MANAGERS, CAMPAIGNS, CONTACTS)}
SALES_STATUSES = frozenset({"completed", "cancelled", "returned"})
