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
    period_start: int
    period_end: int
    people: dict = field(default_factory=dict)      # one entry per person
    claims: dict = field(default_factory=dict)      # one entry per claim
    employments: dict = field(default_factory=dict)  # one entry per employment
    programmes: dict = field(default_factory=dict)   # one entry per programme start


class _Acc:
    """Accumulates chunks of parallel arrays."""

    def __init__(self, names):
        self.parts = {n: [] for n in names}

    def add(self, **cols):
        """Append one chunk; a scalar column is repeated to the chunk's length."""
        length = None
        for values in cols.values():
            values = np.asarray(values)
            length = len(values) if values.ndim else length
        for name, values in cols.items():
            values = np.asarray(values)
            self.parts[name].append(values if values.ndim else np.full(length, values))

    def result(self):
        return {name: (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
                for name, parts in self.parts.items()}


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


def _make_people(kr: Keyed, gid: np.ndarray, org: Organisation, period_start: int) -> dict:
    key = spell_key(gid, PERSON_ROUND)
    n = len(gid)
    ptype = kr.choice(key, 1, TYPE_P)
    u = kr.uniform(key, 2)
    female = np.where(ptype == T_LP, u < 0.9, np.where(ptype == T_SICK, u < 0.42, u < 0.45))
    comp = kr.uniform(key, 3)
    a = kr.uniform(key, 4)
    age = np.where(comp < 0.28, 17 + 8 * a, np.where(comp < 0.85, 25 + 32 * a, 57 + 8.5 * a))
    age = np.where(ptype == T_LP, 18 + 32 * kr.uniform(key, 5), age)
    dob = (period_start - age * 365.25).astype(np.int64)
    sex = np.where(female, "F", "M").astype(object)
    spa = state_pension_age_date(dob, sex)
    late = spa <= period_start + 30  # already past State Pension age: make them younger
    dob[late] = (period_start - (22 + 30 * kr.uniform(key[late], 6)) * 365.25).astype(np.int64)
    spa = state_pension_age_date(dob, sex)
    age_at_start = (period_start - dob) / 365.25
    hazard = DEATH_HAZARD[ptype] * np.where(age_at_start > 55, 3.0, 1.0)
    dod = period_start + np.floor(kr.exponential(key, 7, 365.25 / hazard)).astype(np.int64)
    lp = (ptype == T_LP) | ((ptype == T_JSA) & female & (kr.uniform(key, 8) < 0.04))
    ud = kr.uniform(key, 9)
    disabled = np.where(ptype == T_SICK, ud < 0.85, np.where(ptype == T_JSA, ud < 0.08, ud < 0.06))
    # area by office weight
    per_office = np.bincount(org.area_office, minlength=org.n_offices)
    aw = org.weight[org.area_office] / per_office[org.area_office]
    area = kr.choice(key, 10, aw)
    office = org.area_office[area]
    # on benefit at period_start (the stock), else the first claim's start
    on = kr.uniform(key, 11) < STOCK_P[ptype]
    first = np.where(on | (ptype == T_NONE), period_start,
                     period_start + np.floor(kr.exponential(key, 12, GAP_MEAN[ptype])).astype(np.int64))
    return dict(gid=gid, key=key, ptype=ptype, sex=sex, dob=dob, spa=spa, dod=dod, lp=lp, disabled=disabled,
                area=area, office=office, on=on, first=first)


def simulate(kr: Keyed, gid0: int, people: int, org: Organisation, plants: Plants, T0: int, T1: int) -> World:
    """People gid0 .. gid0 + people - 1: their claims, employments and programme starts up to T1."""
    return _Simulation(kr, gid0, people, org, plants, T0, T1).run()


def _durations(uniforms: np.ndarray, benefit: np.ndarray, draw) -> np.ndarray:
    """Spell durations drawn per benefit by `draw(uniforms, benefit)` (an inverse CDF)."""
    duration = np.zeros(len(benefit), dtype=np.int64)
    for one_benefit in range(7):
        of_benefit = benefit == one_benefit
        if of_benefit.any():
            duration[of_benefit] = draw(uniforms[of_benefit], one_benefit)
    return duration


class _Simulation:
    """One chunk of people simulated round by round; the state between rounds is per person."""

    def __init__(self, kr: Keyed, gid0: int, people: int, org: Organisation, plants: Plants,
                 period_start: int, period_end: int):
        self.kr = kr
        self.period_start, self.period_end = period_start, period_end
        self.people = people
        self.gid = np.arange(gid0, gid0 + people, dtype=np.int64)
        self.person = _make_people(kr, self.gid, org, period_start)
        person = self.person
        self.ptype, self.dob, self.spa, self.dod = person["ptype"], person["dob"], person["spa"], person["dod"]
        reporting_office = org.reporting_index[person["office"]]   # plants apply by reporting office
        self.cross_mult = plants.cross_mult[reporting_office]
        self.prog_mult = plants.prog_mult[reporting_office]
        self.fts_p = plants.fts_p[reporting_office]
        self.claims = _Acc(["person", "benefit", "start", "end", "reason", "key", "proxy_p", "back_p13",
                            "back_p26"])
        self.employments = _Acc(["person", "start", "end", "key"])
        self.programmes = _Acc(["person", "code", "start", "key"])
        # per person: when the next claim starts, its benefit if fixed (a cross-flow's
        # destination, else -1), its minimum duration, and the spells simulated so far
        self.next_start = np.full(people, NEVER, dtype=np.int64)
        self.next_benefit = np.full(people, -1, dtype=np.int64)
        self.next_min_duration = np.zeros(people, dtype=np.int64)
        self.rounds = np.zeros(people, dtype=np.int64)

    def run(self) -> World:
        self._employments_before_first_claim()
        stock, stock_start, stock_benefit, stock_duration = self._stock_spells()
        not_on_benefit = np.flatnonzero(~self.person["on"] & (self.ptype != T_NONE))
        self.next_start[not_on_benefit] = self.person["first"][not_on_benefit]
        self._spells(stock, stock_start, stock_benefit, stock_duration)
        rounds = 0
        while self._new_claims_round():
            rounds += 1
        log.debug("simulated %d people in %d rounds", self.people, rounds)
        return World(period_start=self.period_start, period_end=self.period_end, people=self.person,
                     claims=self.claims.result(), employments=self.employments.result(),
                     programmes=self.programmes.result())

    def _default_benefit(self, idx, start, key):
        kr, ptype = self.kr, self.ptype[idx]
        benefit = np.full(len(idx), JSA)
        sick, lone_parent = ptype == T_SICK, ptype == T_LP
        benefit[sick] = np.where(start[sick] >= ESA_START, ESA, IB)
        lp_jsa_p = np.where(start >= LONE_PARENT_JSA_FROM, 0.35, 0.2)
        benefit[lone_parent] = np.where(kr.uniform(key, 51) < lp_jsa_p, JSA, IS)[lone_parent]
        benefit[ptype == T_CARER] = CA
        benefit[ptype == T_OTHER] = IS
        return benefit

    def _employments_before_first_claim(self):
        """An employment that ended shortly before a first claim (drawn with the person)."""
        kr, person = self.kr, self.person
        person_key = person["key"]
        prior = (~person["on"]) & (self.ptype != T_NONE) & (kr.uniform(person_key, 13) < 0.3)
        if prior.any():
            first = person["first"][prior]
            emp_start = first - kr.integers(person_key[prior], 14, 60, 1500)
            emp_end = np.maximum(emp_start + 1, first - kr.integers(person_key[prior], 15, 1, 15))
            self.employments.add(person=np.flatnonzero(prior), start=emp_start, end=emp_end,
                                 key=spell_key(self.gid[prior], 0, 3))

    def _stock_spells(self):
        """Round 0: the stock on benefit at the period start (index, start, benefit, duration)."""
        kr, t0 = self.kr, self.period_start
        idx = np.flatnonzero(self.person["on"])
        key = spell_key(self.gid[idx], 0)
        benefit = self._default_benefit(idx, np.full(len(idx), t0), key)
        sick = self.ptype[idx] == T_SICK
        u = kr.uniform(key, 53)
        benefit[sick] = IB
        benefit[sick & (u < 0.06)] = SDA
        if t0 > ESA_START:
            benefit[sick & (u >= 0.06) & (u < 0.06 + min(0.5, (t0 - ESA_START) / 1500))] = ESA
        duration = _durations(kr.uniform(key, 54), benefit, _length_biased)
        elapsed = np.floor(kr.uniform(key, 55) * duration).astype(np.int64)
        start = t0 - elapsed
        # benefit-specific start constraints
        m = (benefit == ESA) & (start < ESA_START)
        start[m] = ESA_START + np.floor(kr.uniform(key[m], 56) * max(1, t0 - ESA_START)).astype(np.int64)
        m = (benefit == IB) & (start >= ESA_START)
        start[m] = ESA_START - 1 - np.floor(kr.uniform(key[m], 57) * 3000).astype(np.int64)
        m = benefit == SDA
        start[m] = day("1985-01-01") + np.floor(kr.uniform(key[m], 58) * (day("2001-04-05") - day("1985-01-01"))
                                                ).astype(np.int64)
        duration[m] = 30000
        start = np.maximum(start, self.dob[idx] + 16 * 366)
        start = np.minimum(start, t0 - 1)
        duration = np.maximum(duration, t0 - start + 1)
        return idx, start, benefit, duration

    def _new_claims_round(self) -> bool:
        """The next spell of everyone whose next claim starts in the period; False when there is none."""
        kr, next_start, spa = self.kr, self.next_start, self.spa
        act = np.flatnonzero((next_start <= self.period_end) & (next_start < self.dod))
        key = spell_key(self.gid[act], self.rounds[act])
        benefit = np.where(self.next_benefit[act] >= 0, self.next_benefit[act],
                           self._default_benefit(act, next_start[act], key))
        # no new working-age claims within 14 days of State Pension age (Pension Credit is fine)
        act_ok = (next_start[act] < spa[act] - 14) | (benefit == PC)
        next_start[act[~act_ok]] = NEVER
        act, benefit, key = act[act_ok], benefit[act_ok], key[act_ok]
        if not len(act):
            return False
        start = next_start[act]
        # benefits closed to new claims
        benefit = np.where((benefit == IB) & (start >= ESA_START), ESA, benefit)
        benefit = np.where((benefit == ESA) & (start < ESA_START), IB, benefit)
        benefit = np.where(benefit == SDA, IB, benefit)
        benefit = np.where((benefit == IB) & (start >= ESA_START), ESA, benefit)
        duration = _durations(kr.uniform(key, 52), benefit, _inverse_cdf)
        duration = np.maximum(duration, self.next_min_duration[act])
        next_start[act] = NEVER
        self._spells(act, start, benefit, duration)
        return True

    def _spells(self, idx, start, benefit, duration):
        """One spell for each person idx: its claims, how it ends, what follows, and the next claim's date."""
        rnd = self.rounds[idx]
        if len(idx) and rnd.max() > MAX_ROUND:
            raise RuntimeError("a synthetic person has more spells than the key space allows")
        key = spell_key(self.gid[idx], rnd)
        self.rounds[idx] += 1
        end, outcome = self._truncate_at_death_or_pension_age(idx, key, start, start + duration, benefit)
        age_end = (end - self.dob[idx]) / 365.25
        cross = self._draw_cross_flows_and_programmes(idx, key, start, end, benefit, outcome, age_end)
        last_start = self._split_by_returns_within_a_week(idx, key, start, end, benefit)
        reason, proxy_p = self._end_reasons_of_ends(key, outcome)
        dest, cross_idx = self._cross_flow_destinations(idx, key, end, benefit, cross, age_end, reason)
        job = self._end_reasons_of_offflows(idx, key, benefit, outcome, reason, proxy_p)
        next_start, back_p13, back_p26 = self._next_claim_after_offflow(idx, key, end, benefit, outcome, job)
        next_benefit, min_duration = self._next_claim_after_cross_flow(
            idx, key, start, end, dest, cross_idx, next_start, back_p13, back_p26)
        self._programme_offflows(idx, key, start, end, outcome, age_end, next_start, back_p13, back_p26)
        self.claims.add(person=idx, benefit=benefit, start=last_start, end=end, reason=reason,
                        key=key | np.uint64(10), proxy_p=proxy_p, back_p13=back_p13, back_p26=back_p26)
        self._job_starts(idx, key, start, end, job, next_start)
        self._programmes_during_claims(idx, key, start, end, benefit, outcome, age_end)
        # after death nothing; after retirement perhaps Pension Credit
        done = (outcome == O_DIED) | (outcome == O_RETIRED) | (benefit == PC)
        self._pension_credit_after_retirement(idx, key, end, outcome)
        next_start[done] = NEVER
        self.next_start[idx] = next_start
        self.next_benefit[idx] = next_benefit
        self.next_min_duration[idx] = min_duration

    def _truncate_at_death_or_pension_age(self, idx, key, start, end, benefit):
        """The spell's end and outcome, where death or State Pension age cut it short."""
        kr, spa, dod = self.kr, self.spa, self.dod
        outcome = np.full(len(idx), O_OPTE)
        # death truncates the spell
        lag = np.where(kr.uniform(key, 1) < 0.8, kr.integers(key, 2, 0, 7), kr.integers(key, 3, 7, 61))
        died = dod[idx] < end
        end = np.where(died, np.maximum(start + 1, dod[idx] + lag), end)
        outcome[died] = O_DIED
        # State Pension age ends working-age claims (PC, CA continue)
        retirement_end = np.maximum(start + 1, spa[idx] + kr.integers(key, 4, -5, 3))
        retires = (spa[idx] <= end) & (retirement_end < end) & (benefit != PC) & (benefit != CA)
        end = np.where(retires, retirement_end, end)
        outcome[retires] = O_RETIRED
        return end, outcome

    def _draw_cross_flows_and_programmes(self, idx, key, start, end, benefit, outcome, age_end):
        """Cross-flows and programme starts (offices with planted outliers: other rates); returns the cross-flows."""
        kr = self.kr
        free = outcome == O_OPTE
        cross = free & (kr.uniform(key, 5) < CROSS_P[benefit] * self.cross_mult[idx])
        outcome[cross] = O_CROSS
        prog_p = np.where((benefit == JSA) & (end - start >= 182) & (age_end >= 18), 0.20,
                          np.where((benefit == JSA) & (age_end >= 18), 0.004, 0.0)) * self.prog_mult[idx]
        prog = free & ~cross & (kr.uniform(key, 6) < prog_p)
        outcome[prog] = O_PROG
        return cross

    def _split_by_returns_within_a_week(self, idx, key, start, end, benefit):
        """Returns within a week split the spell into claims; adds the first pieces, returns the last's start."""
        kr = self.kr
        p_one_break = np.array([SPLIT_P.get(x, (0, 0))[0] for x in range(7)])[benefit]
        p_two_breaks = np.array([SPLIT_P.get(x, (0, 0))[1] for x in range(7)])[benefit]
        u = kr.uniform(key, 7)
        breaks = np.where(u < p_two_breaks, 2, np.where(u < p_one_break, 1, 0))
        length = end - start
        cut1 = 1 + np.floor(kr.uniform(key, 8) * np.maximum(length - 2, 1)).astype(np.int64)
        cut2 = 1 + np.floor(kr.uniform(key, 9) * np.maximum(length - 2, 1)).astype(np.int64)
        cut1, cut2 = np.minimum(cut1, cut2), np.maximum(cut1, cut2)
        gap1, gap2 = kr.integers(key, 10, 0, 8), kr.integers(key, 11, 0, 8)
        first_break = (breaks >= 1) & (cut1 + gap1 + 1 <= (np.where(breaks == 2, cut2, length)))
        second_break = first_break & (breaks == 2) & (cut2 + gap2 + 1 <= length) & (cut2 > cut1 + gap1 + 1)
        # claim pieces: [s, s+cut1] (return), [s+cut1+gap1, s+cut2] (return), last piece to the end
        last_start = np.where(second_break, start + cut2 + gap2, np.where(first_break, start + cut1 + gap1, start))
        for piece, piece_start, piece_end, site, stream in (
                (first_break, start, start + cut1, 8, 12),
                (second_break, start + cut1 + gap1, start + cut2, 9, 13)):
            if piece.any():
                n_pieces = int(piece.sum())
                self.claims.add(person=idx[piece], benefit=benefit[piece], start=piece_start[piece],
                                end=piece_end[piece], reason=kr.pick(key[piece], stream, END_REASONS_RETURN),
                                key=key[piece] | np.uint64(site), proxy_p=np.full(n_pieces, PROXY_RETURN_P),
                                back_p13=np.full(n_pieces, np.nan), back_p26=np.full(n_pieces, np.nan))
        return last_start

    def _end_reasons_of_ends(self, key, outcome):
        """End reasons of the last claim where the person died, retired or started a programme."""
        kr = self.kr
        reason = np.empty(len(key), dtype=object)
        proxy_p = np.zeros(len(key))
        m = outcome == O_DIED
        reason[m] = np.where(kr.uniform(key[m], 14) < 0.9, "DE", "NK")
        m = outcome == O_RETIRED
        reason[m] = np.where(kr.uniform(key[m], 15) < 0.85, "RET", "CC")
        m = outcome == O_PROG
        reason[m] = kr.pick(key[m], 16, (["AT", "GST", "NK"], [0.4, 0.4, 0.2]))
        return reason, proxy_p

    def _cross_flow_destinations(self, idx, key, end, benefit, cross, age_end, reason):
        """The benefit each cross-flow goes to (-1 for the others), and the cross-flows' indices; sets their reasons."""
        kr = self.kr
        dest = np.full(len(idx), -1)
        cross_idx = np.flatnonzero(cross)
        if len(cross_idx):
            male60 = (self.person["sex"][idx[cross_idx]] == "M") & (age_end[cross_idx] >= 60)
            r = kr.uniform(key[cross_idx], 17)
            src = benefit[cross_idx]
            sick_dest = np.where(end[cross_idx] >= ESA_START, ESA, IB)
            from_jsa = np.where(r < 0.5, sick_dest, np.where(r < 0.7, IS, np.where(r < 0.9, CA, PC)))
            from_sick = np.where(r < 0.6, JSA, np.where(r < 0.8, IS, np.where(r < 0.9, CA, PC)))
            from_is = np.where(r < 0.5, JSA, np.where(r < 0.8, sick_dest, CA))
            from_ca = np.where(r < 0.5, JSA, np.where(r < 0.8, IS, PC))
            to = np.select([src == JSA, np.isin(src, [ESA, IB, SDA]), src == IS, src == CA],
                           [from_jsa, from_sick, from_is, from_ca], JSA)
            to = np.where((to == PC) & ~male60, np.where(src == JSA, sick_dest, JSA), to)
            to = np.where(to == src, CA, to)
            dest[cross_idx] = to
            code = np.where(np.isin(to, [ESA, IB, SDA]), "CIB", np.where(to == IS, "CIS", "COB"))
            reason[cross_idx] = np.where(kr.uniform(key[cross_idx], 18) < 0.8, code, "NK")
        return dest, cross_idx

    def _end_reasons_of_offflows(self, idx, key, benefit, outcome, reason, proxy_p):
        """Jobs for OPtE-type ends of in-scope claims, and the end reasons staff record; returns the jobs."""
        kr = self.kr
        free = outcome == O_OPTE
        lp = self.person["lp"][idx]
        group_job_p = np.where(lp, JOB_P["lp"], np.where(np.isin(benefit, [ESA, IB, SDA]), JOB_P["sick"],
                                                         np.where(benefit == JSA, JOB_P["jsa"], JOB_P["other"])))
        job = free & (benefit <= IS) & (kr.uniform(key, 19) < group_job_p)
        reason[job] = kr.pick(key[job], 20, END_REASONS_JOB)
        no_job = free & ~job
        reason[no_job] = kr.pick(key[no_job], 21, END_REASONS_NOJOB)
        proxy_p[job], proxy_p[no_job] = PROXY_JOB_P, PROXY_NOJOB_P
        # planted: an office that closes claims as "failed to sign" whatever happened
        fts_p = self.fts_p
        fts = free & (kr.uniform(key, 50) < fts_p[idx])
        reason[fts] = "FTS"
        proxy_p[free] *= 1 - fts_p[idx][free]
        # a few unknown or missing codes on closed claims
        u = kr.uniform(key, 22)
        unknown = u < UNKNOWN_REASON_P
        reason[unknown] = np.asarray(UNKNOWN_END_REASONS, dtype=object)[kr.integers(key[unknown], 23, 0, 3)]
        reason[(u >= UNKNOWN_REASON_P) & (u < UNKNOWN_REASON_P + MISSING_REASON_P)] = None
        proxy_p *= 1 - UNKNOWN_REASON_P - MISSING_REASON_P
        return job

    def _next_claim_after_offflow(self, idx, key, end, benefit, outcome, job):
        """The next claim's start, and the planted returns to benefit after an OPtE-type end of an in-scope claim."""
        kr, ptype, spa, dod = self.kr, self.ptype, self.spa, self.dod
        free = outcome == O_OPTE
        next_start = end + np.maximum(15, np.floor(kr.exponential(key, 24, GAP_MEAN[ptype[idx]]))).astype(np.int64)
        back_p13 = np.full(len(idx), np.nan)
        back_p26 = np.full(len(idx), np.nan)
        ret = free & (benefit <= IS)
        if ret.any():
            ri = np.flatnonzero(ret)
            r13 = np.empty(len(ri))
            r26 = np.empty(len(ri))
            for (is_jsa, has_job), (rate13, rate26) in RETURN_RATES.items():
                group = ((benefit[ri] == JSA) == is_jsa) & (job[ri] == has_job)
                r13[group], r26[group] = rate13, rate26
            tail = GAP_MEAN[ptype[idx[ri]]]
            u_window = kr.uniform(key[ri], 25)
            u_day = kr.uniform(key[ri], 26)
            gap = np.where(u_window < r13, RETURN_MIN_GAP + np.floor(u_day * (92 - RETURN_MIN_GAP)),
                           np.where(u_window < r26, 92 + np.floor(u_day * 91),
                                    183 + np.floor(kr.exponential(key[ri], 24, tail)))).astype(np.int64)
            next_start[ri] = end[ri] + gap
            # the next claim happens only before death and 14 days before State Pension age
            room = np.minimum(dod[idx[ri]], spa[idx[ri]] - 14) - end[ri] - 1
            back_p13[ri] = gap_cdf(np.minimum(91, room), r13, r26, tail)
            back_p26[ri] = gap_cdf(np.minimum(182, room), r13, r26, tail)
        back_p13[(outcome == O_DIED) | (outcome == O_RETIRED)] = 0.0   # no in-scope claim ever follows
        back_p26[(outcome == O_DIED) | (outcome == O_RETIRED)] = 0.0
        return next_start, back_p13, back_p26

    def _next_claim_after_cross_flow(self, idx, key, start, end, dest, cross_idx, next_start, back_p13, back_p26):
        """A cross-flow's claim starts within 14 days, or (10 %) already before the end; returns its benefit and
        minimum duration per person (-1 / 0 for the others)."""
        kr = self.kr
        next_benefit = np.full(len(idx), -1)
        min_duration = np.zeros(len(idx), dtype=np.int64)
        if len(cross_idx):
            ci = cross_idx
            key_c = key[ci]
            overlap = kr.uniform(key_c, 27) < 0.1
            other_start = np.where(overlap, end[ci] - kr.integers(key_c, 28, 1, 31),
                                   end[ci] + kr.integers(key_c, 29, 0, 15))
            other_start = np.maximum(other_start, start[ci] + 1)
            next_start[ci] = other_start
            next_benefit[ci] = dest[ci]
            min_duration[ci] = np.maximum(1, end[ci] - other_start + 1 + kr.integers(key_c, 30, 0, 31))
            # a destination claim that never happens (death, State Pension age): no cross-flow, no return
            cancel = (other_start >= self.dod[idx[ci]]) | ((other_start >= self.spa[idx[ci]] - 14) & (dest[ci] != PC))
            back_p13[ci[cancel]] = 0.0
            back_p26[ci[cancel]] = 0.0
        return next_benefit, min_duration

    def _programme_offflows(self, idx, key, start, end, outcome, age_end, next_start, back_p13, back_p26):
        """Programme starts that take the person off benefit (never before the spell starts)."""
        kr = self.kr
        pi = np.flatnonzero(outcome == O_PROG)
        if not len(pi):
            return
        key_p = key[pi]
        prog_start = np.maximum(start[pi], end[pi] + kr.integers(key_p, 31, -7, 15))
        young = age_end[pi] < 25
        code = np.where(young, kr.pick(key_p, 32, NDYP_OPTIONS), "ND25_IAP").astype(object)
        fnd = (end[pi] >= FND_START) & (end[pi] - start[pi] >= 365) & (kr.uniform(key_p, 33) < 0.7)
        code[fnd] = "FND"
        self.programmes.add(person=idx[pi], code=code, start=prog_start, key=key_p | np.uint64(4))
        next_start[pi] = prog_start + kr.integers(key_p, 34, 90, 201)
        # (the off-flow is OPtE only where the programme start is missing from the data, e.g. before
        # the first extract: then the next claim comes when the programme ends, 90-200 days after it)
        room = np.minimum(self.dod[idx[pi]], self.spa[idx[pi]] - 14) - 1
        for weeks, back_p in ((13, back_p13), (26, back_p26)):
            last = np.minimum(end[pi] + 7 * weeks, room)
            back_p[pi] = np.clip((last - prog_start - 90 + 1) / 111, 0.0, 1.0)
        employed = (code == "NDYP_EMP") & (kr.uniform(key_p, 35) < 0.8)
        if employed.any():
            emp_start = prog_start[employed] + kr.integers(key_p[employed], 36, 0, 8)
            following = next_start[pi][employed]
            self.employments.add(person=idx[pi][employed], start=emp_start,
                                 end=np.where(following - 5 > emp_start, following - 5, -1),
                                 key=key_p[employed] | np.uint64(1))

    def _job_starts(self, idx, key, start, end, job, next_start):
        """HMRC job starts (never before the spell starts)."""
        kr = self.kr
        ji = np.flatnonzero(job)
        if len(ji):
            key_j = key[ji]
            job_start = np.maximum(start[ji], end[ji] + _mixture_offsets(kr, key_j, 37, 38))
            job_end = next_start[ji] - kr.integers(key_j, 39, 1, 15)
            job_end = np.where(job_end > job_start, job_end, -1)
            self.employments.add(person=idx[ji], start=job_start, end=job_end, key=key_j | np.uint64(2))

    def _programmes_during_claims(self, idx, key, start, end, benefit, outcome, age_end):
        """Voluntary programmes during claims, Flexible New Deal after a year, and a few unknown codes."""
        kr = self.kr
        lp = self.person["lp"][idx]
        length = end - start
        u = kr.uniform(key, 40)
        voluntary = np.where((benefit == IS) & lp, u < 0.15, np.where(np.isin(benefit, [ESA, IB]), u < 0.08,
                             np.where((benefit == JSA) & (age_end >= 50), u < 0.08, False)))
        if voluntary.any():
            vi = np.flatnonzero(voluntary)
            code = np.where(benefit[vi] == IS, "NDLP", np.where(benefit[vi] == JSA, "ND50", "NDDP")).astype(object)
            self.programmes.add(person=idx[vi], code=code,
                                start=start[vi] + np.floor(kr.uniform(key[vi], 41) * length[vi]).astype(np.int64),
                                key=key[vi] | np.uint64(5))
        fnd_mid = ((benefit == JSA) & (length > 420) & (start + 365 >= FND_START) & (outcome != O_PROG)
                   & (kr.uniform(key, 42) < 0.6))
        if fnd_mid.any():
            fi = np.flatnonzero(fnd_mid)
            self.programmes.add(person=idx[fi], code=np.full(len(fi), "FND", dtype=object),
                                start=start[fi] + 365 + kr.integers(key[fi], 43, 0, 21), key=key[fi] | np.uint64(6))
        unknown = (benefit <= IS) & (kr.uniform(key, 44) < 0.004)
        if unknown.any():
            ui = np.flatnonzero(unknown)
            self.programmes.add(
                person=idx[ui], code=np.asarray(UNKNOWN_PROGRAMMES, dtype=object)[kr.integers(key[ui], 45, 0, 4)],
                start=start[ui] + np.floor(kr.uniform(key[ui], 46) * length[ui]).astype(np.int64),
                key=key[ui] | np.uint64(7))

    def _pension_credit_after_retirement(self, idx, key, end, outcome):
        """After retirement perhaps a Pension Credit claim, until death (at most 20 years)."""
        kr, spa, dod = self.kr, self.spa, self.dod
        retired = np.flatnonzero(outcome == O_RETIRED)
        pc = retired[kr.uniform(key[retired], 47) < 0.3]
        if not len(pc):
            return
        who = idx[pc]
        pc_start = np.maximum(spa[who] + kr.integers(key[pc], 48, 0, 31), end[pc] + 1)
        keep = pc_start < dod[who]
        if keep.any():
            who, pc_start, pc_key = who[keep], pc_start[keep], key[pc][keep]
            pc_end = np.minimum(pc_start + 7300, np.maximum(pc_start + 1, dod[who] + kr.integers(pc_key, 49, 0, 7)))
            n_claims = len(who)
            self.claims.add(person=who, benefit=np.full(n_claims, PC), start=pc_start, end=pc_end,
                            reason=np.full(n_claims, None, dtype=object), key=pc_key | np.uint64(11),
                            proxy_p=np.zeros(n_claims), back_p13=np.full(n_claims, np.nan),
                            back_p26=np.full(n_claims, np.nan))
