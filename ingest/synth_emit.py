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
    l1 = letters[code // (len(letters) * 100_000)]
    l2 = letters[(code // 100_000) % len(letters)]
    num = code % 100_000
    return (pd.Series(tax_office).astype(str).str.zfill(3) + "/" + pd.Series(l1) + pd.Series(l2)
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
    k = key[order]
    last[:-1] = k[1:] != k[:-1]
    m = np.zeros(len(key), dtype=bool)
    m[order[last]] = True
    return m


def _one_per_extract(key: np.ndarray, ext: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Mask keeping, per (key, ext), only the row with the largest seq (the latest version)."""
    order = np.lexsort((seq, ext, key))
    keep = np.ones(len(key), dtype=bool)
    k, e = key[order], ext[order]
    keep[:-1] = (k[1:] != k[:-1]) | (e[1:] != e[:-1])
    m = np.zeros(len(key), dtype=bool)
    m[order[keep]] = True
    return m


def _first_of_key(cols: list[np.ndarray], order_key: np.ndarray) -> np.ndarray:
    """Mask keeping, among rows equal in `cols`, the one with the smallest `order_key`."""
    order = np.lexsort((order_key, *reversed(cols)))
    dup = np.zeros(len(order_key), dtype=bool)
    same = np.ones(len(order) - 1, dtype=bool) if len(order) > 1 else np.zeros(0, dtype=bool)
    for c in cols:
        cs = c[order]
        same &= cs[1:] == cs[:-1]
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
        b, s = benefit[order].astype(np.int64), start[order].astype(np.int64)
        new = np.ones(n, dtype=bool)
        new[1:] = (b[1:] != b[:-1]) | (s[1:] != s[:-1])
        gstart = np.flatnonzero(new)
        gid = np.cumsum(new) - 1
        rank = np.arange(n) - gstart[gid]
        seq_sorted = self.counters[b, s] + rank
        np.add.at(self.counters, (b[gstart], s[gstart]), np.diff(np.append(gstart, n)))
        if seq_sorted.max() >= 100_000:
            raise ValueError("more than 99,999 synthetic claims to one benefit start on one day")
        seq = np.empty(n, dtype=np.int64)
        seq[order] = seq_sorted
        prefix = pc.take(pa.array(list(CLAIM_PREFIX)), pa.array(benefit.astype(np.int32)))
        d = pc.utf8_lpad(pc.cast(pa.array(start.astype(np.int64)), pa.string()), 5, "0")
        q = pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()), 5, "0")
        return pc.binary_join_element_wise(prefix, d, q, "")


def _sorted_table(cols: dict, ext: np.ndarray, person: np.ndarray, key: np.ndarray) -> pa.Table:
    order = np.lexsort((key, person, ext))
    return pa.table({k: (v.take(pa.array(order)) if isinstance(v, (pa.Array, pa.ChunkedArray)) else
                         pa.array(np.asarray(v)[order] if np.asarray(v).dtype != object
                                  else np.asarray(v, dtype=object)[order],
                                  type=pa.string() if np.asarray(v).dtype == object else None))
                     for k, v in {**cols, "ext": ext.astype(np.int16)}.items()})


def office_code_strings(org: Organisation, office: np.ndarray) -> np.ndarray:
    """Office index -> code (negative indices: the unknown codes, NULL_OFFICE: null)."""
    out = np.empty(len(office), dtype=object)
    known = office >= 0
    out[known] = org.office_code[office[known]]
    unk = (office < 0) & (office > NULL_OFFICE)
    out[unk] = np.asarray(UNKNOWN_OFFICE_CODES, dtype=object)[-1 - office[unk]]
    out[office == NULL_OFFICE] = None
    return out


def build_part(kr: Keyed, world: World, org: Organisation, months: np.ndarray, paye_refs: np.ndarray,
               person_offset: int, numbers: ClaimNumbers) -> ChunkRows:
    """Row versions and final state of one chunk of people (person ids made global)."""
    T0, T1 = world.T0, world.T1
    m0 = months[0]
    last = len(months) - 1
    P = world.people
    n_people = len(P["dob"])
    n_employers = len(paye_refs)

    # ---------------- claims
    C = world.claims
    keep = (C["end"] >= T0) & (C["start"] <= T1)
    person = C["person"][keep]
    gperson = person + person_offset
    benefit = C["benefit"][keep]
    start, end = C["start"][keep], C["end"][keep]
    reason = C["reason"][keep]
    ckey = C["key"][keep]
    nc = len(person)
    office = P["office"][person].copy()
    unk = kr.uniform(ckey, 1) < 0.0005
    office[unk] = -1 - kr.integers(ckey[unk], 2, 0, len(UNKNOWN_OFFICE_CODES))
    lp = P["lp"][person]
    dis = P["disabled"][person] | ((benefit == ESA) & (kr.uniform(ckey, 3) < 0.5))
    close_lag = np.where(kr.uniform(ckey, 4) < 0.1, kr.integers(ckey, 5, 1, 26), 0)
    ext_open = np.maximum(0, month_index(start, m0))
    ext_close = month_index(end + close_lag, m0)
    closed_in = ext_close <= last
    claim_ids = numbers.assign(benefit, start, gperson, ckey)
    open_row = ext_open < ext_close
    rows = np.concatenate([np.flatnonzero(open_row), np.flatnonzero(closed_in)])
    is_closed = np.concatenate([np.zeros(open_row.sum(), bool), np.ones(closed_in.sum(), bool)])
    ext = np.where(is_closed, ext_close[rows], ext_open[rows])
    claims_v = _sorted_table(dict(
        claim_id=claim_ids.take(pa.array(rows)), person=gperson[rows].astype(np.int32),
        benefit=benefit[rows].astype(np.int8), office=office[rows].astype(np.int32),
        start=start[rows].astype(np.int32), end=np.where(is_closed, end[rows], -1).astype(np.int32),
        reason=np.where(is_closed, reason[rows], None), lp=lp[rows], dis=dis[rows]), ext, gperson[rows], ckey[rows])
    jsa_closed = is_closed & (benefit[rows] == JSA)
    er = pd.Series(reason[rows][jsa_closed], dtype=object).fillna("(null)").value_counts().to_dict()
    final_reason = np.where(closed_in, reason, None)
    final_claims = pa.table({
        "claim_id": claim_ids, "person": pa.array(gperson.astype(np.int64)),
        "benefit_code": pc.take(pa.array(list(BENEFITS)), pa.array(benefit.astype(np.int32))),
        "office": pa.array(office.astype(np.int64)),
        "office_code": pa.array(office_code_strings(org, office), type=pa.string()),
        "start": pa.array(start.astype(np.int64)),
        "end": pa.array(end.astype(np.int64), mask=~closed_in),
        "lone_parent": pc.take(pa.array(["N", "Y"]), pa.array(lp.astype(np.int32))),
        "end_reason_code": pa.array(final_reason, type=pa.string()),
        "proxy_p": pa.array(C["proxy_p"][keep]),
        "back_p13": pa.array(C["back_p13"][keep]), "back_p26": pa.array(C["back_p26"][keep]),
    })

    # ---------------- customers
    pk = spell_key(P["gid"], PERSON_ROUND)
    deliver = kr.uniform(pk, 10) >= 0.003          # a few claimants have no customer row
    new_customer = ~P["on"] & (P["ptype"] != T_NONE) & (kr.uniform(pk, 11) < 0.5)
    ext0 = np.where(new_customer, month_index(P["first"], m0), 0)
    dob_null = kr.uniform(pk, 12) < 0.005
    sex_shown = np.where(kr.uniform(pk, 13) < 0.005, None, P["sex"]).astype(object)
    dod = P["dod"]
    ext_d = month_index(np.minimum(dod + kr.integers(pk, 14, 0, 46), LAST_DAY), m0)
    ext_d = np.maximum(ext_d, ext0)
    ext_m = ext0 + 1 + np.floor(kr.exponential(pk, 15, 1200.0)).astype(np.int64)  # about 1 % move a year
    new_area = kr.integers(pk, 16, 0, len(org.area_code))
    area0 = np.where(kr.uniform(pk, 17) < 0.01, -1, P["area"])  # area codes: 1 % null
    pid = np.arange(n_people)
    ev_p = np.concatenate([pid, pid, pid])
    ev_e = np.concatenate([ext0, ext_d, ext_m])
    sel = deliver[ev_p] & (ev_e <= last)
    ev_p, ev_e = ev_p[sel], ev_e[sel]
    u = np.unique(ev_p.astype(np.int64) * 100_000 + ev_e)
    cp, ce = u // 100_000, u % 100_000
    customers_v = _sorted_table(dict(
        person=(cp + person_offset).astype(np.int32), dob=P["dob"][cp].astype(np.int32), dob_null=dob_null[cp],
        sex=sex_shown[cp], dod=np.where(ext_d[cp] <= ce, dod[cp], -1).astype(np.int32),
        area=np.where(ext_m[cp] <= ce, new_area[cp], area0[cp]).astype(np.int32)), ce, cp, np.zeros(len(cp)))
    fl = _latest(cp, ce)
    final_customers = pd.DataFrame({
        "person": (cp[fl] + person_offset).astype(np.int64),
        "dob": pd.array(np.where(dob_null[cp[fl]], 0, P["dob"][cp[fl]]), dtype="Int64"),
        "sex": sex_shown[cp[fl]],
        "dod": pd.array(np.where(ext_d[cp[fl]] <= ce[fl], dod[cp[fl]], 0), dtype="Int64"),
    })
    final_customers.loc[dob_null[cp[fl]], "dob"] = pd.NA
    final_customers.loc[~(ext_d[cp[fl]] <= ce[fl]), "dod"] = pd.NA

    # ---------------- HMRC employments
    E = world.employments
    ekey = E["key"]
    # key (person, paye_ref, start) must be unique: drop the rare clashes (keep the smallest key,
    # which belongs to the earliest spell, so a longer period never drops an earlier employment)
    employer = kr.integers(ekey, 30, 0, n_employers)
    uniq = _first_of_key([E["person"], employer, E["start"]], ekey)
    E = {k: v[uniq] for k, v in E.items()}
    ekey, employer = ekey[uniq], employer[uniq]
    ne = len(E["person"])
    es, ee = E["start"], E["end"]
    recv1 = es + _lognormal_days(kr, ekey, 31, 25, 0.9, 400)
    form1 = np.where(kr.uniform(ekey, 32) < 0.7, "P46", "P45").astype(object)
    form1[kr.uniform(ekey, 33) < 0.01] = "RTI"
    has_end = ee >= 0
    end_in_1 = has_end & (ee < recv1)
    recv2 = np.where(has_end, np.maximum(ee + _lognormal_days(kr, ekey, 34, 20, 0.8, 300), recv1 + 1), LAST_DAY)
    # versions
    v_e = np.concatenate([np.arange(ne), np.flatnonzero(has_end & ~end_in_1)])
    v_kind = np.concatenate([np.zeros(ne, np.int64), np.ones((has_end & ~end_in_1).sum(), np.int64)])
    v_recv = np.where(v_kind == 0, recv1[v_e], recv2[v_e])
    v_end = np.where(v_kind == 0, np.where(end_in_1[v_e], ee[v_e], -1), ee[v_e])
    v_form = np.where(v_kind == 0, np.where(end_in_1[v_e], "P45", form1[v_e]), "P45").astype(object)
    ok = (v_recv >= T0) & (v_recv <= T1)
    v_e, v_kind, v_recv, v_end, v_form = v_e[ok], v_kind[ok], v_recv[ok], v_end[ok], v_form[ok]
    v_ext = month_index(v_recv, m0)
    # one key (employment) per extract: keep the latest version
    k1 = _one_per_extract(v_e, v_ext, v_kind)
    v_e, v_recv, v_end, v_form, v_ext = v_e[k1], v_recv[k1], v_end[k1], v_form[k1], v_ext[k1]
    eperson = E["person"] + person_offset
    employments_v = _sorted_table(dict(
        person=eperson[v_e].astype(np.int32), paye=employer[v_e].astype(np.int32), start=es[v_e].astype(np.int32),
        end=v_end.astype(np.int32), form=v_form, received=v_recv.astype(np.int32)), v_ext, eperson[v_e], ekey[v_e])
    delivered = np.unique(v_e)
    final_employments = pa.table({"person": pa.array(eperson[delivered].astype(np.int64)),
                                  "paye_ref": pa.array(paye_refs[employer[delivered]], type=pa.string()),
                                  "start": pa.array(es[delivered].astype(np.int64))})

    # ---------------- programme starts
    G = world.programmes
    pkey = G["key"]
    rec = G["start"] + np.where(kr.uniform(pkey, 50) < 0.8, 0, kr.integers(pkey, 51, 1, 41))
    ok = (rec >= T0) & (rec <= T1) & (G["start"] >= 0) & _first_of_key([G["person"], G["code"], G["start"]], pkey)
    gp, gc, gs, pkey, rec = G["person"][ok], G["code"][ok], G["start"][ok], pkey[ok], rec[ok]
    goff = np.where(kr.uniform(pkey, 52) < 0.1, NULL_OFFICE, P["office"][gp])
    gperson_p = gp + person_offset
    programmes_v = _sorted_table(dict(person=gperson_p.astype(np.int32), code=gc.astype(object),
                                      start=gs.astype(np.int32), office=goff.astype(np.int32)),
                                 month_index(rec, m0), gperson_p, pkey)
    final_programmes = pd.DataFrame({"person": gperson_p.astype(np.int64), "programme_code": gc.astype(object),
                                     "start": gs.astype(np.int64)})
    return ChunkRows(
        versions={"benefit_claims": claims_v, "customers": customers_v, "tax_employments": employments_v,
                  "programme_starts": programmes_v},
        final_claims=final_claims, final_customers=final_customers, final_programmes=final_programmes,
        final_employments=final_employments,
        people_by_office=np.bincount(P["office"], minlength=org.n_offices), jsa_end_reasons=er)
