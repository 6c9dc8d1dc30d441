"""The memory's interface: Observation, Engram and KeyframeCorrection messages and the memory's
service requests and responses <-> core objects.

Every function here is a plain translation: no validation beyond what a type conversion needs
(the core validates; a request that breaks its service's contract raises
:class:`RequestError` or the core's error with the status to answer), no state.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import FeedbackStatus
from engram_ros.core.governance import check_edit_sizes
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.governance import ListResult
from engram_ros.core.memory import ConsolidationReport
from engram_ros.core.memory import ConsolidationScope
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.errors import StatusError
from engram_ros.core.model.limits import MAX_ENGRAM_ID
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS
from engram_ros.core.places import PlaceGraph
from engram_ros.core.places import PoseCorrection
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.request_checks import check_region
from engram_ros.core.request_checks import check_window_order
from engram_ros.core.request_checks import RequestRules
from engram_ros.core.visibility import View
from engram_ros.msg import Engram as EngramMsg
from engram_ros.msg import KeyframeCorrection
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.ros.conversions.common import arrays_to_pose
from engram_ros.ros.conversions.common import optional_time
from engram_ros.ros.conversions.common import pose_arrays
from engram_ros.ros.conversions.common import pose_msg
from engram_ros.ros.conversions.common import pose_to_arrays
from engram_ros.ros.conversions.common import seconds_to_time
from engram_ros.ros.conversions.common import set_time
from engram_ros.ros.conversions.common import time_to_seconds
from engram_ros.srv import Consolidate
from engram_ros.srv import EditEngram
from engram_ros.srv import Feedback
from engram_ros.srv import ForgetEngrams
from engram_ros.srv import GetEngrams
from engram_ros.srv import GetPlaces
from engram_ros.srv import ListEngrams
from engram_ros.srv import Recall


def observation_from_msg(msg: ObservationMsg) -> Observation:
    position, orientation, covariance = pose_to_arrays(msg.pose)
    return Observation(
        kind=msg.kind, frame_id=msg.header.frame_id, position=position,
        stamp=time_to_seconds(msg.header.stamp),
        vector=np.asarray(msg.vector, dtype=np.float32), tags=tuple(msg.tags), label=msg.label,
        orientation=orientation, covariance=covariance, modality=msg.modality,
        confidence=float(msg.confidence), evidence=tuple(msg.evidence_uris),
        keyframe_id=msg.keyframe_id, view=view_from_msg(msg.view),
        viewpoint=viewpoint_from_msg(msg.view))


def viewpoint_from_msg(msg) -> np.ndarray | None:
    """Where an object was seen from: ``camera``'s position of a view with no depth and
    ``fx > 0`` (see View.msg); None otherwise."""
    if len(msg.depth) != 0 or not msg.fx > 0.0:
        return None
    position, _ = pose_arrays(msg.camera)
    return position


def view_from_msg(msg) -> View | None:
    """``engram_ros/View`` -> :class:`View`; None for an empty view.

    :raises InvalidObservation: when ``depth`` does not have ``rows x cols`` values.
    """
    if len(msg.depth) == 0:
        return None
    if len(msg.depth) != int(msg.rows) * int(msg.cols):
        raise InvalidObservation(f'view depth has {len(msg.depth)} values; rows x cols = '
                                 f'{msg.rows} x {msg.cols} are required')
    position, orientation = pose_arrays(msg.camera)
    return View(np.asarray(msg.depth, dtype=np.float32).reshape(msg.rows, msg.cols),
                position, orientation, float(msg.fx), float(msg.fy), float(msg.cx),
                float(msg.cy))


def observation_to_msg(obs: Observation) -> ObservationMsg:
    msg = ObservationMsg()
    msg.header.stamp = seconds_to_time(obs.stamp)
    msg.header.frame_id = obs.frame_id
    msg.kind = obs.kind
    msg.label = obs.label
    msg.pose = arrays_to_pose(obs.position, obs.orientation, obs.covariance)
    msg.vector = np.asarray(obs.vector, dtype=np.float32)
    msg.tags = list(obs.tags)
    msg.modality = obs.modality
    msg.confidence = float(obs.confidence)
    msg.evidence_uris = list(obs.evidence)
    msg.keyframe_id = obs.keyframe_id
    if obs.view is not None:
        view = obs.view
        msg.view.rows, msg.view.cols = (int(n) for n in np.asarray(view.depth).shape)
        msg.view.depth = np.asarray(view.depth, dtype=np.float32).reshape(-1)
        msg.view.camera = pose_msg(view.position, view.orientation)
        msg.view.fx, msg.view.fy = float(view.fx), float(view.fy)
        msg.view.cx, msg.view.cy = float(view.cx), float(view.cy)
    elif obs.viewpoint is not None:     # only where it was seen from (see View.msg)
        msg.view.camera = pose_msg(np.asarray(obs.viewpoint, dtype=float),
                                   np.array([0.0, 0.0, 0.0, 1.0]))
        msg.view.fx = msg.view.fy = 1.0
    return msg


def engram_to_msg(engram: Engram, include_vector: bool = True,
                  compact: bool = False) -> EngramMsg:
    """The message of one engram; ``compact`` leaves out the vector, the evidence URIs and the
    pose covariance (``Recall.srv``'s ``compact``).

    Filled in place: the nested pose and stamps a new message already holds are written, not
    replaced by new ones (building messages was the largest part of a recall's cost).
    """
    msg = EngramMsg()
    msg.id = int(engram.id)
    msg.kind = engram.kind
    msg.label = engram.label
    msg.frame_id = engram.frame_id
    pose = msg.pose.pose
    point, quat = pose.position, pose.orientation
    point.x, point.y, point.z = (float(v) for v in engram.position)
    quat.x, quat.y, quat.z, quat.w = (float(v) for v in engram.orientation)
    set_time(msg.first_seen, engram.first_seen)
    set_time(msg.last_seen, engram.last_seen)
    if not compact:
        msg.pose.covariance = np.asarray(engram.covariance, dtype=np.float64).reshape(36)
        msg.evidence_uris = list(engram.evidence)
        if include_vector:
            msg.vector = np.asarray(engram.vector, dtype=np.float32)
    msg.tags = list(engram.tags)
    msg.modality = engram.modality
    msg.confidence = float(engram.confidence)
    msg.observation_count = int(engram.observation_count)
    msg.score = float(engram.score)
    msg.tier = engram.tier
    msg.pinned = bool(engram.pinned)
    set_time(msg.valid_from, engram.valid_from)
    if engram.valid_to is not None:
        set_time(msg.valid_to, engram.valid_to)
    msg.successor_id = int(engram.successor_id)
    msg.anchor_id = int(engram.anchor_id)
    msg.keyframe_id = engram.keyframe_id
    return msg


def engram_from_msg(msg: EngramMsg) -> Engram:
    position, orientation, covariance = pose_to_arrays(msg.pose)
    return Engram(
        id=int(msg.id), kind=msg.kind, frame_id=msg.frame_id, position=position,
        vector=np.asarray(msg.vector, dtype=np.float32),
        first_seen=time_to_seconds(msg.first_seen), last_seen=time_to_seconds(msg.last_seen),
        tags=tuple(msg.tags), label=msg.label, orientation=orientation, covariance=covariance,
        modality=msg.modality, confidence=float(msg.confidence),
        evidence=tuple(msg.evidence_uris), observation_count=int(msg.observation_count),
        score=float(msg.score), tier=msg.tier, pinned=bool(msg.pinned),
        valid_from=time_to_seconds(msg.valid_from), valid_to=optional_time(msg.valid_to),
        successor_id=int(msg.successor_id), anchor_id=int(msg.anchor_id),
        keyframe_id=msg.keyframe_id)


def recall_query_from_request(request: Recall.Request) -> RecallQuery:
    c = request.center.point
    return RecallQuery(
        text=request.text, tags_all=tuple(request.tags_all), tags_any=tuple(request.tags_any),
        tags_none=tuple(request.tags_none),
        vector=(np.asarray(request.query_vector, dtype=np.float32)
                if len(request.query_vector) else None),
        center=np.array([c.x, c.y, c.z], dtype=np.float64), radius=float(request.radius),
        frame_id=request.center.header.frame_id, t_start=optional_time(request.start),
        t_end=optional_time(request.end), kinds=tuple(request.kinds), k=int(request.k),
        min_score=float(request.min_score), at_time=optional_time(request.at_time),
        changed_since=optional_time(request.changed_since), scope=int(request.scope),
        robots=tuple(request.robots))


def fill_recall_response(result: RecallResult, response: Recall.Response,
                         include_vectors: bool = False, compact: bool = False) -> Recall.Response:
    """Fill ``response``; ``compact``: what ``Recall.srv`` says a compact answer leaves out."""
    hits = result.hits
    response.engrams = [engram_to_msg(h.engram, include_vectors, compact) for h in hits]
    # float32[] fields take a numpy array as it is (one conversion, not one per element).
    response.scores = np.array([h.score for h in hits], dtype=np.float32)
    if not compact:
        for name, attr in (('symbolic_scores', 'symbolic'), ('dense_scores', 'dense'),
                           ('spatial_scores', 'spatial'), ('temporal_scores', 'temporal'),
                           ('support_scores', 'support')):
            setattr(response, name, np.array([getattr(h, attr) for h in hits],
                                             dtype=np.float32))
    response.robots = [h.robot for h in hits]
    response.candidates = int(result.candidates)
    response.fleet = int(result.fleet)
    response.status = int(result.status)
    response.message = result.message
    return response


class RequestError(StatusError, ValueError):
    """A request that breaks its service contract; ``status`` is the service's STATUS_* code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


def _consolidate_rules() -> RequestRules:
    """How a Consolidate scope is refused: its codes, in the shared region/window checks."""
    r = Consolidate.Response
    return RequestRules(
        error=RequestError, invalid_number=r.STATUS_INVALID_NUMBER,
        invalid_radius=r.STATUS_INVALID_SCOPE, unknown_frame=r.STATUS_UNKNOWN_FRAME,
        invalid_time_window=r.STATUS_INVALID_TIME_WINDOW, unknown_kind=r.STATUS_INVALID_SCOPE,
        time_names=('start', 'end'), radius_accepted='SCOPE_REGION needs a radius > 0 [m]',
        frame_phrase='the memory frame is',
        window_accepted='end >= start, or either side open (0)')


def consolidation_scope_from_request(request: Consolidate.Request,
                                     frame_id: str) -> ConsolidationScope:
    """Translate and check the scope of a Consolidate request (the region and window checks
    are the recall's, :mod:`engram_ros.core.request_checks`, with Consolidate's codes).

    :param frame_id: the memory frame a region's centre must be in.
    :raises RequestError: with a ``Consolidate.Response.STATUS_*`` code.
    """
    r = Consolidate.Response
    rules = _consolidate_rules()
    if request.scope == Consolidate.Request.SCOPE_ALL:
        return ConsolidationScope()
    if request.scope == Consolidate.Request.SCOPE_REGION:
        c = request.center.point
        center = check_region((c.x, c.y, c.z), request.radius, request.center.header.frame_id,
                              frame_id, rules)
        if center is None:
            raise RequestError(r.STATUS_INVALID_SCOPE,
                               f'radius={request.radius}; SCOPE_REGION needs a radius > 0 [m]')
        return ConsolidationScope(center=center, radius=float(request.radius))
    if request.scope == Consolidate.Request.SCOPE_TIME_WINDOW:
        start, end = optional_time(request.start), optional_time(request.end)
        check_window_order(start, end, rules)
        return ConsolidationScope(t_start=start, t_end=end)
    raise RequestError(r.STATUS_INVALID_SCOPE,
                       f'unknown scope {request.scope}; accepted: 0 (all), 1 (region), '
                       '2 (time window)')


def fill_consolidate_response(report: ConsolidationReport,
                              response: Consolidate.Response) -> Consolidate.Response:
    response.merged = report.merged
    response.forgotten = report.forgotten
    response.promoted = report.promoted
    response.moved = len(report.moved)
    response.ended = len(report.ended)
    response.size_before = report.size_before
    response.size_after = report.size_after
    response.status = Consolidate.Response.STATUS_OK
    verb = 'would' if report.dry_run else 'did'
    response.message = (f'{verb} merge {report.merged}, promote {report.promoted}, '
                        f'forget {report.forgotten}, make {len(report.moved)} moved beliefs '
                        f'history, end {len(report.ended)} beliefs missed where they were')
    return response


# ------------------------------------------------------------------------------- governance

def engram_ids(values: Sequence[int]) -> tuple[list[int], list[int]]:
    """The ``uint64`` ids of a request as engram ids, and those no engram can have.

    Engram ids are SQLite INTEGERs (int64): an id above
    :data:`~engram_ros.core.model.limits.MAX_ENGRAM_ID` is an unknown id, never an error.

    :returns: ``(ids up to MAX_ENGRAM_ID, ids above it)``, each in request order.
    """
    ids = [int(i) for i in values]
    return [i for i in ids if i <= MAX_ENGRAM_ID], [i for i in ids if i > MAX_ENGRAM_ID]


def engram_id(value: int) -> int:
    """One request id as an engram id.

    :raises GovernanceError: ``UNKNOWN_ID`` for an id above ``MAX_ENGRAM_ID`` (no engram has it).
    """
    if int(value) > MAX_ENGRAM_ID:
        raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                              f'no engram with id {int(value)}: engram ids are at most '
                              f'{MAX_ENGRAM_ID}')
    return int(value)


def unknown_in_order(values: Sequence[int], unknown: Sequence[int]) -> list[int]:
    """The ids of ``values`` (a request's, in its order) that are in ``unknown``."""
    wanted = {int(i) for i in unknown}
    return [int(i) for i in values if int(i) in wanted]


def feedback_ids(request: Feedback.Request) -> list[int]:
    """The ids of a Feedback request.

    :raises FeedbackError: ``EMPTY`` for more than ``MAX_REQUEST_ITEMS`` ids (the status of a
        count out of range); ``UNKNOWN_ID`` for an id no engram can have (nothing is changed).
    """
    if len(request.ids) > MAX_REQUEST_ITEMS:
        raise FeedbackError(FeedbackStatus.EMPTY,
                            f'{len(request.ids)} ids; accepted: 1..{MAX_REQUEST_ITEMS} '
                            '(MAX_REQUEST_ITEMS)')
    ids, impossible = engram_ids(request.ids)
    if impossible:
        raise FeedbackError(FeedbackStatus.UNKNOWN_ID,
                            f'unknown engram id(s): {", ".join(map(str, impossible[:20]))}; '
                            'nothing was changed')
    return ids


def requester_of(request) -> str:
    """The ``requester`` field of any request, ``'unknown'`` when empty."""
    return getattr(request, 'requester', '') or 'unknown'


def fill_where(request, kinds: Sequence[str] = (), tags_all: Sequence[str] = (),
               tags_any: Sequence[str] = (), tags_none: Sequence[str] = (),
               center: Sequence[float] | None = None, radius: float = 0.0, frame_id: str = '',
               start: float = 0.0, end: float = 0.0):
    """Fill the fields Recall, ListEngrams and ForgetEngrams share (what, where and when; times
    in seconds since the epoch, 0 = open) and return ``request``."""
    request.kinds = list(kinds)
    request.tags_all = list(tags_all)
    request.tags_any = list(tags_any)
    request.tags_none = list(tags_none)
    if center is not None:
        request.center.point.x, request.center.point.y, request.center.point.z = (
            float(c) for c in center)
    request.center.header.frame_id = frame_id
    request.radius = float(radius)
    request.start = seconds_to_time(start)
    request.end = seconds_to_time(end)
    return request


def engram_filter_from_request(request: ListEngrams.Request | ForgetEngrams.Request
                               ) -> EngramFilter:
    """The filter fields shared by ListEngrams and ForgetEngrams (the core checks them).

    :raises GovernanceError: for a ``pinned`` value that is not a ``PINNED_*`` constant.
    """
    pinned = {0: None, 1: True, 2: False}.get(request.pinned, 'bad')
    if pinned == 'bad':
        raise GovernanceError(GovernanceStatus.INVALID_PAGE,
                              f'pinned={request.pinned}; accepted: 0 (any), 1 (only pinned), '
                              '2 (only unpinned)')
    c = request.center.point
    return EngramFilter(
        kinds=tuple(request.kinds), tags_all=tuple(request.tags_all),
        tags_any=tuple(request.tags_any), tags_none=tuple(request.tags_none),
        center=np.array([c.x, c.y, c.z], dtype=np.float64), radius=float(request.radius),
        frame_id=request.center.header.frame_id, t_start=optional_time(request.start),
        t_end=optional_time(request.end), tier=request.tier, pinned=pinned)


def fill_list_response(result: ListResult, response: ListEngrams.Response,
                       include_vectors: bool = False) -> ListEngrams.Response:
    response.engrams = [engram_to_msg(e, include_vectors) for e in result.engrams]
    response.total = int(result.total)
    response.status = ListEngrams.Response.STATUS_OK
    response.message = (f'{len(result.engrams)} of {result.total} engrams from offset '
                        f'{result.offset}')
    return response


def fill_get_response(engrams: list[Engram], unknown: list[int], response: GetEngrams.Response,
                      include_vectors: bool = False) -> GetEngrams.Response:
    response.engrams = [engram_to_msg(e, include_vectors) for e in engrams]
    response.unknown_ids = [int(i) for i in unknown]
    if unknown:
        response.status = GetEngrams.Response.STATUS_UNKNOWN_ID
        response.message = (f'{len(engrams)} found; unknown id(s): '
                            f'{", ".join(map(str, unknown[:20]))}')
    else:
        response.status = GetEngrams.Response.STATUS_OK
        response.message = f'{len(engrams)} found'
    return response


def edit_from_request(request: EditEngram.Request) -> dict:
    """Keyword arguments of :meth:`MemoryStore.edit` from an EditEngram request.

    :raises GovernanceError: for a ``pin`` value that is not a ``PIN_*`` constant, or past a
        size limit (:func:`~engram_ros.core.governance.check_edit_sizes`).
    """
    pinned = {0: None, 1: True, 2: False}.get(request.pin, 'bad')
    if pinned == 'bad':
        raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                              f'pin={request.pin}; accepted: 0 (keep), 1 (pin), 2 (unpin)')
    check_edit_sizes(request.add_tags, request.remove_tags,
                     request.label if request.set_label else None)
    return {'add_tags': tuple(request.add_tags), 'remove_tags': tuple(request.remove_tags),
            'label': request.label if request.set_label else None, 'pinned': pinned}


