"""Per-slot columns of the index: what stage 1 filters on and ranking weighs, one array each.

An engram is addressed by its *slot* (its insertion position), so the index holds no Python
object per engram. The columns are ``int64`` id, ``float32`` position (mm precision within
~10 km), ``float64`` first/last seen (epoch seconds need it), ``float32`` score, ``uint32``
observation count (the evidence behind an engram, which ranking weighs), ``uint8`` kind and
``bool`` alive. They grow by amortised doubling; slots never move, so a slot stays valid
across adds and removes (a rebuild reassigns them).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: A membership test switches from ``searchsorted`` to a scratch bitmap above n / this.
MASK_RATIO = 16


def grow(arr: np.ndarray, needed: int) -> np.ndarray:
    """Return ``arr`` (or a copy with doubled capacity) able to hold ``needed`` rows."""
    cap = arr.shape[0]
    if needed <= cap:
        return arr
    new_cap = max(needed, 2 * cap, 16)
    out = np.zeros((new_cap,) + arr.shape[1:], dtype=arr.dtype)
    out[:cap] = arr
    return out


class Columns:
    """The per-slot arrays (capacity >= ``n``; rows ``n:`` are unused)."""

    def __init__(self) -> None:
        self.n = 0  # slots used (live + tombstoned)
        self.n_live = 0
        self.ids = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros((0, 3), dtype=np.float32)
        self.first = np.zeros(0, dtype=np.float64)
        self.last = np.zeros(0, dtype=np.float64)
        self.score = np.zeros(0, dtype=np.float32)
        self.count = np.zeros(0, dtype=np.uint32)
        self.kind = np.zeros(0, dtype=np.uint8)
        self.alive = np.zeros(0, dtype=bool)
        #: All False between uses: a bitmap borrowed by membership tests and filters.
        self.scratch = np.zeros(0, dtype=bool)
        #: Packed alive bitmap for faiss, cached until the next add or remove.
        self.alive_bits: np.ndarray | None = None

    def reserve(self, n: int) -> None:
        self.ids = grow(self.ids, n)
        self.pos = grow(self.pos, n)
        self.first = grow(self.first, n)
        self.last = grow(self.last, n)
        self.score = grow(self.score, n)
        self.count = grow(self.count, n)
        self.kind = grow(self.kind, n)
        self.alive = grow(self.alive, n)
        self.scratch = grow(self.scratch, n)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Every array held (for the memory estimate)."""
        return (self.ids, self.pos, self.first, self.last, self.score, self.count, self.kind,
                self.alive, self.scratch)

    def check_slots(self, slots: np.ndarray | Sequence[int]) -> np.ndarray:
        """``slots`` as a flat ``int64`` array.

        :raises IndexError: for a slot out of range.
        """
        s = np.asarray(slots, dtype=np.int64).reshape(-1)
        if s.shape[0] and (s.min() < 0 or s.max() >= self.n):
            raise IndexError(f'slot out of range 0..{self.n - 1}')
        return s

    def live_slots(self) -> np.ndarray:
        """All live slots, increasing."""
        return np.flatnonzero(self.alive[:self.n])

    def alive_bitmap(self) -> np.ndarray:
        if self.alive_bits is None:
            self.alive_bits = np.packbits(self.alive[:self.n], bitorder='little')
        return self.alive_bits

    def member(self, slots: np.ndarray, posting: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``slots`` appear in the sorted ``posting`` list."""
        if posting.shape[0] == 0 or slots.shape[0] == 0:
            return np.zeros(slots.shape[0], dtype=bool)
        if slots.shape[0] * MASK_RATIO > self.n and posting.shape[0] * MASK_RATIO > self.n:
            scratch = self.scratch
            scratch[posting] = True
            out = scratch[slots]
            scratch[posting] = False
            return out
        pos = np.searchsorted(posting, slots)
        np.minimum(pos, posting.shape[0] - 1, out=pos)
        return posting[pos] == slots
