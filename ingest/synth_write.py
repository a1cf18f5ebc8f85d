"""Writing inbox files: CSV (plain, gzipped) and Parquet, messy-but-valid values, injected bad rows, bad files.

Clean rows are written with pyarrow's CSV writer. Bad rows (`--dirty`) are rendered as
text and spliced in at random line boundaries as *additional* rows with fresh keys (or
exact copies of real lines), so the planted data and the ground truth are untouched.
Everything random comes from the generator passed in (one per file, seeded from the seed,
the dataset and the extract date), so a seed gives the same bytes, and a file's bytes do
not depend on which other files the inbox holds.
"""
from __future__ import annotations

import gzip
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

log = logging.getLogger("opte.synth")

COLUMNS: dict[str, list[str]] = {
    "benefit_claims": ["claim_id", "nino", "benefit_code", "office_code", "claim_start_date",
                       "claim_end_date", "end_reason_code", "lone_parent", "disabled"],
    "customers": ["nino", "date_of_birth", "sex", "date_of_death", "area_code"],
    "tax_employments": ["nino", "paye_ref", "start_date", "end_date", "form", "received_date"],
    "programme_starts": ["nino", "programme_code", "start_date", "office_code"],
    "offices": ["office_code", "office_name", "reporting_office_code", "district_code", "district_name",
                "region_code", "region_name", "valid_from", "valid_to"],
    "disadvantaged_areas": ["area_code", "area_name", "valid_from", "valid_to"],
    "opte_targets": ["financial_year", "district_code", "opte_target"],
}

REJECT_REASONS = ("malformed_row", "missing_required", "invalid_nino", "invalid_date", "invalid_number",
                  "date_out_of_range", "end_before_start", "unknown_benefit", "bad_flag", "bad_code",
                  "conflicting_duplicate")
EXACT_DUPLICATE = "exact_duplicate"

DIRTY_REASONS: dict[str, tuple[str, ...]] = {
    "benefit_claims": ("malformed_row", "missing_required", "invalid_nino", "invalid_date", "date_out_of_range",
                       "end_before_start", "unknown_benefit", "bad_flag", "conflicting_duplicate"),
    "customers": ("malformed_row", "missing_required", "invalid_nino", "invalid_date", "date_out_of_range",
                  "bad_code", "conflicting_duplicate"),
    "tax_employments": ("malformed_row", "missing_required", "invalid_nino", "invalid_date", "date_out_of_range",
                        "end_before_start", "bad_code", "conflicting_duplicate"),
    "programme_starts": ("malformed_row", "missing_required", "invalid_nino", "invalid_date",
                         "date_out_of_range", "conflicting_duplicate"),
    "offices": ("malformed_row", "missing_required", "invalid_date", "end_before_start", "conflicting_duplicate"),
    "disadvantaged_areas": ("malformed_row", "missing_required", "invalid_date", "end_before_start",
                            "conflicting_duplicate"),
    "opte_targets": ("malformed_row", "missing_required", "invalid_number", "conflicting_duplicate"),
}

INVALID_NINOS = ["QQ123456C", "AB123456E", "GB123456A", "DA123456B", "AO123456A", "NK654321D", "TN111111A",
                 "AB12345C", "A1234567C", "ZZ999999D", "FA123456A", "AB1234567A"]
INVALID_DATES = ["2009-02-30", "31/01/2009", "2010-13-01", "2009-04-31", "20090115", "2009-00-10"]

NBSP = "\u00a0"


def iso(d: int) -> str:
    return str(np.datetime64(int(d), "D"))


