"""When a build must be a full refresh (measures.refresh): each reason on its own, on a real home folder."""
from __future__ import annotations

import json

import pytest

from measures import refresh

EXTRACTS = [
    {"dataset": "benefit_claims", "extract_date": "2009-04-30", "sha256": "a1"},
    {"dataset": "benefit_claims", "extract_date": "2009-05-31", "sha256": "a2"},
    {"dataset": "customers", "extract_date": "2009-05-31", "sha256": "c1"},
    {"dataset": "offices", "extract_date": "2009-04-30", "sha256": "o1"},
    {"dataset": "disadvantaged_areas", "extract_date": "2009-04-30", "sha256": "d1"},
    {"dataset": "opte_targets", "extract_date": "2009-04-30", "sha256": "t1"},
]


def recorded(home, basis, **extra):
    (home / "build_info.json").write_text(json.dumps({"incremental_basis": basis, **extra}))


def work_state(home, **state):
    """The working database's state as measures.release.begin/release write it."""
    path = home / ".build" / "work.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(state))


@pytest.fixture
def home(tmp_path):
    recorded(tmp_path, refresh.basis(EXTRACTS, None))
    work_state(tmp_path, build_id="20090501T000000000000Z", completed=True)  # the previous build, released
    return tmp_path


def reason(home, extracts=EXTRACTS, cutoff=None, requested=False, target_exists=True):
    return refresh.full_refresh_reason(home, target_exists, refresh.basis(extracts, cutoff), requested)


def test_unchanged_basis_and_more_incremental_extracts_are_incremental(home):
    assert reason(home) is None
    later = [*EXTRACTS, {"dataset": "benefit_claims", "extract_date": "2009-06-30", "sha256": "a3"},
             {"dataset": "customers", "extract_date": "2009-06-30", "sha256": "c2"}]
    assert reason(home, later) is None
    corrected = [dict(e, sha256="a2-corrected") if e["sha256"] == "a2" else e for e in EXTRACTS]
    assert reason(home, corrected) is None  # a correction of an incremental dataset: the persons change


def test_asked_for_or_nothing_to_be_incremental_on(home, tmp_path_factory):
    assert reason(home, requested=True) == "asked for (--full-refresh)"
    assert reason(home, target_exists=False) == "no previous build"
    empty = tmp_path_factory.mktemp("no_record")
    work_state(empty, build_id="20090501T000000000000Z", completed=True)
    assert reason(empty) == "no readable record of the previous build"
    recorded(empty, None)
    assert reason(empty) == "the previous build recorded no incremental basis"


def test_a_build_that_did_not_complete(home):
    work_state(home, build_id="20090601T000000000000Z", completed=False)  # dbt started, never released
    assert reason(home) == "the previous build (20090601T000000000000Z) did not complete"
    work_state(home, build_id="20090601T000000000000Z", completed=True)
    assert reason(home) is None
    (home / ".build" / "work.json").unlink()
    assert reason(home) == "the working database has no recorded state"
    work_state(home, build_id="20090601T000000000000Z", completed=True)
    recorded(home, refresh.basis(EXTRACTS, None), completed=False)  # the record itself says so
    assert reason(home) == "the previous build did not complete"


@pytest.mark.parametrize("change, expected", [
    ("offices", "a snapshot dataset (offices, disadvantaged areas, targets) changed"),
    ("disadvantaged_areas", "a snapshot dataset (offices, disadvantaged areas, targets) changed"),
    ("opte_targets", "a snapshot dataset (offices, disadvantaged areas, targets) changed"),
    ("earlier_claims", "the earliest benefit_claims extract (the coverage start) changed"),
    ("cutoff", "the explicit cut-off differs from the previous build's"),
])
def test_changes_that_reach_every_person(home, change, expected):
    extracts, cutoff = list(EXTRACTS), None
    if change == "earlier_claims":
        extracts.append({"dataset": "benefit_claims", "extract_date": "2009-03-31", "sha256": "a0"})
    elif change == "cutoff":
        cutoff = "2009-05-31"
    else:
        extracts.append({"dataset": change, "extract_date": "2009-06-30", "sha256": "new"})
    assert reason(home, extracts, cutoff) == expected


def test_a_changed_dbt_project(home):
    before = json.loads((home / "build_info.json").read_text())["incremental_basis"]
    recorded(home, dict(before, project="another project"))
    assert reason(home) == "the dbt project (or dbt / DuckDB) changed"
