"""The publication as people see it: pages rendered in headless Chromium (no network), a workbook
printed by LibreOffice, a republication after a corrected extract (the real chain), the dbt docs
page, and `opte backfill --cutoff`.

Screenshots are saved under each test's tmp dir (pytest prints its path with -v; the last three
runs are kept under /tmp/pytest-of-<user>/) for review.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from publish_fixture import EMPTY_OFFICE, make_warehouse  # noqa: E402
from test_publish import (  # noqa: E402
    check_workbooks, expected_revisions, published_revisions, sample_home, sample_month,  # noqa: F401
)

from measures.config import SAMPLE_INBOX  # noqa: E402
from measures.publish import publish_month  # noqa: E402

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs "
                                                             "Debian's chromium when run as root)")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed (scripts/test.sh installs "
                                                           "Debian's libreoffice-calc when run as root)")

# every chart of a page and a words of its axis labels that must be drawn
AXIS_LABELS = {
    "chart-trend": ["People", "Month"],
    "chart-waterfall": ["People"],
    "chart-cohorts": ["Weeks since the spell started", "Share of the cohort off benefit"],
    "chart-ranked": ["year-to-date target"],
    "chart-regions": ["year-to-date target"],
    "chart-districts": ["year-to-date target"],
    "chart-agreement": ["People", "Month of the off-flows"],
    "chart-funnels": ["Denominator", "Share"],
    "chart-sustainability": ["Share still off benefit"],
}


def chromium(args: list[str], tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Headless Chromium with an empty profile and no network at all (every host name fails)."""
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def screenshot(page: Path, png: Path, tmp: Path, height: int = 7000) -> float:
    """Render `page` to `png`; returns the share of non-white pixels."""
    from matplotlib.image import imread

    chromium([f"--screenshot={png}", f"--window-size=1280,{height}", page.as_uri()], tmp)
    assert png.exists(), f"chromium wrote no screenshot of {page}"
    pixels = imread(png)[:, :, :3]
    return float((pixels < 0.95).any(axis=2).mean())


def check_page_in_browser(page: Path, tmp: Path) -> str:
    """Render a page: every chart drawn, labelled and with its text alternative; returns the DOM."""
    png = tmp / f"{page.parent.name}-{page.stem}.png"
    assert screenshot(page, png, tmp) > 0.03, f"{page.name}: screenshot nearly blank"
    dom = chromium(["--dump-dom", page.as_uri()], tmp).stdout
    assert dom.startswith("<html") or "<html" in dom[:200], f"{page.name}: no DOM"
    source = page.read_text()
    anchors = re.findall(r'<figure id="(chart-[^"]+)" class="chart">', source)
    assert anchors and anchors == re.findall(r'<figure id="(chart-[^"]+)" class="chart">', dom)
    for anchor in anchors:
        figure = dom.split(f'<figure id="{anchor}" class="chart">', 1)[1].split("</figure>", 1)[0]
        svg = re.search(r"<svg\b[^>]*>", figure)
        assert svg and 'role="img"' in svg.group(0) and "aria-label=" in svg.group(0), anchor
        assert re.search(r"<title>[^<]{10,}</title>", figure) and re.search(r"<desc>[^<]{10,}</desc>", figure)
        texts = " ".join(re.findall(r"<text\b[^>]*>([^<]*)</text>", figure))
        if "No " in figure.split("<figcaption>")[1][:200] and len(re.findall(r"<text\b", figure)) == 1:
            continue  # an empty chart says so in words
        for label in AXIS_LABELS[anchor]:
            assert label in texts, f"{page.name} {anchor}: axis label {label!r} not drawn"
        assert len(re.findall(r"<(path|rect|use|line|polyline)\b", figure)) > 10, f"{anchor} draws nothing"
        assert re.search(r"<figcaption><b>[^<]+</b>", figure) and "<details>" in figure, anchor
    return dom


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("views_home")
    make_warehouse(home)
    return publish_month(home, "2010-03")


@needs_chromium
def test_pages_render_in_headless_chromium(published, tmp_path):
    national = check_page_in_browser(published / "report.html", tmp_path)
    links = sorted(set(re.findall(r'href="(districts/[^"]+\.html)"', national)))
    assert links == ["districts/D1.html", "districts/D2.html", "districts/D3.html"]
    for link in links:  # each link resolves to the district's own page
        target = published / link
        assert target.exists(), link
        dom = chromium(["--dump-dom", target.as_uri()], tmp_path).stdout
        assert re.search(rf"<h1>[^<]*\({target.stem}\)", dom), link
    district = check_page_in_browser(published / "districts" / "D2.html", tmp_path)
    assert f"<td>{EMPTY_OFFICE[0]}</td>" in district
    print(f"screenshots for review: {sorted(str(p) for p in tmp_path.glob('*.png'))}")


