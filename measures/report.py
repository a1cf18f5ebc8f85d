"""The pages of a publication (PUBLICATION.md): `districts/<code>.html` and the national `report.html`.

Each page is one self-contained HTML file: inline CSS, inline SVG charts (measures.charts), no
script, font, image or stylesheet fetched from anywhere, so it opens offline and two publications
of the same figures give the same bytes. The national page is the front page: the national
picture, regions and districts ranked, the agreement between the proxy, OPtE and JOT, a
data-quality line for unallocated off-flows, what changed since the last publication, and a link
to every district page. A district page shows the district and every office it had at the end of
the month. The external release leaves out every office row, chart and table.
"""
from __future__ import annotations

import html

import pandas as pd

from measures import charts
from measures import dictionary as dd
from measures.views import EXCLUSION_COLUMNS, HEADLINE_COLUMNS, View, _none

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 1.5em auto; color: #1a1a1a; max-width: 1180px;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.55em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
  border-bottom: 2px solid #0072B2; padding-bottom: 0.15em; } h3 { font-size: 1.02em; }
p.meta { color: #444; margin-top: 0; }
nav a, a { color: #0b5394; }
table { border-collapse: collapse; font-size: 0.84em; margin: 0.5em 0 0.8em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; vertical-align: top; }
th { background: #eef2f5; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: bold; background: #f6f8fa; }
td.rag-green { background: #c6efce; } td.rag-amber { background: #ffeb9c; } td.rag-red { background: #ffc7ce; }
.note { background: #fff8e1; padding: 0.5em 0.9em; border-left: 5px solid #E69F00; margin: 0.8em 0; }
.dq { background: #eef2f5; padding: 0.5em 0.9em; border-left: 5px solid #8C8C8C; }
figure { margin: 0.6em 0 1.2em; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.88em; color: #333; max-width: 60em; }
details { font-size: 0.88em; margin-top: 0.3em; } summary { cursor: pointer; color: #0b5394; }
ul.districts { columns: 3; font-size: 0.92em; }
@media print { details { display: none; } h2 { page-break-after: avoid; } figure { page-break-inside: avoid; } }
"""

RAG_WORDS = {"green": "Green", "amber": "Amber", "red": "Red"}
PAIRS = {"proxy_vs_opte": "Proxy against OPtE", "opte_vs_jot": "OPtE against job outcomes",
         "proxy_vs_jot": "Proxy against job outcomes"}


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def cell(col: str, value) -> tuple[str, str]:
    """(text, css class) of one published value as a person reads it."""
    v = _none(value)
    unit = dd.COLUMNS[col].unit if col in dd.COLUMNS else dd.TEXT
    if col in ("rag", "projected_rag"):
        return (RAG_WORDS.get(v, "–") if v else "–"), (f"rag-{v}" if v else "")
    if v is None:
        return "–", "n" if unit in (dd.PEOPLE, dd.POINTS, dd.SHARE, dd.NUMBER) else ""
    if col == "financial_year":
        return f"{int(v)}-{(int(v) + 1) % 100:02d}", ""
    if col == "pair":
        return PAIRS.get(v, str(v)), ""
    if unit in (dd.PEOPLE, dd.POINTS):
        return charts.num(v), "n"
    if unit == dd.SHARE:
        return charts.pct(v), "n"
    if unit == dd.NUMBER:
        return (charts.num(v, 2) if isinstance(v, float) and not float(v).is_integer() else charts.num(v)), "n"
    if unit == dd.FLAG:
        if col in ("opte_is_final", "jot_is_final"):
            return ("Final" if v else "Provisional"), ""
        return ("Yes" if v else "No"), ""
    if unit == dd.MONTH:
        return charts.month_label(pd.Timestamp(v).date()), ""
    return str(v), ""


def table(df: pd.DataFrame, columns: list[str], labels: dict[str, str] | None = None,
          total_first: bool = False, links: dict[str, str] | None = None) -> str:
    labels = labels or {}
    head = "".join(f"<th>{esc(labels.get(c, dd.label(c)))}</th>" for c in columns)
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cells = []
        for c in columns:
            text, cls = cell(c, r.get(c))
            content = esc(text)
            if links and c == "unit_name" and r.get("unit_code") in links:
                content = f'<a href="{esc(links[r.get("unit_code")])}">{content}</a>'
            cells.append(f'<td class="{cls}">{content}</td>' if cls else f"<td>{content}</td>")
        cls = ' class="total"' if total_first and i == 0 else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(chart: charts.Chart, anchor: str) -> str:
    data = ""
    if chart.headers:
        head = "".join(f"<th>{esc(h)}</th>" for h in chart.headers)
        rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in chart.rows)
        data = (f"<details><summary>The figures behind this chart (text alternative)</summary>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>")
    return (f'<figure id="{anchor}" class="chart">{chart.svg}<figcaption><b>{esc(chart.title)}.</b> '
            f"{esc(chart.summary)}</figcaption>{data}</figure>")


def page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        *body,
        "</body></html>",
    ]) + "\n"


def _notices(view: View) -> list[str]:
    ctx = view.ctx
    out = []
    if ctx.provisional.get("opte") or ctx.provisional.get("jot"):
        out.append(f'<p class="note">{esc(ctx.provisional_note())}</p>')
    if ctx.external:
        out.append('<p class="note">External release: counts and points are rounded to the nearest 5; a rate '
                   "is withheld where its denominator is below 10; every rate, percentage of target, RAG status "
                   "and projection is worked out again from the rounded figures; no figures below district "
                   "level.</p>")
    return out


HEADLINE = ["unit_code", "unit_name", "opte_offflows", "offflows", "opte_ytd", "opte_target_ytd",
            "pct_of_target_ytd", "rag", "opte_target_annual", "opte_projected_annual", "projected_pct_of_target",
            "projected_rag"]
HEADLINE_LABELS = {"unit_code": "Code", "unit_name": "Office", "opte_offflows": "OPtE off-flows this month",
                   "offflows": "All off-flows this month"}


def _present(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """The columns the publication holds (new measures appear once the warehouse has them)."""
    return [c for c in columns if c in df.columns and (c in ("unit_code", "unit_name") or df[c].notna().any()
                                                       or c in ("opte_ytd", "pct_of_target_ytd", "rag"))]


def _revisions_section(view: View, district: str | None, level_word: str) -> list[str]:
    counts, rows = view.revisions(district)
    out = ["<h2 id=\"changes\">What changed since the last publication</h2>",
           f"<p>{esc(view.ctx.previous_note())}</p>"]
    if view.ctx.previous is None:
        return out
    if not len(counts):
        out.append(f"<p>No published figure for {esc(level_word)} changed.</p>")
        return out
    summary = counts.groupby(["file", "change"], as_index=False)["cells"].sum()
    out.append("<p>Changed cells by file and kind of change (the full list is in "
               f"<a href=\"{'../' if district else ''}revisions.csv\">revisions.csv</a>):</p>")
    out.append("<table><thead><tr><th>File</th><th>Change</th><th>Cells</th></tr></thead><tbody>"
               + "".join(f"<tr><td>{esc(r.file)}</td><td>{esc(r.change)}</td><td class=\"n\">{int(r.cells):,}</td></tr>"
                         for r in summary.itertuples()) + "</tbody></table>")
    revised = rows[rows["change"] == "revised"] if len(rows) else rows
    if len(revised):
        shown = revised.head(60)
        out.append("<h3>Revised figures</h3><table><thead><tr><th>File</th><th>Unit</th><th>Month</th><th>Row</th>"
                   "<th>Figure</th><th>Previously</th><th>Now</th></tr></thead><tbody>"
                   + "".join(f"<tr><td>{esc(r.file)}</td><td>{esc(_none(r.unit_name) or r.unit_code)}</td>"
                             f"<td>{esc(_none(r.month) or '')}</td><td>{esc(_none(r.row_key) or '')}</td>"
                             f"<td>{esc(dd.COLUMNS[r.column].label if r.column in dd.COLUMNS else r.column)}</td>"
                             f"<td class=\"n\">{esc(_none(r.old_value) or '')}</td>"
                             f"<td class=\"n\">{esc(_none(r.new_value) or '')}</td></tr>"
                             for r in shown.itertuples()) + "</tbody></table>")
        if len(revised) > len(shown):
            out.append("<p>… and more: see revisions.csv.</p>")
    return out


def _meta(view: View) -> str:
    ctx = view.ctx
    return (f'<p class="meta">Report month <b>{esc(charts.month_label(ctx.month.first_day))}</b>. Data cut-off '
            f"<b>{ctx.cutoff.isoformat()}</b>. Code version {esc(ctx.code_version)}.</p>")


def _cohort_table(view: View, level: str, codes: list[str]) -> str:
    """The latest cohort due at each week, for each unit (JSA)."""
    rows = view.cohort_rows(level, codes)
    if rows is None or not len(rows):
        return ""
    jsa = rows[(rows["benefit_code"] == "JSA") & rows["is_due"].fillna(False).astype(bool)]
    if not len(jsa):
        return ""
    weeks = sorted(jsa["week"].dropna().astype(int).unique())
    head = "<th>Code</th><th>Name</th>" + "".join(f"<th>Week {w}: latest cohort due</th>" for w in weeks)
    # each unit's first row and, for each week, its row of the latest cohort (grouped once, not filtered
    # per unit and week)
    first = {k: v[0] for k, v in jsa.groupby("unit_code", sort=False).indices.items()}
    by_month = jsa.sort_values("cohort_month", kind="stable")
    latest = {k: v[-1] for k, v in by_month.groupby(["unit_code", "week"], sort=False).indices.items()}
    body = []
    for code in codes:
        if code not in first:
            continue
        u = jsa.iloc[[first[code]]]
        cells = []
        for w in weeks:
            if (code, w) in latest:
                r = by_month.iloc[latest[(code, w)]]
                target = _none(r["target_rate"])
                cells.append(f'<td class="n">{charts.pct(_none(r["offflow_rate"]))} ({charts.month_label(r["cohort_month"])}'
                             + (f"; target {target:.0%}" if target is not None else "") + ")</td>")
            else:
                cells.append("<td>–</td>")
        name = _none(u.iloc[0]["unit_name"]) or ""
        body.append(f"<tr><td>{esc(code)}</td><td>{esc(name)}</td>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _proxy_section(view: View, level: str, code: str) -> list[str]:
    t = view.table(f"opte_{level}")
    if t is None or "proxy_offflows" not in t.columns:
        return ["<h2>Proxy and nowcast for provisional months</h2>",
                "<p>The real-time proxy (closures recorded as found work) and the nowcast appear here once the "
                "warehouse holds them (MEASURES.md section 12).</p>"]
    prov = set(view.ctx.provisional.get("opte", []))
    rows = t[(t["unit_code"] == code) & t["month"].map(lambda m: f"{m:%Y-%m}" in prov)]
    out = ["<h2>Proxy and nowcast for provisional months</h2>",
           "<p>OPtE for the latest months is provisional: later extracts can still move it either way. The proxy "
           "counts off-flows whose closure staff recorded as found work (known at once); the nowcast scales it by "
           "the unit's ratio of OPtE to proxy over its latest 12 final months.</p>"]
    if len(rows):
        out.append(table(rows, ["month", "opte_offflows", "proxy_offflows", "opte_nowcast"],
                         {"opte_offflows": "OPtE off-flows so far (provisional)"}))
    else:
        out.append("<p>No provisional month for this unit.</p>")
    return out


def district_page(view: View, code: str, name: str | None, charts_for: dict[str, charts.Chart]) -> str:
    """districts/<code>.html."""
    ctx = view.ctx
    unit = view.unit("district", code)
    title = f"{name or code} ({code}): off-flows potentially to employment, {charts.month_label(ctx.month.first_day)}"
    headline = view.headline(code)
    body = [
        '<nav><a href="../report.html">National report</a> · '
        f'<a href="{esc(code)}.xlsx">this district\'s workbook</a> · '
        '<a href="../data_dictionary.csv">what each column means</a></nav>',
        f"<h1>{esc(title)}</h1>",
        _meta(view),
        f"<p>Region: {esc(unit.get('region_name') or unit.get('region_code') or '–')}. "
        f"{len(view.office_codes(code))} offices at the end of the month.</p>" if not ctx.external
        else f"<p>Region: {esc(unit.get('region_name') or unit.get('region_code') or '–')}.</p>",
        *_notices(view),
        "<h2 id=\"headline\">Headline: the district and every office at the end of the month</h2>",
        table(headline, _present(headline, HEADLINE), {**HEADLINE_LABELS, "unit_name": "District / office"},
              total_first=True),
        "<p>Percentages are shown rounded down to 0.1 %, so that 100.0 % always means the target was met. "
        "RAG: green at or above the year-to-date target, amber from "
        f"{ctx.amber_floor:.0%} of it, red below.</p>",
    ]
    if "ranked" in charts_for:
        body += ["<h2 id=\"ranked\">Offices ranked against their year-to-date targets</h2>",
                 figure(charts_for["ranked"], "chart-ranked")]
    body += ["<h2 id=\"trend\">Trend against the target profile, with the year-end projection</h2>",
             figure(charts_for["trend"], "chart-trend")]
    body += _proxy_section(view, "district", code)
    exclusions = view.exclusions(code)
    body += ["<h2 id=\"exclusions\">Exclusion waterfall</h2>", figure(charts_for["waterfall"], "chart-waterfall"),
             table(exclusions, [c for c in EXCLUSION_COLUMNS if c != "level"],
                   {"unit_name": "District / office"}, total_first=True)]
    body += ["<h2 id=\"cohorts\">Cohort off-flow rates against 56 / 78 / 92 %</h2>",
             figure(charts_for["cohorts"], "chart-cohorts"),
             _cohort_table(view, "district", [code]) + (_cohort_table(view, "office", view.office_codes(code))
                                                         if not ctx.external else "")]
    if "funnels" in charts_for:
        body += ["<h2 id=\"monitors\">Comparing offices fairly: funnel plots</h2>",
                 "<p>Each office's share over the 12 months to the report month against the national share. "
                 "An office outside the 99.8 % limits differs by more than chance would explain at its size.</p>",
                 figure(charts_for["funnels"], "chart-funnels")]
    elif not ctx.external:
        body += ["<h2 id=\"monitors\">Comparing offices fairly: funnel plots</h2>",
                 "<p>The office monitors appear here once the warehouse holds them (MEASURES.md section 14).</p>"]
    body += ["<h2 id=\"sustainability\">Sustainability: off-flows that last</h2>",
             figure(charts_for["sustainability"], "chart-sustainability") if "sustainability" in charts_for
             else "<p>Sustainability appears here once the warehouse holds it (MEASURES.md section 13).</p>"]
    body += _revisions_section(view, code, f"{name or code} or its offices")
    body.append(_notes(view))
    return page(title, body)


def _notes(view: View) -> str:
    ctx = view.ctx
    return ("<h2>Notes</h2><ul>"
            "<li>An off-flow is the end of a claim to a working-age benefit (JSA, ESA, IB, SDA, IS). OPtE leaves out "
            "off-flows of people who died, reached State Pension age, returned to the same benefit within a week, "
            "moved onto another benefit or started a New Deal option.</li>"
            "<li>Office figures are numbers of people; points are reported for the district and above.</li>"
            f"<li>OPtE for a month is final once the data cut-off is {ctx.parameters.get('opte_maturity_days', 28)} "
            f"days past its end; job outcomes once it is {ctx.parameters.get('jot_maturity_days', 183)} days past.</li>"
            "<li>The meaning of every published column is in data_dictionary.csv; the derivation of every figure in "
            "the dbt documentation (<code>opte docs</code>).</li></ul>")


def national_page(view: View, charts_for: dict[str, charts.Chart]) -> str:
    """report.html: the front page."""
    ctx = view.ctx
    title = f"Off-flows potentially to employment (OPtE): {charts.month_label(ctx.month.first_day)}"
    districts = view.districts()
    links = {c: f"districts/{c}.html" for c, _ in districts}
    national = view.rows("national", [view.units[view.units['level'] == 'national']['unit_code'].iloc[0]]
                         if len(view.units[view.units['level'] == 'national']) else [], HEADLINE_COLUMNS)
    regions = view.rows("region", [c for c, _ in view.regions()], HEADLINE_COLUMNS)
    body = [f"<h1>{esc(title)}{' (external release)' if ctx.external else ''}</h1>", _meta(view), *_notices(view)]
    dq = view.unallocated()
    if dq and dq.get("offflows"):
        share = (dq["offflows"] / dq["national_offflows"]) if dq.get("national_offflows") else None
        body.append(f'<p class="dq">Data quality: {charts.num(dq["offflows"])} off-flows '
                    + (f"({share:.1%} of all) " if share is not None else "")
                    + f"in {charts.month_label(ctx.month.first_day)} came from office codes with no office record in "
                    "force (unallocated); they count in the national figures but in no region or district.</p>")
    body += ["<h2 id=\"districts\">District reports</h2>",
             f"<p>Every district has its own report ({len(districts)} districts):</p>",
             '<ul class="districts">' + "".join(f'<li><a href="{esc(links[c])}">{esc(n or c)} ({esc(c)})</a></li>'
                                               for c, n in districts) + "</ul>",
             "<h2 id=\"headline\">Headline: the nation and its regions</h2>",
             table(pd.concat([national, regions], ignore_index=True),
                   _present(pd.concat([national, regions]), HEADLINE + ["opte_points", "jot_points"]),
                   {**HEADLINE_LABELS, "unit_name": "Nation / region"}, total_first=True),
             "<h2 id=\"trend\">Trend against the target profile, with the year-end projection</h2>",
             figure(charts_for["trend"], "chart-trend")]
    body += _proxy_section(view, "national", "ALL")
    body += ["<h2 id=\"exclusions\">Exclusion waterfall</h2>", figure(charts_for["waterfall"], "chart-waterfall"),
             "<h2 id=\"cohorts\">Cohort off-flow rates against 56 / 78 / 92 %</h2>",
             figure(charts_for["cohorts"], "chart-cohorts"),
             "<h2 id=\"ranked\">Regions and districts ranked</h2>",
             figure(charts_for["regions"], "chart-regions"), figure(charts_for["districts"], "chart-districts"),
             table(view.rows("district", [c for c, _ in districts], HEADLINE_COLUMNS),
                   _present(view.rows("district", [c for c, _ in districts], HEADLINE_COLUMNS),
                            HEADLINE + ["opte_points", "jot_points"]),
                   {**HEADLINE_LABELS, "unit_name": "District"}, links=links)]
    body += ["<h2 id=\"agreement\">Agreement between the proxy, OPtE and JOT</h2>",
             figure(charts_for["agreement"], "chart-agreement")]
    agreement = view.table("measure_agreement")
    if agreement is not None and len(agreement):
        body.append(table(agreement, AGREEMENT_SHOWN))
    else:
        body.append("<p>The measure agreement table appears here once the warehouse holds it "
                    "(MEASURES.md section 12).</p>")
    if "funnels" in charts_for:
        body += ["<h2 id=\"monitors\">Comparing offices fairly: funnel plots of every office</h2>",
                 figure(charts_for["funnels"], "chart-funnels")]
    body += ["<h2 id=\"sustainability\">Sustainability: off-flows that last</h2>",
             figure(charts_for["sustainability"], "chart-sustainability") if "sustainability" in charts_for
             else "<p>Sustainability appears here once the warehouse holds it (MEASURES.md section 13).</p>"]
    body += _revisions_section(view, None, "the nation, its regions or districts")
    files = "".join(f"<li>{esc(f)}</li>" for f in ctx.files)
    body += [_notes(view), f"<h3>Files of this publication</h3><ul>{files}</ul>"]
    return page(title, body)


AGREEMENT_SHOWN = ["level", "financial_year", "pair", "pairs", "x_total", "y_total", "scale", "pearson_r",
                   "mean_abs_pct_error", "is_provisional"]


# ---------------------------------------------------------------- the charts of each page


def district_charts(view: View, code: str, name: str | None) -> dict[str, charts.Chart]:
    ctx = view.ctx
    label = f"{name or code}"
    out = {
        "trend": charts.trend(label, view.trend_points("district", code), view.projection("district", code)),
        "waterfall": charts.waterfall(label, ctx.month.first_day, view.exclusion_values("district", code),
                                      ctx.opte_provisional),
        "cohorts": charts.cohorts(label, "JSA", view.cohort_curves("district", code), view.kmi_targets()),
    }
    offices = view.office_codes(code)
    if offices:
        out["ranked"] = charts.ranked(f"Offices of {label} ranked by OPtE year to date against target",
                                      view.ranked("office", offices), ctx.amber_floor)
    monitors = view.monitors(code)
    if monitors is not None:
        out["funnels"] = charts.funnels(label, view.funnel_panels(monitors), *_funnel_z(ctx), label_points=True)
    series = view.sustainability_series("district", code)
    if series is not None:
        out["sustainability"] = charts.sustainability(label, series)
    return out


def national_charts(view: View) -> dict[str, charts.Chart]:
    ctx = view.ctx
    out = {
        "trend": charts.trend("National", view.trend_points("national", "ALL"), view.projection("national", "ALL")),
        "waterfall": charts.waterfall("National", ctx.month.first_day, view.exclusion_values("national", "ALL"),
                                      ctx.opte_provisional),
        "cohorts": charts.cohorts("National", "JSA", view.cohort_curves("national", "ALL"), view.kmi_targets()),
        "regions": charts.ranked("Regions ranked by OPtE year to date against target",
                                 view.ranked("region", [c for c, _ in view.regions()]), ctx.amber_floor, "regions"),
        "districts": charts.ranked("Districts ranked by OPtE year to date against target",
                                   view.ranked("district", [c for c, _ in view.districts()]), ctx.amber_floor,
                                   "districts"),
        "agreement": charts.agreement("National", view.agreement_points()),
    }
    monitors = view.monitors(None)
    if monitors is not None:
        out["funnels"] = charts.funnels("every office", view.funnel_panels(monitors), *_funnel_z(ctx),
                                        label_points=False)
    series = view.sustainability_series("national", "ALL")
    if series is not None:
        out["sustainability"] = charts.sustainability("National", series)
    return out


def _funnel_z(ctx) -> tuple[float, float]:
    return float(ctx.parameters.get("funnel_z", 3.09)), float(ctx.parameters.get("funnel_z_warning", 1.96))
