"""Releasing a build: the warehouse readers see changes from one whole build to the next, atomically.

dbt builds into a private working database, `<home>/.build/work.duckdb` (its target, with any
incremental state); nobody but a build opens it. When dbt's models and tests have passed,
`release` makes what readers see:

1. **Snapshot.** Every released relation (`RELEASED`: the marts, the reference seeds, the build's
   cut-off and coverage start) is written as Parquet under `<home>/snapshots/<build_id>/
   <schema>/<table>/`, an immutable folder. Big tables are split by month (`PARTITION_COLUMNS`).
   Each file's content hash (row count and two order-independent sums of 64-bit row hashes) is
   kept in the snapshot's `_index.json`; a file whose rows and column types are the same as in
   the previous snapshot is hard-linked from it instead of written again, so a monthly build that
   changes a few months of a national table writes only those.
2. **Catalog.** A new `warehouse.duckdb` is written beside the old one: a small DuckDB file whose
   schemas (`marts`, `reference`, `intermediate`) hold one view per relation over that
   snapshot's files, and whose table `opte.build_record` holds the build record (build id,
   manifests used, fingerprint, `completed`). It is swapped in with `os.replace`, atomic: a
   reader opens the old catalog or the new one, each naming the files of one whole build. A
   reader holding the old file keeps reading the old snapshot.
3. **Record.** `<home>/build_info.json` gets the same record (after the swap; readers that need
   the record of the warehouse they read use `current_record`, which reads it from the catalog).
4. **Prune.** Snapshots older than the previous one are removed (a reader that opened the
   warehouse before the last release keeps a whole build to read; one from two releases ago
   does not), and so are the half-written snapshots of killed releases.

A build that fails or is killed before step 2 leaves the warehouse as it was: readable and
publishable. Its working database is left **incomplete**: `begin` writes `<home>/.build/
work.json` with `completed: false` before dbt starts, and `release` sets it true. The next
`begin` that finds `completed: false` removes the working database, so that build is a full
refresh from an empty file (recorded as `full_refresh: true` with its reason in the build
record; `work_state` lets any full-refresh decision read it).

Readers never block a build: they open `warehouse.duckdb` (never the working database), and the
release writes a new file rather than opening the one they hold. The catalog names the
snapshot's files by absolute path, so a home that is moved or copied needs `repoint` (or its
next build) before its warehouse is read.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from measures import locks
from measures.config import snapshots_dir, warehouse_path, work_database_path, work_dir
from measures.errors import OpteError

log = logging.getLogger("opte.release")

# what readers see: whole schemas, and single relations of schemas that are otherwise private
RELEASED_SCHEMAS = ("marts", "reference")
RELEASED_RELATIONS = (("intermediate", "int_data_cutoff"), ("intermediate", "int_coverage_start"))
# tables of at least PARTITION_MIN_ROWS rows are split by the first of these columns they have
PARTITION_COLUMNS = ("offflow_month", "month", "cohort_month")
PARTITION_MIN_ROWS = 200_000
RECORD_SCHEMA, RECORD_TABLE = "opte", "build_record"
WORK_STATE = "work.json"
INDEX = "_index.json"
BUILD_ID = re.compile(r"^\d{8}T\d{12}Z$")


def _memory_limit() -> str:
    return os.environ.get("OPTE_DUCKDB_MEMORY_LIMIT") or "2GB"


def new_build_id() -> str:
    """A sortable, unique-enough id: the UTC time to the microsecond (one build at a time per home)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


# ---------------------------------------------------------------- the working database's state