# ------------------------------------------------------------------ LibreOffice prints a workbook


def print_headline(workbook: Path, tmp: Path, fit: bool = True) -> list:
    """Print the Headline sheet of `workbook` to PDF with LibreOffice; returns the PDF's pages."""
    from openpyxl import load_workbook
    from pypdf import PdfReader

    wb = load_workbook(workbook)
    for name in wb.sheetnames[1:]:
        del wb[name]
    if not fit:
        wb["Headline"].sheet_properties.pageSetUpPr.fitToPage = False
    copy = tmp / f"headline-{'fit' if fit else 'nofit'}.xlsx"
    wb.save(copy)
    out = tmp / "pdf"
    out.mkdir(exist_ok=True)
    proc = subprocess.run([SOFFICE, f"-env:UserInstallation=file://{tmp / 'lo-profile'}", "--headless",
                           "--convert-to", "pdf", "--outdir", str(out), str(copy)],
                          capture_output=True, text=True, timeout=180)
    pdf = out / f"{copy.stem}.pdf"
    assert pdf.exists(), f"LibreOffice wrote no PDF: {proc.stdout} {proc.stderr}"
    return PdfReader(pdf).pages


@pytest.mark.slow
@needs_soffice
def test_workbook_headline_prints_on_one_page_width(published, tmp_path):
    from openpyxl import load_workbook

    workbook = published / "districts" / "D2.xlsx"
    header = [c.value for c in load_workbook(workbook)["Headline"][4]]
    pages = print_headline(workbook, tmp_path)
    assert len(pages) == 1  # a handful of rows: one page tall, so one page means one page wide
    page = pages[0]
    assert float(page.mediabox.width) > float(page.mediabox.height)  # landscape
    assert round(float(page.mediabox.width)) in (841, 842)  # A4
    text = page.extract_text()
    for label in (header[0], header[-1], "District D2"):
        assert label.split()[0] in text, f"{label!r} not printed"
    # the same sheet printed at full size would not fit: the check above is not trivially true
    assert len(print_headline(workbook, tmp_path, fit=False)) > 1


# ------------------------------------------------------------------ the real chain: a corrected extract


