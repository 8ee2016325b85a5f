#!/usr/bin/env bash
# Make sure the browser tests (tests/browser/) have what they drive:
# - Debian's Chromium and ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), installed with
#   apt-get when we are root and they are missing;
# - axe-core (npm) under .cache/axe, for the accessibility checks.
# Nothing is downloaded by Selenium itself. Without root or apt the browser tests skip with a
# visible reason, except under CI=true, where this script and the tests fail.
set -uo pipefail

cd "$(dirname "$0")/.."
status=0

have_browser() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have_browser; then
    echo "ensure-browser: Chromium and ChromeDriver are installed"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "ensure-browser: installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    if have_browser; then
        echo "ensure-browser: $(/usr/bin/chromium --version 2>/dev/null)"
    else
        echo "ensure-browser: WARNING: installing chromium failed" >&2
        status=1
    fi
else
    echo "ensure-browser: WARNING: no Chromium and not root; the browser tests will be skipped" >&2
    status=1
fi

AXE=.cache/axe/node_modules/axe-core/axe.min.js
if [ -f "$AXE" ]; then
    echo "ensure-browser: axe-core is installed"
elif command -v npm >/dev/null; then
    echo "ensure-browser: installing axe-core@4 into .cache/axe"
    mkdir -p .cache/axe
    if ! npm install --silent --no-audit --no-fund --prefix .cache/axe axe-core@4 >/dev/null; then
        echo "ensure-browser: WARNING: npm install axe-core failed" >&2
        status=1
    fi
else
    echo "ensure-browser: WARNING: no npm; the accessibility checks will be skipped" >&2
    status=1
fi

if [ "$status" != 0 ] && [ "${CI:-}" = "true" ]; then
    echo "ensure-browser: CI=true requires Chromium, ChromeDriver and axe-core" >&2
    exit 1
fi
exit 0
