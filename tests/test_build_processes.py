"""A real `opte build` beside the other commands: dbt dies with it, landing and publishing wait
for it, an analyst reading the warehouse does not stand in its way, and its build record names
the extracts it read (slow: each runs dbt). The crash test is test_crash_build.py."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from home_processes import alive, dbt_child, kill_quietly, start_opte, wait_for  # noqa: E402
from lake_builder import write_minimal_lake  # noqa: E402

from measures.config import SAMPLE_INBOX  # noqa: E402

pytestmark = pytest.mark.slow


def lock_holders(path: Path) -> list[int]:
    from measures.locks import holders

    return [h.pid for h in holders(path)]


@pytest.mark.parametrize("victim", ["parent alone", "process group"])
def test_dbt_dies_with_a_killed_build(tmp_path, victim):
    home = tmp_path / "home"
    write_minimal_lake(home / "lake")
    build = start_opte(home, "build")
    dbt = None
    try:
        dbt = dbt_child(build.pid)
        wait_for(lambda: dbt in lock_holders(home / ".build" / "work.duckdb"), 60, "dbt to open its database")
        if victim == "parent alone":
            os.kill(build.pid, signal.SIGKILL)
        else:
            os.killpg(build.pid, signal.SIGKILL)
        build.wait(timeout=10)
        wait_for(lambda: not alive(dbt), 10, f"dbt (pid {dbt}) to die with its build")
    finally:
        kill_quietly(build.pid)
        if dbt is not None:
            kill_quietly(dbt)
        build.communicate()
    assert lock_holders(home / ".build" / "work.duckdb") == [] and lock_holders(home / ".warehouse.lock") == []
    duckdb.connect(str(home / ".build" / "work.duckdb")).close()  # free for the next build: no orphan holds it


def _manifest_extracts(home: Path) -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((home / "lake" / "_manifests").glob("*/*.json")):
        m = json.loads(path.read_text())
        out.append((m["dataset"], m["extract_date"], m["sha256"]))
    return out


def build_id_seen(con) -> str:
    return con.execute("select build_id from opte.build_record").fetchone()[0]


def test_a_build_reads_a_fixed_lake_while_landing_and_publishing_wait(sample_built_home, tmp_path):
    """Landing and publishing wait for the build; an analyst's connection to the warehouse, open
    all along, neither blocks it nor sees it: it reads the previous build, whole, to the end."""
    from measures.build import build_needed

    home = tmp_path / "home"
    shutil.copytree(sample_built_home, home, ignore=shutil.ignore_patterns(".*.lock"))
    analyst = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    old_id = json.loads((home / "build_info.json").read_text()).get("build_id")
    old_rows = analyst.execute("select count(*) from marts.offflow_events").fetchone()[0]
    extra = tmp_path / "extra" / "tax_employments"
    extra.mkdir(parents=True)
    last = sorted((SAMPLE_INBOX / "tax_employments").iterdir())[-1]
    shutil.copy(last, extra / last.name.replace("20110331", "20110430"))  # a new, later extract
    before = _manifest_extracts(home)
    month = "2011-01"

    build = start_opte(home, "build")
    others = []
    try:
        dbt_child(build.pid)
        land = start_opte(home, "land", "--inbox", str(extra.parent))
        publish = start_opte(home, "publish", "--month", month)
        others = [land, publish]
        _, build_err = build.communicate(timeout=600)
        assert build.returncode == 0, build_err
        land_out, land_err = land.communicate(timeout=300)
        _, publish_err = publish.communicate(timeout=300)
    finally:
        for proc in [build, *others]:
            kill_quietly(proc.pid)
    # the analyst's connection still reads the build it opened, every mart of it
    assert build_id_seen(analyst) == old_id
    assert analyst.execute("select count(*) from marts.offflow_events").fetchone()[0] == old_rows
    analyst.close()
    fresh = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        assert build_id_seen(fresh) != old_id  # a new connection reads the new build
    finally:
        fresh.close()
    assert land.returncode == 0, land_err
    assert publish.returncode == 0, publish_err
    for err in (land_err, publish_err):
        waits = [ln for ln in err.splitlines() if "waits for" in ln]
        assert len(waits) == 1 and f"pid {build.pid} (" in waits[0], err

    info = json.loads((home / "build_info.json").read_text())
    recorded = [(e["dataset"], e["extract_date"], e["sha256"]) for e in info["input_extracts"]]
    assert recorded == before  # exactly the manifests as they stood when the build started
    after = _manifest_extracts(home)
    assert set(after) - set(before) == {(a, d, s) for a, d, s in after if d == "2011-04-30"} != set()
    assert build_needed(home)  # the landing that waited makes the next build necessary
    published = json.loads((home / "publish" / month / "manifest.json").read_text())
    assert published["build"]["built_at"] == info["built_at"] and published["build"]["build_id"] == info["build_id"]
    assert published["input_extracts"] == info["input_extracts"]  # what the warehouse holds, not the lake now


def test_source_freshness_uses_the_landing_time_of_the_manifests(sample_built_home, tmp_path):
    from measures.build import run_dbt

    home = tmp_path / "home"
    shutil.copytree(sample_built_home, home, ignore=shutil.ignore_patterns(".*.lock"))
    run_dbt(home, ["source", "freshness"])
    results = json.loads((home / "dbt" / "target" / "sources.json").read_text())["results"]
    by_source = {r["unique_id"].rsplit(".", 1)[1]: r for r in results}
    from datetime import datetime

    for dataset in ("benefit_claims", "customers", "tax_employments", "programme_starts", "offices",
                    "disadvantaged_areas", "opte_targets"):
        landed = max(datetime.fromisoformat(json.loads(p.read_text())["landed_at"])
                     for p in (home / "lake" / "_manifests" / dataset).glob("*.json"))
        result = by_source[dataset]
        assert result["status"] == "pass", result
        assert abs((datetime.fromisoformat(result["max_loaded_at"]) - landed).total_seconds()) < 1e-3, dataset
