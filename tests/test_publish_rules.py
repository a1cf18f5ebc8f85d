"""Publication reads the rules' results from the warehouse, never works them out again (MEASURES.md
section 5): the cohorts' due dates are dbt's, so a project whose var `count_date_occurrence` is 3
publishes third-Thursday due dates, where the default project publishes second Thursdays.

Real chain: the sample inbox landed, the warehouse built by dbt from a copy of the project with the
var changed (as an analyst would change it in dbt_project.yml), the month published.
"""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from measures import build as build_mod
from measures import refresh
from measures.config import DBT_PROJECT_DIR, SAMPLE_INBOX
from measures.publish import publish_month
from measures.release import repoint

MONTH = "2011-03"  # the sample's month (data cut-off 2011-03-31)
LEVELS = ("office", "district", "region", "national")
THURSDAY = 3  # date.weekday()


@pytest.fixture(scope="module")
def third_thursday_publication(tmp_path_factory) -> Path:
    """The sample built from a copy of the dbt project whose count date is the 3rd Thursday, published."""
    from ingest.landing import land_inbox

    root = tmp_path_factory.mktemp("third_thursday")
    project = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    config = project / "dbt_project.yml"
    text = config.read_text()
    assert text.count("count_date_occurrence: 2\n") == 1
    config.write_text(text.replace("count_date_occurrence: 2\n", "count_date_occurrence: 3\n"))
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:  # the build and its fingerprint read this project
        mp.setattr(build_mod, "DBT_PROJECT_DIR", project)
        mp.setattr(refresh, "DBT_PROJECT_DIR", project)
        report = land_inbox(SAMPLE_INBOX, home)
        assert not report.rejected_files, report.summary()
        build_mod.build(home)
        return publish_month(home, MONTH)


@pytest.fixture(scope="module")
def default_publication(sample_built_home, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("second_thursday") / "home"
    shutil.copytree(sample_built_home, home, ignore=shutil.ignore_patterns(".*.lock"))
    repoint(home)
    return publish_month(home, MONTH)


def published_count_dates(folder: Path) -> pd.DataFrame:
    """Every published cohort week with the count date its due date implies (due date - 7 x week)."""
    frames = [pd.read_csv(folder / f"cohort_rates_{level}.csv", parse_dates=["cohort_month", "due_date"])
              for level in LEVELS]
    rows = pd.concat(frames, ignore_index=True)
    assert len(rows) and rows["due_date"].notna().all()
    rows["count_date"] = rows["due_date"] - pd.to_timedelta(7 * rows["week"], unit="D")
    return rows


def check_count_dates(rows: pd.DataFrame, occurrence: int) -> None:
    """The count date of every row is the occurrence-th Thursday of its cohort month."""
    assert (rows["count_date"].dt.day_of_week == THURSDAY).all()
    assert (rows["count_date"].dt.to_period("M") == rows["cohort_month"].dt.to_period("M")).all()
    first, last = 7 * (occurrence - 1) + 1, 7 * occurrence
    assert rows["count_date"].dt.day.between(first, last).all(), rows["count_date"].dt.day.unique()
    # a week is published as due when it fell due by the end of the report month (= the cut-off here)
    assert (rows["is_due"] == (rows["due_date"] <= pd.Timestamp(f"{MONTH}-31"))).all()
    assert (rows["is_due"] == rows["offflow_rate"].notna()).all()


def notes_text(folder: Path) -> str:
    workbook = next((folder / "districts").glob("*.xlsx"))
    sheets = load_workbook(workbook, read_only=True)
    return "\n".join(str(c) for ws in sheets.worksheets for row in ws.iter_rows(values_only=True)
                     for c in row if c is not None)


def test_default_project_publishes_second_thursday_due_dates(default_publication):
    rows = published_count_dates(default_publication)
    check_count_dates(rows, occurrence=2)
    assert "(second Thursdays)" in notes_text(default_publication)


def test_published_due_dates_follow_count_date_occurrence(third_thursday_publication, default_publication):
    rows = published_count_dates(third_thursday_publication)
    check_count_dates(rows, occurrence=3)
    assert "(third Thursdays)" in notes_text(third_thursday_publication)
    # the same cohort week falls due exactly one week later than in the default build
    keys = ["level", "unit_code", "benefit_code", "cohort_month", "week"]
    default = published_count_dates(default_publication).set_index(keys)["due_date"]
    both = rows.set_index(keys)["due_date"].to_frame("third").join(default.rename("second"), how="inner")
    assert len(both) and ((both["third"] - both["second"]) == timedelta(days=7)).all()
