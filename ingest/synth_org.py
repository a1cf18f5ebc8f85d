"""The synthetic organisation: regions, districts, offices (with satellites and one mover) and small areas.

At full scale (about 5,000,000 people) it mirrors Jobcentre Plus in 2009: 11 regions with
the office counts of FACTS.md (741 offices), 48 districts. Smaller runs keep the shape
with fewer units: a few thousand people give 2 regions, 3 districts and about 12 offices,
still with a satellite office and an office that moves district mid-period.
Office and area names are fictional; district names follow the real pattern.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_SCALE_PEOPLE = 5_000_000
FULL_SCALE_OFFICES = 741

# (region code, region name, offices on 30 March 2009, country, districts with the pilot first)
REGIONS: list[tuple[str, str, int, str, list[str]]] = [
    ("LON", "London", 74, "E",
     ["South London", "West London", "North London", "East London", "Central London"]),
    ("YAH", "Yorkshire and the Humber", 59, "E",
     ["South Yorkshire", "West Yorkshire", "North and East Yorkshire", "Humber"]),
    ("WMD", "West Midlands", 63, "E",
     ["The Marches", "Birmingham and Solihull", "Black Country", "Coventry and Warwickshire",
      "Staffordshire"]),
    ("SWE", "South West", 57, "E",
     ["Gloucestershire Wiltshire and Swindon", "Devon and Cornwall", "Avon Somerset and Dorset"]),
    ("NWE", "North West", 97, "E",
     ["Greater Manchester Central", "Greater Manchester East and West", "Merseyside",
      "Lancashire West", "Lancashire East", "Cumbria"]),
    ("SCO", "Scotland", 99, "S",
     ["Glasgow", "Edinburgh Lothian and Borders", "Lanarkshire and East Dunbartonshire",
      "Ayrshire Dumfries Galloway and Inverclyde", "Forth Valley Fife and Tayside",
      "Highlands Islands Clyde Coast and Grampian"]),
    ("SEE", "South East", 74, "E",
     ["Kent", "Surrey and Sussex", "Thames Valley", "Hampshire and Isle of Wight", "Berkshire"]),
    ("EOE", "East of England", 57, "E",
     ["Essex", "Bedfordshire and Hertfordshire", "Norfolk and Suffolk", "Cambridgeshire"]),
    ("WAL", "Wales", 63, "W",
     ["South East Wales", "South West Wales", "North Wales", "Mid and West Wales"]),
    ("EMD", "East Midlands", 53, "E",
     ["Nottinghamshire", "Derbyshire", "Leicestershire Northamptonshire and Lincolnshire"]),
    ("NEE", "North East", 45, "E",
     ["Tyne and Wear", "Durham and Tees Valley", "Northumberland"]),
]

_STEMS = {
    "E": ["Ash", "Bram", "Cal", "Dray", "Elm", "Fen", "Gorm", "Hart", "Kel", "Lang", "Mar", "Nor",
          "Oak", "Pen", "Ros", "Stan", "Thorn", "Wal", "Wen", "Whit", "Ald", "Bur", "Cor", "Hal",
          "Lin", "Mel", "Red", "Sel", "Tad", "Ux", "Wy", "Brack", "Chel", "Ever", "Frams", "Grin"],
    "S": ["Kil", "Inver", "Dun", "Auch", "Bal", "Glen", "Strath", "Craig", "Kin", "Loch", "Aber",
          "Tor", "Ard", "Bran", "Fal", "Mor"],
    "W": ["Llan", "Aber", "Pont", "Cwm", "Tre", "Bryn", "Caer", "Pen", "Maes", "Rhos", "Ystrad",
          "Glyn", "Nant", "Dol", "Hen", "Bedd"],
}
_ENDS = {
    "E": ["bridge", "by", "caster", "dale", "field", "ford", "ham", "hurst", "ley", "mouth",
          "stead", "ton", "wick", "worth", "well", "borough", "minster", "combe", "thorpe", "stow"],
    "S": ["allan", "beath", "burn", "dee", "more", "ness", "ross", "tay", "kirk", "lorn", "muir",
          "wick", "loch", "haven"],
    "W": ["arth", "dyfi", "elwy", "fach", "gwyn", "ithon", "lys", "nedd", "tawe", "wern", "ydd",
          "rhyd", "ferin", "garth"],
}
_QUALIFIERS = ["North", "South", "East", "West", "Central", "Road", "Cross", "Park"]
_STREETS = ["Mill Lane", "High Street", "Station Road", "Market Place", "Church Street",
            "Bridge Street", "King Street", "Queens Road"]

SATELLITE_SHARE = 0.07
UNKNOWN_OFFICE_CODES = ("ZZ9", "XX0")  # used on a few claims; never in `offices`


@dataclass
class Organisation:
    office_code: np.ndarray        # str, one per office
    office_name: np.ndarray
    reporting_office: np.ndarray   # str: itself, or the parent for a satellite
    district: np.ndarray           # int index into district_* arrays (district at the start)
    weight: np.ndarray             # float: share of customers
    country: np.ndarray            # 'E' / 'S' / 'W'
    district_code: np.ndarray
    district_name: np.ndarray
    district_region: np.ndarray    # int index into region_* arrays
    region_code: np.ndarray
    region_name: np.ndarray
    mover: int                     # office index that moves district
    mover_to: int                  # its district from the move date
    area_code: np.ndarray          # str, one per small area
    area_name: np.ndarray
    area_office: np.ndarray        # int office index serving the area
    area_disadvantaged: np.ndarray  # bool

    @property
    def n_offices(self) -> int:
        return len(self.office_code)

    @property
    def reporting_index(self) -> np.ndarray:
        """Index of each office's reporting office (itself for a main office)."""
        pos = {c: i for i, c in enumerate(self.office_code)}
        return np.array([pos[c] for c in self.reporting_office], dtype=np.int64)


