"""`opte land`: validate, pseudonymise and land inbox extracts into the lake (EXTRACTS.md, Landing).

For each inbox file, in extract-date order per dataset:

1. stream it in batches (bounded memory), give each row the first reject reason that
   applies (ingest.validate), replace the NINO by its person_key; rejected rows go to
   the quarantine Parquet as received, passed rows to a staging Parquet;
2. DuckDB (which spills to disk) finds keys that occur more than once among the
   passed rows: rows of a key with differing normalised values are quarantined as
   `conflicting_duplicate`, exact duplicates land once; the landed rows are typed and
   written to the lake;
3. check the reconciliation, then write the manifest (os.replace): the single commit
   point. Files of an earlier delivery of the same name (a correction) are deleted
   after it; files of an interrupted landing are never named and are removed by the
   next landing.

A file that cannot be read as the contract says is rejected whole (recorded under
`lake/_rejected/`); the other files still land.

A landing holds the home's lake lock exclusively (measures.locks): it waits for a running build
(which reads the lake) or landing, saying for whom. Before anything in the lake changes, it
checks that the pseudonymisation key is the lake's (`check_pseudonym_key`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest import lake as lk
from ingest.contracts import CONTRACTS, NINO, REJECT_REASONS, Contract
from ingest.lake import current_files  # noqa: F401  (public helper, re-exported)
from ingest.nino import DEVELOPMENT_KEY, ENV_KEY, INVALID_MARKER, Pseudonymiser, key_fingerprint, pseudo_key, scrub
from ingest.sources import Batch, FileRejected, check_header, open_source
from ingest.validate import first_reason
from measures import locks
from measures.config import code_version, lake_dir
from measures.errors import OpteError

log = logging.getLogger(__name__)

INBOX_NAME = re.compile(r"^(?P<dataset>[a-z_]+)_(?P<date>[0-9]{8})\.(?P<fmt>csv|csv\.gz|parquet)$")
# Our quarantine columns: an inbox column of the same name is dropped from quarantine. `_landed_at`
# stays reserved (lakes landed before it moved to the manifest have it, typed, in every file).
RESERVED_NAMES = ("reject_reason", "_dataset", "_extract_date", "_source_file", "_row_number",
                  "_raw_line", "_landed_at")
DUCKDB_MEMORY_LIMIT = "512MB"
PROGRESS_EVERY_SECONDS = 15.0


# --------------------------------------------------------------------------- report

@dataclass
class FileResult:
    dataset: str
    extract_date: date
    source_file: str
    rows_read: int
    rows_landed: int
    rows_quarantined: int
    quarantined_by_reason: dict[str, int]
    exact_duplicates_dropped: int
    seconds: float
    correction: bool = False


@dataclass
class RejectedFile:
    file: str
    reason: str


@dataclass
class LandingReport:
    landed: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # file names already landed with the same SHA-256
    rejected_files: list[RejectedFile] = field(default_factory=list)

    def summary(self) -> str:
        read = sum(r.rows_read for r in self.landed)
        lines = [
            f"landed {len(self.landed)} file(s): {read} rows read, "
            f"{sum(r.rows_landed for r in self.landed)} landed, "
            f"{sum(r.rows_quarantined for r in self.landed)} quarantined, "
            f"{sum(r.exact_duplicates_dropped for r in self.landed)} exact duplicates dropped"
            + (f" ({sum(r.correction for r in self.landed)} correction(s))" if any(r.correction for r in self.landed)
               else ""),
            f"skipped {len(self.skipped)} file(s) already landed unchanged",
        ]
        if self.rejected_files:
            lines.append(f"rejected {len(self.rejected_files)} file(s) whole: "
                         + "; ".join(f"{r.file}: {r.reason}" for r in self.rejected_files))
        return "\n".join(lines)


# --------------------------------------------------------------------------- inbox

@dataclass(frozen=True)
class Delivery:
    path: Path
    dataset: str
    extract_date: date
    fmt: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return f"{self.dataset}_{self.extract_date:%Y%m%d}"


def discover(inbox: Path) -> tuple[dict[str, list[Delivery]], list[tuple[Path, str]]]:
    """Inbox files by dataset (sorted by name), and the entries that are not extracts."""
    found: dict[str, list[Delivery]] = {}
    bad: list[tuple[Path, str]] = []
    for entry in sorted(inbox.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            bad.append((entry, "not in a dataset folder (expected <inbox>/<dataset>/<dataset>_<YYYYMMDD>.csv)"))
            continue
        if entry.name not in CONTRACTS:
            for f in sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith(".")):
                bad.append((f, f"unknown dataset folder {entry.name!r} (known: {', '.join(CONTRACTS)})"))
            continue
        for f in sorted(entry.iterdir()):
            if f.name.startswith("."):
                continue
            m = INBOX_NAME.match(f.name)
            reason = None
            if f.is_dir():
                reason = "a folder inside a dataset folder"
            elif not m or m["dataset"] != entry.name:
                reason = f"name does not match {entry.name}_<YYYYMMDD>.csv, .csv.gz or .parquet"
            else:
                try:
                    d = datetime.strptime(m["date"], "%Y%m%d").date()
                except ValueError:
                    reason = f"{m['date']} in the name is not a real date YYYYMMDD"
            if reason:
                bad.append((f, reason))
            else:
                found.setdefault(entry.name, []).append(Delivery(f, entry.name, d, m["fmt"]))
    return found, bad


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- landing one file

def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _FileLanding:
    """The landing of one inbox file; `run` returns its manifest or raises FileRejected."""

    def __init__(self, delivery: Delivery, sha: str, home: Path, scratch: Path, con, pseudonymiser: Pseudonymiser,
                 fingerprint: str):
        self.delivery = delivery
        self.contract: Contract = CONTRACTS[delivery.dataset]
        self.sha = sha
        self.lake = lake_dir(home)
        self.scratch = scratch
        self.con = con
        self.pseudonymiser = pseudonymiser
        self.fingerprint = fingerprint
        self.landed_at = datetime.now(timezone.utc)  # in the manifest only: landed files are reproducible
        self._extract_scalar = pa.scalar(delivery.extract_date, pa.date32())
        self._source_scalar = pa.scalar(delivery.name, pa.string())
        self.by_reason = dict.fromkeys(REJECT_REASONS, 0)
        self.rows_read = 0

    # -- pass 1: check every row, quarantine the rejected, stage the passed
    def _quarantine_schema(self, names: list[str]) -> pa.Schema:
        return pa.schema([pa.field(n, pa.string()) for n in names] + [
            pa.field("reject_reason", pa.string()), pa.field("_dataset", pa.string()),
            pa.field("_extract_date", pa.date32()), pa.field("_source_file", pa.string()),
            pa.field("_row_number", pa.int64()), pa.field("_raw_line", pa.string())])

    def _meta(self, n: int, reason, rows, raw_line) -> list[pa.Array]:
        return [
            reason if isinstance(reason, pa.Array) else pa.repeat(pa.scalar(reason, pa.string()), n),
            pa.repeat(pa.scalar(self.delivery.dataset, pa.string()), n),
            pa.repeat(self._extract_scalar, n),
            pa.repeat(self._source_scalar, n),
            pa.array(rows, pa.int64()),
            raw_line if raw_line is not None else pa.nulls(n, pa.string()),
        ]

    def _quarantine_rows(self, table: pa.Table, reason: pa.Array, rows, raw_line=None) -> pa.Table:
        cols = [table.column(n) for n in self.names]
        return pa.Table.from_arrays(cols + self._meta(table.num_rows, reason, rows, raw_line),
                                    schema=self.q_schema)

    def _pass1(self, source, q_writer: pq.ParquetWriter, stage: Path) -> None:
        nino_col = next((c.name for c in self.contract.columns if c.kind == NINO), None)
        stage_schema = pa.schema([pa.field(n, pa.string()) for n in self.names] + [pa.field("_row_number", pa.int64())])
        started = last_log = time.monotonic()
        # Staging Parquet, uncompressed and plain (cheap to write); DuckDB reads it within its memory limit.
        with pq.ParquetWriter(stage, stage_schema, compression="none", use_dictionary=False,
                              write_statistics=False) as s_writer:
            for batch in source.batches(self.header):
                self._quarantine_malformed(batch, q_writer)
                if not self._check_batch(batch, nino_col, q_writer, s_writer, stage_schema):
                    continue
                now = time.monotonic()
                if now - last_log >= PROGRESS_EVERY_SECONDS:
                    last_log = now
                    log.info("%s: %d rows read so far (%.0f rows/s)", self.delivery.name, self.rows_read,
                             self.rows_read / (now - started))

    def _check_batch(self, batch: Batch, nino_col: str | None, q_writer: pq.ParquetWriter,
                     s_writer: pq.ParquetWriter, stage_schema: pa.Schema) -> bool:
        """Check one batch's well-formed rows: quarantine the rejected, stage the passed (the NINO
        replaced by its person_key). False for a batch with no well-formed row."""
        table = batch.columns.select(self.names)
        n = table.num_rows
        if n == 0:
            return False
        self.rows_read += n
        checked = first_reason(self.contract, table, self.delivery.extract_date, self.pseudonymiser)
        if nino_col is not None:
            idx = self.names.index(nino_col)
            raw = table.column(idx)
            shown = pc.if_else(checked.nino_valid, checked.person_key,
                               pc.if_else(pc.is_valid(raw), INVALID_MARKER, pa.scalar(None, pa.string())))
            table = table.set_column(idx, nino_col, shown)
        passed = pc.is_null(checked.reason)
        n_passed = pc.sum(passed).as_py() or 0
        if n_passed < n:
            failed = pc.invert(passed)
            reasons = checked.reason.filter(failed)
            for item in pc.value_counts(reasons).to_pylist():
                self.by_reason[item["values"]] += item["counts"]
            q_writer.write_table(self._quarantine_rows(
                table.filter(failed), reasons, batch.row_numbers[failed.to_numpy(zero_copy_only=False)]))
        if n_passed:
            good = table.filter(passed) if n_passed < n else table
            rows = batch.row_numbers[passed.to_numpy(zero_copy_only=False)] if n_passed < n else batch.row_numbers
            s_writer.write_table(pa.Table.from_arrays(
                list(good.columns) + [pa.array(rows, pa.int64())], schema=stage_schema))
        return True

    def _quarantine_malformed(self, batch: Batch, q_writer: pq.ParquetWriter) -> None:
        if not batch.malformed:
            return
        m = len(batch.malformed)
        self.rows_read += m
        self.by_reason["malformed_row"] += m
        empty = pa.table({n: pa.nulls(m, pa.string()) for n in self.names})
        rows = [rn for rn, _ in batch.malformed]
        raw = pa.array([scrub(text) for _, text in batch.malformed], pa.string())
        q_writer.write_table(self._quarantine_rows(empty, "malformed_row", rows, raw))

    # -- pass 2: duplicates (DuckDB, spills to disk), then the typed landed file (streamed)
    def _pass2(self, stage: Path, q_writer: pq.ParquetWriter, data_tmp: Path) -> tuple[int, int]:
        con, c = self.con, self.contract
        src = f"read_parquet({_lit(str(stage))})"
        keys = [c.column(k) for k in c.key]
        others = [col for col in c.columns if col.name not in c.key]
        key_sel = ", ".join(f"{k.landing.landed_sql(_q(k.name))} AS k{i}" for i, k in enumerate(keys))
        join = " AND ".join(f"d.k{i} = {k.landing.landed_sql('s.' + _q(k.name))}" for i, k in enumerate(keys))
        con.execute(f"CREATE OR REPLACE TEMP TABLE dupkeys AS SELECT {key_sel} FROM {src} "
                    f"GROUP BY ALL HAVING count(*) > 1").fetchall()
        exact = 0
        drops = None
        if con.execute("SELECT count(*) FROM dupkeys").fetchall()[0][0]:
            # Only the (usually few) rows of repeated keys: do their normalised values differ?
            differs = " OR ".join(
                f"(count(DISTINCT {e}) > 1 OR (count({e}) > 0 AND count({e}) < count(*)))"
                for e in (col.landing.landed_sql(_q(col.name)) for col in others)) or "false"
            con.execute(f"CREATE OR REPLACE TEMP TABLE dup AS SELECT {key_sel}, count(*) AS n, "
                        f"min(_row_number) AS first_rn, ({differs}) AS conflict "
                        f"FROM {src} s SEMI JOIN dupkeys d ON {join} GROUP BY ALL").fetchall()
            conflicting, exact = con.execute(
                "SELECT coalesce(sum(n) FILTER (WHERE conflict), 0), "
                "coalesce(sum(n - 1) FILTER (WHERE NOT conflict), 0) FROM dup").fetchall()[0]
            exact = int(exact)
            if conflicting:
                self.by_reason["conflicting_duplicate"] += int(conflicting)
                cols = ", ".join(f"s.{_q(n)}" for n in self.names)
                reader = con.sql(f"SELECT {cols}, s._row_number FROM {src} s JOIN dup d ON {join} "
                                 f"WHERE d.conflict ORDER BY s._row_number").to_arrow_reader(65_536)
                for rb in reader:
                    t = pa.Table.from_batches([rb])
                    q_writer.write_table(self._quarantine_rows(
                        t, "conflicting_duplicate", t.column("_row_number").combine_chunks()))
            drops = _SortedRowNumbers(con.sql(
                f"SELECT s._row_number FROM {src} s JOIN dup d ON {join} "
                f"WHERE d.conflict OR s._row_number <> d.first_rn ORDER BY 1").to_arrow_reader(1 << 20))
        rows_landed = self._write_landed(stage, drops, data_tmp)
        if drops is not None:
            drops.close()
        con.execute("DROP TABLE IF EXISTS dup; DROP TABLE dupkeys").fetchall()
        return rows_landed, exact

    def _landed_schema(self) -> pa.Schema:
        return pa.schema([pa.field(col.landed_name, col.landing.landed_type) for col in self.contract.columns]
                         + [pa.field("_extract_date", pa.date32()), pa.field("_source_file", pa.string()),
                            pa.field("_row_number", pa.int64())])

    def _write_landed(self, stage: Path, drops: _SortedRowNumbers | None, data_tmp: Path) -> int:
        """Stream the staged rows in file order, minus dropped duplicates, typed, to the landed file."""
        schema = self._landed_schema()
        written = 0
        cols = list(self.contract.names) + ["_row_number"]
        dictionary = [col.landed_name for col in self.contract.columns if col.landing.dictionary]
        with pq.ParquetWriter(data_tmp, schema, compression="zstd", use_dictionary=dictionary) as writer:
            # pre_buffer=False: a pre-buffered reader keeps every row group read until it is done
            for rb in pq.ParquetFile(stage, pre_buffer=False).iter_batches(batch_size=131_072, columns=cols,
                                                                           use_threads=False):
                rows = rb.column("_row_number")
                if drops is not None and len(rows):
                    keep = drops.keep_mask(rows.to_numpy())
                    if not keep.all():
                        rb = rb.filter(pa.array(keep))
                        rows = rb.column("_row_number")
                n = rb.num_rows
                if not n:
                    continue
                arrays = [col.landing.landed_array(rb.column(col.name)) for col in self.contract.columns]
                arrays += [pa.repeat(self._extract_scalar, n), pa.repeat(self._source_scalar, n), rows]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                written += n
        return written

    def run(self, previous: dict | None) -> dict:
        source = open_source(self.delivery.path, self.delivery.fmt)
        self.header = header = check_header(source.header(), self.contract.names)
        # Extra columns are kept in quarantine as received, except any that would clash with our own columns.
        self.names = [n for n in header if n in self.contract.names or n not in RESERVED_NAMES]
        self.q_schema = self._quarantine_schema(self.names)
        stage = self.scratch / "stage.parquet"
        q_tmp = self.scratch / "quarantine.parquet"
        data_tmp = self.scratch / "data.parquet"
        with pq.ParquetWriter(q_tmp, self.q_schema, compression="zstd") as q_writer:
            t0 = time.monotonic()
            self._pass1(source, q_writer, stage)
            t1 = time.monotonic()
            log.debug("%s: checks done, peak RSS %d MB", self.delivery.name, _peak_rss_mb())
            rows_landed, exact = self._pass2(stage, q_writer, data_tmp)
            log.debug("%s: checks %.1f s, duplicates and landed file %.1f s (peak RSS %d MB)", self.delivery.name,
                      t1 - t0, time.monotonic() - t1, _peak_rss_mb())
        stage.unlink()
        rows_quarantined = sum(self.by_reason.values())
        if self.rows_read != rows_landed + rows_quarantined + exact:  # never commit a file that does not add up
            raise AssertionError(
                f"{self.delivery.name}: reconciliation failed: {self.rows_read} read != {rows_landed} landed + "
                f"{rows_quarantined} quarantined + {exact} duplicates dropped")

        return self._commit(previous, q_tmp, data_tmp, rows_landed, rows_quarantined, exact)

    def _commit(self, previous: dict | None, q_tmp: Path, data_tmp: Path, rows_landed: int, rows_quarantined: int,
                exact: int) -> dict:
        """Move the landed and quarantine files into the lake and write the manifest (the commit point);
        a correction's earlier files are deleted after it. Returns the manifest."""
        # <stem>.<sha8>: a correction gets new names, so the committed files stay untouched until
        # the new manifest is in place (16 hex digits in the unlikely case the first 8 agree).
        tag = self.sha[:16] if previous and previous["sha256"][:8] == self.sha[:8] else self.sha[:8]
        delivery = self.delivery
        data_final = lk.data_path(self.lake, delivery.dataset, delivery.extract_date, delivery.stem, tag)
        q_final = lk.quarantine_path(self.lake, delivery.dataset, delivery.extract_date, delivery.stem, tag)
        manifest = {
            "dataset": self.delivery.dataset,
            "extract_date": self.delivery.extract_date.isoformat(),
            "source_file": self.delivery.name,
            "sha256": self.sha,
            "data_file": data_final.relative_to(self.lake).as_posix(),
            "quarantine_file": q_final.relative_to(self.lake).as_posix(),
            "rows_read": self.rows_read,
            "rows_landed": rows_landed,
            "rows_quarantined": rows_quarantined,
            "quarantined_by_reason": self.by_reason,
            "exact_duplicates_dropped": exact,
            "landed_at": self.landed_at.isoformat(),
            "code_version": code_version(),
            "key_fingerprint": self.fingerprint,
            "history": [],
        }
        if previous:
            earlier = {k: v for k, v in previous.items() if k != "history"}
            manifest["history"] = list(previous.get("history", [])) + [earlier]
        published: list[Path] = []
        try:
            for tmp, final in ((q_tmp, q_final), (data_tmp, data_final)):
                final.parent.mkdir(parents=True, exist_ok=True)
                lk.publish_file(tmp, final)
                published.append(final)
            write_manifest(self.lake, manifest)  # the commit point
        except BaseException:
            for path in published:  # not named by any manifest: remove (else the next landing does)
                path.unlink(missing_ok=True)
            raise
        if previous:  # a correction: the earlier delivery's files are no longer named
            for rel in (previous["data_file"], previous["quarantine_file"]):
                old = self.lake / rel
                if old not in (data_final, q_final):
                    old.unlink(missing_ok=True)
        return manifest


