"""Tags of the index: interned codes, one posting list per tag, and each slot's codes.

Tags are interned to ``int32`` codes. Each tag has one sorted ``int32`` posting list
(amortised doubling) holding only live slots: stage 1 intersects these. Each slot keeps an
``(offset, count)`` into a shared tag-code pool, so a slot's old tags can be found on update
or remove; the pool is compacted when more than half of it is garbage.
"""

from __future__ import annotations

from typing import Iterator
from typing import Sequence

import numpy as np

from engram_ros.core.index.columns import grow


class Postings:
    """Sorted, growable ``int32`` posting lists, one per interned tag code."""

    def __init__(self) -> None:
        self.lists: list[np.ndarray] = []
        self.sizes: list[int] = []

    def new_tag(self) -> None:
        self.lists.append(np.zeros(0, dtype=np.int32))
        self.sizes.append(0)

    def get(self, code: int) -> np.ndarray:
        return self.lists[code][:self.sizes[code]]

    def append(self, code: int, slots: np.ndarray) -> None:
        """Append slots larger than every slot already in the list (the add path)."""
        n = self.sizes[code]
        arr = grow(self.lists[code], n + slots.shape[0])
        arr[n:n + slots.shape[0]] = slots
        self.lists[code] = arr
        self.sizes[code] = n + slots.shape[0]

    def insert(self, code: int, slot: int) -> None:
        n = self.sizes[code]
        arr = grow(self.lists[code], n + 1)
        pos = int(np.searchsorted(arr[:n], slot))
        if pos < n and arr[pos] == slot:
            return
        arr[pos + 1:n + 1] = arr[pos:n].copy()
        arr[pos] = slot
        self.lists[code] = arr
        self.sizes[code] = n + 1

    def discard(self, code: int, slot: int) -> None:
        n = self.sizes[code]
        arr = self.lists[code]
        pos = int(np.searchsorted(arr[:n], slot))
        if pos < n and arr[pos] == slot:
            arr[pos:n - 1] = arr[pos + 1:n].copy()
            self.sizes[code] = n - 1

    def insert_many(self, code: int, slots: np.ndarray) -> None:
        """Insert sorted unique ``slots`` anywhere in the list (one merge, not one per slot)."""
        n = self.sizes[code]
        merged = np.union1d(self.lists[code][:n], slots).astype(np.int32)
        arr = grow(self.lists[code], merged.shape[0])
        arr[:merged.shape[0]] = merged
        self.lists[code] = arr
        self.sizes[code] = merged.shape[0]

    def discard_many(self, code: int, slots: np.ndarray) -> None:
        """Drop sorted unique ``slots`` from the list (those absent are ignored)."""
        n = self.sizes[code]
        arr = self.lists[code]
        current = arr[:n]
        pos = np.searchsorted(slots, current)
        np.minimum(pos, slots.shape[0] - 1, out=pos)
        kept = current[slots[pos] != current]
        arr[:kept.shape[0]] = kept
        self.sizes[code] = kept.shape[0]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.lists)


