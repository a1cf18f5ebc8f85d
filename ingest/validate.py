"""Row checks of EXTRACTS.md ("Landing": reject reasons, in order), vectorised over Arrow batches.

`first_reason` gives each row the first reject reason that applies (null = passed);
`conflicting_duplicate` is decided later, over the whole file (ingest.landing).
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import nino as ninos
from ingest.contracts import (BIRTH_DATE_MIN, BIRTH_DATES, CODE, DATE, FLAG, FLAG_VALUES, INT, NINO,
                              OTHER_DATE_MIN, VALIDITY_DATES, Contract)

_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_INT_SHAPE = r"^-?[0-9]+$"
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_INT64_MAX_DIGITS = 18  # any integer of at most 18 digits fits int64


def _f(mask) -> pa.Array:
    """A mask with null read as False."""
    return pc.fill_null(mask, False)


def real_date(values: pa.Array) -> pa.Array:
    """True where the text is an ISO YYYY-MM-DD date that exists (year 0001 or later)."""
    try:  # fast path: Arrow's ISO parser is strict and checks the day of the month
        pc.cast(values, pa.date32())
        return _f(pc.and_(pc.equal(pc.binary_length(values), 10), pc.greater_equal(values, "0001-01-01")))
    except pa.ArrowInvalid:
        pass
    shaped = _f(pc.match_substring_regex(values, _DATE_SHAPE))
    safe = pc.if_else(shaped, values, "2000-01-01")
    y, m, d = (pc.cast(pc.utf8_slice_codeunits(safe, a, b), pa.int64()).to_numpy(zero_copy_only=False)
               for a, b in ((0, 4), (5, 7), (8, 10)))
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = _DAYS[np.clip(m, 1, 12) - 1] + ((m == 2) & leap)
    ok = (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= dim)
    return pc.and_(shaped, pa.array(ok))


def integer(values: pa.Array) -> pa.Array:
    """True where the text is an optional '-' and ASCII digits and fits int64."""
    shaped = _f(pc.match_substring_regex(values, _INT_SHAPE))
    digits = pc.utf8_ltrim(pc.utf8_ltrim(values, characters="-"), characters="0")
    long = _f(pc.greater(pc.utf8_length(digits), _INT64_MAX_DIGITS))
    if not pc.any(pc.and_(shaped, long)).as_py():
        return shaped
    fits = [s is None or -(2**63) <= int(s) < 2**63 if ok else False
            for s, ok in zip(values.to_pylist(), shaped.to_pylist())]
    return pc.and_(shaped, pa.array(fits))


class Checked:
    """The outcome of the row checks for one batch."""

    def __init__(self, reason: pa.Array, person_key: pa.Array | None, nino_valid: pa.Array | None):
        self.reason = reason  # string, null where the row passed
        self.person_key = person_key  # person_key where the NINO is valid, else null
        self.nino_valid = nino_valid


def first_reason(contract: Contract, table: pa.Table, extract_date: date,
                 pseudonymiser: ninos.Pseudonymiser) -> Checked:
    n = table.num_rows
    col = {c.name: table.column(c.name).combine_chunks() for c in contract.columns}
    rules: list[tuple[str, pa.Array]] = []

    def add(reason: str, masks: list[pa.Array]) -> None:
        if masks:  # null (a null value compared) counts as "does not apply"
            m = _f(masks[0])
            for other in masks[1:]:
                m = pc.or_(m, _f(other))
            rules.append((reason, m))

    add("missing_required", [pc.is_null(col[c.name]) for c in contract.columns if not c.nullable])

    person_key = nino_valid = None
    nino_cols = [c for c in contract.columns if c.kind == NINO]
    if nino_cols:
        raw = col[nino_cols[0].name]
        norm, nino_valid = ninos.normalise_and_validate(raw)
        add("invalid_nino", [pc.and_(pc.is_valid(raw), pc.invert(nino_valid))])
        person_key = pseudonymiser.keys(pc.if_else(nino_valid, norm, pa.scalar(None, pa.string())))

    dates = [c for c in contract.columns if c.kind == DATE]
    good_date = {c.name: real_date(col[c.name]) for c in dates}
    add("invalid_date", [pc.and_(pc.is_valid(col[c.name]), pc.invert(good_date[c.name])) for c in dates])

    add("invalid_number", [pc.and_(pc.is_valid(col[c.name]), pc.invert(integer(col[c.name])))
                           for c in contract.columns if c.kind == INT])

    latest = extract_date.isoformat()
    out_of_range = []
    for c in dates:
        if c.name in VALIDITY_DATES:
            continue
        low = BIRTH_DATE_MIN if c.name in BIRTH_DATES else OTHER_DATE_MIN
        v = col[c.name]
        out_of_range.append(pc.or_(pc.less(v, low), pc.greater(v, latest)))
    add("date_out_of_range", out_of_range)

    add("end_before_start", [pc.less(col[end], col[start]) for start, end in contract.end_pairs])

    def outside(kind: str, reason: str) -> list[pa.Array]:
        masks = []
        for c in contract.columns:
            allowed = FLAG_VALUES if kind == FLAG and c.kind == FLAG else (
                c.allowed if kind == CODE and c.kind == CODE and c.reject_as == reason else None)
            if allowed:
                v = col[c.name]
                masks.append(pc.and_(pc.is_valid(v),
                                     pc.invert(pc.is_in(pc.utf8_upper(v), value_set=pa.array(allowed)))))
        return masks

    add("unknown_benefit", outside(CODE, "unknown_benefit"))
    add("bad_flag", outside(FLAG, "bad_flag"))
    add("bad_code", outside(CODE, "bad_code"))

    reason = pa.nulls(n, pa.string())
    for name, mask in reversed(rules):  # the earliest rule is applied last, so it wins
        reason = pc.if_else(mask, pa.scalar(name, pa.string()), reason)
    return Checked(reason, person_key, nino_valid)