class _SortedRowNumbers:
    """Membership in an ascending stream of row numbers, queried with ascending row numbers
    (a merge: memory is bounded by one chunk, whatever the number of duplicates)."""

    def __init__(self, reader: pa.RecordBatchReader):
        self._reader = reader
        self._buf = np.empty(0, np.int64)
        self._done = False

    def keep_mask(self, rows: np.ndarray) -> np.ndarray:
        hi = rows[-1]
        while not self._done and (len(self._buf) == 0 or self._buf[-1] <= hi):
            try:
                rb = self._reader.read_next_batch()
            except StopIteration:
                self._done = True
                break
            self._buf = np.concatenate([self._buf, rb.column(0).to_numpy()])
        cut = np.searchsorted(self._buf, hi, side="right")
        here, self._buf = self._buf[:cut], self._buf[cut:]
        return ~np.isin(rows, here, assume_unique=True)

    def close(self) -> None:
        for _ in self._reader:  # drain, so the connection is free for the next query
            pass


def _peak_rss_mb() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def write_manifest(lake: Path, manifest: dict) -> None:
    """Commit a landing (module-level so tests can inject a failure here)."""
    lk.commit_manifest(lake, manifest)


# --------------------------------------------------------------------------- the inbox

def _record_rejection(lake: Path, report: LandingReport, path: Path, reason: str, sha: str | None) -> None:
    reason = " ".join(reason.split())
    report.rejected_files.append(RejectedFile(path.name, reason))
    log.error("rejected whole: %s: %s", path.name, reason)
    target = lk.rejected_path(lake, path.name)
    if target.exists():
        try:
            old = json.loads(target.read_text(encoding="utf-8"))
            if old.get("sha256") == sha and old.get("reason") == reason:
                return  # unchanged: leave the record (and its mtime) alone
        except ValueError:
            pass
    lk.write_json_atomic(target, {
        "file": path.name, "sha256": sha, "reason": reason,
        "rejected_at": datetime.now(timezone.utc).isoformat(), "code_version": code_version(),
    })


