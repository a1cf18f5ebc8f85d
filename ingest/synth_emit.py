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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.synth_org import UNKNOWN_OFFICE_CODES, Organisation
from ingest.synth_world import BENEFITS, World

CLAIM_PREFIX = np.array(["J", "E", "B", "S", "I", "C", "P"], dtype=object)


@dataclass
class Extracts:
    """Row versions of the four incremental datasets (compact numpy columns, global person ids)."""
    T0: int
    T1: int
    ext_dates: np.ndarray            # int days: last day of each month
    months: np.ndarray               # datetime64[M]
    claims: dict                     # versions: row (claim row), person, benefit, office, start, end(-1), reason, lp, dis, ext
    customers: dict                  # versions: person, dob, dob_null, sex, dod(-1), area(-1), ext
    employments: dict                # versions: person, paye, start, end(-1), form, received, ext
    programmes: dict                 # versions: person, code, start, office(-1000 = null), ext
    final_claims: pa.Table           # per claim row: claim_id, person, benefit_code, office (int), start, end, lone_parent
    final_customers: pd.DataFrame    # person, dob, sex, dod (latest delivered version)
    final_programmes: pd.DataFrame   # person, programme_code, start
    final_employments: pa.Table      # person, paye_ref, start
    claim_ids: pa.Array              # claim_id by claim row
    paye_refs: np.ndarray            # object array by employer index


@dataclass
class _Part:
    """One chunk of people's rows before claim ids are numbered."""
    claims: dict
    customers: dict
    employments: dict
    programmes: dict
    fc: dict          # per claim row: person, benefit, office, start, end, closed, lp, tiebreak
    fcu: dict         # final customers: person, dob, dob_null, sex, dod
    fe: dict          # final employments: person, paye, start
    fp: dict          # final programmes: person, code, start


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


def _lognormal_days(rng, n, median, sigma, hi):
    return np.clip(np.rint(rng.lognormal(np.log(median), sigma, n)), 0, hi).astype(np.int64)


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