def fill_forget_response(result: ForgetResult,
                         response: ForgetEngrams.Response) -> ForgetEngrams.Response:
    response.forgotten = len(result.forgotten_ids)
    response.forgotten_ids = [int(i) for i in result.forgotten_ids]
    response.unknown_ids = [int(i) for i in result.unknown_ids]
    response.evidence_files = int(result.evidence_files)
    response.status = int(result.status)
    response.message = result.message
    return response


def fill_fleet_forget_response(result, response: ForgetEngrams.Response
                               ) -> ForgetEngrams.Response:
    """Fill a ForgetEngrams response from a forget here and in the fleet
    (:class:`~engram_ros.core.fleet.forget.ForgetHereAndInFleet`)."""
    fill_forget_response(result.local, response)
    if result.fleet is not None:
        response.fleet_forgotten_ids = [int(i) for i in (result.fleet.forgotten_ids
                                                         + result.fleet.derived_ids)]
        response.message += f'; fleet: {result.fleet.message}'
    if result.fleet_missing:
        response.status = int(GovernanceStatus.FLEET_UNAVAILABLE)
        response.message += f'; not forgotten in the fleet: {result.fleet_missing}'
    return response


# ------------------------------------------------------------------------------- map memory

def feedback_error_response(exc: Exception, response: Feedback.Response) -> Feedback.Response:
    """Fill a Feedback response from the core's error (an unknown id lists the unknown ids)."""
    if isinstance(exc, FeedbackError):
        response.status = int(exc.status)
        response.message = str(exc)
    else:
        response.status = int(FeedbackStatus.INTERNAL_ERROR)
        response.message = f'internal error: {exc}'
    return response


