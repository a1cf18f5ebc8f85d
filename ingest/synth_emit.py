"""From the simulated world to extract rows: which version of which row arrives in which monthly extract.

Each incremental dataset becomes a table of *row versions*, each tagged with the index
of the monthly extract that delivers it (`ext`): a claim arrives open in the extract of
its start month (the stock in the first extract) and again closed in the extract after
its end (some closures recorded late); a customer arrives when first known and again
when a death or a move is recorded; an HMRC employment arrives when its notification is
received (late ones in later extracts) and again when the leaving is notified; a
programme start arrives when recorded. Within one extract a key appears once (the
latest version). The *final state* (latest delivered version of each key) is what the
ground truth is computed from.

Every draw is keyed (synth_random) and every delivery date is fixed by the world alone,
so a later end month only adds versions (those delivered in the new months): the
versions of earlier months do not change. People are handled in chunks; a chunk's rows
are sorted by (extract, person, key), so that a month's rows, concatenated over the
chunks in order, do not depend on the chunk size either.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.synth_org import UNKNOWN_OFFICE_CODES, Organisation
from ingest.synth_random import PERSON_ROUND, Keyed, spell_key
from ingest.synth_rules import day
from ingest.synth_world import BENEFITS, ESA, JSA, T_NONE, World

CLAIM_PREFIX = ("J", "E", "B", "S", "I", "C", "P")
LAST_DAY = day("2200-01-01")   # events after this are never delivered
NULL_OFFICE = -1000


@dataclass
class ChunkRows:
    """One chunk of people: row versions per dataset (pyarrow, sorted by ext) and the final state."""
    versions: dict            # dataset -> pa.Table with an int16 `ext` column
    final_claims: pa.Table    # claim_id, person, benefit_code, office, office_code, start, end, lone_parent,
                              # end_reason_code, proxy_p, back_p13, back_p26
    final_customers: pd.DataFrame   # person, dob, sex, dod
    final_programmes: pd.DataFrame  # person, programme_code, start
    final_employments: pa.Table     # person, paye_ref, start
    people_by_office: np.ndarray    # customers per office index (for the targets)
    jsa_end_reasons: dict           # closed JSA claim versions by end reason


def make_paye_refs(rng: np.random.Generator, n_people: int) -> np.ndarray:
    """Unique employer PAYE references like '123/AB45678' (about one employer per 20 people)."""
    n_employers = max(50, n_people // 20)
    tax_office = rng.integers(1, 999, n_employers)
    letters = np.array(list("ABCDEFGHJKLMNPRSTWXYZ"))
    code = rng.choice(len(letters) ** 2 * 100_000, size=n_employers, replace=False)  # unique refs
    letter1 = letters[code // (len(letters) * 100_000)]
    letter2 = letters[(code // 100_000) % len(letters)]
    num = code % 100_000
    return (pd.Series(tax_office).astype(str).str.zfill(3) + "/" + pd.Series(letter1) + pd.Series(letter2)
            + pd.Series(num).astype(str).str.zfill(5)).to_numpy(dtype=object)


def month_index(days: np.ndarray, first_month: np.datetime64) -> np.ndarray:
    return (np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
            - first_month).astype(np.int64)


def _lognormal_days(kr: Keyed, key, stream, median, sigma, hi):
    return np.clip(np.rint(np.exp(np.log(median) + sigma * kr.normal(key, stream))), 0, hi).astype(np.int64)


def _latest(key: np.ndarray, ext: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows that are the latest version (max ext) of their key."""
    order = np.lexsort((ext, key))
    last = np.ones(len(key), dtype=bool)
    sorted_key = key[order]
    last[:-1] = sorted_key[1:] != sorted_key[:-1]
    mask = np.zeros(len(key), dtype=bool)
    mask[order[last]] = True
    return mask


