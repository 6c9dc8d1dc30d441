"""Input checks of the index's batch writers: every column of a batch checked before the
first mutation, so a bad batch changes nothing (:class:`~.engram_index.EngramIndex`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def checked_rows(m: int, x: np.ndarray, *, positions: np.ndarray, kinds: np.ndarray,
                 first_seen: np.ndarray, last_seen: np.ndarray,
                 scores: np.ndarray | None, counts: np.ndarray | None,
                 tags: Sequence[Sequence[str]]) -> tuple[np.ndarray, ...]:
    """The columns of an :meth:`EngramIndex.add_batch` of ``m`` rows (``x``: its normalised
    vectors) as arrays: positions, kinds, first and last seen, scores (default 0.5) and
    counts (default 1).

    :raises ValueError: for mismatched lengths, a kind outside 0..255, a non-finite position,
        time or score, or an observation count outside 1..2**32-1.
    :raises TypeError: if the tags are one string instead of one sequence per engram.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    kinds_a = np.asarray(kinds).reshape(-1)
    first = np.asarray(first_seen, dtype=np.float64).reshape(-1)
    last = np.asarray(last_seen, dtype=np.float64).reshape(-1)
    sc = (np.full(m, 0.5) if scores is None
          else np.asarray(scores, dtype=np.float64).reshape(-1))
    cn = (np.ones(m, dtype=np.int64) if counts is None
          else np.asarray(counts, dtype=np.int64).reshape(-1))
    if isinstance(tags, str):
        raise TypeError('tags must be one sequence of strings per engram')
    lengths = {x.shape[0], pos.shape[0], kinds_a.shape[0], first.shape[0], last.shape[0],
               sc.shape[0], cn.shape[0], len(tags)}
    if lengths != {m}:
        raise ValueError(f'add_batch: {m} ids but columns of lengths {sorted(lengths)}')
    if np.any((kinds_a < 0) | (kinds_a > 255)):
        raise ValueError('kind codes must be in 0..255')
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(first))
            and np.all(np.isfinite(last)) and np.all(np.isfinite(sc))):
        raise ValueError('positions, times and scores must be finite')
    if np.any((cn < 1) | (cn > np.iinfo(np.uint32).max)):
        raise ValueError('observation counts must be in 1..2**32-1')
    return pos, kinds_a, first, last, sc, cn


def checked_columns(m: int, x: np.ndarray | None, pos: np.ndarray | None,
                     **given: np.ndarray | None) -> dict[str, np.ndarray]:
    """The given scalar columns of an :meth:`EngramIndex.update_batch` as ``float64``, each
    checked for length and finiteness together with the vectors and positions.

    :raises ValueError: naming the first column that is wrong.
    """
    columns = {}
    for name, value in given.items():
        if value is not None:
            columns[name] = np.asarray(value, dtype=np.float64).reshape(-1)
    for name, arr in list(columns.items()) + ([('vectors', x)] if x is not None else []) \
            + ([('positions', pos)] if pos is not None else []):
        if arr.shape[0] != m:
            raise ValueError(f'update_batch: {m} ids but {arr.shape[0]} {name}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'update_batch: {name} must be finite')
    if 'kinds' in columns and np.any((columns['kinds'] < 0) | (columns['kinds'] > 255)
                                     | (columns['kinds'] != np.round(columns['kinds']))):
        raise ValueError('kind codes must be integers in 0..255')
    if 'counts' in columns and np.any((columns['counts'] < 1)
                                      | (columns['counts'] > np.iinfo(np.uint32).max)):
        raise ValueError('observation counts must be in 1..2**32-1')
    return columns
