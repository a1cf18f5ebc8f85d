"""report.html: one self-contained page for report month M (PUBLICATION.md).

Charts are matplotlib figures inlined as SVG (no scripts, stylesheets, fonts or images
fetched from anywhere; no http(s) reference at all, not even XML namespaces), so the page
opens offline and two publications of the same data give the same bytes:
- OPtE by month against the target profile (national: monthly OPtE against annual target / 12,
  and year to date against the YTD target);
- the exclusion waterfall of month M (national: off-flows -> each exclusion -> OPtE);
- cohort off-flow curves (national JSA cohorts) against the 56/78/92 % targets;
- offices ranked within each district by % of YTD target (internal publication only: the
  external page stays at district level).
"""
from __future__ import annotations

import html
import io
import re
from datetime import date

import pandas as pd

from measures.publish_tables import ReportMonth

RAG_COLOURS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828"}
NO_RAG = "#9e9e9e"
EXCLUSIONS = [("excluded_died", "died"), ("excluded_retired", "retired"),
              ("excluded_returned_within_week", "returned within a week"),
              ("excluded_cross_flow", "cross-flow"), ("excluded_programme_start", "programme start")]


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.hashsalt"] = "opte"  # stable element ids
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text; the page's sans-serif renders it
    return Figure(figsize=(width, height), dpi=96)


