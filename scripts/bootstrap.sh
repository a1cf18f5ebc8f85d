#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install the project with its pinned
# dependencies (constraints.txt pins every transitive package). Safe to run again: it only
# reinstalls when pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.opte-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the project and its pinned dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade "pip>=24"
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,spark]"
  echo "$want" > "$stamp"
fi
