#!/usr/bin/env bash
# The whole test suite, on a fresh machine: set up .venv, make sure headless Chromium (the pages'
# browser checks) and LibreOffice Calc (the workbook print check) are there (Debian's packages,
# when we may install them), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v soffice >/dev/null 2>&1 || want+=(libreoffice-calc-nogui)
  if [ "${#want[@]}" -gt 0 ]; then
    echo "test: installing Debian's ${want[*]} for the page and workbook checks"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null) \
      || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libreoffice-calc >/dev/null) \
      || echo "test: could not install ${want[*]}; the tests that need them will be skipped"
  fi
fi
exec .venv/bin/python -m pytest "$@"