def _svg(fig) -> str:
    """The figure as an inline <svg> element, stripped of its XML prologue, metadata and namespaces."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
                bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text


def _num(v, fmt="{:,.0f}") -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return "&ndash;"
    return fmt.format(v)


def chart_opte_by_month(national: pd.DataFrame, provisional: list[str]) -> str:
    fig = _figure(10, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    months = [m.strftime("%Y-%m") for m in national["month"]]
    colours = ["#90caf9" if m in provisional else "#1565c0" for m in months]
    ax1.bar(range(len(months)), national["opte_offflows"].astype("float64").fillna(0), color=colours,
            label="OPtE off-flows (light: provisional)")
    profile = national["opte_target_annual"].astype("float64") / 12
    ax1.plot(range(len(months)), profile, color="#c62828", marker="o", label="target profile (annual / 12)")
    ax1.set_title("OPtE off-flows by month, national")
    # year to date restarts each April: one line segment per financial year
    fy = [m.year if m.month >= 4 else m.year - 1 for m in national["month"]]
    ytd = national["opte_ytd"].astype("float64").tolist()
    target_ytd = national["opte_target_ytd"].astype("float64").tolist()
    for n, year in enumerate(sorted(set(fy))):
        idx = [i for i, y in enumerate(fy) if y == year]
        ax2.plot(idx, [ytd[i] for i in idx], color="#1565c0", marker="o",
                 label="OPtE year to date" if n == 0 else None)
        ax2.plot(idx, [target_ytd[i] for i in idx], color="#c62828", linestyle="--",
                 label="YTD target" if n == 0 else None)
    ax2.set_title("Year to date (from April) against target, national")
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(months)), months, rotation=60, fontsize=8)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def chart_waterfall(row: pd.Series | None, month: ReportMonth) -> str:
    fig = _figure(8, 3.6)
    ax = fig.subplots()
    if row is None:
        ax.text(0.5, 0.5, f"no off-flows in {month.label}", ha="center", va="center")
        ax.set_axis_off()
        return _svg(fig)
    total = float(row["offflows"])
    labels, bottoms, heights, colours = ["off-flows"], [0.0], [total], ["#546e7a"]
    level = total
    for col, label in EXCLUSIONS:
        v = float(row[col]) if not pd.isna(row[col]) else 0.0
        level -= v
        labels.append(label)
        bottoms.append(level)
        heights.append(v)
        colours.append("#ef6c00")
    labels.append("OPtE")
    bottoms.append(0.0)
    heights.append(float(row["opte_offflows"]))
    colours.append("#1565c0")
    ax.bar(range(len(labels)), heights, bottom=bottoms, color=colours)
    for i, (b, h) in enumerate(zip(bottoms, heights)):
        ax.text(i, b + h, f"{h:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set_title(f"From off-flows to OPtE, national, {month.label}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def chart_cohorts(cohorts: pd.DataFrame, targets: dict[int, float]) -> str:
    fig = _figure(8, 4)
    ax = fig.subplots()
    jsa = cohorts[cohorts["benefit_code"] == "JSA"]
    recent = sorted(jsa["cohort_month"].unique())[-12:]
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for i, cm in enumerate(recent):
        c = jsa[jsa["cohort_month"] == cm].sort_values("week")
        weeks = [0] + c["week"].astype(int).tolist()
        rates = [0.0] + c["offflow_rate"].astype("float64").tolist()
        ax.plot(weeks, rates, marker="o", markersize=3, color=cmap(i / max(1, len(recent) - 1)),
                label=cm.strftime("%Y-%m"), linewidth=1)
    if targets:
        ax.plot(list(targets), list(targets.values()), linestyle="none", marker="X", markersize=10,
                color="#c62828", label="targets")
        for w, t in targets.items():
            ax.annotate(f"{t:.0%}", (w, t), textcoords="offset points", xytext=(6, -10), fontsize=8,
                        color="#c62828")
    ax.set_xlim(0, 54)
    ax.set_ylim(0, 1)
    ax.set_xticks([0, 13, 26, 52])
    ax.set_xlabel("weeks since the start of the spell")
    ax.set_ylabel("share off benefit")
    ax.set_title("JSA cohort off-flow rates, national (cohorts due by the report month)")
    ax.legend(fontsize=7, ncol=2, loc="lower right", title="cohort month", title_fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def chart_offices_ranked(district_code: str, district_name: str, offices: pd.DataFrame) -> str:
    ranked = offices.assign(
        _pct=offices["pct_of_target_ytd"].astype("float64"),
    ).sort_values(["_pct", "unit_code"], ascending=[True, False], na_position="first")
    fig = _figure(7, 0.35 * len(ranked) + 1.2)
    ax = fig.subplots()
    colours = [RAG_COLOURS.get(r, NO_RAG) if isinstance(r, str) else NO_RAG for r in ranked["rag"]]
    values = ranked["_pct"].fillna(0).tolist()
    labels = [f"{c} {n}" if isinstance(n, str) else c for c, n in zip(ranked["unit_code"], ranked["unit_name"])]
    ax.barh(range(len(ranked)), values, color=colours)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(ranked)), labels, fontsize=8)
    ax.set_xlabel("OPtE year to date / YTD target")
    ax.set_title(f"{district_code} {district_name}: offices ranked", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def _table(df: pd.DataFrame, columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for col, _, fmt in columns:
            v = r.get(col)
            if fmt == "text":
                text = html.escape(str(v)) if not (v is None or v is pd.NA or pd.isna(v)) else "&ndash;"
                cls = f' class="rag-{text}"' if col == "rag" else ""
                cells.append(f"<td{cls}>{text}</td>")
            else:
                cells.append(f'<td class="n">{_num(v, fmt)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


HEADLINE = [("unit_code", "code", "text"), ("unit_name", "name", "text"),
            ("offflows", "off-flows", "{:,.0f}"), ("opte_offflows", "OPtE", "{:,.0f}"),
            ("opte_points", "OPtE points", "{:,.0f}"), ("jot_points", "JOT points", "{:,.0f}"),
            ("opte_ytd", "OPtE YTD", "{:,.0f}"), ("opte_target_ytd", "YTD target", "{:,.1f}"),
            ("pct_of_target_ytd", "% of YTD target", "{:.1%}"), ("rag", "RAG", "text")]

CSS = """
body { font-family: sans-serif; margin: 2em; color: #212121; max-width: 1300px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; } th { background: #eceff1; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.rag-green { background: #c8e6c9; } td.rag-amber { background: #fff3c4; } td.rag-red { background: #ffcdd2; }
.note { background: #fff8e1; padding: 0.6em 1em; border-left: 4px solid #f9a825; }
.district { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; }
figure { margin: 0.5em 0; }
"""


def render(month: ReportMonth, cutoff: date, provisional: dict[str, list[str]], tables: dict[str, pd.DataFrame],
           kmi_targets: dict[int, float], external: bool, code_version: str) -> str:
    """The page's HTML (a string) from the published tables of the month."""
    national = tables["opte_national"]
    national_m = national[national["month"] == month.first_day]
    row = national_m.iloc[0] if len(national_m) else None
    regions = tables["opte_region"][tables["opte_region"]["month"] == month.first_day]
    districts = tables["opte_district"][tables["opte_district"]["month"] == month.first_day]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>OPtE report {month.label}{' (external)' if external else ''}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Off-flows potentially to employment (OPtE): {month.label}</h1>",
        f"<p>Data cut-off <b>{cutoff.isoformat()}</b>. Code version {html.escape(code_version)}.</p>",
    ]
    if provisional.get("opte") or provisional.get("jot"):
        parts.append(
            '<p class="note">Provisional: OPtE for ' + (", ".join(provisional["opte"]) or "no month")
            + "; job outcomes (JOT) for " + (", ".join(provisional["jot"]) or "no month")
            + ". Provisional figures can still rise as late data arrive.</p>")
    if external:
        parts.append('<p class="note">External release: counts and points rounded to the nearest 5; '
                     "rates withheld where the denominator is below 10; no figures below district level.</p>")
    parts += [
        "<h2>Headline</h2>",
        _table(pd.concat([national_m, regions], ignore_index=True), HEADLINE),
        "<h2>OPtE by month against the target profile</h2>",
        f"<figure>{chart_opte_by_month(national, provisional.get('opte', []))}</figure>",
        "<h2>Exclusion waterfall</h2>",
        f"<figure>{chart_waterfall(row, month)}</figure>",
        "<h2>Cohort off-flow rates against the 56/78/92 % targets</h2>",
        f"<figure>{chart_cohorts(tables['cohort_rates_national'], kmi_targets)}</figure>",
        "<h2>Districts</h2>",
        _table(districts, HEADLINE),
    ]
    if not external:
        parts.append("<h2>Offices ranked within each district (OPtE year to date against target)</h2>")
        offices = tables["opte_office"]
        offices_m = offices[offices["month"] == month.first_day]
        for _, d in districts.iterrows():
            codes = tables["_office_districts"]
            members = codes[codes["district_code"] == d["unit_code"]]["office_code"]
            in_district = offices_m[offices_m["unit_code"].isin(set(members))]
            if len(in_district):
                parts.append(f'<figure class="district">'
                             f'{chart_offices_ranked(d["unit_code"], d["unit_name"] or "", in_district)}</figure>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