def _duckdb(scratch: Path):
    import duckdb

    con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT, "threads": 2,
                                 "temp_directory": str(scratch / "duckdb_spill"),
                                 "preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false").fetchall()
    return con


class _Run:
    """One `opte land`: the report, and the resources opened on first need (key, scratch, DuckDB)."""

    def __init__(self, home: Path, key: bytes, fingerprint: str):
        self.home = home
        self.lake = lake_dir(home)
        self.report = LandingReport()
        self.key = key
        self.fingerprint = fingerprint
        self.pseudonymiser: Pseudonymiser | None = None
        self.scratch: Path | None = None
        self.con = None

    def reject(self, path: Path, reason: str, sha: str | None) -> None:
        _record_rejection(self.lake, self.report, path, reason, sha)

    def land_dataset(self, dataset: str, deliveries: list[Delivery]) -> None:
        """One dataset's files in extract-date order; one file per extract date."""
        by_date: dict[date, list[Delivery]] = {}
        for dl in deliveries:
            by_date.setdefault(dl.extract_date, []).append(dl)
        for extract_date in sorted(by_date):
            first, *later = sorted(by_date[extract_date], key=lambda x: x.name)
            for dl in later:
                self.reject(dl.path, f"a second file for {dataset} extract date {extract_date}: "
                                     f"{first.name} is used and this later-sorting name is rejected",
                            sha256_file(dl.path))
            self.land_file(first)

    def land_file(self, dl: Delivery) -> None:
        sha = sha256_file(dl.path)
        previous = lk.read_manifest(self.lake, dl.dataset, dl.extract_date)
        if previous and previous["source_file"] != dl.name:
            self.reject(dl.path, f"{dl.dataset} extract date {dl.extract_date} already landed from "
                                 f"{previous['source_file']}; a correction must use the same name", sha)
            return
        if previous and previous["sha256"] == sha:
            self.report.skipped.append(dl.name)
            log.info("%s: already landed (same SHA-256), nothing to do", dl.name)
            return
        if self.con is None:
            self.pseudonymiser = Pseudonymiser(self.key)
            self.scratch = lk.scratch_dir(self.home)
            self.con = _duckdb(self.scratch)
        started = time.monotonic()
        try:
            manifest = _FileLanding(dl, sha, self.home, self.scratch, self.con, self.pseudonymiser,
                                    self.fingerprint).run(previous)
        except FileRejected as exc:
            self.reject(dl.path, str(exc), sha)
            for p in self.scratch.glob("*.*"):
                p.unlink()
            return
        seconds = time.monotonic() - started
        lk.rejected_path(self.lake, dl.name).unlink(missing_ok=True)
        result = FileResult(
            dl.dataset, dl.extract_date, dl.name, manifest["rows_read"], manifest["rows_landed"],
            manifest["rows_quarantined"], {k: v for k, v in manifest["quarantined_by_reason"].items() if v},
            manifest["exact_duplicates_dropped"], seconds, correction=previous is not None)
        self.report.landed.append(result)
        log.info("%s %s: %d rows read, %d landed, %d quarantined %s, %d exact duplicates dropped, "
                 "%.2f s (%.0f rows/s)", "corrected" if previous else "landed", dl.name, result.rows_read,
                 result.rows_landed, result.rows_quarantined, result.quarantined_by_reason or "",
                 result.exact_duplicates_dropped, seconds, result.rows_read / max(seconds, 1e-9))

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def check_pseudonym_key(lake: Path, key: bytes) -> str:
    """One pseudonym space per lake: refuse a key other than the one the lake's person keys were made
    with (OpteError, nothing changed); returns the key's fingerprint.

    The lake records the fingerprint (`lake/_pseudonym_key.json`, and every manifest), never the key.
    A lake with nothing landed adopts the key it is given. A lake landed before fingerprints were
    recorded adopts it too, with a warning (its earlier key cannot be checked).
    """
    fingerprint = key_fingerprint(key)
    record = lk.read_key_record(lake)
    landed = lk.landed_key_fingerprints(lake)
    recorded = record.get("key_fingerprint") if record else None
    others = {fp for fp in landed if fp not in (None, fingerprint)}
    if landed and recorded not in (None, fingerprint):
        others.add(recorded)
    if others:
        theirs = sorted(others)[0]
        dev = " (the development key: is OPTE_PSEUDO_KEY unset?)" if key == DEVELOPMENT_KEY else ""
        raise OpteError(
            f"the lake {lake} was pseudonymised with another key (fingerprint {theirs[:12]}), and {ENV_KEY} gives "
            f"key {fingerprint[:12]}{dev}: landing would mix two pseudonym spaces, so nothing was landed or "
            f"changed. Set {ENV_KEY} to the lake's key, or, to change keys, land the whole retained inbox into "
            "a new, empty home with the new key")
    if recorded != fingerprint:
        if landed:
            log.warning("the lake %s has no record of its pseudonymisation key (landed before keys were "
                        "fingerprinted): recording key %s; if it was landed with another key, land the retained "
                        "inbox into a new home", lake, fingerprint[:12])
        lk.write_key_record(lake, {"key_fingerprint": fingerprint, "development_key": key == DEVELOPMENT_KEY,
                                   "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "code_version": code_version()})
    return fingerprint


def land_inbox(inbox: Path, home: Path) -> LandingReport:
    """Land every extract of `inbox` into `<home>/lake`; files that cannot be read are rejected whole.

    Raises OpteError only when the inbox itself is unusable.
    """
    inbox, home = Path(inbox), Path(home)
    if not inbox.is_dir():
        raise OpteError(f"inbox folder {inbox} does not exist (or is not a folder); "
                        "pass the folder holding <dataset>/<dataset>_<YYYYMMDD>.csv")
    with locks.lake_lock(home, shared=False, who="opte land"):
        key = pseudo_key()
        fingerprint = check_pseudonym_key(lake_dir(home), key)  # before anything in the lake changes
        run = _Run(home, key, fingerprint)
        shutil.rmtree(home / lk.SCRATCH, ignore_errors=True)  # left by a landing that was killed
        removed = lk.remove_orphans(run.lake, CONTRACTS)
        if removed:
            log.warning("removed %d file(s) left by an interrupted landing: %s", len(removed),
                        ", ".join(str(p.relative_to(run.lake)) for p in removed))
        found, bad = discover(inbox)
        for path, reason in bad:
            run.reject(path, reason, sha256_file(path) if path.is_file() else None)
        try:
            for dataset in sorted(found):
                run.land_dataset(dataset, found[dataset])
        finally:
            run.close()
    return run.report


__all__ = ["land_inbox", "current_files", "LandingReport", "FileResult", "RejectedFile", "FileRejected"]