class TagPool:
    """The tag dictionary, its posting lists, and each slot's tag codes in a shared pool."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []
        self.postings = Postings()
        self.off = np.zeros(0, dtype=np.int64)
        self.cnt = np.zeros(0, dtype=np.uint16)
        self.pool = np.zeros(0, dtype=np.int32)
        self.pool_n = 0
        self.garbage = 0

    def reserve(self, n: int) -> None:
        self.off = grow(self.off, n)
        self.cnt = grow(self.cnt, n)

    def nbytes(self) -> int:
        """Bytes of the per-slot arrays, the pool, the postings and the dictionary."""
        return (self.off.nbytes + self.cnt.nbytes + self.pool.nbytes + self.postings.nbytes()
                + sum(len(t) + 80 for t in self.names))

    # ------------------------------------------------------------------ dictionary

    def intern(self, tag: str) -> int:
        code = self.codes.get(tag)
        if code is None:
            code = len(self.names)
            self.codes[tag] = code
            self.names.append(tag)
            self.postings.new_tag()
        return code

    def codes_of(self, tags: Sequence[str]) -> np.ndarray:
        if isinstance(tags, str):
            raise TypeError('tags must be a sequence of strings, not one string')
        return np.array(sorted({self.intern(str(t)) for t in tags}), dtype=np.int32)

    def table(self, tags: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Interned tags of many engrams: ``(codes, owner, counts)``, each engram's codes
        sorted and unique and contiguous (``owner`` = its row)."""
        known = self.codes
        flat_list: list[int] = []
        lengths = []
        for row in tags:
            lengths.append(len(row))
            for tag in row:
                code = known.get(tag)
                flat_list.append(self.intern(str(tag)) if code is None else code)
        m = len(lengths)
        flat = np.array(flat_list, dtype=np.int64)
        owner = np.repeat(np.arange(m, dtype=np.int64), lengths)
        order = np.lexsort((flat, owner))
        flat, owner = flat[order], owner[order]
        if flat.shape[0] > 1:
            first = np.r_[True, (np.diff(flat) != 0) | (np.diff(owner) != 0)]
            flat, owner = flat[first], owner[first]
        counts = np.bincount(owner, minlength=m).astype(np.int64)
        return flat.astype(np.int32), owner, counts

    # ------------------------------------------------------------------ per-slot codes

    def slot_tags(self, slot: int) -> np.ndarray:
        off = int(self.off[slot])
        return self.pool[off:off + int(self.cnt[slot])]

    def names_of(self, slot: int) -> tuple[str, ...]:
        """Tags of one slot, sorted (a hot path: no array round trip)."""
        off = int(self.off[slot])
        names = self.names
        return tuple(sorted([names[c] for c in self.pool[off:off + int(self.cnt[slot])]
                             .tolist()]))

    def codes_at(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, counts)``: the tag codes of ``slots`` concatenated, and how many each."""
        cnt = self.cnt[slots].astype(np.int64)
        return self.pool[np.repeat(self.off[slots], cnt) + ramp(cnt)], cnt

    def append_rows(self, slots: np.ndarray, code_lists: list[np.ndarray],
                    counts: np.ndarray) -> None:
        """Tags of new slots (each larger than every slot already posted)."""
        n0, n1 = int(slots[0]), int(slots[-1]) + 1
        flat = (np.concatenate(code_lists) if counts.sum() else np.zeros(0, dtype=np.int32))
        self.pool = grow(self.pool, self.pool_n + flat.shape[0])
        self.pool[self.pool_n:self.pool_n + flat.shape[0]] = flat
        self.off[n0:n1] = self.pool_n + np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.cnt[n0:n1] = counts
        self.pool_n += flat.shape[0]
        if flat.shape[0]:
            owner = np.repeat(slots, counts).astype(np.int32)
            order = np.argsort(flat, kind='stable')
            flat_sorted = flat[order]
            owner_sorted = owner[order]
            bounds = np.flatnonzero(np.diff(flat_sorted)) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [flat_sorted.shape[0]]))
            for a, b in zip(starts.tolist(), ends.tolist()):
                self.postings.append(int(flat_sorted[a]), owner_sorted[a:b])

    def set_tags(self, slot: int, tags: Sequence[str], n: int) -> None:
        """Replace the tags of live ``slot`` (``n``: slots in use)."""
        new = self.codes_of(tags)
        old = self.slot_tags(slot).copy()
        for code in np.setdiff1d(old, new, assume_unique=True).tolist():
            self.postings.discard(code, slot)
        for code in np.setdiff1d(new, old, assume_unique=True).tolist():
            self.postings.insert(code, slot)
        self.put(slot, new, n)

    def put(self, slot: int, codes: np.ndarray, n: int) -> None:
        """Store ``codes`` as the slot's tags (in place if they fit, else appended)."""
        if codes.shape[0] > np.iinfo(np.uint16).max:
            raise ValueError(f'{codes.shape[0]} tags on one engram; at most 65535 are supported')
        cnt = int(self.cnt[slot])
        if codes.shape[0] <= cnt:
            off = int(self.off[slot])
            self.pool[off:off + codes.shape[0]] = codes
            self.garbage += cnt - codes.shape[0]
        else:
            self.pool = grow(self.pool, self.pool_n + codes.shape[0])
            self.pool[self.pool_n:self.pool_n + codes.shape[0]] = codes
            self.off[slot] = self.pool_n
            self.pool_n += codes.shape[0]
            self.garbage += cnt
        self.cnt[slot] = codes.shape[0]
        self._maybe_compact(n)

    def retag(self, slots: np.ndarray, tags: Sequence[Sequence[str]], n: int) -> None:
        """Set the tags of ``slots`` (live, unique), touching only those that change."""
        flat, owner, counts = self.table(tags)
        starts = np.cumsum(counts) - counts
        old_cnt = self.cnt[slots].astype(np.int64)
        same = old_cnt == counts
        check = np.flatnonzero(same & (counts > 0))
        if check.shape[0]:
            c = counts[check]
            r = ramp(c)
            old = self.pool[np.repeat(self.off[slots[check]], c) + r]
            differs = old != flat[np.repeat(starts[check], c) + r]
            same[check[np.repeat(np.arange(check.shape[0]), c)[differs]]] = False
        changed = np.flatnonzero(~same)
        if changed.shape[0] == 0:
            return
        ch_slots = slots[changed]
        oc = old_cnt[changed]
        old_codes = self.pool[np.repeat(self.off[ch_slots], oc) + ramp(oc)]
        old_owner = np.repeat(ch_slots, oc)
        sel = ~same[owner]
        new_codes = flat[sel]
        new_owner = slots[owner[sel]]
        width = len(self.names)
        old_keys = old_owner * width + old_codes
        new_keys = new_owner * width + new_codes
        drop = ~np.isin(old_keys, new_keys)
        for code, group in group_by(old_codes[drop], old_owner[drop]):
            self.postings.discard_many(code, group)
        add = ~np.isin(new_keys, old_keys)
        for code, group in group_by(new_codes[add], new_owner[add]):
            self.postings.insert_many(code, group)
        # the changed slots' codes go to the end of the pool, in slot-list order
        total = new_codes.shape[0]
        self.pool = grow(self.pool, self.pool_n + total)
        self.pool[self.pool_n:self.pool_n + total] = new_codes
        new_cnt = counts[changed]
        self.off[ch_slots] = self.pool_n + np.cumsum(new_cnt) - new_cnt
        self.cnt[ch_slots] = new_cnt
        self.pool_n += total
        self.garbage += int(oc.sum())
        self._maybe_compact(n)

    def drop(self, slot: int) -> None:
        """Take a removed slot off every posting list and free its codes."""
        for code in self.slot_tags(slot).tolist():
            self.postings.discard(code, slot)
        self.garbage += int(self.cnt[slot])
        self.cnt[slot] = 0

    def drop_many(self, slots: np.ndarray) -> None:
        """:meth:`drop` for many slots, one pass per touched posting list."""
        codes, cnt = self.codes_at(slots)
        for code, group in group_by(codes, np.repeat(slots, cnt)):
            self.postings.discard_many(code, group)
        self.garbage += int(cnt.sum())
        self.cnt[slots] = 0

    def _maybe_compact(self, n: int) -> None:
        if self.garbage > 1024 and self.garbage * 2 > self.pool_n:
            self.compact(n)

    def compact(self, n: int) -> None:
        """Rewrite the pool without garbage (``n``: slots in use)."""
        cnt = self.cnt[:n].astype(np.int64)
        new_off = np.concatenate(([0], np.cumsum(cnt)[:-1])) if n else np.zeros(0, np.int64)
        total = int(cnt.sum())
        src = np.repeat(self.off[:n] - new_off, cnt) + np.arange(total, dtype=np.int64)
        self.pool = self.pool[src].copy()
        self.pool_n = total
        self.off[:n] = new_off
        self.garbage = 0


def check_tag_lists(tags: Sequence[Sequence[str]], m: int) -> None:
    """Check one tag sequence per engram (before anything is interned)."""
    if isinstance(tags, str):
        raise TypeError('tags must be one sequence of strings per engram')
    if len(tags) != m:
        raise ValueError(f'{m} ids but {len(tags)} tag lists')
    for row in tags:
        if isinstance(row, str):
            raise TypeError('tags must be a sequence of strings per engram, not one string')
        if len(row) > np.iinfo(np.uint16).max and \
                len(set(map(str, row))) > np.iinfo(np.uint16).max:
            raise ValueError('at most 65535 tags per engram are supported')


def ramp(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each ``c`` in ``counts``, concatenated."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def group_by(keys: np.ndarray, values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(key, sorted int32 values)`` for each distinct key."""
    if keys.shape[0] == 0:
        return
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order].astype(np.int32)
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for a, b in zip(np.r_[0, bounds].tolist(), np.r_[bounds, keys.shape[0]].tolist()):
        yield int(keys[a]), values[a:b]