def date_array(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    a = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    return pa.array(a, type=pa.date32(), mask=null)


def str_array(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def nino_array(ninos: np.ndarray, person: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """NINOs of the people, a few written lower-case or with (no-break) spaces: landing normalises them."""
    arr = pa.array(ninos[person]).cast(pa.string())
    n = len(person)
    u = rng.random(n)
    messy = np.flatnonzero(u < 0.035)
    if len(messy):
        vals = [x.decode() for x in ninos[person[messy]]]
        kinds = u[messy]
        out = []
        for v, k in zip(vals, kinds):
            if k < 0.02:
                out.append(v.lower())
            elif k < 0.03:
                out.append(f"{v[:2]} {v[2:4]} {v[4:6]} {v[6:8]} {v[8]}")
            elif k < 0.033:
                out.append(v[:8] + NBSP + v[8])
            else:
                out.append(" " + v if k < 0.034 else v + " ")
        mask = np.zeros(n, dtype=bool)
        mask[messy] = True
        arr = pc.replace_with_mask(arr, pa.array(mask), pa.array(out, type=pa.string()))
    return arr


@dataclass
class FileSpec:
    dataset: str
    ext_date: int
    fmt: str = "csv"            # csv | csv.gz | parquet
    shuffle: bool = False
    mixed_case: bool = False
    bom: bool = False
    blank_line: bool = False
    n_rows: int = 0
    dirty: list = field(default_factory=list)   # reasons to inject

    @property
    def name(self) -> str:
        return f"{self.dataset}_{iso(self.ext_date).replace('-', '')}.{self.fmt}"


class DirtyFactory:
    """Renders bad rows with fresh keys (never a real claim, person, office, area or district)."""

    def __init__(self, rng: np.random.Generator, fresh_ninos: list[str], offices: list[str], areas: list[str],
                 districts: list[str]):
        self.rng = rng  # one factory per file: ids need only be unique within the file
        self.fresh = fresh_ninos
        self.k = 0
        self.offices, self.areas, self.districts = offices, areas, districts
        self.counter = 0

    def _nino(self) -> str:
        v = self.fresh[self.k % len(self.fresh)]
        self.k += 1
        return v

    def _n(self) -> int:
        self.counter += 1
        return self.counter

    def _pick(self, xs):
        return xs[int(self.rng.integers(len(xs)))]

    def template(self, dataset: str, extract_day: int) -> dict[str, str]:
        rng = self.rng
        if dataset == "benefit_claims":
            start = extract_day - int(rng.integers(20, 300))
            return {"claim_id": f"J9{self._n():08d}", "nino": self._nino(), "benefit_code": "JSA",
                    "office_code": self._pick(self.offices), "claim_start_date": iso(start),
                    "claim_end_date": iso(min(extract_day, start + int(rng.integers(5, 200)))), "end_reason_code": "FW",
                    "lone_parent": "N", "disabled": "N"}
        if dataset == "customers":
            return {"nino": self._nino(), "date_of_birth": iso(extract_day - int(rng.integers(6000, 20000))),
                    "sex": self._pick(["M", "F"]), "date_of_death": "", "area_code": self._pick(self.areas)}
        if dataset == "tax_employments":
            start = extract_day - int(rng.integers(30, 200))
            return {"nino": self._nino(), "paye_ref": f"999/QZ{self._n():05d}", "start_date": iso(start),
                    "end_date": "",
                    "form": "P46", "received_date": iso(min(extract_day, start + int(rng.integers(5, 25))))}
        if dataset == "programme_starts":
            return {"nino": self._nino(), "programme_code": self._pick(["NDLP", "FND", "ND25_IAP"]),
                    "start_date": iso(extract_day - int(rng.integers(0, 28))), "office_code": self._pick(self.offices)}
        if dataset == "offices":
            code = f"Q{self._n() % 1000:03d}"
            return {"office_code": code, "office_name": f"{code} Temporary Jobcentre", "reporting_office_code": code,
                    "district_code": self._pick(self.districts), "district_name": "Unassigned district",
                    "region_code": "LON", "region_name": "London",
                    "valid_from": iso(extract_day - int(rng.integers(0, 400))),
                    "valid_to": ""}
        if dataset == "disadvantaged_areas":
            return {"area_code": f"E0199{self._n() % 10000:04d}", "area_name": "Newly listed area",
                    "valid_from": iso(extract_day - int(rng.integers(0, 400))), "valid_to": ""}
        if dataset == "opte_targets":
            year = int(np.datetime64(int(extract_day), "D").astype("datetime64[Y]").astype(int)) + 1970
            return {"financial_year": str(year), "district_code": f"QD{self._n():03d}",
                    "opte_target": str(int(rng.integers(50, 5000)))}
        raise ValueError(dataset)

    def rows(self, dataset: str, reason: str, extract_day: int) -> list[dict]:
        """One bad row (two for a conflicting duplicate) failing exactly `reason` first."""
        rng = self.rng
        row = self.template(dataset, extract_day)
        if reason == "malformed_row":
            row["__malformed__"] = self._pick(["extra", "short"])
        elif reason == "missing_required":
            req = {"benefit_claims": ["claim_id", "nino", "benefit_code", "office_code", "claim_start_date",
                                      "lone_parent", "disabled"],
                   "customers": ["nino"],
                   "tax_employments": ["nino", "paye_ref", "start_date", "form", "received_date"],
                   "programme_starts": ["nino", "programme_code", "start_date"],
                   "offices": ["office_code", "office_name", "reporting_office_code", "district_code", "valid_from"],
                   "disadvantaged_areas": ["area_code", "valid_from"],
                   "opte_targets": ["financial_year", "district_code", "opte_target"]}[dataset]
            row[self._pick(req)] = ""
        elif reason == "invalid_nino":
            row["nino"] = self._pick(INVALID_NINOS)
        elif reason == "invalid_date":
            col = {"benefit_claims": "claim_start_date", "customers": "date_of_birth", "tax_employments": "start_date",
                   "programme_starts": "start_date", "offices": "valid_from",
                   "disadvantaged_areas": "valid_from"}[dataset]
            row[col] = self._pick(INVALID_DATES)
        elif reason == "invalid_number":
            if rng.random() < 0.5:
                row["opte_target"] = self._pick(["95.0", "12a", "1 200", "+-3", "ten"])
            else:
                row["financial_year"] = self._pick(["FY2009", "2009/10", "2009.0"])
        elif reason == "date_out_of_range":
            if dataset == "benefit_claims":
                if rng.random() < 0.5:
                    row["claim_start_date"], row["claim_end_date"] = "1969-12-31", ""
                else:
                    row["claim_end_date"] = iso(extract_day + int(rng.integers(1, 60)))
            elif dataset == "customers":
                if rng.random() < 0.5:
                    row["date_of_birth"] = self._pick(["1899-12-31", "1850-06-01"])
                else:
                    row["date_of_death"] = iso(extract_day + int(rng.integers(1, 60)))
            elif dataset == "tax_employments":
                row["received_date"] = iso(extract_day + int(rng.integers(1, 60)))
            else:
                row["start_date"] = iso(extract_day + int(rng.integers(1, 60)))
        elif reason == "end_before_start":
            if dataset == "benefit_claims":
                claim_start = extract_day - 100
                row["claim_start_date"] = iso(claim_start)
                row["claim_end_date"] = iso(claim_start - int(rng.integers(1, 50)))
            elif dataset == "tax_employments":
                row["end_date"] = iso(np.datetime64(row["start_date"]).astype(int) - int(rng.integers(1, 50)))
            else:
                valid_from = np.datetime64(row["valid_from"]).astype(int)
                row["valid_to"] = iso(valid_from - int(rng.integers(1, 300)))
        elif reason == "unknown_benefit":
            row["benefit_code"] = self._pick(["UC", "DLA", "HB", "JSAX"])
        elif reason == "bad_flag":
            row[self._pick(["lone_parent", "disabled"])] = self._pick(["X", "yes", "1", "Yes"])
        elif reason == "bad_code":
            if dataset == "customers":
                row["sex"] = self._pick(["X", "U", "Male", "9"])
            else:
                row["form"] = self._pick(["P60", "P11D", "P14", "P4"])
        elif reason == "conflicting_duplicate":
            duplicate = dict(row)
            change = {"benefit_claims": ("office_code", self.offices), "customers": ("area_code", self.areas),
                      "tax_employments": ("received_date", None), "programme_starts": ("office_code", self.offices),
                      "offices": ("office_name", None), "disadvantaged_areas": ("area_name", None),
                      "opte_targets": ("opte_target", None)}[dataset]
            col, pool = change
            if pool is not None:
                others = [x for x in pool if x.upper() != row[col].upper()]
                duplicate[col] = self._pick(others)
            elif col == "received_date":
                duplicate[col] = iso(np.datetime64(row[col]).astype(int) - 1)
            elif col == "opte_target":
                duplicate[col] = str(int(row[col]) + 7)
            else:
                duplicate[col] = row[col] + " (old)"
            return [row, duplicate]
        else:
            raise ValueError(reason)
        return [row]


def render(row: dict, header: list[str]) -> str:
    """One CSV line in the file's column order; a malformed row gets one field too many or too few."""
    vals = [row.get(c, "") for c in header]
    kind = row.get("__malformed__")
    if kind == "extra":
        vals = vals + ["EXTRA"]
    elif kind == "short":
        vals = vals[:-1]
    return ",".join(vals)


def write_file(path: Path, spec: FileSpec, table: pa.Table, rng: np.random.Generator,
               factory: DirtyFactory | None) -> tuple[int, int]:
    """Write one extract file. Returns (rows written incl. bad rows, bytes)."""
    cols = list(COLUMNS[spec.dataset])
    table = table.select(cols)
    if spec.shuffle:
        perm = list(rng.permutation(len(cols)))
        while len(cols) > 1 and perm == list(range(len(cols))):
            perm = list(rng.permutation(len(cols)))
        cols = [cols[i] for i in perm]
        table = table.select(cols)
    header = list(cols)
    if spec.mixed_case:
        header = ["NINO" if c == "nino" else "_".join(p.capitalize() if p not in ("id", "ref") else p.upper()
                                                        for p in c.split("_")) for c in cols]
        table = table.rename_columns(header)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_rows = table.num_rows
    if spec.fmt == "parquet":
        table = pa.table({name: pc.cast(table[name], pa.string()) for name in table.column_names})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="snappy")
        data = buf.getvalue()
        path.write_bytes(data)
        return n_rows, len(data)
    buf = io.BytesIO()
    try:
        pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="none"))
    except pa.ArrowInvalid:
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
    data = buf.getvalue()
    if spec.dirty and factory is not None:
        data, added = _inject(data, spec, cols, rng, factory)
        n_rows += added
    if spec.blank_line:
        data = data + b"\n"
    if spec.bom:
        data = b"\xef\xbb\xbf" + data
    if spec.fmt == "csv.gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
    return n_rows, len(data)


