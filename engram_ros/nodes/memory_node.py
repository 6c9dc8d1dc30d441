"""The memory node: serves Recall and Consolidate, ingests observations, shows what it keeps.

Interfaces (relative names, so a namespace such as ``/robot1`` prefixes them):

* service ``engram/recall`` (``engram_ros/srv/Recall``)
* service ``engram/consolidate`` (``engram_ros/srv/Consolidate``)
* services ``engram/list``, ``engram/get``, ``engram/edit``, ``engram/forget``
  (``engram_ros/srv/ListEngrams``, ``GetEngrams``, ``EditEngram``, ``ForgetEngrams``): governance
* service ``engram/feedback`` (``engram_ros/srv/Feedback``): did a recall help? (usefulness)
* service ``engram/places`` (``engram_ros/srv/GetPlaces``): the place graph for planners
* subscription ``engram/observations`` (``engram_ros/msg/Observation``)
* subscription ``engram/keyframe_corrections`` (``engram_ros/msg/KeyframeCorrection``):
  SLAM pose corrections; places and what is anchored to them move along
* publisher ``engram/markers`` (``visualization_msgs/MarkerArray``), latched
* publisher ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``)

Ingestion, consolidation, edit, forget, feedback and corrections run in one mutually exclusive callback group (the
writers); recall, list, get and places run in a reentrant group, so a slow write never blocks a recall.
Every recall, list, get, consolidation, edit and forget is written to the audit log
(``<store_dir>/audit.jsonl``; in RAM without consent to persist). The core store
guards its own state (see :mod:`engram_ros.core.store`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from engram_ros import conversions
from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditError
from engram_ros.core.audit import AuditLog
from engram_ros.core.engram import InvalidObservation
from engram_ros.core.engram import KINDS
from engram_ros.core.evidence import EvidenceError
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import RetentionPolicy
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.governance import MAX_LIMIT
from engram_ros.core.merge import MergePolicy
from engram_ros.core.places import CorrectionError
from engram_ros.core.privacy import DEFAULT_RETENTION
from engram_ros.core.privacy import PrivacyConfigError
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallStatus
from engram_ros.core.semantic import SemanticTags
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import StoreOpenError
from engram_ros.core.store import MemoryStore
from engram_ros.core.store import ObservationExcluded
from engram_ros.core.store import StoreConfig
from engram_ros.core.visibility import MissPolicy
from engram_ros.msg import KeyframeCorrection
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.srv import Consolidate
from engram_ros.srv import EditEngram
from engram_ros.srv import Feedback
from engram_ros.srv import ForgetEngrams
from engram_ros.srv import GetEngrams
from engram_ros.srv import GetPlaces
from engram_ros.srv import ListEngrams
from engram_ros.srv import Recall
from engram_ros.nodes.spin import run_node

#: Marker colours per kind (RGBA).
_KIND_COLOURS = {'place': (0.2, 0.5, 1.0, 0.8), 'object': (1.0, 0.6, 0.1, 0.9),
                 'audio': (0.6, 0.2, 0.9, 0.8), 'event': (0.3, 0.8, 0.3, 0.8)}

# Parameters that shape the store on disk: fixed once the node runs.
_READ_ONLY = ('persist', 'store_dir', 'frame_id', 'dim', 'ingest_topic', 'privacy.zones',
              'privacy.time_windows', 'encrypt_evidence', 'encryption_key_file',
              'semantic_text', 'audit_max_mb', 'audit_keep_files')


class MemoryNode(Node):
    """ROS wrapper of :class:`engram_ros.core.store.MemoryStore`."""

    def __init__(self, **kwargs) -> None:
        super().__init__('engram_memory', **kwargs)
        self._declare_parameters()
        self.store = self._open_store()
        try:
            self._build()
        except BaseException:       # a Ctrl-C or a bad parameter while starting
            self.store.close()
            raise

    def _build(self) -> None:
        """Callback groups, counters, topics, timers and services, services last."""
        self._writers = MutuallyExclusiveCallbackGroup()
        self._queries = ReentrantCallbackGroup()
        self._reporting = MutuallyExclusiveCallbackGroup()
        self.counters = {'received': 0, 'ingested': 0, 'merged': 0, 'promoted': 0,
                         'dropped_malformed': 0, 'evicted': 0, 'recalls': 0,
                         'recall_errors': 0, 'consolidations': 0, 'dropped_privacy': 0,
                         'lists': 0, 'gets': 0, 'edits': 0, 'forgets': 0,
                         'forgotten': 0, 'evidence_expired': 0, 'governance_errors': 0,
                         'feedbacks': 0, 'feedback_errors': 0, 'corrections': 0,
                         'corrections_rejected': 0, 'moved': 0, 'ended': 0,
                         'place_queries': 0}
        self._last_recall_ms = 0.0
        self._markers_dirty = True
        self._semantic_state = 'off'
        if self.get_parameter('semantic_text').value:
            self._semantic_state = 'loading'
            threading.Thread(target=self._load_text_model, name='engram_text_model',
                             daemon=True).start()

        self.correction_sub = self.create_subscription(
            KeyframeCorrection, 'engram/keyframe_corrections', self.correction_callback,
            QoSProfile(depth=10), callback_group=self._writers)
        self.observation_sub = self.create_subscription(
            ObservationMsg, self.get_parameter('ingest_topic').value,
            self.observation_callback, QoSProfile(depth=self.get_parameter('queue_depth').value),
            callback_group=self._writers)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.marker_pub = self.create_publisher(MarkerArray, 'engram/markers', latched)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self._timers = []
        self._timers.append(self.create_timer(
            self.get_parameter('diagnostics_period').value, self.diagnostics_callback,
            callback_group=self._reporting))
        self._timers.append(self.create_timer(
            self.get_parameter('marker_period').value, self.marker_callback,
            callback_group=self._reporting))
        period = self.get_parameter('consolidation_period').value
        if period > 0.0:
            self._timers.append(self.create_timer(period, self.consolidation_timer_callback,
                                                  callback_group=self._writers))
        self.add_on_set_parameters_callback(self.parameters_callback)
        # Services last: once a client sees them, the node is fully built.
        self.list_service = self.create_service(
            ListEngrams, 'engram/list', self.list_callback, callback_group=self._queries)
        self.get_service = self.create_service(
            GetEngrams, 'engram/get', self.get_callback, callback_group=self._queries)
        self.edit_service = self.create_service(
            EditEngram, 'engram/edit', self.edit_callback, callback_group=self._writers)
        self.forget_service = self.create_service(
            ForgetEngrams, 'engram/forget', self.forget_callback, callback_group=self._writers)
        self.feedback_service = self.create_service(
            Feedback, 'engram/feedback', self.feedback_callback, callback_group=self._writers)
        self.places_service = self.create_service(
            GetPlaces, 'engram/places', self.places_callback, callback_group=self._queries)
        # Clients wait for these two: they come last of all.
        self.recall_service = self.create_service(
            Recall, 'engram/recall', self.recall_callback, callback_group=self._queries)
        self.consolidate_service = self.create_service(
            Consolidate, 'engram/consolidate', self.consolidate_callback,
            callback_group=self._writers)
        self.get_logger().info(
            f'memory ready: {len(self.store)} engrams, '
            f'{"store " + str(self._store_dir) if self._store_dir else "RAM only (no consent)"}; '
            f'services {self.recall_service.srv_name}, {self.consolidate_service.srv_name}')

    # ------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        def declare(name: str, default, description: str) -> None:
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=name in _READ_ONLY))

        declare('persist', False, 'consent to keep the memory on disk; false keeps it in RAM')
        declare('store_dir', '~/.ros/engram_store', 'store directory (SQLite, evidence, index)')
        declare('frame_id', 'map', 'memory frame: observations and queries must use it')
        declare('dim', 256, 'context vector dimension')
        declare('max_k', 100, 'largest k a Recall may ask for')
        declare('short_term_capacity', 10000, 'engrams in the short-term LRU tier')
        declare('budget', 1000000, 'most engrams kept; consolidation forgets past it')
        declare('promote_after', 2, 'observations before promotion to long-term')
        declare('noise_support', 0, 'forget a one-off sighting as label noise when a lookalike '
                'with another label and this many observations is at its place; 0 disables')
        for kind, radius in MergePolicy().radius.items():
            declare(f'merge_radius.{kind}', radius, f'[m] same-{kind} radius for merging')
        for kind, sim in MergePolicy().min_similarity.items():
            declare(f'merge_similarity.{kind}', sim, f'min cosine to merge two {kind} engrams')
        declare('consolidation_period', 30.0, '[s] background consolidation; 0 disables')
        declare('anchor_radius', 5.0, '[m] objects anchor to the nearest place within this')
        declare('edge_max_gap', 60.0, '[s] consecutive place observations within this make an '
                'edge of the place graph')
        declare('move_grace', 5.0, '[s] a thing unseen this long after the robot was at its '
                'place counts as missed (with a sighting elsewhere: it moved)')
        declare('miss_visits', 2, 'visits on which a thing was not seen where keyframe views '
                'should have shown it, before that belief ends; 0 disables')
        declare('miss_visit_gap', 30.0, '[s] misses further apart than this are separate visits')
        declare('feedback_rate', 0.3, 'step of the usefulness moving average per feedback, (0, 1]')
        declare('protect_score', 0.95, 'usefulness at or above which the budget never evicts')
        self.declare_parameter('important_tags', Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description='tags that protect an engram from budget eviction'))
        declare('marker_period', 2.0, '[s] RViz marker refresh when the memory changed')
        declare('max_markers', 2000, 'most engrams drawn in RViz')
        declare('diagnostics_period', 1.0, '[s] diagnostics publishing period')
        declare('ingest_topic', 'engram/observations', 'topic of engram_ros/msg/Observation')
        declare('queue_depth', 100, 'ingest subscription queue depth')
        for name, what in (('privacy.zones', 'regions where nothing is stored: circle:X,Y,R, '
                            'box:XMIN,YMIN,XMAX,YMAX (memory frame, m)'),
                           ('privacy.time_windows', 'times when nothing is stored: '
                            'daily:HH:MM-HH:MM (local), epoch:START-END')):
            self.declare_parameter(name, Parameter.Type.STRING_ARRAY, ParameterDescriptor(
                description=what, read_only=True))
        for kind, age in DEFAULT_RETENTION.items():
            declare(f'evidence_retention.{kind}', age,
                    f'[s] {kind} evidence files older than this are deleted; 0 keeps them')
        declare('encrypt_evidence', False, 'encrypt evidence files at rest (Fernet)')
        declare('encryption_key_file', '', 'evidence key file; empty: $ENGRAM_KEY')
        declare('audit_max_mb', 64.0, '[MiB] the audit log rotates at this size')
        declare('audit_keep_files', 8, 'rotated audit files kept; 0 keeps every one')
        declare('semantic_text', True, 'map query text that names no known tag to tags by '
                'meaning with the offline sentence model (loaded in the background)')
        declare('semantic_threshold', 0.38, 'least cosine similarity of a match by meaning')

    def _string_array(self, name: str) -> list[str]:
        try:
            return list(self.get_parameter(name).value or [])
        except ParameterUninitializedException:
            return []

    def _config(self) -> StoreConfig:
        p = self.get_parameter
        merge = MergePolicy(
            radius={k: p(f'merge_radius.{k}').value for k in KINDS},
            min_similarity={k: p(f'merge_similarity.{k}').value for k in KINDS},
            promote_after=p('promote_after').value, noise_support=p('noise_support').value)
        privacy = PrivacyPolicy.parse(
            self._string_array('privacy.zones'), self._string_array('privacy.time_windows'),
            {k: float(p(f'evidence_retention.{k}').value) for k in DEFAULT_RETENTION})
        retention = RetentionPolicy(feedback_rate=p('feedback_rate').value,
                                    protect_score=p('protect_score').value,
                                    important_tags=tuple(self._string_array('important_tags')))
        return StoreConfig(dim=p('dim').value, frame_id=p('frame_id').value,
                           max_k=p('max_k').value,
                           short_term_capacity=p('short_term_capacity').value,
                           budget=p('budget').value, merge=merge, privacy=privacy,
                           retention=retention, anchor_radius=p('anchor_radius').value,
                           edge_max_gap=p('edge_max_gap').value,
                           move_grace=p('move_grace').value,
                           misses=MissPolicy(visits=p('miss_visits').value,
                                             visit_gap=p('miss_visit_gap').value))

    def parameters_callback(self, params: list[Parameter]) -> SetParametersResult:
        """Validate changes; applies the tunable ones to the running store."""
        positive_ints = ('max_k', 'short_term_capacity', 'budget', 'promote_after',
                         'max_markers')
        for param in params:
            if param.name == 'miss_visits' and param.value < 0:
                return SetParametersResult(successful=False,
                                           reason='miss_visits must be >= 0 (0 disables)')
            if param.name in positive_ints and param.value < 1:
                return SetParametersResult(successful=False,
                                           reason=f'{param.name} must be >= 1')
            if (param.name.startswith('merge_') or param.name.startswith('evidence_retention.')
                    or param.name in ('anchor_radius', 'edge_max_gap', 'move_grace',
                                      'protect_score', 'miss_visit_gap')) \
                    and not (math.isfinite(param.value) and param.value >= 0.0):
                return SetParametersResult(successful=False,
                                           reason=f'{param.name} must be finite and >= 0')
            if param.name == 'semantic_threshold' and not -1.0 <= param.value <= 1.0:
                return SetParametersResult(successful=False,
                                           reason='semantic_threshold must be in [-1, 1]')
            if param.name == 'feedback_rate' and not 0.0 < param.value <= 1.0:
                return SetParametersResult(successful=False,
                                           reason='feedback_rate must be in (0, 1]')
        config = self.store.config
        for param in params:
            if param.name in ('max_k', 'short_term_capacity', 'budget'):
                setattr(config, param.name, param.value)
            elif param.name == 'promote_after':
                config.merge.promote_after = param.value
            elif param.name == 'noise_support':
                config.merge.noise_support = max(0, int(param.value))
            elif param.name.startswith('merge_radius.'):
                config.merge.radius[param.name.split('.', 1)[1]] = param.value
            elif param.name.startswith('merge_similarity.'):
                config.merge.min_similarity[param.name.split('.', 1)[1]] = param.value
            elif param.name.startswith('evidence_retention.'):
                config.privacy.retention[param.name.split('.', 1)[1]] = float(param.value)
            elif param.name in ('anchor_radius', 'edge_max_gap', 'move_grace'):
                setattr(config, param.name, float(param.value))
            elif param.name == 'miss_visits':
                config.misses.visits = int(param.value)
            elif param.name == 'miss_visit_gap':
                config.misses.visit_gap = float(param.value)
            elif param.name in ('feedback_rate', 'protect_score'):
                setattr(config.retention, param.name, float(param.value))
            elif param.name == 'important_tags':
                config.retention.important_tags = tuple(param.value or ())
            elif param.name == 'semantic_threshold' and self.store.text_matcher is not None:
                self.store.text_matcher.threshold = float(param.value)
        return SetParametersResult(successful=True)

    def _open_store(self) -> MemoryStore:
        """Open storage, evidence (key checked) and audit log.

        :raises StoreOpenError, EvidenceError, AuditError, ValueError: the node cannot run.
        """
        self._store_dir: Path | None = None
        config = self._config()
        encrypt = self.get_parameter('encrypt_evidence').value
        key_file = self.get_parameter('encryption_key_file').value
        if self.get_parameter('persist').value:
            self._store_dir = Path(os.path.expanduser(self.get_parameter('store_dir').value))
            storage = SQLiteStorage(self._store_dir)
            try:
                evidence = EvidenceStore.from_settings(storage.evidence_dir, encrypt, key_file)
                audit = AuditLog(
                    self._store_dir / AUDIT_FILE_NAME,
                    max_bytes=int(self.get_parameter('audit_max_mb').value * 1024 * 1024),
                    keep_files=self.get_parameter('audit_keep_files').value)
            except BaseException:
                storage.close()
                raise
            return MemoryStore(storage, config, audit=audit, evidence=evidence)
        if encrypt:   # checked even without files, so a misconfiguration shows at once
            EvidenceStore.from_settings(Path('/nonexistent'), encrypt, key_file)
        return MemoryStore(MemoryStorage(), config, audit=AuditLog(None))

    def _load_text_model(self) -> None:
        """Background thread: load the sentence model, then let recall use it."""
        try:
            # Only this thread: loading must not slow the callbacks (Linux nice is per thread).
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
        started = time.monotonic()
        try:
            from engram_ros.perception.text import MODEL_DIM
            from engram_ros.perception.text import TextEncoder
            encoder = TextEncoder(dim=MODEL_DIM)
            encoder.embed(['warm up'])
        except Exception as exc:    # a missing package or a broken model: exact words only
            self._semantic_state = f'failed: {type(exc).__name__}: {exc}'
            self.get_logger().warning(f'semantic text matching is off: {self._semantic_state}')
            return
        self.store.text_matcher = SemanticTags(
            encoder.embed, threshold=self.get_parameter('semantic_threshold').value)
        self._semantic_state = 'ready'
        self.get_logger().info(f'semantic text matching ready '
                               f'({time.monotonic() - started:.1f} s to load the model)')

    # ------------------------------------------------------------------------- callbacks
    def observation_callback(self, msg: ObservationMsg) -> None:
        self.counters['received'] += 1
        try:
            result = self.store.ingest(conversions.observation_from_msg(msg))
        except ObservationExcluded as exc:
            self.counters['dropped_privacy'] += 1
            self.get_logger().info(str(exc), throttle_duration_sec=10.0)
            return
        except (InvalidObservation, ValueError) as exc:
            self.counters['dropped_malformed'] += 1
            self.get_logger().warning(f'dropped an observation: {exc}',
                                      throttle_duration_sec=5.0)
            return
        self.counters['ingested'] += 1
        self.counters['merged'] += int(result.merged)
        self.counters['promoted'] += int(result.promoted)
        self.counters['evicted'] += len(result.evicted)
        self._markers_dirty = True

    def recall_callback(self, request: Recall.Request,
                        response: Recall.Response) -> Recall.Response:
        start = time.perf_counter()
        self.counters['recalls'] += 1
        try:
            result = self.store.recall(conversions.recall_query_from_request(request),
                                       requester=conversions.requester_of(request))
            conversions.fill_recall_response(result, response, request.include_vectors)
        except QueryError as exc:
            self.counters['recall_errors'] += 1
            response.status = int(exc.status)
            response.message = str(exc)
        except Exception as exc:  # a planner must get an answer, never a dead service
            self.counters['recall_errors'] += 1
            self.get_logger().error(f'recall failed: {exc!r}')
            response.status = int(RecallStatus.INTERNAL_ERROR)
            response.message = f'internal error: {exc}'
        self._last_recall_ms = (time.perf_counter() - start) * 1e3
        return response

    def consolidate_callback(self, request: Consolidate.Request,
                             response: Consolidate.Response) -> Consolidate.Response:
        try:
            scope = conversions.consolidation_scope_from_request(
                request, self.store.config.frame_id)
            report = self.store.consolidate(scope, dry_run=request.dry_run,
                                            requester=conversions.requester_of(request))
        except conversions.RequestError as exc:
            response.status = exc.status
            response.message = str(exc)
            return response
        except Exception as exc:
            self.get_logger().error(f'consolidation failed: {exc!r}')
            response.status = Consolidate.Response.STATUS_INTERNAL_ERROR
            response.message = f'internal error: {exc}'
            return response
        self.counters['consolidations'] += 1
        self.counters['evidence_expired'] += report.evidence_expired
        self.counters['moved'] += 0 if request.dry_run else len(report.moved)
        self.counters['ended'] += 0 if request.dry_run else len(report.ended)
        self._markers_dirty = self._markers_dirty or not request.dry_run
        return conversions.fill_consolidate_response(report, response)

    def consolidation_timer_callback(self) -> None:
        report = self.store.consolidate(requester=self.get_fully_qualified_name())
        self.counters['consolidations'] += 1
        self.counters['evidence_expired'] += report.evidence_expired
        self.counters['moved'] += len(report.moved)
        self.counters['ended'] += len(report.ended)
        if report.merged or report.forgotten or report.promoted or report.moved or report.ended:
            self._markers_dirty = True

    def feedback_callback(self, request: Feedback.Request,
                          response: Feedback.Response) -> Feedback.Response:
        self.counters['feedbacks'] += 1
        try:
            engrams = self.store.feedback([int(i) for i in request.ids], request.helped,
                                          requester=conversions.requester_of(request))
        except Exception as exc:  # a bad request gets a status, never a dead service
            self.counters['feedback_errors'] += 1
            if not isinstance(exc, FeedbackError):
                self.get_logger().error(f'feedback failed: {exc!r}')
            else:
                known = {e.id for e in self.store.get([int(i) for i in request.ids])}
                response.unknown_ids = [int(i) for i in request.ids if int(i) not in known]
            return conversions.feedback_error_response(exc, response)
        return conversions.fill_feedback_response(engrams, response)

    def places_callback(self, request: GetPlaces.Request,
                        response: GetPlaces.Response) -> GetPlaces.Response:
        self.counters['place_queries'] += 1
        try:
            graph = self.store.place_graph(requester=conversions.requester_of(request))
            objects = (sorted(self.store.get(sorted(graph.anchors)), key=lambda e: e.id)
                       if request.include_objects else [])
            return conversions.fill_places_response(graph, objects, response)
        except Exception as exc:
            self.get_logger().error(f'places failed: {exc!r}')
            response.status = GetPlaces.Response.STATUS_INTERNAL_ERROR
            response.message = f'internal error: {exc}'
            return response

    def correction_callback(self, msg: KeyframeCorrection) -> None:
        frame = self.store.config.frame_id
        try:
            if msg.header.frame_id not in ('', frame):
                raise ValueError(f'correction in frame {msg.header.frame_id!r}; the memory '
                                 f'frame is {frame!r}')
            report = self.store.correct_poses(conversions.pose_corrections_from_msg(msg),
                                              requester='keyframe_corrections')
        except (CorrectionError, ValueError) as exc:
            self.counters['corrections_rejected'] += 1
            self.get_logger().warning(f'pose correction rejected, nothing changed: {exc}',
                                      throttle_duration_sec=2.0)
            return
        self.counters['corrections'] += 1
        self._markers_dirty = True
        self.get_logger().info(f'pose correction: moved {len(report.places)} places and '
                               f'{len(report.anchored)} anchored engrams')

    def list_callback(self, request: ListEngrams.Request,
                      response: ListEngrams.Response) -> ListEngrams.Response:
        self.counters['lists'] += 1
        try:
            result = self.store.list_engrams(conversions.engram_filter_from_request(request),
                                             offset=request.offset, limit=request.limit,
                                             requester=conversions.requester_of(request))
            return conversions.fill_list_response(result, response, request.include_vectors)
        except Exception as exc:  # a bad request gets a status, never a dead service
            return self._governance_error('list', exc, response)

    def get_callback(self, request: GetEngrams.Request,
                     response: GetEngrams.Response) -> GetEngrams.Response:
        self.counters['gets'] += 1
        if not 1 <= len(request.ids) <= MAX_LIMIT:
            return self._governance_error('get', GovernanceError(
                GovernanceStatus.INVALID_PAGE,
                f'{len(request.ids)} ids asked for; accepted: 1..{MAX_LIMIT}'), response)
        try:
            engrams, unknown = self.store.get_engrams(
                [int(i) for i in request.ids], requester=conversions.requester_of(request))
            return conversions.fill_get_response(engrams, unknown, response,
                                                 request.include_vectors)
        except Exception as exc:
            return self._governance_error('get', exc, response)

    def edit_callback(self, request: EditEngram.Request,
                      response: EditEngram.Response) -> EditEngram.Response:
        self.counters['edits'] += 1
        try:
            engram = self.store.edit(int(request.id), requester=conversions.requester_of(request),
                                     **conversions.edit_from_request(request))
        except Exception as exc:
            return self._governance_error('edit', exc, response)
        response.engram = conversions.engram_to_msg(engram, include_vector=False)
        response.status = EditEngram.Response.STATUS_OK
        response.message = f'engram {engram.id} edited'
        self._markers_dirty = True
        return response

    def forget_callback(self, request: ForgetEngrams.Request,
                        response: ForgetEngrams.Response) -> ForgetEngrams.Response:
        self.counters['forgets'] += 1
        try:
            selection = conversions.engram_filter_from_request(request)
            result = self.store.forget([int(i) for i in request.ids], selection,
                                       dry_run=request.dry_run,
                                       requester=conversions.requester_of(request))
        except Exception as exc:
            return self._governance_error('forget', exc, response)
        self.counters['forgotten'] += 0 if result.dry_run else len(result.forgotten_ids)
        self._markers_dirty = self._markers_dirty or bool(result.forgotten_ids)
        return conversions.fill_forget_response(result, response)

    def _governance_error(self, what: str, exc: Exception, response):
        """Fill ``status``/``message`` of a governance response from an exception."""
        self.counters['governance_errors'] += 1
        if isinstance(exc, GovernanceError):
            response.status = int(exc.status)
            response.message = str(exc)
        else:
            self.get_logger().error(f'{what} failed: {exc!r}')
            response.status = int(GovernanceStatus.INTERNAL_ERROR)
            response.message = f'internal error: {exc}'
        return response

    def marker_callback(self) -> None:
        if not self._markers_dirty:
            return
        self._markers_dirty = False
        stamp = self.get_clock().now().to_msg()
        frame = self.store.config.frame_id
        markers = MarkerArray()
        markers.markers.append(Marker(action=Marker.DELETEALL))
        limit = self.get_parameter('max_markers').value
        for i, engram in enumerate(self.store.storage.iter_all(batch_size=1000)):
            if i >= limit:
                break
            colour = _KIND_COLOURS.get(engram.kind, (0.7, 0.7, 0.7, 0.8))
            for shape, offset in ((Marker.SPHERE, 0.0), (Marker.TEXT_VIEW_FACING, 0.3)):
                m = Marker()
                m.header.frame_id = frame
                m.header.stamp = stamp
                m.ns = f'{engram.kind}_{"label" if shape == Marker.TEXT_VIEW_FACING else "body"}'
                m.id = int(engram.id)
                m.type = shape
                m.action = Marker.ADD
                m.pose.position.x, m.pose.position.y = map(float, engram.position[:2])
                m.pose.position.z = float(engram.position[2]) + offset
                m.pose.orientation.w = 1.0
                size = 0.15 + 0.05 * min(engram.observation_count, 6)
                m.scale.x = m.scale.y = m.scale.z = size if shape == Marker.SPHERE else 0.15
                m.color.r, m.color.g, m.color.b, m.color.a = colour
                if shape == Marker.TEXT_VIEW_FACING:
                    m.text = f'{engram.label or engram.kind} #{engram.id} x{engram.observation_count}'
                    m.color.r = m.color.g = m.color.b = 1.0
                markers.markers.append(m)
        self.marker_pub.publish(markers)

    def diagnostics_callback(self) -> None:
        status = DiagnosticStatus()
        status.level = DiagnosticStatus.OK
        status.name = f'{self.get_name()}: memory'
        status.hardware_id = 'engram_ros'
        dropped = self.counters['dropped_malformed']
        private = self.counters['dropped_privacy']
        status.message = (f'{len(self.store)} engrams'
                          + (f', {dropped} malformed observations dropped' if dropped else '')
                          + (f', {private} observations in privacy zones not stored'
                             if private else ''))
        if dropped:
            status.level = DiagnosticStatus.WARN
        values = dict(self.counters, engrams=len(self.store),
                      short_term=self.store.short_term_size,
                      last_recall_ms=round(self._last_recall_ms, 3),
                      semantic_text=self._semantic_state)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        """Close the store (index saved, statistics flushed) before the node goes away."""
        self.store.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(MemoryNode, lambda: MultiThreadedExecutor(num_threads=4),
                    logger_name='engram_memory', what='open the memory',
                    startup_errors=(StoreOpenError, EvidenceError, AuditError,
                                    PrivacyConfigError, ValueError), args=args)


if __name__ == '__main__':
    sys.exit(main())
