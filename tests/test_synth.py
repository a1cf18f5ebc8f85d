"""Tests of the synthetic inbox generator (`opte synth`, ingest/synth.py).

Small people counts throughout; one medium run checks the calibration. The row checks
re-implement the EXTRACTS.md validation independently of landing (a few dozen lines),
so that the generator is tested on its own.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ingest.synth import resolve_period, synthesize
from ingest.synth_org import build_organisation
from ingest.synth_rules import (classify_offflows, day, measure_agreement, office_monitors, second_thursday,
                                state_pension_age_date)
from ingest.synth_write import COLUMNS, REJECT_REASONS

NINO_RE = re.compile(r"^[A-Z]{2}[0-9]{6}[A-D]$")
FORBIDDEN = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
INCREMENTAL = ("benefit_claims", "customers", "tax_employments", "programme_starts")
KEYS = {"benefit_claims": ("claim_id",), "customers": ("nino",),
        "tax_employments": ("nino", "paye_ref", "start_date"),
        "programme_starts": ("nino", "programme_code", "start_date"),
        "offices": ("office_code", "valid_from"), "disadvantaged_areas": ("area_code", "valid_from"),
        "opte_targets": ("financial_year", "district_code")}
NULLABLE = {"claim_end_date", "end_reason_code", "date_of_birth", "sex", "date_of_death", "area_code", "end_date",
            "valid_to", "area_name"}
NULLABLE_BY_DS = {"programme_starts": {"office_code"}}
DATES = {"claim_start_date", "claim_end_date", "date_of_birth", "date_of_death", "start_date", "end_date",
         "received_date", "valid_from", "valid_to"}
INTS = {"financial_year", "opte_target"}
FLAGS = {"lone_parent", "disabled"}
END_PAIRS = {"benefit_claims": ("claim_start_date", "claim_end_date"), "tax_employments": ("start_date", "end_date"),
             "offices": ("valid_from", "valid_to"), "disadvantaged_areas": ("valid_from", "valid_to")}
FILE_RE = re.compile(r"^(?P<ds>[a-z_]+)_(?P<d>\d{8})\.(?P<fmt>csv|csv\.gz|parquet)$")


def norm_nino(v: str) -> str:
    return re.sub(r"\s", "", v).upper()


def valid_nino(v: str) -> bool:
    n = norm_nino(v)
    return bool(NINO_RE.match(n)) and n[0] not in "DFIQUV" and n[1] not in "DFIOQUV" and n[:2] not in FORBIDDEN


# ----------------------------------------------------------------------------- reading an inbox

def read_file(path: Path) -> tuple[list[str], list[list[str] | None], list[str]]:
    """(lower-case header, records (None for a malformed one), raw header) of one inbox file, all text."""
    if path.name.endswith(".parquet"):
        t = pq.read_table(path)
        cols = t.column_names
        data = [t[c].to_pylist() for c in cols]
        recs = [["" if v is None else str(v) for v in row] for row in zip(*data)]
        return [c.lower() for c in cols], recs, cols
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    header = rows[0]
    recs = [r if len(r) == len(header) else None for r in rows[1:]]
    return [h.lower() for h in header], recs, header


def inbox_files(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.rglob("*") if p.is_file())


def extract_date(path: Path) -> date:
    d = FILE_RE.match(path.name).group("d")
    return date(int(d[:4]), int(d[4:6]), int(d[6:]))


def _real_date(v: str) -> date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        return None
    try:
        return date.fromisoformat(v)
    except ValueError:
        return None


def first_reason(ds: str, row: dict, ext: date) -> str | None:
    """EXTRACTS.md checks in order, up to bad_code (conflicting duplicates are per file)."""
    for c in COLUMNS[ds]:
        if row[c] == "" and c not in NULLABLE and c not in NULLABLE_BY_DS.get(ds, set()):
            return "missing_required"
    if "nino" in row and not valid_nino(row["nino"]):
        return "invalid_nino"
    for c in COLUMNS[ds]:
        if c in DATES and row[c] != "" and _real_date(row[c]) is None:
            return "invalid_date"
    for c in COLUMNS[ds]:
        if c in INTS and not re.fullmatch(r"-?[0-9]+", row[c]):
            return "invalid_number"
    for c in COLUMNS[ds]:
        if c in DATES and row[c] != "" and c not in ("valid_from", "valid_to"):
            d = _real_date(row[c])
            lo = date(1900, 1, 1) if c == "date_of_birth" else date(1970, 1, 1)
            if d < lo or d > ext:
                return "date_out_of_range"
    if ds in END_PAIRS:
        a, b = END_PAIRS[ds]
        if row[b] != "" and _real_date(row[b]) < _real_date(row[a]):
            return "end_before_start"
    if ds == "benefit_claims" and row["benefit_code"].upper() not in ("JSA", "ESA", "IB", "SDA", "IS", "CA", "PC"):
        return "unknown_benefit"
    for c in FLAGS & set(row):
        if row[c].upper() not in ("Y", "N"):
            return "bad_flag"
    if ds == "customers" and row["sex"] != "" and row["sex"].upper() not in ("M", "F"):
        return "bad_code"
    if ds == "tax_employments" and row["form"].upper() not in ("P46", "P45", "RTI"):
        return "bad_code"
    return None


def _normal(ds: str, row: dict) -> tuple:
    out = []
    for c in COLUMNS[ds]:
        v = row[c]
        if c == "nino":
            v = norm_nino(v)
        elif c.endswith("_code") or c in FLAGS or c in ("sex", "form"):
            v = v.upper()
        out.append(v)
    return tuple(out)


def validate_file(path: Path) -> tuple[dict, list[dict], int]:
    """(rejected rows by reason, landed rows as dicts (normalised), exact duplicates) for one file."""
    ds = FILE_RE.match(path.name).group("ds")
    header, recs, _ = read_file(path)
    ext = extract_date(path)
    reasons: dict[str, int] = {}
    passed: list[dict] = []
    for rec in recs:
        if rec is None:
            reasons["malformed_row"] = reasons.get("malformed_row", 0) + 1
            continue
        row = dict(zip(header, rec))
        r = first_reason(ds, row, ext)
        if r:
            reasons[r] = reasons.get(r, 0) + 1
        else:
            passed.append(row)
    groups: dict[tuple, list[tuple]] = {}
    for row in passed:
        n = _normal(ds, row)
        key = tuple(n[COLUMNS[ds].index(k)] for k in KEYS[ds])
        groups.setdefault(key, []).append(n)
    landed, dups = [], 0
    for key, rows in groups.items():
        if len(set(rows)) > 1:
            reasons["conflicting_duplicate"] = reasons.get("conflicting_duplicate", 0) + len(rows)
        else:
            dups += len(rows) - 1
            landed.append(dict(zip(COLUMNS[ds], rows[0])))
    return reasons, landed, dups


def current_state(inbox: Path) -> dict[str, pd.DataFrame]:
    """Latest version of each key per incremental dataset; latest file of each snapshot dataset."""
    out: dict[str, pd.DataFrame] = {}
    files: dict[str, list[Path]] = {}
    for p in inbox_files(inbox):
        files.setdefault(FILE_RE.match(p.name).group("ds"), []).append(p)
    for ds, paths in files.items():
        paths = sorted(paths, key=lambda p: (extract_date(p), p.name))
        frames = []
        for p in paths:
            _, landed, _ = validate_file(p)
            f = pd.DataFrame(landed, columns=COLUMNS[ds])
            f["_ext"] = extract_date(p)
            frames.append(f)
        if ds in INCREMENTAL:
            f = pd.concat(frames, ignore_index=True)
            out[ds] = f.drop_duplicates(list(KEYS[ds]), keep="last").reset_index(drop=True)
        else:
            out[ds] = frames[-1]
    return out


def _days(s: pd.Series) -> pd.Series:
    d = pd.to_datetime(s.replace("", None), format="%Y-%m-%d")
    return ((d - pd.Timestamp("1970-01-01")).dt.days).astype("Int64")


def classify_from_inbox(inbox: Path) -> pd.DataFrame:
    """The off-flows of an inbox read back from its files, classified by the rules."""
    st = current_state(inbox)
    cl, cu, pr, em = st["benefit_claims"], st["customers"], st["programme_starts"], st["tax_employments"]
    people = pd.Index(pd.concat([cl["nino"], cu["nino"], pr["nino"], em["nino"]]).unique())
    claims = pd.DataFrame({"claim_id": cl["claim_id"], "person": people.get_indexer(cl["nino"]),
                           "benefit_code": cl["benefit_code"], "office_code": cl["office_code"],
                           "start": _days(cl["claim_start_date"]), "end": _days(cl["claim_end_date"]),
                           "lone_parent": cl["lone_parent"], "end_reason_code": cl["end_reason_code"].replace("", None)})
    customers = pd.DataFrame({"person": people.get_indexer(cu["nino"]), "dob": _days(cu["date_of_birth"]),
                              "sex": cu["sex"].replace("", None), "dod": _days(cu["date_of_death"])})
    programmes = pd.DataFrame({"person": people.get_indexer(pr["nino"]), "programme_code": pr["programme_code"],
                               "start": _days(pr["start_date"])})
    employments = pd.DataFrame({"person": people.get_indexer(em["nino"]), "paye_ref": em["paye_ref"],
                                "start": _days(em["start_date"])})
    return classify_offflows(claims, customers, programmes, employments)


# ----------------------------------------------------------------------------- fixtures

def _run(tmp: Path, name: str, **kw):
    out = tmp / name / "inbox"
    args = dict(people=1500, start="2008-06", end="2009-11", seed=3)
    args.update(kw)
    summary = synthesize(out=out, **args)
    return out, out.parent / "inbox_truth", summary


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("synth"), "clean")


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("synth"), "dirty", dirty=0.02, bad_files=True)


# ----------------------------------------------------------------------------- tests

def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, dirty):
    inbox, truth, _ = dirty
    again, truth2, _ = _run(tmp_path, "again", dirty=0.02, bad_files=True)
    a = {p.relative_to(inbox): p.read_bytes() for p in inbox_files(inbox)}
    b = {p.relative_to(again): p.read_bytes() for p in inbox_files(again)}
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    assert (truth / "offflows.parquet").read_bytes() == (truth2 / "offflows.parquet").read_bytes()
    other, _, _ = _run(tmp_path, "other", seed=4, dirty=0.02, bad_files=True)
    c = {p.relative_to(other): p.read_bytes() for p in inbox_files(other)}
    assert any(a[k] != c.get(k) for k in a)


def test_summary_string_and_truth_outside_inbox(clean):
    inbox, truth, summary = clean
    text = str(summary)
    assert "files" in text and "rows" in text and "MB" in text and " s " in text
    assert summary.files == len(inbox_files(inbox))
    assert not truth.is_relative_to(inbox)
    assert (truth / "offflows.parquet").is_file() and (truth / "summary.json").is_file()


def test_layout_and_exact_columns(clean):
    inbox, _, _ = clean
    months = pd.period_range("2008-06", "2009-11", freq="M")
    month_ends = {m.end_time.date() for m in months}
    seen: dict[str, set] = {}
    formats, shuffled, mixed = set(), 0, 0
    for p in inbox_files(inbox):
        m = FILE_RE.match(p.name)
        assert m, p
        ds = m.group("ds")
        assert p.parent.name == ds and ds in COLUMNS
        formats.add(m.group("fmt"))
        header, recs, raw = read_file(p)
        assert sorted(header) == sorted(COLUMNS[ds]), p
        shuffled += header != COLUMNS[ds]
        mixed += raw != header
        assert all(r is not None for r in recs), p
        seen.setdefault(ds, set()).add(extract_date(p))
    for ds in INCREMENTAL:
        assert seen[ds] == month_ends, ds
    assert set(seen) == set(COLUMNS)
    first = min(month_ends)
    for ds in ("offices", "disadvantaged_areas", "opte_targets"):
        assert first in seen[ds]
    assert len(seen["offices"]) == 2  # the mover's new snapshot
    assert len(seen["opte_targets"]) == 2  # a file before FY 2009 starts (31 March 2009)
    assert date(2009, 3, 31) in seen["opte_targets"]
    assert formats == {"csv", "csv.gz", "parquet"}
    assert shuffled >= 2 and mixed >= 1


def test_every_nino_valid_after_normalisation(clean):
    inbox, _, _ = clean
    raw_forms = 0
    ninos = 0
    for p in inbox_files(inbox):
        header, recs, _ = read_file(p)
        if "nino" not in header:
            continue
        i = header.index("nino")
        for r in recs:
            v = r[i]
            ninos += 1
            assert valid_nino(v), (p, v)
            raw_forms += v != norm_nino(v)
    assert ninos > 1000 and raw_forms > 10  # some lower-case / spaced / no-break-spaced


def test_clean_inbox_has_no_bad_rows(clean):
    inbox, _, _ = clean
    for p in inbox_files(inbox):
        reasons, _, dups = validate_file(p)
        assert reasons == {} and dups == 0, (p, reasons)


def test_dirty_rows_cover_every_reject_reason(dirty):
    inbox, truth, _ = dirty
    summary = json.loads((truth / "summary.json").read_text())
    bad = {b["file"] for b in summary["bad_files"]}
    total: dict[str, int] = {}
    dups = 0
    for p in inbox_files(inbox):
        if str(p.relative_to(inbox)) in bad:
            continue
        reasons, _, d = validate_file(p)
        dups += d
        for k, v in reasons.items():
            total[k] = total.get(k, 0) + v
    assert set(total) == set(REJECT_REASONS)
    expected = {k: v for k, v in summary["dirty_rows"].items() if k != "exact_duplicate"}
    assert total == expected
    assert dups == summary["dirty_rows"]["exact_duplicate"] > 0


def test_dirty_rows_leave_planted_data_untouched(clean, dirty):
    a = pd.read_parquet(clean[1] / "offflows.parquet")
    b = pd.read_parquet(dirty[1] / "offflows.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_bad_files(dirty):
    inbox, truth, _ = dirty
    summary = json.loads((truth / "summary.json").read_text())
    problems = {b["problem"]: inbox / b["file"] for b in summary["bad_files"]}
    assert set(problems) == {"missing_contract_column", "duplicate_extract_date", "not_csv", "bad_encoding",
                             "duplicate_column"}
    for p in problems.values():
        assert p.is_file() and FILE_RE.match(p.name)
    # missing column
    header = problems["missing_contract_column"].read_text().splitlines()[0].lower().split(",")
    ds = FILE_RE.match(problems["missing_contract_column"].name).group("ds")
    assert set(COLUMNS[ds]) - set(header)
    # a second file for a dataset and date already delivered, sorting later
    dup = problems["duplicate_extract_date"]
    twins = [q for q in dup.parent.iterdir() if q != dup and extract_date(q) == extract_date(dup)]
    assert twins and all(q.name < dup.name for q in twins)
    # not CSV / not UTF-8 / duplicate column
    with pytest.raises(UnicodeDecodeError):
        problems["not_csv"].read_bytes().decode("utf-8")
    with pytest.raises(UnicodeDecodeError):
        problems["bad_encoding"].read_bytes().decode("utf-8")
    cols = problems["duplicate_column"].read_text().splitlines()[0].lower().split(",")
    assert len(cols) != len(set(cols))


def test_esa_never_before_october_2008(tmp_path):
    inbox, _, _ = _run(tmp_path, "esa", people=1000, start="2008-04", end="2009-03")
    st = current_state(inbox)["benefit_claims"]
    esa = st[st["benefit_code"] == "ESA"]
    assert len(esa) > 0
    assert (esa["claim_start_date"] >= "2008-10-01").all()
    ib = st[st["benefit_code"] == "IB"]
    assert (ib["claim_start_date"] < "2008-10-27").all()


def test_truth_matches_the_claims_in_the_inbox(clean):
    inbox, truth, _ = clean
    t = pd.read_parquet(truth / "offflows.parquet")
    assert list(t.columns[:2]) == ["claim_id", "benefit_code"]
    for c in ("offflow_date", "planted_reason", "planted_job_start", "job_start_date", "customer_group"):
        assert c in t.columns
    assert t["claim_id"].is_unique
    st = current_state(inbox)["benefit_claims"]
    closed = st[(st["claim_end_date"] != "") & st["benefit_code"].isin(["JSA", "ESA", "IB", "SDA", "IS"])]
    assert set(closed["claim_id"]) == set(t["claim_id"])
    m = closed.set_index("claim_id").loc[t["claim_id"]]
    assert (m["claim_end_date"].to_numpy() == t["offflow_date"].astype(str).to_numpy()).all()
    assert (m["benefit_code"].to_numpy() == t["benefit_code"].to_numpy()).all()
    # the whole classification, recomputed from the files alone
    back = classify_from_inbox(inbox).set_index("claim_id").loc[t["claim_id"]]
    assert (back["exclusion_reason"].fillna("-").to_numpy() == t["planted_reason"].fillna("-").to_numpy()).all()
    assert (back["is_job_outcome"].to_numpy() == t["planted_job_start"].to_numpy()).all()
    assert (back["customer_group"].to_numpy() == t["customer_group"].to_numpy()).all()
    assert (back["is_proxy"].to_numpy() == t["is_proxy"].to_numpy()).all() and t["is_proxy"].any()
    assert (back["end_reason_code"].fillna("-").to_numpy() == t["end_reason_code"].fillna("-").to_numpy()).all()
    for k in (13, 26):  # the truth's column is null where not due or not OPtE
        known = t[f"back_on_benefit_by_week_{k}"].notna().to_numpy()
        assert known.any() and not known.all()
        assert (back[f"back_on_benefit_{k}"].to_numpy()[known]
                == t[f"back_on_benefit_by_week_{k}"].to_numpy()[known].astype(bool)).all()
    # every reason occurs, and OPtE off-flows
    assert set(t["planted_reason"].dropna()) == {"died", "retired", "returned_within_week", "cross_flow",
                                                 "programme_start"}
    assert t["planted_reason"].isna().mean() > 0.5


def test_planted_cases_follow_the_rules(clean):
    """A few planted off-flows of each reason, checked by hand against the inbox rows."""
    inbox, truth, _ = clean
    t = pd.read_parquet(truth / "offflows.parquet")
    st = current_state(inbox)
    cl, cu, pr = st["benefit_claims"], st["customers"].set_index("nino"), st["programme_starts"]
    by_id = cl.set_index("claim_id")
    for reason in ("died", "retired", "returned_within_week", "cross_flow", "programme_start"):
        for cid in t.loc[t["planted_reason"] == reason, "claim_id"].head(5):
            c = by_id.loc[cid]
            d = date.fromisoformat(c["claim_end_date"])
            n = c["nino"]
            others = cl[(cl["nino"] == n) & (cl["claim_id"] != cid)]
            if reason == "died":
                assert date.fromisoformat(cu.loc[n, "date_of_death"]) <= d + pd.Timedelta(days=7)
            elif reason == "retired":
                row = cu.loc[n]
                spa = state_pension_age_date(np.array([day(row["date_of_birth"])]), np.array([row["sex"] or ""]))[0]
                assert spa <= day(str(d)) + 7
                assert row["date_of_death"] == "" or date.fromisoformat(row["date_of_death"]) > d + pd.Timedelta(days=7)
            elif reason == "returned_within_week":
                same = others[others["benefit_code"] == c["benefit_code"]]
                starts = same["claim_start_date"].map(date.fromisoformat)
                assert ((starts >= d) & (starts <= d + pd.Timedelta(days=7))).any()
            elif reason == "cross_flow":
                diff = others[others["benefit_code"] != c["benefit_code"]]
                ok = diff.apply(lambda r: date.fromisoformat(r["claim_start_date"]) <= d + pd.Timedelta(days=14)
                                and (r["claim_end_date"] == "" or date.fromisoformat(r["claim_end_date"]) > d), axis=1)
                assert ok.any()
            else:
                p = pr[(pr["nino"] == n) & pr["programme_code"].isin(
                    ["NDYP_EMP", "NDYP_FTET", "NDYP_VS", "NDYP_ETF", "ND25_IAP", "FND"])]
                s = p["start_date"].map(date.fromisoformat)
                assert ((s >= d - pd.Timedelta(days=7)) & (s <= d + pd.Timedelta(days=14))).any()


def test_state_pension_age_table():
    cases = [  # (dob, sex, expected)
        ("1944-02-29", "M", "2009-02-28"), ("1953-12-05", "M", "2018-12-05"), ("1949-07-01", "F", "2009-07-01"),
        ("1950-04-05", "F", "2010-04-05"), ("1950-04-06", "F", "2010-05-06"), ("1950-05-05", "F", "2010-05-06"),
        ("1950-05-06", "F", "2010-07-06"), ("1953-04-05", "F", "2016-03-06"), ("1953-04-06", "F", "2016-07-06"),
        ("1953-12-05", "F", "2018-11-06"), ("1953-12-06", "M", "2019-03-06"), ("1954-10-05", "F", "2020-09-06"),
        ("1954-10-06", "", "2020-10-06"), ("1960-04-06", "M", "2026-05-06"), ("1961-03-05", "F", "2028-02-05"),
        ("1961-03-06", "F", "2028-03-06"), ("1952-01-01", "", "2017-01-01"),
    ]
    dob = np.array([day(c[0]) for c in cases])
    sex = np.array([c[1] for c in cases], dtype=object)
    got = [str(np.datetime64(int(x), "D")) for x in state_pension_age_date(dob, sex)]
    assert got == [c[2] for c in cases]


def test_count_dates_are_second_thursdays():
    firsts = np.array([day(f"2009-{m:02d}-01") for m in range(1, 13)])
    got = [str(np.datetime64(int(x), "D")) for x in second_thursday(firsts)]
    assert got[:4] == ["2009-01-08", "2009-02-12", "2009-03-12", "2009-04-09"]


def test_rules_on_hand_made_cases():
    D = day("2010-06-15")
    claims = pd.DataFrame([
        # person 1: died long before the off-flow (literal rule), also a return: died wins
        ("J1", 1, "JSA", "AAA", D - 100, D, "N"), ("J1b", 1, "JSA", "AAA", D + 3, None, "N"),
        # person 2: return on the same day (start = d) is a return
        ("J2", 2, "JSA", "AAA", D - 50, D, "N"), ("J2b", 2, "JSA", "AAA", D, D + 40, "N"),
        # person 3: overlapping same-benefit claim started before d: not a return; CA open since long: cross-flow
        ("J3", 3, "JSA", "AAA", D - 50, D, "N"), ("J3b", 3, "JSA", "AAA", D - 10, D + 30, "N"),
        ("C3", 3, "CA", "AAA", D - 900, None, "N"),
        # person 4: other benefit ending on d exactly is no cross-flow; FND 7 days before d excludes
        ("J4", 4, "JSA", "AAA", D - 200, D, "N"), ("E4", 4, "ESA", "AAA", D - 100, D, "N"),
        # person 5: programme 8 days before (no), unknown code (no): OPtE, job 14 days before d matched
        ("J5", 5, "JSA", "AAA", D - 300, D, "Y"),
        # person 6: a woman born 1950-04-10 (State Pension age 2010-05-06): retired
        ("I6", 6, "IS", "AAA", D - 400, D, "Y"),
        # person 7: no customers row: cannot be died/retired
        ("J7", 7, "JSA", "AAA", D - 30, D, "N"),
        # person 8: two off-flows equally near an employment: tie goes to the later; then larger claim_id
        ("J8a", 8, "JSA", "AAA", D - 90, D, "N"), ("J8b", 8, "JSA", "AAA", D - 10, D + 20, "N"),
        ("J8c", 8, "IS", "AAA", D - 12, D + 20, "N"),
    ], columns=["claim_id", "person", "benefit_code", "office_code", "start", "end", "lone_parent"])
    claims["end"] = claims["end"].astype("Int64")
    customers = pd.DataFrame({
        "person": [1, 2, 3, 4, 5, 6, 8],
        "dob": pd.array([day("1970-01-01")] * 5 + [day("1950-04-10"), day("1980-01-01")], dtype="Int64"),
        "sex": ["M", "F", "M", "F", None, "F", "M"],
        "dod": pd.array([D - 400, None, None, None, None, None, None], dtype="Int64"),
    })
    programmes = pd.DataFrame([(4, "FND", D - 7), (5, "FND", D - 8), (5, "WNP", D)],
                              columns=["person", "programme_code", "start"])
    employments = pd.DataFrame([(5, "123/AB00001", D - 14), (8, "123/AB00002", D + 10)],
                               columns=["person", "paye_ref", "start"])
    r = classify_offflows(claims, customers, programmes, employments).set_index("claim_id")
    assert r.loc["J1", "exclusion_reason"] == "died"
    assert r.loc["J2", "exclusion_reason"] == "returned_within_week"
    assert r.loc["J3", "exclusion_reason"] == "cross_flow"
    assert r.loc["J4", "exclusion_reason"] == "programme_start"
    assert pd.isna(r.loc["J5", "exclusion_reason"]) and r.loc["J5", "is_job_outcome"]
    assert r.loc["J5", "customer_group"] == "lone_parent"
    assert r.loc["I6", "exclusion_reason"] == "retired"
    assert pd.isna(r.loc["J7", "exclusion_reason"])
    # J8b and J8c both end at D+20, |s - d| = 20 for both; J8a at distance 20 too but earlier: later wins,
    # then the larger claim_id ("J8c" > "J8b")
    assert r.loc["J8c", "is_job_outcome"] and not r.loc["J8b", "is_job_outcome"] and not r.loc["J8a", "is_job_outcome"]
    assert r.loc["J8a", "exclusion_reason"] == "cross_flow"  # J8c (IS) open across J8a's end
    assert pd.isna(r.loc["J8c", "exclusion_reason"])  # J8b ends on d itself: no cross-flow


def test_organisation_scales():
    small = build_organisation(4000, np.random.default_rng(1))
    assert len(small.region_code) == 2 and len(small.district_code) == 3
    assert 10 <= small.n_offices <= 16
    assert (small.reporting_office != small.office_code).sum() >= 1
    assert small.district[small.mover] != small.mover_to
    full = build_organisation(5_000_000, np.random.default_rng(1))
    assert full.n_offices == 741 and len(full.region_code) == 11 and len(full.district_code) == 48
    counts = pd.Series(full.region_name[full.district_region[full.district]]).value_counts().to_dict()
    assert counts["Scotland"] == 99 and counts["North East"] == 45 and counts["London"] == 74
    assert {"South London", "South Yorkshire", "The Marches"} <= set(full.district_name)
    assert all(re.fullmatch(r"[A-Z0-9]{3,4}", c) for c in full.office_code)
    assert len(set(full.office_code)) == 741
    assert (full.area_disadvantaged.mean() > 0.07) and (full.area_disadvantaged.mean() < 0.13)


def test_calibration_on_a_medium_run(tmp_path):
    _, truth, _ = _run(tmp_path, "medium", people=20000, start="2008-04", end="2010-09", seed=11)
    s = json.loads((truth / "summary.json").read_text())
    shares = s["jsa_cohort_offflow_shares"]
    assert abs(shares["13"]["share"] - 0.56) < 0.04
    assert abs(shares["26"]["share"] - 0.78) < 0.04
    assert abs(shares["52"]["share"] - 0.90) < 0.04
    conv = s["conversion_by_group_mature"]
    assert abs(conv["lone_parent"]["rate"] - 0.65) < 0.07
    assert abs(conv["sick_or_disabled"]["rate"] - 0.33) < 0.06
    er = s["jsa_end_reason_shares"]
    assert 0.34 < er["FW"] < 0.47 and 0.24 < er["FTS"] < 0.37 and 0.09 < er["NK"] < 0.19
    reasons = s["offflows"]["by_reason"]
    assert all(reasons.get(k, 0) > 0 for k in ("died", "retired", "returned_within_week", "cross_flow",
                                               "programme_start", "opte"))
    # returns to benefit: the counts follow the planted probabilities (3.5 standard errors of a sum of
    # independent Bernoulli draws), and JSA leavers recorded as found work come back within 26 weeks
    # at the published rate (35.4 %, Hansard 12 July 2004, col. 951W) within 3.5 SE + 0.01
    for k, r in s["planted_returns"]["national"].items():
        assert r["opte_without_planted_rate"] == 0
        assert abs(r["back_on_benefit"] - r["planted_expected"]) < 3.5 * r["planted_se"], (k, r)
    t = pd.read_parquet(truth / "offflows.parquet")
    fw = t[(t["benefit_code"] == "JSA") & t["planted_reason"].isna() & (t["end_reason_code"] == "FW")
           & t["back_on_benefit_by_week_26"].notna()]
    rate = fw["back_on_benefit_by_week_26"].astype(bool).mean()
    assert abs(rate - 0.354) < 3.5 * np.sqrt(0.354 * 0.646 / len(fw)) + 0.01, rate
    # the proxy: an undercount of OPtE (the planted FW/IW recording) that tracks it across office-months
    for a in s["planted_proxy"]["agreement"]:
        assert a["scale"] > 1.5 and abs(a["x_total"] - a["planted_x_total"]) < 3.5 * a["planted_x_total_se"], a
        if a["level"] == "office":
            assert a["pearson_r"] > 0.9, a
    # every planted outlier is flagged in the planted direction at every year end with a full window
    flags = {(f["month"], f["office_code"], f["indicator"]): f["flag"] for f in s["funnel_flags_at_year_end"]}
    for month in ("2009-03-01", "2010-03-01"):
        for o in s["planted_outliers"]:
            assert flags.get((month, o["office_code"], o["indicator"])) == o["direction"], (month, o)


def _files(inbox: Path) -> dict:
    return {str(p.relative_to(inbox)): p.read_bytes() for p in inbox_files(inbox)}


def test_synth_is_stable_in_its_end_month(tmp_path):
    """Same seed, one more month: every file of the shorter inbox is byte-identical in the longer one,
    which only adds files: the new month's extracts (carrying late notices for earlier months) and,
    here, the snapshot that announces the office move."""
    kw = dict(people=1500, start="2008-04", seed=9, dirty=0.02, bad_files=True)
    short, _, _ = _run(tmp_path, "short", end="2009-08", **kw)
    long_, _, _ = _run(tmp_path, "long", end="2009-09", **kw)
    a, b = _files(short), _files(long_)
    assert set(a) < set(b)
    changed = [k for k in a if a[k] != b[k]]
    assert not changed, changed
    added = set(b) - set(a)
    # the new month's four extracts and the snapshot announcing the move (1 October 2009)
    assert sorted(k.split(".")[0] for k in added) == sorted(
        f"{ds}/{ds}_20090930" for ds in (*INCREMENTAL, "offices")), added
    # late notices: the new month's files carry closures and HMRC notifications of earlier months
    landed = {k.split("/")[0]: validate_file(long_ / k)[1] for k in added}
    ended = [r["claim_end_date"] for r in landed["benefit_claims"] if r["claim_end_date"]]
    assert any(e < "2009-09-01" for e in ended) and any(e >= "2009-09-01" for e in ended)
    assert any(r["start_date"] < "2009-09-01" for r in landed["tax_employments"])
    first_offices = validate_file(short / "offices" / "offices_20080430.csv")[1]
    assert len(landed["offices"]) == len(first_offices) + 1  # the mover's second row


def test_synth_does_not_depend_on_the_chunk_size(tmp_path):
    a_out, a_truth, _ = _run(tmp_path, "one_chunk", people=1200, start="2009-01", end="2009-09", dirty=0.01)
    b_out = tmp_path / "chunks" / "inbox"
    synthesize(out=b_out, people=1200, start="2009-01", end="2009-09", seed=3, dirty=0.01, chunk_people=250)
    assert _files(a_out) == _files(b_out)
    ta = pd.read_parquet(a_truth / "offflows.parquet").sort_values("claim_id").reset_index(drop=True)
    tb = pd.read_parquet(b_out.parent / "inbox_truth" / "offflows.parquet").sort_values("claim_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ta, tb)
    for name in ("office_monitors", "measure_agreement", "opte_sustainability", "opte_monthly"):
        pd.testing.assert_frame_equal(pd.read_parquet(a_truth / f"{name}.parquet"),
                                      pd.read_parquet(b_out.parent / "inbox_truth" / f"{name}.parquet"))


def test_period_defaults_and_years():
    # the default: three financial years, so that every projection has a previous year
    assert resolve_period(None, None, None) == ("2008-04", "2011-03")
    assert resolve_period(None, None, 10) == ("2001-04", "2011-03")
    assert resolve_period("2005-04", None, 3) == ("2005-04", "2008-03")
    assert resolve_period(None, "2010-12", 1) == ("2010-01", "2010-12")
    assert resolve_period("2009-04", "2009-06", None) == ("2009-04", "2009-06")
    from measures.errors import OpteError
    with pytest.raises(OpteError, match="at most two"):
        resolve_period("2001-04", "2011-03", 10)
    with pytest.raises(OpteError, match="at least 1"):
        resolve_period(None, None, 0)


def test_cli_years(tmp_path, capsys):
    from measures.cli import main

    out = tmp_path / "inbox"
    assert main(["synth", "--out", str(out), "--people", "300", "--years", "2", "--end", "2009-03"]) == 0
    claims = sorted(p.name[len("benefit_claims_"):][:8] for p in (out / "benefit_claims").iterdir())
    assert len(claims) == 24 and claims[0] == "20070430" and claims[-1] == "20090331"
    s = json.loads((tmp_path / "inbox_truth" / "summary.json").read_text())
    assert (s["generator"]["start"], s["generator"]["end"]) == ("2007-04", "2009-03")
    assert s["targets"]["financial_years"] == [2007, 2008, 2009]
    assert "synthetic inbox" in capsys.readouterr().out


def test_back_on_benefit_and_proxy_rules_at_the_boundaries():
    """MEASURES.md 12-13 in synth_rules: in-scope claim with d < start <= d + 7k, any benefit and office."""
    D = day("2010-06-15")
    rows = [("J1", 1, "JSA", "AAA", D - 100, D, "N", "FW")]
    for i, (start, benefit) in enumerate([(D, "JSA"), (D + 91, "ESA"), (D + 92, "IS"), (D + 182, "IB"),
                                          (D + 183, "JSA"), (D + 10, "CA")]):
        # person 10+i: an OPtE off-flow on D, then one other claim starting at `start`
        rows += [(f"A{i}", 10 + i, "JSA", "AAA", D - 50, D, "N", "iw"), (f"B{i}", 10 + i, benefit, "BBB", start, None,
                                                                       "N", None)]
    claims = pd.DataFrame(rows, columns=["claim_id", "person", "benefit_code", "office_code", "start", "end",
                                         "lone_parent", "end_reason_code"])
    claims["end"] = claims["end"].astype("Int64")
    r = classify_offflows(claims, pd.DataFrame({"person": [], "dob": pd.array([], dtype="Int64"), "sex": [],
                                                "dod": pd.array([], dtype="Int64")}),
                          pd.DataFrame(columns=["person", "programme_code", "start"]),
                          pd.DataFrame(columns=["person", "paye_ref", "start"])).set_index("claim_id")
    assert r.loc["J1", "is_proxy"] and r.loc["A0", "is_proxy"]  # FW, and iw matched case-insensitively
    want = {"A0": (None, None), "A1": (True, True), "A2": (False, True), "A3": (False, True),
            "A4": (False, False), "A5": (False, False)}
    assert r.loc["A0", "exclusion_reason"] == "returned_within_week"   # a claim starting on d is a return ...
    assert not r.loc["A0", "back_on_benefit_13"]                       # ... and not back on benefit (d < start)
    for cid, (b13, b26) in want.items():
        if b13 is not None:
            assert (r.loc[cid, "back_on_benefit_13"], r.loc[cid, "back_on_benefit_26"]) == (b13, b26), cid
    assert r.loc["A5", "exclusion_reason"] == "cross_flow"  # CA is a cross-flow destination, not in scope


def test_agreement_and_funnel_rules_on_hand_made_figures():
    monthly = pd.DataFrame({
        "level": "office", "unit_code": ["A", "A", "A", "B", "B"], "month": [1, 2, 3, 1, 2],
        "financial_year": 2009, "proxy_offflows": [1, 2, 3, 0, 0], "opte_offflows": [2, 4, 6, 5, 5],
        "job_outcomes": [1, 1, 1, 1, 0], "opte_is_final": [True, True, True, False, True],
        "jot_is_final": [True, True, True, True, True], "proxy_p_sum": 0.0, "proxy_p_var": 0.0})
    a = measure_agreement(monthly).set_index("pair")
    pvo = a.loc["proxy_vs_opte"]  # pairs: A1, A2, A3, B2 (B1 is provisional)
    assert (pvo["pairs"], pvo["x_total"], pvo["y_total"]) == (4, 6, 17)
    x, y = np.array([1, 2, 3, 0]), np.array([2, 4, 6, 5])
    assert pvo["scale"] == pytest.approx(17 / 6)
    assert pvo["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert pvo["mean_abs_pct_error"] == pytest.approx(np.mean(np.abs(17 / 6 * x - y) / y))
    ovj = a.loc["opte_vs_jot"]  # y = job outcomes; y = 0 in B2 is left out of the error
    assert ovj["pairs"] == 5 and ovj["mean_abs_pct_error"] == pytest.approx(
        np.mean(np.abs(4 / 22 * np.array([2, 4, 6, 5])[:4] - np.array([1, 1, 1, 1])) / 1))
    flat = monthly.assign(job_outcomes=1)
    assert pd.isna(measure_agreement(flat).set_index("pair").loc["opte_vs_jot", "pearson_r"])  # no variance in y
    two = measure_agreement(monthly[monthly["unit_code"] == "B"]).set_index("pair")
    assert pd.isna(two.loc["opte_vs_jot", "pearson_r"])  # fewer than 3 pairs
    assert pd.isna(two.loc["proxy_vs_opte", "scale"])  # x_total 0

    # funnel: p = 100/1000; office X 40/100 is far above, Y 10/100 on p, Z 1/100 beyond the 95 % limit
    # only; the window is 12 months: month 13 drops month 1
    def om(office, month, n, a):
        return dict(reporting_office_code=office, month=month, offflows=n, opte_offflows=n - a,
                    excluded_cross_flow=a, excluded_programme_start=0, excluded_returned_within_week=0,
                    opte_failed_to_sign=0)
    first = [day(f"2009-{m:02d}-01") for m in range(1, 13)] + [day("2010-01-01")]
    frame = pd.DataFrame([om("X", first[0], 100, 40), om("Y", first[0], 100, 10), om("Z", first[0], 100, 1),
                          om("W", first[0], 700, 49), om("X", first[12], 100, 10)])
    mon = office_monitors(frame, lambda codes, on: np.array(["D1"] * len(codes), dtype=object))
    jan = mon[(mon["month"] == first[0]) & (mon["indicator"] == "cross_flow_share")].set_index("office_code")
    assert jan.loc["X", "benchmark_share"] == pytest.approx(0.1)
    assert jan.loc["X", "flag"] == "high" and pd.isna(jan.loc["Y", "flag"]) and pd.isna(jan.loc["Y", "warning"])
    lim = 0.1 - 1.96 * np.sqrt(0.09 / 100)
    assert jan.loc["Z", "warning"] == "low" and pd.isna(jan.loc["Z", "flag"]) and 0.1 - 3.09 * 0.03 < 0.01 < lim
    assert jan.loc["X", "upper_limit"] == pytest.approx(0.1 + 3.09 * 0.03)
    nxt = mon[(mon["month"] == first[12]) & (mon["indicator"] == "cross_flow_share")]
    assert list(nxt["office_code"]) == ["X"] and nxt["numerator"].tolist() == [10]  # January 2009 left the window
    assert pd.isna(nxt["flag"].iloc[0])  # p = share: nothing to compare
    # failed to sign: no OPtE failed to sign anywhere, p = 0: no flag at all
    assert mon[mon["indicator"] == "failed_to_sign_share"]["flag"].isna().all()


@pytest.mark.parametrize("start,end", [("2009-04", "2009-04"), ("2009-03", "2009-04"), ("2009-01", "2009-03")])
def test_short_periods(tmp_path, start, end):
    inbox, truth, summary = _run(tmp_path, "short", people=300, start=start, end=end)
    s = json.loads((truth / "summary.json").read_text())
    files = inbox_files(inbox)
    assert len({p.name for p in files}) == len(files) == summary.files
    offices = current_state(inbox)["offices"]
    mover = s["organisation"]["mover"]
    rows = offices[offices["office_code"] == mover["office_code"]]
    if s["generator"]["move_date"]:
        assert sorted(rows["district_code"]) == sorted([mover["from_district"], mover["to_district"]])
        assert (rows["valid_from"] == s["generator"]["move_date"]).sum() == 1
    else:
        assert len(rows) == 1


def test_staggered_ends_add_header_only_extracts_and_change_nothing_else(tmp_path, clean):
    """The ground-truth world's datasets end on different dates (MEASURES.md section 9: the
    cut-off is the earliest of the four datasets' latest extracts): customers on the last day of
    the period, the others later, in header-only extracts. Every other file and the truth's
    figures are those of the same world without them."""
    from ingest.synth import STAGGERED_END_DAYS
    inbox, truth, summary = clean
    staggered, truth2, summary2 = _run(tmp_path, "staggered", staggered_ends=True)
    a = {p.relative_to(inbox): p.read_bytes() for p in inbox_files(inbox)}
    b = {p.relative_to(staggered): p.read_bytes() for p in inbox_files(staggered)}
    extra = sorted(set(b) - set(a))
    assert set(a) <= set(b) and all(a[k] == b[k] for k in a)
    assert summary2.files == summary.files + 3 == len(b)
    cutoff = json.loads((truth / "summary.json").read_text())["period"]["data_cutoff"]
    latest = {}
    for rel in b:
        dataset, stamp = rel.parts[0], rel.name.split("_")[-1].split(".")[0]
        if dataset in ("benefit_claims", "customers", "tax_employments", "programme_starts"):
            latest[dataset] = max(latest.get(dataset, ""), f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}")
    assert latest["customers"] == cutoff == min(latest.values())
    assert len(set(latest.values())) == 4
    for rel in extra:
        assert rel.parts[0] in STAGGERED_END_DAYS
        body = b[rel].decode().strip().splitlines()
        assert len(body) == 1 and body[0].replace('"', "").lower().startswith(("claim_id", "nino")), rel  # the header alone
    for name in ("offflows", "office_months", "opte_monthly", "opte_sustainability", "office_monitors",
                 "measure_agreement"):
        assert (truth / f"{name}.parquet").read_bytes() == (truth2 / f"{name}.parquet").read_bytes(), name
