"""`opte synth`: a synthetic inbox of extracts, with its ground truth kept outside the inbox.

    synthesize(out, people, start, end, seed=1, dirty=0.0, bad_files=False, truth_dir=None)

writes `<out>/<dataset>/<dataset>_<YYYYMMDD>.<csv|csv.gz|parquet>` for the seven datasets
of EXTRACTS.md: monthly incremental extracts dated the last day of each month from
`start` to `end` (the first one carrying the stock), and full snapshots of offices,
disadvantaged areas and targets whenever they change. The world behind it (synth_org,
synth_world) is a scaled copy of Jobcentre Plus around 2009 (FACTS.md), with planted
office outliers, returns to benefit and staff-recorded end reasons; the ground truth in
`<truth_dir>` is every off-flow of the final data classified by the MEASURES.md rules,
and the marts' figures that follow from it (synth_rules, an implementation independent of
the dbt project).

Same seed, same bytes. Stable in the end month: with the same seed and start, a later
`end` only adds files; every file of the shorter inbox is byte-identical in the longer one
(the new months' files carry the late notices for earlier months, as they would in life).
Memory is bounded by the chunk of people simulated at a time: each chunk's row versions are
spilled to disk, then every file is written from the spill one month at a time.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ingest.synth_emit import NULL_OFFICE, ChunkRows, ClaimNumbers, build_part, make_paye_refs
from ingest.synth_org import UNKNOWN_OFFICE_CODES, Organisation, build_organisation, plant_outliers
from ingest.synth_random import Keyed
from ingest.synth_rules import (EPOCH, MONITORS, SUSTAINABILITY_WEEKS, classify_offflows, financial_year,
                                jsa_cohort_shares, measure_agreement, month_first, monthly_by_level,
                                office_month_counts, office_monitors, sum_office_months, sustainability)
from ingest.synth_world import (BENEFITS, PROXY_JOB_P, PROXY_NOJOB_P, PROXY_RETURN_P, RETURN_RATES,
                                simulate)
from ingest.synth_write import (DirtyFactory, FileSpec, count_dirty, date_array, iso, nino_array,
                                plan_file_dirty, str_array, write_file)
from measures.errors import OpteError

log = logging.getLogger("opte.synth")

INCREMENTAL = ("benefit_claims", "customers", "tax_employments", "programme_starts")
SNAPSHOT = ("offices", "disadvantaged_areas", "opte_targets")
DATASETS = INCREMENTAL + SNAPSHOT
CHUNK_PEOPLE = 100_000  # people simulated (and classified) at a time: bounds memory
MOVE_MONTH = 18         # the office move: first day of the 19th month (snapshot the month before)
AREA_CHANGE_MONTH = 12  # the disadvantaged-area change: first day of the 13th month
DEFAULT_START, DEFAULT_END = "2008-04", "2011-03"
# OPtE off-flows per customer in the k-th financial year of the period (k = 0, 1, ...), what the
# targets are set from; measured on 50,000-customer runs starting in 2001 and in 2008 (the same
# within 2 %). The synthetic customers are a closed cohort (nobody new turns 16), so the flows
# fall by about 3 % a year; beyond the table the rate falls by 2 % a year.
TARGET_OPTE_PER_PERSON_YEAR = (0.52, 0.48, 0.455, 0.44, 0.425, 0.41, 0.40, 0.39, 0.383, 0.375)


def target_rate(k: int) -> float:
    table = TARGET_OPTE_PER_PERSON_YEAR
    return table[k] if k < len(table) else table[-1] * 0.98 ** (k - len(table) + 1)

_NINO_FIRST = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "DFIQUV"]
_NINO_SECOND = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "DFIOQUV"]
_NINO_FORBIDDEN = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
NINO_PREFIXES = [a + b for a in _NINO_FIRST for b in _NINO_SECOND if a + b not in _NINO_FORBIDDEN]
NINO_SPACE = len(NINO_PREFIXES) * 4_000_000


@dataclass
class SynthSummary:
    out: Path
    truth_dir: Path
    files: int
    rows: int
    bytes: int
    seconds: float
    rows_by_dataset: dict = field(default_factory=dict)

    def __str__(self) -> str:
        per = ", ".join(f"{k} {v:,}" for k, v in self.rows_by_dataset.items())
        return (f"synthetic inbox {self.out}: {self.files} files, {self.rows:,} rows, "
                f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({per}); ground truth in {self.truth_dir}")


def nino_codes_to_bytes(codes: np.ndarray) -> np.ndarray:
    """Integers in [0, NINO_SPACE) -> valid NINOs as numpy 'S9'."""
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    m = np.zeros((n, 9), dtype=np.uint8)
    pre = np.frombuffer("".join(NINO_PREFIXES).encode(), dtype=np.uint8).reshape(-1, 2)
    m[:, 0:2] = pre[codes // 4_000_000]
    digits = (codes // 4) % 1_000_000
    for j in range(6):
        m[:, 7 - j] = 48 + digits % 10
        digits //= 10
    m[:, 8] = 65 + codes % 4
    return m.view("S9").reshape(n)


def make_ninos(rng: np.random.Generator, n: int) -> np.ndarray:
    return nino_codes_to_bytes(rng.choice(NINO_SPACE, size=n, replace=False))


def _add_months(month: str, k: int) -> str:
    return str(np.datetime64(month, "M") + k)


def resolve_period(start: str | None, end: str | None, years: int | None) -> tuple[str, str]:
    """The months of an inbox. `years` N sets the length (12 N months): from `start` when it is
    given, else ending with `end` (default March 2011: `--years 10` is April 2001 to March 2011)."""
    if years is None:
        return start or DEFAULT_START, end or DEFAULT_END
    if years < 1:
        raise OpteError(f"--years must be at least 1, got {years}")
    if start is not None and end is not None:
        raise OpteError("give at most two of --start, --end and --years")
    if start is not None:
        return start, _add_months(start, 12 * years - 1)
    end = end or DEFAULT_END
    return _add_months(end, -(12 * years - 1)), end


def _months(start: str, end: str) -> np.ndarray:
    m0, m1 = np.datetime64(start, "M"), np.datetime64(end, "M")
    if m1 < m0:
        raise OpteError(f"end month {end} is before start month {start}")
    return np.arange(m0, m1 + 1)


def _clear(out: Path) -> None:
    """Remove files a previous run wrote (only our dataset files), so a rerun gives the same inbox."""
    for ds in DATASETS:
        d = out / ds
        if d.is_dir():
            for f in d.glob(f"{ds}_*"):
                f.unlink()


def _file_rng(seed: int, dataset: str, ext_date: int) -> np.random.Generator:
    """The random stream of one file: its bytes depend on nothing but the seed, dataset and date."""
    return np.random.default_rng([int(seed), 7, DATASETS.index(dataset), int(ext_date)])


def _d(s: str) -> int:
    return int((np.datetime64(s, "D") - EPOCH).astype(np.int64))


# ----------------------------------------------------------------------------- the spill


class _Spill:
    """Row versions of every chunk on disk (Arrow IPC, one record batch per extract month)."""

    def __init__(self, folder: Path, n_months: int):
        self.folder, self.n_months = folder, n_months
        self.readers: dict[str, list] = {ds: [] for ds in INCREMENTAL}
        self.schemas: dict[str, pa.Schema] = {}

    def add(self, chunk: int, dataset: str, table: pa.Table) -> None:
        ext = table["ext"].to_numpy()
        bounds = np.searchsorted(ext, np.arange(self.n_months + 1))
        table = table.drop(["ext"]).combine_chunks()
        self.schemas[dataset] = table.schema
        path = self.folder / f"{dataset}_{chunk:05d}.arrow"
        opts = ipc.IpcWriteOptions(compression="lz4")
        with ipc.new_file(str(path), table.schema, options=opts) as w:
            for i in range(self.n_months):
                part = table.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i]))
                batches = [b for b in part.to_batches() if b.num_rows]
                w.write_batch(batches[0] if len(batches) == 1 else _empty_batch(table.schema))
        self.readers[dataset].append((pa.OSFile(str(path)), None))  # reads one batch at a time

    def month(self, dataset: str, i: int) -> pa.Table:
        batches = []
        for j, (src, reader) in enumerate(self.readers[dataset]):
            if reader is None:
                reader = ipc.open_file(src)
                self.readers[dataset][j] = (src, reader)
            b = reader.get_batch(i)
            if b.num_rows:
                batches.append(b)
        return pa.Table.from_batches(batches, self.schemas[dataset]) if batches else \
            self.schemas[dataset].empty_table()

    def rows(self, dataset: str, i: int) -> int:
        return self.month(dataset, i).num_rows

    def close(self) -> None:
        for lst in self.readers.values():
            for src, _ in lst:
                src.close()


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


# ----------------------------------------------------------------------------- geography of the truth


class _Geography:
    """The attribution of MEASURES.md 8 for the synthetic organisation and its one move."""

    def __init__(self, org: Organisation, move_date: int | None):
        self.org, self.move_date = org, move_date
        self.pos = {c: i for i, c in enumerate(org.office_code)}

    def district_index(self, office: np.ndarray, days: np.ndarray) -> np.ndarray:
        org = self.org
        known = office >= 0
        d = np.where(known, org.district[np.maximum(office, 0)], -1)
        if self.move_date is not None:
            d = np.where((office == org.mover) & (days >= self.move_date), org.mover_to, d)
        return d

    def attribute(self, office: np.ndarray, days: np.ndarray) -> dict:
        """reporting office, district and region codes of off-flows at their office and date."""
        org = self.org
        known = office >= 0
        unk = np.asarray(UNKNOWN_OFFICE_CODES, dtype=object)
        rep = np.where(known, org.reporting_office[np.maximum(office, 0)], unk[np.clip(-1 - office, 0, len(unk) - 1)])
        d = self.district_index(office, days)
        dc = np.where(d >= 0, org.district_code[np.maximum(d, 0)], "UNALLOCATED")
        rc = np.where(d >= 0, org.region_code[org.district_region[np.maximum(d, 0)]], "UNALLOCATED")
        return {"reporting_office_code": rep.astype(object), "district_code": dc.astype(object),
                "region_code": rc.astype(object)}

    def district_at(self, codes: np.ndarray, on: int) -> np.ndarray:
        idx = np.array([self.pos.get(c, -1) for c in codes], dtype=np.int64)
        d = self.district_index(idx, np.full(len(idx), on))
        return np.where(d >= 0, self.org.district_code[np.maximum(d, 0)], "UNALLOCATED").astype(object)


# ----------------------------------------------------------------------------- main


def synthesize(out: Path, people: int, start: str, end: str, seed: int = 1, dirty: float = 0.0,
               bad_files: bool = False, truth_dir: Path | None = None,
               chunk_people: int = CHUNK_PEOPLE, staggered_ends: bool = False) -> SynthSummary:
    """Write a synthetic inbox for months `start`..`end` ('YYYY-MM', inclusive) and its ground truth.

    `staggered_ends`: the four incremental datasets end on different dates, so that the data
    cut-off is the earliest of their latest extracts (MEASURES.md section 9): `customers` ends on
    the last day of `end`, the other three run on with a header-only extract each (no change
    since), dated STAGGERED_END_DAYS later. Every figure of the truth is unchanged: the cut-off
    stays the last day of `end`."""
    t_start = time.perf_counter()
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir is not None else out.parent / f"{out.name}_truth"
    if people < 100:
        raise OpteError(f"--people must be at least 100, got {people}")
    if not 0.0 <= dirty < 1.0:
        raise OpteError(f"--dirty must be a fraction in [0, 1), got {dirty}")
    months = _months(start, end)
    n_months = len(months)
    ext_dates = ((months + 1).astype("datetime64[D]") - 1 - EPOCH).astype(np.int64)
    period_start = int((months[0].astype("datetime64[D]") - EPOCH).astype(np.int64))
    period_end = int(ext_dates[-1])
    log.info("synth: %d people, %s to %s (%d months), seed %d, dirty %.3f, bad files %s -> %s",
             people, start, end, n_months, seed, dirty, bad_files, out)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)]
    r_org, r_emit, r_nino, r_bad = streams[0], streams[2], streams[3], streams[6]

    org = build_organisation(people, r_org)
    plants, planted = plant_outliers(org)
    log.info("organisation: %d regions, %d districts, %d offices, %d areas; outliers planted in %s",
             len(org.region_code), len(org.district_code), org.n_offices, len(org.area_code),
             ", ".join(f"{p['office_code']} ({p['indicator']} {p['direction']})" for p in planted))
    # the office move and the area change: fixed by the start month, delivered once the period reaches them
    move_date = int(ext_dates[MOVE_MONTH - 1]) + 1 if n_months >= MOVE_MONTH else None
    area_change_date = int(ext_dates[AREA_CHANGE_MONTH - 1]) + 1 if n_months >= AREA_CHANGE_MONTH else None
    geo = _Geography(org, move_date)
    paye_refs = make_paye_refs(r_emit, people)
    ninos = make_ninos(r_nino, people)
    kr_world, kr_emit = Keyed(seed, 1), Keyed(seed, 2)
    numbers = ClaimNumbers(period_end)

    out.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    spill_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    spill = _Spill(spill_dir, n_months)
    try:
        acc = _simulate_chunks(people, chunk_people, org, plants, geo, months, period_start, period_end, kr_world,
                               kr_emit, paye_refs, numbers, spill, truth_dir, t_start)
        targets = _targets(acc["people_by_office"], org, months, move_date, seed)
        _clear(out)
        specs = _file_specs(months, ext_dates)
        tails = _staggered_end_specs(period_end) if staggered_ends else []
        tables = _Tables(spill, org, ninos, paye_refs, move_date, area_change_date, targets, period_start, ext_dates)
        total_rows, total_bytes, rows_by_ds = _write_inbox_files(out, tables, specs, tails, org, ninos, seed, dirty,
                                                                 period_end, t_start)
        counts = count_dirty(specs)
        log.info("wrote %d files, %d rows (%.1f s)", len(specs), total_rows, time.perf_counter() - t_start)
    finally:
        spill.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    bad = []
    if bad_files:
        bad = _write_bad_files(out, ext_dates, specs, r_bad, _fresh_ninos(r_bad, ninos, 1))
        total_bytes += sum(b["bytes"] for b in bad)

    # ---- truth files
    _write_truth(truth_dir, acc, org, geo, planted, counts, bad, targets, dict(
        people=people, start=start, end=end, seed=seed, dirty=dirty, bad_files=bad_files,
        files=len(specs) + len(tails) + len(bad), rows_by_dataset=rows_by_ds,
        move_date=iso(move_date) if move_date else None,
        area_change_date=iso(area_change_date) if area_change_date else None), period_start, period_end)
    secs = time.perf_counter() - t_start
    summary = SynthSummary(out=out, truth_dir=truth_dir, files=len(specs) + len(tails) + len(bad), rows=total_rows,
                           bytes=total_bytes, seconds=secs, rows_by_dataset=rows_by_ds)
    log.info("%s", summary)
    return summary


def _write_inbox_files(out: Path, tables: "_Tables", specs: list[FileSpec], tails: list[FileSpec],
                       org: Organisation, ninos: np.ndarray, seed: int, dirty: float, period_end: int,
                       t_start: float) -> tuple[int, int, dict]:
    """Write the extract files (the header-only tails first), bad rows planted at the `dirty` rate;
    returns the rows and bytes written and the rows per dataset."""
    total_rows = total_bytes = 0
    rows_by_ds = {ds: 0 for ds in DATASETS}
    first_file = {}
    offices, areas, districts = list(org.office_code), list(org.area_code), list(org.district_code)
    for spec in tails:  # header-only extracts after the cut-off: no rows, no bad rows
        path = out / spec.dataset / spec.name
        total_bytes += write_file(path, spec, tables.table(FileSpec(spec.dataset, period_end), _file_rng(
            seed, spec.dataset, spec.ext_date)).slice(0, 0), _file_rng(seed, spec.dataset, spec.ext_date), None)[1]
    for n_done, spec in enumerate(specs):
        rng = _file_rng(seed, spec.dataset, spec.ext_date)
        table = tables.table(spec, rng)
        spec.n_rows = table.num_rows
        plan_file_dirty(spec, dirty, rng, guarantee=first_file.setdefault(spec.dataset, spec) is spec)
        factory = None
        if spec.dirty:
            factory = DirtyFactory(rng, _fresh_ninos(rng, ninos, 2 * len(spec.dirty) + 10), offices, areas,
                                   districts)
        path = out / spec.dataset / spec.name
        n_rows, n_bytes = write_file(path, spec, table, rng, factory)
        total_rows += n_rows
        total_bytes += n_bytes
        rows_by_ds[spec.dataset] += n_rows
        if spec.dataset == "benefit_claims" and (n_rows > 100_000 or n_done % 48 == 0):
            log.info("wrote %s (%d rows, %.1f s)", path.name, n_rows, time.perf_counter() - t_start)
    return total_rows, total_bytes, rows_by_ds


TRUTH_SCHEMA = pa.schema([
    ("claim_id", pa.string()), ("benefit_code", pa.string()), ("office_code", pa.string()),
    ("reporting_office_code", pa.string()), ("district_code", pa.string()), ("region_code", pa.string()),
    ("offflow_date", pa.date32()), ("offflow_month", pa.date32()), ("planted_reason", pa.string()),
    ("planted_job_start", pa.bool_()), ("job_start_date", pa.date32()), ("customer_group", pa.string()),
    ("end_reason_code", pa.string()), ("is_proxy", pa.bool_()),
    ("back_on_benefit_by_week_13", pa.bool_()), ("back_on_benefit_by_week_26", pa.bool_()),
    ("planted_proxy_p", pa.float64()), ("planted_back_p13", pa.float64()), ("planted_back_p26", pa.float64()),
])


def _simulate_chunks(people, chunk_people, org, plants, geo, months, period_start, period_end, kr_world, kr_emit,
                     paye_refs, numbers, spill, truth_dir, t_start) -> dict:
    """Simulate, emit, spill and classify the people chunk by chunk; return the additive truth figures."""
    bounds = list(range(0, people, chunk_people)) + [people]
    acc = {"om": [], "people_by_office": np.zeros(org.n_offices, dtype=np.int64), "jsa_end_reasons": {},
           "jsa_closed_claims": 0, "cohorts": {}, "conversion": {}, "conversion_mature": {}, "reasons": {},
           "offflows": 0, "world": {"claims": 0, "employments": 0, "programmes": 0}}
    writer = pq.ParquetWriter(truth_dir / "offflows.parquet", TRUTH_SCHEMA, compression="zstd")
    try:
        for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            world = simulate(kr_world, lo, hi - lo, org, plants, period_start, period_end)
            part = build_part(kr_emit, world, org, months, paye_refs, lo, numbers)
            del world
            for ds, t in part.versions.items():
                spill.add(c, ds, t)
            part.versions = None
            _truth_of_chunk(part, geo, period_start, period_end, writer, acc)
            if len(bounds) > 2:
                log.info("people %d to %d simulated and classified (%.1f s)", lo, hi, time.perf_counter() - t_start)
    finally:
        writer.close()
    acc["om"] = sum_office_months(acc["om"])
    log.info("world: %d claims, %d employments, %d programme starts, %d off-flows",
             acc["world"]["claims"], acc["world"]["employments"], acc["world"]["programmes"], acc["offflows"])
    return acc


def _add(totals: dict, more: dict) -> None:
    for name, value in more.items():
        if isinstance(value, dict):
            _add(totals.setdefault(name, {}), value)
        elif value is not None and not isinstance(value, float):
            totals[name] = totals.get(name, 0) + value


def _truth_of_chunk(part: ChunkRows, geo: _Geography, period_start: int, period_end: int, writer, acc: dict) -> None:
    final_claims = part.final_claims
    acc["world"]["claims"] += final_claims.num_rows
    acc["world"]["employments"] += part.final_employments.num_rows
    acc["world"]["programmes"] += len(part.final_programmes)
    acc["people_by_office"] += part.people_by_office
    _add(acc["jsa_end_reasons"], part.jsa_end_reasons)
    jsa = final_claims.filter(pc.equal(final_claims["benefit_code"], "JSA"))
    acc["jsa_closed_claims"] += jsa.num_rows - jsa["end"].null_count
    _add(acc["cohorts"], jsa_cohort_shares(jsa, period_end, period_start))
    offflows = classify_offflows(final_claims, part.final_customers, part.final_programmes, part.final_employments,
                          passthrough=("office", "proxy_p", "back_p13", "back_p26"), chunk_people=10 ** 9)
    offflow_day = offflows["offflow_date"].to_numpy(np.int64)
    for name, value in geo.attribute(offflows["office"].to_numpy(np.int64), offflow_day).items():
        offflows[name] = value
    offflows["month"] = month_first(offflow_day)
    # folded chunk by chunk: a national organisation has ~90,000 office-months per decade, per chunk
    acc["om"] = [sum_office_months(acc["om"] + [office_month_counts(offflows)])]
    acc["offflows"] += len(offflows)
    _add(acc["reasons"], {name: int(count)
                          for name, count in offflows["exclusion_reason"].fillna("opte").value_counts().items()})
    opte = offflows["exclusion_reason"].isna()
    mature = offflows["offflow_date"] <= period_end - 183
    for key, mask in (("conversion", opte), ("conversion_mature", opte & mature)):
        by_group = offflows[mask].groupby("customer_group")["is_job_outcome"].agg(["size", "sum"])
        _add(acc[key], {grp: {"opte_offflows": int(row["size"]), "with_job_outcome": int(row["sum"])}
                        for grp, row in by_group.iterrows()})
    # per off-flow, with the marts' null rules for the back-on-benefit columns (section 16)
    last_day = (offflows["month"].to_numpy().astype("datetime64[D]").astype("datetime64[M]") + 1).astype(
        "datetime64[D]").astype(np.int64) - 1
    jsd = offflows["job_start_date"]
    cols = {
        "claim_id": pa.array(offflows["claim_id"], type=pa.string()),
        "benefit_code": pa.array(offflows["benefit_code"], type=pa.string()),
        "office_code": pa.array(offflows["office_code"], type=pa.string()),
        "reporting_office_code": pa.array(offflows["reporting_office_code"], type=pa.string()),
        "district_code": pa.array(offflows["district_code"], type=pa.string()),
        "region_code": pa.array(offflows["region_code"], type=pa.string()),
        "offflow_date": date_array(offflow_day), "offflow_month": date_array(offflows["month"].to_numpy()),
        "planted_reason": pa.array(offflows["exclusion_reason"], type=pa.string(), from_pandas=True),
        "planted_job_start": pa.array(offflows["is_job_outcome"].to_numpy(bool)),
        "job_start_date": date_array(jsd.fillna(0).to_numpy(np.int64), null=jsd.isna().to_numpy()),
        "customer_group": pa.array(offflows["customer_group"], type=pa.string()),
        "end_reason_code": pa.array(offflows["end_reason_code"], type=pa.string(), from_pandas=True),
        "is_proxy": pa.array(offflows["is_proxy"].to_numpy(bool)),
    }
    for weeks in SUSTAINABILITY_WEEKS:
        due = period_end >= last_day + 7 * weeks
        cols[f"back_on_benefit_by_week_{weeks}"] = pa.array(offflows[f"back_on_benefit_{weeks}"].to_numpy(bool),
                                                       mask=~(due & opte.to_numpy()))
    cols["planted_proxy_p"] = pa.array(offflows["proxy_p"].to_numpy(np.float64))
    cols["planted_back_p13"] = pa.array(offflows["back_p13"].to_numpy(np.float64), from_pandas=True)
    cols["planted_back_p26"] = pa.array(offflows["back_p26"].to_numpy(np.float64), from_pandas=True)
    writer.write_table(pa.table(cols, schema=TRUTH_SCHEMA))


def _fresh_ninos(rng: np.random.Generator, real: np.ndarray, n: int) -> list[str]:
    """Valid NINOs, distinct, that no real person has (keys of injected bad rows)."""
    if n <= 0:
        return []
    cand = np.unique(nino_codes_to_bytes(rng.integers(0, NINO_SPACE, n + 100)))
    cand = cand[~np.isin(cand, real, assume_unique=True)]
    cand = cand[rng.permutation(len(cand))][:n]
    return [x.decode() for x in cand]


def _financial_years(months: np.ndarray) -> np.ndarray:
    return financial_year(months.astype("datetime64[D]").astype(np.int64))


def _targets(people_by_office: np.ndarray, org: Organisation, months: np.ndarray, move_date: int | None,
             seed: int) -> pd.DataFrame:
    """A target per financial year and district: the customers of its offices on 1 April x the national
    OPtE rate per customer in that year of the period x a district factor in [0.88, 1.12]. Set from the organisation, not from
    the data, so that a year's target never changes when the period is longer. The years are those of
    the period and, when it ends in March, the next one (delivered on 31 March)."""
    fys = sorted(set(int(f) for f in _financial_years(np.append(months, months[-1] + 1))))
    fy0 = int(_financial_years(months[:1])[0])
    kr = Keyed(seed, 3)
    rows = []
    for f in fys:
        d = org.district.copy()
        if move_date is not None and _d(f"{f}-04-01") >= move_date:
            d[org.mover] = org.mover_to
        per_district = np.bincount(d, weights=people_by_office, minlength=len(org.district_code))
        key = np.arange(len(org.district_code), dtype=np.uint64) + np.uint64(f * 1000)
        factor = 0.88 + 0.24 * kr.uniform(key, 1)
        for j, dc in enumerate(org.district_code):
            rows.append((f, dc, max(1, int(round(per_district[j] * target_rate(f - fy0) * factor[j])))))
    return pd.DataFrame(rows, columns=["financial_year", "district_code", "opte_target"])


# staggered_ends: days after the last month's end at which these datasets' last (header-only)
# extracts are dated; customers, absent here, ends first and so sets the data cut-off
STAGGERED_END_DAYS = {"programme_starts": 7, "tax_employments": 14, "benefit_claims": 21}


def _staggered_end_specs(period_end: int) -> list[FileSpec]:
    return [FileSpec(ds, period_end + days) for ds, days in STAGGERED_END_DAYS.items()]


def _file_specs(months: np.ndarray, ext_dates: np.ndarray) -> list[FileSpec]:
    """Which files to write, in which format and with which quirks (fixed by the month index, so a
    longer period never changes an earlier file)."""
    specs: list[FileSpec] = []
    n_months = len(months)
    for i in range(n_months):
        extract_day = int(ext_dates[i])
        for ds in INCREMENTAL:
            s = FileSpec(ds, extract_day)
            if ds == "benefit_claims":
                s.fmt = "csv.gz" if i % 6 == 5 else "csv"
                s.shuffle = i % 12 == 2
                s.mixed_case = i == 7
            elif ds == "customers":
                s.fmt = "csv.gz" if i % 3 == 1 else "csv"
                s.shuffle = i % 12 == 3
            elif ds == "tax_employments":
                s.fmt = "csv.gz" if i % 4 == 3 else "csv"
                s.shuffle = i % 12 == 4
                s.mixed_case = i == 1
            elif ds == "programme_starts":
                s.fmt = "parquet" if i == 2 else ("csv.gz" if i % 5 == 4 else "csv")
                s.blank_line = i == 1 and s.fmt == "csv"
            specs.append(s)
        if i == 0:
            specs.append(FileSpec("offices", extract_day, bom=True))
            specs.append(FileSpec("disadvantaged_areas", extract_day))
            specs.append(FileSpec("opte_targets", extract_day))
        if i == MOVE_MONTH - 1:
            specs.append(FileSpec("offices", extract_day, shuffle=True))
        if i == AREA_CHANGE_MONTH - 1:
            specs.append(FileSpec("disadvantaged_areas", extract_day))
        # targets: before each later financial year starts (31 March)
        if i >= 1 and str(months[i])[5:7] == "03":
            specs.append(FileSpec("opte_targets", extract_day))
    return specs


class _Tables:
    """Builds the pyarrow table of one file from the spilled row versions and the organisation."""

    def __init__(self, spill: _Spill, org: Organisation, ninos: np.ndarray, paye_refs: np.ndarray, move_date,
                 area_change_date, targets: pd.DataFrame, period_start: int, ext_dates: np.ndarray):
        self.spill, self.org, self.ninos, self.paye_refs = spill, org, ninos, paye_refs
        self.move_date, self.area_change_date, self.targets = move_date, area_change_date, targets
        self.period_start = period_start
        self.ext_dates = ext_dates

    def _rows(self, ds: str, extract_day: int, rng) -> pa.Table:
        i = int(np.searchsorted(self.ext_dates, extract_day))
        t = self.spill.month(ds, i)
        return t.take(pa.array(rng.permutation(t.num_rows)))

    def table(self, spec: FileSpec, rng) -> pa.Table:
        return getattr(self, "_" + spec.dataset)(spec, rng)

    def _office_codes(self, office: np.ndarray) -> pa.Array:
        """Office index -> code as arrow (negative: the unknown codes; NULL_OFFICE: null)."""
        org = self.org
        table = pa.array(list(org.office_code) + list(UNKNOWN_OFFICE_CODES) + [None], type=pa.string())
        n = org.n_offices
        idx = np.where(office >= 0, office,
                       np.where(office == NULL_OFFICE, n + len(UNKNOWN_OFFICE_CODES), n - 1 - office))
        return table.take(pa.array(idx.astype(np.int32)))

    def _benefit_claims(self, spec, rng):
        versions = self._rows("benefit_claims", spec.ext_date, rng)
        benefit = pa.array(list(BENEFITS)).take(versions["benefit"].cast(pa.int32()))
        office = self._office_codes(versions["office"].to_numpy())
        yn = pa.array(["N", "Y"])
        lp = yn.take(versions["lp"].cast(pa.int8()))
        dis = yn.take(versions["dis"].cast(pa.int8()))
        if int(np.searchsorted(self.ext_dates, spec.ext_date)) == 3:  # codes and flags are case-insensitive
            low = pa.array(rng.random(versions.num_rows) < 0.03)
            benefit = pc.if_else(low, pc.utf8_lower(benefit), benefit)
            office = pc.if_else(low, pc.utf8_lower(office), office)
            lp = pc.if_else(low, pc.utf8_lower(lp), lp)
        end = versions["end"].to_numpy()
        return pa.table({
            "claim_id": versions["claim_id"],
            "nino": nino_array(self.ninos, versions["person"].to_numpy(), rng),
            "benefit_code": benefit,
            "office_code": office,
            "claim_start_date": date_array(versions["start"].to_numpy()),
            "claim_end_date": date_array(np.where(end >= 0, end, 0), null=end < 0),
            "end_reason_code": versions["reason"],
            "lone_parent": lp,
            "disabled": dis,
        })

    def _customers(self, spec, rng):
        versions = self._rows("customers", spec.ext_date, rng)
        area = versions["area"].to_numpy()
        dod = versions["dod"].to_numpy()
        return pa.table({
            "nino": nino_array(self.ninos, versions["person"].to_numpy(), rng),
            "date_of_birth": date_array(versions["dob"].to_numpy(), null=versions["dob_null"].to_numpy()),
            "sex": versions["sex"],
            "date_of_death": date_array(np.where(dod >= 0, dod, 0), null=dod < 0),
            "area_code": str_array(np.where(area >= 0, self.org.area_code[np.maximum(area, 0)], None)),
        })

    def _tax_employments(self, spec, rng):
        versions = self._rows("tax_employments", spec.ext_date, rng)
        end = versions["end"].to_numpy()
        return pa.table({
            "nino": nino_array(self.ninos, versions["person"].to_numpy(), rng),
            "paye_ref": str_array(self.paye_refs[versions["paye"].to_numpy()]),
            "start_date": date_array(versions["start"].to_numpy()),
            "end_date": date_array(np.where(end >= 0, end, 0), null=end < 0),
            "form": versions["form"],
            "received_date": date_array(versions["received"].to_numpy()),
        })

    def _programme_starts(self, spec, rng):
        versions = self._rows("programme_starts", spec.ext_date, rng)
        return pa.table({
            "nino": nino_array(self.ninos, versions["person"].to_numpy(), rng),
            "programme_code": versions["code"],
            "start_date": date_array(versions["start"].to_numpy()),
            "office_code": self._office_codes(versions["office"].to_numpy()),
        })

    def _offices(self, spec, rng):
        org = self.org
        n = org.n_offices
        # historic opening dates (deterministic from the office index)
        valid_from = np.where(np.arange(n) % 5 == 0, _d("2006-10-02"), _d("2002-04-01")).astype(np.int64)
        valid_from = np.minimum(valid_from, self.period_start - 1)
        dist = org.district.copy()
        valid_to = np.full(n, -1, dtype=np.int64)
        rows_extra = []
        # the move is known from the snapshot delivered the month before it
        if self.move_date is not None and spec.ext_date >= self.move_date - 1:
            valid_to[org.mover] = self.move_date - 1
            rows_extra.append(org.mover)
        code = list(org.office_code) + [org.office_code[o] for o in rows_extra]
        name = list(org.office_name) + [org.office_name[o] for o in rows_extra]
        rep = list(org.reporting_office) + [org.reporting_office[o] for o in rows_extra]
        d = np.array(list(dist) + [org.mover_to for _ in rows_extra])
        vfrom = list(valid_from) + [self.move_date for _ in rows_extra]
        vto = np.array(list(valid_to) + [-1 for _ in rows_extra])
        return pa.table({
            "office_code": str_array(np.array(code, dtype=object)),
            "office_name": str_array(np.array(name, dtype=object)),
            "reporting_office_code": str_array(np.array(rep, dtype=object)),
            "district_code": str_array(org.district_code[d]),
            "district_name": str_array(org.district_name[d]),
            "region_code": str_array(org.region_code[org.district_region[d]]),
            "region_name": str_array(org.region_name[org.district_region[d]]),
            "valid_from": date_array(np.array(vfrom, dtype=np.int64)),
            "valid_to": date_array(np.where(vto >= 0, vto, 0), null=vto < 0),
        })

    def _disadvantaged_areas(self, spec, rng):
        org = self.org
        dis = np.flatnonzero(org.area_disadvantaged)
        codes = list(org.area_code[dis])
        names = list(org.area_name[dis])
        valid_from = [_d("2004-04-01")] * len(dis)
        valid_to = [-1] * len(dis)
        # two areas that used to be listed, long before the period
        former = np.flatnonzero(~org.area_disadvantaged)[:2]
        for a in former:
            codes.append(org.area_code[a])
            names.append(org.area_name[a])
            valid_from.append(_d("2001-04-01"))
            valid_to.append(_d("2004-03-31"))
        if self.area_change_date is not None and spec.ext_date >= self.area_change_date - 1:
            cd = self.area_change_date
            # some areas leave the list, some join it
            for j, a in enumerate(dis[: max(1, len(dis) // 20)]):
                valid_to[j] = cd - 1
            new = np.flatnonzero(~org.area_disadvantaged)[2: 2 + max(1, len(dis) // 20)]
            for a in new:
                codes.append(org.area_code[a])
                names.append(org.area_name[a])
                valid_from.append(cd)
                valid_to.append(-1)
        valid_to_days = np.array(valid_to, dtype=np.int64)
        return pa.table({
            "area_code": str_array(np.array(codes, dtype=object)),
            "area_name": str_array(np.array(names, dtype=object)),
            "valid_from": date_array(np.array(valid_from, dtype=np.int64)),
            "valid_to": date_array(np.where(valid_to_days >= 0, valid_to_days, 0), null=valid_to_days < 0),
        })

    def _opte_targets(self, spec, rng):
        t = self.targets
        # delivered before the year starts: a file dated E holds the years starting by E + 1 day
        e = np.datetime64(int(spec.ext_date) + 1, "D")
        y = int(e.astype("datetime64[Y]").astype(np.int64)) + 1970
        m = int((e.astype("datetime64[M]") - e.astype("datetime64[Y]").astype("datetime64[M]")).astype(np.int64)) + 1
        fy_now = y if m >= 4 else y - 1
        t = t[t["financial_year"] <= fy_now]
        return pa.table({
            "financial_year": pa.array(t["financial_year"].to_numpy(np.int64)),
            "district_code": str_array(t["district_code"].to_numpy(dtype=object)),
            "opte_target": pa.array(t["opte_target"].to_numpy(np.int64)),
        })


def _write_bad_files(out: Path, ext_dates: np.ndarray, specs: list[FileSpec], rng: np.random.Generator,
                     fresh: list[str]) -> list[dict]:
    """Files that landing must reject whole (each with exactly one problem), dated mid-way through
    the first month (so a longer period never moves them)."""
    import gzip
    mid = int(ext_dates[0]) - 15
    ymd = iso(mid).replace("-", "")
    bad = []

    def put(rel: str, data: bytes, problem: str):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        bad.append({"file": rel, "problem": problem, "bytes": len(data)})

    nino = fresh[0] if fresh else "AB123456C"
    d1 = iso(mid - 40)
    put(f"tax_employments/tax_employments_{ymd}.csv",
        f"nino,paye_ref,start_date,end_date,form\n{nino},120/AB12345,{d1},,P46\n".encode(),
        "missing_contract_column")
    # a second delivery for a dataset and date that already has a plain .csv file
    claims_csv = next(s for s in specs if s.dataset == "benefit_claims" and s.fmt == "csv")
    original = (out / "benefit_claims" / claims_csv.name).read_bytes()
    put(f"benefit_claims/{claims_csv.name}.gz", gzip.compress(original, mtime=0), "duplicate_extract_date")
    put(f"programme_starts/programme_starts_{ymd}.csv",
        bytes(rng.integers(0, 256, 4096, dtype=np.uint8)) + b"\x00\x00\x89PNG\r\n\x1a\n", "not_csv")
    put(f"disadvantaged_areas/disadvantaged_areas_{ymd}.csv",
        "area_code,area_name,valid_from,valid_to\n".encode()
        + "W01000123,Ynys M\xf4n 001A,2004-04-01,\n".encode("latin-1")
        + "W01000124,Llanfair Pwllgwyngyll 002B,2004-04-01,\n".encode(),
        "bad_encoding")
    put(f"offices/offices_{ymd}.csv",
        ("office_code,office_name,reporting_office_code,district_code,district_name,region_code,region_name,"
         "valid_from,valid_to,office_code\nQ900,Test Jobcentre,Q900,LON01,South London,LON,London,2009-01-01,,Q900\n"
         ).encode(),
        "duplicate_column")
    log.info("wrote %d bad files", len(bad))
    return bad


# ----------------------------------------------------------------------------- truth files


def _shares(counts: dict, top: int = 8) -> dict:
    total = sum(counts.values())
    s = sorted(((k, v / total) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    return {k: round(v, 4) for k, v in s[:top]} if total else {}


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", date_format="iso"))


def _dates(df: pd.DataFrame, cols=("month",)) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        df[c] = np.asarray(df[c].to_numpy(np.int64)).astype("datetime64[D]")
    return df


def _write_truth(truth_dir: Path, acc: dict, org: Organisation, geo: _Geography, planted: list[dict],
                 counts: dict, bad: list, targets: pd.DataFrame, meta: dict, period_start: int,
                 period_end: int) -> None:
    """The expected marts (parquet) and summary.json, from the off-flows classified by synth_rules."""
    om = acc["om"]
    monthly = monthly_by_level(om, period_end)
    agreement = measure_agreement(monthly)
    sust = sustainability(monthly, period_end)
    monitors = office_monitors(om, geo.district_at)
    pq.write_table(pa.Table.from_pandas(_dates(om), preserve_index=False), truth_dir / "office_months.parquet",
                   compression="zstd")
    pq.write_table(pa.Table.from_pandas(_dates(monthly), preserve_index=False), truth_dir / "opte_monthly.parquet",
                   compression="zstd")
    pq.write_table(pa.Table.from_pandas(agreement, preserve_index=False), truth_dir / "measure_agreement.parquet",
                   compression="zstd")
    pq.write_table(pa.Table.from_pandas(_dates(sust), preserve_index=False),
                   truth_dir / "opte_sustainability.parquet", compression="zstd")
    pq.write_table(pa.Table.from_pandas(_dates(monitors), preserve_index=False),
                   truth_dir / "office_monitors.parquet", compression="zstd")

    outliers = _planted_outlier_shares(om, planted)
    nat_m = monthly[monthly["level"] == "national"]
    returns = _national_returns(sust)
    conv = {key: _conversion_by_group(acc[key]) for key in ("conversion", "conversion_mature")}
    cohorts = {k: {**v, "share": round(v["offflowed"] / v["cohort_spells"], 4) if v["cohort_spells"] else None}
               for k, v in sorted(acc["cohorts"].items(), key=lambda kv: int(kv[0]))}
    summary = {
        "generator": meta,
        "period": {"first_day": iso(period_start), "data_cutoff": iso(period_end), "coverage_start": iso(period_start)},
        "organisation": {
            "regions": len(org.region_code), "districts": len(org.district_code), "offices": org.n_offices,
            "satellite_offices": int((org.reporting_office != org.office_code).sum()),
            "mover": {"office_code": org.office_code[org.mover],
                      "from_district": org.district_code[org.district[org.mover]],
                      "to_district": org.district_code[org.mover_to], "move_date": meta.get("move_date")},
            "areas": len(org.area_code), "disadvantaged_areas": int(org.area_disadvantaged.sum()),
        },
        "offflows": {"total": int(acc["offflows"]),
                     "by_reason": {k: int(v) for k, v in sorted(acc["reasons"].items())},
                     "jsa_closed_claims": int(acc["jsa_closed_claims"]),
                     "proxy": int(nat_m["proxy_offflows"].sum())},
        "jsa_end_reason_shares": _shares(acc["jsa_end_reasons"]),
        "conversion_by_group": conv["conversion"],
        "conversion_by_group_mature": conv["conversion_mature"],
        "conversion_note": ("share of OPtE off-flows with a job outcome (MEASURES.md 4) by customer group; "
                            "'mature' = off-flows at least 183 days before the data cut-off"),
        "jsa_cohort_offflow_shares": cohorts,
        "planted_proxy": {
            "end_reasons": list(("FW", "IW")),
            "p_into_work": round(PROXY_JOB_P, 4), "p_other_opte_type": round(PROXY_NOJOB_P, 4),
            "p_return_piece": round(PROXY_RETURN_P, 4),
            "note": ("probability that staff record FW/IW when closing a claim: a leaver into work (HMRC start), "
                     "another OPtE-type leaver, a claim followed by a return within a week; FTS and NK absorb "
                     "the rest. planted_pearson_r in measure_agreement.parquet is the correlation this implies."),
            "agreement": _records(agreement[agreement["pair"] == "proxy_vs_opte"][
                ["level", "financial_year", "pairs", "pearson_r", "planted_pearson_r", "scale", "planted_scale",
                 "x_total", "planted_x_total", "planted_x_total_se"]].round(4)),
        },
        "planted_returns": {
            "rates": [{"benefit": "JSA" if j else "other in scope", "job_outcome_planted": b, "by_week_13": r[0],
                       "by_week_26": r[1]} for (j, b), r in RETURN_RATES.items()],
            "note": ("after an OPtE-type off-flow the next claim (any in-scope benefit) starts within 13/26 weeks "
                     "with these probabilities (less where death or State Pension age intervene); "
                     "national, due months: observed vs the sum of the planted probabilities"),
            "national": returns,
        },
        "planted_outliers": outliers,
        "funnel_flags_at_year_end": _records(_dates_iso(monitors[
            monitors["flag"].notna() & (pd.to_datetime(_dates(monitors)["month"]).dt.month == 3)][
            ["month", "office_code", "indicator", "numerator", "denominator", "share", "flag"]].round(4))),
        "dirty_rows": {k: int(v) for k, v in counts.items()},
        "bad_files": [{"file": b["file"], "problem": b["problem"]} for b in bad],
        "targets": {"rows": int(len(targets)),
                    "financial_years": sorted(int(x) for x in targets["financial_year"].unique())},
        "truth_files": ["offflows.parquet", "office_months.parquet", "opte_monthly.parquet",
                        "measure_agreement.parquet", "opte_sustainability.parquet", "office_monitors.parquet"],
    }
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")


def _planted_outlier_shares(office_months: pd.DataFrame, planted: list[dict]) -> list[dict]:
    """The planted outliers: what was planted, and the realised shares over the whole period."""
    by_office = office_months.groupby("reporting_office_code")[
        ["offflows", "opte_offflows", "excluded_cross_flow", "excluded_programme_start",
         "excluded_returned_within_week", "opte_failed_to_sign"]].sum()
    national = by_office.sum()
    fraction_of = {indicator: (num, den) for indicator, num, den in MONITORS}
    outliers = []
    for plant in planted:
        num, den = fraction_of[plant["indicator"]]
        office = by_office.loc[plant["office_code"]] if plant["office_code"] in by_office.index else None
        outliers.append({
            **plant,
            "period_share": round(float(office[num] / office[den]), 4) if office is not None and office[den] else None,
            "period_denominator": int(office[den]) if office is not None else 0,
            "national_share": round(float(national[num] / national[den]), 4) if national[den] else None})
    return outliers


def _national_returns(sust: pd.DataFrame) -> dict:
    """Returns to benefit by week 13 / 26, national, due months: observed and planted."""
    returns = {}
    for weeks in SUSTAINABILITY_WEEKS:
        due = sust[(sust["level"] == "national") & (sust["week"] == weeks) & sust["is_due"]]
        n, back = int(due["opte_offflows"].sum()), int(due["back_on_benefit"].sum())
        expected, var = float(due["planted_back_sum"].sum()), float(due["planted_back_var"].sum())
        returns[str(weeks)] = {"due_opte_offflows": n, "back_on_benefit": back,
                               "rate": round(back / n, 4) if n else None,
                               "planted_expected": round(expected, 2), "planted_se": round(float(np.sqrt(var)), 2),
                               "planted_rate": round(expected / n, 4) if n else None,
                               "opte_without_planted_rate": int(due["opte_without_planted_back"].sum())}
    return returns


def _conversion_by_group(by_group: dict) -> dict:
    """OPtE off-flows with a job outcome, and the rate, per customer group."""
    conversion = {}
    for group in ("lone_parent", "sick_or_disabled", "jsa", "other"):
        counts = by_group.get(group, {"opte_offflows": 0, "with_job_outcome": 0})
        n, with_job = counts["opte_offflows"], counts["with_job_outcome"]
        conversion[group] = {"opte_offflows": n, "with_job_outcome": with_job,
                             "rate": round(with_job / n, 4) if n else None}
    return conversion


def _dates_iso(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["month"] = [iso(int(x)) for x in df["month"]]
    return df
