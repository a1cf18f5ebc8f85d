"""What every published column means: one place per description (PUBLICATION.md, data_dictionary.csv).

A column published straight from a mart takes its meaning from the dbt project: the column's
`description` in the model's YAML, with its `{{ doc('...') }}` blocks rendered, read from the
same files dbt reads (so the data dictionary, the dbt docs and the warehouse never disagree).
Publication only adds, for every column name, a short plain-English label (the header of the
workbooks and pages), its unit, and whether it can be provisional (`COLUMNS` below). A column
that exists only in the publication (the parent units on every row, the provisional flags joined
on, the revisions) is described here, in `PUBLICATION_ONLY`, and nowhere else.

`data_dictionary(tables)` gives the rows of `data_dictionary.csv`: every column of every
published table.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from measures.config import DBT_PROJECT_DIR

# units of a published column
PEOPLE, POINTS, SHARE, DATE, MONTH, CODE, NAME, FLAG, TEXT, NUMBER = (
    "people", "points", "share", "date", "month", "code", "name", "flag", "text", "number")


@dataclass(frozen=True)
class Column:
    label: str        # plain-English header for people
    unit: str         # one of the units above
    provisional: str  # "yes", "no", or when (plain words)


# Label, unit and provisional status of every published column, by name. The meaning comes from
# dbt (the model the table is published from) or, for publication-only columns, PUBLICATION_ONLY.
PROV_OPTE = "yes, while opte_is_final is false"
PROV_JOT = "yes, while jot_is_final is false"
COLUMNS: dict[str, Column] = {
    "level": Column("Level", CODE, "no"),
    "unit_code": Column("Code", CODE, "no"),
    "unit_name": Column("Name", NAME, "no"),
    "office_code": Column("Office code", CODE, "no"),
    "office_name": Column("Office", NAME, "no"),
    "district_code": Column("District code", CODE, "no"),
    "district_name": Column("District", NAME, "no"),
    "region_code": Column("Region code", CODE, "no"),
    "region_name": Column("Region", NAME, "no"),
    "month": Column("Month", MONTH, "no"),
    "financial_year": Column("Financial year", NUMBER, "no"),
    "offflows": Column("Off-flows", PEOPLE, PROV_OPTE),
    "excluded_died": Column("Excluded: died", PEOPLE, PROV_OPTE),
    "excluded_retired": Column("Excluded: reached State Pension age", PEOPLE, PROV_OPTE),
    "excluded_returned_within_week": Column("Excluded: returned within a week", PEOPLE, PROV_OPTE),
    "excluded_cross_flow": Column("Excluded: moved to another benefit", PEOPLE, PROV_OPTE),
    "excluded_programme_start": Column("Excluded: started a New Deal option", PEOPLE, PROV_OPTE),
    "opte_offflows": Column("OPtE off-flows", PEOPLE, PROV_OPTE),
    "opte_share_of_offflows": Column("OPtE share of off-flows", SHARE, PROV_OPTE),
    "opte_points": Column("OPtE points", POINTS, PROV_OPTE),
    "job_outcomes": Column("Job outcomes", PEOPLE, PROV_JOT),
    "jot_points": Column("JOT points", POINTS, PROV_JOT),
    "opte_target_annual": Column("Annual target", PEOPLE, "no"),
    "opte_target_ytd": Column("Year-to-date target", PEOPLE, "no"),
    "opte_ytd": Column("OPtE year to date", PEOPLE, "yes, while any month of the year to date is provisional"),
    "pct_of_target_ytd": Column("% of year-to-date target", SHARE, "yes, as opte_ytd"),
    "rag": Column("RAG", CODE, "yes, as opte_ytd"),
    "proxy_offflows": Column("Proxy off-flows (found work)", PEOPLE, "no: known as soon as the closure lands"),
    "opte_nowcast": Column("OPtE nowcast", PEOPLE, "yes: an estimate, only for provisional months"),
    "opte_projected_annual": Column("Projected year-end OPtE", PEOPLE, "yes: an estimate"),
    "projected_pct_of_target": Column("Projected % of annual target", SHARE, "yes: an estimate"),
    "projected_rag": Column("Projected RAG", CODE, "yes: an estimate"),
    "opte_is_final": Column("OPtE final", FLAG, "no"),
    "jot_is_final": Column("JOT final", FLAG, "no"),
    "benefit_code": Column("Benefit", CODE, "no"),
    "cohort_month": Column("Cohort month", MONTH, "no"),
    "cohort_size": Column("Cohort size", PEOPLE, "no"),
    "week": Column("Week", NUMBER, "no"),
    "due_date": Column("Due date", DATE, "no"),
    "is_due": Column("Due", FLAG, "no"),
    "offflowed_by_week": Column("Off benefit by the week", PEOPLE, "no: shown only once due"),
    "offflow_rate": Column("Off-flow rate", SHARE, "no: shown only once due"),
    "target_rate": Column("Target rate", SHARE, "no"),
    "projected_rate": Column("Projected rate", SHARE, "yes: an estimate for a week not yet due"),
    "projected_at_risk": Column("Projected to miss target", FLAG, "yes: an estimate"),
    "customer_group": Column("Customer group", CODE, "no"),
    "opte_with_job_outcome": Column("OPtE off-flows with a job outcome", PEOPLE, PROV_JOT),
    "conversion_rate": Column("Share with a job outcome", SHARE, PROV_JOT),
    "back_on_benefit": Column("Back on benefit by the week", PEOPLE, "no: shown only once due"),
    "sustained_rate": Column("Share still off benefit", SHARE, "no: shown only once due"),
    "indicator": Column("Indicator", CODE, "no"),
    "numerator": Column("Numerator", PEOPLE, "yes, while a month of the window is provisional"),
    "denominator": Column("Denominator", PEOPLE, "yes, while a month of the window is provisional"),
    "share": Column("Office share", SHARE, "yes, while a month of the window is provisional"),
    "benchmark_share": Column("National share", SHARE, "yes, while a month of the window is provisional"),
    "lower_limit": Column("Lower limit (99.8 %)", SHARE, "yes, while a month of the window is provisional"),
    "upper_limit": Column("Upper limit (99.8 %)", SHARE, "yes, while a month of the window is provisional"),
    "flag": Column("Outside the 99.8 % limits", CODE, "yes, while a month of the window is provisional"),
    "warning": Column("Outside the 95 % limits", CODE, "yes, while a month of the window is provisional"),
    "includes_provisional_months": Column("Window includes provisional months", FLAG, "no"),
    "pair": Column("Measures compared", CODE, "no"),
    "pairs": Column("Months compared", NUMBER, "yes, while is_provisional is true"),
    "x_total": Column("Total of the first measure", PEOPLE, "yes, while is_provisional is true"),
    "y_total": Column("Total of the second measure", PEOPLE, "yes, while is_provisional is true"),
    "scale": Column("Scale (second / first)", NUMBER, "yes, while is_provisional is true"),
    "pearson_r": Column("Correlation (Pearson r)", NUMBER, "yes, while is_provisional is true"),
    "mean_abs_pct_error": Column("Mean absolute % error", SHARE, "yes, while is_provisional is true"),
    "is_provisional": Column("Provisional", FLAG, "no"),
    # revisions.csv
    "file": Column("File", TEXT, "no"),
    "row_key": Column("Row", TEXT, "no"),
    "column": Column("Column", TEXT, "no"),
    "old_value": Column("Previously published", TEXT, "no"),
    "new_value": Column("Now published", TEXT, "no"),
    "change": Column("Change", CODE, "no"),
    # data_dictionary.csv
    "label": Column("Label", TEXT, "no"),
    "meaning": Column("Meaning", TEXT, "no"),
    "unit": Column("Unit", CODE, "no"),
    "can_be_provisional": Column("Can be provisional", TEXT, "no"),
    "source": Column("Source", TEXT, "no"),
}

# Meanings of the columns that exist only in the publication (no dbt model holds them as
# published), or whose published meaning differs from the mart's.
PUBLICATION_ONLY: dict[str, str] = {
    "unit_name": "The unit's name (as opte_monthly.unit_name: its offices row with the latest valid_from; "
                 "Unallocated and National for those units).",
    "district_code": "The district above the unit (office rows) in the month of the row (for cohorts, the "
                     "cohort month; else the report month), from marts.reporting_units: the district of the "
                     "office at that month's end; UNALLOCATED for an office code with no offices row.",
    "district_name": "Name of district_code.",
    "region_code": "The region above the unit (office and district rows) in the month of the row (for cohorts, "
                   "the cohort month; else the report month), from marts.reporting_units.",
    "region_name": "Name of region_code.",
    "office_name": "Name of the office (as opte_monthly.unit_name of the office).",
    "opte_is_final": "OPtE (off-flows, exclusions, OPtE off-flows) of the unit's month is final; while false the "
                     "figures are provisional and can move either way as later extracts arrive. Taken from "
                     "marts.opte_monthly for the same unit and month.",
    "jot_is_final": "Job outcomes and JOT points of the unit's month are final; while false they are provisional "
                    "(a late HMRC notice raises them). Taken from marts.opte_monthly for the same unit and month.",
    "due_date": "The day week k of the cohort falls due: the cohort's count date + 7 x week days.",
    "is_due": "The week had fallen due by the end of the report month and at the data cut-off; when false "
              "offflowed_by_week and offflow_rate are blank (never a partial figure) and projected_rate, "
              "where present, estimates the week.",
    "includes_provisional_months": "Some month of the monitoring window (the 12 months to the report month) has "
                                   "provisional OPtE, so the shares can still move.",
    "is_provisional": "Some month of the financial year is not yet final for the second measure of the pair, so "
                      "more months will join the comparison and the figures can still move.",
}

# Meanings of the columns of the tables that only the publication makes (revisions, the dictionary).
TABLE_MEANINGS: dict[tuple[str, str], str] = {
    ("revisions", "file"): "The published table whose cell changed (file name without .csv / .parquet).",
    ("revisions", "level"): "Reporting level of the row: office, district, region or national.",
    ("revisions", "unit_code"): "The unit of the row (office code for office_monitors); blank for tables without units.",
    ("revisions", "unit_name"): "The unit's name, as published in the row.",
    ("revisions", "district_code"): "The district the row belongs to (office rows: their district; district rows: "
                                    "themselves), so that a district team can find its own changes.",
    ("revisions", "month"): "The row's month (first day; cohorts: the cohort month; measure_agreement: the "
                            "financial year).",
    ("revisions", "row_key"): "The rest of the row's key where the unit and month do not identify it "
                              "(e.g. benefit_code=JSA; week=13).",
    ("revisions", "column"): "The published column whose value changed.",
    ("revisions", "old_value"): "The value in the earlier publication, exactly as published (blank: no value or no row).",
    ("revisions", "new_value"): "The value in this publication, exactly as published (blank: no value or no row).",
    ("revisions", "change"): "revised (both values present and different), filled (a value where there was none, "
                             "e.g. a week that fell due), withdrawn (no value where there was one), row added or "
                             "row removed (within the months both publications cover).",
    ("data_dictionary", "file"): "The published table (file name without .csv / .parquet; both hold the same columns).",
    ("data_dictionary", "column"): "The column's name in the file.",
    ("data_dictionary", "label"): "The column's label in the workbooks and pages.",
    ("data_dictionary", "meaning"): "What the column means, in plain words.",
    ("data_dictionary", "unit"): "people, points, share (a proportion between 0 and 1), month, date, code, name, "
                                 "flag (true/false), number or text.",
    ("data_dictionary", "can_be_provisional"): "Whether the value can still change as later extracts arrive, and when.",
    ("data_dictionary", "source"): "Where the meaning comes from: the dbt model and column (see the dbt docs), "
                                   "or the publication.",
}

# The marts each published table is read from (for its dbt descriptions); None = publication only.
TABLE_SOURCES = {
    "opte_": "opte_monthly",
    "cohort_rates_": "cohort_offflow_rates",
    "opte_jot_conversion": "opte_jot_conversion",
    "sustainability_": "opte_sustainability",
    "office_monitors": "office_monitors",
    "measure_agreement": "measure_agreement",
    "revisions": None,
    "data_dictionary": None,
}
# Columns that always take the publication meaning, even when the mart has one of that name
# (the publication joins them on or narrows them).
PUBLICATION_MEANING = {"district_code", "district_name", "region_code", "region_name", "is_due",
                       "includes_provisional_months", "is_provisional"}


def source_model(table: str) -> str | None:
    if table in TABLE_SOURCES:
        return TABLE_SOURCES[table]
    for prefix, model in TABLE_SOURCES.items():
        if prefix.endswith("_") and table.startswith(prefix):
            return model
    raise KeyError(f"no source declared for published table {table}")


# ---------------------------------------------------------------- dbt descriptions


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOC_BLOCK = re.compile(r"{%-?\s*docs\s+(\w+)\s*-?%}(.*?){%-?\s*enddocs\s*-?%}", re.S)


@functools.cache
def _doc_blocks(project: Path = DBT_PROJECT_DIR) -> dict[str, str]:
    blocks = {}
    for path in sorted((project / "models").rglob("*.md")):
        for name, body in _DOC_BLOCK.findall(path.read_text(encoding="utf-8")):
            blocks[name] = body.strip()
    return blocks


@functools.cache
def _renderer(project: Path):
    import jinja2

    variables = (yaml.load((project / "dbt_project.yml").read_text(), Loader=_Loader) or {}).get("vars", {})
    blocks = _doc_blocks(project)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals.update(doc=lambda name: blocks[name], var=lambda name, default=None: variables.get(name, default))
    return env


def render_description(text: str, project: Path = DBT_PROJECT_DIR) -> str:
    """A dbt description with its doc() blocks and var() calls rendered, as dbt renders it."""
    if "{" not in text:
        return text
    return _renderer(project).from_string(text).render()


@functools.cache
def dbt_descriptions(project: Path = DBT_PROJECT_DIR) -> dict[tuple[str, str], str]:
    """(model, column) -> the column's description as dbt renders it, for every model of the project."""
    out = {}
    for path in sorted((project / "models").rglob("*.yml")):
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        for model in spec.get("models", []) or []:
            for column in model.get("columns", []) or []:
                if column.get("description"):
                    out[(model["name"], column["name"])] = render_description(column["description"], project)
    return out


