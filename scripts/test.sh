#!/usr/bin/env bash
# The whole test suite, on a fresh machine: set up .venv, make sure headless Chromium (the pages'
# browser checks), LibreOffice Calc (the workbook print check) and a Java runtime (the Spark
# engine's tests, tests/test_spark.py) are there (Debian's packages, when we may install them),
# run pytest. Tests whose tool could not be installed are skipped, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v soffice >/dev/null 2>&1 || want+=(libreoffice-calc-nogui)
  if [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null 2>&1; then
    want+=(openjdk-17-jre-headless)
    mkdir -p /usr/share/man/man1  # slim Debian images lack it; the JRE's post-install needs it
  fi
  if [ "${#want[@]}" -gt 0 ]; then
    echo "test: installing Debian's ${want[*]} for the page and workbook checks"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null) \
      || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libreoffice-calc >/dev/null) \
      || echo "test: could not install ${want[*]}; the tests that need them will be skipped"
  fi
fi
# Two workers (pytest-xdist), each module on one worker (its module fixtures built once), in the
# order of collection so that the long Airflow deployment test starts first: much of the suite waits
# on Airflow's scheduler and on subprocesses, and the other worker fills that time. The sample's
# built home is shared by the workers (tests/conftest.py). `-n 0` runs in one process.
exec .venv/bin/python -m pytest -n "${OPTE_TEST_WORKERS:-2}" --dist loadscope --no-loadscope-reorder "$@"
