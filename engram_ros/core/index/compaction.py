"""Compaction: the index rebuilt from its live engrams alone, so nothing removed survives.

A removed engram is only tombstoned (:mod:`.engram_index`): its bf16 code and graph node stay
(they route searches), its id stays in the id map with slot -1, and a tag name stays interned
after the last engram carrying it is gone. That is cheap, but whatever the index holds reaches
the saved cache, and forgetting must be real. :func:`compacted` builds a fresh index of the live
slots only: their ids, columns, tags (only the names still carried) and their bf16 codes copied
bit for bit, with a new HNSW graph over just them. Slots are renumbered (in their old order).

When it runs (the store, :mod:`engram_ros.core.memory.lifecycle` and
:mod:`engram_ros.core.memory.writes`): before every save of the cache when anything is dead
(:func:`has_dead_entries`), and in RAM when tombstones reach :data:`COMPACT_MIN_TOMBSTONES` and
:data:`COMPACT_TOMBSTONE_RATIO` of the slots (:func:`worth_compacting`). The cost is one HNSW
insertion per live engram (0.2 ms each at 256-d on one busy core, measured: 100k engrams take
about 20 s, 1M several minutes), paid while the store's write lock is held (at close, or in the
forget that crossed the threshold); recalls go on against the old index until the new one is
swapped in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:     # the façade imports this module to compact itself
    from engram_ros.core.index.engram_index import EngramIndex

#: Tombstones below this never trigger a compaction in RAM (a save still compacts).
COMPACT_MIN_TOMBSTONES = 1024
#: In RAM, compact when tombstones are at least this fraction of the slots in use.
COMPACT_TOMBSTONE_RATIO = 0.25
#: Live slots copied per batch (bounds the float32 vectors decoded at once: 64 MiB at 256-d).
_BATCH = 65536


def has_dead_entries(index: EngramIndex) -> bool:
    """Whether the index holds anything of a removed engram or a removed tag: a tombstone, a
    removed id in the id map, or a tag name no live engram carries."""
    return (index.tombstones > 0 or index._id_map.n != len(index)
            or any(size == 0 for size in index._tags.postings.sizes))


def worth_compacting(index: EngramIndex) -> bool:
    """Whether tombstones passed the RAM threshold (see the module doc)."""
    dead = index.tombstones
    return dead >= COMPACT_MIN_TOMBSTONES and dead >= COMPACT_TOMBSTONE_RATIO * index.slot_count


def compacted(index: EngramIndex) -> EngramIndex:
    """A new index holding exactly the live engrams of ``index`` (which is only read)."""
    out = type(index)(
        index.dim, exact_threshold=index.exact_threshold, hnsw_m=index.hnsw_m,
        ef_search=index.ef_search, ef_construction=index.ef_construction,
        max_ef=index.max_ef, max_exact=index.max_exact, filtered_ef=index.filtered_ef,
        cell_size=index.cell_size)
    live = index.live_slots()
    codes = []
    for start in range(0, live.shape[0], _BATCH):
        slots = live[start:start + _BATCH]
        out.add_batch(index.ids_of(slots), index.vectors_of(slots),
                      kinds=index.kinds_of(slots), positions=index.positions_of(slots),
                      first_seen=index.first_seen_of(slots),
                      last_seen=index.last_seen_of(slots),
                      tags=[index.tags_of(s) for s in slots.tolist()],
                      scores=index.scores_of(slots), counts=index.counts_of(slots))
        codes.append(index._dense.codes_view()[slots])
    if codes:
        # add_batch re-normalised the decoded vectors; keep the stored codes exactly.
        out._dense.codes_view()[:] = np.concatenate(codes)
    return out
