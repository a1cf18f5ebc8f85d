#!/usr/bin/env bash
# Set up, then run the monthly Airflow DAG once, on the bundled sample inbox, for report
# month 2011-03 (the sample's last month): land -> one dbt build (one Airflow task per model,
# through Cosmos) -> publish. Airflow uses SQLite in .airflow_home; nothing to start by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export OPTE_HOME="${OPTE_HOME:-$PWD/.opte_home}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=false
REPORT_MONTH="${REPORT_MONTH:-2011-03}"
# The DAG's data interval is the report month; a run dated the 1st of the next month covers it.
LOGICAL_DATE="$(.venv/bin/python -c "import sys; y, m = map(int, sys.argv[1].split('-')); print(f'{y + m // 12}-{m % 12 + 1:02d}-01')" "$REPORT_MONTH")"
echo "run_sample: Airflow metadata database in $AIRFLOW_HOME"
.venv/bin/airflow db migrate >/dev/null
echo "run_sample: running DAG opte_monthly for report month $REPORT_MONTH (logical date $LOGICAL_DATE)"
.venv/bin/airflow dags test opte_monthly "$LOGICAL_DATE" -c "{\"inbox\": \"$PWD/data_samples/inbox\"}"
echo
echo "run_sample: published files for $REPORT_MONTH are in $OPTE_HOME/publish/$REPORT_MONTH/"
ls "$OPTE_HOME/publish/$REPORT_MONTH/"
echo "run_sample: open $OPTE_HOME/publish/$REPORT_MONTH/report.html (the national page, linking to every"
echo "run_sample: district's page in $OPTE_HOME/publish/$REPORT_MONTH/districts/)"
