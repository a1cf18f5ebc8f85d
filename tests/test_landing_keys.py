"""One pseudonym space per lake, a reproducible lake, and messages that name the real problem.

Landing records the fingerprint HMAC-SHA256(key, fixed label) of its key (never the key) in
`lake/_pseudonym_key.json` and in every manifest, and refuses another key in one line,
changing nothing. The same inbox landed into two homes gives the same Parquet bytes.
"""
from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from home_processes import error_lines, opte  # noqa: E402
from landing_fixtures import lake_snapshot, manifests, row, write_csv, write_raw  # noqa: E402

from measures.config import SAMPLE_INBOX  # noqa: E402

KEY_A = "key-alpha-3f9c1e"
KEY_B = "key-bravo-77d0aa"
LABEL = b"opte pseudonymisation key fingerprint, v1"


def fingerprint(key: str) -> str:
    return hmac.new(key.encode(), LABEL, hashlib.sha256).hexdigest()


def every_lake_file(home: Path) -> dict[str, tuple[str, int]]:
    return lake_snapshot(home)  # path -> (sha256, mtime_ns) of every file under lake/


@pytest.fixture
def inbox(tmp_path):
    return tmp_path / "inbox"


def test_landing_with_a_second_key_is_refused_and_changes_nothing(inbox, tmp_path):
    home = tmp_path / "home"
    write_csv(inbox, "customers", [row("customers")])
    first = opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A)
    assert first.returncode == 0, first.stderr
    (m,) = manifests(home, "customers")
    assert m["key_fingerprint"] == fingerprint(KEY_A)
    record = json.loads((home / "lake" / "_pseudonym_key.json").read_text())
    assert record["key_fingerprint"] == fingerprint(KEY_A) and record["development_key"] is False

    # a new extract, a correction of the landed one and a file that would be rejected whole
    write_csv(inbox, "benefit_claims", [row("benefit_claims")])
    write_csv(inbox, "customers", [row("customers", sex="M")])
    write_raw(inbox, "offices", "not,a,contract\n1,2,3\n")
    (home / "lake" / "customers" / "stray.parquet.tmp").write_bytes(b"left by a killed landing")
    before = every_lake_file(home)
    second = opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_B)
    assert second.returncode == 2
    (line,) = error_lines(second.stderr, "land")
    assert second.stderr.rstrip().splitlines()[-1] == line
    assert f"pseudonymised with another key (fingerprint {fingerprint(KEY_A)[:12]})" in line
    assert f"gives key {fingerprint(KEY_B)[:12]}" in line
    assert "Set OPTE_PSEUDO_KEY to the lake's key" in line and "new, empty home" in line
    assert every_lake_file(home) == before  # not a byte, not an mtime, not a file more or less
    assert not (home / ".landing_tmp").exists()
    for text in (first.stderr, second.stderr, *(p.read_text(errors="replace") for p in (home / "lake").rglob("*.json"))):
        assert KEY_A not in text and KEY_B not in text  # the key itself is never written anywhere

    again = opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A)  # the right key lands the rest
    assert again.returncode == 2 and "1 file(s) rejected whole" in error_lines(again.stderr, "land")[0]
    assert {m["key_fingerprint"] for d in ("customers", "benefit_claims") for m in manifests(home, d)} == \
        {fingerprint(KEY_A)}


def test_the_development_key_is_another_key(inbox, tmp_path):
    home = tmp_path / "home"
    write_csv(inbox, "customers", [row("customers")])
    assert opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A).returncode == 0
    write_csv(inbox, "benefit_claims", [row("benefit_claims")])
    before = every_lake_file(home)
    unset = opte(home, "land", "--inbox", str(inbox))  # OPTE_PSEUDO_KEY unset: the development key
    assert unset.returncode == 2
    assert "OPTE_PSEUDO_KEY is not set" in unset.stderr  # the development-key warning stays
    (line,) = error_lines(unset.stderr, "land")
    assert "(the development key: is OPTE_PSEUDO_KEY unset?)" in line
    assert every_lake_file(home) == before


