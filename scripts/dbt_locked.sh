#!/usr/bin/env bash
# dbt, run while holding the home's warehouse lock: the dbt executable of the Airflow DAG.
#
# DuckDB allows one writing process per database file (dbt writes $OPTE_HOME/.build/work.duckdb,
# which the DAG's release task then releases as warehouse.duckdb). `opte build` holds an exclusive lock on
# $OPTE_HOME/.warehouse.lock while its dbt runs (measures/build.py); every dbt process the DAG
# starts (the watcher's one `dbt build`, and a model task's own `dbt run` when it is retried)
# comes through here and waits for the same lock, so no two of them ever open the warehouse
# at once, and, like `opte build`, it holds the lake lock shared so that `opte land` waits. Each invocation is appended to $OPTE_HOME/dbt/logs/invocations.log (time, pid,
# command), so anyone can see what ran dbt on the warehouse, and when.
set -euo pipefail
home="${OPTE_HOME:?OPTE_HOME is not set: the pipeline home whose warehouse dbt builds}"
dbt="${OPTE_DBT_EXECUTABLE:-$(dirname "$0")/../.venv/bin/dbt}"
[ -x "$dbt" ] || dbt="$(command -v dbt)" || { echo "dbt_locked: no dbt executable (set OPTE_DBT_EXECUTABLE)" >&2; exit 127; }
mkdir -p "$home/dbt/logs"
line="$(printf "%s " "$@" | tr "\n" " ")"
printf '%s pid=%s dbt %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "${line:0:1000}" >> "$home/dbt/logs/invocations.log"
# the warehouse lock, then the lake lock shared (the order `opte build` takes them): no landing
# changes the lake while this dbt reads it
exec flock "$home/.warehouse.lock" flock -s "$home/.lake.lock" "$dbt" "$@"
