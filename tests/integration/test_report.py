"""The quarterly report (winback.report) on a real warehouse built by dbt and published.

Once per module the quality gate's raw dataset (tests/integration/test_quality_gate.py: 50
clients since 2023 with clients that stop, pause and come back) plus one win-back call is
loaded, dbt builds the warehouse for D = 2025-04-04, Q1 2025 is gated for real and
published, and every other closed quarter except Q2 2023 is published on a recorded gate
verdict (the publish contract is tested in test_publish.py). Tests read that template
database, or a private copy when they change it.

Expected figures are derived by hand from how the dataset is made:
- C005, C015, C025, C035, C045 (client number % 10 == 5) buy every third business day
  until 2024-08-01, then stop: lost on 2025-01-27..29 (last purchase + 181 days), i.e.
  5 lost clients in Q1 2025, each called (outcome refused, loss reason 'competitor') on
  2025-02-10..15, within 30 days of becoming lost, and not buying after the call;
  managers M2 (5, 25, 45) and M4 (15, 35).
- C021, C031, C041 pause from 2024-04-01 to 2025-01-20: lost 2024-09-26, back 2025-01-24
  (120 days): 3 returns in Q1 2025. The extra call (C021, manager M3, e-mail, 2025-01-10)
  is the last contact in the 90 days before C021's return: one return credited to M3 /
  e-mail, two not attributed.
- C003, C013, C023, C033, C043 stop on 2024-03-01 (lost in Q3 2024, with the three
  pausing clients: a Q3 2024 cohort of 8, 3 back within 180 days); C007, C017, C027,
  C037, C047 pause 2023-09-01..2024-05-06 (5 lost in Q1 2024, all back within 75 days).
- So at the start of Q1 2025: 8 lost, 42 of 50 active; churn 5/42, win-back 3/(8 + 5).
  Q4 2024: nobody lost, nobody back. Q1 2023 is the first quarter: 50 new clients,
  nobody active before, lost or back.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from integration.test_quality_gate import load_raw
from scratch_databases import scratch_database

from winback import warehouse
from winback.analytics import campaign_uplift
from winback.cli import main
from winback.dbt import run_dbt
from winback.publish import fingerprint, publish_quarter
from winback.quality import run_gate
from winback.report import BiViewsMissing, ReportError, bi_views, render_report

pytestmark = pytest.mark.integration

AS_OF = dt.date(2025, 4, 4)
Q1_2023, Q2_2023, Q3_2023 = dt.date(2023, 1, 1), dt.date(2023, 4, 1), dt.date(2023, 7, 1)
Q1_2024, Q3_2024, Q4_2024, Q1_2025 = dt.date(2024, 1, 1), dt.date(2024, 7, 1), dt.date(2024, 10, 1), dt.date(2025, 1, 1)
CLOSED = [dt.date(2023, m, 1) for m in (1, 4, 7, 10)] + [dt.date(2024, m, 1) for m in (1, 4, 7, 10)] + [Q1_2025]
UNPUBLISHED = Q2_2023
SECTIONS = ["summary", "trend", "cohorts", "migration", "lost", "deviations", "winback", "campaigns", "not-converted", "at-risk",
            "quality"]
TILE_KPIS = ["active_clients_start", "new_clients", "lost_clients", "returned_clients", "churn_rate",
             "winback_rate", "revenue_lost_ttm", "revenue_recovered_90d"]
LOST_Q1_2025 = {"C005": "M2", "C015": "M4", "C025": "M2", "C035": "M4", "C045": "M2"}
# Campaign WB-2024-09 (cost 300) calls four lost clients in September 2024: C021 and C031
# (lost 2024-09-26, back 2025-01-24, 118 days after the call: within 180) with a gift of
# 50 each, C003 (lost 2024-08-29, never back) with a discount of 200, C013 (the same)
# with nothing offered. Offers redeemed: the two gifts (100); C003's discount costs nothing.
CAMPAIGN_CONTACTS = [
    ("K901", "C021", "M3", "2024-09-28 10:00+00", "call", "reached", "WB-2024-09", "gift", 50),
    ("K902", "C031", "M3", "2024-09-28 11:00+00", "call", "reached", "WB-2024-09", "gift", 50),
    ("K903", "C003", "M3", "2024-09-28 12:00+00", "call", "no_answer", "WB-2024-09", "discount", 200),
    ("K904", "C013", "M3", "2024-09-29 10:00+00", "email", "reached", "WB-2024-09", "none", None),
]


# ----------------------------------------------------------------------------- building the warehouse
def record_validation(dsn: str, quarter: dt.date) -> str:
    """A successful kpi gate verdict on the rows staged now (what run_gate records)."""
    validation_id = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into audit.validation_results (validation_id, run_id, suite, as_of, quarter_start, success, "
            "evaluated, staged_fingerprint) values (%s, 'recorded', 'kpi', %s, %s, true, 0, %s)",
            (validation_id, AS_OF, quarter, fingerprint(conn, quarter)))
    return validation_id


def build_published_warehouse(dsn: str, home: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Bootstrap, load the dataset, dbt build as of AS_OF, gate and publish Q1 2025 for
    real and the other closed quarters (but Q2 2023) on recorded verdicts. Returns the
    validation id of the real Q1 2025 gate run."""
    warehouse.bootstrap(dsn)
    load_raw(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into raw.contacts (contact_id, client_id, manager_id, contact_at, channel, direction, "
                     "outcome, _source_object, _load_id) values ('K900', 'C021', 'M3', "
                     "'2025-01-10 10:00+00', 'email', 'outbound', 'agreed', 'test', 1)")
        conn.execute("insert into raw.campaigns (campaign_id, name, start_date, end_date, target_segment, cost, "
                     "_source_object, _load_id) values ('WB-2024-09', 'Autumn win-back', '2024-09-15', '2024-10-31', "
                     "'lost', 300, 'test', 1)")
        with conn.cursor().copy("copy raw.contacts (contact_id, client_id, manager_id, contact_at, channel, outcome, "
                                "campaign_id, offer_type, offer_value, _source_object, _load_id) from stdin") as rows:
            for row in CAMPAIGN_CONTACTS:
                rows.write_row([*row, "test", 1])
    run_dbt(["build", "--target-path", str(target)], dsn, as_of=AS_OF.isoformat())
    campaign_uplift.refresh(dsn)
    monkeypatch.setenv("WINBACK_HOME", str(home))
    gate = run_gate(dsn, "kpi", AS_OF, Q1_2025, "report-test").raise_for_failure()
    assert publish_quarter(dsn, Q1_2025, gate.validation_id, "quarterly publication") == 1
    for quarter in CLOSED:
        if quarter not in (Q1_2025, UNPUBLISHED):
            assert publish_quarter(dsn, quarter, record_validation(dsn, quarter), "quarterly publication") == 1
    return gate.validation_id


@pytest.fixture(scope="module")
def template(pg_admin_dsn, tmp_path_factory):
    with scratch_database(pg_admin_dsn, "wb_report_tpl") as (name, dsn):
        with pytest.MonkeyPatch.context() as patch:
            validation = build_published_warehouse(dsn, tmp_path_factory.mktemp("report_home"),
                                                   tmp_path_factory.mktemp("report_dbt_target"), patch)
        yield {"name": name, "dsn": dsn, "validation_id": validation}


@pytest.fixture
def copy(template, pg_admin_dsn):
    """A private copy of the template warehouse, for tests that change it."""
    with scratch_database(pg_admin_dsn, "wb_report", template=template["name"]) as (_, dsn):
        yield dsn


@pytest.fixture(scope="module")
def rendered(template, tmp_path_factory):
    """The reports of the template (HTML only), rendered once: quarter -> HTML path."""
    out = tmp_path_factory.mktemp("reports")
    return {q: render_report(template["dsn"], q, out, pdf=False) for q in (Q1_2023, Q3_2023, Q4_2024, Q1_2025)}


# ----------------------------------------------------------------------------- reading the page
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join("".join(parts if self.tag != "style" else []).split())

    def all(self, tag: str | None = None, **attrs: str | None) -> list[Node]:
        """Descendants with the tag and attributes (None: attribute present, any value)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                        (name in child.attrs) if value is None else child.attrs.get(name) == value
                        for name, value in ((k.replace("_", "-"), v) for k, v in attrs.items())):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str | None) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(path: Path) -> Node:
    builder = _Builder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


def rows(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def published(dsn: str, quarter: dt.date) -> dict:
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute("select * from reporting.kpi_quarterly where quarter_start = %s", (quarter,))
        names = [d.name for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


# The page's display rules, written out independently of the renderer.
def shown(kind: str, value) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f} %"
    if kind == "money":
        return f"{int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)):,}"
    return f"{value:,}"


KIND = {"churn_rate": "rate", "winback_rate": "rate", "lost_contacted_share": "rate", "revenue_lost_ttm": "money",
        "revenue_recovered_90d": "money"}


def same(attribute: str, value) -> bool:
    """A data-* attribute holds exactly the database value."""
    if value is None:
        return attribute == ""
    if isinstance(value, float):
        return float(attribute) == value
    if isinstance(value, Decimal):
        return Decimal(attribute) == value
    if isinstance(value, bool):
        return attribute == str(value).lower()
    return attribute == str(value)


# ----------------------------------------------------------------------------- KPI figures
def test_published_figures_are_the_hand_derived_ones(template):
    q1 = published(template["dsn"], Q1_2025)
    assert (q1["active_clients_start"], q1["new_clients"], q1["lost_clients"], q1["returned_clients"],
            q1["lost_pool_start"]) == (42, 0, 5, 3, 8)
    assert q1["churn_rate"] == pytest.approx(5 / 42) and q1["winback_rate"] == pytest.approx(3 / 13)
    assert q1["lost_contacted_share"] == 1.0 and q1["median_days_to_return"] == 120
    assert (q1["as_of_date"], q1["version"]) == (AS_OF, 1)


def test_tiles_show_the_published_figures_with_both_comparisons(template, rendered):
    page = parse(rendered[Q1_2025])
    current, previous, last_year = (published(template["dsn"], q) for q in (Q1_2025, Q4_2024, Q1_2024))
    for kpi in TILE_KPIS:
        tile = page.one("div", data_kpi=kpi)
        assert same(tile.attrs["data-value"], current[kpi]), kpi
        assert same(tile.attrs["data-previous"], previous[kpi]), kpi
        assert same(tile.attrs["data-last-year"], last_year[kpi]), kpi
        value = next(n for n in tile.all("div") if n.has_class("tile-value"))
        assert value.text() == shown(KIND.get(kpi, "count"), current[kpi]), kpi

    # By hand: 5 lost (0 in Q4 2024, 5 in Q1 2024), 3 won back (none before), 42 active (42, 50).
    def delta(kpi: str, compare: str) -> str:
        return page.one("div", data_kpi=kpi).one("div", data_compare=compare).text()

    assert delta("lost_clients", "previous") == "+5 vs Q4 2024"
    assert delta("lost_clients", "last-year") == "±0 vs Q1 2024"
    assert delta("returned_clients", "previous") == "+3 vs Q4 2024"
    assert delta("active_clients_start", "previous") == "±0 vs Q4 2024"
    assert delta("active_clients_start", "last-year") == "-8 (-16 %) vs Q1 2024"
    # churn 5/42 = 11.9 % vs 0 % in Q4 2024 and 10.0 % (5/50) in Q1 2024
    assert delta("churn_rate", "previous") == "+11.9 pp vs Q4 2024"
    assert delta("churn_rate", "last-year") == "+1.9 pp vs Q1 2024"
    lost_tile = page.one("div", data_kpi="lost_clients")
    assert "tone-worse" in lost_tile.one("div", data_compare="previous").attrs["class"]
    returned_tile = page.one("div", data_kpi="returned_clients")
    assert "tone-better" in returned_tile.one("div", data_compare="previous").attrs["class"]
    # Recovered revenue of returns on 2025-01-24: 90 days not over by 2025-04-04.
    assert "preliminary" in page.one("div", data_kpi="revenue_recovered_90d").text()

    for kpi in ("lost_pool_start", "median_days_to_return", "lost_contacted_share"):
        row = page.one("tr", data_kpi=kpi)
        assert same(row.attrs["data-value"], current[kpi]) and same(row.attrs["data-previous"], previous[kpi])
    assert page.one("tr", data_kpi="median_days_to_return").text().startswith("Median days to return 120 days")


def test_trend_covers_every_published_quarter_up_to_the_report(template, rendered):
    page = parse(rendered[Q1_2025])
    table = page.one("section", data_section="trend").all("tbody")[0]
    expected = rows(template["dsn"], "select quarter_start, lost_clients, returned_clients, churn_rate, winback_rate "
                                     "from reporting.kpi_quarterly order by 1")
    assert [r[0] for r in expected] == [q for q in CLOSED if q != UNPUBLISHED]
    shown_rows = table.all("tr")
    assert [r.attrs["data-quarter"] for r in shown_rows] == [r[0].isoformat() for r in expected]
    for tr, (_quarter, lost, returned, churn, winback) in zip(shown_rows, expected, strict=True):
        cells = [td.attrs["data-value"] for td in tr.all("td")]
        assert same(cells[2], lost) and same(cells[3], returned) and same(cells[4], churn) and same(cells[5], winback)
    bars = page.one("svg", data_chart="trend-counts").all("rect", data_series="lost_clients")
    assert {b.attrs["data-category"]: int(b.attrs["data-value"]) for b in bars} == {
        r[0].isoformat(): r[1] for r in expected}
    assert page.one("p", data_note="unpublished").text() == "Not published, so not shown: Q2 2023."
    points = page.one("svg", data_chart="trend-rates").all("circle", data_series="winback_rate")
    # win-back rate has no base (0 lost and 0 in the pool) in 2023: no point there
    assert {p.attrs["data-x"] for p in points} == {r[0].isoformat() for r in expected if r[4] is not None}


# ----------------------------------------------------------------------------- every page
def test_every_section_shows_the_quarter_and_the_as_of_date(rendered):
    for quarter, path in rendered.items():
        page = parse(path)
        sections = page.all("section")
        assert [s.attrs["data-section"] for s in sections] == SECTIONS
        label = f"Q{(quarter.month - 1) // 3 + 1} {quarter.year}"
        for section in sections:
            header = section.children[next(i for i, c in enumerate(section.children) if isinstance(c, Node))]
            assert header.tag == "header", section.attrs
            assert header.one("span", data_quarter=quarter.isoformat()).text() == label
            assert header.one("span", data_as_of=AS_OF.isoformat()).text() == f"as of {AS_OF}"
        # and in the footer of every printed page
        style = page.one("style").children[0]
        assert f'content: "Win-back quarterly report · {label} · as of {AS_OF}' in style
        assert "break-before: page" in style


def test_the_page_is_self_contained(rendered):
    html = rendered[Q1_2025].read_text(encoding="utf-8")
    assert "://" not in html                       # no URL of any kind
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\b(src|href)\s*=", html)
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html            # and the browser may not load anything
    assert len(parse(rendered[Q1_2025]).all("svg")) == 5


# ----------------------------------------------------------------------------- detail sections
def test_top_lost_clients(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="lost")
    clients = section.all("tr", **{"class": "lost-client"})
    assert {tr.attrs["data-client-id"] for tr in clients} == set(LOST_Q1_2025)
    for tr in clients:
        assert tr.one("td", data_field="loss_reason").text() == "competitor"
        assert tr.one("td", data_field="manager").text() == LOST_Q1_2025[tr.attrs["data-client-id"]]
        assert tr.one("td", data_field="contacted").text() == "yes"
        assert tr.one("td", data_field="status").text().startswith("still lost")
    expected = rows(template["dsn"], "select client_id, revenue_12m_before_loss, potential_revenue "
                                     "from reporting.lost_clients_top where quarter_start = %s order by revenue_rank",
                    (Q1_2025,))
    assert [tr.attrs["data-client-id"] for tr in clients] == [r[0] for r in expected]
    revenues = [Decimal(tr.all("td")[3].attrs["data-value"]) for tr in clients]
    assert revenues == [r[1] for r in expected] == sorted(revenues, reverse=True)
    assert [tr.all("td")[3].text() for tr in clients] == [shown("money", r[1]) for r in expected]


def test_winback_by_manager_channel_and_loss_reason(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="winback")
    by_manager = section.one("table", **{"class": "data winback-manager"})
    assert {tr.attrs["data-manager"]: tr.all("td")[0].text() for tr in by_manager.all("tr", data_manager=None)} == {
        "M3": "1", "not attributed": "2"}
    m3 = by_manager.one("tr", data_manager="M3")
    assert m3.all("td")[2].text() == "14 days"          # called 2025-01-10, back 2025-01-24
    by_channel = section.one("table", **{"class": "data winback-channel"})
    assert {tr.attrs["data-channel"]: tr.all("td")[0].text() for tr in by_channel.all("tr", data_channel=None)} == {
        "email": "1", "not attributed": "2"}
    # Loss reasons, from the published breakdown: the 5 lost gave 'competitor'; the 3
    # returning clients never gave a reason.
    reasons = section.one("table", data_dimension="loss_reason")
    lost_and_back = {tr.attrs["data-dimension-value"]: (tr.all("td")[1].text(), tr.all("td")[4].text())
                     for tr in reasons.all("tr", data_dimension_value=None)}
    assert lost_and_back == {"competitor": ("5", "0"), "unknown": ("0", "3")}
    managers = section.one("table", data_dimension="manager")
    published_rows = rows(template["dsn"], "select dimension_value, lost_clients, returned_clients, winback_rate "
                                           "from reporting.kpi_quarterly_breakdown where quarter_start = %s "
                                           "and dimension = 'manager'", (Q1_2025,))
    for value, lost, returned, winback in published_rows:
        cells = managers.one("tr", data_dimension_value=value).all("td")
        assert same(cells[1].attrs["data-value"], lost) and same(cells[4].attrs["data-value"], returned)
        assert same(cells[5].attrs["data-value"], winback)
    assert {r[0]: r[1] for r in published_rows if r[1]} == {"M2": 3, "M4": 2}


def test_cohort_curves_and_migration_heatmap(template, rendered):
    page = parse(rendered[Q1_2025])
    cohorts = page.one("section", data_section="cohorts")
    shown_rates = {(tr.attrs["data-cohort"], td.attrs["data-window"]): (td.attrs["data-value"], td.attrs["data-final"])
                   for tr in cohorts.all("tr", data_cohort=None) for td in tr.all("td", data_window=None)}
    assert shown_rates == {
        ("2024-01-01", "90"): ("1.0", "true"), ("2024-01-01", "180"): ("1.0", "true"),
        ("2024-01-01", "365"): ("1.0", "true"),
        ("2024-07-01", "90"): ("0.0", "true"), ("2024-07-01", "180"): ("0.375", "true"),
        ("2024-07-01", "365"): ("0.375", "false"),
        ("2025-01-01", "90"): ("0.0", "false"), ("2025-01-01", "180"): ("0.0", "false"),
        ("2025-01-01", "365"): ("0.0", "false"),
    }
    curve = cohorts.one("svg", data_chart="cohort-curves")
    assert {(c.attrs["data-series"], c.attrs["data-x"], c.attrs["data-final"]) for c in curve.all("circle")} == {
        (cohort, window, final) for (cohort, window), (_, final) in shown_rates.items()}

    heatmap = page.one("section", data_section="migration").one("svg", data_chart="heatmap-abc-xyz")
    cells = {(r.attrs["data-from"], r.attrs["data-to"]): int(r.attrs["data-clients"]) for r in heatmap.all("rect")
             if "data-from" in r.attrs}
    assert len(cells) == 100
    expected = dict(((f, t), n) for f, t, n in rows(
        template["dsn"], "select from_segment, to_segment, clients from reporting.segment_migration "
                         "where quarter_start = %s and segmentation = 'abc_xyz'", (Q1_2025,)))
    assert {k: v for k, v in cells.items() if v} == expected
    # Everybody with a class at the end of Q4 2024 or Q1 2025 is in the matrix: the 50 clients.
    assert sum(cells.values()) == 50


def test_early_warning_shows_the_list_now_and_the_backtest_to_the_quarter(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="at-risk")
    listed = [tr.attrs["data-client-id"] for tr in section.all("tr", data_client_id=None)]
    at_risk = rows(template["dsn"], "select client_id from reporting.clients_at_risk where is_at_risk "
                                    "order by risk_rank")
    assert listed and listed == [client for (client,) in at_risk][:15]
    judged = rows(template["dsn"], "select quarter_start, flagged_clients, flagged_lost_clients, lost_clients "
                                   "from marts.fct_early_warning_backtest where quarter_start <= %s "
                                   "order by quarter_start", (Q1_2025,))
    shown = {tr.attrs["data-quarter"]: [td.text() for td in tr.all("td")] for tr in section.all("tr", data_quarter=None)}
    assert judged and list(shown) == [quarter.isoformat() for quarter, *_ in judged][-8:]
    for quarter, flagged, caught, lost in judged[-8:]:  # precision and recall from the counts
        cells = shown[quarter.isoformat()]
        assert cells[5] == (f"{caught / flagged * 100:.1f} %" if flagged else "—")
        assert cells[6] == (f"{caught / lost * 100:.1f} %" if lost else "—")
    # The quarters after the report's are not in it.
    assert all(quarter <= Q1_2025.isoformat() for quarter in shown)


def test_work_list_loss_reasons_and_key_client_coverage(template, rendered):
    page = parse(rendered[Q1_2025])
    lost = page.one("section", data_section="lost")
    listed = [tr.attrs["data-client-id"] for tr in lost.all("tr", **{"class": "work-list-client"})]
    work_list = rows(template["dsn"], "select client_id from marts.lost_clients order by winback_rank")
    assert listed and listed == [client for (client,) in work_list][:15]
    # Loss reasons recorded per manager, counted here from the quarter's lost episodes.
    episodes = rows(template["dsn"], "select coalesce(manager_id, 'unknown'), loss_reason from marts.fct_lost_episodes "
                                     "where lost_date between %s and %s", (Q1_2025, dt.date(2025, 3, 31)))
    expected = {}
    for manager, reason in episodes:
        lost_n, recorded = expected.get(manager, (0, 0))
        expected[manager] = (lost_n + 1, recorded + (reason != "unknown"))
    shown = {tr.attrs["data-manager"]: [td.text() for td in tr.all("td")]
             for tr in lost.all("tr", **{"class": "reason-recording"})}
    assert expected and {m: (int(c[0]), int(c[1])) for m, c in shown.items()} == expected
    # Active A and B clients per manager with a contact in the last 60 days, from the marts.
    at_risk = page.one("section", data_section="at-risk")
    coverage = {tr.attrs["data-manager"]: [int(td.text()) for td in tr.all("td")[:2]]
                for tr in at_risk.all("tr", **{"class": "coverage"})}
    key = rows(template["dsn"], "select coalesce(manager_id, 'unknown'), count(*), "
                                "count(*) filter (where days_since_last_contact < 60) from marts.client_value "
                                "where not is_lost and abc_class in ('A', 'B') group by 1")
    assert key and coverage == {manager: [n, contacted] for manager, n, contacted in key}


def test_revenue_deviations_and_region_and_industry_tables(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="deviations")
    falls = rows(template["dsn"], "select client_id from marts.fct_revenue_deviations where quarter_start = %s "
                                  "and deviation_vs_last_year < 0 order by deviation_vs_last_year, client_id",
                 (Q1_2025,))
    listed = [tr.attrs["data-client-id"] for tr in section.all("tr", **{"class": "deviation"})]
    assert falls and listed == [client for (client,) in falls][:10]
    assert f"{len(falls)} of " in section.one("p").text()
    total_fall = rows(template["dsn"], "select -sum(deviation_vs_last_year) from marts.fct_revenue_deviations "
                                       "where quarter_start = %s and deviation_vs_last_year < 0", (Q1_2025,))[0][0]
    assert section.one("span", data_field="fall-vs-last-year").text() == \
        f"{int(total_fall.quantize(Decimal(1), rounding=ROUND_HALF_UP)):,}"
    for dimension in ("region", "industry"):
        published = rows(template["dsn"], "select dimension_value from reporting.kpi_quarterly_breakdown "
                                          "where quarter_start = %s and dimension = %s", (Q1_2025, dimension))
        table = section.one("table", data_dimension=dimension)
        assert sorted(tr.attrs["data-dimension-value"] for tr in table.all("tr", data_dimension_value=None)) == \
            sorted(value for (value,) in published)


def test_what_worked_campaigns_offers_and_uplift(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="campaigns")
    assert section.one("span", data_field="campaign-targeted").text() == "4"
    assert section.one("span", data_field="campaign-returned").text() == "2"
    campaign = section.one("tr", data_campaign_id="WB-2024-09")
    cells = [td.attrs["data-value"] for td in campaign.all("td", data_value=None)]
    margin = rows(template["dsn"], "select sum(gross_margin_recovered_90d) from marts.fct_lost_episodes "
                                   "where client_id in ('C021', 'C031') and return_date = '2025-01-24'")[0][0]
    # clients, back, margin back, offers redeemed, campaign cost, net margin (uplift last)
    assert [Decimal(v) for v in cells[:6]] == [4, 2, margin, 100, 300, margin - 400]
    assert campaign.one("th").text() == "Autumn win-back"
    # Every offer type with a comparison group has its row, as stored after the build.
    uplift = rows(template["dsn"], "select offer_type, uplift, uplift_ci_low, uplift_ci_high from "
                                   "reporting.campaign_uplift where grouping = 'offer_type'")
    shown = {tr.attrs["data-offer-type"]: tr for tr in section.all("tr", **{"class": "uplift-offer"})}
    assert uplift and set(shown) == {offer for offer, *_ in uplift}
    for offer, value, low, high in uplift:
        interval = shown[offer].all("td")[4]
        assert Decimal(interval.attrs["data-low"]) == low and Decimal(interval.attrs["data-high"]) == high
        assert low <= value <= high


def test_nps_of_the_quarter_for_the_company_and_per_manager(rendered):
    # Q1 2025: the five win-back calls (C005, C015, C025, C035, C045) each answered 4: all
    # detractors. Their managers (LOST_Q1_2025): M2 has three of them, M4 two.
    section = parse(rendered[Q1_2025]).one("section", data_section="not-converted")
    shown = [[td.text() for td in tr.all("td")] for tr in section.all("tr", **{"class": "nps"})]
    managers = sorted(set(LOST_Q1_2025.values()))
    counts = {m: sum(1 for v in LOST_Q1_2025.values() if v == m) for m in managers}
    assert shown == [["company", "-100.0", "5", "0", "0", "5"]] + [
        [f"manager {m}", "-100.0", str(counts[m]), "0", "0", str(counts[m])] for m in managers]


def test_contacted_not_converted(rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="not-converted")
    clients = {tr.attrs["data-client-id"]: [td.text() for td in tr.all("td")]
               for tr in section.all("tr", data_client_id=None)}
    # The five win-back calls of February did not convert; C021's e-mail did (back 14 days later).
    assert set(clients) == set(LOST_Q1_2025)
    assert all(cells[1] == "1" and cells[6] == "call" and cells[7] == "refused" for cells in clients.values())
    assert {c: cells[5] for c, cells in clients.items()} == LOST_Q1_2025


def test_data_quality_section_names_the_gate_run(template, rendered):
    section = parse(rendered[Q1_2025]).one("section", data_section="quality")
    assert section.one("code", data_validation_id=template["validation_id"])
    assert section.one("dd", data_gate="warning").text() == "passed with warnings"
    assert section.one("span", data_warnings=None).text() == "kpi_quarterly.recovered_revenue_final"
    assert section.one("dd", data_version="1").text() == "1 — quarterly publication"
    published_at = rows(template["dsn"], "select published_at from reporting.kpi_publications "
                                         "where quarter_start = %s", (Q1_2025,))[0][0]
    assert section.one("dd", data_published_at=None).text() == \
        published_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # A quarter published on a recorded verdict shows that run (0 checks) as passed.
    other = parse(rendered[Q4_2024]).one("section", data_section="quality")
    assert other.one("dd", data_gate="passed").text() == "passed"


# ----------------------------------------------------------------------------- empty cases
def _empty_states(page: Node) -> dict[str, str]:
    return {p.attrs["data-empty"]: p.text() for p in page.all("p", data_empty=None)}


def test_first_quarter_renders_without_previous_quarter_losses_or_returns(rendered):
    page = parse(rendered[Q1_2023])
    for kpi in TILE_KPIS:
        tile = page.one("div", data_kpi=kpi)
        assert tile.one("div", data_compare="previous").text() == "no previous quarter"
        assert tile.one("div", data_compare="last-year").text() == "no quarter a year before"
        assert tile.attrs["data-previous"] == tile.attrs["data-last-year"] == ""
    tile_values = {kpi: next(n for n in page.one("div", data_kpi=kpi).all("div") if n.has_class("tile-value")).text()
                   for kpi in TILE_KPIS}
    assert tile_values == {"active_clients_start": "0", "new_clients": "50", "lost_clients": "0",
                           "returned_clients": "0", "churn_rate": "—", "winback_rate": "—",
                           "revenue_lost_ttm": "0", "revenue_recovered_90d": "0"}
    assert _empty_states(page) == {
        "cohorts": "No lost cohorts up to this quarter: no client had become lost yet.",
        "lost": "No clients were lost this quarter.",
        "winback": "No returns this quarter.",
        "loss_reason": "No lost or won-back clients with a loss reason this quarter.",
        "not-converted": "No contacted-but-not-converted clients this quarter.",
        "reason-recording": "No clients were lost this quarter.",
        "backtest": "No quarter has a complete 180-day horizon yet.",
        "nps": "No NPS answers this quarter.",
        "promoters": "No client's latest NPS answer is 9 or 10.",  # the fixture's answers are all 4
    }
    summary = page.one("ul", **{"class": "key-points"}).text()
    assert "No client became lost this quarter." in summary and "No returns this quarter." in summary
    assert "first published quarter" in page.one("section", data_section="trend").text()


def test_quarter_after_an_unpublished_one_and_a_quiet_quarter(rendered):
    q3 = parse(rendered[Q3_2023])
    assert q3.one("div", data_kpi="lost_clients").one("div", data_compare="previous").text() == \
        "Q2 2023 not published"
    q4 = parse(rendered[Q4_2024])
    assert q4.one("div", data_kpi="lost_clients").one("div", data_compare="previous").text() == "-8 (-100 %) vs Q3 2024"
    assert q4.one("div", data_kpi="returned_clients").one("div", data_compare="last-year").text() == \
        "±0 vs Q4 2023"
    states = _empty_states(q4)
    assert states["lost"] == "No clients were lost this quarter." and states["winback"] == "No returns this quarter."


# ----------------------------------------------------------------------------- published only
def test_report_reads_published_rows_only(copy, tmp_path):
    # Staged figures that were never published, then no staging schema at all.
    with psycopg.connect(copy) as conn:
        conn.execute("update kpi_staging.kpi_quarterly set lost_clients = 999, churn_rate = 0.99")
    first = parse(render_report(copy, Q1_2025, tmp_path / "a", pdf=False))
    assert first.one("div", data_kpi="lost_clients").attrs["data-value"] == "5"
    with psycopg.connect(copy) as conn:
        conn.execute("drop schema kpi_staging cascade")
    again = render_report(copy, Q1_2025, tmp_path / "b", pdf=False)
    assert parse(again).one("div", data_kpi="churn_rate").attrs["data-value"] == repr(5 / 42)


def test_a_correction_shows_the_latest_version(copy, tmp_path):
    with psycopg.connect(copy) as conn:
        conn.execute("update kpi_staging.kpi_quarterly set median_days_to_return = 121 where quarter_start = %s",
                     (Q4_2024,))
    assert publish_quarter(copy, Q4_2024, record_validation(copy, Q4_2024), "correction: median") == 2
    path = render_report(copy, Q4_2024, tmp_path, pdf=False)
    assert path.name == "winback-report-2024-Q4-v2.html"
    page = parse(path)
    assert page.one("tr", data_kpi="median_days_to_return").attrs["data-value"] == "121.0"
    versions = page.one("section", data_section="quality").all("tr", data_version=None)
    assert [(tr.attrs["data-version"], tr.all("td")[2].text()) for tr in versions] == [
        ("1", "quarterly publication"), ("2", "correction: median")]
    assert all(s.one("span", data_version="2").text() == "published v2" for s in page.all("section"))


def test_unpublished_quarter_is_a_one_line_error(template, tmp_path, monkeypatch, capsys):
    with pytest.raises(ReportError, match=r"quarter 2023-04-01 \(Q2 2023\) is not published") as error:
        render_report(template["dsn"], Q2_2023, tmp_path, pdf=False)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setenv("WINBACK_WAREHOUSE_URL", template["dsn"])
    assert main(["report", "--quarter", "2023-04-01", "--out", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: quarter 2023-04-01 (Q2 2023) is not published")
    assert lines[1].startswith("hint: publish the quarter first (winback publish --quarter")
    with pytest.raises(SystemExit):
        main(["report", "--quarter", "2023-05-01"])
    assert "not the first day of a calendar quarter" in capsys.readouterr().err


# The marts DAG's dbt selection (dags/winback_marts.py).
MARTS_DAG_SELECTION = ["tag:staging", "tag:intermediate", "tag:marts", "tag:reporting"]


def test_a_dbt_rebuild_of_the_marts_rebuilds_the_bi_views(copy, tmp_path):
    # dbt swaps a rebuilt table in and drops the old one with CASCADE: the views on it go
    # with it; the report does not paper over that, it says what to run.
    target = str(tmp_path / "target")
    run_dbt(["run", "--select", "lost_clients", "--target-path", target], copy, as_of=AS_OF.isoformat())
    assert rows(copy, "select to_regclass('reporting.lost_clients_top')") == [(None,)]
    missing = r"^reporting\.lost_clients_top, reporting\.winback_work_list not found: .*winback_marts DAG"
    with pytest.raises(BiViewsMissing, match=missing) as error:
        render_report(copy, Q1_2025, tmp_path, pdf=False)
    assert isinstance(error.value, ReportError) and "\n" not in str(error.value)

    # The BI views are dbt models downstream of the marts: a full rebuild of the marts
    # DAG's selection drops every one of them and builds them again, documented and granted.
    run_dbt(["build", "--full-refresh", "--select", *MARTS_DAG_SELECTION, "--target-path", target], copy,
            as_of=AS_OF.isoformat())
    views = bi_views(nightly_only=True)
    assert {"reporting.lost_clients_top", "reporting.clients_at_risk"} <= set(views)
    assert rows(copy, "select v from unnest(%s::text[]) as v where to_regclass(v) is null", (list(views),)) == []
    for view in views:
        assert rows(copy, "select obj_description(%s::regclass, 'pg_class') is not null, "
                          "has_table_privilege('winback_bi_reader', %s, 'select')", (view, view)) == [(True, True)]
        assert rows(copy, "select count(*) from pg_attribute where attrelid = %s::regclass and attnum > 0 "
                          "and not attisdropped and col_description(attrelid, attnum) is null", (view,)) == [(0,)]
    page = parse(render_report(copy, Q1_2025, tmp_path, pdf=False))
    assert len(page.one("section", data_section="lost").all("tr", **{"class": "lost-client"})) == 5


def test_pdf_next_to_the_html(template, tmp_path):
    from winback.report.pdf import chromium_executable

    try:
        import weasyprint
    except (ImportError, OSError):
        weasyprint = None
    html = render_report(template["dsn"], Q1_2025, tmp_path)
    pdf = html.with_suffix(".pdf")
    if weasyprint is None and chromium_executable() is None:
        assert not pdf.exists()          # no engine: HTML only, with a logged note
        return
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and len(data) > 20_000
    if weasyprint is not None:           # one printed page per section
        assert len(weasyprint.HTML(filename=str(html)).render().pages) == len(SECTIONS)


# ----------------------------------------------------------------------------- CLI
def test_cli_publish_gates_then_publishes_and_names_failed_checks(copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WINBACK_WAREHOUSE_URL", copy)
    monkeypatch.setenv("WINBACK_HOME", str(tmp_path))
    assert main(["publish", "--quarter", "2023-04-01", "--reason", "backfill"]) == 0
    out = capsys.readouterr().out
    assert "quarter 2023-04-01: published version 1" in out
    assert rows(copy, "select version, reason from reporting.kpi_publications where quarter_start = %s",
                (Q2_2023,)) == [(1, "backfill")]
    assert main(["report", "--quarter", "2023-04-01", "--out", str(tmp_path), "--no-pdf"]) == 0
    assert (tmp_path / "winback-report-2023-Q2-v1.html").is_file()

    with psycopg.connect(copy) as conn:
        conn.execute("update kpi_staging.kpi_quarterly set winback_rate = 1.5 where quarter_start = %s", (Q4_2024,))
    assert main(["publish", "--quarter", "2024-10-01", "--reason", "correction"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 2 and error[0].startswith("error: quality gate FAILED")
    assert "kpi_quarterly.winback_rate_within_0_1" in error[0]
    assert error[1].startswith("hint: nothing was published")
    assert rows(copy, "select max(version) from reporting.kpi_publications where quarter_start = %s",
                (Q4_2024,)) == [(1,)]

    assert main(["status", "--limit", "3"]) == 0
    status = capsys.readouterr().out
    assert "Latest quality-gate runs (audit.validation_results):" in status
    assert re.search(r"kpi\s+as of 2025-04-04 quarter 2024-10-01 FAILED .*kpi_quarterly.winback_rate_within_0_1",
                     status)
    assert re.search(r"2023-04-01 v1 .* backfill", status)
