"""The :class:`MemoryStore` façade: the public API the nodes and the CLI call, its locks, and
its lifecycle (open, close). Every operation is carried out by one module of this package
(see :mod:`engram_ros.core.memory`); the façade validates nothing itself, it writes the audit
log around each operation and holds the objects they share.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable
from typing import Sequence
from typing import TYPE_CHECKING

from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import id_summary
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import FeedbackStatus
from engram_ros.core.forgetting import update_usefulness
from engram_ros.core.governance import check_page
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import ListResult
from engram_ros.core.memory import consolidation
from engram_ros.core.memory import governance_ops
from engram_ros.core.memory import ingest as ingest_ops
from engram_ros.core.memory import lifecycle
from engram_ros.core.memory import mapping
from engram_ros.core.memory import recall as recall_ops
from engram_ros.core.memory import writes
from engram_ros.core.memory.config import ConsolidationReport
from engram_ros.core.memory.config import ConsolidationScope
from engram_ros.core.memory.config import IngestResult
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.memory.config import StoreConfig
from engram_ros.core.memory.state import MemoryState
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.places import CorrectionError
from engram_ros.core.places import CorrectionReport
from engram_ros.core.places import PlaceGraph
from engram_ros.core.places import PoseCorrection
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.semantic import SemanticTags
from engram_ros.core.storage import Storage
from engram_ros.core.visibility import MissTracker

if TYPE_CHECKING:
    from engram_ros.core.fleet.view import FleetView

_LOG = logging.getLogger(LOGGER_NAME)


class MemoryStore:
    """Engram memory over a :class:`Storage` backend; thread-safe as the package documents."""

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
        #: The memory's clock [s since the epoch] where an operation takes the time itself
        #: (an ingested engram's last access, a recall's or consolidation's ``now`` when none
        #: is given); an offline ingest sets it to the bag's time, the memory node to the ROS
        #: clock (simulated time under ``use_sim_time``).
        self.clock: Callable[[], float] = time.time
        #: The fleet this robot belongs to (issue 15), searched by a recall whose scope goes
        #: beyond this robot; ``None``: no fleet (such a recall answers locally and says so).
        self.fleet: FleetView | None = None
        #: This robot's id while no fleet is configured (the fleet's ``robot_id`` otherwise):
        #: the robot a recall's local answers are marked with.
        self.robot_id = ''
        #: Recalls the fleet answered, and those that wanted it but were answered locally
        #: (no fleet configured, unreachable, or failing during the recall).
        self.fleet_recalls = 0
        self.fleet_recalls_unanswered = 0
        #: Guards the index and the state; held for index reads and updates only.
        self._lock = threading.RLock()
        #: One writer at a time: ingest, consolidate, edit, forget, feedback, correct, close.
        self._write_lock = threading.RLock()
        self.state = MemoryState(storage.edges())
        #: Keyframes at which current things should have been visible (RAM only).
        self.misses = MissTracker(self.config.misses)
        self._closed = False
        #: Whether the index was loaded from the saved cache (else rebuilt from storage).
        self.index_from_cache = False
        #: Saved index caches found but not used (corrupt, truncated, stale): 0 or 1 per open,
        #: and why (logged as a warning too); the index was rebuilt from storage then.
        self.index_cache_rejected = 0
        self.index_cache_problem: str | None = None
        if self.config.graph_build not in ('background', 'inline', 'manual'):
            raise ValueError(f'graph_build is {self.config.graph_build!r}; one of '
                             "'background', 'inline', 'manual' is required")
        self.index = lifecycle.open_index(self)
        self._graph_thread: threading.Thread | None = None
        #: Set by a close that stopped waiting for the graph: the build stops at its next batch.
        self._graph_abandoned = threading.Event()
        #: Whether :meth:`close` gave up waiting for the graph and saved no index cache.
        self.graph_abandoned_at_close = False
        if self.index.graph_pending and self.config.graph_build == 'background':
            self._graph_thread = threading.Thread(target=self.build_graph,
                                                  name='engram-graph', daemon=True)
            self._graph_thread.start()
        # What changed since the last consolidation is kept by storage: a restart still merges
        # the duplicates among the engrams written just before it.
        self.state.dirty.update(storage.dirty_ids())

    # ----------------------------------------------------------------------------- lifecycle
    @property
    def graph_pending(self) -> bool:
        """Whether the index's HNSW graph is still being built after a crash reopen (searches
        are exact meanwhile; see :mod:`.lifecycle`)."""
        with self._lock:
            return self.index.graph_pending

    def build_graph(self) -> bool:
        """Build the pending HNSW graph and swap it in (what the background thread runs);
        ``False`` when none was pending. Writers and readers go on between its steps."""
        start = time.monotonic()
        built = self.index.build_graph(_WriteAndIndexLock(self), self._graph_abandoned.is_set)
        if built:
            _LOG.info('index graph built over %d slots in %.1f s', self.index.slot_count,
                      time.monotonic() - start)
        return built

    def wait_graph(self, timeout: float | None = None) -> bool:
        """Wait for the background graph build; ``True`` when the graph is ready."""
        thread = self._graph_thread
        if thread is not None:
            thread.join(timeout)
        return not self.graph_pending

    def close(self) -> None:
        """Flush recall statistics, save the index cache, close storage. Idempotent.

        A graph still pending is waited for (built, in ``'manual'`` mode) up to
        :attr:`StoreConfig.close_graph_wait`, so the cache saved is complete and the next open
        is a clean one; past that wait the build is abandoned and the cache dropped instead
        (the next open rebuilds from storage, as after a crash)."""
        wait = self.config.close_graph_wait
        abandon = wait is not None and not self.wait_graph(wait)
        if abandon:
            self._graph_abandoned.set()
            self.wait_graph()               # the build stops at its next batch
        with self._write_lock:
            if self._closed:
                return
            recall_ops.flush_touched(self)
            if abandon and self.index.graph_pending:
                _LOG.warning('closing with the index graph still pending after %.1f s: no index '
                             'cache saved; the next open rebuilds it from storage', wait)
                self.graph_abandoned_at_close = True
                lifecycle.drop_cache(self)
            else:
                lifecycle.save(self)
            self.storage.close()
            if self.audit is not None:
                self.audit.close()
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
            return len(self.state.short)

    def known_labels(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self.state.labels)

    def indexed_ids(self) -> set[int]:
        """The ids the in-RAM index holds (a check against storage; no audit record)."""
        with self._lock:
            return {int(i) for i in self.index.ids_of(self.index.live_slots())}

    # ----------------------------------------------------------------------------- write
    def ingest(self, obs: Observation) -> IngestResult:
        """Write one observation: reactivate the engram it matches, or add a short-term one.

        :raises engram_ros.core.model.engram.InvalidObservation: when ``obs`` breaks the contract;
            nothing is written then.
        :raises ObservationExcluded: inside a privacy zone or window; nothing is written.
        """
        return ingest_ops.ingest(self, obs)

    def ingest_many(self, observations: Sequence[Observation]
                    ) -> list[IngestResult | Exception]:
        """Write observations in one storage transaction (a group commit): the same as
        :meth:`ingest` of each in order, but committed together (all or none of them).

        :returns: per observation, its result or the error that refused it (an invalid or
            excluded one alone; a storage error, nothing written, for all that were to be).
        """
        return ingest_ops.ingest_many(self, observations)

    def bulk_load(self, engrams: Sequence[Engram]) -> list[int]:
        """Add engrams as they are (ids assigned here), without matching: imports, benchmarks.

        :returns: the new ids, in the order of ``engrams``.
        """
        return ingest_ops.bulk_load(self, engrams)

    # ----------------------------------------------------------------------------- read
    def recall(self, query: RecallQuery, now: float | None = None,
               requester: str = 'unknown') -> RecallResult:
        """Two-stage recall (filter, then rank). Reactivates the engrams it returns.

        :param requester: who asks, for the audit log.
        :raises QueryError: for a request that breaks the contract (status code included).
        """
        try:
            result = recall_ops.recall(self, query, now)
        except QueryError as exc:
            self._audit('recall', requester, recall_ops.query_summary(self.audit, query),
                        {'status': int(exc.status)})
            raise
        summary = id_summary(result.ids)
        if result.fleet != FleetAnswer.NOT_ASKED:
            # Ids of other robots' engrams are the fleet's: say whose each answer is.
            summary.update(fleet=result.fleet.name.lower(),
                           robots=[h.robot for h in result.hits][:len(summary['ids'])])
        self._audit('recall', requester, recall_ops.query_summary(self.audit, query), summary)
        return result

    def get(self, ids: Sequence[int]) -> list[Engram]:
        return self.storage.get(ids)

    # ----------------------------------------------------------------------------- map
    def place_graph(self, requester: str = 'unknown') -> PlaceGraph:
        """The current places, the traversal edges between them, and what is anchored where."""
        graph, ids = mapping.place_graph(self)
        self._audit('places', requester, {}, dict(id_summary(ids), edges=len(graph.edges)))
        return graph

    def correct_poses(self, corrections: Sequence[PoseCorrection],
                      requester: str = 'unknown') -> CorrectionReport:
        """Re-anchor: move corrected places to their new poses, and their anchored engrams
        by the same rigid transform, all in one write.

        :raises CorrectionError: ``EMPTY``, ``INVALID_POSE``, or ``UNKNOWN_KEYFRAME`` when a
            keyframe or place id is not in the memory; nothing is changed then.
        """
        params = {'keyframes': len(corrections)}
        try:
            report = mapping.correct_poses(self, corrections)
        except CorrectionError as exc:
            self._audit('correct', requester, params, {'status': int(exc.status)})
            raise
        self._audit('correct', requester, params, dict(id_summary(report.places),
                                                       anchored=len(report.anchored)))
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
            writes.write(self, engrams)
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
        with self._write_lock:
            report = consolidation.consolidate(self, scope, dry_run, now)
            if not dry_run:    # the pass has seen every changed engram, as the state says
                self.storage.clear_dirty()
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
        ids = governance_ops.select(self, selection)
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
            engram = governance_ops.edit(self, int(engram_id), add_tags, remove_tags, label,
                                         pinned)
        except GovernanceError as exc:
            self._audit('edit', requester, params, {'status': int(exc.status)})
            raise
        self._audit('edit', requester, params, id_summary([engram.id]))
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
            result = governance_ops.forget_selected(self, ids, selection, dry_run)
        except GovernanceError as exc:
            self._audit('forget', requester, params, {'status': int(exc.status)})
            raise
        if selection is not None:
            params.update(self._filter_summary(selection))
        self._audit('forget', requester, params,
                    dict(id_summary(result.forgotten_ids), unknown=result.unknown_ids[:1000],
                         evidence_files=result.evidence_files))
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

    # ----------------------------------------------------------------------------- audit
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


class _WriteAndIndexLock:
    """Both locks of a store, write lock first, for each step of a graph build: a compaction
    copies the codes under the write lock alone, so a swap must keep it out too."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._write_lock.acquire()
        self.store._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.store._lock.release()
        self.store._write_lock.release()