def build_part(rng: np.random.Generator, world: World, org: Organisation, months: np.ndarray,
               n_employers: int, person_offset: int, row_offset: int) -> _Part:
    """Row versions of one chunk of people (person ids offset to global ones, claim rows offset)."""
    T0, T1 = world.T0, world.T1
    m0 = months[0]
    last = len(months) - 1
    ext_dates = ((months + 1).astype("datetime64[D]") - 1).astype(np.int64)
    P = world.people
    n_people = len(P["dob"])

    # ---------------- claims
    C = world.claims
    keep = (C["end"] >= T0) & (C["start"] <= T1)
    person = C["person"][keep]
    benefit = C["benefit"][keep]
    start, end = C["start"][keep], C["end"][keep]
    reason = C["reason"][keep]
    nc = len(person)
    office = P["office"][person].copy()
    unk = rng.random(nc) < 0.0005
    office[unk] = -1 - rng.integers(0, len(UNKNOWN_OFFICE_CODES), unk.sum())
    lp = P["lp"][person]
    dis = P["disabled"][person] | ((benefit == 1) & (rng.random(nc) < 0.5))
    tiebreak = rng.random(nc)
    ext_open = np.maximum(0, month_index(start, m0))
    close_lag = np.where(rng.random(nc) < 0.1, rng.integers(1, 26, nc), 0)
    ext_close = month_index(end + close_lag, m0)
    closed_in = ext_close <= last
    open_row = ext_open < ext_close
    rows = np.concatenate([np.flatnonzero(open_row), np.flatnonzero(closed_in)])
    is_closed = np.concatenate([np.zeros(open_row.sum(), bool), np.ones(closed_in.sum(), bool)])
    claims_v = dict(
        row=(rows + row_offset).astype(np.int32), person=(person[rows] + person_offset).astype(np.int32),
        benefit=benefit[rows].astype(np.int8), office=office[rows].astype(np.int32),
        start=start[rows].astype(np.int32), end=np.where(is_closed, end[rows], -1).astype(np.int32),
        reason=np.where(is_closed, reason[rows], None), lp=lp[rows], dis=dis[rows],
        ext=np.where(is_closed, ext_close[rows], ext_open[rows]).astype(np.int16),
    )
    fc = dict(person=(person + person_offset).astype(np.int32), benefit=benefit.astype(np.int8),
              office=office.astype(np.int32), start=start.astype(np.int32), end=end.astype(np.int32),
              closed=closed_in, lp=lp, tiebreak=tiebreak)

    # ---------------- customers
    first_start = np.full(n_people, np.iinfo(np.int64).max)
    np.minimum.at(first_start, person, start)
    has_claim = first_start < np.iinfo(np.int64).max
    no_row = has_claim & (rng.random(n_people) < 0.003)
    deliver = ~no_row
    new_customer = has_claim & (first_start >= T0) & (rng.random(n_people) < 0.5)
    ext0 = np.where(new_customer, month_index(np.minimum(first_start, T1), m0), 0)
    dob_null = rng.random(n_people) < 0.005
    dob_shown = P["dob"]
    sex_shown = np.where(rng.random(n_people) < 0.005, None, P["sex"]).astype(object)
    dod = P["dod"]
    ext_d = np.where(dod <= T1, month_index(np.minimum(dod + rng.integers(0, 46, n_people), T1 + 400), m0), 10 ** 6)
    ext_d = np.maximum(ext_d, ext0)
    moves = rng.random(n_people) < 0.03
    ext_m = ext0 + 1 + np.floor(rng.random(n_people) * np.maximum(0, last - ext0)).astype(np.int64)
    moves &= ext_m <= last
    ext_m = np.where(moves, ext_m, 10 ** 6)
    new_area = rng.integers(0, len(org.area_code), n_people)
    # area codes: 1 % null
    area0 = np.where(rng.random(n_people) < 0.01, -1, P["area"])
    pid = np.arange(n_people)
    ev_p = np.concatenate([pid, pid[ext_d <= last], pid[ext_m <= last]])
    ev_e = np.concatenate([ext0, ext_d[ext_d <= last], ext_m[ext_m <= last]])
    sel = deliver[ev_p]
    ev_p, ev_e = ev_p[sel], ev_e[sel]
    u = np.unique(ev_p.astype(np.int64) * 10_000 + ev_e)
    cp, ce = u // 10_000, u % 10_000
    customers_v = dict(
        person=(cp + person_offset).astype(np.int32), dob=dob_shown[cp].astype(np.int32), dob_null=dob_null[cp],
        sex=sex_shown[cp], dod=np.where(ext_d[cp] <= ce, dod[cp], -1).astype(np.int32),
        area=np.where(ext_m[cp] <= ce, new_area[cp], area0[cp]).astype(np.int32), ext=ce.astype(np.int16),
    )
    fl = _latest(cp, ce)
    fcu = dict(person=customers_v["person"][fl], dob=customers_v["dob"][fl], dob_null=dob_null[cp[fl]],
               sex=sex_shown[cp[fl]], dod=customers_v["dod"][fl])

    # ---------------- HMRC employments
    E = world.employments
    ne = len(E["person"])
    employer = rng.integers(0, n_employers, ne)
    es, ee = E["start"], E["end"]
    recv1 = es + _lognormal_days(rng, ne, 25, 0.9, 400)
    form1 = np.where(rng.random(ne) < 0.7, "P46", "P45").astype(object)
    form1[rng.random(ne) < 0.01] = "RTI"
    has_end = ee >= 0
    end_in_1 = has_end & (ee < recv1)
    recv2 = np.where(has_end, np.maximum(ee + _lognormal_days(rng, ne, 20, 0.8, 300), recv1 + 1), 10 ** 9)
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
    v_e, v_kind, v_recv, v_end, v_form, v_ext = v_e[k1], v_kind[k1], v_recv[k1], v_end[k1], v_form[k1], v_ext[k1]
    # key (person, paye_ref, start) must be unique across employments: drop the rare clashes
    key = pd.DataFrame({"p": E["person"], "r": employer, "s": es})  # people do not cross chunks
    dup = key.duplicated().to_numpy()
    k2 = ~dup[v_e]
    v_e, v_recv, v_end, v_form, v_ext = v_e[k2], v_recv[k2], v_end[k2], v_form[k2], v_ext[k2]
    employments_v = dict(person=(E["person"][v_e] + person_offset).astype(np.int32),
                         paye=employer[v_e].astype(np.int32), start=es[v_e].astype(np.int32),
                         end=v_end.astype(np.int32), form=v_form, received=v_recv.astype(np.int32),
                         ext=v_ext.astype(np.int16))
    delivered = np.unique(v_e)
    fe = dict(person=(E["person"][delivered] + person_offset).astype(np.int32),
              paye=employer[delivered].astype(np.int32), start=es[delivered].astype(np.int32))

    # ---------------- programme starts
    G = world.programmes
    gp, gc, gs = G["person"], G["code"], G["start"]
    rec = gs + np.where(rng.random(len(gp)) < 0.8, 0, rng.integers(1, 41, len(gp)))
    ok = (rec >= T0) & (rec <= T1) & (gs >= 0)
    df = pd.DataFrame({"person": gp[ok], "code": gc[ok], "start": gs[ok], "rec": rec[ok]})
    df = df.drop_duplicates(["person", "code", "start"]).reset_index(drop=True)
    goff = P["office"][df["person"].to_numpy()].copy()
    goff[rng.random(len(df)) < 0.1] = -1000  # null office
    programmes_v = dict(person=(df["person"].to_numpy() + person_offset).astype(np.int32),
                        code=df["code"].to_numpy(dtype=object), start=df["start"].to_numpy().astype(np.int32),
                        office=goff.astype(np.int32), ext=month_index(df["rec"].to_numpy(), m0).astype(np.int16))
    fp = dict(person=programmes_v["person"], code=programmes_v["code"], start=programmes_v["start"])
    return _Part(claims=claims_v, customers=customers_v, employments=employments_v, programmes=programmes_v,
                 fc=fc, fcu=fcu, fe=fe, fp=fp)