def _inject(data: bytes, spec: FileSpec, cols: list[str], rng: np.random.Generator,
            factory: DirtyFactory) -> tuple[bytes, int]:
    """Splice bad lines and exact duplicate lines into CSV bytes at random line boundaries."""
    header_end = data.index(b"\n") + 1
    body = data[header_end:]
    # line starts in the body
    nl = np.frombuffer(body, dtype=np.uint8) == 10
    ends = np.flatnonzero(nl) + 1            # positions just after each newline
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0, dtype=np.int64)
    lines: list[bytes] = []
    for reason in spec.dirty:
        if reason == EXACT_DUPLICATE:
            if len(starts):
                i = int(rng.integers(len(starts)))
                lines.append(body[starts[i]:ends[i]])
            continue
        for row in factory.rows(spec.dataset, reason, spec.ext_date):
            lines.append((render(row, cols) + "\n").encode())
    if not lines:
        return data, 0
    positions = np.sort(rng.choice(np.concatenate([[0], ends]) if len(ends) else np.array([0]), size=len(lines)))
    parts = [data[:header_end]]
    prev = 0
    for pos, line in zip(positions, lines):
        parts.append(body[prev:pos])
        parts.append(line)
        prev = int(pos)
    parts.append(body[prev:])
    return b"".join(parts), len(lines)


def plan_file_dirty(spec: FileSpec, dirty: float, rng: np.random.Generator, guarantee: bool) -> None:
    """Choose the bad rows of one file (binomial in its rows). With `guarantee` (the dataset's first
    file) also one row of every reject reason the dataset can have and an exact duplicate, so that
    every reason occurs in any inbox, whatever its period, without looking at the other files."""
    if dirty <= 0 or spec.fmt == "parquet":
        return
    opts = list(DIRTY_REASONS[spec.dataset]) + [EXACT_DUPLICATE]
    k = int(rng.binomial(spec.n_rows, dirty))
    spec.dirty = [opts[int(i)] for i in rng.integers(0, len(opts), k)]
    if guarantee:
        spec.dirty += opts
    if spec.n_rows == 0:
        spec.dirty = [r for r in spec.dirty if r != EXACT_DUPLICATE]


def count_dirty(specs: list[FileSpec]) -> dict[str, int]:
    """Bad rows by reject reason (a conflicting duplicate is two rows), and exact duplicates."""
    counts = {r: 0 for r in REJECT_REASONS}
    counts[EXACT_DUPLICATE] = 0
    for s in specs:
        for reason in s.dirty:
            counts[reason] += 2 if reason == "conflicting_duplicate" else 1
    return counts
