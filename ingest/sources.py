"""Reading inbox files (CSV, CSV.gz, Parquet) as batches of text columns, in bounded memory.

Every source yields `Batch`es: all header columns as Arrow strings (names lower-cased,
null for an empty field or `""`), each row's 1-based data row number in the file, and
the malformed records met so far (data row number, raw text). A file that cannot be
read as the contract says raises `FileRejected` with a one-line reason.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.nino import scrub

CSV_BLOCK_SIZE = 8 << 20  # bytes per CSV block: bounds memory whatever the file size
PARQUET_BATCH_ROWS = 131_072


class FileRejected(Exception):
    """The whole file is rejected; the message is one line naming the problem."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line, NINO-shaped tokens scrubbed (messages may quote data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = scrub(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Batch:
    columns: pa.Table  # header columns, lower-cased names, all string
    row_numbers: np.ndarray  # int64, 1-based data row numbers
    malformed: list[tuple[int, str]] = field(default_factory=list)


def check_header(names: list[str], required: tuple[str, ...]) -> list[str]:
    """Lower-case the header's names; reject duplicates and missing contract columns."""
    lowered = [n.strip().lower() for n in names]
    seen, dups = set(), []
    for n in lowered:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise FileRejected(f"duplicate column name(s) {', '.join(repr(d) for d in dups)} "
                           "(names are case-insensitive)")
    missing = [c for c in required if c not in seen]
    if missing:
        raise FileRejected(f"missing contract column(s) {', '.join(missing)} "
                           f"(header has {len(lowered)} column(s); expected comma-separated CSV with a header row)")
    return lowered


class CsvSource:
    def __init__(self, path: Path, gzipped: bool):
        self.path = path
        self.gzipped = gzipped

    def _raw(self):
        return gzip.open(self.path, "rb") if self.gzipped else open(self.path, "rb")

    def header(self) -> list[str]:
        try:
            with self._raw() as fh:
                text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
                first = next(csv.reader(text), None)
        except UnicodeDecodeError:
            raise FileRejected(self._bad_utf8()) from None
        except (OSError, EOFError, zlib.error) as exc:
            if self.gzipped:
                raise FileRejected(corrupt_gzip(exc)) from None
            raise FileRejected(f"cannot be read: {one_line(exc)}") from None
        except csv.Error as exc:
            raise FileRejected(f"not CSV: {one_line(exc)}") from None
        if first is None:
            raise FileRejected("empty file: no header row")
        if not first or first == [""]:
            raise FileRejected("no header row (line 1 is blank)")
        if any("\x00" in name for name in first):
            raise FileRejected("not CSV text (NUL bytes in the header)")
        return first

    def batches(self, names: list[str]):
        ncols = len(names)
        internal = [f"c{i}" for i in range(ncols)]
        malformed: list[tuple[int, str]] = []  # (data row number, raw text), in file order
        pending: list[int] = []  # data row numbers not given to good rows (malformed or blank)

        def on_invalid(row) -> str:
            if row.number is None:  # only with threaded parsing, which we never use
                raise FileRejected("cannot number malformed rows")
            rn = row.number - 1  # the header is record 1
            pending.append(rn)
            if row.text.strip():  # a line of only whitespace is a blank line, not a row
                malformed.append((rn, row.text))
            return "skip"

        stream = pa.input_stream(str(self.path), compression="gzip" if self.gzipped else None)
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=internal, skip_rows=1, use_threads=False,
                                               block_size=CSV_BLOCK_SIZE),
                parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True,
                                                 escape_char=False, newlines_in_values=True,
                                                 ignore_empty_lines=True, invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in internal}, null_values=[""],
                    strings_can_be_null=True, quoted_strings_can_be_null=True, check_utf8=True),
            )
        except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
            stream.close()
            raise FileRejected(self._reason(exc)) from None
        cursor = 1
        pos = 0  # index into pending
        try:
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
                    raise FileRejected(self._reason(exc)) from None
                k = rb.num_rows
                parts = []
                while k > 0:
                    nxt = pending[pos] if pos < len(pending) else None
                    take = k if nxt is None else min(k, nxt - cursor)
                    if take > 0:
                        parts.append(np.arange(cursor, cursor + take, dtype=np.int64))
                        cursor += take
                        k -= take
                    if k > 0:  # cursor sits on a skipped record
                        pos += 1
                        cursor += 1
                rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
                table = pa.Table.from_batches([rb]).rename_columns(names)
                yield Batch(table, rows, malformed[:])
                malformed.clear()
            if malformed:
                yield Batch(_empty(names), np.empty(0, np.int64), malformed[:])
        finally:
            stream.close()

    def _reason(self, exc: BaseException) -> str:
        msg = str(exc)
        if "UTF8" in msg or "UTF-8" in msg or "utf-8" in msg:
            return self._bad_utf8()
        # Arrow reports a failing decompressor as an IOError (OSError), a CSV problem as ArrowInvalid
        if self.gzipped and (isinstance(exc, (OSError, EOFError, zlib.error)) and not isinstance(exc, pa.ArrowInvalid)):
            return corrupt_gzip(exc)
        return f"not readable as CSV: {one_line(exc)}"

    def _bad_utf8(self) -> str:
        """Where the first byte that is not UTF-8 is: line (1 = the header) and byte offset."""
        where = first_bad_utf8(self._raw)
        if where is None:
            return "not UTF-8 text (invalid byte sequence)"
        line, offset, byte = where
        of = " of the decompressed text" if self.gzipped else ""
        return f"not UTF-8 text: invalid byte 0x{byte:02X} on line {line} (byte offset {offset}{of})"