def test_a_lake_without_a_key_record_adopts_the_key_with_a_warning(inbox, tmp_path):
    """A lake landed before fingerprints were recorded, or one where nothing landed yet."""
    home = tmp_path / "home"
    write_csv(inbox, "customers", [row("customers")])
    assert opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A).returncode == 0
    (home / "lake" / "_pseudonym_key.json").unlink()
    for path in (home / "lake" / "_manifests").rglob("*.json"):
        m = json.loads(path.read_text())
        del m["key_fingerprint"]
        path.write_text(json.dumps(m))
    write_csv(inbox, "offices", [row("offices")])
    adopted = opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_B)
    assert adopted.returncode == 0, adopted.stderr
    assert "has no record of its pseudonymisation key" in adopted.stderr
    assert json.loads((home / "lake" / "_pseudonym_key.json").read_text())["key_fingerprint"] == fingerprint(KEY_B)

    empty = tmp_path / "empty"  # a recorded key but nothing landed (a landing killed before its first commit)
    (empty / "lake").mkdir(parents=True)
    (empty / "lake" / "_pseudonym_key.json").write_text(json.dumps({"key_fingerprint": fingerprint(KEY_A)}))
    assert opte(empty, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_B).returncode == 0
    assert {m["key_fingerprint"] for m in manifests(empty, "customers")} == {fingerprint(KEY_B)}


def test_the_same_inbox_lands_as_the_same_bytes_in_two_homes(tmp_path):
    """A reproducible lake: data and quarantine Parquet are byte-identical (landing time is in
    the manifest only), gzip and quarantined rows included."""
    inbox = tmp_path / "inbox"
    for dataset in ("customers", "tax_employments", "offices"):
        shutil.copytree(SAMPLE_INBOX / dataset, inbox / dataset,
                        ignore=lambda folder, names: sorted(names)[6:])  # the first six extracts
    assert list(inbox.rglob("*.csv.gz"))
    homes = [tmp_path / "one", tmp_path / "two"]
    for home in homes:
        assert opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A).returncode == 0
    landed = [{k: v[0] for k, v in every_lake_file(h).items() if k.endswith(".parquet")} for h in homes]
    extracts = sum(len(manifests(homes[0], d)) for d in ("customers", "tax_employments", "offices"))
    assert len(landed[0]) == 2 * extracts and landed[0] == landed[1]  # same names, same bytes
    quarantined = sum(m["rows_quarantined"] for d in ("customers", "tax_employments") for m in manifests(homes[0], d))
    assert quarantined > 0
    stamps = {m["landed_at"] for h in homes for m in manifests(h, "customers")}
    assert len(stamps) > 1  # the landing times differ, and live in the manifests


def _gz_rejection(tmp_path, data: bytes) -> str:
    home, inbox = tmp_path / "home", tmp_path / "inbox"
    write_raw(inbox, "customers", data, ext="csv.gz")
    proc = opte(home, "land", "--inbox", str(inbox), OPTE_PSEUDO_KEY=KEY_A)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "land")
    return line.split("customers_20090105.csv.gz: ", 1)[1]


def _big_customers_gz() -> bytes:
    rows = [row("customers", nino=f"AB{i:06d}C") for i in range(20_000)]
    from landing_fixtures import csv_text

    return gzip.compress(csv_text(rows).encode())


def test_a_truncated_gzip_is_a_corrupt_gzip_stream(tmp_path):
    gz = _big_customers_gz()
    reason = _gz_rejection(tmp_path, gz[: len(gz) // 2])
    assert reason.startswith("corrupt gzip stream: the compressed data ends too early"), reason
    assert "CSV" not in reason


def test_a_damaged_gzip_is_a_corrupt_gzip_stream(tmp_path):
    gz = bytearray(_big_customers_gz())
    gz[len(gz) // 2] ^= 0x55  # zlib meets an impossible code, or a checksum that does not match
    reason = _gz_rejection(tmp_path, bytes(gz))
    assert reason.startswith(("corrupt gzip stream: checksum mismatch, the data is damaged",
                              "corrupt gzip stream: the compressed data is damaged")), reason

    gz = bytearray(_big_customers_gz())
    gz[-6] ^= 0x01  # the CRC-32 of the trailer: every block decodes, only the checksum says it is wrong
    reason = _gz_rejection(tmp_path / "crc", bytes(gz))
    assert reason.startswith("corrupt gzip stream: checksum mismatch, the data is damaged"), reason


def test_a_bad_utf8_byte_in_a_gzip_gives_its_line(tmp_path):
    from landing_fixtures import csv_text

    text = csv_text([row("customers", nino=f"AB{i:06d}C") for i in range(5000)]).encode()
    at = text.index(b"AB004321C")
    data = text[:at] + b"\xc3\x28" + text[at:]  # an invalid two-byte sequence on line 4323
    reason = _gz_rejection(tmp_path, gzip.compress(data))
    assert reason == f"not UTF-8 text: invalid byte 0xC3 on line 4323 (byte offset {at} of the decompressed text)"
