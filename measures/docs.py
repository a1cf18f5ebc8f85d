"""`opte docs`: the dbt documentation as one self-contained page (PUBLICATION.md, "Documentation
for analysts").

`dbt docs generate --static` (dbt-core 1.11) writes `static_index.html`: the docs site with the
project's manifest (every model, column description, test and the lineage graph) and the
warehouse's catalog (column types, row counts) inlined, so the page opens from disk, offline,
without a server. It is copied to `<home>/docs/index.html` atomically.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from measures.build import run_dbt
from measures.config import warehouse_path
from measures.errors import OpteError
from measures.publish_tables import build_info

log = logging.getLogger("opte.docs")


def docs_path(home: Path) -> Path:
    return Path(home) / "docs" / "index.html"


def write_docs(home: Path) -> Path:
    """Generate the dbt docs of `<home>`'s warehouse as `<home>/docs/index.html`; returns the page."""
    home = Path(home)
    if not warehouse_path(home).exists():
        raise OpteError(f"no warehouse at {warehouse_path(home)}; run `opte build` first (the docs "
                        "describe the built tables)")
    cutoff = build_info(home).get("cutoff_requested")
    from datetime import date

    run_dbt(home, ["docs", "generate", "--static"], date.fromisoformat(cutoff) if cutoff else None)
    page = home / "dbt" / "target" / "static_index.html"
    if not page.exists():
        raise OpteError(f"dbt docs generate --static wrote no {page}; see {home / 'dbt' / 'logs' / 'dbt.log'}")
    target = docs_path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(page.read_bytes())
    os.replace(tmp, target)
    log.info("dbt documentation written to %s (%.1f MB)", target, target.stat().st_size / 2**20)
    return target
