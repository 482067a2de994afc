#!/usr/bin/env bash
# Install what the browser tests (tests/e2e/test_report_browser.py) use, from Debian's
# packages, unless it is already there:
#   chromium       /usr/bin/chromium: headless browser (DOM, console, screenshots, PDF)
#   poppler-utils  /usr/bin/pdftotext: reads the printed PDF back, page by page
#   fonts-dejavu-core  the report's font, so screenshots and PDFs look the same everywhere
# Needs root (or sudo). Idempotent: with everything present it does nothing.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/pdftotext ] || missing+=(poppler-utils)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
    echo "browser test tools present: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: missing ${missing[*]} and this user cannot install them (as root: apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]}: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
