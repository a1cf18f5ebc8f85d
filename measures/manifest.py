"""manifest.json of a publication: what was published, from what, by which code and parameters.

The manifest is the only published file that holds a timestamp (`published_at`), so that
publishing the same warehouse twice gives byte-identical tables, workbooks and report.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from measures.config import lake_dir


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_extracts(home: Path) -> list[dict]:
    """The landed extracts the warehouse was built from: one entry per landing manifest.

    The build record's list (`input_extracts` of the warehouse's own record, as `build_info.json`
    has it: the manifests as they stood when
    the build started, within its cut-off) when it has one; else, for a warehouse built before
    builds recorded it, `<home>/lake/_manifests/<dataset>/<date>.json` as they are now (the
    current delivery of each extract, with its source file name and SHA-256), sorted by dataset
    and extract date.
    """
    from measures.release import current_record

    recorded = current_record(Path(home)).get("input_extracts")
    if recorded is not None:
        return recorded
    out = []
    for path in sorted((lake_dir(home) / "_manifests").glob("*/*.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append({
            "dataset": m.get("dataset", path.parent.name),
            "extract_date": m.get("extract_date", path.stem),
            "source_file": m.get("source_file"),
            "sha256": m.get("sha256"),
            "rows_landed": m.get("rows_landed"),
            "rows_quarantined": m.get("rows_quarantined"),
        })
    return out


def file_entry(folder: Path, path: Path, rows) -> dict:
    return {"path": path.relative_to(folder).as_posix(), "rows": rows,
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
