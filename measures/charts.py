"""The charts of the district and national pages: matplotlib figures inlined as SVG.

Readable at a glance and for everyone:
- every axis labelled, values printed where a reader needs them (bars, ranked units, waterfall);
- legends outside the plotting area, clear of the data;
- the Okabe-Ito palette (distinguishable with any colour vision), and never colour alone: RAG
  bars carry their status in words and a hatch, provisional months a hatch and a note;
- every chart is an `<svg role="img">` with a `<title>` and `<desc>`, and the page gives its
  figures as a table beside it (`Chart.data`), the text alternative.

SVG text stays text (`svg.fonttype: none`) and element ids are salted with a constant, so two
publications of the same figures give the same bytes. Nothing is fetched: no fonts, scripts or
images, no http(s) reference at all (not even XML namespaces).
"""
from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass, field
from datetime import date

# Okabe & Ito (2008), "Color Universal Design"
BLUE, SKY, GREEN, ORANGE, VERMILLION, PURPLE, YELLOW, BLACK, GREY = (
    "#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#F0E442", "#000000", "#8C8C8C")
RAG_COLOURS = {"green": GREEN, "amber": ORANGE, "red": VERMILLION}
RAG_HATCH = {"green": "", "amber": "\\\\\\", "red": "///"}
SERIES = [BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, BLACK, YELLOW]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


@dataclass
class Chart:
    """One chart: its inline SVG, what it shows in words, and the figures behind it."""

    title: str
    summary: str
    svg: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


# ---------------------------------------------------------------- helpers


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    matplotlib.rcParams.update({
        "svg.hashsalt": "opte",      # stable element ids
        "svg.fonttype": "none",      # text stays text; the page's sans-serif renders it
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "hatch.linewidth": 0.8,
    })
    return Figure(figsize=(width, height), dpi=96)


def _margins(fig, left: float, right: float, top: float, bottom: float, wspace: float = 0.2,
             hspace: float = 0.2) -> None:
    """Fixed margins in inches (matplotlib's automatic layouts cost half the rendering time)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h,
                        wspace=wspace, hspace=hspace)


_ID = re.compile(r"[^a-z0-9]+")


def _svg(fig, title: str, summary: str) -> str:
    """The figure as an inline <svg role="img"> with <title> and <desc>, without prologue or namespaces."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'<svg ', f'<svg role="img" aria-label="{html.escape(title)}" ', text, count=1)
    head_end = text.index(">") + 1
    return (text[:head_end] + f"<title>{html.escape(title)}</title><desc>{html.escape(summary)}</desc>"
            + text[head_end:])


def _missing(v) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or str(v) in ("<NA>", "nan", "NaT")
    except TypeError:
        return False


def num(v, digits: int = 0) -> str:
    if _missing(v):
        return "–"
    return f"{float(v):,.{digits}f}"


def floor_pct(v) -> float | None:
    """A share as a percentage to 0.1, rounded down, so that 100.0 % means the target was met."""
    if _missing(v):
        return None
    return math.floor(float(v) * 1000 + 1e-9) / 10


def pct(v) -> str:
    p = floor_pct(v)
    return "–" if p is None else f"{p:.1f}%"


def month_label(m: date) -> str:
    return f"{m:%b %Y}"


def _short_month(m: date) -> str:
    return f"{m:%b %y}"


def _empty(title: str, message: str, width: float = 7, height: float = 1.0) -> Chart:
    fig = _figure(width, height)
    ax = fig.subplots()
    _margins(fig, 0.1, 0.1, 0.1, 0.1)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    ax.set_axis_off()
    return Chart(title, message, _svg(fig, title, message))