def read_csv_file(path: Path) -> tuple[list[str], list[dict]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = raw.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    return reader.fieldnames, list(reader)


def write_csv_file(path: Path, header: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def corrected_inbox(inbox: Path, month: str) -> tuple[str, str]:
    """A corrected benefit_claims extract (a claim that ended in `month`, in no later extract, is open
    after all) and a corrected offices snapshot (a new office NEW1 in LON01, with no claims).
    Returns (the corrected claim's office, its month)."""
    claims = sorted((SAMPLE_INBOX / "benefit_claims").glob("benefit_claims_*"))
    later_ids = set()
    chosen = None
    for path in reversed(claims):
        header, rows = read_csv_file(path)
        stamp = re.search(r"_(\d{8})", path.name).group(1)
        if stamp[:6] == month.replace("-", ""):
            for row in rows:
                if row["claim_end_date"].startswith(month) and row["claim_id"] not in later_ids \
                        and row["benefit_code"].upper() == "JSA":
                    chosen = row
                    break
            assert chosen, "no claim of the month to correct"
            office = chosen["office_code"]
            chosen["claim_end_date"] = ""
            chosen["end_reason_code"] = ""
            (inbox / "benefit_claims").mkdir(parents=True)
            write_csv_file(inbox / "benefit_claims" / path.name, header, rows)
            break
        later_ids |= {r["claim_id"] for r in rows}
    offices = sorted((SAMPLE_INBOX / "offices").glob("offices_*"))[-1]
    header, rows = read_csv_file(offices)
    template = next(r for r in rows if r["district_code"].upper() == "LON01")
    rows.append({**template, "office_code": "NEW1", "office_name": "Newtown Jobcentre Plus",
                 "reporting_office_code": "NEW1", "valid_from": "2009-10-01", "valid_to": ""})
    (inbox / "offices").mkdir(parents=True)
    write_csv_file(inbox / "offices" / offices.name, header, rows)
    return office, month


@pytest.mark.slow
def test_republication_after_a_corrected_extract(sample_home, tmp_path):
    from ingest.landing import land_inbox
    from measures.build import build

    home = tmp_path / "home"
    shutil.copytree(sample_home, home, ignore=shutil.ignore_patterns(".*.lock", "publish"))
    month = sample_month(home)
    before = publish_month(home, month)
    saved = tmp_path / "before"
    shutil.copytree(before, saved)
    inbox = tmp_path / "inbox"
    office, _ = corrected_inbox(inbox, month)
    report = land_inbox(inbox, home)
    assert not report.rejected_files, report.summary()
    build(home)
    after = publish_month(home, month)
    # revisions.csv lists exactly the cells that changed, with their old and new values
    expected = expected_revisions(saved, after)
    got, rev = published_revisions(after)
    assert got == expected and expected
    changed = rev[(rev["file"] == "opte_office") & (rev["unit_code"] == office) & (rev["month"] == f"{month}-01")]
    offflows = changed[changed["column"] == "offflows"]
    assert len(offflows) == 1 and int(offflows["new_value"].iloc[0]) == int(offflows["old_value"].iloc[0]) - 1
    assert {"district", "region", "national"} <= set(rev[rev["column"] == "offflows"]["level"])
    # the new office, with no off-flows, is on its district's workbook and page
    check_workbooks(after, home, month, planted=("NEW1", "LON01"))
    page = (after / "districts" / "LON01.html").read_text()
    assert "Newtown Jobcentre Plus" in page.split('id="headline"')[1].split("<h2")[0]
    assert "What changed since the last publication" in page and "revised" in page
    if CHROMIUM:
        check_page_in_browser(after / "districts" / "LON01.html", tmp_path)


# ------------------------------------------------------------------ opte docs and opte backfill --cutoff


@pytest.mark.slow
def test_opte_docs_writes_one_page_that_opens_offline_and_shows_the_lineage(sample_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(sample_home, home, ignore=shutil.ignore_patterns(".*.lock", "publish"))
    env = {**os.environ, "OPTE_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "measures.cli", "docs"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    page = home / "docs" / "index.html"
    assert page.exists() and page.stat().st_size > 100_000
    text = page.read_text()
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=[\"']?https?:", text, flags=re.I)
    assert "reporting_units" in text and "This seed is not currently documented" not in text
    manifest = json.loads((home / "dbt" / "target" / "manifest.json").read_text())
    seeds = [n for n in manifest["nodes"].values() if n["resource_type"] == "seed"]
    assert seeds and all(n["description"].strip() for n in seeds)
    if CHROMIUM:
        url = page.as_uri() + "#!/model/model.opte.reporting_units?g_v=1"
        dom = chromium(["--virtual-time-budget=20000", "--dump-dom", url], tmp_path).stdout
        assert "Lineage Graph" in dom and "<canvas" in dom
        assert "reporting_units" in dom
        chromium(["--virtual-time-budget=20000", f"--screenshot={tmp_path / 'docs.png'}", "--window-size=1400,900",
                  url], tmp_path)
        assert (tmp_path / "docs.png").exists()


def test_backfill_past_the_cutoff_fails_before_building(tmp_path):
    env = {**os.environ, "OPTE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "measures.cli", "backfill", "--from", "2010-11", "--to", "2011-01",
                           "--cutoff", "2010-12-31"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "after the month of --cutoff 2010-12-31" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.slow
def test_backfill_with_a_cutoff_publishes_as_of_that_date(sample_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(sample_home, home, ignore=shutil.ignore_patterns(".*.lock", "publish"))
    env = {**os.environ, "OPTE_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "measures.cli", "backfill", "--from", "2010-11", "--to", "2010-12",
                           "--cutoff", "2010-12-31"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((home / "build_info.json").read_text())["cutoff_requested"] == "2010-12-31"
    for month in ("2010-11", "2010-12"):
        manifest = json.loads((home / "publish" / month / "manifest.json").read_text())
        assert manifest["data_cutoff"] == "2010-12-31"
    december = json.loads((home / "publish" / "2010-12" / "manifest.json").read_text())
    assert december["revisions_compared_with"]["report_month"] == "2010-11"
    assert "2010-12" in december["provisional_months"]["opte"]
    national = pd.read_csv(home / "publish" / "2010-12" / "opte_national.csv")
    assert national["month"].max() == "2010-12-01"
