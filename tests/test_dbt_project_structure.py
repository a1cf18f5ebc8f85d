"""The dbt project's structure, checked from dbt's own manifest.

dbt-labs' dbt_project_evaluator package cannot be installed here (dbt packages come from
a hub this machine cannot reach, and it is not on PyPI), so these tests enforce the same
rules it would on our project: naming by layer, sources only in staging, documentation
and primary-key test coverage, no hard-coded relation names, exposures on marts.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from measures.build import dbt_env, dbt_executable
from measures.config import DBT_PROJECT_DIR


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    home = tmp_path_factory.mktemp("parse_home")
    target = home / "target"
    proc = subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--target-path", str(target), "--log-path", str(home / "logs")],
        env=dbt_env(home), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return json.loads((target / "manifest.json").read_text())


def _models(manifest):
    return {uid: n for uid, n in manifest["nodes"].items()
            if n["resource_type"] == "model" and n["package_name"] == "opte"}


def _layer(node):
    return node["original_file_path"].split("/")[1]  # models/<layer>/...


def test_models_are_named_by_layer(manifest):
    prefixes = {"staging": "stg_", "intermediate": "int_"}
    for node in _models(manifest).values():
        layer, name = _layer(node), node["name"]
        if layer == "staging":
            assert re.fullmatch(r"stg_[a-z0-9]+__[a-z0-9_]+", name), f"{name}: stg_<source>__<entity>"
        elif layer == "intermediate":
            assert name.startswith(prefixes["intermediate"]), f"{name}: intermediate models start int_"
        else:
            assert layer == "marts", f"{name}: models live in staging/, intermediate/ or marts/"
            assert not name.startswith(("stg_", "int_")), f"{name}: marts have plain names"


def test_sources_are_read_only_in_staging(manifest):
    for node in _models(manifest).values():
        sources = [d for d in node["depends_on"]["nodes"] if d.startswith("source.")]
        if sources:
            assert _layer(node) == "staging", f"{node['name']} reads a source outside staging"


def test_staging_does_not_depend_on_downstream_layers(manifest):
    models = _models(manifest)
    for node in models.values():
        if _layer(node) != "staging":
            continue
        for dep in node["depends_on"]["nodes"]:
            if dep in models:
                assert _layer(models[dep]) == "staging", f"{node['name']} depends on {dep}"


def test_intermediate_does_not_depend_on_marts(manifest):
    models = _models(manifest)
    for node in models.values():
        if _layer(node) == "intermediate":
            for dep in node["depends_on"]["nodes"]:
                if dep in models:
                    assert _layer(models[dep]) != "marts", f"{node['name']} depends on mart {dep}"


def test_every_model_and_column_is_documented(manifest):
    undocumented = []
    for node in _models(manifest).values():
        if not node["description"].strip():
            undocumented.append(node["name"])
        if not node["columns"]:
            undocumented.append(f"{node['name']} (no columns documented)")
        undocumented += [f"{node['name']}.{c}" for c, col in node["columns"].items()
                         if not col["description"].strip()]
    assert not undocumented, f"undocumented: {undocumented}"


def test_every_model_states_its_grain(manifest):
    for node in _models(manifest).values():
        assert re.search(r"\bone row\b|\bone row per\b", node["description"], re.I), \
            f"{node['name']}: the description must state the grain ('One row per ...')"


def test_every_model_has_a_primary_key_test(manifest):
    tested = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test":
            continue
        meta = node.get("test_metadata") or {}
        if meta.get("name") in ("unique", "unique_combination"):
            for dep in node["depends_on"]["nodes"]:
                tested.setdefault(dep, set()).add(meta["name"])
    missing = [n["name"] for uid, n in _models(manifest).items() if uid not in tested]
    assert not missing, f"models without a unique / unique_combination test: {missing}"


def test_no_hard_coded_relation_names(manifest):
    pattern = re.compile(r"\b(from|join)\s+\"?(main|staging|intermediate|marts|reference)\"?\.", re.I)
    offenders = [n["name"] for n in _models(manifest).values() if pattern.search(n["raw_code"])]
    assert not offenders, f"use ref()/source(), not schema-qualified names: {offenders}"


def test_policy_tables_are_seeds(manifest):
    seeds = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "seed"}
    assert {"benefits", "programmes", "priority_groups", "end_reasons", "kmi_targets"} <= seeds


def test_exposures_cover_the_published_marts(manifest):
    exposures = manifest["exposures"].values()
    assert exposures, "declare the published files as exposures"
    exposed = {d.split(".")[-1] for e in exposures for d in e["depends_on"]["nodes"]}
    assert {"opte_monthly", "cohort_offflow_rates", "opte_jot_conversion", "measure_agreement",
            "opte_sustainability", "office_monitors"} <= exposed
    for e in exposures:
        assert e["owner"].get("name") or e["owner"].get("email"), f"exposure {e['name']} needs an owner"


def test_every_mart_has_an_enforced_contract(manifest):
    """The output contract (MEASURES.md sections 10 and 16) is pinned by dbt model contracts: a
    renamed, dropped or retyped mart column fails the build, so every mart enforces its contract
    and declares a data_type for every column."""
    marts = [n for n in _models(manifest).values() if _layer(n) == "marts"]
    assert {"offflow_events", "opte_monthly", "cohort_offflow_rates", "opte_jot_conversion", "data_quality",
            "measure_agreement", "opte_sustainability", "office_monitors"} <= {n["name"] for n in marts}
    for node in marts:
        assert node["config"]["contract"]["enforced"], f"{node['name']}: contract not enforced"
        untyped = [c for c, col in node["columns"].items() if not col.get("data_type")]
        assert not untyped, f"{node['name']}: columns without a data_type: {untyped}"



# SQL one engine understands and another does not (docs/ARCHITECTURE.md, "Spark"): models and
# tests say it through the project's adapter.dispatch macros instead (lake_scan, type_double,
# date_from_parts, last_value_ignore_nulls, mean_of_decimals) or dbt's cross-database macros
# (dbt.type_string(), dbt.dateadd(), ...).
ENGINE_SPECIFIC = re.compile(
    r"read_parquet|read_json|read_csv|\bparquet\.`|double\s+precision|\bas\s+varchar\b|::\s*\w|"
    r"\bstrftime\b|\bdate_diff\b|\bstring_agg\b|\blist_\w+\(|\bepoch\(|\bignore\s+nulls\b", re.I)


def test_models_and_tests_hold_no_engine_specific_sql(manifest):
    nodes = [n for n in manifest["nodes"].values()
             if n["package_name"] == "opte" and n["resource_type"] in ("model", "test")]
    offenders = {n["name"]: ENGINE_SPECIFIC.findall(n["raw_code"]) for n in nodes if ENGINE_SPECIFIC.search(n["raw_code"])}
    assert not offenders, f"engine-specific SQL outside the dispatch macros: {offenders}"


def test_the_lake_is_read_through_lake_scan_on_every_engine(manifest):
    """No source relies on an adapter's own reader (dbt-duckdb's external_location): every lake
    source is read by the lake_scan macro, which each engine implements."""
    sources = [s for s in manifest["sources"].values() if s["source_name"] == "lake"]
    assert len(sources) == 9
    for s in sources:
        assert "external_location" not in s["config"] and "external_location" not in s.get("meta", {}), s["name"]
    readers = {n["name"] for n in _models(manifest).values()
               if any(d.startswith("source.opte.lake.") for d in n["depends_on"]["nodes"])}
    for name in readers:
        node = next(n for n in _models(manifest).values() if n["name"] == name)
        assert "source(" not in node["raw_code"], f"{name}: read the lake with lake_scan(), not source()"
    assert {"stg_lake__landed_extracts", "stg_lake__quarantine", "stg_lake__benefit_claims"} <= readers
    macros = {m["name"]: m for m in manifest["macros"].values() if m["package_name"] == "opte"}
    assert {"duckdb__lake_scan", "spark__lake_scan"} <= set(macros)