# Planted office outliers (the funnel monitors of MEASURES.md 14 must find them): indicator,
# direction, which reporting office by size (quantile of the reporting offices ordered by
# customers, 1.0 = the largest), and the change to the national behaviour. A high share is
# planted in a smaller office, so that it moves the national benchmark little; a low share
# needs a large office to be detectable at all.
OUTLIERS = (
    ("cross_flow_share", "high", 0.20, "cross_mult", 2.0,
     "cross-flow probability of a spell end x 2 (people pushed onto other benefits)", (("opte_share", "low"),)),
    ("failed_to_sign_share", "high", 0.35, "fts_p", 0.25,
     "25 % of OPtE-type closures recorded as failed to sign whatever happened", ()),
    ("programme_start_share", "high", 0.50, "prog_mult", 3.0,
     "New Deal / FND start probability x 3 (people pushed onto programmes)", (("opte_share", "low"),)),
    ("programme_start_share", "low", 1.00, "prog_mult", 0.15,
     "New Deal / FND start probability x 0.15 (few referrals to the options)", (("opte_share", "high"),)),
)
# (the last item: other indicators the change moves on purpose, and which way: more cross-flows or
# programme starts are more exclusions, so a lower OPtE share)


def plant_outliers(org: Organisation):
    """The planted outlier offices: (Plants of per-office multipliers, records for the truth)."""
    from ingest.synth_world import Plants

    plants = Plants.none(org.n_offices)
    rep = org.reporting_index
    mains = [o for o in range(org.n_offices) if rep[o] == o and o != org.mover]
    size = np.bincount(rep, weights=org.weight, minlength=org.n_offices)
    order = sorted(mains, key=lambda o: (size[o], org.office_code[o]))
    records, used = [], set()
    for indicator, direction, q, param, value, what, side in OUTLIERS:
        free = [o for o in order if o not in used]
        if not free:
            break
        want = int(round(q * (len(order) - 1)))
        o = min(free, key=lambda x: (abs(order.index(x) - want), -order.index(x)))
        used.add(o)
        members = rep == rep[o]
        getattr(plants, param)[members] = value
        records.append({"office_code": str(org.office_code[o]), "indicator": indicator, "direction": direction,
                        "change": what, "parameter": param, "value": value,
                        "side_effects": [{"indicator": i, "direction": d} for i, d in side],
                        "customer_share": round(float(size[o]), 4)})
    return plants, records