def _cat(dicts: list[dict]) -> dict:
    """Concatenate the chunks column by column, releasing each chunk's column as it goes."""
    out = {}
    for k in list(dicts[0]):
        out[k] = np.concatenate([d[k] for d in dicts])
        for d in dicts:
            del d[k]
    return out


def merge_parts(rng: np.random.Generator, parts: list[_Part], T0: int, T1: int, months: np.ndarray,
                paye_refs: np.ndarray) -> Extracts:
    """Join the chunks; number the claims (per benefit, in order of start, ties at random)."""
    ext_dates = ((months + 1).astype("datetime64[D]") - 1).astype(np.int64)
    fc = _cat([p.fc for p in parts])
    nc = len(fc["person"])
    order = np.lexsort((fc["tiebreak"], fc["start"]))
    numbers = np.zeros(nc, dtype=np.int64)
    for b in range(len(BENEFITS)):
        idx = order[fc["benefit"][order] == b]
        numbers[idx] = (100_000_000 + int(rng.integers(0, 50_000_000)) + np.arange(len(idx)) * 3
                        + rng.integers(0, 3, len(idx)))
    b_arr = pa.array(fc["benefit"].astype(np.int32))
    claim_ids = pc.binary_join_element_wise(
        pc.take(pa.array(list(CLAIM_PREFIX)), b_arr), pc.cast(pa.array(numbers), pa.string()), "")
    final_claims = pa.table({
        "claim_id": claim_ids, "person": pa.array(fc["person"].astype(np.int64)),
        "benefit_code": pc.take(pa.array(list(BENEFITS)), b_arr),
        "office": pa.array(fc["office"].astype(np.int64)), "start": pa.array(fc["start"].astype(np.int64)),
        "end": pa.array(fc["end"].astype(np.int64), mask=~fc["closed"]),
        "lone_parent": pc.take(pa.array(["N", "Y"]), pa.array(fc["lp"].astype(np.int32))),
    })
    del fc
    fcu = _cat([p.fcu for p in parts])
    final_customers = pd.DataFrame({
        "person": fcu["person"].astype(np.int64),
        "dob": pd.array(fcu["dob"].astype(np.int64), dtype="Int64"),
        "sex": fcu["sex"],
        "dod": pd.array(fcu["dod"].astype(np.int64), dtype="Int64"),
    })
    final_customers.loc[fcu["dob_null"], "dob"] = pd.NA
    final_customers.loc[fcu["dod"] == -1, "dod"] = pd.NA
    fe = _cat([p.fe for p in parts])
    final_employments = pa.table({"person": pa.array(fe["person"].astype(np.int64)),
                                  "paye_ref": pa.array(paye_refs[fe["paye"]], type=pa.string()),
                                  "start": pa.array(fe["start"].astype(np.int64))})
    fp = _cat([p.fp for p in parts])
    final_programmes = pd.DataFrame({"person": fp["person"].astype(np.int64), "programme_code": fp["code"],
                                     "start": fp["start"].astype(np.int64)})
    return Extracts(T0=T0, T1=T1, ext_dates=ext_dates, months=months,
                    claims=_cat([p.claims for p in parts]), customers=_cat([p.customers for p in parts]),
                    employments=_cat([p.employments for p in parts]), programmes=_cat([p.programmes for p in parts]),
                    final_claims=final_claims, final_customers=final_customers,
                    final_programmes=final_programmes, final_employments=final_employments,
                    claim_ids=claim_ids, paye_refs=paye_refs)


def office_code_strings(org: Organisation, office: np.ndarray) -> np.ndarray:
    """Office index -> code (negative indices: the unknown codes, -1000: null)."""
    out = np.empty(len(office), dtype=object)
    known = office >= 0
    out[known] = org.office_code[office[known]]
    unk = (office < 0) & (office > -1000)
    out[unk] = np.asarray(UNKNOWN_OFFICE_CODES, dtype=object)[-1 - office[unk]]
    out[office == -1000] = None
    return out


__all__ = ["Extracts", "build_part", "merge_parts", "make_paye_refs", "office_code_strings", "month_index"]
