"""The hierarchical memory store: ingest, recall, consolidate. The one class the nodes call.

Layout of the memory:

* **storage** (:mod:`engram_ros.core.storage`): every engram's full record, durable (SQLite in
  WAL mode, evidence files) or in RAM when persistence is not consented to;
* **index** (:mod:`engram_ros.core.index`): compact columns and compressed vectors of every
  engram for two-stage retrieval; cached on disk at close, rebuilt from storage when the cache
  is missing or stale;
* **tiers**: new engrams enter the short-term tier, an LRU cache of bounded capacity. An
  observation that matches an engram reactivates it (soft merge, :mod:`engram_ros.core.merge`);
  reactivated engrams are promoted to long-term slots. :meth:`MemoryStore.consolidate` merges
  duplicates, promotes, and forgets under the budget (:mod:`engram_ros.core.forgetting`).

Concurrency: one writer at a time (ingest, consolidate, edit, forget) under ``_write_lock``; the
in-RAM index is guarded by ``_lock``, held only for index reads and updates, never during
storage I/O, so a slow write never blocks a recall.

Governance (:mod:`engram_ros.core.governance`): :meth:`MemoryStore.list_engrams`,
:meth:`~MemoryStore.get_engrams`, :meth:`~MemoryStore.edit` and :meth:`~MemoryStore.forget` let
people see, correct and delete what is kept. A forget is real: rows (SQLite ``secure_delete``,
then a WAL checkpoint that truncates the WAL), evidence files only those engrams referenced, and
the saved index cache (deleted at once and not saved again by this process, because the in-RAM
index keeps tombstoned vectors and tag names; the next open rebuilds it from SQLite). Every
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

import contextlib
import gc
import itertools
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Iterable
from typing import Iterator
from typing import Sequence

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import id_summary
from engram_ros.core.engram import Engram
from engram_ros.core.engram import InvalidObservation
from engram_ros.core.engram import kind_code
from engram_ros.core.engram import normalize_vector
from engram_ros.core.engram import Observation
from engram_ros.core.engram import stack_rows
from engram_ros.core.engram import TIER_LONG
from engram_ros.core.engram import TIER_SHORT
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import FeedbackStatus
from engram_ros.core.forgetting import RetentionPolicy
from engram_ros.core.forgetting import select_evictions
from engram_ros.core.forgetting import update_usefulness
from engram_ros.core.governance import check_page
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.governance import ListResult
from engram_ros.core.index import EngramIndex
from engram_ros.core.index import IndexLoadError
from engram_ros.core.merge import compatible
from engram_ros.core.merge import identity_tags
from engram_ros.core.merge import merge
from engram_ros.core.merge import merge_clusters
from engram_ros.core.merge import merge_engrams
from engram_ros.core.merge import MergePolicy
from engram_ros.core.merge import pairs_within
from engram_ros.core.places import CorrectionError
from engram_ros.core.places import CorrectionReport
from engram_ros.core.places import CorrectionStatus
from engram_ros.core.places import move_engram
from engram_ros.core.places import PlaceGraph
from engram_ros.core.places import PoseCorrection
from engram_ros.core.places import rigid_delta
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallHit
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.query import RecallStatus
from engram_ros.core.ranking import rank
from engram_ros.core.ranking import RankingWeights
from engram_ros.core.semantic import NAMESPACES as SEMANTIC_NAMESPACES
from engram_ros.core.semantic import SemanticMatch
from engram_ros.core.semantic import SemanticTags
from engram_ros.core.storage import edge_key
from engram_ros.core.storage import PlaceEdge
from engram_ros.core.storage import Storage
from engram_ros.core.validity import Candidate
from engram_ros.core.validity import find_moves
from engram_ros.core.validity import missed
from engram_ros.core.validity import valid_mask
from engram_ros.core.visibility import MissPolicy
from engram_ros.core.visibility import MissTracker

_LOG = logging.getLogger(__name__)

_META_INDEX_GENERATION = 'index_generation'
#: ``"<seq>:<sha256>"`` of the audit log's last line at the last clean close.
META_AUDIT_HEAD = 'audit_head'


class ObservationExcluded(Exception):
    """An observation inside a privacy zone or window: not stored (not an error of the producer)."""


@dataclass
class StoreConfig:
    """Parameters of the store (the memory node fills it from ``config/engram.yaml``)."""

    dim: int = 256
    frame_id: str = 'map'
    max_k: int = 100
    short_term_capacity: int = 10000
    #: Most engrams kept in all; consolidation forgets the least worth keeping past it.
    budget: int = 1_000_000
    merge: MergePolicy = field(default_factory=MergePolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    ranking: RankingWeights = field(default_factory=RankingWeights)
    #: Privacy zones and windows where nothing is stored; evidence retention limits.
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    #: [m] an object is anchored to the nearest current place within this distance.
    anchor_radius: float = 5.0
    #: [s] two consecutive place observations at most this far apart make a traversal edge.
    edge_max_gap: float = 60.0
    #: [s] a thing not seen for this long after the robot was at its place counts as missed.
    move_grace: float = 5.0
    #: When a thing not seen where a keyframe's view should have shown it has ended.
    misses: MissPolicy = field(default_factory=MissPolicy)
    #: From this many changed engrams on, consolidation finds duplicates for all of them at
    #: once (a grid over positions, vectorised similarity) instead of one index query each.
    batch_consolidation_min: int = 512


@dataclass
class IngestResult:
    """What one observation did to the memory."""

    engram_id: int
    merged: bool
    promoted: bool
    evicted: list[int] = field(default_factory=list)


@dataclass
class ConsolidationScope:
    """Which engrams a consolidation touches; the default is all of them."""

    center: np.ndarray | None = None
    radius: float = 0.0
    t_start: float | None = None
    t_end: float | None = None


@dataclass
class ConsolidationReport:
    merged: int = 0
    forgotten: int = 0
    promoted: int = 0
    size_before: int = 0
    size_after: int = 0
    dry_run: bool = False
    evicted_ids: list[int] = field(default_factory=list)
    #: Evidence files deleted (or, dry run, to delete) because they were past their retention.
    evidence_expired: int = 0
    #: (old id, new id) of beliefs that became history because the thing was seen elsewhere.
    moved: list[tuple[int, int]] = field(default_factory=list)
    #: One-off sightings forgotten as label noise of a well-established engram.
    absorbed: int = 0
    #: Beliefs that ended (history, no successor): not seen where they should have been.
    ended: list[int] = field(default_factory=list)


class MemoryStore:
    """Engram memory over a :class:`Storage` backend; thread-safe as documented above."""

    def __init__(self, storage: Storage, config: StoreConfig | None = None,
                 audit: AuditLog | None = None, evidence: EvidenceStore | None = None) -> None:
        """Open the memory on ``storage``, loading the cached index or rebuilding it.

        :param audit: where recalls, lists, gets, consolidations, edits and forgets are logged;
            ``None`` logs nothing (tests, benchmarks).
        :param evidence: the evidence files (for retention and deletion); by default one over
            ``storage.evidence_dir`` without a key (deleting needs none).
        :raises ValueError: when the stored vectors' dimension differs from ``config.dim``.
        """
        self.config = config or StoreConfig()
        self.storage = storage
        self.audit = audit
        if evidence is None and storage.evidence_dir is not None:
            evidence = EvidenceStore(storage.evidence_dir)
        self.evidence = evidence
        #: Maps query text that names no known tag to tags by meaning (set by the owner when a
        #: sentence model is available; ``None``: exact words only).
        self.text_matcher: SemanticTags | None = None
        #: Set by a forget (or an edit that removed data): the index cache must not be saved
        #: from this process, since the in-RAM index still holds tombstoned vectors and tags.
        self._purged = False
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._short_lru: OrderedDict[int, None] = OrderedDict()
        self._dirty: set[int] = set()
        self._touched: dict[int, tuple[float, int]] = {}
        self._labels: set[str] = set()
        #: Ids of pinned engrams (as loaded or written by this store): never LRU-evicted.
        self._pinned: set[int] = set()
        #: Temporal validity of engrams that are history or moved: id -> (valid_from, valid_to
        #: or inf). Every other engram is current since its first sighting.
        self._validity: dict[int, tuple[float, float]] = {}
        self._history: set[int] = set()
        #: Anchors: engram id -> place id, and place id -> anchored engram ids.
        self._anchor_of: dict[int, int] = {}
        self._anchored: dict[int, set[int]] = {}
        #: SLAM keyframe id -> place engram id.
        self._keyframes: dict[str, int] = {}
        #: The place graph, (a, b) with a < b -> edge; mirrored in storage.
        self._edges: dict[tuple[int, int], PlaceEdge] = {}
        #: The place the robot was last observed at, and when (for edges and missed things).
        self._last_place: tuple[int, float] | None = None
        #: Keyframes at which current things should have been visible (RAM only).
        self._misses = MissTracker(self.config.misses)
        self._closed = False
        self.index = self._open_index()
        self._edges = {(e.a, e.b): e for e in storage.edges()}

    # ----------------------------------------------------------------------------- lifecycle
    def _open_index(self) -> EngramIndex:
        generation = self.storage.get_meta(_META_INDEX_GENERATION)
        index_dir = self.storage.index_dir
        index: EngramIndex | None = None
        access: dict[int, float] = {}
        if generation and index_dir is not None and (index_dir / 'GENERATION').exists():
            if (index_dir / 'GENERATION').read_text().strip() == generation:
                try:
                    index = EngramIndex.load(index_dir)
                except IndexLoadError as exc:
                    _LOG.warning('cached index unusable (%s); rebuilding from storage', exc)
            if index is not None and (index.dim != self.config.dim
                                      or len(index) != self.storage.count()):
                _LOG.warning('cached index does not match storage; rebuilding')
                index = None
        if index is None:
            index = EngramIndex(self.config.dim)
            self._rebuild(index, access)
        else:
            for engram in self.storage.iter_all():
                self._note_loaded(engram, access)
        # LRU order on load: least recently accessed first (ties by id).
        self._short_lru = OrderedDict.fromkeys(
            sorted(self._short_lru, key=lambda i: (access.get(i, 0.0), i)))
        if self.storage.persistent:
            # Until a clean close saves the index again, the cache on disk is stale.
            self.storage.set_meta(_META_INDEX_GENERATION, '')
        _LOG.info('memory open: %d engrams (%d short-term)', len(index), len(self._short_lru))
        return index

    def _rebuild(self, index: EngramIndex, access: dict[int, float]) -> None:
        batch: list[Engram] = []
        for engram in self.storage.iter_all():
            if engram.vector.shape[0] != self.config.dim:
                raise ValueError(f'stored engram {engram.id} has a {engram.vector.shape[0]}-d '
                                 f'vector; the memory is configured for {self.config.dim}')
            batch.append(engram)
            self._note_loaded(engram, access)
            if len(batch) >= 10000:
                self._index_add(index, batch)
                batch = []
        if batch:
            self._index_add(index, batch)

    def _note_loaded(self, engram: Engram, access: dict[int, float] | None = None) -> None:
        if engram.tier == TIER_SHORT:
            self._short_lru[engram.id] = None
            if access is not None:
                access[engram.id] = engram.last_access
        if engram.pinned:
            self._pinned.add(engram.id)
        if engram.label:
            self._labels.add(engram.label)
        self._note_map(engram)

    def _note_map(self, engram: Engram) -> None:
        """Track validity, anchor and keyframe of ``engram`` (under ``_lock`` when live)."""
        if engram.valid_to is not None:
            self._history.add(engram.id)
            self._validity[engram.id] = (engram.valid_from, engram.valid_to)
        else:
            self._history.discard(engram.id)
            if engram.valid_from > engram.first_seen:
                self._validity[engram.id] = (engram.valid_from, math.inf)
            else:
                self._validity.pop(engram.id, None)
        old = self._anchor_of.get(engram.id, 0)
        if old != engram.anchor_id:
            if old:
                self._anchored.get(old, set()).discard(engram.id)
            if engram.anchor_id:
                self._anchor_of[engram.id] = engram.anchor_id
                self._anchored.setdefault(engram.anchor_id, set()).add(engram.id)
            else:
                self._anchor_of.pop(engram.id, None)
        if engram.keyframe_id:
            self._keyframes[engram.keyframe_id] = engram.id

    def close(self) -> None:
        """Flush recall statistics, save the index cache, close storage. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._flush_touched()
            index_dir = self.storage.index_dir
            if self.audit is not None and self.storage.persistent:
                seq, head = self.audit.head
                self.storage.set_meta(META_AUDIT_HEAD, f'{seq}:{head}')
            if index_dir is not None and self._purged:
                _LOG.info('engrams were forgotten: the index cache is not saved; the next open '
                          'rebuilds it from storage')
            elif index_dir is not None:
                generation = uuid.uuid4().hex
                with self._lock:
                    self.index.save(index_dir)
                (index_dir / 'GENERATION').write_text(generation)
                self.storage.set_meta(_META_INDEX_GENERATION, generation)
            self.storage.close()
            self._closed = True

    def __enter__(self) -> 'MemoryStore':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self.index)

    @property
    def short_term_size(self) -> int:
        with self._lock:
            return len(self._short_lru)

    def known_labels(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._labels)

    # ----------------------------------------------------------------------------- ingest
    def ingest(self, obs: Observation) -> IngestResult:
        """Write one observation: reactivate the engram it matches, or add a short-term one.

        :raises engram_ros.core.engram.InvalidObservation: when ``obs`` breaks the contract;
            nothing is written then.
        """
        obs.validate(self.config.dim, self.config.frame_id)
        reason = self.config.privacy.excludes(obs.position, obs.stamp)
        if reason is not None:
            self._drop_unreferenced_evidence(obs.evidence)
            raise ObservationExcluded(f'observation at {np.round(obs.position, 2).tolist()} '
                                      f'not stored: {reason}')
        try:
            obs.tags = sketch.normalize_tags(tuple(obs.tags) + (('label:' + obs.label,)
                                                               if obs.label else ()))
        except ValueError as exc:   # an unknown tag namespace, an empty tag...
            raise InvalidObservation(str(exc)) from exc
        with self._write_lock:
            with self._lock:
                match_id = self._find_match(obs)
            existing = self.storage.get([match_id]) if match_id is not None else []
            if existing:
                engram = merge(existing[0], obs, self.config.merge)
                promoted = existing[0].tier == TIER_SHORT and engram.tier == TIER_LONG
            else:
                engram = Engram.from_observation(self.storage.next_id(), obs)
                promoted = False
            engram.last_access = max(engram.last_access, time.time())
            edge = None
            with self._lock:
                if engram.kind == 'place':
                    edge = self._traversal(engram.id, obs.stamp)
                else:
                    engram.anchor_id = self._nearest_place(engram.position) or engram.anchor_id
            self.storage.put([engram])
            if edge is not None:
                self.storage.put_edges([edge])
            with self._lock:
                self._index_put(engram)
                if edge is not None:
                    self._edges[(edge.a, edge.b)] = edge
                if obs.view is not None:
                    self._expect_visible(obs.view, obs.stamp)
                evict = self._lru_overflow()
            if evict:
                self._evict(evict, 'short-term LRU capacity')
            return IngestResult(engram.id, bool(existing), promoted, evict)

    def _traversal(self, place_id: int, stamp: float) -> PlaceEdge | None:
        """Note that the robot is at ``place_id``; the edge it just traversed, if any."""
        last, self._last_place = self._last_place, (place_id, stamp)
        if last is None or last[0] == place_id or abs(stamp - last[1]) > self.config.edge_max_gap:
            return None
        if last[0] not in self.index:
            return None
        a, b = edge_key(last[0], place_id)
        old = self._edges.get((a, b))
        return PlaceEdge(a, b, (old.traversals if old else 0) + 1,
                         max(stamp, old.last_traversed if old else stamp))

    def _expect_visible(self, view, stamp: float) -> None:
        """Note the current objects ``view`` should have shown at ``stamp`` (under ``_lock``)."""
        policy = self._misses.policy
        if policy.visits < 1:      # views off: moves are judged by the anchor place
            return
        self._misses.views_seen = True
        slots = self.index.filter(kinds=[kind_code('object')],
                                  center=np.asarray(view.position), radius=policy.farthest)
        if slots is None or len(slots) == 0:
            return
        ids = self.index.ids_of(slots)
        keep = np.array([int(i) not in self._history for i in ids], dtype=bool)
        slots, ids = slots[keep], ids[keep]
        if len(slots) == 0:
            return
        ranges = np.array([policy.range_for(self.index.tags_of(int(s))) for s in slots])
        seen = view.sees(self.index.positions_of(slots), max_range=ranges,
                         margin=policy.margin)
        self._misses.expect([int(i) for i in ids[seen]], stamp)

    def _find_gone(self, changed: dict[int, Engram], gone: set[int], now: float,
                   dry_run: bool) -> dict[int, float]:
        """Current things missed where they should have been visible: id -> when they ended."""
        if self._misses.policy.visits < 1:
            return {}
        with self._lock:
            tracked = [i for i in self._misses.expected
                       if i in self.index and i not in gone and i not in self._history]
            last = {}
            if tracked:
                slots = np.array([self.index.slot_of(i) for i in tracked])
                last = dict(zip(tracked, (float(t) for t in self.index.last_seen_of(slots))))
            for i in tracked:
                if i in changed:
                    last[i] = changed[i].last_seen
            # Only tracked ids still current are passed on: the others are dropped.
            return self._misses.gone(last, now, self.config.move_grace, commit=not dry_run)

    def _nearest_place(self, position: np.ndarray) -> int:
        """Id of the nearest current place within the anchor radius (0 = none)."""
        slots = self.index.filter(kinds=[kind_code('place')], center=np.asarray(position),
                                  radius=self.config.anchor_radius)
        if slots is None or len(slots) == 0:
            return 0
        slots = np.asarray(slots)
        ids = self.index.ids_of(slots)
        keep = np.array([int(i) not in self._history for i in ids], dtype=bool)
        if not keep.any():
            return 0
        d = np.linalg.norm(self.index.positions_of(slots[keep]) - np.asarray(position), axis=1)
        return int(ids[keep][int(np.argmin(d))])

    def bulk_load(self, engrams: Sequence[Engram]) -> list[int]:
        """Add engrams as they are (ids assigned here), without matching: imports, benchmarks.

        :returns: the new ids, in the order of ``engrams``.
        """
        if not engrams:
            return []
        with self._write_lock:
            out = []
            for engram in engrams:
                e = engram.copy()
                e.id = self.storage.next_id()
                e.vector = normalize_vector(e.vector)
                out.append(e)
            self.storage.put(out)
            with self._lock:
                self._index_add(self.index, out)
                for e in out:
                    self._note_loaded(e)
                    self._dirty.add(e.id)
            return [e.id for e in out]

    def _find_match(self, obs: Observation) -> int | None:
        policy = self.config.merge
        slots = self._within_merge_radius(obs.kind, np.asarray(obs.position), tuple(obs.tags))
        if len(slots) == 0:
            return None
        vec = normalize_vector(obs.vector)
        top, sims = self.index.dense_topk(vec, min(len(slots), 32), slots)
        threshold = policy.similarity_for(obs.kind)
        for slot, sim in zip(top, sims):
            if sim < threshold:
                break
            engram_id = int(self.index.ids_of(np.array([slot]))[0])
            if engram_id in self._history:     # history is never reactivated
                continue
            if compatible(tuple(obs.tags), self.index.tags_of(int(slot))):
                return engram_id
        return None

    def _index_add(self, index: EngramIndex, engrams: Sequence[Engram]) -> None:
        index.add_batch(
            np.array([e.id for e in engrams], dtype=np.int64),
            stack_rows([e.vector for e in engrams]).astype(np.float32),
            kinds=np.array([kind_code(e.kind) for e in engrams], dtype=np.int64),
            positions=stack_rows([e.position for e in engrams]),
            first_seen=np.array([e.first_seen for e in engrams]),
            last_seen=np.array([e.last_seen for e in engrams]),
            tags=[e.tags for e in engrams],
            scores=np.array([e.score for e in engrams], dtype=np.float32),
            counts=np.array([e.observation_count for e in engrams], dtype=np.int64))

    def _index_put(self, engram: Engram) -> None:
        if engram.id in self.index:
            # Re-posting unchanged tags is most of an update's cost; skip it when they are.
            same_tags = set(self.index.tags_of(self.index.slot_of(engram.id))) == set(engram.tags)
            self.index.update(engram.id, vector=engram.vector, position=engram.position,
                              first_seen=engram.first_seen, last_seen=engram.last_seen,
                              tags=None if same_tags else engram.tags, score=engram.score,
                              count=engram.observation_count)
        else:
            self._index_add(self.index, [engram])
        self._note_put(engram)

    def _index_put_many(self, engrams: Sequence[Engram]) -> None:
        """:meth:`_index_put` for many engrams (unique ids): one index update for those it
        holds, one add for the rest (under ``_lock``)."""
        if not engrams:
            return
        present = self.index.has_ids(np.array([e.id for e in engrams], dtype=np.int64))
        old = [e for e, p in zip(engrams, present.tolist()) if p]
        new = [e for e, p in zip(engrams, present.tolist()) if not p]
        if old:
            self.index.update_batch(
                np.array([e.id for e in old], dtype=np.int64),
                vectors=stack_rows([e.vector for e in old]).astype(np.float32),
                positions=stack_rows([e.position for e in old]),
                first_seen=np.array([e.first_seen for e in old]),
                last_seen=np.array([e.last_seen for e in old]),
                tags=[e.tags for e in old], scores=np.array([e.score for e in old]),
                counts=np.array([e.observation_count for e in old]))
        if new:
            self._index_add(self.index, new)
        for engram in engrams:
            self._note_put(engram)

    def _note_put(self, engram: Engram) -> None:
        """Tiers, pins, labels, validity and anchors of an engram just put in the index."""
        if engram.tier == TIER_SHORT:
            self._short_lru[engram.id] = None
            self._short_lru.move_to_end(engram.id)
        else:
            self._short_lru.pop(engram.id, None)
        if engram.pinned:
            self._pinned.add(engram.id)
        else:
            self._pinned.discard(engram.id)
        if engram.label:
            self._labels.add(engram.label)
        self._note_map(engram)
        self._dirty.add(engram.id)

    def _lru_overflow(self) -> list[int]:
        return self._lru_victims(list(self._short_lru))

    def _lru_victims(self, short: list[int], pinned: Iterable[int] = ()) -> list[int]:
        """Least recently used of ``short`` past the capacity; pinned engrams are never taken."""
        excess = len(short) - self.config.short_term_capacity
        if excess <= 0:
            return []
        keep = self._pinned.union(pinned)
        return list(itertools.islice((i for i in short if i not in keep), excess))

    # ----------------------------------------------------------------------------- recall
    def recall(self, query: RecallQuery, now: float | None = None,
               requester: str = 'unknown') -> RecallResult:
        """Two-stage recall (filter, then rank). Reactivates the engrams it returns.

        :param requester: who asks, for the audit log.
        :raises QueryError: for a request that breaks the contract (status code included).
        """
        try:
            result = self._recall(query, now)
        except QueryError as exc:
            self._audit('recall', requester, self._query_summary(query),
                        {'status': int(exc.status)})
            raise
        self._audit('recall', requester, self._query_summary(query), id_summary(result.ids))
        return result

    def _query_summary(self, query: RecallQuery) -> dict:
        if self.audit is None:
            return {}
        out: dict = {'k': query.k}
        if query.text:
            out['text'] = self.audit.digest(query.text)
        for name in ('tags_all', 'tags_any', 'tags_none'):
            if getattr(query, name):
                out[name] = self.audit.digests(getattr(query, name))
        if query.kinds:
            out['kinds'] = list(query.kinds)
        if query.vector is not None:
            out['vector'] = True
        if query.radius and query.center is not None:
            out['center'] = [round(float(c), 3) for c in np.asarray(query.center).reshape(-1)]
            out['radius'] = float(query.radius)
        if query.t_start is not None:
            out['start'] = query.t_start
        if query.t_end is not None:
            out['end'] = query.t_end
        if query.at_time is not None:
            out['at_time'] = query.at_time
        if query.changed_since is not None:
            out['changed_since'] = query.changed_since
        return out

    def _recall(self, query: RecallQuery, now: float | None) -> RecallResult:
        query.validate(self.config.dim, self.config.max_k, self.config.frame_id)
        now = time.time() if now is None else now
        try:
            tags_all = sketch.normalize_tags(query.tags_all)
            tags_any = sketch.normalize_tags(query.tags_any)
            tags_none = sketch.normalize_tags(query.tags_none)
        except ValueError as exc:
            raise QueryError(RecallStatus.INVALID_TAG, str(exc)) from None
        text_tags: tuple[str, ...] = ()
        meant: list[SemanticMatch] = []
        if query.text.strip():
            text_tags = sketch.text_to_tags(query.text, known_labels=self.known_labels())
            if not text_tags and self.text_matcher is not None:
                # No known word in the text: the memory's tags closest in meaning, if any.
                with self._lock:
                    present = self.index.present_tags(SEMANTIC_NAMESPACES)
                meant = self.text_matcher.match(query.text, present)
                text_tags = tuple(m.tag for m in meant)
            if not text_tags and query.vector is None and not (tags_all or tags_any):
                return RecallResult(message=f'nothing in the memory matches {query.text!r}: '
                                            'no known label, room, colour or sound in it'
                                            + (', nor one close in meaning'
                                               if self.text_matcher is not None else ''))
            tags_any = tags_any + tuple(t for t in text_tags if t not in tags_any)
        query_tags = tuple(dict.fromkeys(tags_all + tags_any))
        kinds = [kind_code(k) for k in query.kinds]
        with self._lock:
            candidates = self.index.filter(
                tags_all=tags_all, tags_any=tags_any, tags_none=tags_none, kinds=kinds,
                center=query.center if query.radius > 0.0 else None, radius=query.radius,
                t_start=query.t_start, t_end=query.t_end)
            candidates = self._valid_slots(candidates, query.at_time, query.changed_since)
            n_candidates = len(self.index) if candidates is None else len(candidates)
            ranked = rank(self.index, query, candidates, query_tags, self.config.ranking, now)
            ids = [int(i) for i in self.index.ids_of(ranked.slots)]
        engrams = {e.id: e for e in self.storage.get(ids)}
        hits = []
        for i, engram_id in enumerate(ids):
            engram = engrams.get(engram_id)
            if engram is None:      # forgotten between the two stages
                continue
            hits.append(RecallHit(engram, float(ranked.combined[i]), float(ranked.symbolic[i]),
                                  float(ranked.dense[i]), float(ranked.spatial[i]),
                                  float(ranked.temporal[i]), float(ranked.support[i])))
        self._touch([h.engram.id for h in hits], now)
        message = f'{len(hits)} of {n_candidates} candidates'
        if meant:
            message += ' (no exact word; text means ' + ', '.join(
                f'{m.tag} {m.similarity:.2f}' for m in meant) + ')'
        elif text_tags:
            message += f' (text matched {", ".join(text_tags)})'
        return RecallResult(hits=hits, candidates=n_candidates, message=message)

    def _valid_slots(self, slots: np.ndarray | None, at_time: float | None,
                     changed_since: float | None) -> np.ndarray | None:
        """Narrow filter-stage slots to the beliefs a recall may see (under ``_lock``).

        ``None`` (every live engram) stays ``None`` when there is no history to hide.
        """
        if at_time is None and changed_since is None:
            if not self._history:
                return slots
            hidden = np.array([self.index.slot_of(i) for i in self._history], dtype=np.int64)
            if slots is None:
                slots = self.index.live_slots()
            return np.asarray(slots)[~np.isin(slots, hidden)]
        if slots is None:
            slots = self.index.live_slots()
        slots = np.asarray(slots, dtype=np.int64)
        valid_from = self.index.first_seen_of(slots).astype(np.float64)
        valid_to = np.full(len(slots), math.inf)
        if self._validity:
            ids = self.index.ids_of(slots)
            for j, engram_id in enumerate(ids):
                override = self._validity.get(int(engram_id))
                if override is not None:
                    valid_from[j], valid_to[j] = override
        return slots[valid_mask(valid_from, valid_to, at_time=at_time,
                                changed_since=changed_since)]

    def _touch(self, ids: Iterable[int], now: float) -> None:
        with self._lock:
            for engram_id in ids:
                _, count = self._touched.get(engram_id, (now, 0))
                self._touched[engram_id] = (now, count + 1)
                if engram_id in self._short_lru:
                    self._short_lru.move_to_end(engram_id)

    def _flush_touched(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
        if not touched:
            return
        engrams = self.storage.get(list(touched))
        for engram in engrams:
            last, count = touched[engram.id]
            engram.last_access = max(engram.last_access, last)
            engram.recall_count += count
        self.storage.put(engrams)

    # ----------------------------------------------------------------------------- read
    def get(self, ids: Sequence[int]) -> list[Engram]:
        return self.storage.get(ids)

    # ----------------------------------------------------------------------------- map
    def place_graph(self, requester: str = 'unknown') -> PlaceGraph:
        """The current places, the traversal edges between them, and what is anchored where."""
        with self._lock:
            slots = self.index.filter(kinds=[kind_code('place')])
            slots = self.index.live_slots() if slots is None else slots
            ids = [int(i) for i in self.index.ids_of(np.asarray(slots))
                   if int(i) not in self._history]
            edges = sorted(self._edges.values(), key=lambda e: (e.a, e.b))
            live = set(ids)
            anchors = {i: p for i, p in self._anchor_of.items()
                       if i not in self._history and p in live}
        places = sorted(self.storage.get(ids), key=lambda e: e.id)
        self._audit('places', requester, {}, dict(id_summary(ids), edges=len(edges)))
        return PlaceGraph(places, edges, anchors)

    def correct_poses(self, corrections: Sequence[PoseCorrection],
                      requester: str = 'unknown') -> CorrectionReport:
        """Re-anchor: move corrected places to their new poses, and their anchored engrams
        by the same rigid transform, all in one write.

        :raises CorrectionError: ``EMPTY``, ``INVALID_POSE``, or ``UNKNOWN_KEYFRAME`` when a
            keyframe or place id is not in the memory; nothing is changed then.
        """
        params = {'keyframes': len(corrections)}
        try:
            report = self._correct_poses(corrections)
        except CorrectionError as exc:
            self._audit('correct', requester, params, {'status': int(exc.status)})
            raise
        self._audit('correct', requester, params, dict(id_summary(report.places),
                                                       anchored=len(report.anchored)))
        return report

    def _correct_poses(self, corrections: Sequence[PoseCorrection]) -> CorrectionReport:
        if not corrections:
            raise CorrectionError(CorrectionStatus.EMPTY, 'no corrected poses given')
        for c in corrections:
            c.validate()
        with self._write_lock:
            targets: list[tuple[int, PoseCorrection]] = []
            unknown = []
            with self._lock:
                for c in corrections:
                    place = self._keyframes.get(c.keyframe_id, 0) if c.keyframe_id \
                        else int(c.place_id)
                    if not place or place not in self.index or place in self._history:
                        unknown.append(c.keyframe_id or str(c.place_id))
                    else:
                        targets.append((place, c))
            if unknown:
                raise CorrectionError(CorrectionStatus.UNKNOWN_KEYFRAME,
                                      f'unknown keyframe(s) or place id(s): '
                                      f'{", ".join(unknown[:20])}; nothing was changed')
            places = {e.id: e for e in self.storage.get([p for p, _ in targets])}
            bad = [str(p) for p, _ in targets if places.get(p) is None or places[p].kind != 'place']
            if bad:
                raise CorrectionError(CorrectionStatus.UNKNOWN_KEYFRAME,
                                      f'id(s) {", ".join(bad[:20])} are not places; nothing '
                                      'was changed')
            report = CorrectionReport()
            changed: dict[int, Engram] = {}
            for place_id, c in targets:
                place = places[place_id]
                rot, trans = rigid_delta(place.position, place.orientation,
                                         np.asarray(c.position, dtype=np.float64),
                                         np.asarray(c.orientation, dtype=np.float64))
                changed[place_id] = move_engram(place, rot, trans)
                report.places.append(place_id)
                with self._lock:
                    anchored = sorted(self._anchored.get(place_id, ()))
                for engram in self.storage.get(anchored):
                    if engram.id not in changed:
                        changed[engram.id] = move_engram(engram, rot, trans)
                        report.anchored.append(engram.id)
            self.storage.put(list(changed.values()))
            with self._lock:
                self._index_put_many(list(changed.values()))
            _LOG.info('pose correction: moved %d places and %d anchored engrams',
                      len(report.places), len(report.anchored))
            return report

    # ----------------------------------------------------------------------------- feedback
    def feedback(self, ids: Sequence[int], helped: bool,
                 requester: str = 'unknown') -> list[Engram]:
        """A planner says whether recalling these engrams helped; their usefulness moves.

        :returns: the engrams with their new scores, in the order given.
        :raises FeedbackError: ``EMPTY`` without ids; ``UNKNOWN_ID`` when any id is not in the
            memory (nothing is changed then).
        """
        wanted = list(dict.fromkeys(int(i) for i in ids))
        params = {'ids': wanted[:1000], 'helped': bool(helped)}
        try:
            engrams = self._feedback(wanted, bool(helped))
        except FeedbackError as exc:
            self._audit('feedback', requester, params, {'status': int(exc.status)})
            raise
        self._audit('feedback', requester, params,
                    {'scores': [round(e.score, 4) for e in engrams[:1000]]})
        return engrams

    def _feedback(self, ids: list[int], helped: bool) -> list[Engram]:
        if not ids:
            raise FeedbackError(FeedbackStatus.EMPTY, 'no engram ids given; accepted: ids of '
                                'engrams a recall returned')
        with self._write_lock:
            found = {e.id: e for e in self.storage.get(ids)}
            unknown = [i for i in ids if i not in found]
            if unknown:
                raise FeedbackError(FeedbackStatus.UNKNOWN_ID,
                                    f'unknown engram id(s): {", ".join(map(str, unknown[:20]))}; '
                                    'nothing was changed')
            rate = self.config.retention.feedback_rate
            engrams = [found[i] for i in ids]
            for e in engrams:
                e.score = update_usefulness(e.score, helped, rate)
            self.storage.put(engrams)
            with self._lock:
                self._index_put_many(engrams)
            return engrams

    # ----------------------------------------------------------------------------- consolidate
    def consolidate(self, scope: ConsolidationScope | None = None,
                    dry_run: bool = False, now: float | None = None,
                    requester: str = 'unknown') -> ConsolidationReport:
        """Merge duplicates among engrams changed since the last pass, promote, forget; delete
        evidence past its retention limit.

        :param scope: restricts merging and promotion to a region or time window; the budget
            and the short-term capacity are always enforced on the whole memory.
        :param dry_run: compute and report, change nothing.
        :param requester: who asks, for the audit log.
        """
        scope = scope or ConsolidationScope()
        report = self._consolidate(scope, dry_run, now)
        params: dict = {'dry_run': dry_run}
        if scope.radius > 0.0 and scope.center is not None:
            params.update(center=[round(float(c), 3) for c in scope.center], radius=scope.radius)
        if scope.t_start is not None or scope.t_end is not None:
            params.update(start=scope.t_start, end=scope.t_end)
        self._audit('consolidate', requester, params, {
            'merged': report.merged, 'promoted': report.promoted,
            'evidence_expired': report.evidence_expired, 'ended': report.ended[:1000],
            'size_before': report.size_before,
            'size_after': report.size_after, 'forgotten': id_summary(report.evicted_ids)})
        return report

    def _consolidate(self, scope: ConsolidationScope, dry_run: bool,
                     now: float | None) -> ConsolidationReport:
        now = time.time() if now is None else now
        if self.config.budget < 1:
            raise ValueError(f'budget={self.config.budget}; accepted: a positive number of '
                             'engrams (nothing was changed)')
        with self._write_lock, _gc_paused():
            self._flush_touched()
            report = ConsolidationReport(size_before=len(self), dry_run=dry_run)
            with self._lock:
                dirty = sorted(self._dirty)
                short_before = set(self._short_lru)
            changed: dict[int, Engram] = {}
            removed: set[int] = set()
            merged_into: dict[int, int] = {}
            batch = len(dirty) >= self.config.batch_consolidation_min
            # The batch path only reads them (merge_clusters copies what it changes): no copy.
            dirty_engrams = [e for e in self.storage.get(dirty, shared=batch)
                             if _in_scope(e, scope) and e.id not in self._history]
            merge_all = (self._merge_batch
                         if batch and len(dirty_engrams) >= self.config.batch_consolidation_min
                         else self._merge_each)
            report.merged = merge_all(dirty_engrams, changed, removed, merged_into)
            for noise, into in self._label_noise(dirty_engrams, changed, removed):
                removed.add(noise)
                report.absorbed += 1
                _LOG.info('engram %d is label noise of engram %d (one sighting, looks alike, '
                          'same place, other label): forgotten', noise, into)
            with self._lock:
                short_ids = [i for i in self._short_lru if i not in removed]
            promotable = [changed.get(e.id, e) for e in self.storage.get(
                [i for i in short_ids if i not in changed])] + [
                changed[i] for i in short_ids if i in changed]
            promotable = [e for e in promotable
                          if e.observation_count >= self.config.merge.promote_after
                          and e.id not in removed and _in_scope(e, scope)]
            for engram in promotable:
                engram = changed.get(engram.id, engram)
                engram.tier = TIER_LONG
                changed[engram.id] = engram
            # Short-term engrams now long-term: promoted by count, or by a merge that added up.
            report.promoted = sum(1 for i, e in changed.items()
                                  if i in short_before and e.tier == TIER_LONG)
            with self._lock:
                size = len(self.index) - len(removed)
                # Short-term engrams left after this pass, least recently used first.
                short = [i for i in self._short_lru if i not in removed
                         and (i not in changed or changed[i].tier == TIER_SHORT)]
                evict = self._lru_victims(short, {i for i, e in changed.items() if e.pinned})
            size -= len(evict)
            if size > self.config.budget:
                remaining = (changed.get(e.id, e) for e in self.storage.iter_all()
                             if e.id not in removed and e.id not in evict)
                evict += select_evictions(remaining, self.config.budget, now,
                                          self.config.retention)
            report.forgotten = len(evict)
            report.evicted_ids = list(evict)
            report.evidence_expired = self._expire_evidence(now, dry_run)
            moves = self._find_moves(changed, removed | set(evict), now)
            report.moved = [(m.old, m.new) for m in moves]
            ended = self._find_gone(changed, removed | set(evict) | {m.old for m in moves},
                                    now, dry_run)
            report.ended = sorted(ended)
            if dry_run:
                report.size_after = report.size_before
                return report
            self._apply_moves(moves, changed)
            self._apply_ends(ended, changed)
            edges = self._follow_place_merges(merged_into, changed)
            if changed:
                self.storage.put(list(changed.values()))
                with self._lock:
                    self._index_put_many(list(changed.values()))
            self._forget(sorted(removed))
            if evict:
                self._evict(list(evict), 'storage budget or short-term LRU capacity')
            self._put_edges(*edges)
            with self._lock:
                self._dirty.clear()
            report.size_after = len(self)
            _LOG.info('consolidation: merged %d, promoted %d, forgot %d (%d -> %d engrams)',
                      report.merged, report.promoted, report.forgotten, report.size_before,
                      report.size_after)
            return report

    def _find_moves(self, changed: dict[int, Engram], gone: set[int], now: float) -> list:
        """Current object/sound/event beliefs superseded by a sighting elsewhere."""
        policy = self.config.merge
        grace = self.config.move_grace
        moves = []
        with self._lock:
            robot_place = self._last_place[0] if self._last_place else 0
            for kind in ('object', 'audio', 'event'):
                slots = self.index.filter(kinds=[kind_code(kind)])
                slots = np.asarray(self.index.live_slots() if slots is None else slots)
                if len(slots) < 2:
                    continue
                ids = self.index.ids_of(slots)
                if gone or self._history:
                    left = ~np.isin(ids, np.fromiter(gone | self._history, dtype=np.int64))
                    slots, ids = slots[left], ids[left]
                    if len(slots) < 2:
                        continue
                ids_list = ids.tolist()
                last = [changed[i].last_seen if i in changed else t
                        for i, t in zip(ids_list, self.index.last_seen_of(slots).tolist())]
                anchors = [self._anchor_of.get(i, 0) for i in ids_list]
                seen_at = {a: (float(self.index.last_seen_of(
                    np.array([self.index.slot_of(a)]))[0]) if a in self.index else None)
                    for a in set(anchors) if a}
                anchor_seen = [seen_at.get(a) for a in anchors]
                # With keyframe views, an object is missed where a view should have shown it.
                by_view = ([self._misses.missed(i, t, now, grace)
                            for i, t in zip(ids_list, last)]
                           if kind == 'object' and self._misses.views_seen
                           else [None] * len(ids_list))
                if not any(v if v is not None else missed(a, t_a, t, grace, robot_place)
                           for v, a, t_a, t in zip(by_view, anchors, anchor_seen, last)):
                    continue        # a belief not missed where it was is never superseded
                positions = self.index.positions_of(slots)
                vectors = self.index.vectors_of(slots)
                norms = np.linalg.norm(vectors, axis=1)
                vectors /= np.where(norms > 0.0, norms, 1.0)[:, None]
                first = self.index.first_seen_of(slots)
                counts = self.index.counts_of(slots)
                candidates = []
                for j, engram_id in enumerate(ids_list):
                    identity = identity_tags(self.index.tags_of(int(slots[j])))
                    if not identity:
                        continue
                    e = changed.get(engram_id)
                    candidates.append(Candidate(
                        engram_id, identity,
                        e.position if e is not None else positions[j], vectors[j],
                        float(first[j]), float(last[j]), anchors[j], anchor_seen[j],
                        int(e.observation_count if e is not None else counts[j]), by_view[j]))
                moves += find_moves(candidates, min_distance=2.0 * policy.radius_for(kind),
                                    min_similarity=policy.similarity_for(kind),
                                    grace=grace, robot_place=robot_place,
                                    min_observations=policy.promote_after)
        return moves

    def _apply_moves(self, moves: list, changed: dict[int, Engram]) -> None:
        """Make each moved belief history and its successor current (into ``changed``)."""
        if not moves:
            return
        wanted = [i for m in moves for i in (m.old, m.new) if i not in changed]
        for engram in self.storage.get(wanted):
            changed[engram.id] = engram
        for m in moves:
            old, new = changed.get(m.old), changed.get(m.new)
            if old is None or new is None:
                continue
            old.valid_to = max(old.valid_from, m.when)
            old.successor_id = new.id
            new.valid_from = min(new.valid_from, m.when) if new.valid_from else m.when
            new.score = max(new.score, old.score)
            new.pinned = new.pinned or old.pinned
            _LOG.info('belief %d (%s at %s) is history since %.3f: seen at %s as %d', old.id,
                      old.label or old.kind, np.round(old.position, 2).tolist(), m.when,
                      np.round(new.position, 2).tolist(), new.id)

    def _apply_ends(self, ended: dict[int, float], changed: dict[int, Engram]) -> None:
        """Make each ended belief history without a successor (into ``changed``)."""
        for engram in self.storage.get([i for i in ended if i not in changed]):
            changed[engram.id] = engram
        for i, when in ended.items():
            engram = changed.get(i)
            if engram is None or engram.valid_to is not None:
                continue
            engram.valid_to = max(engram.valid_from, when)
            _LOG.info('belief %d (%s at %s) is history since %.3f: not seen where it should '
                      'have been visible on %d visits', i, engram.label or engram.kind,
                      np.round(engram.position, 2).tolist(), when, self._misses.policy.visits)

    def _follow_place_merges(self, merged_into: dict[int, int], changed: dict[int, Engram]
                             ) -> tuple[list[PlaceEdge], list[tuple[int, int]]]:
        """Re-anchor things and rewire edges of places merged away; edges to put and delete."""
        def final(i: int) -> int:
            while i in merged_into:
                i = merged_into[i]
            return i

        put: dict[tuple[int, int], PlaceEdge] = {}
        drop: list[tuple[int, int]] = []
        with self._lock:
            ends = {i for key in self._edges for i in key}
            gone_places = [i for i in merged_into if i in self._anchored or i in ends]
            anchored = {i: set(self._anchored.get(i, ())) for i in gone_places}
            edges = dict(self._edges)
        for gone in gone_places:
            keep = final(gone)
            moved = [i for i in anchored[gone] if i not in merged_into]
            for engram in self.storage.get([i for i in moved if i not in changed]):
                changed[engram.id] = engram
            for i in moved:
                if i in changed:
                    changed[i].anchor_id = keep
        for key, edge in edges.items():
            a, b = final(edge.a), final(edge.b)
            if (a, b) == key or (b, a) == key:
                continue
            drop.append(key)
            if a == b:
                continue
            new_key = edge_key(a, b)
            old = put.get(new_key) or edges.get(new_key)
            put[new_key] = PlaceEdge(new_key[0], new_key[1],
                                     edge.traversals + (old.traversals if old else 0),
                                     max(edge.last_traversed, old.last_traversed if old else 0.0))
        return list(put.values()), drop

    def _put_edges(self, put: list[PlaceEdge], drop: list[tuple[int, int]]) -> None:
        if drop:
            self.storage.delete_edges(drop)
        if put:
            self.storage.put_edges(put)
        with self._lock:
            for key in drop:
                self._edges.pop(key, None)
            for edge in put:
                if edge.a in self.index and edge.b in self.index:
                    self._edges[(edge.a, edge.b)] = edge

    def _evict(self, ids: list[int], reason: str) -> None:
        """Forget ``ids`` to respect a limit; each eviction is logged and audited."""
        victims = self.storage.get(ids)
        for e in victims:
            _LOG.info('evicted engram %d (%s %r, seen %d times, score %.2f): %s', e.id, e.kind,
                      e.label, e.observation_count, e.score, reason)
        self._forget(ids)
        self._audit('evict', 'memory', {'reason': reason}, id_summary(ids))

    def _merge_each(self, dirty: list[Engram], changed: dict[int, Engram], removed: set[int],
                    merged_into: dict[int, int]) -> int:
        """Merge the duplicates of a few engrams, one index query and one pair at a time;
        fills ``changed``, ``removed`` and ``merged_into``.

        :returns: how many engrams were merged away.
        """
        merged = 0
        for engram in dirty:
            if engram.id in removed:
                continue
            current = changed.get(engram.id, engram)
            for other in self._duplicates_of(current, removed):
                other = changed.get(other.id, other)
                keep, gone = (current, other) if _keeps(current, other) else (other, current)
                fused = merge_engrams(keep, gone, self.config.merge)
                changed[keep.id] = fused
                changed.pop(gone.id, None)
                removed.add(gone.id)
                merged_into[gone.id] = keep.id
                merged += 1
                if gone is current:
                    break
                current = fused
        return merged

    def _merge_batch(self, dirty: list[Engram], changed: dict[int, Engram], removed: set[int],
                     merged_into: dict[int, int]) -> int:
        """Merge the duplicates of many engrams: each cluster at once, its best-supported
        member absorbing the rest; fills ``changed``, ``removed`` and ``merged_into``.

        Clusters are planned on ids and counts alone, in the order of ``dirty``. A keep can
        be absorbed again by a later cluster, so clusters are fused by level: one
        :func:`merge_clusters` call for all clusters of original engrams, then one for those
        that take in a result of the first call, and so on.

        :returns: how many engrams were merged away.
        """
        neighbours, engrams = self._neighbours_batch(dirty)
        count = {i: e.observation_count for i, e in engrams.items()}   # as planned so far
        made_by: dict[int, int] = {}     # id -> the step that last produced it
        steps: list[tuple[int, list[int]]] = []
        level: list[int] = []
        for engram in dirty:
            if engram.id in removed or engram.id not in neighbours:
                continue
            cluster = [engram.id] + [i for i in neighbours[engram.id] if i not in removed]
            if len(cluster) < 2:
                continue
            # the best-supported member keeps its id: most observations, then the oldest id
            keep, best = cluster[0], count[cluster[0]]
            for i in cluster[1:]:
                c = count[i]
                if c > best or (c == best and i < keep):
                    keep, best = i, c
            others = [i for i in cluster if i != keep]
            level.append(1 + max([level[made_by[i]] for i in cluster if i in made_by],
                                 default=-1))
            count[keep] = sum(map(count.__getitem__, cluster))
            made_by[keep] = len(steps)
            steps.append((keep, others))
            for gone in others:
                removed.add(gone)
                merged_into[gone] = keep
        by_level: dict[int, list[int]] = {}
        for step, lv in enumerate(level):
            by_level.setdefault(lv, []).append(step)
        for lv in sorted(by_level):
            todo = [steps[k] for k in by_level[lv]]
            fused = merge_clusters(
                [(changed.get(keep, engrams[keep]), [changed.get(i, engrams[i]) for i in others])
                 for keep, others in todo], self.config.merge)
            for (keep, others), engram in zip(todo, fused):
                for gone in others:
                    changed.pop(gone, None)
                changed[keep] = engram
        return sum(len(others) for _, others in steps)

    def _neighbours_batch(self, engrams: list[Engram]
                          ) -> tuple[dict[int, list[int]], dict[int, Engram]]:
        """Duplicate candidates of many engrams at once: id -> candidate ids (most similar
        first), and the candidates' engrams. Same tests as :meth:`_duplicates_of`, but
        vectorised: a grid over positions, similarities of all close pairs in chunks, and
        identity compatibility decided once per pair of distinct identity-tag sets."""
        policy = self.config.merge
        found: dict[int, list[int]] = {}
        by_kind: dict[str, list[Engram]] = {}
        for e in engrams:
            by_kind.setdefault(e.kind, []).append(e)
        identities: dict[frozenset[str], int] = {}
        identity_of: dict[tuple[str, ...], int] = {}

        def identity(tags: tuple[str, ...]) -> int:
            code = identity_of.get(tags)
            if code is None:
                code = identity_of[tags] = identities.setdefault(identity_tags(tags),
                                                                 len(identities))
            return code

        # identity codes of the given engrams, by id (sorted for searchsorted)
        known_ids = np.array([e.id for e in engrams], dtype=np.int64)
        known_codes = np.array([identity(e.tags) for e in engrams], dtype=np.int64)
        order = np.argsort(known_ids)
        known_ids, known_codes = known_ids[order], known_codes[order]
        for kind, items in by_kind.items():
            with self._lock:
                slots = self.index.filter(kinds=[kind_code(kind)])
                slots = np.asarray(self.index.live_slots() if slots is None else slots)
                ids = self.index.ids_of(slots)
                if self._history:
                    current = ~np.isin(ids, np.fromiter(self._history, dtype=np.int64))
                    slots, ids = slots[current], ids[current]
                positions = self.index.positions_of(slots)
            qids = np.array([e.id for e in items], dtype=np.int64)
            q_pos = stack_rows([e.position for e in items])
            base, widest = policy.radius_for(kind), policy.max_radius_for(kind)
            qi, pj = pairs_within(q_pos, positions, widest)
            distinct = ids[pj] != qids[qi]
            qi, pj = qi[distinct], pj[distinct]
            if widest > base and len(qi):
                # Each pair within the larger merge radius of its two sides (size classes).
                r_q = np.array([policy.radius_for(kind, e.tags) for e in items])
                near = np.linalg.norm(q_pos[qi] - positions[pj], axis=1)
                close = near <= base
                far = np.flatnonzero(~close & (near <= widest))
                if len(far):
                    cand, back = np.unique(pj[far], return_inverse=True)
                    with self._lock:
                        r_c = np.array([policy.radius_for(kind, self.index.tags_of(int(slots[c])))
                                        for c in cand.tolist()])
                    close[far] = near[far] <= np.maximum(r_q[qi[far]], r_c[back.reshape(-1)])
                qi, pj = qi[close], pj[close]
            if len(qi) == 0:
                continue
            # identities first (cheap, vectorised): only compatible pairs need a similarity
            q_identity = np.array([identity(e.tags) for e in items], dtype=np.int64)
            p_ids = ids[pj]
            at = np.minimum(np.searchsorted(known_ids, p_ids), len(known_ids) - 1)
            hit = known_ids[at] == p_ids
            p_identity = np.where(hit, known_codes[at], -1)
            if not hit.all():        # candidates not among ``engrams``: tags from the index
                unknown, back = np.unique(pj[~hit], return_inverse=True)
                with self._lock:
                    codes = np.array([identity(self.index.tags_of(int(slots[u])))
                                      for u in unknown.tolist()], dtype=np.int64)
                p_identity[~hit] = codes[back.reshape(-1)]
            qa, pb = q_identity[qi], p_identity
            sets = list(identities)
            if all(len(t) <= 1 for t in sets):       # one name each: compatible = equal
                empty = np.array([not t for t in sets], dtype=bool)
                fits = (qa == pb) | empty[qa] | empty[pb]
            else:
                width = len(sets)
                pairs, which = np.unique(qa * width + pb, return_inverse=True)
                fits = np.array([not sets[k // width] or not sets[k % width]
                                 or bool(sets[k // width] & sets[k % width])
                                 for k in pairs.tolist()], dtype=bool)[which.reshape(-1)]
            keep = np.flatnonzero(fits)         # merge.compatible, once per identity pair
            qi, pj = qi[keep], pj[keep]
            with self._lock:
                sims = self.index.pair_similarities(
                    stack_rows([e.vector for e in items]).astype(np.float32), qi, slots[pj])
            ok = np.flatnonzero(sims >= policy.similarity_for(kind))
            ok = ok[np.lexsort((-sims[ok], qi[ok]))]
            q_sorted = qi[ok]
            p_ids = ids[pj[ok]].tolist()
            bounds = np.flatnonzero(np.diff(q_sorted)) + 1
            for a, b in zip([0] + bounds.tolist(), bounds.tolist() + [len(p_ids)]):
                if b > a:
                    found[items[int(q_sorted[a])].id] = p_ids[a:b]
        fetched = {e.id: e for e in engrams}
        wanted = {i for ids_ in found.values() for i in ids_ if i not in fetched}
        if wanted:
            fetched.update({e.id: e for e in self.storage.get(sorted(wanted))})
            found = {i: [j for j in js if j in fetched] for i, js in found.items()}
        return found, fetched

    def _label_noise(self, engrams: list[Engram], changed: dict[int, Engram],
                     removed: set[int]) -> list[tuple[int, int]]:
        """(noise id, established id) for one-off sightings that are label noise.

        A short-term engram seen once, unpinned, whose look matches a current engram of the
        same kind within the merge radius that disagrees on identity but has at least
        ``policy.noise_support`` observations, is the detector naming that thing wrongly.
        """
        policy = self.config.merge
        if policy.noise_support <= 0:
            return []
        out = []
        for e in engrams:
            e = changed.get(e.id, e)
            if e.id in removed or e.observation_count != 1 or e.pinned \
                    or e.tier != TIER_SHORT or not identity_tags(e.tags):
                continue
            with self._lock:
                slots = self.index.filter(kinds=[kind_code(e.kind)], center=e.position,
                                          radius=policy.radius_for(e.kind))
                if slots is None or len(slots) < 2:
                    continue
                top, sims = self.index.dense_topk(e.vector, min(len(slots), 8), slots)
                near = [(int(i), int(s)) for i, s, sim in zip(
                    self.index.ids_of(np.asarray(top)), top, sims)
                    if sim >= policy.similarity_for(e.kind) and int(i) != e.id
                    and int(i) not in removed and int(i) not in self._history
                    and not compatible(e.tags, self.index.tags_of(int(s)))]
            for other in self.storage.get([i for i, _ in near]):
                other = changed.get(other.id, other)
                if other.observation_count >= policy.noise_support:
                    out.append((e.id, other.id))
                    break
        return out

    def _within_merge_radius(self, kind: str, position: np.ndarray,
                             tags: tuple[str, ...]) -> np.ndarray:
        """Slots of ``kind`` close enough to merge with a thing at ``position`` with ``tags``:
        within the larger merge radius of the two (size classes, see :class:`MergePolicy`).
        Under ``_lock``."""
        policy = self.config.merge
        slots = self.index.filter(kinds=[kind_code(kind)], center=position,
                                  radius=policy.max_radius_for(kind))
        if slots is None or len(slots) == 0:
            return np.zeros(0, dtype=np.int64)
        own = policy.radius_for(kind, tags)
        if own >= policy.max_radius_for(kind):
            return slots
        dist = np.linalg.norm(self.index.positions_of(slots) - position, axis=1)
        theirs = np.array([policy.radius_for(kind, self.index.tags_of(int(s))) for s in slots])
        return slots[dist <= np.maximum(own, theirs)]

    def _duplicates_of(self, engram: Engram, removed: set[int]) -> list[Engram]:
        policy = self.config.merge
        with self._lock:
            slots = self._within_merge_radius(engram.kind, engram.position, tuple(engram.tags))
            if len(slots) < 2:
                return []
            top, sims = self.index.dense_topk(engram.vector, min(len(slots), 32), slots)
            ids = [int(i) for i, s in zip(self.index.ids_of(np.asarray(top)), sims)
                   if s >= policy.similarity_for(engram.kind)]
            ids = [i for i in ids if i != engram.id and i not in removed
                   and i not in self._history]
        return [o for o in self.storage.get(ids) if compatible(engram.tags, o.tags)]

    def _forget(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            unique = np.unique(np.asarray(ids, dtype=np.int64))
            self.index.remove_batch(unique[self.index.has_ids(unique)])
            for engram_id in ids:
                self._short_lru.pop(engram_id, None)
                self._pinned.discard(engram_id)
                self._dirty.discard(engram_id)
                self._touched.pop(engram_id, None)
                self._history.discard(engram_id)
                self._validity.pop(engram_id, None)
                place = self._anchor_of.pop(engram_id, 0)
                if place:
                    self._anchored.get(place, set()).discard(engram_id)
                self._anchored.pop(engram_id, None)
            gone = set(ids)
            self._edges = {k: e for k, e in self._edges.items()
                           if k[0] not in gone and k[1] not in gone}
            self._keyframes = {k: v for k, v in self._keyframes.items() if v not in gone}
            if self._last_place is not None and self._last_place[0] in gone:
                self._last_place = None
        self.storage.delete(list(ids))
        _LOG.info('forgot %d engrams: %s', len(ids), ', '.join(map(str, list(ids)[:20])))

    # ----------------------------------------------------------------------------- governance
    def list_engrams(self, selection: EngramFilter | None = None, offset: int = 0,
                     limit: int = 0, requester: str = 'unknown') -> ListResult:
        """One page of the engrams ``selection`` picks, by increasing id, and their total.

        :param limit: page size, 1..:data:`~engram_ros.core.governance.MAX_LIMIT`; 0 = default.
        :raises GovernanceError: for a malformed filter or page.
        """
        try:
            selection = (selection or EngramFilter()).normalized(self.config.frame_id)
            limit = check_page(offset, limit)
        except GovernanceError as exc:
            self._audit('list', requester, {}, {'status': int(exc.status)})
            raise
        ids = self._select(selection)
        page = self.storage.get(ids[offset:offset + limit])
        self._audit('list', requester,
                    dict(self._filter_summary(selection), offset=offset, limit=limit),
                    dict(id_summary(e.id for e in page), total=len(ids)))
        return ListResult(page, len(ids), offset)

    def get_engrams(self, ids: Sequence[int],
                    requester: str = 'unknown') -> tuple[list[Engram], list[int]]:
        """The engrams with these ids (in the order given) and the ids that are unknown."""
        engrams = self.storage.get([int(i) for i in ids])
        found = {e.id for e in engrams}
        unknown = [int(i) for i in ids if int(i) not in found]
        self._audit('get', requester, {'ids': [int(i) for i in ids][:1000]},
                    dict(id_summary(sorted(found)), unknown=unknown[:1000]))
        return engrams, unknown

    def edit(self, engram_id: int, *, add_tags: Sequence[str] = (),
             remove_tags: Sequence[str] = (), label: str | None = None,
             pinned: bool | None = None, requester: str = 'unknown') -> Engram:
        """Correct one engram: add or remove tags, rename it, pin or unpin it.

        A new label replaces the ``label:`` tag of the old one; ``label=''`` clears it. Pinned
        engrams are never forgotten automatically (a user's forget still removes them).

        :returns: the engram as stored after the edit.
        :raises GovernanceError: ``UNKNOWN_ID``; ``INVALID_TAG``; ``INVALID_EDIT`` when nothing
            would change or a tag is both added and removed.
        """
        params = {'id': int(engram_id), 'add_tags': self._digests(add_tags),
                  'remove_tags': self._digests(remove_tags),
                  'label': None if label is None else self._digests([label])[0],
                  'pinned': pinned}
        try:
            engram = self._edit(int(engram_id), add_tags, remove_tags, label, pinned)
        except GovernanceError as exc:
            self._audit('edit', requester, params, {'status': int(exc.status)})
            raise
        self._audit('edit', requester, params, id_summary([engram.id]))
        return engram

    def _edit(self, engram_id: int, add_tags: Sequence[str], remove_tags: Sequence[str],
              label: str | None, pinned: bool | None) -> Engram:
        try:
            add = sketch.normalize_tags(tuple(add_tags))
            remove = sketch.normalize_tags(tuple(remove_tags))
            new_label = None if label is None else label.strip()
            label_tag = sketch.normalize_tags(('label:' + new_label,)) if new_label else ()
        except ValueError as exc:
            raise GovernanceError(GovernanceStatus.INVALID_TAG, str(exc)) from None
        both = set(add) & set(remove)
        if both:
            raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                                  f'tag(s) {", ".join(sorted(both))} both added and removed')
        if not (add or remove or label is not None or pinned is not None):
            raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                                  'nothing to change: give tags to add or remove, a label, '
                                  'pin or unpin')
        with self._write_lock:
            found = self.storage.get([engram_id])
            if not found:
                raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                                      f'no engram with id {engram_id} in the memory')
            engram = found[0]
            tags = set(engram.tags) - set(remove)
            if new_label is not None:
                if engram.label:
                    tags.discard(sketch.normalize_tags(('label:' + engram.label,))[0])
                engram.label = new_label   # as given; its tag is canonical, as on ingest
                tags.update(label_tag)
            tags.update(add)
            removed_something = bool(set(engram.tags) - tags)
            engram.tags = tuple(sorted(tags))
            if pinned is not None:
                engram.pinned = bool(pinned)
            self.storage.put([engram])
            with self._lock:
                self._index_put(engram)
            if removed_something:
                self._purge()
            return engram

    def forget(self, ids: Sequence[int] = (), selection: EngramFilter | None = None,
               dry_run: bool = False, requester: str = 'unknown') -> ForgetResult:
        """Delete engrams for good: rows, vectors, evidence files, and the index cache.

        Selects the given ``ids`` (those that exist), narrowed by ``selection`` when both are
        given, or everything ``selection`` picks. Pinned engrams are forgotten too: the user
        asked. Unknown ids are reported in the result (status ``UNKNOWN_ID``); the known ones
        are still forgotten.

        :raises GovernanceError: for a malformed filter or id, or an empty selection (to delete
            everything, delete the store directory).
        """
        params: dict = {'ids': [int(i) for i in ids][:1000], 'dry_run': dry_run}
        try:
            result = self._forget_selected(ids, selection, dry_run)
        except GovernanceError as exc:
            self._audit('forget', requester, params, {'status': int(exc.status)})
            raise
        if selection is not None:
            params.update(self._filter_summary(selection))
        self._audit('forget', requester, params,
                    dict(id_summary(result.forgotten_ids), unknown=result.unknown_ids[:1000],
                         evidence_files=result.evidence_files))
        return result

    def _forget_selected(self, ids: Sequence[int], selection: EngramFilter | None,
                         dry_run: bool) -> ForgetResult:
        bad = [i for i in ids if not isinstance(i, (int, np.integer)) or int(i) <= 0]
        if bad:
            raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                                  f'invalid id(s) {bad[:10]}; ids are integers >= 1')
        if selection is not None:
            selection = selection.normalized(self.config.frame_id)
        has_filter = selection is not None and not selection.is_empty()
        if not ids and not has_filter:
            raise GovernanceError(GovernanceStatus.EMPTY_SELECTION,
                                  'nothing selected: give ids, tags, kinds, a region, a time '
                                  'window, a tier or pinned; to erase the whole memory delete '
                                  'its store directory')
        with self._write_lock:
            chosen: list[int] | None = None
            unknown: list[int] = []
            if ids:
                wanted = list(dict.fromkeys(int(i) for i in ids))
                with self._lock:
                    chosen = [i for i in wanted if i in self.index]
                unknown = [i for i in wanted if i not in set(chosen)]
            if has_filter:
                assert selection is not None
                picked = self._select(selection)
                chosen = picked if chosen is None else sorted(set(chosen) & set(picked))
            chosen = chosen or []
            result = ForgetResult(list(chosen), unknown, dry_run=dry_run)
            if dry_run or not chosen:
                return result
            files = self._evidence_paths(chosen)
            self._forget(chosen)
            result.evidence_files = sum(1 for f in files if not f.exists())
            self._purge()
            return result

    def audit_event(self, action: str, requester: str = 'unknown', params: dict | None = None,
                    result: dict | None = None) -> None:
        """Log an action done outside the store's methods (exports, imports) in its audit log."""
        self._audit(action, requester, params or {}, result or {})

    def vacuum(self) -> None:
        """Rewrite the database without free pages (slow on big stores; holds the writer)."""
        with self._write_lock:
            self.storage.vacuum()
            self.storage.purge()

    def _select(self, selection: EngramFilter) -> list[int]:
        """Ids (increasing) of the live engrams a normalized filter picks."""
        kinds = [kind_code(k) for k in selection.kinds]
        with self._lock:
            slots = self.index.filter(
                tags_all=selection.tags_all, tags_any=selection.tags_any,
                tags_none=selection.tags_none, kinds=kinds,
                center=selection.center if selection.radius > 0.0 else None,
                radius=selection.radius, t_start=selection.t_start, t_end=selection.t_end)
            if slots is None:
                slots = self.index.live_slots()
            ids = [int(i) for i in self.index.ids_of(np.asarray(slots))]
            if selection.tier:
                short = self._short_lru
                want_short = selection.tier == TIER_SHORT
                ids = [i for i in ids if (i in short) == want_short]
            if selection.pinned is not None:
                ids = [i for i in ids if (i in self._pinned) == selection.pinned]
        return sorted(ids)

    def _filter_summary(self, selection: EngramFilter) -> dict:
        out = selection.summary()
        for name in ('tags_all', 'tags_any', 'tags_none'):
            if getattr(selection, name):
                out[name] = self._digests(getattr(selection, name))
        return out

    def _digests(self, values: Sequence[str]) -> list[str]:
        return self.audit.digests(values) if self.audit is not None else []

    def _audit(self, action: str, requester: str, params: dict, result: dict) -> None:
        if self.audit is not None:
            self.audit.record(action, requester, params, result)

    def _purge(self) -> None:
        """Make deleted data unrecoverable from the store directory (see the module doc)."""
        self._purged = True
        self.storage.purge()
        index_dir = self.storage.index_dir
        if index_dir is not None and index_dir.is_dir():
            for path in index_dir.iterdir():
                if path.is_file():
                    path.unlink()
            self.storage.set_meta(_META_INDEX_GENERATION, '')

    def _evidence_paths(self, ids: Sequence[int]) -> list[Path]:
        if self.evidence is None:
            return []
        paths = []
        for engram in self.storage.get(list(ids)):
            paths += [p for p in map(self.evidence.path_of, engram.evidence) if p is not None]
        return paths

    def _drop_unreferenced_evidence(self, uris: Sequence[str]) -> None:
        """Delete evidence files of a refused observation unless an engram references them."""
        if self.evidence is None or not uris:
            return
        in_use = self.storage.evidence_users(list(uris))
        for uri in uris:
            if uri not in in_use:
                try:
                    self.evidence.delete(uri)
                except OSError as exc:
                    _LOG.warning('could not delete evidence %s: %s', uri, exc)

    def _expire_evidence(self, now: float, dry_run: bool) -> int:
        """Delete evidence files past their retention; drop their URIs from engrams."""
        if self.evidence is None or not self.config.privacy.retention:
            return 0
        expired = self.evidence.expired(self.config.privacy, now)
        if dry_run or not expired:
            return len(expired)
        uris = [p.as_uri() for p in expired]
        users = self.storage.evidence_users(uris)
        gone = set(expired)
        changed = []
        for engram in self.storage.get(sorted({i for ids in users.values() for i in ids})):
            engram.evidence = tuple(u for u in engram.evidence
                                    if self.evidence.path_of(u) not in gone)
            changed.append(engram)
        if changed:
            self.storage.put(changed)
        deleted = 0
        for path in expired:
            try:
                path.unlink()
                deleted += 1
            except OSError as exc:
                _LOG.warning('could not delete expired evidence %s: %s', path, exc)
        _LOG.info('evidence retention: deleted %d files, updated %d engrams', deleted,
                  len(changed))
        return deleted


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector; reference counting still frees everything.

    A consolidation pass allocates a few GC-tracked objects per engram (engram copies, lists)
    and makes no reference cycles, yet the allocations trigger full collections that walk
    every object in the process, the whole store when it lives in RAM: 14 % of a pass over
    100k engrams. The collector's previous state is restored, also on an error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _keeps(a: Engram, b: Engram) -> bool:
    """True when ``a`` should absorb ``b``: more evidence wins, then the older engram."""
    return (a.observation_count, -a.id) >= (b.observation_count, -b.id)


def _in_scope(engram: Engram, scope: ConsolidationScope) -> bool:
    if scope.radius > 0.0 and scope.center is not None:
        if float(np.linalg.norm(engram.position - np.asarray(scope.center))) > scope.radius:
            return False
    if scope.t_start is not None and engram.last_seen < scope.t_start:
        return False
    if scope.t_end is not None and engram.last_seen > scope.t_end:
        return False
    return True


__all__ = ['ConsolidationReport', 'ConsolidationScope', 'IngestResult', 'MemoryStore',
           'ObservationExcluded', 'QueryError', 'StoreConfig']
