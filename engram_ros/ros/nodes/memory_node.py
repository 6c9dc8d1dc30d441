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

Observations and Recall have a thread each (:mod:`engram_ros.ros.take_loop`), outside the
executor: the intake takes up to ``ingest_batch`` serialized observations per wake-up, counts
what publishers sent that never arrived (``lost``, from sequence numbers:
:mod:`engram_ros.ros.publisher_loss`), refuses floods (``ingest_rate_limit`` per publisher) and
oversized messages unread, checks the rest into a bounded write queue
(:mod:`engram_ros.core.memory.write_queue`, ``write_queue_size``) and writes it. The query
thread answers Recall as soon as a request arrives. Consolidation, edit, forget, feedback and
corrections run in the executor's mutually exclusive callback group (the writers); list, get
and places in a reentrant group.

Storage errors (a full disk, a file size limit, a database locked by another process, an audit
log that cannot be appended to) never stop the node: observations wait in the queue and are
retried with back-off, the failing operation answers a status and a message that say so,
diagnostics report ERROR with the failing operations and count every error and every drop.
Every recall, list, get, consolidation, edit and forget is written to the audit log
(``<store_dir>/audit.jsonl``; in RAM without consent to persist). The core store
guards its own state (see :mod:`engram_ros.core.memory`).
"""

from __future__ import annotations

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from visualization_msgs.msg import MarkerArray

from engram_ros.core.audit import AuditError
from engram_ros.core.evidence import EvidenceError
from engram_ros.core.fleet.forget import forget_here_and_in_fleet
from engram_ros.core.fleet.forget import ForgetHereAndInFleet
from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.governance import check_id_count
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.governance import MAX_LIMIT
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory.write_queue import describe
from engram_ros.core.memory.write_queue import RETRY_MIN
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS
from engram_ros.core.places import CorrectionError
from engram_ros.core.privacy import PrivacyConfigError
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallStatus
from engram_ros.core.storage import StoreOpenError
from engram_ros.msg import KeyframeCorrection
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.ros import memory_parameters
from engram_ros.ros.conversions import memory as conversions
from engram_ros.ros.diagnostics import index_cache_state
from engram_ros.ros.diagnostics import memory_diagnostics
from engram_ros.ros.managed import ManagedNode
from engram_ros.ros.markers import engram_markers
from engram_ros.ros.memory_health import MemoryHealth
from engram_ros.ros.memory_intake import ObservationIntake
from engram_ros.ros.nodes.spin import run_node
from engram_ros.ros.take_loop import TakeLoop
from engram_ros.ros.text_model import load_text_matcher
from engram_ros.srv import Consolidate
from engram_ros.srv import EditEngram
from engram_ros.srv import Feedback
from engram_ros.srv import ForgetEngrams
from engram_ros.srv import GetEngrams
from engram_ros.srv import GetPlaces
from engram_ros.srv import ListEngrams
from engram_ros.srv import Recall


class MemoryNode(ManagedNode):
    """ROS wrapper of :class:`engram_ros.core.memory.MemoryStore`; a managed node
    (:mod:`engram_ros.ros.managed`): configure opens the store, activate starts the
    topics, timers and services, deactivate stops them, cleanup closes the store."""

    def __init__(self, **kwargs) -> None:
        super().__init__('engram_memory', **kwargs)
        self.store: MemoryStore | None = None
        #: The fleet sync and its link (``fleet.uri``); None without a fleet.
        self.fleet_sync = None
        self.fleet_link = None
        try:
            self._declare_parameters()
            self.add_on_set_parameters_callback(self.parameters_callback)
            if self._value('autostart'):
                self.autostart()
        except BaseException:       # a refusal, a bad parameter or a Ctrl-C while starting
            # closes the store if it opened, and untracks the node: rclpy's shutdown must not
            # destroy a half-built node again (that was an AttributeError after the refusal)
            self.destroy_node()
            raise

    # ------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('configure', self._configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('activate', self._activate)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('deactivate', self._deactivate)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('cleanup', self._cleanup)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('shutdown', self._cleanup)

    def _configure(self) -> None:
        """Check the parameters, open the store, make the write queue."""
        try:
            # start values by the rules of changes (the callback never saw them)
            memory_parameters.check_start(self._value)
            self.store = self._open_store()
            self._open_fleet()
            self.creating(self._build, self.configured_entities)
        except BaseException:
            self._cleanup()
            raise

    def _activate(self) -> None:
        try:
            self.creating(self._start, self.active_entities)
        except BaseException:
            self._deactivate()
            raise

    def _deactivate(self) -> None:
        """Stop the take loops, then destroy what activate made."""
        for loop in (self._intake, self._recalls):
            if loop is not None:
                loop.stop()
        self._intake = self._recalls = None
        self.release(self.active_entities)

    def _cleanup(self) -> None:
        """Stop everything, write what waits, close the store (from any state; again is a
        no-op)."""
        if getattr(self, '_intake', None) or getattr(self, '_recalls', None):
            self._deactivate()
        self.release(self.active_entities)
        self.release(self.configured_entities)
        self._close_store()

    def _build(self) -> None:
        """Callback groups, counters and the write queue (configure)."""
        self._writers = MutuallyExclusiveCallbackGroup()
        self._queries = ReentrantCallbackGroup()
        self._reporting = MutuallyExclusiveCallbackGroup()
        self.health = MemoryHealth(self.get_logger())
        self.intake = ObservationIntake(
            self.store, self.health, self.get_logger(),
            rate_limit=self.get_parameter('ingest_rate_limit').value,
            max_bytes=self.get_parameter('max_observation_bytes').value,
            queue_size=self.get_parameter('write_queue_size').value,
            max_batch=self.get_parameter('ingest_batch').value,
            on_written=self._memory_changed)
        self.ingest_queue = self.intake.queue
        self._intake: TakeLoop | None = None
        self._recalls: TakeLoop | None = None
        self._last_recall_ms = 0.0
        self._markers_dirty = True
        self._semantic_state = 'off'
        if self.get_parameter('semantic_text').value:
            self._semantic_state = 'loading'
            threading.Thread(target=self._load_text_model, args=(self.store,),
                             name='engram_text_model', daemon=True).start()

    def _start(self) -> None:
        """Topics, timers and services, services last (activate)."""
        self.correction_sub = self.create_subscription(
            KeyframeCorrection, 'engram/keyframe_corrections', self.correction_callback,
            QoSProfile(depth=10), callback_group=self._writers)
        # The hot paths have a thread each (engram_ros.ros.take_loop): observations are taken
        # off DDS in batches and group-committed; Recall never waits behind the executor.
        self._intake = TakeLoop(self, 'engram_intake', idle=self.intake.drain,
                                idle_period=RETRY_MIN)
        self.observation_sub = self._intake.subscribe(
            ObservationMsg, self.get_parameter('ingest_topic').value,
            QoSProfile(depth=self.get_parameter('queue_depth').value), self.intake.take,
            batch=self.get_parameter('ingest_batch').value, raw=True)
        self._recalls = TakeLoop(self, 'engram_recall')
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.marker_pub = self.create_publisher(MarkerArray, 'engram/markers', latched)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self._timers = [self.create_timer(
            self.get_parameter('diagnostics_period').value, self.diagnostics_callback,
            callback_group=self._reporting)]
        self._timers.append(self.create_timer(
            self.get_parameter('marker_period').value, self.marker_callback,
            callback_group=self._reporting))
        period = self.get_parameter('consolidation_period').value
        if period > 0.0:
            self._timers.append(self.create_timer(period, self.consolidation_timer_callback,
                                                  callback_group=self._writers))
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
        self.recall_service = self._recalls.serve(Recall, 'engram/recall', self.recall_callback)
        self.consolidate_service = self.create_service(
            Consolidate, 'engram/consolidate', self.consolidate_callback,
            callback_group=self._writers)
        self._intake.start()
        self._recalls.start()
        self.get_logger().info(
            f'memory ready: {len(self.store)} engrams, '
            f'{"store " + str(self._store_dir) if self._store_dir else "RAM only (no consent)"}; '
            f'services {self.recall_service.srv_name}, {self.consolidate_service.srv_name}')

    # ------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        for name, default, description in memory_parameters.declarations():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=name in memory_parameters.READ_ONLY))

    def _value(self, name: str):
        """A parameter's value; None for a string array left unset."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def parameters_callback(self, params: list[Parameter]) -> SetParametersResult:
        """Validate changes; applies the tunable ones to the running store."""
        for param in params:
            reason = memory_parameters.rejection(param.name, param.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        if self.store is None:      # not configured: configure reads them
            return SetParametersResult(successful=True)
        for param in params:
            memory_parameters.apply(self.store.config, self.store.text_matcher, param.name,
                                    param.value)
        return SetParametersResult(successful=True)

    def _open_store(self) -> MemoryStore:
        """:raises StoreOpenError, EvidenceError, AuditError, ValueError: the node cannot run."""
        store, self._store_dir = memory_parameters.open_store(self._value)
        store.clock = self._now
        # The id every fleet row of this robot carries: a fleet recall leaves those out.
        store.robot_id = memory_parameters.robot_id(self._value('fleet.robot_id'),
                                                    self.get_namespace())
        return store

    def _open_fleet(self) -> None:
        """The fleet sync (``fleet.uri``), on its own thread: it connects, uploads and
        retries there, so an absent fleet never delays a callback. ``fleet_link`` is the
        connection; a store that takes one (``MemoryStore.fleet``) gets it."""
        self.fleet_sync = memory_parameters.open_fleet(self._value, self.store,
                                                       self.get_namespace())
        self.fleet_link = None if self.fleet_sync is None else self.fleet_sync.link
        if self.fleet_sync is None:
            return
        if hasattr(self.store, 'fleet'):
            self.store.fleet = self.fleet_link
        self.fleet_sync.start(self.get_parameter('fleet.sync_period').value)

    def _now(self) -> float:
        """The memory's clock: the node's (simulated time under ``use_sim_time``, so ages and
        recency follow a bag being replayed), the system clock until ``/clock`` first ticks."""
        nanoseconds = self.get_clock().now().nanoseconds
        return nanoseconds * 1e-9 if nanoseconds > 0 else time.time()

    def _load_text_model(self, store: MemoryStore) -> None:
        """Background thread: the sentence model (:mod:`engram_ros.ros.text_model`)."""
        load_text_matcher(store, self.get_parameter('semantic_threshold').value,
                          self.get_logger(), lambda state: setattr(self, '_semantic_state', state))

    # ------------------------------------------------------------------------- callbacks
    def _memory_changed(self) -> None:
        self._markers_dirty = True

    def recall_callback(self, request: Recall.Request,
                        response: Recall.Response) -> Recall.Response:
        start = time.perf_counter()
        self.health.count('recalls')
        try:
            result = self.store.recall(conversions.recall_query_from_request(request),
                                       requester=conversions.requester_of(request))
            conversions.fill_recall_response(result, response, request.include_vectors,
                                             request.compact)
            if result.fleet in (FleetAnswer.NOT_CONFIGURED, FleetAnswer.UNREACHABLE):
                self.health.count('recalls_fleet_unanswered')
            self.health.faults.succeeded('recall')
            response.message += self.health.storage_note(self.ingest_queue)
        except QueryError as exc:
            self.health.count('recall_errors')
            response.status = int(exc.status)
            response.message = str(exc)
        except Exception as exc:  # a planner must get an answer, never a dead service
            self.health.count('recall_errors')
            response.status = int(RecallStatus.INTERNAL_ERROR)
            response.message = (self.health.failed('recall', exc)
                                + self.health.storage_note(self.ingest_queue))
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
            response.status = Consolidate.Response.STATUS_INTERNAL_ERROR
            response.message = (self.health.failed('consolidate', exc)
                                + self.health.storage_note(self.ingest_queue))
            return response
        self.health.faults.succeeded('consolidate')
        self._consolidated(report, request.dry_run)
        conversions.fill_consolidate_response(report, response)
        response.message += self.health.storage_note(self.ingest_queue)
        return response

    def consolidation_timer_callback(self) -> None:
        try:
            report = self.store.consolidate(requester=self.get_fully_qualified_name())
        except Exception as exc:    # the next period tries again
            self.health.failed('consolidate', exc)
            return
        self.health.faults.succeeded('consolidate')
        self._consolidated(report, False)

    def _consolidated(self, report, dry_run: bool) -> None:
        self.health.add(consolidations=1, evidence_expired=report.evidence_expired,
                        moved=0 if dry_run else len(report.moved),
                        ended=0 if dry_run else len(report.ended))
        if not dry_run and (report.merged or report.forgotten or report.promoted
                            or report.moved or report.ended):
            self._markers_dirty = True

    def feedback_callback(self, request: Feedback.Request,
                          response: Feedback.Response) -> Feedback.Response:
        self.health.count('feedbacks')
        try:
            engrams = self.store.feedback(conversions.feedback_ids(request), request.helped,
                                          requester=conversions.requester_of(request))
        except Exception as exc:  # a bad request gets a status, never a dead service
            self.health.count('feedback_errors')
            return self._feedback_error(request, exc, response)
        self.health.faults.succeeded('feedback')
        return conversions.fill_feedback_response(engrams, response)

    def _feedback_error(self, request: Feedback.Request, exc: Exception,
                        response: Feedback.Response) -> Feedback.Response:
        if not isinstance(exc, FeedbackError):
            response = conversions.feedback_error_response(exc, response)
            response.message = self.health.failed('feedback', exc)
            return response
        if len(request.ids) <= MAX_REQUEST_ITEMS:
            try:
                ids, _ = conversions.engram_ids(request.ids)
                known = {e.id for e in self.store.get(ids)}
                response.unknown_ids = [int(i) for i in request.ids if int(i) not in known]
            except Exception as failure:
                self.health.failed('feedback', failure)
        return conversions.feedback_error_response(exc, response)

    def places_callback(self, request: GetPlaces.Request,
                        response: GetPlaces.Response) -> GetPlaces.Response:
        self.health.count('place_queries')
        try:
            graph = self.store.place_graph(requester=conversions.requester_of(request))
            objects = (sorted(self.store.get(sorted(graph.anchors)), key=lambda e: e.id)
                       if request.include_objects else [])
            return conversions.fill_places_response(graph, objects, response)
        except Exception as exc:
            response.status = GetPlaces.Response.STATUS_INTERNAL_ERROR
            response.message = self.health.failed('places', exc)
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
            self.health.count('corrections_rejected')
            self.get_logger().warning(f'pose correction rejected, nothing changed: {exc}',
                                      throttle_duration_sec=2.0)
            return
        except Exception as exc:
            self.health.count('corrections_rejected')
            self.health.failed('correct', exc)
            return
        self.health.count('corrections')
        self._markers_dirty = True
        self.get_logger().info(f'pose correction: moved {len(report.places)} places and '
                               f'{len(report.anchored)} anchored engrams')

    def list_callback(self, request: ListEngrams.Request,
                      response: ListEngrams.Response) -> ListEngrams.Response:
        self.health.count('lists')
        try:
            result = self.store.list_engrams(conversions.engram_filter_from_request(request),
                                             offset=request.offset, limit=request.limit,
                                             requester=conversions.requester_of(request))
            return conversions.fill_list_response(result, response, request.include_vectors)
        except Exception as exc:  # a bad request gets a status, never a dead service
            return self._governance_error('list', exc, response)

    def get_callback(self, request: GetEngrams.Request,
                     response: GetEngrams.Response) -> GetEngrams.Response:
        self.health.count('gets')
        if not 1 <= len(request.ids) <= MAX_LIMIT:
            return self._governance_error('get', GovernanceError(
                GovernanceStatus.INVALID_PAGE,
                f'{len(request.ids)} ids asked for; accepted: 1..{MAX_LIMIT}'), response)
        try:
            ids, impossible = conversions.engram_ids(request.ids)
            engrams, unknown = self.store.get_engrams(
                ids, requester=conversions.requester_of(request))
            return conversions.fill_get_response(
                engrams, conversions.unknown_in_order(request.ids, unknown + impossible),
                response, request.include_vectors)
        except Exception as exc:
            return self._governance_error('get', exc, response)

    def edit_callback(self, request: EditEngram.Request,
                      response: EditEngram.Response) -> EditEngram.Response:
        self.health.count('edits')
        try:
            engram = self.store.edit(conversions.engram_id(request.id),
                                     requester=conversions.requester_of(request),
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
        self.health.count('forgets')
        try:
            result = self._forget(request)
        except Exception as exc:
            return self._governance_error('forget', exc, response)
        local = result.local if isinstance(result, ForgetHereAndInFleet) else result
        self.health.count('forgotten', 0 if local.dry_run else len(local.forgotten_ids))
        self._markers_dirty = self._markers_dirty or bool(local.forgotten_ids)
        if isinstance(result, ForgetHereAndInFleet):
            if result.fleet_missing:
                self.health.count('fleet_forgets_missed')
            return conversions.fill_fleet_forget_response(result, response)
        return conversions.fill_forget_response(result, response)

    def _forget(self, request: ForgetEngrams.Request) -> ForgetResult | ForgetHereAndInFleet:
        """Forget what the request selects (also in the fleet when ``fleet`` is set); ids no
        engram can have are unknown ids."""
        check_id_count(len(request.ids))
        ids, impossible = conversions.engram_ids(request.ids)
        selection = conversions.engram_filter_from_request(request)
        requester = conversions.requester_of(request)
        if request.fleet:               # here and in the fleet collection (core/fleet/forget.py)
            both = forget_here_and_in_fleet(self.store, self.fleet_link, ids, selection,
                                            dry_run=request.dry_run, requester=requester)
            both.local.unknown_ids = conversions.unknown_in_order(
                request.ids, both.local.unknown_ids + impossible
                + (both.fleet.unknown_ids if both.fleet else []))
            return both
        if impossible and not ids:      # never forget by the filter alone: nothing is named
            result = ForgetResult(unknown_ids=impossible, dry_run=request.dry_run)
            self.store.audit_event('forget', requester, {'dry_run': request.dry_run},
                                   {'ids': [], 'unknown': impossible[:1000]})
            return result
        result = self.store.forget(ids, selection, dry_run=request.dry_run, requester=requester)
        result.unknown_ids = conversions.unknown_in_order(request.ids,
                                                          result.unknown_ids + impossible)
        return result

    def _governance_error(self, what: str, exc: Exception, response):
        """Fill ``status``/``message`` of a governance response from an exception."""
        self.health.count('governance_errors')
        if isinstance(exc, GovernanceError):
            response.status = int(exc.status)
            response.message = str(exc)
        else:
            response.status = int(GovernanceStatus.INTERNAL_ERROR)
            response.message = self.health.failed(what, exc)
        return response

    def marker_callback(self) -> None:
        # Drawing reads up to max_markers records: under a high ingest rate that was a sixth
        # of the node's time with nobody looking. The markers stay due until someone is.
        if not self._markers_dirty or self.marker_pub.get_subscription_count() == 0:
            return
        self._markers_dirty = False
        try:
            markers = engram_markers(
                self.store.storage.iter_all(batch_size=1000), self.store.config.frame_id,
                self.get_clock().now().to_msg(), self.get_parameter('max_markers').value)
        except Exception as exc:
            self._markers_dirty = True
            self.health.failed('markers', exc)
            return
        self.marker_pub.publish(markers)

    def diagnostics_callback(self) -> None:
        queue = self.ingest_queue
        counters = self.health.snapshot(queue)
        counters['moved'] += self.store.misses.moves_at_ingest     # not in any consolidation
        self.diagnostics_pub.publish(memory_diagnostics(
            self.get_clock().now().to_msg(), self.get_fully_qualified_name(), counters,
            len(self.store), self.store.short_term_size, self._last_recall_ms,
            self._semantic_state, self.store.audit, write_queue=len(queue),
            storage_failing=self.health.faults.summary(), publishers=self.intake.loss.publishers,
            loss_counting=self.intake.loss.counting, graph_pending=self.store.graph_pending,
            index_cache=index_cache_state(self.store),
            fleet=None if self.fleet_sync is None else self.fleet_sync.status()))

    def destroy_node(self) -> None:
        self._cleanup()
        super().destroy_node()

    def _close_store(self) -> None:
        """Write what waits (unless storage is failing), close the store (index saved,
        statistics flushed); say what could not be written."""
        intake = getattr(self, 'intake', None)
        if intake is not None:
            lost = intake.flush()
            if lost:
                self.get_logger().error(
                    f'{len(lost)} observations could not be written before shutdown and are '
                    f'lost: {self.health.faults.summary()}')
        self.intake = self.ingest_queue = None
        sync = getattr(self, 'fleet_sync', None)
        if sync is not None:          # before the store closes: the thread reads it
            sync.stop()
            self.fleet_sync = None
        if self.store is not None:    # None: not configured, or refused before opening it
            try:
                self.store.close()
            except Exception as exc:
                self.get_logger().error(f'closing the store failed: {describe(exc)}')
            self.store = None


def main(args: list[str] | None = None) -> int:
    return run_node(MemoryNode, lambda: MultiThreadedExecutor(num_threads=4),
                    logger_name='engram_memory', what='open the memory',
                    startup_errors=(StoreOpenError, EvidenceError, AuditError,
                                    PrivacyConfigError, ValueError), args=args)


if __name__ == '__main__':
    sys.exit(main())