def _one_per_extract(key: np.ndarray, ext: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Mask keeping, per (key, ext), only the row with the largest seq (the latest version)."""
    order = np.lexsort((seq, ext, key))
    keep = np.ones(len(key), dtype=bool)
    sorted_key, sorted_ext = key[order], ext[order]
    keep[:-1] = (sorted_key[1:] != sorted_key[:-1]) | (sorted_ext[1:] != sorted_ext[:-1])
    mask = np.zeros(len(key), dtype=bool)
    mask[order[keep]] = True
    return mask


def _first_of_key(cols: list[np.ndarray], order_key: np.ndarray) -> np.ndarray:
    """Mask keeping, among rows equal in `cols`, the one with the smallest `order_key`."""
    order = np.lexsort((order_key, *reversed(cols)))
    dup = np.zeros(len(order_key), dtype=bool)
    same = np.ones(len(order) - 1, dtype=bool) if len(order) > 1 else np.zeros(0, dtype=bool)
    for col in cols:
        sorted_col = col[order]
        same &= sorted_col[1:] == sorted_col[:-1]
    dup[order[1:][same]] = True
    return ~dup


class ClaimNumbers:
    """Claim ids `<benefit letter><start day, 5 digits><sequence that day, 5 digits>`, numbered in
    order of (start day, person, claim) per benefit. Chunks hold increasing person ids, so
    numbering chunk after chunk gives the same ids as numbering everyone at once, and a claim
    starting later never changes an earlier claim's number."""

    def __init__(self, last_day: int):
        self.counters = np.zeros((len(BENEFITS), last_day + 2), dtype=np.int64)

    def assign(self, benefit: np.ndarray, start: np.ndarray, person: np.ndarray, key: np.ndarray) -> pa.Array:
        n = len(benefit)
        if n == 0:
            return pa.array([], type=pa.string())
        if start.min() < 0:
            raise ValueError("a synthetic claim starts before 1970")
        order = np.lexsort((key, person, start, benefit))
        sorted_benefit, sorted_start = benefit[order].astype(np.int64), start[order].astype(np.int64)
        new_day = np.ones(n, dtype=bool)
        new_day[1:] = (sorted_benefit[1:] != sorted_benefit[:-1]) | (sorted_start[1:] != sorted_start[:-1])
        day_first = np.flatnonzero(new_day)           # first claim of each (benefit, start day)
        day_group = np.cumsum(new_day) - 1
        rank = np.arange(n) - day_first[day_group]
        seq_sorted = self.counters[sorted_benefit, sorted_start] + rank
        np.add.at(self.counters, (sorted_benefit[day_first], sorted_start[day_first]),
                  np.diff(np.append(day_first, n)))
        if seq_sorted.max() >= 100_000:
            raise ValueError("more than 99,999 synthetic claims to one benefit start on one day")
        seq = np.empty(n, dtype=np.int64)
        seq[order] = seq_sorted
        prefix = pc.take(pa.array(list(CLAIM_PREFIX)), pa.array(benefit.astype(np.int32)))
        start_day = pc.utf8_lpad(pc.cast(pa.array(start.astype(np.int64)), pa.string()), 5, "0")
        sequence = pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()), 5, "0")
        return pc.binary_join_element_wise(prefix, start_day, sequence, "")


def _sorted_table(cols: dict, ext: np.ndarray, person: np.ndarray, key: np.ndarray) -> pa.Table:
    order = np.lexsort((key, person, ext))
    return pa.table({name: (values.take(pa.array(order)) if isinstance(values, (pa.Array, pa.ChunkedArray)) else
                            pa.array(np.asarray(values)[order] if np.asarray(values).dtype != object
                                     else np.asarray(values, dtype=object)[order],
                                     type=pa.string() if np.asarray(values).dtype == object else None))
                     for name, values in {**cols, "ext": ext.astype(np.int16)}.items()})


def office_code_strings(org: Organisation, office: np.ndarray) -> np.ndarray:
    """Office index -> code (negative indices: the unknown codes, NULL_OFFICE: null)."""
    out = np.empty(len(office), dtype=object)
    known = office >= 0
    out[known] = org.office_code[office[known]]
    unk = (office < 0) & (office > NULL_OFFICE)
    out[unk] = np.asarray(UNKNOWN_OFFICE_CODES, dtype=object)[-1 - office[unk]]
    out[office == NULL_OFFICE] = None
    return out


@dataclass
class _Period:
    """The period's first and last days, the first extract's month and the last extract's index."""
    start: int
    end: int
    first_month: np.datetime64
    last_extract: int


