"""The extract contracts of EXTRACTS.md as data: columns, types, rules and keys per dataset.

Landing validates and types every inbox file against these; nothing else about a
dataset's shape is hard-coded in landing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

# Column kinds. "code" and "flag" values are matched case-insensitively and stored upper-case.
TEXT, NINO, DATE, INT, CODE, FLAG = "text", "nino", "date", "int", "code", "flag"


@dataclass(frozen=True)
class ColumnKind:
    """How a validated (text) value of a column kind lands: the one place that says it."""
    name: str
    landed_type: pa.DataType      # its type in the landed Parquet
    sql_type: str | None = None   # DuckDB type the text is cast to (None: it stays text)
    upper_case: bool = False      # matched case-insensitively and stored upper-case
    dictionary: bool = False      # dictionary-encoded in the landed Parquet

    def landed_sql(self, expr: str) -> str:
        """SQL for the landed (normalised) value of the text column `expr`."""
        if self.sql_type is not None:
            return f"CAST({expr} AS {self.sql_type})"
        if self.upper_case:
            return f"upper({expr})"
        return expr  # text, and nino (already its person_key in staging)

    def landed_array(self, values: pa.Array) -> pa.Array:
        """The landed (normalised) values of a text array."""
        if self.sql_type is not None:
            return pc.cast(values, self.landed_type)
        if self.upper_case:
            return pc.utf8_upper(values)
        return values


COLUMN_KINDS: dict[str, ColumnKind] = {k.name: k for k in (
    ColumnKind(TEXT, pa.string()),
    ColumnKind(NINO, pa.string()),   # lands as its person_key
    ColumnKind(DATE, pa.date32(), sql_type="DATE", dictionary=True),
    ColumnKind(INT, pa.int64(), sql_type="BIGINT"),
    ColumnKind(CODE, pa.string(), upper_case=True, dictionary=True),
    ColumnKind(FLAG, pa.string(), upper_case=True, dictionary=True),
)}

BENEFIT_CODES = ("JSA", "ESA", "IB", "SDA", "IS", "CA", "PC")
END_REASON_CODES = ("FW", "IW", "AB", "CIS", "CIB", "COB", "FTE", "AT", "GST", "RET", "PR",
                    "CC", "DE", "FTS", "NK")
FLAG_VALUES = ("Y", "N")

# Reject reasons in the order they are checked (EXTRACTS.md, Landing): a row gets the first that applies.
REJECT_REASONS = (
    "malformed_row", "missing_required", "invalid_nino", "invalid_date", "invalid_number",
    "date_out_of_range", "end_before_start", "unknown_benefit", "bad_flag", "bad_code",
    "conflicting_duplicate",
)

BIRTH_DATE_MIN = "1900-01-01"  # date_of_birth may not be earlier
OTHER_DATE_MIN = "1970-01-01"  # any other (non-validity) date may not be earlier
VALIDITY_DATES = ("valid_from", "valid_to")  # exempt from date_out_of_range
BIRTH_DATES = ("date_of_birth",)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None  # closed list (upper-case) for codes
    reject_as: str | None = None  # reject reason when outside `allowed`

    @property
    def landed_name(self) -> str:
        """Name in the landed Parquet: `nino` becomes `person_key` in the same position."""
        return "person_key" if self.kind == NINO else self.name

    @property
    def landing(self) -> ColumnKind:
        """How the column lands (its kind's entry in COLUMN_KINDS)."""
        return COLUMN_KINDS[self.kind]


@dataclass(frozen=True)
class Contract:
    dataset: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    snapshot: bool
    # (start, end) pairs: end earlier than start is `end_before_start`.
    end_pairs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, kind: str, nullable: bool = False, allowed=None, reject_as=None) -> Column:
    return Column(name, kind, nullable, tuple(allowed) if allowed else None, reject_as)


CONTRACTS: dict[str, Contract] = {c.dataset: c for c in (
    Contract(
        "benefit_claims",
        (
            _c("claim_id", TEXT),
            _c("nino", NINO),
            _c("benefit_code", CODE, allowed=BENEFIT_CODES, reject_as="unknown_benefit"),
            _c("office_code", CODE),
            _c("claim_start_date", DATE),
            _c("claim_end_date", DATE, nullable=True),
            # Unknown end reasons are kept (counted in data quality), so no closed list here.
            _c("end_reason_code", CODE, nullable=True),
            _c("lone_parent", FLAG),
            _c("disabled", FLAG),
        ),
        key=("claim_id",), snapshot=False,
        end_pairs=(("claim_start_date", "claim_end_date"),),
    ),
    Contract(
        "customers",
        (
            _c("nino", NINO),
            _c("date_of_birth", DATE, nullable=True),
            _c("sex", CODE, nullable=True, allowed=("M", "F"), reject_as="bad_code"),
            _c("date_of_death", DATE, nullable=True),
            _c("area_code", CODE, nullable=True),
        ),
        key=("nino",), snapshot=False,
    ),
    Contract(
        "tax_employments",
        (
            _c("nino", NINO),
            _c("paye_ref", TEXT),
            _c("start_date", DATE),
            _c("end_date", DATE, nullable=True),
            _c("form", CODE, allowed=("P46", "P45", "RTI"), reject_as="bad_code"),
            _c("received_date", DATE),
        ),
        key=("nino", "paye_ref", "start_date"), snapshot=False,
        end_pairs=(("start_date", "end_date"),),
    ),
    Contract(
        "programme_starts",
        (
            _c("nino", NINO),
            _c("programme_code", CODE),  # unknown codes are kept (counted in data quality)
            _c("start_date", DATE),
            _c("office_code", CODE, nullable=True),
        ),
        key=("nino", "programme_code", "start_date"), snapshot=False,
    ),
    Contract(
        "offices",
        (
            _c("office_code", CODE),
            _c("office_name", TEXT),
            _c("reporting_office_code", CODE),
            _c("district_code", CODE),
            _c("district_name", TEXT),
            _c("region_code", CODE),
            _c("region_name", TEXT),
            _c("valid_from", DATE),
            _c("valid_to", DATE, nullable=True),
        ),
        key=("office_code", "valid_from"), snapshot=True,
        end_pairs=(("valid_from", "valid_to"),),
    ),
    Contract(
        "disadvantaged_areas",
        (
            _c("area_code", CODE),
            _c("area_name", TEXT, nullable=True),
            _c("valid_from", DATE),
            _c("valid_to", DATE, nullable=True),
        ),
        key=("area_code", "valid_from"), snapshot=True,
        end_pairs=(("valid_from", "valid_to"),),
    ),
    Contract(
        "opte_targets",
        (
            _c("financial_year", INT),
            _c("district_code", CODE),
            _c("opte_target", INT),
        ),
        key=("financial_year", "district_code"), snapshot=True,
    ),
)}
