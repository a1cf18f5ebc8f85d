"""National Insurance numbers: normalisation, validation and pseudonymisation (EXTRACTS.md).

Raw NINOs never leave landing: `person_key` = lower-case hex HMAC-SHA256(key, normalised
NINO as UTF-8), key = UTF-8 of `OPTE_PSEUDO_KEY` (a fixed development key, with a
warning, when unset). Vectorised versions work on Arrow arrays; HMAC runs once per
distinct NINO of a batch.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re

import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

ENV_KEY = "OPTE_PSEUDO_KEY"
DEVELOPMENT_KEY = b"opte-development-pseudonymisation-key (not for production)"
INVALID_MARKER = "<invalid nino>"
SCRUB_MARKER = "<nino>"

# Unicode White_Space (the no-break space U+00A0 included).
_WS_CHARS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
             "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WS_RE2 = "[" + "".join(f"\\x{{{ord(ch):X}}}" for ch in _WS_CHARS) + "]"
_WS_PY = re.compile("[" + re.escape(_WS_CHARS) + "]")

# First letter not D F I Q U V; second not D F I O Q U V; six digits; suffix A-D; and not these prefixes:
FORBIDDEN_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")

# Anything NINO-shaped (any letters, optional whitespace between characters), used to
# scrub free text such as the raw line of a malformed row before it is stored.
_W = "[" + re.escape(_WS_CHARS) + "]*"
_NINO_LIKE = re.compile(
    "[A-Za-z]" + _W + "[A-Za-z]" + "".join(_W + "[0-9]" for _ in range(6)) + _W + "[A-Za-z]?"
)


def normalise(value: str) -> str:
    """Upper-case and remove all Unicode whitespace."""
    return _WS_PY.sub("", value.upper())


def is_valid(normalised: str) -> bool:
    return bool(_VALID_PY.match(normalised))


def scrub(text: str | None) -> str | None:
    """Free text with every NINO-shaped token replaced by a marker."""
    return None if text is None else _NINO_LIKE.sub(SCRUB_MARKER, text)


def pseudo_key() -> bytes:
    """The HMAC key from the environment, else the development key (with a warning)."""
    value = os.environ.get(ENV_KEY)
    if not value:
        log.warning("%s is not set: pseudonymising with the fixed DEVELOPMENT key; "
                    "set it in production (person_keys differ between keys)", ENV_KEY)
        return DEVELOPMENT_KEY
    return value.encode("utf-8")


FINGERPRINT_LABEL = b"opte pseudonymisation key fingerprint, v1"


def key_fingerprint(key: bytes) -> str:
    """What identifies a pseudonymisation key without revealing it: HMAC-SHA256(key, a fixed label).

    Two keys give the same person_key for a NINO only if they are the same key, and then they
    give the same fingerprint; the fingerprint cannot be turned back into the key.
    """
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def person_key(normalised: str, key: bytes) -> str:
    return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


def _valid_pattern() -> str:
    """One RE2 pattern for the whole rule (RE2 has no look-ahead, so the forbidden
    prefixes are folded into per-first-letter classes of allowed second letters)."""
    first = [ch for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if ch not in "DFIQUV"]
    second = [ch for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if ch not in "DFIOQUV"]
    groups: dict[str, list[str]] = {}
    for a in first:
        allowed = "".join(b for b in second if a + b not in FORBIDDEN_PREFIXES)
        groups.setdefault(allowed, []).append(a)
    alts = "|".join(f"[{''.join(firsts)}][{allowed}]" for allowed, firsts in groups.items())
    return f"^(?:{alts})[0-9]{{6}}[A-D]$"


VALID_RE2 = _valid_pattern()
_VALID_PY = re.compile(VALID_RE2)  # the same pattern is valid for Python's re


def normalise_and_validate(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(normalised NINOs, validity mask with null read as False), vectorised.

    Whitespace removal (a regex replace) runs only on the values not already valid
    once upper-cased: the common case costs one pass.
    """
    upper = pc.utf8_upper(values)
    valid = pc.fill_null(pc.match_substring_regex(upper, VALID_RE2), False)
    invalid = pc.invert(valid)
    if not pc.any(pc.and_(invalid, pc.is_valid(upper))).as_py():
        return upper, valid
    stripped = pc.replace_substring_regex(upper.filter(invalid), pattern=_WS_RE2, replacement="")
    norm = pc.replace_with_mask(upper, invalid, stripped)
    return norm, pc.fill_null(pc.match_substring_regex(norm, VALID_RE2), False)


def _hmac_state(key: bytes):
    """A keyed HMAC-SHA256 state to copy per message: OpenSSL's C object when available
    (the `hmac.HMAC` wrapper's Python-level copy/hexdigest double the cost of the hot loop)."""
    try:
        from _hashlib import hmac_new  # CPython with OpenSSL
        return hmac_new(key, b"", "sha256")
    except (ImportError, ValueError):
        return hmac.new(key, digestmod=hashlib.sha256)


class Pseudonymiser:
    """HMAC-SHA256 of normalised NINOs, computed once per distinct value of a batch."""

    def __init__(self, key: bytes):
        self._base = _hmac_state(key)

    def one(self, normalised: str) -> str:
        h = self._base.copy()
        h.update(normalised.encode("utf-8"))
        return h.hexdigest()

    def keys(self, normalised: pa.Array) -> pa.Array:
        """person_key per element (null where the input is null)."""
        distinct = pc.unique(normalised.drop_null())
        copy = self._base.copy

        def key(value: str) -> str:
            h = copy()
            h.update(value.encode("utf-8"))
            return h.hexdigest()

        out = pa.array(list(map(key, distinct.to_pylist())), pa.string())
        return pc.take(out, pc.index_in(normalised, value_set=distinct))
