#!/usr/bin/env bash
# The whole test suite, on a fresh machine: set up .venv, make sure headless Chromium is
# there for the report.html check (Debian's package, when we may install it), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's chromium for the report.html browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: could not install chromium; the browser test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
