"""Counter-based random numbers for the synthetic world: every draw is a hash of (seed, key, stream).

A sequential generator hands out numbers in the order they are asked for, so a world drawn
from one depends on everything drawn before: one more month, or another chunk size, shifts
every later draw. Here a draw is a pure function of

    (seed, domain, key, stream)

where `key` names the thing drawn for (a person's k-th claim spell, an employment, a claim)
and `stream` names the variable (its duration, its end reason, ...). The same person's
third spell gets the same numbers whether the period ends in March or in April, whatever
chunk the person is simulated in, and whoever else exists. The hash is the SplitMix64
finaliser applied twice (statistically sound for simulation; not cryptographic).
"""
from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

ROUND_BITS, SITE_BITS = 12, 8
PERSON_ROUND = (1 << ROUND_BITS) - 1   # the round index of draws made for a person, not a spell
MAX_ROUND = PERSON_ROUND - 1


def _mix_int(z: int) -> int:
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _mix(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> _S30)
    z = z * _M1
    z = z ^ (z >> _S27)
    z = z * _M2
    return z ^ (z >> _S31)


def spell_key(person: np.ndarray, rnd: np.ndarray | int, site: int = 0) -> np.ndarray:
    """Key of a person's round (`PERSON_ROUND` for the person itself) and a site within it."""
    p = np.asarray(person, dtype=np.uint64)
    r = np.asarray(rnd, dtype=np.uint64)
    return (p << np.uint64(ROUND_BITS + SITE_BITS)) | (r << np.uint64(SITE_BITS)) | np.uint64(site)


class Keyed:
    """Random draws keyed by uint64 keys; `domain` separates independent uses of one seed."""

    def __init__(self, seed: int, domain: int):
        self._base = _mix_int(_mix_int(int(seed) * _GOLDEN + 1) ^ (int(domain) * 0xD1B54A32D192ED03))

    def bits(self, key: np.ndarray, stream: int) -> np.ndarray:
        s = np.uint64(_mix_int(self._base + int(stream) * _GOLDEN))
        k = np.asarray(key, dtype=np.uint64)
        return _mix(_mix(k ^ s) + s)

    def uniform(self, key: np.ndarray, stream: int) -> np.ndarray:
        """Uniform on [0, 1), one value per key."""
        return (self.bits(key, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def integers(self, key: np.ndarray, stream: int, lo, hi) -> np.ndarray:
        """Integers in [lo, hi) (lo, hi scalars or arrays)."""
        lo = np.asarray(lo, dtype=np.int64)
        span = np.asarray(hi, dtype=np.int64) - lo
        return lo + np.floor(self.uniform(key, stream) * span).astype(np.int64)

    def exponential(self, key: np.ndarray, stream: int, scale) -> np.ndarray:
        return -np.log1p(-self.uniform(key, stream)) * scale

    def normal(self, key: np.ndarray, stream: int) -> np.ndarray:
        """Standard normal (Box-Muller on two keyed uniforms)."""
        u1 = self.uniform(key, stream)
        u2 = self.uniform(key, stream + 0x5BD1E995)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

    def choice(self, key: np.ndarray, stream: int, p) -> np.ndarray:
        """Index drawn with probabilities p (normalised)."""
        c = np.cumsum(np.asarray(p, dtype=np.float64))
        c /= c[-1]
        return np.minimum(np.searchsorted(c, self.uniform(key, stream), side="right"), len(c) - 1)

    def pick(self, key: np.ndarray, stream: int, names_probs) -> np.ndarray:
        names, p = names_probs
        return np.asarray(names, dtype=object)[self.choice(key, stream, p)]
