"""Stage 1 of a recall over the index: the live slots that pass a tag / kind / space / time
filter, computed from posting lists, grid cells and columns without touching the vectors.

The cheapest selective part goes first: positive tags intersect their posting lists (shortest
first), then the grid narrows to the cells a radius touches; only then are kinds, times and the
exact distance checked on the few candidates left. With no positive tag and no usable grid
cells, one boolean pass over every slot answers instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engram_ros.core.index.columns import Columns
from engram_ros.core.index.columns import MASK_RATIO
from engram_ros.core.index.grid import Grid
from engram_ros.core.index.tags import TagPool


def filter_slots(cols: Columns, tags: TagPool, grid: Grid, *, tags_all: Sequence[str],
                 tags_any: Sequence[str], tags_none: Sequence[str], kinds: Sequence[int],
                 center: np.ndarray | None, radius: float, t_start: float | None,
                 t_end: float | None) -> np.ndarray | None:
    """See :meth:`engram_ros.core.index.EngramIndex.filter`."""
    spatial = radius > 0.0
    if spatial:
        c = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
        if c is None or c.shape[0] != 3 or not np.all(np.isfinite(c)):
            raise ValueError('a positive radius needs a centre of three finite coordinates')
    if not (len(tags_all) or len(tags_any) or len(tags_none) or len(kinds) or spatial
            or t_start is not None or t_end is not None):
        return None
    codes = tags.codes
    postings = tags.postings
    cand: np.ndarray | None = None
    if len(tags_all):
        cand = _all_of(cols, tags, tags_all)
        if cand is None:
            return np.zeros(0, dtype=np.int64)
    if len(tags_any):
        cand = _any_of(cols, tags, tags_any, cand)
    if spatial:
        near = grid.near(c, radius)
        if near is not None:
            cand = near.astype(np.int64) if cand is None else cand[cols.member(cand, near)]
    none_lists = [postings.get(codes[t]) for t in set(tags_none) if t in codes]
    if cand is None:
        # No positive tag: one boolean pass over every slot.
        n = cols.n
        mask = cols.alive[:n].copy()
        if len(kinds):
            mask &= _of_kinds(cols.kind[:n], kinds)
        if t_start is not None:
            mask &= cols.last[:n] >= t_start
        if t_end is not None:
            mask &= cols.first[:n] <= t_end
        for lst in none_lists:
            mask[lst] = False
        cand = np.flatnonzero(mask)
        if spatial:
            d = cols.pos[cand] - c
            cand = cand[np.einsum('ij,ij->i', d, d) <= radius * radius]
        return cand
    for lst in none_lists:
        if cand.shape[0] == 0:
            break
        cand = cand[~cols.member(cand, lst)]
    if len(kinds) and cand.shape[0]:
        cand = cand[_of_kinds(cols.kind[cand], kinds)]
    if t_start is not None and cand.shape[0]:
        cand = cand[cols.last[cand] >= t_start]
    if t_end is not None and cand.shape[0]:
        cand = cand[cols.first[cand] <= t_end]
    if spatial and cand.shape[0]:
        d = cols.pos[cand] - c
        cand = cand[np.einsum('ij,ij->i', d, d) <= radius * radius]
    return cand


def _of_kinds(values: np.ndarray, kinds: Sequence[int]) -> np.ndarray:
    """Mask of ``values`` in ``kinds``; one kind (every merge search) without ``np.isin``'s
    set-up, which costs more than the comparison on the few slots near a position."""
    if len(kinds) == 1:
        return values == kinds[0]
    return np.isin(values, np.asarray(kinds, dtype=np.int64))


def _all_of(cols: Columns, tags: TagPool, tags_all: Sequence[str]) -> np.ndarray | None:
    """Slots carrying every tag (``int64``), or ``None`` when one is unknown."""
    codes = tags.codes
    lists = []
    for tag in set(tags_all):
        code = codes.get(tag)
        if code is None:
            return None
        lists.append(tags.postings.get(code))
    lists.sort(key=len)
    cand = lists[0].astype(np.int64)
    for lst in lists[1:]:
        if cand.shape[0] == 0:
            break
        cand = cand[cols.member(cand, lst)]
    return cand


def _any_of(cols: Columns, tags: TagPool, tags_any: Sequence[str],
            cand: np.ndarray | None) -> np.ndarray:
    """Slots (of ``cand``, or of all) carrying at least one of the tags (``int64``)."""
    codes = tags.codes
    lists = [tags.postings.get(codes[t]) for t in set(tags_any) if t in codes]
    if cand is not None:
        keep = np.zeros(cand.shape[0], dtype=bool)
        for lst in lists:
            keep |= cols.member(cand, lst)
        return cand[keep]
    n = cols.n
    if sum(len(lst) for lst in lists) * MASK_RATIO > n:
        scratch = cols.scratch
        for lst in lists:
            scratch[lst] = True
        out = np.flatnonzero(scratch[:n])
        scratch[:n] = False
        return out
    if lists:
        return np.unique(np.concatenate(lists)).astype(np.int64)
    return np.zeros(0, dtype=np.int64)
