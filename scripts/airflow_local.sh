#!/usr/bin/env bash
# The local Airflow deployment of the monthly DAG, one command:
#   bash scripts/airflow_local.sh start|stop|status|env|airflow ARGS...
# PostgreSQL (Debian's package, installed when missing and run as root) in its own cluster under
# .airflow_local/ (or $OPTE_AIRFLOW_DIR), Airflow with LocalExecutor: scheduler, DAG processor,
# triggerer and API server, supervised. See scripts/airflow_local.py and README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/airflow_local.py "$@"
