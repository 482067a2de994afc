"""The report as PDF: WeasyPrint when installed, else headless Chromium, else none.

Both engines print the same HTML with its print CSS (A4 landscape, one section per page,
the quarter and as-of date in every page's footer). Neither may fetch anything: the HTML
has no URL, WeasyPrint gets a URL fetcher that refuses all, Chromium runs with a fresh
profile and background networking off. Without either engine the PDF is skipped with a
logged note (the HTML is the report; the PDF is a print of it).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from winback.report.data import ReportError

log = logging.getLogger(__name__)

ENGINES = ("weasyprint", "chromium")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Headless, no sandbox (root in containers), nothing that phones home or needs a GPU.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
)
CHROMIUM_TIMEOUT_S = 120


def chromium_executable() -> str | None:
    """Chromium from the OS packages (``WINBACK_CHROMIUM`` names another binary)."""
    explicit = os.environ.get("WINBACK_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def _refuse_urls(url: str, *args, **kwargs):
    raise ValueError(f"the report must not load anything: refused {url}")


def _weasyprint(html_path: Path, pdf_path: Path) -> bool:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: the system's Pango/HarfBuzz libraries are missing
        log.info("WeasyPrint not usable (%s)", exc)
        return False
    # WeasyPrint warns about the screen-only CSS it ignores (media features, print-color-adjust).
    weasy_log = logging.getLogger("weasyprint")
    level = weasy_log.level
    weasy_log.setLevel(logging.ERROR)
    try:
        weasyprint.HTML(filename=str(html_path), url_fetcher=_refuse_urls).write_pdf(str(pdf_path))
    finally:
        weasy_log.setLevel(level)
    return True


def chromium_pdf(html_path: Path, pdf_path: Path, executable: str | None = None) -> bool:
    executable = executable or chromium_executable()
    if executable is None:
        log.info("Chromium not found (%s)", ", ".join(CHROMIUM_CANDIDATES))
        return False
    with tempfile.TemporaryDirectory(prefix="winback-chromium-") as profile:
        command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                   f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
    if done.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = " ".join((done.stderr or "").strip().splitlines()[-3:])
        raise ReportError(f"Chromium could not print {html_path.name} (exit {done.returncode}): {tail[:300]}")
    return True


def write_pdf(html_path: Path, pdf_path: Path | None = None, engine: str = "auto") -> Path | None:
    """Print ``html_path`` to ``pdf_path`` (default: same name, ``.pdf``); return it, or
    ``None`` (with a logged note) when no engine is available.

    ``engine``: ``auto`` (WeasyPrint, then Chromium), ``weasyprint`` or ``chromium``.
    An engine that is available but fails raises :class:`ReportError` when asked for by
    name; with ``auto`` the next engine is tried.
    """
    if engine not in ("auto", *ENGINES):
        raise ReportError(f"unknown PDF engine {engine!r} (auto, weasyprint or chromium)")
    html_path = Path(html_path)
    pdf_path = Path(pdf_path) if pdf_path else html_path.with_suffix(".pdf")
    pdf_path.unlink(missing_ok=True)
    for name in ENGINES if engine == "auto" else (engine,):
        try:
            done = _weasyprint(html_path, pdf_path) if name == "weasyprint" else chromium_pdf(html_path, pdf_path)
        except Exception as exc:  # an engine failing must not lose the HTML report
            if engine != "auto":
                raise ReportError(f"{name} could not write the PDF: {str(exc).splitlines()[0] if str(exc) else exc!r}"
                                  ) from None
            log.warning("%s could not write the PDF (%s); trying the next engine", name, exc)
            continue
        if done:
            log.info("PDF written with %s: %s", name, pdf_path)
            return pdf_path
    log.warning("no PDF written for %s: no PDF engine available (install WeasyPrint, or Chromium: "
                "apt-get install chromium); the HTML report is complete without it", html_path.name)
    return None