_GZIP_PROBLEMS = {  # what zlib and Arrow say -> what it means
    "truncated compressed stream": "the compressed data ends too early, a partial transfer?",
    "compressed file ended before the end-of-stream marker": "the compressed data ends too early, a partial transfer?",
    "incorrect data check": "checksum mismatch, the data is damaged",
    "crc check failed": "checksum mismatch, the data is damaged",
    "incorrect header check": "not gzip data, bad header",
    "not a gzipped file": "not gzip data, bad header",
    "inflate failed": "the compressed data is damaged",  # any other zlib failure
    "while decompressing data": "the compressed data is damaged",
}


def corrupt_gzip(exc: BaseException) -> str:
    """A decompression failure in one line: what it means, then what zlib or Arrow said."""
    text = one_line(exc)
    meaning = next((m for k, m in _GZIP_PROBLEMS.items() if k in text.lower()), None)
    return f"corrupt gzip stream: {meaning} ({text})" if meaning else f"corrupt gzip stream: {text}"


def first_bad_utf8(open_raw, chunk_size: int = 1 << 20) -> tuple[int, int, int] | None:
    """(line, byte offset, byte value) of the first byte that is not valid UTF-8 in the stream
    `open_raw()` opens (lines counted from 1; an offset counts bytes from the start, BOM included);
    None when the whole stream decodes (or it cannot be read again)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes fed to the decoder before this chunk
    newlines = 0  # newlines in the bytes before this chunk
    try:
        with open_raw() as fh:
            while True:
                chunk = fh.read(chunk_size)
                pending = decoder.getstate()[0]  # undecoded bytes of the previous chunk (a split character)
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    data = pending + chunk
                    at = exc.start  # in data
                    start = offset - len(pending)
                    line = newlines - pending.count(b"\n") + data[:at].count(b"\n") + 1
                    return line, start + at, data[at]
                if not chunk:
                    return None
                offset += len(chunk)
                newlines += chunk.count(b"\n")
    except (OSError, EOFError, zlib.error):
        return None


def _empty(names: list[str]) -> pa.Table:
    return pa.table({n: pa.array([], pa.string()) for n in names})


def text_form(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A Parquet column in its text form (dates as YYYY-MM-DD, numbers as written: 95.0 stays 95.0)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_nested(t):
        raise FileRejected(f"column of type {t} cannot be read as text")
    if pa.types.is_floating(t):
        s = pc.cast(arr, pa.string())
        return pc.if_else(pc.match_substring_regex(s, r"^-?[0-9]+$"),
                          pc.binary_join_element_wise(s, ".0", ""), s)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            return pc.cast(arr, pa.string())
        except pa.ArrowInvalid:
            raise FileRejected("not UTF-8 text (binary column with invalid bytes)") from None
    return pc.cast(arr, pa.string())


class ParquetSource:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise FileRejected(f"not a readable Parquet file: {one_line(exc)}") from None

    def header(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    def batches(self, names: list[str]):
        start = 1
        try:
            for rb in self.file.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                cols = []
                for arr in rb.columns:
                    s = text_form(arr)
                    cols.append(pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s))
                table = pa.Table.from_arrays(cols, names=names)
                rows = np.arange(start, start + rb.num_rows, dtype=np.int64)
                start += rb.num_rows
                yield Batch(table, rows)
        except FileRejected:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise FileRejected(f"not a readable Parquet file: {one_line(exc)}") from None


def open_source(path: Path, fmt: str):
    if fmt == "parquet":
        return ParquetSource(path)
    return CsvSource(path, gzipped=(fmt == "csv.gz"))
