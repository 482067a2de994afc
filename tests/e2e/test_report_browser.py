"""The quarterly report in a real browser: Debian's headless Chromium.

A published quarter is rendered from a warehouse built by dbt (the report tests' one), then
Chromium loads the file with a fresh profile and no background networking. Over the Chrome
DevTools Protocol (a websocket) the test collects every console message, uncaught
exception and browser log entry (failed loads and Content-Security-Policy violations land
there) and asserts there are none; then it checks in the live DOM that the charts were laid
out (SVG marks with a real size), that nothing was fetched, and that print media puts
every section on its own page. A control page with a deliberate console error and a
missing image proves the listener does catch errors. Finally Chromium takes a screenshot
(``--screenshot``) into the test's folder, and prints the report to PDF, which is read
back page by page (pdftotext): every printed page carries the quarter and the as-of date.

Chromium and pdftotext come from Debian's packages: tests/e2e/ensure_chromium.sh installs
them when missing (the fixture runs it).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from integration.test_report import Q1_2025, SECTIONS, build_published_warehouse
from scratch_databases import scratch_database
from websockets.sync.client import connect

from winback.report import render_report, write_pdf

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ENSURE = Path(__file__).with_name("ensure_chromium.sh")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def chromium() -> str:
    if not (Path(CHROMIUM).exists() and shutil.which("pdftotext")):
        done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"{ENSURE} failed:\n{done.stdout}\n{done.stderr}"
    return CHROMIUM


@pytest.fixture(scope="module")
def report(pg_admin_dsn, tmp_path_factory) -> Path:
    with scratch_database(pg_admin_dsn, "wb_browser") as (_, dsn):
        with pytest.MonkeyPatch.context() as patch:
            build_published_warehouse(dsn, tmp_path_factory.mktemp("browser_home"),
                                      tmp_path_factory.mktemp("browser_target"), patch)
        yield render_report(dsn, Q1_2025, tmp_path_factory.mktemp("browser_report"), pdf=False)


# ----------------------------------------------------------------------------- a minimal CDP client
class DevTools:
    """Chromium with ``--remote-debugging-port=0`` and one websocket to its browser target."""

    def __init__(self, executable: str, profile: Path):
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint: queue.Queue[str] = queue.Queue()

        def read_stderr() -> None:   # Chromium prints the endpoint; keep draining so it never blocks
            for line in self.process.stderr:
                if line.startswith("DevTools listening on "):
                    endpoint.put(line.split(" on ", 1)[1].strip())

        threading.Thread(target=read_stderr, daemon=True).start()
        try:
            url = endpoint.get(timeout=TIMEOUT)
        except queue.Empty:
            self.close()
            raise AssertionError("Chromium did not open its DevTools endpoint") from None
        self.ws = connect(url, max_size=None, open_timeout=TIMEOUT)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, session: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for message in self.events:
                if message.get("method") == event and message.get("sessionId") == session:
                    return message
            self.events.append(json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))))
            except TimeoutError:
                return

    def open(self, url: str) -> str:
        """A new tab with console, log and page events on; returns its session once loaded."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        self.drain(0.5)              # late console output / log entries
        return session

    def evaluate(self, expression: str, session: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=session)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def problems(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (failed loads, CSP) of a tab."""
        found = []
        for message in self.events:
            if message.get("sessionId") != session:
                continue
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + params["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log ({params['entry']['source']}): {params['entry']['text']}")
        return found

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


@pytest.fixture
def devtools(chromium, tmp_path):
    browser = DevTools(chromium, tmp_path / "profile")
    yield browser
    browser.close()


# ----------------------------------------------------------------------------- tests
def test_the_listener_catches_console_errors_and_failed_loads(devtools, tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                       '<script>console.error("deliberate error")</script></body></html>')
    session = devtools.open(control.as_uri())
    problems = devtools.problems(session)
    assert any("deliberate error" in p for p in problems), problems
    assert any("missing.png" in p or "ERR_FILE_NOT_FOUND" in p for p in problems), problems


def test_report_loads_without_console_errors_and_draws_its_charts(devtools, report):
    session = devtools.open(report.as_uri())
    assert devtools.problems(session) == []

    assert devtools.evaluate("document.documentElement.dataset.quarter + ' ' + document.documentElement.dataset.asOf",
                             session) == "2025-01-01 2025-04-04"
    assert devtools.evaluate("performance.getEntriesByType('resource').length", session) == 0   # fetched nothing
    charts = devtools.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => { const r = s.getBoundingClientRect();"
        " return [s.dataset.chart, Math.round(r.width), Math.round(r.height)]; })", session)
    assert [c[0] for c in charts] == ["trend-counts", "trend-rates", "cohort-curves", "heatmap-abc-xyz",
                                      "heatmap-abc"]
    assert all(width >= 200 and height >= 100 for _, width, height in charts), charts
    # Marks really drawn: bars with height, points and heatmap cells with an area.
    marks = devtools.evaluate(
        "({bars: [...document.querySelectorAll('rect.bar')].filter(e => e.getBBox().height > 0).length,"
        "  points: [...document.querySelectorAll('circle.point')].filter(e => e.getBBox().width > 0).length,"
        "  cells: [...document.querySelectorAll('rect.cell')].filter(e => e.getBBox().width > 0).length})", session)
    # 3 quarters with lost clients (Q1 2024, Q3 2024, Q1 2025), 2 with returns (Q2 2024, Q1 2025)
    # -> 5 bars of height > 0; 9 cohort points; 10 x 10 + 4 x 4 heatmap cells.
    assert marks["bars"] == 5 and marks["points"] >= 9 and marks["cells"] == 116, marks
    headers = devtools.evaluate(
        "[...document.querySelectorAll('section.page')].map(s => [s.dataset.section,"
        " s.querySelector('header .page-quarter').textContent, s.querySelector('header .page-as-of').textContent,"
        " s.querySelector('header').getBoundingClientRect().height > 0])", session)
    assert headers == [[section, "Q1 2025", "as of 2025-04-04", True] for section in SECTIONS]
    # What worked: the campaign of the report tests' data, laid out with its rows and the
    # uplift per offer type, each row with a real height.
    campaigns = devtools.evaluate(
        "(() => { const s = document.querySelector('section[data-section=campaigns]');"
        " const tall = sel => [...s.querySelectorAll(sel)].filter(e => e.getBoundingClientRect().height > 0);"
        " return {campaigns: tall('tr.campaign').map(e => e.dataset.campaignId),"
        "  offers: tall('tr.uplift-offer').map(e => e.dataset.offerType).sort(),"
        "  targeted: s.querySelector('[data-field=campaign-targeted]').textContent}; })()", session)
    assert campaigns["campaigns"] == ["WB-2024-09"] and campaigns["targeted"] == "4", campaigns
    assert campaigns["offers"], campaigns

    devtools.call("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
    breaks = devtools.evaluate("[...document.querySelectorAll('section.page')].map(s => getComputedStyle(s).breakBefore)",
                               session)
    assert breaks == ["auto"] + ["page"] * (len(SECTIONS) - 1)
    assert devtools.problems(session) == []


def test_screenshot_and_printed_pdf(chromium, report, tmp_path):
    screenshot = tmp_path / "report-q1-2025.png"
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2600",
                           f"--screenshot={screenshot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 50_000
    print(f"\nscreenshot: {screenshot}")

    pdf = write_pdf(report, tmp_path / "report-q1-2025.pdf", engine="chromium")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF-")
    print(f"pdf: {pdf}")
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout.split("\f")
    pages = [page for page in pages if page.strip()]
    assert len(pages) == len(SECTIONS)         # one printed page per section
    for number, page in enumerate(pages, start=1):
        assert "Win-back quarterly report · Q1 2025 · as of 2025-04-04 · published v1" in page, number
        assert f"page {number} of {len(SECTIONS)}" in page, number
    what_worked = pages[SECTIONS.index("campaigns")]
    assert "What worked" in what_worked and "Autumn win-back" in what_worked