def plain(text: str) -> str:
    """Markdown to plain words: no emphasis marks, no code ticks, one line."""
    text = re.sub(r"\*\*(.*?)\*\*", r"\1", text, flags=re.S)
    text = re.sub(r"(?<!\w)\*(\S.*?)\*(?!\w)", r"\1", text, flags=re.S)
    text = text.replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


def meaning(table: str, column: str) -> tuple[str, str]:
    """(meaning in plain words, where it comes from) of a published column."""
    if (table, column) in TABLE_MEANINGS:
        return plain(TABLE_MEANINGS[(table, column)]), "publication"
    model = source_model(table)
    if column not in PUBLICATION_MEANING and model is not None:
        text = dbt_descriptions().get((model, column))
        if text:
            return plain(text), f"dbt: marts.{model}.{column}"
    if column in PUBLICATION_ONLY:
        return plain(PUBLICATION_ONLY[column]), "publication"
    raise KeyError(f"{table}.{column} has no meaning: describe it in the dbt model's YAML "
                   f"(marts.{model}) or in measures.dictionary.PUBLICATION_ONLY")


def column(name: str) -> Column:
    try:
        return COLUMNS[name]
    except KeyError:
        raise KeyError(f"published column {name} has no label: add it to measures.dictionary.COLUMNS") from None


def label(name: str) -> str:
    return column(name).label


DICTIONARY_COLUMNS = ["file", "column", "label", "meaning", "unit", "can_be_provisional", "source"]


def data_dictionary(tables: dict[str, list[str]]):
    """The rows of data_dictionary.csv: every column of every published table (name -> columns)."""
    import pandas as pd

    rows = []
    for table in sorted(tables):
        for col in tables[table]:
            text, source = meaning(table, col)
            c = column(col)
            rows.append((table, col, c.label, text, c.unit, c.provisional, source))
    return pd.DataFrame(rows, columns=DICTIONARY_COLUMNS)
