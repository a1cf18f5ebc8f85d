"""The synthetic world: people, their benefit claims and the events around them, in numpy.

People are simulated claim spell by claim spell ("rounds"): every round gives each
person still active in the period their next spell (benefit, start, duration), truncates
it at death or State Pension age, draws how it ends (a return within a week inside the
spell, a cross-flow to another benefit, a New Deal / FND start, or an off-flow that may be
to a job notified to HMRC), what staff record as its end reason, and when the next spell
starts. All arrays are vectorised over the people of a round; dates are int days since
1970-01-01.

Every random number is keyed (synth_random): a person's k-th spell draws the same values
whatever the period's end, the chunk the person is simulated in, or the other people. So
a longer period only adds spells: nothing generated for earlier dates changes. For the
same reason nothing a spell generates is dated before the spell starts.

Planted on purpose, so that the measures have something to find (the ground truth
records each):
- the end reasons staff record: for a leaver into work `FW`/`IW` only with probability
  `PROXY_JOB_P`, `FTS`/`NK` absorbing the rest (RR660's "worst case" real-time proxy);
  `proxy_p` of each claim is the probability that its end reason is `FW` or `IW`;
- office outliers (synth_org.plant_outliers): more cross-flows, more or fewer New Deal
  starts, more closures recorded as failed to sign, in a few reporting offices;
- returns to benefit: after an off-flow that is potentially to employment, the next claim
  starts within 13 / 26 weeks with the probabilities of `RETURN_RATES`; `back_p13` and
  `back_p26` of each such claim are those probabilities, reduced where death or State
  Pension age would stop the claim.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ingest.synth_org import Organisation
from ingest.synth_random import MAX_ROUND, PERSON_ROUND, Keyed, spell_key
from ingest.synth_rules import day, state_pension_age_date

log = logging.getLogger("opte.synth")

BENEFITS = ("JSA", "ESA", "IB", "SDA", "IS", "CA", "PC")
JSA, ESA, IB, SDA, IS, CA, PC = range(7)
ESA_START = day("2008-10-27")
LONE_PARENT_JSA_FROM = day("2008-11-24")
FND_START = day("2009-10-05")
NEVER = np.int64(1) << 40

# person types
T_JSA, T_SICK, T_LP, T_CARER, T_OTHER, T_NONE = range(6)
TYPE_P = np.array([0.60, 0.20, 0.10, 0.03, 0.02, 0.05])
STOCK_P = np.array([0.42, 0.72, 0.62, 0.70, 0.50, 0.0])
GAP_MEAN = np.array([200.0, 420.0, 450.0, 600.0, 500.0, 1.0])
DEATH_HAZARD = np.array([0.004, 0.02, 0.002, 0.005, 0.005, 0.003])  # per year

# spell duration distributions: CDF knots (days, F)
DURATION = {
    JSA: ([1, 14, 28, 56, 91, 182, 364, 728, 1460, 3650],
          [0, .08, .21, .41, .555, .775, .897, .97, .995, 1]),
    ESA: ([1, 30, 91, 182, 364, 728, 1825, 5475], [0, .15, .40, .55, .65, .75, .90, 1]),
    IB: ([1, 30, 91, 182, 364, 728, 1825, 5475], [0, .10, .30, .45, .58, .70, .88, 1]),
    SDA: ([1, 3650, 10950], [0, .3, 1]),
    IS: ([1, 91, 182, 364, 730, 1825, 5475], [0, .15, .25, .40, .60, .85, 1]),
    CA: ([1, 182, 730, 3650, 7300], [0, .2, .5, .9, 1]),
    PC: ([7300, 7301], [0, 1]),
}
SPLIT_P = {JSA: (0.13, 0.04), ESA: (0.04, 0.0), IS: (0.03, 0.0)}  # IB: closed to new claims
CROSS_P = np.array([0.08, 0.30, 0.30, 0.20, 0.25, 0.30, 0.0])
# job probability for an OPtE-type end, by customer group: lone parent, sick, JSA, other
JOB_P = {"lp": 0.76, "sick": 0.375, "jsa": 0.62, "other": 0.42}
# offset of the HMRC employment start from the off-flow date: (low, high, weight)
JOB_OFFSETS = [(0, 7, 0.55), (-14, -1, 0.13), (8, 91, 0.22), (92, 200, 0.07), (-60, -15, 0.03)]

# outcome codes
O_OPTE, O_RETURN, O_CROSS, O_PROG, O_DIED, O_RETIRED = range(6)

# End reasons staff record. A leaver into work (HMRC start) gets FW/IW with probability
# PROXY_JOB_P; failed to sign and not known absorb the rest (the proxy's undercount).
END_REASONS_JOB = (["FW", "IW", "NK", "FTS"], [0.73, 0.06, 0.08, 0.13])
END_REASONS_NOJOB = (["FW", "FTS", "NK", "AB", "FTE", "PR", "CC", "AT"],
                     [0.13, 0.57, 0.15, 0.03, 0.04, 0.02, 0.04, 0.02])
END_REASONS_RETURN = (["FTS", "NK", "FW", "CC"], [0.55, 0.2, 0.15, 0.10])
PROXY_REASONS = ("FW", "IW")
UNKNOWN_END_REASONS = ["OTH", "UNK", "99"]
UNKNOWN_REASON_P, MISSING_REASON_P = 0.004, 0.004
NDYP_OPTIONS = (["NDYP_EMP", "NDYP_FTET", "NDYP_VS", "NDYP_ETF"], [0.4, 0.3, 0.15, 0.15])
UNKNOWN_PROGRAMMES = ["NDYP_GW", "ESF_PROV", "WNP", "PATHWAYS"]


def _proxy_share(names_probs) -> float:
    names, p = names_probs
    return float(sum(q for n, q in zip(names, p) if n in PROXY_REASONS) / sum(p))


PROXY_JOB_P = _proxy_share(END_REASONS_JOB)        # 0.79
PROXY_NOJOB_P = _proxy_share(END_REASONS_NOJOB)    # 0.13
PROXY_RETURN_P = _proxy_share(END_REASONS_RETURN)  # 0.15

# Returns to benefit after an off-flow potentially to employment: the next claim (any
# in-scope benefit) starts within 13 weeks with probability r13, within 26 weeks with r26
# (uniformly over days 15-91 and 92-182: a claim within 14 days would make the off-flow a
# return or a cross-flow), else after 182 days + Exp(GAP_MEAN). Keyed by (JSA?, job?).
# Hansard, 12 July 2004, col. 951W: 35.4 % of people leaving JSA on finding work
# (March 2002 to February 2003) made a new JSA claim within six months.
RETURN_RATES = {(True, True): (0.20, 0.36), (True, False): (0.28, 0.44),
                (False, True): (0.09, 0.17), (False, False): (0.14, 0.25)}
RETURN_MIN_GAP = 15


@dataclass
class Plants:
    """Per-office multipliers of the planted outliers (1 / 0 = the national rates)."""
    cross_mult: np.ndarray   # x the cross-flow probability of a spell end
    prog_mult: np.ndarray    # x the New Deal / FND start probability
    fts_p: np.ndarray        # probability that an OPtE-type end is recorded FTS whatever happened

    @classmethod
    def none(cls, n_offices: int) -> "Plants":
        return cls(np.ones(n_offices), np.ones(n_offices), np.zeros(n_offices))


@dataclass
class World:
    """Everything generated, as parallel numpy arrays (dates: int days; person: chunk-local index)."""
    T0: int
    T1: int
    people: dict = field(default_factory=dict)      # one entry per person
    claims: dict = field(default_factory=dict)      # one entry per claim
    employments: dict = field(default_factory=dict)  # one entry per employment
    programmes: dict = field(default_factory=dict)   # one entry per programme start


class _Acc:
    """Accumulates chunks of parallel arrays."""

    def __init__(self, names):
        self.parts = {n: [] for n in names}

    def add(self, **cols):
        n = None
        for k, v in cols.items():
            v = np.asarray(v)
            n = len(v) if v.ndim else n
        for k, v in cols.items():
            v = np.asarray(v)
            self.parts[k].append(v if v.ndim else np.full(n, v))

    def result(self):
        return {k: (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)) for k, parts in self.parts.items()}


def gap_cdf(x: np.ndarray, r13: np.ndarray, r26: np.ndarray, tail_mean: np.ndarray) -> np.ndarray:
    """P(gap <= x days) for the gap to the next claim after an OPtE-type off-flow (integer gaps)."""
    x = np.asarray(x, dtype=np.float64)
    lo = r13 * (x - (RETURN_MIN_GAP - 1)) / (91 - RETURN_MIN_GAP + 1)
    mid = r13 + (r26 - r13) * (x - 91) / 91
    tail = r26 + (1 - r26) * (1 - np.exp(-(x - 182) / tail_mean))
    return np.where(x < RETURN_MIN_GAP, 0.0, np.where(x <= 91, lo, np.where(x <= 182, mid, tail)))


def _inverse_cdf(u: np.ndarray, benefit: int) -> np.ndarray:
    xs, fs = DURATION[benefit]
    return np.maximum(1, np.rint(np.interp(u, fs, xs))).astype(np.int64)


def _length_biased(u: np.ndarray, benefit: int) -> np.ndarray:
    xs, fs = DURATION[benefit]
    grid = np.arange(1, xs[-1] + 1)
    cdf = np.interp(grid, xs, fs)
    pdf = np.diff(np.concatenate([[0.0], cdf]))
    w = np.cumsum(pdf * grid)
    w /= w[-1]
    return grid[np.minimum(np.searchsorted(w, u), len(grid) - 1)].astype(np.int64)


def _mixture_offsets(kr: Keyed, key, s1, s2):
    comp = kr.choice(key, s1, [c[2] for c in JOB_OFFSETS])
    lo = np.array([c[0] for c in JOB_OFFSETS])[comp]
    hi = np.array([c[1] for c in JOB_OFFSETS])[comp]
    return kr.integers(key, s2, lo, hi + 1)


def _make_people(kr: Keyed, gid: np.ndarray, org: Organisation, T0: int) -> dict:
    key = spell_key(gid, PERSON_ROUND)
    n = len(gid)
    ptype = kr.choice(key, 1, TYPE_P)
    u = kr.uniform(key, 2)
    female = np.where(ptype == T_LP, u < 0.9, np.where(ptype == T_SICK, u < 0.42, u < 0.45))
    comp = kr.uniform(key, 3)
    a = kr.uniform(key, 4)
    age = np.where(comp < 0.28, 17 + 8 * a, np.where(comp < 0.85, 25 + 32 * a, 57 + 8.5 * a))
    age = np.where(ptype == T_LP, 18 + 32 * kr.uniform(key, 5), age)
    dob = (T0 - age * 365.25).astype(np.int64)
    sex = np.where(female, "F", "M").astype(object)
    spa = state_pension_age_date(dob, sex)
    late = spa <= T0 + 30  # already past State Pension age: make them younger
    dob[late] = (T0 - (22 + 30 * kr.uniform(key[late], 6)) * 365.25).astype(np.int64)
    spa = state_pension_age_date(dob, sex)
    age_t0 = (T0 - dob) / 365.25
    hazard = DEATH_HAZARD[ptype] * np.where(age_t0 > 55, 3.0, 1.0)
    dod = T0 + np.floor(kr.exponential(key, 7, 365.25 / hazard)).astype(np.int64)
    lp = (ptype == T_LP) | ((ptype == T_JSA) & female & (kr.uniform(key, 8) < 0.04))
    ud = kr.uniform(key, 9)
    disabled = np.where(ptype == T_SICK, ud < 0.85, np.where(ptype == T_JSA, ud < 0.08, ud < 0.06))
    # area by office weight
    per_office = np.bincount(org.area_office, minlength=org.n_offices)
    aw = org.weight[org.area_office] / per_office[org.area_office]
    area = kr.choice(key, 10, aw)
    office = org.area_office[area]
    # on benefit at T0 (the stock), else the first claim's start
    on = kr.uniform(key, 11) < STOCK_P[ptype]
    first = np.where(on | (ptype == T_NONE), T0,
                     T0 + np.floor(kr.exponential(key, 12, GAP_MEAN[ptype])).astype(np.int64))
    return dict(gid=gid, key=key, ptype=ptype, sex=sex, dob=dob, spa=spa, dod=dod, lp=lp, disabled=disabled,
                area=area, office=office, on=on, first=first)


def simulate(kr: Keyed, gid0: int, people: int, org: Organisation, plants: Plants, T0: int, T1: int) -> World:
    """People gid0 .. gid0 + people - 1: their claims, employments and programme starts up to T1."""
    gid = np.arange(gid0, gid0 + people, dtype=np.int64)
    P = _make_people(kr, gid, org, T0)
    n = people
    ptype, dob, spa, dod = P["ptype"], P["dob"], P["spa"], P["dod"]
    rep = org.reporting_index[P["office"]]           # plants apply by reporting office
    cross_mult, prog_mult, fts_p = plants.cross_mult[rep], plants.prog_mult[rep], plants.fts_p[rep]
    claims = _Acc(["person", "benefit", "start", "end", "reason", "key", "proxy_p", "back_p13", "back_p26"])
    emps = _Acc(["person", "start", "end", "key"])
    progs = _Acc(["person", "code", "start", "key"])

    avail = np.full(n, NEVER, dtype=np.int64)
    override = np.full(n, -1, dtype=np.int64)
    min_dur = np.zeros(n, dtype=np.int64)
    rounds = np.zeros(n, dtype=np.int64)             # spells simulated so far, per person

    def default_benefit(idx, s, key):
        t = ptype[idx]
        b = np.full(len(idx), JSA)
        b[t == T_SICK] = np.where(s[t == T_SICK] >= ESA_START, ESA, IB)
        lp_jsa_p = np.where(s >= LONE_PARENT_JSA_FROM, 0.35, 0.2)
        b[t == T_LP] = np.where(kr.uniform(key, 51) < lp_jsa_p, JSA, IS)[t == T_LP]
        b[t == T_CARER] = CA
        b[t == T_OTHER] = IS
        return b

    # ---- an employment that ended shortly before a first claim (drawn with the person)
    pk = P["key"]
    prior = (~P["on"]) & (ptype != T_NONE) & (kr.uniform(pk, 13) < 0.3)
    if prior.any():
        f = P["first"][prior]
        bstart = f - kr.integers(pk[prior], 14, 60, 1500)
        bend = np.maximum(bstart + 1, f - kr.integers(pk[prior], 15, 1, 15))
        emps.add(person=np.flatnonzero(prior), start=bstart, end=bend, key=spell_key(gid[prior], 0, 3))

    # ---- round 0: the stock on benefit at T0
    idx0 = np.flatnonzero(P["on"])
    key0 = spell_key(gid[idx0], 0)
    b0 = default_benefit(idx0, np.full(len(idx0), T0), key0)
    sick0 = ptype[idx0] == T_SICK
    u = kr.uniform(key0, 53)
    b0[sick0] = IB
    b0[sick0 & (u < 0.06)] = SDA
    if T0 > ESA_START:
        b0[sick0 & (u >= 0.06) & (u < 0.06 + min(0.5, (T0 - ESA_START) / 1500))] = ESA
    D0 = np.zeros(len(idx0), dtype=np.int64)
    ub = kr.uniform(key0, 54)
    for b in range(7):
        m = b0 == b
        if m.any():
            D0[m] = _length_biased(ub[m], b)
    elapsed = np.floor(kr.uniform(key0, 55) * D0).astype(np.int64)
    s0 = T0 - elapsed
    # benefit-specific start constraints
    m = (b0 == ESA) & (s0 < ESA_START)
    s0[m] = ESA_START + np.floor(kr.uniform(key0[m], 56) * max(1, T0 - ESA_START)).astype(np.int64)
    m = (b0 == IB) & (s0 >= ESA_START)
    s0[m] = ESA_START - 1 - np.floor(kr.uniform(key0[m], 57) * 3000).astype(np.int64)
    m = b0 == SDA
    s0[m] = day("1985-01-01") + np.floor(kr.uniform(key0[m], 58) * (day("2001-04-05") - day("1985-01-01"))
                                         ).astype(np.int64)
    D0[m] = 30000
    s0 = np.maximum(s0, dob[idx0] + 16 * 366)
    s0 = np.minimum(s0, T0 - 1)
    D0 = np.maximum(D0, T0 - s0 + 1)

    # people not on benefit: their first claim
    off = np.flatnonzero(~P["on"] & (ptype != T_NONE))
    avail[off] = P["first"][off]

    def spells(idx, s, b, D):
        k = len(idx)
        rnd = rounds[idx]
        if k and rnd.max() > MAX_ROUND:
            raise RuntimeError("a synthetic person has more spells than the key space allows")
        key = spell_key(gid[idx], rnd)
        rounds[idx] += 1
        e = s + D
        outcome = np.full(k, O_OPTE)
        # death truncates the spell
        lag = np.where(kr.uniform(key, 1) < 0.8, kr.integers(key, 2, 0, 7), kr.integers(key, 3, 7, 61))
        died = dod[idx] < e
        e = np.where(died, np.maximum(s + 1, dod[idx] + lag), e)
        outcome[died] = O_DIED
        # State Pension age ends working-age claims (PC, CA continue)
        ret_end = np.maximum(s + 1, spa[idx] + kr.integers(key, 4, -5, 3))
        retires = (spa[idx] <= e) & (ret_end < e) & (b != PC) & (b != CA)
        e = np.where(retires, ret_end, e)
        outcome[retires] = O_RETIRED
        free = outcome == O_OPTE
        # cross-flows and programme starts (offices with planted outliers: other rates)
        cross = free & (kr.uniform(key, 5) < CROSS_P[b] * cross_mult[idx])
        outcome[cross] = O_CROSS
        age_e = (e - dob[idx]) / 365.25
        prog_p = np.where((b == JSA) & (e - s >= 182) & (age_e >= 18), 0.20,
                          np.where((b == JSA) & (age_e >= 18), 0.004, 0.0)) * prog_mult[idx]
        prog = free & ~cross & (kr.uniform(key, 6) < prog_p)
        outcome[prog] = O_PROG
        # returns within a week split the spell into claims
        p1 = np.array([SPLIT_P.get(x, (0, 0))[0] for x in range(7)])[b]
        p2 = np.array([SPLIT_P.get(x, (0, 0))[1] for x in range(7)])[b]
        u = kr.uniform(key, 7)
        nbreak = np.where(u < p2, 2, np.where(u < p1, 1, 0))
        L = e - s
        t1 = 1 + np.floor(kr.uniform(key, 8) * np.maximum(L - 2, 1)).astype(np.int64)
        t2 = 1 + np.floor(kr.uniform(key, 9) * np.maximum(L - 2, 1)).astype(np.int64)
        t1, t2 = np.minimum(t1, t2), np.maximum(t1, t2)
        g1, g2 = kr.integers(key, 10, 0, 8), kr.integers(key, 11, 0, 8)
        ok1 = (nbreak >= 1) & (t1 + g1 + 1 <= (np.where(nbreak == 2, t2, L)))
        ok2 = ok1 & (nbreak == 2) & (t2 + g2 + 1 <= L) & (t2 > t1 + g1 + 1)
        # claim pieces: [s, s+t1] (return), [s+t1+g1, s+t2] (return), last piece to e
        last_start = np.where(ok2, s + t2 + g2, np.where(ok1, s + t1 + g1, s))
        for w, ps, pe, site, stream in ((ok1, s, s + t1, 8, 12), (ok2, s + t1 + g1, s + t2, 9, 13)):
            if w.any():
                nw = int(w.sum())
                claims.add(person=idx[w], benefit=b[w], start=ps[w], end=pe[w],
                           reason=kr.pick(key[w], stream, END_REASONS_RETURN), key=key[w] | np.uint64(site),
                           proxy_p=np.full(nw, PROXY_RETURN_P), back_p13=np.full(nw, np.nan),
                           back_p26=np.full(nw, np.nan))
        # end reasons for the spell's last claim
        reason = np.empty(k, dtype=object)
        proxy_p = np.zeros(k)
        m = outcome == O_DIED
        reason[m] = np.where(kr.uniform(key[m], 14) < 0.9, "DE", "NK")
        m = outcome == O_RETIRED
        reason[m] = np.where(kr.uniform(key[m], 15) < 0.85, "RET", "CC")
        m = outcome == O_PROG
        reason[m] = kr.pick(key[m], 16, (["AT", "GST", "NK"], [0.4, 0.4, 0.2]))
        # destination of cross-flows
        dest = np.full(k, -1)
        ci = np.flatnonzero(cross)
        if len(ci):
            male60 = (P["sex"][idx[ci]] == "M") & (age_e[ci] >= 60)
            r = kr.uniform(key[ci], 17)
            src = b[ci]
            sick_dest = np.where(e[ci] >= ESA_START, ESA, IB)
            d_jsa = np.where(r < 0.5, sick_dest, np.where(r < 0.7, IS, np.where(r < 0.9, CA, PC)))
            d_sick = np.where(r < 0.6, JSA, np.where(r < 0.8, IS, np.where(r < 0.9, CA, PC)))
            d_is = np.where(r < 0.5, JSA, np.where(r < 0.8, sick_dest, CA))
            d_ca = np.where(r < 0.5, JSA, np.where(r < 0.8, IS, PC))
            d = np.select([src == JSA, np.isin(src, [ESA, IB, SDA]), src == IS, src == CA],
                          [d_jsa, d_sick, d_is, d_ca], JSA)
            d = np.where((d == PC) & ~male60, np.where(src == JSA, sick_dest, JSA), d)
            d = np.where(d == src, CA, d)
            dest[ci] = d
            code = np.where(np.isin(d, [ESA, IB, SDA]), "CIB", np.where(d == IS, "CIS", "COB"))
            reason[ci] = np.where(kr.uniform(key[ci], 18) < 0.8, code, "NK")
        # jobs for OPtE-type ends of in-scope claims
        free = outcome == O_OPTE
        lp = P["lp"][idx]
        grp_p = np.where(lp, JOB_P["lp"], np.where(np.isin(b, [ESA, IB, SDA]), JOB_P["sick"],
                                                   np.where(b == JSA, JOB_P["jsa"], JOB_P["other"])))
        job = free & (b <= IS) & (kr.uniform(key, 19) < grp_p)
        reason[job] = kr.pick(key[job], 20, END_REASONS_JOB)
        nj = free & ~job
        reason[nj] = kr.pick(key[nj], 21, END_REASONS_NOJOB)
        proxy_p[job], proxy_p[nj] = PROXY_JOB_P, PROXY_NOJOB_P
        # planted: an office that closes claims as "failed to sign" whatever happened
        fts = free & (kr.uniform(key, 50) < fts_p[idx])
        reason[fts] = "FTS"
        proxy_p[free] *= 1 - fts_p[idx][free]
        # a few unknown or missing codes on closed claims
        u = kr.uniform(key, 22)
        unk = u < UNKNOWN_REASON_P
        reason[unk] = np.asarray(UNKNOWN_END_REASONS, dtype=object)[kr.integers(key[unk], 23, 0, 3)]
        reason[(u >= UNKNOWN_REASON_P) & (u < UNKNOWN_REASON_P + MISSING_REASON_P)] = None
        proxy_p *= 1 - UNKNOWN_REASON_P - MISSING_REASON_P

        # next state
        nxt = e + np.maximum(15, np.floor(kr.exponential(key, 24, GAP_MEAN[ptype[idx]]))).astype(np.int64)
        # planted returns to benefit after an OPtE-type end of an in-scope claim
        back_p13 = np.full(k, np.nan)
        back_p26 = np.full(k, np.nan)
        ret = free & (b <= IS)
        if ret.any():
            ri = np.flatnonzero(ret)
            r13 = np.empty(len(ri))
            r26 = np.empty(len(ri))
            for (is_jsa, has_job), (a13, a26) in RETURN_RATES.items():
                mm = ((b[ri] == JSA) == is_jsa) & (job[ri] == has_job)
                r13[mm], r26[mm] = a13, a26
            tail = GAP_MEAN[ptype[idx[ri]]]
            ug = kr.uniform(key[ri], 25)
            uw = kr.uniform(key[ri], 26)
            gap = np.where(ug < r13, RETURN_MIN_GAP + np.floor(uw * (92 - RETURN_MIN_GAP)),
                           np.where(ug < r26, 92 + np.floor(uw * 91),
                                    183 + np.floor(kr.exponential(key[ri], 24, tail)))).astype(np.int64)
            nxt[ri] = e[ri] + gap
            # the next claim happens only before death and 14 days before State Pension age
            room = np.minimum(dod[idx[ri]], spa[idx[ri]] - 14) - e[ri] - 1
            back_p13[ri] = gap_cdf(np.minimum(91, room), r13, r26, tail)
            back_p26[ri] = gap_cdf(np.minimum(182, room), r13, r26, tail)
        back_p13[(outcome == O_DIED) | (outcome == O_RETIRED)] = 0.0   # no in-scope claim ever follows
        back_p26[(outcome == O_DIED) | (outcome == O_RETIRED)] = 0.0
        ov = np.full(k, -1)
        md = np.zeros(k, dtype=np.int64)
        # cross-flow: the other claim starts within 14 days, or (10 %) already before the end
        if len(ci):
            kc = key[ci]
            overlap = kr.uniform(kc, 27) < 0.1
            st = np.where(overlap, e[ci] - kr.integers(kc, 28, 1, 31), e[ci] + kr.integers(kc, 29, 0, 15))
            st = np.maximum(st, s[ci] + 1)
            nxt[ci] = st
            ov[ci] = dest[ci]
            md[ci] = np.maximum(1, e[ci] - st + 1 + kr.integers(kc, 30, 0, 31))
            # a destination claim that never happens (death, State Pension age): no cross-flow, no return
            cancel = (st >= dod[idx[ci]]) | ((st >= spa[idx[ci]] - 14) & (dest[ci] != PC))
            back_p13[ci[cancel]] = 0.0
            back_p26[ci[cancel]] = 0.0

        # programme starts that take the person off benefit (never before the spell starts)
        pi = np.flatnonzero(outcome == O_PROG)
        if len(pi):
            kp = key[pi]
            pstart = np.maximum(s[pi], e[pi] + kr.integers(kp, 31, -7, 15))
            young = age_e[pi] < 25
            code = np.where(young, kr.pick(kp, 32, NDYP_OPTIONS), "ND25_IAP").astype(object)
            fnd = (e[pi] >= FND_START) & (e[pi] - s[pi] >= 365) & (kr.uniform(kp, 33) < 0.7)
            code[fnd] = "FND"
            progs.add(person=idx[pi], code=code, start=pstart, key=kp | np.uint64(4))
            nxt[pi] = pstart + kr.integers(kp, 34, 90, 201)
            # (the off-flow is OPtE only where the programme start is missing from the data, e.g. before
            # the first extract: then the next claim comes when the programme ends, 90-200 days after it)
            room = np.minimum(dod[idx[pi]], spa[idx[pi]] - 14) - 1
            for k_weeks, arr in ((13, back_p13), (26, back_p26)):
                last = np.minimum(e[pi] + 7 * k_weeks, room)
                arr[pi] = np.clip((last - pstart - 90 + 1) / 111, 0.0, 1.0)
            emp = (code == "NDYP_EMP") & (kr.uniform(kp, 35) < 0.8)
            if emp.any():
                js = pstart[emp] + kr.integers(kp[emp], 36, 0, 8)
                ne = nxt[pi][emp]
                emps.add(person=idx[pi][emp], start=js, end=np.where(ne - 5 > js, ne - 5, -1),
                         key=kp[emp] | np.uint64(1))
        claims.add(person=idx, benefit=b, start=last_start, end=e, reason=reason, key=key | np.uint64(10),
                   proxy_p=proxy_p, back_p13=back_p13, back_p26=back_p26)
        # HMRC job starts (never before the spell starts)
        ji = np.flatnonzero(job)
        if len(ji):
            kj = key[ji]
            js = np.maximum(s[ji], e[ji] + _mixture_offsets(kr, kj, 37, 38))
            jend = nxt[ji] - kr.integers(kj, 39, 1, 15)
            jend = np.where(jend > js, jend, -1)
            emps.add(person=idx[ji], start=js, end=jend, key=kj | np.uint64(2))
        # voluntary programmes during claims and a few unknown codes
        L = e - s
        rp = kr.uniform(key, 40)
        vol = np.where((b == IS) & lp, rp < 0.15, np.where(np.isin(b, [ESA, IB]), rp < 0.08,
                       np.where((b == JSA) & (age_e >= 50), rp < 0.08, False)))
        if vol.any():
            vi = np.flatnonzero(vol)
            vcode = np.where(b[vi] == IS, "NDLP", np.where(b[vi] == JSA, "ND50", "NDDP")).astype(object)
            progs.add(person=idx[vi], code=vcode,
                      start=s[vi] + np.floor(kr.uniform(key[vi], 41) * L[vi]).astype(np.int64),
                      key=key[vi] | np.uint64(5))
        fnd_mid = (b == JSA) & (L > 420) & (s + 365 >= FND_START) & (outcome != O_PROG) & (kr.uniform(key, 42) < 0.6)
        if fnd_mid.any():
            fi = np.flatnonzero(fnd_mid)
            progs.add(person=idx[fi], code=np.full(len(fi), "FND", dtype=object),
                      start=s[fi] + 365 + kr.integers(key[fi], 43, 0, 21), key=key[fi] | np.uint64(6))
        unk = (b <= IS) & (kr.uniform(key, 44) < 0.004)
        if unk.any():
            ui = np.flatnonzero(unk)
            progs.add(person=idx[ui], code=np.asarray(UNKNOWN_PROGRAMMES, dtype=object)[kr.integers(key[ui], 45, 0, 4)],
                      start=s[ui] + np.floor(kr.uniform(key[ui], 46) * L[ui]).astype(np.int64),
                      key=key[ui] | np.uint64(7))
        # after death nothing; after retirement perhaps Pension Credit
        done = (outcome == O_DIED) | (outcome == O_RETIRED) | (b == PC)
        ri = np.flatnonzero(outcome == O_RETIRED)
        pc = ri[kr.uniform(key[ri], 47) < 0.3]
        if len(pc):
            who = idx[pc]
            ps = np.maximum(spa[who] + kr.integers(key[pc], 48, 0, 31), e[pc] + 1)
            keep = ps < dod[who]
            if keep.any():
                who, ps, kk = who[keep], ps[keep], key[pc][keep]
                pe = np.minimum(ps + 7300, np.maximum(ps + 1, dod[who] + kr.integers(kk, 49, 0, 7)))
                nw = len(who)
                claims.add(person=who, benefit=np.full(nw, PC), start=ps, end=pe,
                           reason=np.full(nw, None, dtype=object), key=kk | np.uint64(11),
                           proxy_p=np.zeros(nw), back_p13=np.full(nw, np.nan), back_p26=np.full(nw, np.nan))
        nxt[done] = NEVER
        avail[idx] = nxt
        override[idx] = ov
        min_dur[idx] = md

    spells(idx0, s0, b0, D0)
    rnd = 0
    while True:
        act = np.flatnonzero((avail <= T1) & (avail < dod))
        key = spell_key(gid[act], rounds[act])
        bb = np.where(override[act] >= 0, override[act], default_benefit(act, avail[act], key))
        # no new working-age claims within 14 days of State Pension age (Pension Credit is fine)
        act_ok = (avail[act] < spa[act] - 14) | (bb == PC)
        avail[act[~act_ok]] = NEVER
        act, bb, key = act[act_ok], bb[act_ok], key[act_ok]
        if not len(act):
            break
        rnd += 1
        s = avail[act]
        # benefits closed to new claims
        bb = np.where((bb == IB) & (s >= ESA_START), ESA, bb)
        bb = np.where((bb == ESA) & (s < ESA_START), IB, bb)
        bb = np.where(bb == SDA, IB, bb)
        bb = np.where((bb == IB) & (s >= ESA_START), ESA, bb)
        D = np.zeros(len(act), dtype=np.int64)
        ud = kr.uniform(key, 52)
        for b in range(7):
            m = bb == b
            if m.any():
                D[m] = _inverse_cdf(ud[m], b)
        D = np.maximum(D, min_dur[act])
        avail[act] = NEVER
        spells(act, s, bb, D)
    log.debug("simulated %d people in %d rounds", n, rnd)

    return World(T0=T0, T1=T1, people=P, claims=claims.result(), employments=emps.result(),
                 programmes=progs.result())