def build_part(kr: Keyed, world: World, org: Organisation, months: np.ndarray, paye_refs: np.ndarray,
               person_offset: int, numbers: ClaimNumbers) -> ChunkRows:
    """Row versions and final state of one chunk of people (person ids made global)."""
    period = _Period(start=world.period_start, end=world.period_end, first_month=months[0],
                     last_extract=len(months) - 1)
    people = world.people
    claims_v, final_claims, jsa_end_reasons = _claim_rows(kr, world, org, period, person_offset, numbers)
    customers_v, final_customers = _customer_rows(kr, people, org, period, person_offset)
    employments_v, final_employments = _employment_rows(kr, world.employments, period, paye_refs, person_offset)
    programmes_v, final_programmes = _programme_rows(kr, world.programmes, people, period, person_offset)
    return ChunkRows(
        versions={"benefit_claims": claims_v, "customers": customers_v, "tax_employments": employments_v,
                  "programme_starts": programmes_v},
        final_claims=final_claims, final_customers=final_customers, final_programmes=final_programmes,
        final_employments=final_employments,
        people_by_office=np.bincount(people["office"], minlength=org.n_offices), jsa_end_reasons=jsa_end_reasons)


def _claim_rows(kr: Keyed, world: World, org: Organisation, period: _Period, person_offset: int,
                numbers: ClaimNumbers):
    """Claim row versions (open in the start month's extract, closed in the one after the end), the
    final claims, and the closed JSA claim versions by end reason."""
    people, claims = world.people, world.claims
    first_month, last_extract = period.first_month, period.last_extract
    keep = (claims["end"] >= period.start) & (claims["start"] <= period.end)
    person = claims["person"][keep]
    gperson = person + person_offset
    benefit = claims["benefit"][keep]
    start, end = claims["start"][keep], claims["end"][keep]
    reason = claims["reason"][keep]
    claim_key = claims["key"][keep]
    office = people["office"][person].copy()
    unknown_office = kr.uniform(claim_key, 1) < 0.0005
    office[unknown_office] = -1 - kr.integers(claim_key[unknown_office], 2, 0, len(UNKNOWN_OFFICE_CODES))
    lp = people["lp"][person]
    disabled = people["disabled"][person] | ((benefit == ESA) & (kr.uniform(claim_key, 3) < 0.5))
    close_lag = np.where(kr.uniform(claim_key, 4) < 0.1, kr.integers(claim_key, 5, 1, 26), 0)
    ext_open = np.maximum(0, month_index(start, first_month))
    ext_close = month_index(end + close_lag, first_month)
    closed_in = ext_close <= last_extract
    claim_ids = numbers.assign(benefit, start, gperson, claim_key)
    open_row = ext_open < ext_close
    rows = np.concatenate([np.flatnonzero(open_row), np.flatnonzero(closed_in)])
    is_closed = np.concatenate([np.zeros(open_row.sum(), bool), np.ones(closed_in.sum(), bool)])
    ext = np.where(is_closed, ext_close[rows], ext_open[rows])
    versions = _sorted_table(dict(
        claim_id=claim_ids.take(pa.array(rows)), person=gperson[rows].astype(np.int32),
        benefit=benefit[rows].astype(np.int8), office=office[rows].astype(np.int32),
        start=start[rows].astype(np.int32), end=np.where(is_closed, end[rows], -1).astype(np.int32),
        reason=np.where(is_closed, reason[rows], None), lp=lp[rows], dis=disabled[rows]),
        ext, gperson[rows], claim_key[rows])
    jsa_closed = is_closed & (benefit[rows] == JSA)
    jsa_end_reasons = pd.Series(reason[rows][jsa_closed], dtype=object).fillna("(null)").value_counts().to_dict()
    final_reason = np.where(closed_in, reason, None)
    final = pa.table({
        "claim_id": claim_ids, "person": pa.array(gperson.astype(np.int64)),
        "benefit_code": pc.take(pa.array(list(BENEFITS)), pa.array(benefit.astype(np.int32))),
        "office": pa.array(office.astype(np.int64)),
        "office_code": pa.array(office_code_strings(org, office), type=pa.string()),
        "start": pa.array(start.astype(np.int64)),
        "end": pa.array(end.astype(np.int64), mask=~closed_in),
        "lone_parent": pc.take(pa.array(["N", "Y"]), pa.array(lp.astype(np.int32))),
        "end_reason_code": pa.array(final_reason, type=pa.string()),
        "proxy_p": pa.array(claims["proxy_p"][keep]),
        "back_p13": pa.array(claims["back_p13"][keep]), "back_p26": pa.array(claims["back_p26"][keep]),
    })
    return versions, final, jsa_end_reasons


