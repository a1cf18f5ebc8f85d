"""Shared fixtures: the bundled sample landed and built once per test session."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from measures.config import SAMPLE_INBOX

# Tests never see a production key; landing warns and uses its development key.
os.environ.pop("OPTE_PSEUDO_KEY", None)


def _land_and_build_sample(home: Path) -> None:
    from ingest.landing import land_inbox
    from measures.build import build

    report = land_inbox(SAMPLE_INBOX, home)
    assert not report.rejected_files, report.summary()
    build(home)


@pytest.fixture(scope="session")
def sample_built_home(tmp_path_factory) -> Path:
    """A home folder with the sample inbox landed and the warehouse built (read-only for tests:
    copy it with `copy_home` before changing anything).

    Built once per run: under pytest-xdist (scripts/test.sh runs two workers) the first worker that
    needs it builds it in the run's shared temporary folder, holding a file lock, and every other
    worker waits for that build and reads the same home."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        home = tmp_path_factory.mktemp("sample_home")
        _land_and_build_sample(home)
        return home
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    home, done = shared / "sample_home_shared", shared / "sample_home_shared.built"
    with FileLock(str(shared / "sample_home_shared.lock")):
        if not done.exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            _land_and_build_sample(home)
            done.write_text(worker)
    return home


@pytest.fixture(scope="session")
def spark_built_home(tmp_path_factory) -> Path:
    """The sample landed and built on Spark (dbt target spark, method session), once per test
    session (tests/test_spark.py; read-only for tests, like sample_built_home)."""
    from ingest.landing import land_inbox
    from measures.build import build

    home = tmp_path_factory.mktemp("spark_home")
    report = land_inbox(SAMPLE_INBOX, home)
    assert not report.rejected_files, report.summary()
    build(home, engine="spark")
    return home


@pytest.fixture
def copy_home(tmp_path):
    """Copy a built home so a test can change it without touching the shared one (its warehouse
    then reads the copy's own snapshot)."""
    from measures.release import repoint

    def _copy(home: Path) -> Path:
        target = tmp_path / "home"
        shutil.copytree(home, target, ignore=shutil.ignore_patterns(".*.lock"))
        repoint(target)
        return target
    return _copy
