"""Every dbt unit test of the project, run once per test session.

Production builds (`opte build`, the DAG) leave unit tests out (`--exclude-resource-type
unit_test`: dbt's advice is to run them in development and CI, not on production data); this
module is where the suite runs each of them, on a copy of the built sample (unit tests read only
their fixtures, but dbt needs the parents of each tested model to exist for their column types).
"""
from __future__ import annotations

import json

from measures.build import run_dbt


def test_every_unit_test_passes(sample_built_home, copy_home):
    home = copy_home(sample_built_home)
    run_dbt(home, ["test", "--resource-type", "unit_test"])  # raises naming the failed unit tests
    results = json.loads((home / "dbt" / "target" / "run_results.json").read_text())["results"]
    manifest = json.loads((home / "dbt" / "target" / "manifest.json").read_text())
    declared = {uid for uid in manifest["unit_tests"]}
    ran = {r["unique_id"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert declared and ran == declared, sorted(declared ^ ran)
    assert all(r["status"] == "pass" for r in results), [r["unique_id"] for r in results if r["status"] != "pass"]


def test_production_builds_leave_unit_tests_out(sample_built_home):
    results = json.loads((sample_built_home / "dbt" / "target" / "run_results.json").read_text())["results"]
    kinds = {r["unique_id"].split(".")[0] for r in results}
    assert "model" in kinds and "test" in kinds and "unit_test" not in kinds, kinds