def work_state(home: Path) -> dict:
    """The working database's state: {} before any build, else `build_id`, `started_at`,
    `completed` (false from the start of dbt until the build is released), `full_refresh` and
    `full_refresh_reason`."""
    path = work_dir(Path(home)) / WORK_STATE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _remove_database(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def begin(home: Path, full_refresh: bool | str | None = False) -> dict:
    """Mark the working database as being built (call holding the warehouse lock, before dbt).

    `full_refresh`: True, or the reason (measures.refresh) why this build must be a full refresh.
    When the last build did not complete (killed, or dbt or a test failed) a full refresh is
    decided here too. A full refresh removes the working database first: the build starts from
    an empty file (which also keeps the file compact). Returns the state written (`build_id`,
    `full_refresh`, `full_refresh_reason`).
    """
    home = Path(home)
    if not locks.held(home / locks.WAREHOUSE_LOCK, exclusive=True):
        raise RuntimeError("release.begin needs the warehouse lock held exclusively")
    work_dir(home).mkdir(parents=True, exist_ok=True)
    previous = work_state(home)
    work = work_database_path(home)
    reason = None
    if isinstance(full_refresh, str):
        reason = full_refresh
    elif full_refresh:
        reason = "asked for"
    elif work.exists() and previous.get("completed") is not True:
        reason = (f"the previous build ({previous.get('build_id') or 'unrecorded'}) did not complete"
                  if previous else "the working database has no recorded state")
    elif not work.exists():
        reason = "no working database yet"
    if reason and work.exists():
        log.warning("full refresh: %s; removing the working database %s", reason, work)
        _remove_database(work)
    state = {"build_id": new_build_id(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "completed": False, "full_refresh": reason is not None, "full_refresh_reason": reason}
    _write_json(work_dir(home) / WORK_STATE, state)
    return state


# ---------------------------------------------------------------- what readers see


def current_record(home: Path) -> dict:
    """The build record of the warehouse readers open now: read from the catalog itself, so that it
    always describes the marts beside it; `build_info.json` for a warehouse without one (built
    before releases), {} when there is no warehouse."""
    import duckdb

    home = Path(home)
    path = warehouse_path(home)
    if path.exists():
        # attached to an in-memory database of its own: never DuckDB's per-process instance of the
        # file that a connection of this process may hold with other settings
        con = duckdb.connect(config={"threads": 1, "memory_limit": "64MB"})
        try:
            try:
                con.execute(f"attach '{_literal(str(path))}' as catalog (read_only)")
            except duckdb.Error as exc:
                raise OpteError(f"the warehouse {path} cannot be opened: {' '.join(str(exc).split())}") from exc
            has = con.execute("select count(*) from information_schema.tables where table_catalog = 'catalog' "
                              "and table_schema = ? and table_name = ?", [RECORD_SCHEMA, RECORD_TABLE]).fetchone()[0]
            if has:
                return json.loads(con.execute(
                    f"select record from catalog.{RECORD_SCHEMA}.{RECORD_TABLE}").fetchone()[0])
        finally:
            con.close()
    info = home / "build_info.json"
    try:
        return json.loads(info.read_text()) if info.exists() else {}
    except json.JSONDecodeError:
        return {}


def check_complete(home: Path) -> dict:
    """The warehouse's build record, or OpteError (one line) when the warehouse is not that of a
    completed build or its snapshot is gone."""
    home = Path(home)
    record = current_record(home)
    if record.get("completed") is False:
        raise OpteError(f"the warehouse {warehouse_path(home)} is from a build that did not complete "
                        f"(build {record.get('build_id', '?')}); run `opte build` and publish after it succeeds")
    snapshot = record.get("snapshot")
    if snapshot and not (Path(snapshot) / INDEX).exists():
        raise OpteError(f"the snapshot {snapshot} that the warehouse {warehouse_path(home)} reads is gone "
                        "(the home was moved, or two newer builds were released meanwhile); "
                        "run `opte build` to release the warehouse again")
    return record


# ---------------------------------------------------------------- releasing


def _relations(con) -> list[tuple[str, str]]:
    # views too: a Spark build's working database is a catalog of views over Spark's Parquet marts
    rows = con.execute("select table_schema, table_name from information_schema.tables "
                       "where table_type in ('BASE TABLE', 'VIEW') order by 1, 2").fetchall()
    wanted = set(RELEASED_RELATIONS)
    return [(s, t) for s, t in rows if s in RELEASED_SCHEMAS or (s, t) in wanted]


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(con, schema: str, table: str) -> list[list[str]]:
    return [[c, t] for c, t in con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall()]


def _part_expr(column: str | None) -> str:
    return "'all'" if column is None else f"coalesce(cast({_q(column)} as varchar), 'null')"


def _safe(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", value)


def _hashes(con, source: str, part: str) -> dict[str, dict]:
    """Per partition: rows and an order-independent content hash (two 64-bit row-hash sums)."""
    rows = con.execute(
        f"select {part} as p, count(*), cast(sum(hash(t)) as varchar), cast(sum(hash(t, 7919)) as varchar) "
        f"from {source} as t group by p").fetchall()
    return {p: {"rows": n, "hash": f"{n}:{h1}:{h2}"} for p, n, h1, h2 in rows}


def _snapshot_table(con, schema: str, table: str, root: Path, previous: dict | None, stats: dict) -> dict:
    """Write (or link) one relation's files into `root/<schema>/<table>/`; returns its index entry,
    whose file names are relative to `root`. `previous`: the relation's entry in the previous
    snapshot's index, with `root` set to that snapshot's folder."""
    source = f"{_q(schema)}.{_q(table)}"
    rel = f"{_safe(schema)}/{_safe(table)}"
    folder = root / rel
    columns = _columns(con, schema, table)
    names = {c for c, _ in columns}
    total = con.execute(f"select count(*) from {source}").fetchone()[0]
    column = next((c for c in PARTITION_COLUMNS if c in names), None) if total >= PARTITION_MIN_ROWS else None
    part = _part_expr(column)
    started = time.monotonic()
    hashes = _hashes(con, source, part) if total else {}
    stats["hash_seconds"] += time.monotonic() - started
    folder.mkdir(parents=True)
    reusable = {}
    if previous and previous.get("columns") == columns and previous.get("partition_by") == column:
        reusable = previous.get("parts", {})
    parts: dict[str, dict] = {}
    to_write = []
    for p, h in sorted(hashes.items()):
        old = reusable.get(p)
        if old and old["hash"] == h["hash"]:
            files = []
            for name in old["files"]:
                os.link(Path(previous["root"]) / name, root / name)
                files.append(name)
            parts[p] = {**h, "files": files}
            stats["files_linked"] += len(files)
        else:
            to_write.append(p)
            parts[p] = {**h, "files": []}
    started = time.monotonic()
    if not total:  # an empty table: one file with its columns, so that the view has them
        con.execute(f"copy (select * from {source}) to '{folder / 'part-all.parquet'}' (format parquet)")
        parts["all"] = {"rows": 0, "hash": "0", "files": [f"{rel}/part-all.parquet"]}
        stats["files_written"] += 1
    elif to_write and len(to_write) == 1 and column is None:
        name = "part-all.parquet"
        con.execute(f"copy (select * from {source}) to '{folder / name}' (format parquet)")
        parts["all"]["files"] = [f"{rel}/{name}"]
        stats["files_written"] += 1
    elif to_write:
        tmp = folder / ".writing"
        chosen = ", ".join("'" + p.replace("'", "''") + "'" for p in to_write)
        con.execute(f"copy (select *, {part} as __release_part from {source} where {part} in ({chosen})) "
                    f"to '{tmp}' (format parquet, partition_by (__release_part))")
        for sub in sorted(tmp.iterdir()):
            p = sub.name.split("=", 1)[1]
            for i, f in enumerate(sorted(sub.glob("*.parquet"))):
                name = f"part-{_safe(p)}-{i}.parquet"
                os.replace(f, folder / name)
                parts[p]["files"].append(f"{rel}/{name}")
                stats["files_written"] += 1
        shutil.rmtree(tmp)
    stats["write_seconds"] += time.monotonic() - started
    stats["rows"] += total
    return {"columns": columns, "partition_by": column, "rows": total, "parts": parts}


def _view_sql(schema: str, table: str, entry: dict, folder: Path, reader) -> str:
    files = [str(folder / name) for p in entry["parts"].values() for name in p["files"]]
    listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in sorted(files)) + "]"
    read = f"read_parquet({listing})"
    got = dict(reader.execute(f"select column_name, column_type from (describe select * from {read})").fetchall())
    select = ", ".join(_q(c) if got.get(c) == t else f"cast({_q(c)} as {t}) as {_q(c)}" for c, t in entry["columns"])
    return f"create view {_q(schema)}.{_q(table)} as select {select} from {read}"


def _previous_index(home: Path) -> dict:
    """The index of the snapshot the warehouse reads now, if it is this home's (a copied home's
    catalog may still name the original's files: its own copy of that snapshot is used)."""
    try:
        snapshot = current_record(home).get("snapshot")
    except OpteError:
        return {}
    if not snapshot:
        return {}
    folder = snapshots_dir(home) / Path(snapshot).name
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    import duckdb

    return {**index, "folder": str(folder)} if index.get("duckdb_version") == duckdb.__version__ else {}


def write_catalog(path: Path, snapshot: Path, index: dict, record: dict) -> None:
    """Write a catalog DuckDB file at `path`: one view per relation of `snapshot`, and the record."""
    import duckdb

    _remove_database(path)
    con = duckdb.connect(str(path), config={"threads": 1, "memory_limit": "256MB"})
    try:
        for name, entry in index["tables"].items():
            schema, table = name.split(".", 1)
            con.execute(f"create schema if not exists {_q(schema)}")
            con.execute(_view_sql(schema, table, entry, snapshot, con))
        con.execute(f"create schema {RECORD_SCHEMA}")
        con.execute(f"create table {RECORD_SCHEMA}.{RECORD_TABLE} as select ? as build_id, ? as completed, "
                    "cast(? as json) as record", [record["build_id"], record["completed"], json.dumps(record)])
        con.execute("checkpoint")
    finally:
        con.close()


def release(home: Path, record: dict, reuse: bool = True) -> dict:
    """Release the working database's marts as the warehouse readers see (see the module docstring).

    `record`: the build record (code version, cut-off, fingerprint, extracts read, ...); this adds
    `build_id`, `completed`, `snapshot`, `released_at` and the release's own figures, writes it into
    the catalog and `build_info.json`, and returns it. Call holding the warehouse lock exclusively.
    `reuse=False` writes every file again (benchmarks: the cost of a release with nothing to reuse).
    """
    import duckdb

    home = Path(home)
    if not locks.held(home / locks.WAREHOUSE_LOCK, exclusive=True):
        raise RuntimeError("release needs the warehouse lock held exclusively")
    started = time.monotonic()
    state = work_state(home)
    build_id = state.get("build_id") or new_build_id()
    root = snapshots_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    if (root / build_id).exists():  # a release of this build was killed after writing its snapshot
        build_id = new_build_id()
    final = root / build_id
    tmp = root / f".{build_id}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:  # the snapshot readers of the catalog read now: kept, whatever happens
        referenced = current_record(home).get("snapshot")
    except OpteError as exc:
        referenced = None
        log.warning("cannot tell which snapshot the warehouse reads (%s): no old snapshot is removed", exc)
        keep_all = True
    else:
        keep_all = False
    previous = _previous_index(home) if reuse else {}
    stats = {"rows": 0, "files_written": 0, "files_linked": 0, "hash_seconds": 0.0, "write_seconds": 0.0}
    work = work_database_path(home)
    try:
        con = duckdb.connect(str(work), read_only=True,
                             config={"threads": 2, "memory_limit": _memory_limit(), "preserve_insertion_order": False})
    except duckdb.Error as exc:
        raise OpteError(f"cannot read the working database {work} to release it: {' '.join(str(exc).split())}") from exc
    try:
        tables = {}
        for schema, table in _relations(con):
            name = f"{schema}.{table}"
            old = previous.get("tables", {}).get(name)
            if old:
                old = {**old, "root": previous["folder"]}
            tables[name] = _snapshot_table(con, schema, table, tmp, old, stats)
    finally:
        con.close()
    missing = [n for n in ("marts.opte_monthly",) if n not in tables]
    if missing:
        raise OpteError(f"the working database {work} has no {', '.join(missing)}: nothing to release")
    index = {"build_id": build_id, "duckdb_version": duckdb.__version__, "folder": str(final), "tables": tables}
    (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, final)

    record = {**record, "build_id": build_id, "completed": True, "snapshot": str(final),
              "released_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "full_refresh": state.get("full_refresh"), "full_refresh_reason": state.get("full_refresh_reason")}
    stats["snapshot_seconds"] = time.monotonic() - started
    record["release"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()}
    catalog_started = time.monotonic()
    catalog = warehouse_path(home)
    new = catalog.with_name(f".{catalog.name}.tmp-{os.getpid()}")
    write_catalog(new, final, index, record)
    # a WAL beside the old warehouse (left by a dbt that wrote it directly, before releases) would
    # be replayed into the new catalog: remove it first
    catalog.with_name(catalog.name + ".wal").unlink(missing_ok=True)
    os.replace(new, catalog)
    stats["catalog_seconds"] = time.monotonic() - catalog_started
    (final / "build_info.json").write_text(json.dumps(record, indent=2) + "\n")
    _write_json(home / "build_info.json", record)
    _write_json(work_dir(home) / WORK_STATE, {**state, "build_id": build_id, "completed": True})
    removed = [] if keep_all else prune(home, keep={final.name, Path(referenced or "").name})
    log.info("released build %s in %.1f s: %s rows, %d file(s) written, %d unchanged file(s) linked; "
             "hashing %.1f s, writing %.1f s, catalog %.1f s; %d old snapshot(s) removed", build_id,
             time.monotonic() - started, f"{stats['rows']:,}", stats["files_written"], stats["files_linked"],
             stats["hash_seconds"], stats["write_seconds"], stats["catalog_seconds"], len(removed))
    return record


def prune(home: Path, keep: set[str]) -> list[Path]:
    """Remove the snapshots not in `keep` (by folder name) and half-written ones; under the lock."""
    home = Path(home)
    if not locks.held(home / locks.WAREHOUSE_LOCK, exclusive=True):
        raise RuntimeError("prune needs the warehouse lock held exclusively")
    removed = []
    root = snapshots_dir(home)
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name in keep:
            continue
        if BUILD_ID.match(entry.name) or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    for leftover in home.glob(f".{warehouse_path(home).name}.tmp-*"):
        leftover.unlink(missing_ok=True)
    return removed


def repoint(home: Path) -> None:
    """Rewrite the catalog of a home that was copied or moved so that it reads its own snapshot."""
    home = Path(home)
    record = current_record(home)
    if not record.get("snapshot"):
        return
    folder = snapshots_dir(home) / Path(record["snapshot"]).name
    index = json.loads((folder / INDEX).read_text())
    index["folder"] = str(folder)
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    record["snapshot"] = str(folder)
    with locks.warehouse_lock(home, shared=False, who="repoint"):
        catalog = warehouse_path(home)
        new = catalog.with_name(f".{catalog.name}.tmp-{os.getpid()}")
        write_catalog(new, folder, index, record)
        os.replace(new, catalog)
        _write_json(home / "build_info.json", record)

