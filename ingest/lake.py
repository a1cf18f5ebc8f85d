"""The lake's layout and its commit records (docs/ARCHITECTURE.md, "Home folder" and "Manifest").

A manifest `lake/_manifests/<dataset>/<YYYY-MM-DD>.json`, written last and atomically,
is the only commit point: readers take only the files manifests name. Anything else
under a dataset's folders is an orphan of an interrupted landing and is removed by
the next landing (`remove_orphans`). `lake/_pseudonym_key.json` records the fingerprint
of the key the lake's person keys were made with (ingest.landing.check_pseudonym_key).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from datetime import date
from pathlib import Path

MANIFESTS = "_manifests"
QUARANTINE = "_quarantine"
REJECTED = "_rejected"
TMP_SUFFIX = ".tmp"
SCRATCH = ".landing_tmp"  # under the home folder
KEY_RECORD = "_pseudonym_key.json"  # the fingerprint of the key the lake's person keys were made with


def partition(extract_date: date) -> str:
    return f"extract_date={extract_date.isoformat()}"


def data_path(lake: Path, dataset: str, extract_date: date, stem: str, tag: str) -> Path:
    """`tag`: the leading hex digits of the source file's SHA-256 (8, see ingest.landing)."""
    return lake / dataset / partition(extract_date) / f"{stem}.{tag}.parquet"


def quarantine_path(lake: Path, dataset: str, extract_date: date, stem: str, tag: str) -> Path:
    return lake / QUARANTINE / dataset / partition(extract_date) / f"{stem}.{tag}.parquet"


def manifest_path(lake: Path, dataset: str, extract_date: date) -> Path:
    return lake / MANIFESTS / dataset / f"{extract_date.isoformat()}.json"


def rejected_path(lake: Path, file_name: str) -> Path:
    return lake / REJECTED / f"{file_name}.json"


def read_manifest(lake: Path, dataset: str, extract_date: date) -> dict | None:
    path = manifest_path(lake, dataset, extract_date)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def current_files(lake: Path, dataset: str) -> list[dict]:
    """The committed manifests of a dataset, oldest extract date first.

    Each names its `data_file` and `quarantine_file` (relative to `lake`); these are
    the only files of the dataset a reader may use.
    """
    folder = Path(lake) / MANIFESTS / dataset
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON to a temp file beside `path`, fsync, then os.replace: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def commit_manifest(lake: Path, manifest: dict) -> None:
    """The single commit point of a landing."""
    write_json_atomic(manifest_path(lake, manifest["dataset"], date.fromisoformat(manifest["extract_date"])),
                      manifest)


def publish_file(tmp: Path, final: Path) -> None:
    """Move a fully written file to its final name (still invisible until a manifest names it)."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def named_files(lake: Path, datasets) -> set[Path]:
    named = set()
    for dataset in datasets:
        for m in current_files(lake, dataset):
            named.add((lake / m["data_file"]).resolve())
            named.add((lake / m["quarantine_file"]).resolve())
    return named


def remove_orphans(lake: Path, datasets) -> list[Path]:
    """Delete files under the datasets' data and quarantine folders that no manifest names,
    and temp files left by an interrupted write. Returns what was removed."""
    named = named_files(lake, datasets)
    removed = []
    roots = [lake / d for d in datasets] + [lake / QUARANTINE / d for d in datasets]
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.resolve() not in named:
                path.unlink()
                removed.append(path)
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
    for folder in (lake / MANIFESTS, lake / REJECTED):
        if folder.is_dir():
            for path in folder.rglob("*" + TMP_SUFFIX):
                path.unlink()
                removed.append(path)
    tmp = lake / (KEY_RECORD + TMP_SUFFIX)
    if tmp.exists():
        tmp.unlink()
        removed.append(tmp)
    return removed


def read_key_record(lake: Path) -> dict | None:
    """`lake/_pseudonym_key.json`: the fingerprint of the lake's pseudonymisation key (never the key)."""
    path = Path(lake) / KEY_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def write_key_record(lake: Path, record: dict) -> None:
    write_json_atomic(Path(lake) / KEY_RECORD, record)


def landed_key_fingerprints(lake: Path) -> dict[str | None, list[str]]:
    """Key fingerprint recorded by each committed manifest (None: landed before fingerprints were
    recorded) -> the extracts ("dataset YYYY-MM-DD") landed with it."""
    out: dict[str | None, list[str]] = {}
    for path in sorted((Path(lake) / MANIFESTS).glob("*/*.json")):
        m = json.loads(path.read_text(encoding="utf-8"))
        out.setdefault(m.get("key_fingerprint"), []).append(f"{m['dataset']} {m['extract_date']}")
    return out


def scratch_dir(home: Path) -> Path:
    """Per-landing scratch space (staging Parquet, DuckDB spill); emptied at each landing."""
    path = home / SCRATCH
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
