"""The synthetic world: people, their benefit claims and the events around them, in numpy.

People are simulated claim spell by claim spell ("rounds"): every round gives each
person still active in the period their next spell (benefit, start, duration), truncates
it at death or State Pension age, draws how it ends (a return within a week inside the
spell, a cross-flow to another benefit, a New Deal / FND start, or an off-flow that may be
to a job notified to HMRC) and when the next spell starts. All arrays are vectorised over
the people of a round; dates are int days since 1970-01-01.

The planted events aim at the real rates (FACTS.md); what the ground truth reports is
computed afterwards from the delivered data by the MEASURES.md rules (synth_rules).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ingest.synth_org import Organisation
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

END_REASONS_JOB = (["FW", "IW", "NK", "FTS"], [0.71, 0.07, 0.09, 0.13])
END_REASONS_NOJOB = (["FW", "FTS", "NK", "AB", "FTE", "PR", "CC", "AT"],
                     [0.13, 0.53, 0.16, 0.03, 0.05, 0.02, 0.06, 0.02])
END_REASONS_RETURN = (["FTS", "NK", "FW", "CC"], [0.55, 0.2, 0.15, 0.10])
UNKNOWN_END_REASONS = ["OTH", "UNK", "99"]
NDYP_OPTIONS = (["NDYP_EMP", "NDYP_FTET", "NDYP_VS", "NDYP_ETF"], [0.4, 0.3, 0.15, 0.15])
UNKNOWN_PROGRAMMES = ["NDYP_GW", "ESF_PROV", "WNP", "PATHWAYS"]


@dataclass
class World:
    """Everything generated, as parallel numpy arrays (dates: int days)."""
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
        for k, v in cols.items():
            self.parts[k].append(np.asarray(v))

    def result(self, dtypes=None):
        out = {}
        for k, parts in self.parts.items():
            out[k] = np.concatenate(parts) if parts else np.zeros(0, dtype=(dtypes or {}).get(k, np.int64))
        return out


def _quantile(rng, benefit: int, n: int) -> np.ndarray:
    xs, fs = DURATION[benefit]
    return np.maximum(1, np.rint(np.interp(rng.random(n), fs, xs))).astype(np.int64)


def _length_biased(rng, benefit: int, n: int) -> np.ndarray:
    xs, fs = DURATION[benefit]
    grid = np.arange(1, xs[-1] + 1)
    cdf = np.interp(grid, xs, fs)
    pdf = np.diff(np.concatenate([[0.0], cdf]))
    w = np.cumsum(pdf * grid)
    w /= w[-1]
    return grid[np.minimum(np.searchsorted(w, rng.random(n)), len(grid) - 1)].astype(np.int64)


def _pick(rng, choices_probs, n):
    names, p = choices_probs
    return np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=np.asarray(p) / np.sum(p))]


def _mixture_offsets(rng, n):
    comp = rng.choice(len(JOB_OFFSETS), size=n, p=[c[2] for c in JOB_OFFSETS])
    lo = np.array([c[0] for c in JOB_OFFSETS])[comp]
    hi = np.array([c[1] for c in JOB_OFFSETS])[comp]
    return lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)


def _make_people(rng, n: int, org: Organisation, T0: int) -> dict:
    ptype = rng.choice(len(TYPE_P), size=n, p=TYPE_P)
    female = np.where(ptype == T_LP, rng.random(n) < 0.9,
                      np.where(ptype == T_SICK, rng.random(n) < 0.42, rng.random(n) < 0.45))
    comp = rng.random(n)
    age = np.where(comp < 0.28, 17 + 8 * rng.random(n),
                   np.where(comp < 0.85, 25 + 32 * rng.random(n), 57 + 8.5 * rng.random(n)))
    age = np.where(ptype == T_LP, 18 + 32 * rng.random(n), age)
    dob = (T0 - age * 365.25).astype(np.int64)
    sex = np.where(female, "F", "M").astype(object)
    spa = state_pension_age_date(dob, sex)
    late = spa <= T0 + 30  # already past State Pension age: make them younger
    dob[late] = (T0 - (22 + 30 * rng.random(late.sum())) * 365.25).astype(np.int64)
    spa = state_pension_age_date(dob, sex)
    age_t0 = (T0 - dob) / 365.25
    hazard = DEATH_HAZARD[ptype] * np.where(age_t0 > 55, 3.0, 1.0)
    dod = T0 + np.floor(rng.exponential(365.25 / hazard)).astype(np.int64)
    lp = (ptype == T_LP) | ((ptype == T_JSA) & female & (rng.random(n) < 0.04))
    disabled = np.where(ptype == T_SICK, rng.random(n) < 0.85,
                        np.where(ptype == T_JSA, rng.random(n) < 0.08, rng.random(n) < 0.06))
    # area by office weight
    per_office = np.bincount(org.area_office, minlength=org.n_offices)
    aw = org.weight[org.area_office] / per_office[org.area_office]
    area = rng.choice(len(aw), size=n, p=aw / aw.sum())
    office = org.area_office[area]
    return dict(ptype=ptype, sex=sex, dob=dob, spa=spa, dod=dod, lp=lp, disabled=disabled,
                area=area, office=office)


def simulate(rng: np.random.Generator, people: int, org: Organisation, T0: int, T1: int) -> World:
    """Generate people, claims, employments and programme starts for the period T0..T1 (int days)."""
    P = _make_people(rng, people, org, T0)
    n = people
    ptype, dob, spa, dod = P["ptype"], P["dob"], P["spa"], P["dod"]
    claims = _Acc(["person", "benefit", "start", "end", "outcome", "reason", "spell"])
    emps = _Acc(["person", "start", "end", "kind"])
    progs = _Acc(["person", "code", "start"])
    spell_no = 0

    avail = np.full(n, NEVER, dtype=np.int64)
    override = np.full(n, -1, dtype=np.int64)
    min_dur = np.zeros(n, dtype=np.int64)
    first_spell = np.ones(n, dtype=bool)

    def default_benefit(idx, s):
        t = ptype[idx]
        b = np.full(len(idx), JSA)
        b[t == T_SICK] = np.where(s[t == T_SICK] >= ESA_START, ESA, IB)
        lp_jsa_p = np.where(s >= LONE_PARENT_JSA_FROM, 0.35, 0.2)
        b[t == T_LP] = np.where(rng.random(len(idx)) < lp_jsa_p, JSA, IS)[t == T_LP]
        b[t == T_CARER] = CA
        b[t == T_OTHER] = IS
        return b

    # ---- round 0: the stock on benefit at T0
    on = (rng.random(n) < STOCK_P[ptype])
    idx0 = np.flatnonzero(on)
    b0 = default_benefit(idx0, np.full(len(idx0), T0))
    sick0 = ptype[idx0] == T_SICK
    u = rng.random(len(idx0))
    b0[sick0] = IB
    b0[sick0 & (u < 0.06)] = SDA
    if T0 > ESA_START:
        b0[sick0 & (u >= 0.06) & (u < 0.06 + min(0.5, (T0 - ESA_START) / 1500))] = ESA
    D0 = np.zeros(len(idx0), dtype=np.int64)
    for b in range(7):
        m = b0 == b
        if m.any():
            D0[m] = _length_biased(rng, b, int(m.sum()))
    elapsed = np.floor(rng.random(len(idx0)) * D0).astype(np.int64)
    s0 = T0 - elapsed
    # benefit-specific start constraints
    m = (b0 == ESA) & (s0 < ESA_START)
    s0[m] = ESA_START + np.floor(rng.random(m.sum()) * max(1, T0 - ESA_START)).astype(np.int64)
    m = (b0 == IB) & (s0 >= ESA_START)
    s0[m] = ESA_START - 1 - np.floor(rng.random(m.sum()) * 3000).astype(np.int64)
    m = b0 == SDA
    s0[m] = day("1985-01-01") + np.floor(rng.random(m.sum()) * (day("2001-04-05") - day("1985-01-01"))).astype(np.int64)
    D0[m] = 30000
    s0 = np.maximum(s0, dob[idx0] + 16 * 366)
    s0 = np.minimum(s0, T0 - 1)
    D0 = np.maximum(D0, T0 - s0 + 1)

    # people not on benefit: their first claim
    off = np.flatnonzero(~on & (ptype != T_NONE))
    avail[off] = T0 + np.floor(rng.exponential(GAP_MEAN[ptype[off]])).astype(np.int64)

    def spells(idx, s, b, D, is_stock):
        nonlocal spell_no
        k = len(idx)
        e = s + D
        outcome = np.full(k, O_OPTE)
        # death truncates the spell
        lag = np.where(rng.random(k) < 0.8, rng.integers(0, 7, k), rng.integers(7, 61, k))
        died = dod[idx] < e
        e = np.where(died, np.maximum(s + 1, dod[idx] + lag), e)
        outcome[died] = O_DIED
        # State Pension age ends working-age claims (PC, CA continue)
        ret_end = np.maximum(s + 1, spa[idx] + rng.integers(-5, 3, k))
        retires = (spa[idx] <= e) & (ret_end < e) & (b != PC) & (b != CA)
        e = np.where(retires, ret_end, e)
        outcome[retires] = O_RETIRED
        free = outcome == O_OPTE
        # cross-flows and programme starts
        u = rng.random(k)
        cross = free & (u < CROSS_P[b])
        outcome[cross] = O_CROSS
        age_e = (e - dob[idx]) / 365.25
        prog_p = np.where((b == JSA) & (e - s >= 182) & (age_e >= 18), 0.20,
                          np.where((b == JSA) & (age_e >= 18), 0.004, 0.0))
        prog = free & ~cross & (rng.random(k) < prog_p)
        outcome[prog] = O_PROG
        # returns within a week split the spell into claims
        p1 = np.array([SPLIT_P.get(x, (0, 0))[0] for x in range(7)])[b]
        p2 = np.array([SPLIT_P.get(x, (0, 0))[1] for x in range(7)])[b]
        u = rng.random(k)
        nbreak = np.where(u < p2, 2, np.where(u < p1, 1, 0))
        L = e - s
        t1 = 1 + np.floor(rng.random(k) * np.maximum(L - 2, 1)).astype(np.int64)
        t2 = 1 + np.floor(rng.random(k) * np.maximum(L - 2, 1)).astype(np.int64)
        t1, t2 = np.minimum(t1, t2), np.maximum(t1, t2)
        g1, g2 = rng.integers(0, 8, k), rng.integers(0, 8, k)
        ok1 = (nbreak >= 1) & (t1 + g1 + 1 <= (np.where(nbreak == 2, t2, L)))
        ok2 = ok1 & (nbreak == 2) & (t2 + g2 + 1 <= L) & (t2 > t1 + g1 + 1)
        spell_id = spell_no + np.arange(k)
        spell_no += k
        # claim pieces: [s, s+t1] (return), [s+t1+g1, s+t2] (return), last piece to e
        piece_start = [np.where(ok1, s, 0)[ok1], (s + t1 + g1)[ok2]]
        piece_end = [(s + t1)[ok1], (s + t2)[ok2]]
        piece_who = [np.flatnonzero(ok1), np.flatnonzero(ok2)]
        last_start = np.where(ok2, s + t2 + g2, np.where(ok1, s + t1 + g1, s))
        for ps, pe, w in zip(piece_start, piece_end, piece_who):
            if len(w):
                claims.add(person=idx[w], benefit=b[w], start=ps, end=pe,
                           outcome=np.full(len(w), O_RETURN), reason=_pick(rng, END_REASONS_RETURN, len(w)),
                           spell=spell_id[w])
        # end reasons for the spell's last claim
        reason = np.empty(k, dtype=object)
        reason[outcome == O_DIED] = np.where(rng.random((outcome == O_DIED).sum()) < 0.9, "DE", "NK")
        reason[outcome == O_RETIRED] = np.where(rng.random((outcome == O_RETIRED).sum()) < 0.85, "RET", "CC")
        reason[outcome == O_PROG] = _pick(rng, (["AT", "GST", "NK"], [0.4, 0.4, 0.2]), (outcome == O_PROG).sum())
        # destination of cross-flows
        dest = np.full(k, -1)
        ci = np.flatnonzero(cross)
        if len(ci):
            male60 = (P["sex"][idx[ci]] == "M") & (age_e[ci] >= 60)
            r = rng.random(len(ci))
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
            reason[ci] = np.where(rng.random(len(ci)) < 0.8, code, "NK")
        # jobs for OPtE-type ends of in-scope claims
        free = outcome == O_OPTE
        lp = P["lp"][idx]
        grp_p = np.where(lp, JOB_P["lp"], np.where(np.isin(b, [ESA, IB, SDA]), JOB_P["sick"],
                                                   np.where(b == JSA, JOB_P["jsa"], JOB_P["other"])))
        job = free & (b <= IS) & (rng.random(k) < grp_p)
        reason[job] = _pick(rng, END_REASONS_JOB, job.sum())
        nj = free & ~job
        reason[nj] = _pick(rng, END_REASONS_NOJOB, nj.sum())
        # a few unknown or missing codes on closed claims
        u = rng.random(k)
        reason[u < 0.004] = np.asarray(UNKNOWN_END_REASONS, dtype=object)[rng.integers(0, 3, (u < 0.004).sum())]
        reason[(u >= 0.004) & (u < 0.008)] = None
        claims.add(person=idx, benefit=b, start=last_start, end=e, outcome=outcome, reason=reason, spell=spell_id)

        # next state
        nxt = e + np.maximum(15, np.floor(rng.exponential(GAP_MEAN[ptype[idx]]))).astype(np.int64)
        ov = np.full(k, -1)
        md = np.zeros(k, dtype=np.int64)
        # cross-flow: the other claim starts within 14 days, or (10 %) already before the end
        if len(ci):
            overlap = rng.random(len(ci)) < 0.1
            st = np.where(overlap, e[ci] - rng.integers(1, 31, len(ci)), e[ci] + rng.integers(0, 15, len(ci)))
            st = np.maximum(st, s[ci] + 1)
            nxt[ci] = st
            ov[ci] = dest[ci]
            md[ci] = np.maximum(1, e[ci] - st + 1 + rng.integers(0, 31, len(ci)))
        # programme starts that take the person off benefit
        pi = np.flatnonzero(outcome == O_PROG)
        if len(pi):
            pstart = e[pi] + rng.integers(-7, 15, len(pi))
            young = age_e[pi] < 25
            code = np.where(young, _pick(rng, NDYP_OPTIONS, len(pi)), "ND25_IAP").astype(object)
            fnd = (e[pi] >= FND_START) & (e[pi] - s[pi] >= 365) & (rng.random(len(pi)) < 0.7)
            code[fnd] = "FND"
            progs.add(person=idx[pi], code=code, start=pstart)
            nxt[pi] = pstart + rng.integers(90, 201, len(pi))
            emp = (code == "NDYP_EMP") & (rng.random(len(pi)) < 0.8)
            if emp.any():
                js = pstart[emp] + rng.integers(0, 8, emp.sum())
                emps.add(person=idx[pi][emp], start=js, end=np.where(nxt[pi][emp] - 5 > js, nxt[pi][emp] - 5, -1),
                         kind=np.full(emp.sum(), 1))
        # HMRC job starts
        ji = np.flatnonzero(job)
        if len(ji):
            js = e[ji] + _mixture_offsets(rng, len(ji))
            jend = nxt[ji] - rng.integers(1, 15, len(ji))
            jend = np.where((jend > js) & (nxt[ji] <= T1 + 400), jend, -1)
            emps.add(person=idx[ji], start=js, end=jend, kind=np.full(len(ji), 0))
        # voluntary programmes during claims and a few unknown codes
        L = e - s
        rp = rng.random(k)
        vol = np.where((b == IS) & lp, rp < 0.15, np.where(np.isin(b, [ESA, IB]), rp < 0.08,
                       np.where((b == JSA) & (age_e >= 50), rp < 0.08, False)))
        if vol.any():
            vi = np.flatnonzero(vol)
            vcode = np.where(b[vi] == IS, "NDLP", np.where(b[vi] == JSA, "ND50", "NDDP")).astype(object)
            progs.add(person=idx[vi], code=vcode, start=s[vi] + np.floor(rng.random(len(vi)) * L[vi]).astype(np.int64))
        fnd_mid = (b == JSA) & (L > 420) & (s + 365 >= FND_START) & (outcome != O_PROG) & (rng.random(k) < 0.6)
        if fnd_mid.any():
            fi = np.flatnonzero(fnd_mid)
            progs.add(person=idx[fi], code=np.full(len(fi), "FND", dtype=object),
                      start=s[fi] + 365 + rng.integers(0, 21, len(fi)))
        unk = (b <= IS) & (rng.random(k) < 0.004)
        if unk.any():
            ui = np.flatnonzero(unk)
            progs.add(person=idx[ui], code=np.asarray(UNKNOWN_PROGRAMMES, dtype=object)[rng.integers(0, 4, len(ui))],
                      start=s[ui] + np.floor(rng.random(len(ui)) * L[ui]).astype(np.int64))
        # employment that ended just before a first claim in the period
        if not is_stock:
            bi = np.flatnonzero(first_spell[idx] & (rng.random(k) < 0.3))
            if len(bi):
                bstart = s[bi] - rng.integers(60, 1500, len(bi))
                bend = np.maximum(bstart + 1, s[bi] - rng.integers(1, 15, len(bi)))
                emps.add(person=idx[bi], start=bstart, end=bend, kind=np.full(len(bi), 2))
        first_spell[idx] = False
        # after death nothing; after retirement perhaps Pension Credit
        done = (outcome == O_DIED) | (outcome == O_RETIRED) | (b == PC)
        ri = np.flatnonzero(outcome == O_RETIRED)
        pc = ri[rng.random(len(ri)) < 0.3]
        if len(pc):
            who = idx[pc]
            ps = np.maximum(spa[who] + rng.integers(0, 31, len(pc)), e[pc] + 1)
            keep = (ps <= T1) & (ps < dod[who])
            if keep.any():
                who, ps = who[keep], ps[keep]
                pe = np.minimum(ps + 7300, np.maximum(ps + 1, dod[who] + rng.integers(0, 7, len(who))))
                claims.add(person=who, benefit=np.full(len(who), PC), start=ps, end=pe,
                           outcome=np.full(len(who), O_OPTE), reason=np.full(len(who), None, dtype=object),
                           spell=spell_no + np.arange(len(who)))
                spell_no += len(who)
        nxt[done] = NEVER
        avail[idx] = nxt
        override[idx] = ov
        min_dur[idx] = md

    spells(idx0, s0, b0, D0, True)
    rnd = 0
    while True:
        act = np.flatnonzero((avail <= T1) & (avail < dod))
        bb = np.where(override[act] >= 0, override[act], default_benefit(act, avail[act]))
        # no new working-age claims within 14 days of State Pension age (Pension Credit is fine)
        act_ok = (avail[act] < spa[act] - 14) | (bb == PC)
        avail[act[~act_ok]] = NEVER
        act, bb = act[act_ok], bb[act_ok]
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
        for b in range(7):
            m = bb == b
            if m.any():
                D[m] = _quantile(rng, b, int(m.sum()))
        D = np.maximum(D, min_dur[act])
        avail[act] = NEVER
        spells(act, s, bb, D, False)
    log.info("simulated %d people in %d rounds", n, rnd)

    C = claims.result()
    E = emps.result()
    G = progs.result()
    return World(T0=T0, T1=T1, people=P, claims=C, employments=E, programmes=G)
