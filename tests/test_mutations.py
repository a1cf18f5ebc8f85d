"""The mutation catalogue of the dbt rules stays applicable (scripts/mutate.py --check).

Every mutation beside a model, macro or var must anchor on text found exactly once, so that a
rewrite of a rule that moves its text away is noticed here (fast: no dbt), not when the harness
is next run. Running the mutants themselves is scripts/mutate.py's job, outside this suite.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mutate.py"


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_anchor_of_the_catalogue_matches_once():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every anchor matches once" in done.stdout


def test_catalogue_covers_the_rules(mutate):
    """At least 60 mutants, of every kind, beside the models of sections 2-9 and 12-16."""
    mutations, problems = mutate.load_catalogue()
    assert not problems
    assert len(mutations) >= 60
    assert {m.kind for m in mutations} == mutate.KINDS
    attacked = {m.target.stem for m in mutations}
    for model in ("int_offflows_classified", "int_offflows_scored", "int_employments_matched", "int_spells",
                  "int_office_periods", "int_data_cutoff", "int_coverage_start", "opte_monthly",
                  "int_offflows_sustainability_checked", "sustainability",
                  "office_monitors", "measure_agreement", "cohort_offflow_rates", "dbt_project"):
        assert model in attacked, f"no mutation attacks {model}"
    # every equivalent survivor says why
    assert all(m.equivalent is None or len(m.equivalent) > 40 for m in mutations)


def test_check_names_an_anchor_that_no_longer_matches(tmp_path, mutate):
    project = tmp_path / "dbt_project"
    models = project / "models"
    models.mkdir(parents=True)
    (models / "int_rule.sql").write_text("select a from t where d <= cutoff and e <= cutoff\n")
    (models / "int_rule.mutations.yml").write_text(
        "mutations:\n"
        "  - {id: gone, rule: '9: x', kind: comparison, find: 'd <= limit', replace: 'd < limit'}\n"
        "  - {id: twice, rule: '9: x', kind: comparison, find: '<= cutoff', replace: '< cutoff'}\n"
        "  - {id: fine, rule: '9: x', kind: comparison, find: 'd <= cutoff', replace: 'd < cutoff'}\n"
        "  - {id: fine, rule: '9: x', kind: sideways, find: 'e <= cutoff', replace: 'e < cutoff'}\n")
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        assert mutate.check(project, out=fh) == 1
    text = out.read_text()
    assert "mutation gone: anchor no longer matches in int_rule.sql: 'd <= limit'" in text
    assert "mutation twice: anchor matches 2 times (must be once)" in text
    assert "kind 'sideways'" in text
    assert "mutation fine:" not in text
    # the one sound mutation applies as one edit; an unsound one refuses
    mutations, _ = mutate.load_catalogue(project)
    fine = next(m for m in mutations if m.id == "fine")
    assert fine.apply((models / "int_rule.sql").read_text()) == "select a from t where d < cutoff and e <= cutoff\n"
    twice = next(m for m in mutations if m.id == "twice")
    with pytest.raises(mutate.CatalogueError, match="matches 2 times"):
        twice.apply((models / "int_rule.sql").read_text())


def test_dbt_ignores_the_catalogue():
    ignore = (REPO / "dbt_project" / ".dbtignore").read_text().split()
    assert "*.mutations.yml" in ignore