def _customer_rows(kr: Keyed, people: dict, org: Organisation, period: _Period, person_offset: int):
    """Customer row versions (when first known, and again when a death or a move is recorded), and the
    final customers."""
    first_month, last_extract = period.first_month, period.last_extract
    person_key = spell_key(people["gid"], PERSON_ROUND)
    deliver = kr.uniform(person_key, 10) >= 0.003          # a few claimants have no customer row
    new_customer = ~people["on"] & (people["ptype"] != T_NONE) & (kr.uniform(person_key, 11) < 0.5)
    ext_first = np.where(new_customer, month_index(people["first"], first_month), 0)
    dob_null = kr.uniform(person_key, 12) < 0.005
    sex_shown = np.where(kr.uniform(person_key, 13) < 0.005, None, people["sex"]).astype(object)
    dod = people["dod"]
    ext_death = month_index(np.minimum(dod + kr.integers(person_key, 14, 0, 46), LAST_DAY), first_month)
    ext_death = np.maximum(ext_death, ext_first)
    # about 1 % move a year
    ext_move = ext_first + 1 + np.floor(kr.exponential(person_key, 15, 1200.0)).astype(np.int64)
    new_area = kr.integers(person_key, 16, 0, len(org.area_code))
    first_area = np.where(kr.uniform(person_key, 17) < 0.01, -1, people["area"])  # area codes: 1 % null
    local_person = np.arange(len(people["dob"]))
    event_person = np.concatenate([local_person, local_person, local_person])
    event_ext = np.concatenate([ext_first, ext_death, ext_move])
    delivered = deliver[event_person] & (event_ext <= last_extract)
    event_person, event_ext = event_person[delivered], event_ext[delivered]
    person_ext = np.unique(event_person.astype(np.int64) * 100_000 + event_ext)
    vp, ve = person_ext // 100_000, person_ext % 100_000     # each version's person and extract
    versions = _sorted_table(dict(
        person=(vp + person_offset).astype(np.int32), dob=people["dob"][vp].astype(np.int32),
        dob_null=dob_null[vp], sex=sex_shown[vp], dod=np.where(ext_death[vp] <= ve, dod[vp], -1).astype(np.int32),
        area=np.where(ext_move[vp] <= ve, new_area[vp], first_area[vp]).astype(np.int32)), ve, vp,
        np.zeros(len(vp)))
    latest = _latest(vp, ve)
    latest_person, latest_ext = vp[latest], ve[latest]
    death_known = ext_death[latest_person] <= latest_ext
    final = pd.DataFrame({
        "person": (latest_person + person_offset).astype(np.int64),
        "dob": pd.array(np.where(dob_null[latest_person], 0, people["dob"][latest_person]), dtype="Int64"),
        "sex": sex_shown[latest_person],
        "dod": pd.array(np.where(death_known, dod[latest_person], 0), dtype="Int64"),
    })
    final.loc[dob_null[latest_person], "dob"] = pd.NA
    final.loc[~death_known, "dod"] = pd.NA
    return versions, final


