"""The hierarchical memory store: ingest, recall, consolidate. :class:`MemoryStore` is the one
class the nodes call.

Layout of the memory:

* **storage** (:mod:`engram_ros.core.storage`): every engram's full record, durable (SQLite in
  WAL mode, evidence files) or in RAM when persistence is not consented to;
* **index** (:mod:`engram_ros.core.index`): compact columns and compressed vectors of every
  engram for two-stage retrieval; cached on disk at close, rebuilt from storage when the cache
  is missing or stale;
* **state** (:mod:`.state`): the per-engram facts needed in RAM besides the index (tier, pin,
  validity, anchors, keyframes, edges, labels), in one object with one update path;
* **tiers**: new engrams enter the short-term tier, an LRU cache of bounded capacity. An
  observation that matches an engram reactivates it (soft merge, :mod:`engram_ros.core.merge`);
  reactivated engrams are promoted to long-term slots. :meth:`MemoryStore.consolidate` merges
  duplicates, promotes, and forgets under the budget (:mod:`engram_ros.core.forgetting`).

Where things happen:

============================  ==========================================================
:mod:`.store`                 the :class:`MemoryStore` façade: public API, locks, audit log
:mod:`.config`                :class:`StoreConfig` and the records operations return
:mod:`.state`                 :class:`MemoryState`: per-engram facts in RAM
:mod:`.writes`                writing and forgetting engrams: storage, index and state
:mod:`.ingest`                observations in: match, merge or add, anchor, LRU eviction
:mod:`.recall`                queries: filter, validity, ranking, recall statistics
:mod:`.consolidation`         the pass: merges, promotion, budget, evictions
:mod:`.beliefs`               beliefs becoming history: moves and ends
:mod:`.mapping`               place graph edges, anchors, SLAM pose corrections
:mod:`.governance_ops`        list, edit, forget and purge; evidence retention
:mod:`.lifecycle`             the index cache: open, rebuild, save
============================  ==========================================================

Duplicate finding is :mod:`engram_ros.core.duplicates`; fusing duplicates
:mod:`engram_ros.core.merge`.

Concurrency: one writer at a time (ingest, bulk load, consolidate, edit, forget, feedback,
pose correction, close) under the store's write lock (``_write_lock``). The in-RAM index and
the state are guarded by the index lock (``_lock``), held only for their reads and updates and
never during storage I/O, so a slow write never blocks a recall; a recall takes only the index
lock, for each read of the index and to count what it returned. A write commits
to storage before it updates the index and the state, so whatever a reader finds in the index
is committed; a forget removes ids from the index and the state before it deletes the rows,
and a recall skips an id whose row is already gone. Both locks are re-entrant; the write lock
is always taken before the index lock.

Governance (:mod:`engram_ros.core.governance`): :meth:`MemoryStore.list_engrams`,
:meth:`~MemoryStore.get_engrams`, :meth:`~MemoryStore.edit` and :meth:`~MemoryStore.forget` let
people see, correct and delete what is kept. A forget is real: rows (SQLite ``secure_delete``,
then a WAL checkpoint that truncates the WAL), evidence files only those engrams referenced, and
the saved index cache (deleted once the memory is open, saved compacted at a clean close).
Evictions and merges remove as thoroughly: rows, the evidence files no engram references any
more, and, compacted away from the index, vectors and tag names (see :mod:`.lifecycle`). Every
recall, list, get, consolidation, edit and forget is written to the optional audit log
(:mod:`engram_ros.core.audit`). Observations inside a privacy zone or window
(:mod:`engram_ros.core.privacy`) are refused with :class:`ObservationExcluded`; consolidation
deletes evidence files past their retention limit.

Query text is mapped to tags word by word (:func:`engram_ros.core.sketch.text_to_tags`); text
that names no known tag is matched by meaning when the owner set :attr:`MemoryStore.text_matcher`
(:mod:`engram_ros.core.semantic`).

Map-like memory (:mod:`engram_ros.core.places`, :mod:`engram_ros.core.validity`): consecutive
place observations add traversal edges to a durable place graph (:meth:`MemoryStore.place_graph`);
objects are anchored to the nearest place and move with it when SLAM corrects its pose
(:meth:`~MemoryStore.correct_poses`); consolidation turns a belief into history when the thing
is seen elsewhere and missed where it was, so recall answers current beliefs unless asked
``at_time`` or ``changed_since``. Planners' :meth:`~MemoryStore.feedback` moves usefulness
scores, which decide (with frequency and recency) what the budget forgets; every eviction is
logged and audited (``evict``).
"""

from __future__ import annotations

from engram_ros.core.memory.config import ConsolidationReport
from engram_ros.core.memory.config import ConsolidationScope
from engram_ros.core.memory.config import IngestResult
from engram_ros.core.memory.config import META_AUDIT_HEAD
from engram_ros.core.memory.config import ObservationExcluded
from engram_ros.core.memory.config import StoreConfig
from engram_ros.core.memory.state import MemoryState
from engram_ros.core.memory.store import MemoryStore

__all__ = ['ConsolidationReport', 'ConsolidationScope', 'IngestResult', 'META_AUDIT_HEAD',
           'MemoryState', 'MemoryStore', 'ObservationExcluded', 'StoreConfig']
