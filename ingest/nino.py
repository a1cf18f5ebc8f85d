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

# First letter not D F I Q U V; second not D F I O Q U V; then six digits and A-D.
_SHAPE = "^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$"
_SHAPE_PY = re.compile(_SHAPE)
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
    return bool(_SHAPE_PY.match(normalised)) and normalised[:2] not in FORBIDDEN_PREFIXES


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


def person_key(normalised: str, key: bytes) -> str:
    return hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


def normalise_array(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_upper(values), pattern=_WS_RE2, replacement="")


def valid_mask(normalised: pa.Array) -> pa.Array:
    """True where the normalised NINO is valid; null stays null."""
    shape = pc.match_substring_regex(normalised, _SHAPE)
    prefix = pc.is_in(pc.utf8_slice_codeunits(normalised, 0, 2), value_set=pa.array(FORBIDDEN_PREFIXES))
    return pc.and_(shape, pc.invert(prefix))


class Pseudonymiser:
    """HMAC-SHA256 of normalised NINOs, computed once per distinct value of a batch."""

    def __init__(self, key: bytes):
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def one(self, normalised: str) -> str:
        h = self._base.copy()
        h.update(normalised.encode("utf-8"))
        return h.hexdigest()

    def keys(self, normalised: pa.Array) -> pa.Array:
        """person_key per element (null where the input is null)."""
        distinct = pc.unique(normalised.drop_null())
        base = self._base
        out = []
        append = out.append
        for value in distinct.to_pylist():
            h = base.copy()
            h.update(value.encode("utf-8"))
            append(h.hexdigest())
        return pc.take(pa.array(out, pa.string()), pc.index_in(normalised, value_set=distinct))