def _employment_rows(kr: Keyed, employments: dict, period: _Period, paye_refs: np.ndarray, person_offset: int):
    """HMRC employment row versions (when the start is notified, and again when the leaving is), and
    the final employments."""
    emp_key = employments["key"]
    # key (person, paye_ref, start) must be unique: drop the rare clashes (keep the smallest key,
    # which belongs to the earliest spell, so a longer period never drops an earlier employment)
    employer = kr.integers(emp_key, 30, 0, len(paye_refs))
    unique = _first_of_key([employments["person"], employer, employments["start"]], emp_key)
    employments = {name: values[unique] for name, values in employments.items()}
    emp_key, employer = emp_key[unique], employer[unique]
    n_employments = len(employments["person"])
    emp_start, emp_end = employments["start"], employments["end"]
    received_start = emp_start + _lognormal_days(kr, emp_key, 31, 25, 0.9, 400)
    start_form = np.where(kr.uniform(emp_key, 32) < 0.7, "P46", "P45").astype(object)
    start_form[kr.uniform(emp_key, 33) < 0.01] = "RTI"
    has_end = emp_end >= 0
    end_in_start_notice = has_end & (emp_end < received_start)
    received_end = np.where(has_end, np.maximum(emp_end + _lognormal_days(kr, emp_key, 34, 20, 0.8, 300),
                                                received_start + 1), LAST_DAY)
    # versions: 0 = the start notice, 1 = the leaving notice
    end_notice = has_end & ~end_in_start_notice
    v_emp = np.concatenate([np.arange(n_employments), np.flatnonzero(end_notice)])
    v_kind = np.concatenate([np.zeros(n_employments, np.int64), np.ones(end_notice.sum(), np.int64)])
    v_received = np.where(v_kind == 0, received_start[v_emp], received_end[v_emp])
    v_end = np.where(v_kind == 0, np.where(end_in_start_notice[v_emp], emp_end[v_emp], -1), emp_end[v_emp])
    v_form = np.where(v_kind == 0, np.where(end_in_start_notice[v_emp], "P45", start_form[v_emp]), "P45"
                      ).astype(object)
    in_period = (v_received >= period.start) & (v_received <= period.end)
    v_emp, v_kind, v_received, v_end, v_form = (v_emp[in_period], v_kind[in_period], v_received[in_period],
                                                v_end[in_period], v_form[in_period])
    v_ext = month_index(v_received, period.first_month)
    # one key (employment) per extract: keep the latest version
    latest = _one_per_extract(v_emp, v_ext, v_kind)
    v_emp, v_received, v_end, v_form, v_ext = (v_emp[latest], v_received[latest], v_end[latest], v_form[latest],
                                               v_ext[latest])
    gperson = employments["person"] + person_offset
    versions = _sorted_table(dict(
        person=gperson[v_emp].astype(np.int32), paye=employer[v_emp].astype(np.int32),
        start=emp_start[v_emp].astype(np.int32), end=v_end.astype(np.int32), form=v_form,
        received=v_received.astype(np.int32)), v_ext, gperson[v_emp], emp_key[v_emp])
    delivered = np.unique(v_emp)
    final = pa.table({"person": pa.array(gperson[delivered].astype(np.int64)),
                      "paye_ref": pa.array(paye_refs[employer[delivered]], type=pa.string()),
                      "start": pa.array(emp_start[delivered].astype(np.int64))})
    return versions, final


def _programme_rows(kr: Keyed, programmes: dict, people: dict, period: _Period, person_offset: int):
    """Programme start rows (when recorded, most on the day), and the final programme starts."""
    prog_key = programmes["key"]
    recorded = programmes["start"] + np.where(kr.uniform(prog_key, 50) < 0.8, 0, kr.integers(prog_key, 51, 1, 41))
    delivered = ((recorded >= period.start) & (recorded <= period.end) & (programmes["start"] >= 0)
                 & _first_of_key([programmes["person"], programmes["code"], programmes["start"]], prog_key))
    person, code, start = (programmes["person"][delivered], programmes["code"][delivered],
                           programmes["start"][delivered])
    prog_key, recorded = prog_key[delivered], recorded[delivered]
    office = np.where(kr.uniform(prog_key, 52) < 0.1, NULL_OFFICE, people["office"][person])
    gperson = person + person_offset
    versions = _sorted_table(dict(person=gperson.astype(np.int32), code=code.astype(object),
                                  start=start.astype(np.int32), office=office.astype(np.int32)),
                             month_index(recorded, period.first_month), gperson, prog_key)
    final = pd.DataFrame({"person": gperson.astype(np.int64), "programme_code": code.astype(object),
                          "start": start.astype(np.int64)})
    return versions, final
