"""Spatial buckets of the index: a uniform (x, y) grid of live slots for radius filters.

A recall near a place, or ingest looking for the engram an observation reactivates, reads the
few cells around the centre instead of every position. Each cell is a posting list (the same
sorted ``int32`` lists the tags use), keyed by its integer cell coordinates.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from engram_ros.core.index.tags import Postings


class Grid:
    """Uniform grid over (x, y): cell -> sorted live slots."""

    #: A radius covering more cells than this is filtered by one pass over every position.
    MAX_CELLS = 256

    def __init__(self, cell: float) -> None:
        self.cell = float(cell)
        self._codes: dict[tuple[int, int], int] = {}
        self._postings = Postings()

    def _key(self, p: np.ndarray) -> tuple[int, int]:
        # float64 like cells(): a float32 quotient could round into the neighbouring cell
        return (int(math.floor(float(p[0]) / self.cell)),
                int(math.floor(float(p[1]) / self.cell)))

    def cells(self, positions: np.ndarray) -> np.ndarray:
        """``(n, 2)`` int64 cell coordinates of positions (the vectorised :meth:`_key`)."""
        xy = np.asarray(positions, dtype=np.float64)[:, :2]
        return np.floor(xy / self.cell).astype(np.int64)

    def _groups(self, slots: np.ndarray,
                positions: np.ndarray) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """``(cell key, sorted int32 slots)`` for each cell the positions fall in."""
        cells = self.cells(positions)
        order = np.lexsort((slots, cells[:, 1], cells[:, 0]))
        cells, ordered = cells[order], slots[order].astype(np.int32)
        bounds = np.flatnonzero(np.any(np.diff(cells, axis=0) != 0, axis=1)) + 1
        for a, b in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(ordered)].tolist()):
            yield (int(cells[a, 0]), int(cells[a, 1])), ordered[a:b]

    def _code(self, key: tuple[int, int]) -> int:
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._codes)
            self._postings.new_tag()
        return code

    def append(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Add new slots (each larger than every slot already in the grid)."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            self._postings.append(self._code(key), group)

    def discard(self, slot: int, position: np.ndarray) -> None:
        code = self._codes.get(self._key(position))
        if code is not None:
            self._postings.discard(code, slot)

    def insert(self, slot: int, position: np.ndarray) -> None:
        self._postings.insert(self._code(self._key(position)), slot)

    def discard_many(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Drop slots (at these positions) from their cells, one pass per cell."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            code = self._codes.get(key)
            if code is not None:
                self._postings.discard_many(code, group)

    def insert_many(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Put slots (at these positions) into their cells, wherever they fall in the order."""
        if slots.shape[0] == 0:
            return
        for key, group in self._groups(slots, positions):
            self._postings.insert_many(self._code(key), group)

    def near(self, center: np.ndarray, radius: float) -> np.ndarray | None:
        """Sorted slots in the cells the circle touches, or ``None`` when it spans too many."""
        x0, y0 = self._key(center - radius)
        x1, y1 = self._key(center + radius)
        if (x1 - x0 + 1) * (y1 - y0 + 1) > self.MAX_CELLS:
            return None
        lists = [self._postings.get(code) for code in
                 (self._codes.get((x, y)) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))
                 if code is not None]
        if not lists:
            return np.zeros(0, dtype=np.int32)
        return np.sort(np.concatenate(lists)) if len(lists) > 1 else lists[0]

    def nbytes(self) -> int:
        return self._postings.nbytes()
