"""Engram id -> slot map of the index.

A sorted ``int64`` id array with a parallel ``int32`` slot array, searched with
``np.searchsorted``: ids are sparse but arrive increasing, so adds append. A removed id keeps
its entry with slot -1, so it is never found again (a re-add reuses the entry).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engram_ros.core.index.columns import grow


def id_array(ids: np.ndarray | Sequence[int]) -> np.ndarray:
    """Engram ids as a flat ``int64`` array.

    :raises TypeError: for anything but integers (a float id would be truncated silently).
    """
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in 'iu':
        raise TypeError(f'engram ids must be integers, not {arr.dtype}')
    return arr.astype(np.int64).reshape(-1)


class IdMap:
    """Sorted ids and their slots (capacity >= ``n``); slot -1 marks a removed id."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.slots = np.zeros(0, dtype=np.int32)
        self.n = 0

    def find(self, engram_id: int) -> int:
        """Position of ``engram_id`` in the map, or -1."""
        ids = self.ids[:self.n]
        pos = int(np.searchsorted(ids, engram_id))
        if pos < self.n and ids[pos] == engram_id:
            return pos
        return -1

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`find`: map positions of ``ids`` (-1 where absent)."""
        n = self.n
        if n == 0:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(self.ids[:n], ids)
        np.minimum(pos, n - 1, out=pos)
        return np.where(self.ids[pos] == ids, pos, -1)

    def live_at(self, map_pos: np.ndarray) -> np.ndarray:
        """Which map positions (from :meth:`lookup`) hold a live id."""
        live = map_pos >= 0
        live[live] = self.slots[map_pos[live]] >= 0
        return live

    def slot_of(self, engram_id: int) -> int:
        """Slot of a live id.

        :raises KeyError: if ``engram_id`` is not live.
        """
        pos = self.find(int(engram_id))
        if pos < 0 or self.slots[pos] < 0:
            raise KeyError(engram_id)
        return int(self.slots[pos])

    def live_slots(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots and map positions of unique live ``ids``.

        :raises ValueError: for duplicate ids. :raises KeyError: naming ids not live.
        """
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError('duplicate ids in the batch')
        map_pos = self.lookup(ids)
        live = self.live_at(map_pos)
        if not np.all(live):
            raise KeyError(f'engram id(s) not in the index: {ids[~live][:10].tolist()}; '
                           'nothing was changed')
        return self.slots[map_pos].astype(np.int64), map_pos

    def add(self, ids: np.ndarray, slots: np.ndarray, map_pos: np.ndarray) -> None:
        """Map new unique ``ids`` (none live; ``map_pos`` from :meth:`lookup`) to ``slots``."""
        m = ids.shape[0]
        # the common case appends increasing ids
        if (self.n == 0 or ids[0] > self.ids[self.n - 1]) and np.all(np.diff(ids) > 0):
            k = self.n
            self.ids = grow(self.ids, k + m)
            self.slots = grow(self.slots, k + m)
            self.ids[k:k + m] = ids
            self.slots[k:k + m] = slots
            self.n = k + m
            return
        # re-added ids reuse their map entry; new ones are merged in and re-sorted
        known = map_pos >= 0
        self.slots[map_pos[known]] = slots[known]
        k = self.n
        all_ids = np.concatenate((self.ids[:k], ids[~known]))
        all_slots = np.concatenate((self.slots[:k], slots[~known].astype(np.int32)))
        order = np.argsort(all_ids, kind='stable')
        self.ids = all_ids[order]
        self.slots = all_slots[order]
        self.n = all_ids.shape[0]