def _split(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integers >= minimum summing to total, proportional to weights (largest remainders)."""
    k = len(weights)
    base = np.full(k, minimum, dtype=np.int64)
    rest = total - base.sum()
    if rest <= 0:
        return base
    share = weights / weights.sum() * rest
    add = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - add), kind="stable")
    add[order[: rest - add.sum()]] += 1
    return base + add


def _town_names(rng: np.random.Generator, country: str, n: int, used: set[str]) -> list[str]:
    stems, ends = _STEMS[country], _ENDS[country]
    out: list[str] = []
    while len(out) < n:
        name = stems[rng.integers(len(stems))] + ends[rng.integers(len(ends))]
        if name in used:
            name = f"{name} {_QUALIFIERS[rng.integers(len(_QUALIFIERS))]}"
        if name in used:
            continue
        used.add(name)
        out.append(name)
    return out


def build_organisation(people: int, rng: np.random.Generator) -> Organisation:
    regions, dist_per_reg, off_per_reg, n_off = _sizes(people)
    dcode, dname, dreg, district, country = _districts_and_offices(regions, dist_per_reg, off_per_reg)
    is_sat, parent = _satellites(rng, n_off, district)
    office_code = _office_codes(rng, n_off, is_sat, parent)
    office_name, towns = _office_names(rng, n_off, country, is_sat, parent)
    reporting = office_code[parent]

    weight = rng.lognormal(0.0, 0.5, n_off)
    weight[is_sat] *= 0.3
    weight /= weight.sum()

    mover, mover_to = _mover(rng, n_off, is_sat, parent, district, dcode, dreg)
    area_code, area_name, area_office, area_dis = _areas(rng, people, n_off, weight, country, towns)

    return Organisation(
        office_code=office_code, office_name=office_name, reporting_office=reporting,
        district=district, weight=weight, country=country,
        district_code=np.array(dcode, dtype=object), district_name=np.array(dname, dtype=object),
        district_region=np.array(dreg, dtype=np.int64),
        region_code=np.array([r[0] for r in regions], dtype=object),
        region_name=np.array([r[1] for r in regions], dtype=object),
        mover=mover, mover_to=mover_to,
        area_code=area_code, area_name=area_name, area_office=area_office,
        area_disadvantaged=area_dis,
    )


def _sizes(people: int):
    """The regions used, districts and offices per region, and the number of offices, scaled to `people`."""
    scale = people / FULL_SCALE_PEOPLE
    n_off = max(12, int(round(FULL_SCALE_OFFICES * scale)))
    n_dist = max(3, int(round(48 * n_off / FULL_SCALE_OFFICES)))
    n_reg = int(np.clip(round(n_dist / 4.4), 2, len(REGIONS)))
    regions = REGIONS[:n_reg]
    reg_offices = np.array([r[2] for r in regions], dtype=float)
    reg_ndist_full = np.array([len(r[4]) for r in regions], dtype=float)
    n_dist = max(n_dist, n_reg)
    dist_per_reg = np.minimum(_split(n_dist, reg_ndist_full, 1), reg_ndist_full.astype(int))
    if n_off >= FULL_SCALE_OFFICES and n_reg == len(REGIONS):
        off_per_reg = reg_offices.astype(np.int64)   # the published counts exactly
        n_off = int(off_per_reg.sum())
    else:
        off_per_reg = _split(n_off, reg_offices, 4 * 1)
        off_per_reg = np.maximum(off_per_reg, 4 * dist_per_reg)
        n_off = int(off_per_reg.sum())
    return regions, dist_per_reg, off_per_reg, n_off


def _districts_and_offices(regions, dist_per_reg, off_per_reg):
    """District codes, names and regions; each office's district and country."""
    dcode, dname, dreg = [], [], []
    ocode_reg, ocode_dist, ocountry = [], [], []
    for r, (rcode, _rname, _cnt, country, dnames) in enumerate(regions):
        nd = int(dist_per_reg[r])
        first = len(dcode)
        for j in range(nd):
            dcode.append(f"{rcode}{j + 1:02d}")
            dname.append(dnames[j])
            dreg.append(r)
        per_dist = _split(int(off_per_reg[r]), np.ones(nd), 4)
        for j in range(nd):
            ocode_dist += [first + j] * int(per_dist[j])
            ocode_reg += [r] * int(per_dist[j])
            ocountry += [country] * int(per_dist[j])
    district = np.array(ocode_dist, dtype=np.int64)
    country = np.array(ocountry)
    return dcode, dname, dreg, district, country


def _satellites(rng: np.random.Generator, n_off: int, district: np.ndarray):
    """A share of offices (at least one) report under a main office of their district: (is_sat, parent)."""
    is_sat = np.zeros(n_off, dtype=bool)
    n_sat = max(1, int(round(SATELLITE_SHARE * n_off)))
    cand = rng.permutation(n_off)
    parent = np.arange(n_off)
    for o in cand:
        if is_sat.sum() >= n_sat:
            break
        mains = np.flatnonzero((district == district[o]) & ~is_sat & (np.arange(n_off) != o))
        mains = mains[parent[mains] == mains]
        # keep at least two main offices per district and never make a parent a satellite
        if len(mains) < 2 or (parent == o).sum() > 1:
            continue
        is_sat[o] = True
        parent[o] = mains[rng.integers(len(mains))]
    return is_sat, parent


def _office_codes(rng: np.random.Generator, n_off: int, is_sat: np.ndarray, parent: np.ndarray):
    """Codes: 3 letters (never starting with Q, kept for injected bad rows) for main offices,
    parent code + digit for satellites."""
    letters = np.array(list("ABCDEFGHJKLMNOPRSTUVWY"))
    codes: list[str] = []
    used_codes: set[str] = set()
    while len(codes) < n_off:
        c = "".join(letters[rng.integers(len(letters), size=3)])
        if c not in used_codes and c not in UNKNOWN_OFFICE_CODES:
            used_codes.add(c)
            codes.append(c)
    office_code = np.array(codes, dtype=object)
    sat_no: dict[int, int] = {}
    for o in np.flatnonzero(is_sat):
        p = int(parent[o])
        sat_no[p] = sat_no.get(p, 1) + 1
        office_code[o] = f"{codes[p]}{sat_no[p]}"
    return office_code


def _office_names(rng: np.random.Generator, n_off: int, country: np.ndarray, is_sat: np.ndarray,
                  parent: np.ndarray):
    """Office names and the town of each office (a satellite's is its parent's)."""
    used_names: set[str] = set()
    towns = np.empty(n_off, dtype=object)
    for ctry in ("E", "S", "W"):
        idx = np.flatnonzero(country == ctry)
        towns[idx] = _town_names(rng, ctry, len(idx), used_names)
    office_name = np.empty(n_off, dtype=object)
    for o in range(n_off):
        if is_sat[o]:
            office_name[o] = f"{towns[parent[o]]} ({_STREETS[rng.integers(len(_STREETS))]}) Jobcentre"
            towns[o] = towns[parent[o]]
        else:
            office_name[o] = f"{towns[o]} Jobcentre Plus" if rng.random() < 0.5 else f"{towns[o]} Jobcentre"
    return office_name, towns


def _mover(rng: np.random.Generator, n_off: int, is_sat, parent, district, dcode, dreg) -> tuple[int, int]:
    """The mover: a main office that is nobody's parent, in a district keeping >= 2 offices after;
    and the district it moves to (in the same region if there is one)."""
    movers = [o for o in rng.permutation(n_off)
              if not is_sat[o] and (parent == o).sum() == 1 and (district == district[o]).sum() > 3]
    mover = int(movers[0])
    others = [d for d in range(len(dcode)) if d != district[mover]]
    same_region = [d for d in others if dreg[d] == dreg[district[mover]]]
    mover_to = int((same_region or others)[0])
    return mover, mover_to


def _areas(rng: np.random.Generator, people: int, n_off: int, weight, country, towns):
    """Small areas (about 1,200 people each, at least 4 per office); ~10 % disadvantaged."""
    n_areas = max(4 * n_off, people // 1200)
    area_office = np.sort(rng.choice(n_off, size=n_areas, p=weight))
    area_office[:n_off] = np.arange(n_off)  # every office serves at least one area
    area_office = np.sort(area_office)
    nums = rng.choice(np.arange(1, 900_000), size=n_areas, replace=False)
    prefix = np.where(country[area_office] == "S", "S01", np.where(country[area_office] == "W", "W01", "E01"))
    area_code = np.array([f"{p}{n:06d}" for p, n in zip(prefix, nums)], dtype=object)
    seq = np.zeros(n_areas, dtype=np.int64)
    counts: dict[int, int] = {}
    for i, o in enumerate(area_office):
        counts[int(o)] = counts.get(int(o), 0) + 1
        seq[i] = counts[int(o)]
    area_name = np.array([f"{towns[o]} {s:03d}{'ABCD'[s % 4]}" for o, s in zip(area_office, seq)], dtype=object)
    area_dis = rng.random(n_areas) < 0.10
    area_dis[rng.integers(n_areas)] = True
    return area_code, area_name, area_office, area_dis