def fill_feedback_response(engrams: list[Engram],
                           response: Feedback.Response) -> Feedback.Response:
    response.scores = [float(e.score) for e in engrams]
    response.status = int(FeedbackStatus.OK)
    response.message = (f'usefulness of {len(engrams)} engram(s) now '
                        f'{", ".join(f"{e.id}={e.score:.2f}" for e in engrams[:20])}')
    return response


def pose_corrections_from_msg(msg: KeyframeCorrection) -> list[PoseCorrection]:
    """Entries of a KeyframeCorrection (the core validates them).

    :raises ValueError: when ``keyframe_ids`` or ``place_ids`` is neither empty nor as long as
        ``poses``.
    """
    n = len(msg.poses)
    for name in ('keyframe_ids', 'place_ids'):
        if len(getattr(msg, name)) not in (0, n):
            raise ValueError(f'{name} has {len(getattr(msg, name))} entries for {n} poses; '
                             'accepted: none, or one per pose')
    out = []
    for i, pose in enumerate(msg.poses):
        position, orientation = pose_arrays(pose)
        out.append(PoseCorrection(
            position=position, orientation=orientation,
            keyframe_id=msg.keyframe_ids[i] if msg.keyframe_ids else '',
            place_id=int(msg.place_ids[i]) if len(msg.place_ids) else 0))
    return out


def fill_places_response(graph: PlaceGraph, objects: list[Engram],
                         response: GetPlaces.Response) -> GetPlaces.Response:
    response.places = [engram_to_msg(p, include_vector=False) for p in graph.places]
    response.edge_from = [int(e.a) for e in graph.edges]
    response.edge_to = [int(e.b) for e in graph.edges]
    response.edge_traversals = [int(e.traversals) for e in graph.edges]
    response.edge_last_traversed = [seconds_to_time(e.last_traversed) for e in graph.edges]
    response.objects = [engram_to_msg(o, include_vector=False) for o in objects]
    response.object_anchor_ids = [int(graph.anchors.get(o.id, 0)) for o in objects]
    response.status = GetPlaces.Response.STATUS_OK
    response.message = (f'{len(graph.places)} places, {len(graph.edges)} edges, '
                        f'{len(graph.anchors)} anchored engrams')
    return response
