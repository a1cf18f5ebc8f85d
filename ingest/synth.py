"""`opte synth`: a synthetic inbox of extracts, with its ground truth kept outside the inbox.

    synthesize(out, people, start, end, seed=1, dirty=0.0, bad_files=False, truth_dir=None)

writes `<out>/<dataset>/<dataset>_<YYYYMMDD>.<csv|csv.gz|parquet>` for the seven datasets
of EXTRACTS.md: monthly incremental extracts dated the last day of each month from
`start` to `end` (the first one carrying the stock), and full snapshots of offices,
disadvantaged areas and targets whenever they change. The world behind it (synth_org,
synth_world) is a scaled copy of Jobcentre Plus around 2009 (FACTS.md); the ground truth
(`<truth_dir>/offflows.parquet`, `<truth_dir>/summary.json`) is every off-flow of the
final data classified by the MEASURES.md rules (synth_rules). Same seed, same bytes.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.synth_emit import Extracts, build_part, make_paye_refs, merge_parts, office_code_strings
from ingest.synth_org import UNKNOWN_OFFICE_CODES, Organisation, build_organisation
from ingest.synth_rules import EPOCH, classify_offflows, jsa_cohort_shares
from ingest.synth_world import BENEFITS, simulate
from ingest.synth_write import (DirtyFactory, FileSpec, date_array, iso, nino_array, plan_dirty,
                                str_array, write_file)
from measures.errors import OpteError

log = logging.getLogger("opte.synth")

INCREMENTAL = ("benefit_claims", "customers", "tax_employments", "programme_starts")
SNAPSHOT = ("offices", "disadvantaged_areas", "opte_targets")
DATASETS = INCREMENTAL + SNAPSHOT
CHUNK_PEOPLE = 500_000  # people simulated (and classified) at a time: bounds memory

_NINO_FIRST = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "DFIQUV"]
_NINO_SECOND = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "DFIOQUV"]
_NINO_FORBIDDEN = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
NINO_PREFIXES = [a + b for a in _NINO_FIRST for b in _NINO_SECOND if a + b not in _NINO_FORBIDDEN]


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
    """Integers in [0, len(NINO_PREFIXES) * 4e6) -> valid NINOs as numpy 'S9'."""
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
    space = len(NINO_PREFIXES) * 4_000_000
    return nino_codes_to_bytes(rng.choice(space, size=n, replace=False))


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


def synthesize(out: Path, people: int, start: str, end: str, seed: int = 1, dirty: float = 0.0,
               bad_files: bool = False, truth_dir: Path | None = None) -> SynthSummary:
    """Write a synthetic inbox for months `start`..`end` ('YYYY-MM', inclusive) and its ground truth."""
    t_start = time.perf_counter()
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir is not None else out.parent / f"{out.name}_truth"
    if people < 100:
        raise OpteError(f"--people must be at least 100, got {people}")
    if not 0.0 <= dirty < 1.0:
        raise OpteError(f"--dirty must be a fraction in [0, 1), got {dirty}")
    months = _months(start, end)
    T0 = int((months[0].astype("datetime64[D]") - EPOCH).astype(np.int64))
    T1 = int(((months[-1] + 1).astype("datetime64[D]") - 1 - EPOCH).astype(np.int64))
    log.info("synth: %d people, %s to %s (%d months), seed %d, dirty %.3f, bad files %s -> %s",
             people, start, end, len(months), seed, dirty, bad_files, out)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)]
    r_org, r_world, r_emit, r_nino, r_write, r_dirty, r_bad, r_snap, r_fresh, r_plan = streams

    org = build_organisation(people, r_org)
    log.info("organisation: %d regions, %d districts, %d offices, %d areas", len(org.region_code),
             len(org.district_code), org.n_offices, len(org.area_code))
    # people are independent: simulate them in chunks to bound memory
    paye_refs = make_paye_refs(r_emit, people)
    parts, row_offset = [], 0
    bounds = list(range(0, people, CHUNK_PEOPLE)) + [people]
    seqs_w = np.random.SeedSequence([seed, 101]).spawn(len(bounds) - 1)
    seqs_e = np.random.SeedSequence([seed, 102]).spawn(len(bounds) - 1)
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        world = simulate(np.random.default_rng(seqs_w[c]), hi - lo, org, T0, T1)
        part = build_part(np.random.default_rng(seqs_e[c]), world, org, months, len(paye_refs), lo, row_offset)
        row_offset += len(part.fc["person"])
        parts.append(part)
        del world
        if len(bounds) > 2:
            log.info("people %d to %d simulated (%.1f s)", lo, hi, time.perf_counter() - t_start)
    ex = merge_parts(r_emit, parts, T0, T1, months, paye_refs)
    del parts
    ninos = make_ninos(r_nino, people)
    log.info("world: %d claims, %d employments, %d programme starts", ex.final_claims.num_rows,
             ex.final_employments.num_rows, len(ex.final_programmes))

    # ---- snapshots: the office move, disadvantaged-area changes, targets
    M = len(months)
    # the office move: on the first day of a month mid-period, in a snapshot delivered the month before
    # (with only two months, in the first snapshot already)
    move_month = (1 if M == 2 else max(2, M // 2)) if M >= 2 else None
    move_date = int(ex.ext_dates[move_month - 1]) + 1 if move_month else None
    area_change_month = max(2, M // 3) if M >= 4 else None
    area_change_date = int(ex.ext_dates[area_change_month - 1]) + 1 if area_change_month else None

    # ---- ground truth
    fc = ex.final_claims
    fc = fc.append_column("office_code", pa.array(office_code_strings(org, fc["office"].to_numpy()), type=pa.string()))
    log.info("extract rows built (%.1f s); classifying off-flows", time.perf_counter() - t_start)
    truth = classify_offflows(fc, ex.final_customers, ex.final_programmes, ex.final_employments,
                              passthrough=("office",), chunk_people=CHUNK_PEOPLE)
    log.info("ground truth: %d off-flows (%.1f s)", len(truth), time.perf_counter() - t_start)
    off_idx = truth["office"].to_numpy(np.int64)
    district = np.where(off_idx >= 0, org.district[np.maximum(off_idx, 0)], -1)
    if move_date is not None:
        district = np.where((off_idx == org.mover) & (truth["offflow_date"].to_numpy() >= move_date),
                            org.mover_to, district)
    # an office code with no offices row reports under UNALLOCATED (MEASURES.md 8)
    truth["district_code"] = np.where(district >= 0, org.district_code[np.maximum(district, 0)], "UNALLOCATED")
    targets = _targets(truth, org, months, T0, T1, r_snap)
    data_stats = _data_stats(ex, T0, T1)
    ex.final_claims = ex.final_customers = ex.final_programmes = ex.final_employments = None  # free memory

    # ---- files
    _clear(out)
    specs = _file_specs(ex, M, move_month, area_change_month, targets)
    n_fresh = 0
    counts = plan_dirty(specs, dirty, r_plan)
    if dirty > 0:
        n_fresh = sum(counts.values()) * 2 + 10
    fresh = _fresh_ninos(r_fresh, ninos, n_fresh)
    factory = DirtyFactory(r_dirty, fresh, list(org.office_code), list(org.area_code), list(org.district_code))
    tables = _Tables(ex, org, ninos, move_date, area_change_date, targets, T0)
    total_rows = total_bytes = 0
    rows_by_ds = {ds: 0 for ds in DATASETS}
    files_written = []
    for spec in specs:
        table = tables.table(spec, r_write)
        path = out / spec.dataset / spec.name
        n, b = write_file(path, spec, table, r_write, factory if dirty > 0 else None)
        total_rows += n
        total_bytes += b
        rows_by_ds[spec.dataset] += n
        files_written.append(str(path.relative_to(out)))
        log.debug("wrote %s: %d rows, %d bytes", path, n, b)
        if spec.dataset == "benefit_claims" and n > 100_000:
            log.info("wrote %s (%d rows)", path.name, n)
    log.info("wrote %d files, %d rows (%.1f s)", len(specs), total_rows, time.perf_counter() - t_start)
    bad = []
    if bad_files:
        bad = _write_bad_files(out, ex, specs, r_bad, fresh)
        total_bytes += sum(b["bytes"] for b in bad)

    # ---- truth files
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_truth(truth_dir, truth, data_stats, org, counts, bad, targets, dict(
        people=people, start=start, end=end, seed=seed, dirty=dirty, bad_files=bad_files,
        files=len(specs) + len(bad), rows_by_dataset=rows_by_ds, move_date=iso(move_date) if move_date else None,
        area_change_date=iso(area_change_date) if area_change_date else None), T0, T1)
    secs = time.perf_counter() - t_start
    summary = SynthSummary(out=out, truth_dir=truth_dir, files=len(specs) + len(bad), rows=total_rows,
                           bytes=total_bytes, seconds=secs, rows_by_dataset=rows_by_ds)
    log.info("%s", summary)
    return summary


def _fresh_ninos(rng: np.random.Generator, real: np.ndarray, n: int) -> list[str]:
    """Valid NINOs that no real person has (keys of injected bad rows)."""
    if n <= 0:
        return []
    space = len(NINO_PREFIXES) * 4_000_000
    cand = nino_codes_to_bytes(rng.choice(space, size=n + 100, replace=False))
    cand = cand[~np.isin(cand, real)][:n]
    return [x.decode() for x in cand]


def _targets(truth: pd.DataFrame, org: Organisation, months: np.ndarray, T0: int, T1: int,
             rng: np.random.Generator) -> pd.DataFrame:
    """A target per financial year and district near the OPtE off-flows the data gives (+-12 %)."""
    d = truth["offflow_date"].to_numpy(np.int64).astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    mon = (d.astype("datetime64[M]") - d.astype("datetime64[Y]").astype("datetime64[M]")).astype(np.int64) + 1
    fy = np.where(mon >= 4, y, y - 1)
    opte = truth["exclusion_reason"].isna().to_numpy()
    df = pd.DataFrame({"fy": fy[opte], "district_code": truth["district_code"].to_numpy()[opte]})
    df = df[df["district_code"].notna()]
    counts = df.groupby(["fy", "district_code"]).size()
    my = months.astype("datetime64[Y]").astype(np.int64) + 1970
    mm = (months - months.astype("datetime64[Y]").astype("datetime64[M]")).astype(np.int64) + 1
    mfy = np.where(mm >= 4, my, my - 1)
    rows = []
    for f in np.unique(mfy):
        covered = int((mfy == f).sum())
        for dc in org.district_code:
            c = int(counts.get((int(f), dc), 0))
            factor = rng.uniform(0.88, 1.12)
            rows.append((int(f), dc, max(1, int(round(c * 12 / covered * factor)))))
    return pd.DataFrame(rows, columns=["financial_year", "district_code", "opte_target"])


def _file_specs(ex: Extracts, M: int, move_month, area_change_month, targets: pd.DataFrame) -> list[FileSpec]:
    """Which files to write, in which format and with which quirks (deterministic from the month index)."""
    specs: list[FileSpec] = []
    counts = {
        "benefit_claims": np.bincount(ex.claims["ext"], minlength=M),
        "customers": np.bincount(ex.customers["ext"], minlength=M),
        "tax_employments": np.bincount(ex.employments["ext"], minlength=M),
        "programme_starts": np.bincount(ex.programmes["ext"], minlength=M),
    }
    parquet_month = min(2, M - 1)
    for i in range(M):
        E = int(ex.ext_dates[i])
        for ds in INCREMENTAL:
            s = FileSpec(ds, E, n_rows=int(counts[ds][i]))
            if ds == "benefit_claims":
                s.fmt = "csv.gz" if i % 6 == 5 else "csv"
                s.shuffle = i % 12 == 2
                s.mixed_case = i == min(7, M - 1) and M > 1
            elif ds == "customers":
                s.fmt = "csv.gz" if i % 3 == 1 else "csv"
                s.shuffle = i % 12 == 3
            elif ds == "tax_employments":
                s.fmt = "csv.gz" if i % 4 == 3 else "csv"
                s.shuffle = i % 12 == 4
                s.mixed_case = i == min(1, M - 1)
            elif ds == "programme_starts":
                s.fmt = "parquet" if i == parquet_month else ("csv.gz" if i % 5 == 4 else "csv")
                s.blank_line = i == min(1, M - 1) and s.fmt == "csv"
            specs.append(s)
    first = int(ex.ext_dates[0])
    specs.append(FileSpec("offices", first, bom=True))
    if move_month and move_month >= 2:
        specs.append(FileSpec("offices", int(ex.ext_dates[move_month - 1]), shuffle=True))
    specs.append(FileSpec("disadvantaged_areas", first))
    if area_change_month:
        specs.append(FileSpec("disadvantaged_areas", int(ex.ext_dates[area_change_month - 1])))
    # targets: the first extract, then before each later financial year starts (31 March)
    specs.append(FileSpec("opte_targets", first))
    for i in range(1, M):
        if str(ex.months[i])[5:7] == "04" and i >= 2:  # (a year starting in month 1 is in the first file)
            specs.append(FileSpec("opte_targets", int(ex.ext_dates[i - 1])))
    return specs


class _Tables:
    """Builds the pyarrow table of one file from the row versions."""

    def __init__(self, ex: Extracts, org: Organisation, ninos: np.ndarray, move_date, area_change_date,
                 targets: pd.DataFrame, T0: int):
        self.ex, self.org, self.ninos = ex, org, ninos
        self.move_date, self.area_change_date, self.targets, self.T0 = move_date, area_change_date, targets, T0
        self.slices = {}
        for ds, v in (("benefit_claims", ex.claims), ("customers", ex.customers),
                      ("tax_employments", ex.employments), ("programme_starts", ex.programmes)):
            order = np.argsort(v["ext"], kind="stable")
            bounds = np.searchsorted(v["ext"][order], np.arange(len(ex.ext_dates) + 1))
            self.slices[ds] = (order, bounds)

    def _rows(self, ds: str, E: int, rng) -> np.ndarray:
        order, bounds = self.slices[ds]
        i = int(np.searchsorted(self.ex.ext_dates, E))
        rows = order[bounds[i]:bounds[i + 1]]
        return rows[rng.permutation(len(rows))]

    def table(self, spec: FileSpec, rng) -> pa.Table:
        return getattr(self, "_" + spec.dataset)(spec, rng)

    def _office_codes(self, office: np.ndarray) -> pa.Array:
        """Office index -> code as arrow (negative: the unknown codes; -1000: null), without Python objects."""
        org = self.org
        table = pa.array(list(org.office_code) + list(UNKNOWN_OFFICE_CODES) + [None], type=pa.string())
        n = org.n_offices
        idx = np.where(office >= 0, office, np.where(office == -1000, n + len(UNKNOWN_OFFICE_CODES), n - 1 - office))
        return table.take(pa.array(idx.astype(np.int32)))

    def _benefit_claims(self, spec, rng):
        v = self.ex.claims
        r = self._rows("benefit_claims", spec.ext_date, rng)
        benefit = pa.array(list(BENEFITS)).take(pa.array(v["benefit"][r].astype(np.int32)))
        office = self._office_codes(v["office"][r])
        yn = pa.array(["N", "Y"])
        lp = yn.take(pa.array(v["lp"][r].astype(np.int8)))
        dis = yn.take(pa.array(v["dis"][r].astype(np.int8)))
        i = int(np.searchsorted(self.ex.ext_dates, spec.ext_date))
        if i == min(3, len(self.ex.ext_dates) - 1):  # codes and flags are case-insensitive
            low = pa.array(rng.random(len(r)) < 0.03)
            benefit = pc.if_else(low, pc.utf8_lower(benefit), benefit)
            office = pc.if_else(low, pc.utf8_lower(office), office)
            lp = pc.if_else(low, pc.utf8_lower(lp), lp)
        end = v["end"][r]
        return pa.table({
            "claim_id": self.ex.claim_ids.take(pa.array(v["row"][r])),
            "nino": nino_array(self.ninos, v["person"][r], rng),
            "benefit_code": benefit,
            "office_code": office,
            "claim_start_date": date_array(v["start"][r]),
            "claim_end_date": date_array(np.where(end >= 0, end, 0), null=end < 0),
            "end_reason_code": str_array(v["reason"][r]),
            "lone_parent": lp,
            "disabled": dis,
        })

    def _customers(self, spec, rng):
        v = self.ex.customers
        r = self._rows("customers", spec.ext_date, rng)
        area = v["area"][r]
        dod = v["dod"][r]
        return pa.table({
            "nino": nino_array(self.ninos, v["person"][r], rng),
            "date_of_birth": date_array(v["dob"][r], null=v["dob_null"][r]),
            "sex": str_array(v["sex"][r]),
            "date_of_death": date_array(np.where(dod >= 0, dod, 0), null=dod < 0),
            "area_code": str_array(np.where(area >= 0, self.org.area_code[np.maximum(area, 0)], None)),
        })

    def _tax_employments(self, spec, rng):
        v = self.ex.employments
        r = self._rows("tax_employments", spec.ext_date, rng)
        end = v["end"][r]
        return pa.table({
            "nino": nino_array(self.ninos, v["person"][r], rng),
            "paye_ref": str_array(self.ex.paye_refs[v["paye"][r]]),
            "start_date": date_array(v["start"][r]),
            "end_date": date_array(np.where(end >= 0, end, 0), null=end < 0),
            "form": str_array(v["form"][r]),
            "received_date": date_array(v["received"][r]),
        })

    def _programme_starts(self, spec, rng):
        v = self.ex.programmes
        r = self._rows("programme_starts", spec.ext_date, rng)
        return pa.table({
            "nino": nino_array(self.ninos, v["person"][r], rng),
            "programme_code": str_array(v["code"][r]),
            "start_date": date_array(v["start"][r]),
            "office_code": self._office_codes(v["office"][r]),
        })

    def _offices(self, spec, rng):
        org = self.org
        n = org.n_offices
        # historic opening dates (deterministic from the office index)
        vf = np.where(np.arange(n) % 5 == 0, _d("2006-10-02"), _d("2002-04-01")).astype(np.int64)
        vf = np.minimum(vf, self.T0 - 1)
        dist = org.district.copy()
        vt = np.full(n, -1, dtype=np.int64)
        rows_extra = []
        first = int(self.ex.ext_dates[0])
        # the move is known from the snapshot delivered the month before it
        if self.move_date is not None and spec.ext_date >= self.move_date - 1:
            vt[org.mover] = self.move_date - 1
            rows_extra.append(org.mover)
        code = list(org.office_code) + [org.office_code[o] for o in rows_extra]
        name = list(org.office_name) + [org.office_name[o] for o in rows_extra]
        rep = list(org.reporting_office) + [org.reporting_office[o] for o in rows_extra]
        d = list(dist) + [org.mover_to for _ in rows_extra]
        vfrom = list(vf) + [self.move_date for _ in rows_extra]
        vto = list(vt) + [-1 for _ in rows_extra]
        d = np.array(d)
        vto = np.array(vto)
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
        vf = [_d("2004-04-01")] * len(dis)
        vt = [-1] * len(dis)
        # two areas that used to be listed, long before the period
        former = np.flatnonzero(~org.area_disadvantaged)[:2]
        for a in former:
            codes.append(org.area_code[a])
            names.append(org.area_name[a])
            vf.append(_d("2001-04-01"))
            vt.append(_d("2004-03-31"))
        if self.area_change_date is not None and spec.ext_date != int(self.ex.ext_dates[0]):
            cd = self.area_change_date
            # some areas leave the list, some join it
            for j, a in enumerate(dis[: max(1, len(dis) // 20)]):
                vt[j] = cd - 1
            new = np.flatnonzero(~org.area_disadvantaged)[2: 2 + max(1, len(dis) // 20)]
            for a in new:
                codes.append(org.area_code[a])
                names.append(org.area_name[a])
                vf.append(cd)
                vt.append(-1)
        vt_a = np.array(vt, dtype=np.int64)
        return pa.table({
            "area_code": str_array(np.array(codes, dtype=object)),
            "area_name": str_array(np.array(names, dtype=object)),
            "valid_from": date_array(np.array(vf, dtype=np.int64)),
            "valid_to": date_array(np.where(vt_a >= 0, vt_a, 0), null=vt_a < 0),
        })

    def _opte_targets(self, spec, rng):
        t = self.targets
        # delivered before the year starts: a file dated E holds the years starting by E + 1 day
        E = spec.ext_date
        e = np.datetime64(int(E) + 1, "D")
        y = int(e.astype("datetime64[Y]").astype(np.int64)) + 1970
        m = int((e.astype("datetime64[M]") - e.astype("datetime64[Y]").astype("datetime64[M]")).astype(np.int64)) + 1
        fy_now = y if m >= 4 else y - 1
        t = t[t["financial_year"] <= fy_now]
        return pa.table({
            "financial_year": pa.array(t["financial_year"].to_numpy(np.int64)),
            "district_code": str_array(t["district_code"].to_numpy(dtype=object)),
            "opte_target": pa.array(t["opte_target"].to_numpy(np.int64)),
        })


def _d(s: str) -> int:
    return int((np.datetime64(s, "D") - EPOCH).astype(np.int64))


def _write_bad_files(out: Path, ex: Extracts, specs: list[FileSpec], rng: np.random.Generator,
                     fresh: list[str]) -> list[dict]:
    """Files that landing must reject whole (each with exactly one problem)."""
    import gzip
    M = len(ex.ext_dates)
    mid = int(ex.ext_dates[M // 2 - 1]) + 15 if M >= 2 else int(ex.ext_dates[0]) - 15
    ymd = iso(mid).replace("-", "")
    bad = []

    def put(rel: str, data: bytes, problem: str):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        bad.append({"file": rel, "problem": problem, "bytes": len(data)})

    nino = fresh[0] if fresh else "AB123456C"
    d1, d2 = iso(mid - 40), iso(mid - 10)
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


def _pa_str(series: pd.Series) -> pa.Array:
    return pa.array(series, type=pa.string(), from_pandas=True)


def _data_stats(ex: Extracts, T0: int, T1: int) -> dict:
    """Figures of the delivered data for the summary: JSA end reasons and cohort off-flow shares."""
    import pyarrow.compute as pc
    fcl = ex.final_claims
    jsa = fcl.filter(pc.equal(fcl["benefit_code"], "JSA"))
    closed_jsa_versions = (ex.claims["benefit"] == 0) & (ex.claims["end"] >= 0)
    er = (pd.Series(ex.claims["reason"][closed_jsa_versions], dtype=object).fillna("(null)")
          .value_counts(normalize=True).round(4).head(8).to_dict())
    return {"jsa_closed_claims": int(jsa.num_rows - jsa["end"].null_count),
            "jsa_end_reason_shares": er,
            "jsa_cohort_offflow_shares": jsa_cohort_shares(jsa, T1, T0)}


def _write_truth(truth_dir: Path, truth: pd.DataFrame, stats: dict, org: Organisation, counts: dict, bad: list,
                 targets: pd.DataFrame, meta: dict, T0: int, T1: int) -> None:
    t = truth
    jsd = t["job_start_date"]
    table = pa.table({
        "claim_id": _pa_str(t["claim_id"]),
        "benefit_code": _pa_str(t["benefit_code"]),
        "office_code": _pa_str(t["office_code"]),
        "district_code": _pa_str(t["district_code"]),
        "offflow_date": date_array(t["offflow_date"].to_numpy(np.int64)),
        "planted_reason": _pa_str(t["exclusion_reason"]),
        "planted_job_start": pa.array(t["is_job_outcome"].to_numpy(bool)),
        "job_start_date": date_array(jsd.fillna(0).to_numpy(np.int64), null=jsd.isna().to_numpy()),
        "customer_group": _pa_str(t["customer_group"]),
    })
    pq.write_table(table, truth_dir / "offflows.parquet", compression="zstd")

    opte = t["exclusion_reason"].isna()

    def conv(mask):
        res = {}
        for g in ("lone_parent", "sick_or_disabled", "jsa", "other"):
            m = mask & opte & (t["customer_group"] == g)
            n, j = int(m.sum()), int((m & t["is_job_outcome"]).sum())
            res[g] = {"opte_offflows": n, "with_job_outcome": j, "rate": round(j / n, 4) if n else None}
        return res

    mature = t["offflow_date"] <= T1 - 183
    reasons = t["exclusion_reason"].fillna("opte").value_counts().to_dict()
    summary = {
        "generator": meta,
        "period": {"first_day": iso(T0), "data_cutoff": iso(T1)},
        "organisation": {
            "regions": len(org.region_code), "districts": len(org.district_code), "offices": org.n_offices,
            "satellite_offices": int((org.reporting_office != org.office_code).sum()),
            "mover": {"office_code": org.office_code[org.mover],
                      "from_district": org.district_code[org.district[org.mover]],
                      "to_district": org.district_code[org.mover_to], "move_date": meta.get("move_date")},
            "areas": len(org.area_code), "disadvantaged_areas": int(org.area_disadvantaged.sum()),
        },
        "offflows": {"total": int(len(t)), "by_reason": {k: int(v) for k, v in sorted(reasons.items())},
                     "jsa_closed_claims": stats["jsa_closed_claims"]},
        "jsa_end_reason_shares": stats["jsa_end_reason_shares"],
        "conversion_by_group": conv(pd.Series(True, index=t.index)),
        "conversion_by_group_mature": conv(mature),
        "conversion_note": ("share of OPtE off-flows with a job outcome (MEASURES.md 4) by customer group; "
                            "'mature' = off-flows at least 183 days before the data cut-off"),
        "jsa_cohort_offflow_shares": stats["jsa_cohort_offflow_shares"],
        "dirty_rows": {k: int(v) for k, v in counts.items()},
        "bad_files": [{"file": b["file"], "problem": b["problem"]} for b in bad],
        "targets": {"rows": int(len(targets)), "financial_years": sorted(int(x) for x in targets["financial_year"].unique())},
    }
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