def _legend_below(fig, ax, offset_in: float, ncol: int = 2):
    """The axes' legend below its tick labels and axis label (clear of the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        height_in = ax.get_position().height * fig.get_size_inches()[1]
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -offset_in / height_in), ncol=ncol,
                  frameon=False, fontsize=8)


# ---------------------------------------------------------------- trend against the target profile


@dataclass
class TrendPoint:
    month: date
    opte: float          # OPtE off-flows (0 in a month with none)
    ytd: float | None
    target_ytd: float | None
    target_annual: float | None
    provisional: bool
    proxy: float | None = None
    nowcast: float | None = None


def trend(unit_label: str, points: list[TrendPoint], projection: tuple[date, float, float | None] | None) -> Chart:
    """Monthly OPtE against the target profile, and year to date against the YTD target with the
    year-end projection (`projection` = (March of the year, projected annual, annual target))."""
    title = f"OPtE off-flows by month against the target profile, {unit_label}"
    if not points:
        return _empty(title, "No off-flows in the 13 months shown.")
    fig = _figure(10.5, 4.4)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    _margins(fig, 0.65, 0.2, 0.3, 1.95, wspace=0.22)
    x = list(range(len(points)))
    labels = [_short_month(p.month) for p in points]
    final = [p for p in points if not p.provisional]
    prov = [p for p in points if p.provisional]
    ax1.bar([i for i, p in zip(x, points) if not p.provisional], [p.opte for p in final], color=BLUE,
            label="OPtE off-flows (final)")
    if prov:
        ax1.bar([i for i, p in zip(x, points) if p.provisional], [p.opte for p in prov], color=SKY,
                hatch="//", edgecolor="white", label="OPtE off-flows (provisional)")
    for i, p in zip(x, points):
        ax1.annotate(num(p.opte), (i, p.opte), textcoords="offset points", xytext=(0, 2), ha="center",
                     fontsize=7)
    profile = [None if p.target_annual is None else p.target_annual / 12 for p in points]
    if any(v is not None for v in profile):
        ax1.step(x, [math.nan if v is None else v for v in profile], where="mid", color=BLACK,
                 linestyle="--", linewidth=1.2, label="Target profile (annual target / 12)")
    if any(p.proxy is not None for p in points):
        ax1.plot(x, [math.nan if p.proxy is None else p.proxy for p in points], color=PURPLE, marker="s",
                 markersize=3, linewidth=1, label="Proxy: closures recorded as found work")
    if any(p.nowcast is not None for p in points):
        ax1.plot(x, [math.nan if p.nowcast is None else p.nowcast for p in points], color=ORANGE,
                 marker="D", markersize=6, linestyle="none", label="Nowcast of a provisional month")
    ax1.set_xticks(x, labels, rotation=55, ha="right", fontsize=7.5)
    ax1.set_xlabel("Month")
    ax1.set_ylabel("People")
    ax1.set_title("Each month", fontsize=10)
    ax1.grid(axis="y", alpha=0.3)
    _legend_below(fig, ax1, 0.95)

    # year to date: one segment per financial year, extended to March for the projection
    years = {}
    for i, p in zip(x, points):
        fy = p.month.year if p.month.month >= 4 else p.month.year - 1
        years.setdefault(fy, []).append((i, p))
    first = True
    for fy, items in years.items():
        ax2.plot([i for i, _ in items], [math.nan if p.ytd is None else p.ytd for _, p in items], color=BLUE,
                 marker="o", markersize=4, label="OPtE year to date" if first else None)
        hollow = [(i, p) for i, p in items if p.provisional and p.ytd is not None]
        if hollow:
            ax2.plot([i for i, _ in hollow], [p.ytd for _, p in hollow], linestyle="none", marker="o",
                     markersize=6, markerfacecolor="white", color=BLUE,
                     label="provisional" if first else None)
        if any(p.target_ytd is not None for _, p in items):
            ax2.plot([i for i, _ in items], [math.nan if p.target_ytd is None else p.target_ytd for _, p in items],
                     color=BLACK, linestyle="--", linewidth=1.2, label="Year-to-date target" if first else None)
        first = False
    xticks, xlabels = list(x), list(labels)
    if projection is not None and points[-1].ytd is not None:
        march, projected, target = projection
        last = len(points) - 1
        months_to_march = (march.year - points[-1].month.year) * 12 + march.month - points[-1].month.month
        if months_to_march > 0:
            xm = last + months_to_march
            xticks.append(xm)
            xlabels.append(_short_month(march))
        else:
            xm = last
        if projected is not None:
            ax2.plot([last, xm], [points[-1].ytd, projected], color=ORANGE, linestyle=":", linewidth=2,
                     marker="D", markevery=[1], label="Projected year end")
            ax2.annotate(f"{num(projected)}", (xm, projected), textcoords="offset points", xytext=(4, 4),
                         fontsize=8, color=BLACK)
        if target is not None:
            ax2.plot([xm], [target], linestyle="none", marker="_", markersize=16, markeredgewidth=2,
                     color=BLACK, label="Annual target")
            ax2.annotate(f"target {num(target)}", (xm, target), textcoords="offset points", xytext=(4, -10),
                         fontsize=8)
    ax2.set_xticks(xticks, xlabels, rotation=55, ha="right", fontsize=7.5)
    ax2.set_xlabel("Month (year to date restarts each April)")
    ax2.set_ylabel("People, April to the month")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Year to date against target", fontsize=10)
    ax2.grid(axis="y", alpha=0.3)
    _legend_below(fig, ax2, 0.95)

    last = points[-1]
    summary = (f"{unit_label}: {num(last.opte)} OPtE off-flows in {month_label(last.month)}"
               + (" (provisional)" if last.provisional else "")
               + (f"; {num(last.ytd)} year to date against a year-to-date target of {num(last.target_ytd)}"
                  if last.ytd is not None and last.target_ytd is not None else "")
               + (f"; projected year end {num(projection[1])} against an annual target of {num(projection[2])}"
                  if projection is not None and projection[1] is not None and projection[2] is not None else "")
               + ".")
    rows = [[month_label(p.month), num(p.opte), num(p.ytd), num(p.target_ytd),
             "" if p.target_annual is None else num(p.target_annual / 12, 1),
             "" if p.proxy is None else num(p.proxy), "" if p.nowcast is None else num(p.nowcast),
             "provisional" if p.provisional else "final"] for p in points]
    return Chart(title, summary, _svg(fig, title, summary),
                 ["Month", "OPtE off-flows", "Year to date", "Year-to-date target", "Target profile",
                  "Proxy", "Nowcast", "Status"], rows)


# ---------------------------------------------------------------- exclusion waterfall


EXCLUSIONS = [("excluded_died", "Died"), ("excluded_retired", "State Pension age"),
              ("excluded_returned_within_week", "Returned within a week"),
              ("excluded_cross_flow", "Moved to another benefit"),
              ("excluded_programme_start", "New Deal option")]


def waterfall(unit_label: str, month: date, values: dict | None, provisional: bool) -> Chart:
    """From off-flows to OPtE: each exclusion taken off in turn."""
    title = f"From off-flows to OPtE, {unit_label}, {month_label(month)}"
    if not values or _missing(values.get("offflows")) or not values.get("offflows"):
        return _empty(title, f"No off-flows in {month_label(month)}.")
    fig = _figure(8.5, 3.6)
    ax = fig.subplots()
    _margins(fig, 0.65, 0.2, 0.15, 1.35)
    total = float(values["offflows"])
    labels, bottoms, heights, colours, hatches = ["All off-flows"], [0.0], [total], [GREY], [""]
    level = total
    for col, label in EXCLUSIONS:
        v = 0.0 if _missing(values.get(col)) else float(values[col])
        level -= v
        labels.append(f"less: {label}")
        bottoms.append(level)
        heights.append(v)
        colours.append(VERMILLION)
        hatches.append("//")
    labels.append("OPtE off-flows")
    bottoms.append(0.0)
    heights.append(0.0 if _missing(values.get("opte_offflows")) else float(values["opte_offflows"]))
    colours.append(BLUE)
    hatches.append("")
    xs = range(len(labels))
    ax.bar(xs, heights, bottom=bottoms, color=colours, hatch=hatches, edgecolor="white")
    for i, (b, h) in enumerate(zip(bottoms, heights)):
        ax.annotate(num(h), (i, b + h), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("People")
    ax.set_xlabel("Off-flows of the month, by what took them out of OPtE" + (" (provisional)" if provisional else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(0, total * 1.12)
    summary = (f"{unit_label}, {month_label(month)}: {num(total)} off-flows, of which "
               + ", ".join(f"{num(h)} {l.replace('less: ', '').lower()}" for l, h in zip(labels[1:-1], heights[1:-1]))
               + f", leaving {num(heights[-1])} OPtE off-flows" + (" (provisional)." if provisional else "."))
    rows = [[l, num(h)] for l, h in zip(labels, heights)]
    return Chart(title, summary, _svg(fig, title, summary), ["Step", "People"], rows)


# ---------------------------------------------------------------- cohort curves


@dataclass
class CohortCurve:
    cohort_month: date
    size: int
    weeks: list[tuple[int, float | None, float | None]]  # (week, rate when due, projected rate)


def cohorts(unit_label: str, benefit: str, curves: list[CohortCurve], targets: dict[int, float]) -> Chart:
    """Share of each monthly cohort off benefit by week 13, 26 and 52, against the targets, with the
    projections of weeks not yet due dashed."""
    title = f"{benefit} cohort off-flow rates against the targets, {unit_label}"
    if not curves:
        return _empty(title, f"No {benefit} cohort has a week due yet.")
    fig = _figure(9, 3.8)
    ax = fig.subplots()
    _margins(fig, 0.65, 2.0, 0.15, 0.5)
    for n, curve in enumerate(curves):
        colour, marker = SERIES[n % len(SERIES)], MARKERS[n % len(MARKERS)]
        due = [(w, r) for w, r, _ in curve.weeks if r is not None]
        xs, ys = [0] + [w for w, _ in due], [0.0] + [r for _, r in due]
        ax.plot(xs, ys, color=colour, marker=marker, markersize=4, linewidth=1.4,
                label=f"{month_label(curve.cohort_month)} ({curve.size:,})")
        proj = [(w, p) for w, _, p in curve.weeks if p is not None]
        if proj:
            ax.plot([xs[-1]] + [w for w, _ in proj], [ys[-1]] + [p for _, p in proj], color=colour,
                    linestyle="--", marker=marker, markerfacecolor="white", markersize=5, linewidth=1.2)
    if any(any(p is not None for _, _, p in c.weeks) for c in curves):
        ax.plot([], [], color=GREY, linestyle="--", marker="o", markerfacecolor="white", label="projected (not yet due)")
    if targets:
        ax.plot(list(targets), list(targets.values()), linestyle="none", marker="_", markersize=18,
                markeredgewidth=2.5, color=BLACK, label="Target")
        for w, t in targets.items():
            ax.annotate(f"target {t:.0%}", (w, t), textcoords="offset points", xytext=(-12, 7), fontsize=8)
    weeks = sorted({w for c in curves for w, _, _ in c.weeks})
    ax.set_xlim(0, (max(weeks) if weeks else 52) + 3)
    ax.set_ylim(0, 1.05)
    ax.set_xticks([0] + weeks)
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_xlabel("Weeks since the spell started")
    ax.set_ylabel("Share of the cohort off benefit")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title="Cohort month (size)", title_fontsize=8)
    latest = curves[-1]
    due = [(w, r) for w, r, _ in latest.weeks if r is not None]
    summary = (f"{unit_label}, {benefit}: {len(curves)} recent cohorts shown; the latest, "
               f"{month_label(latest.cohort_month)} ({latest.size:,} people), "
               + ("; ".join(f"{r:.1%} off benefit by week {w}" for w, r in due) or "has no week due yet")
               + (". Targets: " + ", ".join(f"{t:.0%} by week {w}" for w, t in targets.items()) if targets else "")
               + ".")
    headers = ["Cohort month", "Cohort size"] + [f"Week {w}" for w in weeks]
    rows = []
    for c in curves:
        by_week = {w: (r, p) for w, r, p in c.weeks}
        cells = []
        for w in weeks:
            r, p = by_week.get(w, (None, None))
            cells.append(f"{r:.1%}" if r is not None else (f"{p:.1%} projected" if p is not None else "not due"))
        rows.append([month_label(c.cohort_month), f"{c.size:,}", *cells])
    return Chart(title, summary, _svg(fig, title, summary), headers, rows)


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


# ---------------------------------------------------------------- units ranked


@dataclass
class Ranked:
    code: str
    name: str
    pct: float | None
    rag: str | None
    ytd: float | None
    target_ytd: float | None


def ranked(title: str, units: list[Ranked], amber_floor: float, what: str = "offices") -> Chart:
    """Units ranked by OPtE year to date as a percentage of the year-to-date target, best first."""
    if not units:
        return _empty(title, f"No {what} to rank.")
    with_target = sorted([u for u in units if u.pct is not None], key=lambda u: (-u.pct, u.code))
    without = sorted([u for u in units if u.pct is None], key=lambda u: u.code)
    order = with_target + without
    names = [f"{u.name} ({u.code})" if u.name else u.code for u in order]
    fig = _figure(9, 0.3 * len(order) + 0.9)
    ax = fig.subplots()
    _margins(fig, 0.25 + 0.062 * max(len(n) for n in names), 0.2, 0.1, 0.6)
    ys = list(range(len(order)))[::-1]
    top = max([floor_pct(u.pct) for u in with_target] + [105.0])
    for y, u in zip(ys, order):
        if u.pct is None:
            ax.annotate("no target", (0, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
            continue
        p = floor_pct(u.pct)
        rag = u.rag if isinstance(u.rag, str) else None
        ax.barh([y], [p], color=RAG_COLOURS.get(rag, GREY), hatch=RAG_HATCH.get(rag, ""), edgecolor="white",
                height=0.7)
        ax.annotate(f"{p:.1f}% {rag.capitalize() if rag else ''}".strip(), (p, y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.axvline(100, color=BLACK, linewidth=1.2)
    ax.axvline(amber_floor * 100, color=BLACK, linewidth=1, linestyle=":")
    ax.annotate("target", (100, len(order) - 0.4), xytext=(2, 0), textcoords="offset points", fontsize=8)
    ax.annotate(f"amber from {amber_floor:.0%}", (amber_floor * 100, len(order) - 0.4), xytext=(-2, 0),
                textcoords="offset points", fontsize=8, ha="right")
    ax.set_yticks(ys, names, fontsize=8)
    ax.set_ylim(-0.7, len(order) + 0.2)
    ax.set_xlim(0, top * 1.2)
    ax.set_xlabel("OPtE year to date as a % of the year-to-date target (green: met; amber: within "
                  f"{100 - amber_floor * 100:.0f} points; red: below)")
    ax.grid(axis="x", alpha=0.3)
    summary = (f"{len(with_target)} {what} with a target: " + (
        f"highest {with_target[0].name or with_target[0].code} at {pct(with_target[0].pct)}, lowest "
        f"{with_target[-1].name or with_target[-1].code} at {pct(with_target[-1].pct)}; "
        + ", ".join(f"{sum(1 for u in with_target if u.rag == r)} {r}" for r in ("green", "amber", "red"))
        if with_target else "none") + (f"; {len(without)} without a target." if without else "."))
    rows = [[u.code, u.name or "", num(u.ytd), num(u.target_ytd), pct(u.pct), (u.rag or "").capitalize()]
            for u in order]
    return Chart(title, summary, _svg(fig, title, summary),
                 ["Code", "Name", "OPtE year to date", "Year-to-date target", "% of target", "RAG"], rows)


# ---------------------------------------------------------------- funnel plots


INDICATOR_LABELS = {
    "opte_share": "OPtE share of off-flows",
    "cross_flow_share": "Share moving to another benefit",
    "programme_start_share": "Share starting a New Deal option",
    "returned_within_week_share": "Share returning within a week",
    "failed_to_sign_share": "Share of OPtE closed as failed to sign",
}


@dataclass
class FunnelPoint:
    code: str
    denominator: float
    share: float
    flag: str | None
    warning: str | None


def funnels(unit_label: str, panels: dict[str, tuple[float, list[FunnelPoint]]], z: float, z_warning: float,
            label_points: bool) -> Chart:
    """One funnel plot per indicator: each office's share against the national share, with the
    95 % and 99.8 % limits p -/+ z sqrt(p (1 - p) / n) (Spiegelhalter 2005)."""
    from matplotlib.ticker import MaxNLocator

    title = f"Funnel plots of the offices, {unit_label} (12 months to the report month)"
    panels = {k: v for k, v in panels.items() if v[1]}
    if not panels:
        return _empty(title, "No office monitors for this month.")
    n = len(panels)
    cols = min(3, n)
    rows_n = math.ceil(n / cols)
    fig = _figure(11, 3.1 * rows_n + 0.5)
    axes = fig.subplots(rows_n, cols, squeeze=False).ravel()
    _margins(fig, 0.6, 0.2, 0.3, 0.95, wspace=0.3, hspace=0.45)
    for ax in axes[n:]:
        ax.set_axis_off()
    flagged_text = []
    for ax, (indicator, (benchmark, points)) in zip(axes, panels.items()):
        xmax = max(p.denominator for p in points) * 1.08
        xmin = max(1.0, min(p.denominator for p in points) * 0.6)  # the limits flare below any office's size
        grid = [xmin + (xmax - xmin) * i / 119 for i in range(120)]
        for zz, style, lab in ((z_warning, ":", "95 % limits"), (z, "--", "99.8 % limits")):
            lo = [benchmark - zz * math.sqrt(benchmark * (1 - benchmark) / g) for g in grid]
            hi = [benchmark + zz * math.sqrt(benchmark * (1 - benchmark) / g) for g in grid]
            ax.plot(grid, [max(0.0, v) for v in lo], color=GREY, linestyle=style, linewidth=1, label=lab)
            ax.plot(grid, [min(1.0, v) for v in hi], color=GREY, linestyle=style, linewidth=1)
        ax.axhline(benchmark, color=BLACK, linewidth=1, label=f"national share {benchmark:.1%}")
        groups = {"high": ([], VERMILLION, "^", "above the 99.8 % limit"),
                  "low": ([], BLUE, "v", "below the 99.8 % limit"),
                  None: ([], GREY, "o", "within the limits")}
        for p in points:
            groups[p.flag if p.flag in ("high", "low") else None][0].append(p)
        for key, (pts, colour, marker, lab) in groups.items():
            if pts:
                ax.plot([p.denominator for p in pts], [p.share for p in pts], linestyle="none", marker=marker,
                        color=colour, markersize=6 if key else 4, label=lab, alpha=0.9)
            for p in pts:
                if label_points or (key and len(pts) <= 12):
                    ax.annotate(p.code, (p.denominator, p.share), xytext=(3, 2), textcoords="offset points",
                                fontsize=6.5)
                if key:
                    flagged_text.append(f"{p.code} {key} on {INDICATOR_LABELS.get(indicator, indicator).lower()}")
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.set_title(INDICATOR_LABELS.get(indicator, indicator), fontsize=9)
        ax.set_xlabel("Denominator (people, 12 months)", fontsize=8)
        ax.set_ylabel("Share", fontsize=8)
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.set_xlim(xmin * 0.9, xmax)
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes[:n]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            key = l.split(" ")[0] if l.startswith("national") else l
            if key not in [x.split(" ")[0] if x.startswith("national") else x for x in labels]:
                handles.append(h)
                labels.append("national share" if l.startswith("national") else l)
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), frameon=False, fontsize=8)
    summary = (f"{unit_label}: {sum(len(v[1]) for v in panels.values())} office-indicator points; "
               + ("outside the 99.8 % limits: " + "; ".join(flagged_text) if flagged_text
                  else "no office outside the 99.8 % limits") + ".")
    # the figures behind the chart: every point of a district's offices; nationally, those outside a limit
    rows = [[INDICATOR_LABELS.get(ind, ind), p.code, num(p.denominator), f"{p.share:.1%}", f"{bench:.1%}",
             p.flag or "", p.warning or ""] for ind, (bench, pts) in panels.items() for p in pts
            if label_points or p.flag or p.warning]
    return Chart(title, summary, _svg(fig, title, summary),
                 ["Indicator", "Office", "Denominator", "Share", "National share", "Outside 99.8 %", "Outside 95 %"],
                 rows)


# ---------------------------------------------------------------- sustainability


def sustainability(unit_label: str, series: dict[int, list[tuple[date, float | None, bool]]]) -> Chart:
    """Share of each month's OPtE off-flows still off benefit at week 13 and 26 (`series` = week ->
    [(month, sustained rate or None when not due, provisional)])."""
    title = f"Off-flows that last: share still off benefit, {unit_label}"
    due = {w: [(m, r, p) for m, r, p in pts if r is not None] for w, pts in series.items()}
    if not any(due.values()):
        return _empty(title, "No sustainability figure is due yet for these months.")
    fig = _figure(9, 3.3)
    ax = fig.subplots()
    _margins(fig, 0.65, 2.3, 0.15, 0.9)
    months = sorted({m for pts in series.values() for m, _, _ in pts})
    index = {m: i for i, m in enumerate(months)}
    for n, (week, pts) in enumerate(sorted(due.items())):
        colour, marker = SERIES[n % len(SERIES)], MARKERS[n % len(MARKERS)]
        ax.plot([index[m] for m, _, _ in pts], [r for _, r, _ in pts], color=colour, marker=marker,
                markersize=4, label=f"still off benefit at week {week}")
        prov = [(m, r) for m, r, p in pts if p]
        if prov:
            ax.plot([index[m] for m, _ in prov], [r for _, r in prov], linestyle="none", marker=marker,
                    markerfacecolor="white", color=colour, markersize=7,
                    label=f"week {week}, provisional month")
        last = pts[-1]
        ax.annotate(f"{last[1]:.0%}", (index[last[0]], last[1]), xytext=(4, 0), textcoords="offset points",
                    fontsize=8, va="center")
    ax.set_xticks(range(len(months)), [_short_month(m) for m in months], rotation=55, ha="right", fontsize=7.5)
    ax.set_xlabel("Month of the off-flows")
    ax.set_ylabel("Share still off benefit")
    ax.yaxis.set_major_formatter(_percent_formatter())
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    parts = []
    for week, pts in sorted(due.items()):
        if pts:
            parts.append(f"at week {week}, {pts[-1][1]:.0%} of the {month_label(pts[-1][0])} off-flows were still off benefit")
    summary = f"{unit_label}: " + "; ".join(parts) + "."
    weeks = sorted(series)
    by = {(w, m): r for w, pts in series.items() for m, r, _ in pts}
    rows = [[month_label(m)] + ["not due" if by.get((w, m)) is None else f"{by[(w, m)]:.1%}" for w in weeks]
            for m in months]
    return Chart(title, summary, _svg(fig, title, summary), ["Month"] + [f"Week {w}" for w in weeks], rows)


# ---------------------------------------------------------------- proxy, OPtE and JOT


def agreement(unit_label: str, points: list[tuple[date, float | None, float | None, float | None, bool, bool]]) -> Chart:
    """Proxy off-flows, OPtE off-flows and job outcomes by month (`points` = (month, proxy, OPtE, job
    outcomes, OPtE provisional, JOT provisional))."""
    title = f"Proxy, OPtE and job outcomes by month, {unit_label}"
    if not points:
        return _empty(title, "No months to show.")
    fig = _figure(9, 3.3)
    ax = fig.subplots()
    _margins(fig, 0.65, 3.0, 0.15, 0.9)
    x = list(range(len(points)))
    series = [(1, "Proxy: closures recorded as found work", PURPLE, "s", "--"),
              (2, "OPtE off-flows", BLUE, "o", "-"), (3, "Job outcomes (JOT)", GREEN, "^", "-")]
    for idx, lab, colour, marker, style in series:
        ys = [math.nan if _missing(p[idx]) else float(p[idx]) for p in points]
        if all(math.isnan(y) for y in ys):
            continue
        ax.plot(x, ys, color=colour, marker=marker, linestyle=style, markersize=4, label=lab)
    prov_jot = [i for i, p in zip(x, points) if p[5]]
    if prov_jot:
        ax.axvspan(min(prov_jot) - 0.5, max(prov_jot) + 0.5, color=YELLOW, alpha=0.18, linewidth=0,
                   label="job outcomes still provisional")
    ax.set_xticks(x, [_short_month(p[0]) for p in points], rotation=55, ha="right", fontsize=7.5)
    ax.set_xlabel("Month of the off-flows")
    ax.set_ylabel("People")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    last = points[-1]
    summary = (f"{unit_label}, {month_label(last[0])}: proxy {num(last[1])}, OPtE {num(last[2])}, job outcomes "
               f"{num(last[3])}; job outcomes of the shaded months are still provisional and can rise.")
    rows = [[month_label(p[0]), num(p[1]), num(p[2]), num(p[3]), "provisional" if p[4] else "final",
             "provisional" if p[5] else "final"] for p in points]
    return Chart(title, summary, _svg(fig, title, summary),
                 ["Month", "Proxy", "OPtE off-flows", "Job outcomes", "OPtE", "JOT"], rows)
