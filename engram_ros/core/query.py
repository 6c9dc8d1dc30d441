"""Recall queries: what a planner may ask, how a request is validated, what comes back.

Status codes are defined here once; ``srv/Recall.srv`` mirrors them as named constants and
``test/core/test_query.py`` checks that the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from enum import IntEnum
from typing import Sequence

import numpy as np

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.errors import StatusError
from engram_ros.core.model.limits import MAX_QUERY_TEXT_BYTES
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS
from engram_ros.core.model.limits import MAX_TAG_BYTES
from engram_ros.core.model.limits import oversized_tag
from engram_ros.core.model.limits import utf8_len
from engram_ros.core.request_checks import check_kinds
from engram_ros.core.request_checks import check_region
from engram_ros.core.request_checks import check_times_finite
from engram_ros.core.request_checks import check_window_order
from engram_ros.core.request_checks import RequestRules
from engram_ros.core.validity import check_time


class RecallStatus(IntEnum):
    """Outcome of a recall; the values are the ``Recall.srv`` ``STATUS_*`` constants."""

    OK = 0
    INVALID_K = 1
    INVALID_NUMBER = 2
    DIMENSION_MISMATCH = 3
    EMPTY_QUERY = 4
    UNKNOWN_KIND = 5
    INVALID_TIME_WINDOW = 6
    INVALID_RADIUS = 7
    UNKNOWN_FRAME = 8
    INVALID_SCORE = 9
    INVALID_TAG = 10
    INVALID_SCOPE = 11
    INTERNAL_ERROR = 255


class RecallScope(IntEnum):
    """Whose memory a recall searches; the values are the ``Recall.srv`` ``SCOPE_*``."""

    ROBOT = 0       # this robot's memory only (the default)
    ROBOTS = 1      # the robots named in ``robots`` (this one included when named)
    FLEET = 2       # every robot of the fleet


class FleetAnswer(IntEnum):
    """Whether the fleet answered a recall; the values are the ``Recall.srv`` ``FLEET_*``."""

    NOT_ASKED = 0       # the scope needed no other robot
    ANSWERED = 1        # the fleet was searched: the answer covers the scope
    NOT_CONFIGURED = 2  # this memory has no fleet: the answer is this robot's alone
    UNREACHABLE = 3     # the fleet did not answer: this robot's answer alone (retry later)


class QueryError(StatusError, ValueError):
    """A recall request that cannot be answered; carries the status code for the caller."""

    status: RecallStatus


#: How a recall refuses a bad region, time window or kind list (the shared checks' defaults).
RECALL_RULES = RequestRules(
    error=QueryError, invalid_number=RecallStatus.INVALID_NUMBER,
    invalid_radius=RecallStatus.INVALID_RADIUS, unknown_frame=RecallStatus.UNKNOWN_FRAME,
    invalid_time_window=RecallStatus.INVALID_TIME_WINDOW, unknown_kind=RecallStatus.UNKNOWN_KIND)


@dataclass
class RecallQuery:
    """A two-stage recall request: symbolic/space/time filter, then dense ranking.

    Unset parts do not filter: ``radius == 0`` means no spatial filter, ``t_start``/``t_end``
    of ``None`` leave that side of the window open, empty ``kinds`` accepts every kind.
    Times are seconds since the Unix epoch and select engrams whose [first_seen, last_seen]
    interval overlaps the window. Positions are metres in ``frame_id``.

    Temporal validity (:mod:`engram_ros.core.validity`): by default only current beliefs are
    answered. ``at_time`` answers the beliefs that were current then ("where was X at T");
    ``changed_since`` answers the beliefs that began or ended since then, history included
    ("what changed since T"). Both may be combined.
    """

    text: str = ''
    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    vector: np.ndarray | None = None
    center: np.ndarray | None = None
    radius: float = 0.0
    frame_id: str = ''
    t_start: float | None = None
    t_end: float | None = None
    kinds: tuple[str, ...] = ()
    k: int = 10
    min_score: float = 0.0
    at_time: float | None = None
    changed_since: float | None = None
    #: Whose memory to search (:class:`RecallScope`); ``robots`` names them for ``ROBOTS``.
    scope: int = RecallScope.ROBOT
    robots: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when the request names nothing to look for."""
        return not (self.text.strip() or self.tags_all or self.tags_any or self.tags_none
                    or self.vector is not None or self.radius > 0.0
                    or self.t_start is not None or self.t_end is not None or self.kinds
                    or self.at_time is not None or self.changed_since is not None)

    def validate(self, dim: int, max_k: int, frame_id: str) -> None:
        """Check the request before anything is searched.

        :param dim: the store's context-vector dimension.
        :param max_k: the largest ``k`` the memory serves.
        :param frame_id: the memory frame spatial queries must be expressed in.
        :raises QueryError: with the status code and a message saying what is accepted.
        """
        self._check_sizes()
        self._check_scope()
        if not 1 <= self.k <= max_k:
            raise QueryError(RecallStatus.INVALID_K,
                             f'k={self.k} is out of range; accepted: 1..{max_k}')
        if not math.isfinite(self.min_score) or not 0.0 <= self.min_score <= 1.0:
            raise QueryError(RecallStatus.INVALID_SCORE,
                             f'min_score={self.min_score} is out of range; accepted: 0..1')
        if self.vector is not None:
            vec = np.asarray(self.vector, dtype=np.float64).reshape(-1)
            if vec.shape[0] != dim:
                raise QueryError(RecallStatus.DIMENSION_MISMATCH,
                                 f'query vector has {vec.shape[0]} values; the memory uses {dim}')
            if not np.all(np.isfinite(vec)):
                raise QueryError(RecallStatus.INVALID_NUMBER,
                                 'query vector contains NaN or inf; accepted: finite values')
            if not float(np.linalg.norm(vec)) > 0.0:
                raise QueryError(RecallStatus.INVALID_NUMBER,
                                 'query vector is all zeros; give a non-zero vector or none')
        check_region(self.center, self.radius, self.frame_id, frame_id, RECALL_RULES)
        check_times_finite(self.t_start, self.t_end, RECALL_RULES)
        for name, t in (('at_time', self.at_time), ('changed_since', self.changed_since)):
            problem = check_time(name, t)
            if problem:
                raise QueryError(RecallStatus.INVALID_NUMBER, problem)
        check_window_order(self.t_start, self.t_end, RECALL_RULES)
        check_kinds(self.kinds, RECALL_RULES)
        if self.is_empty():
            raise QueryError(RecallStatus.EMPTY_QUERY,
                             'empty query: give text, tags, a vector, a centre with radius, '
                             'a time window, kinds, at_time or changed_since')


    def _check_scope(self) -> None:
        """:raises QueryError: (``INVALID_SCOPE``) for an unknown scope, robots named with
        another scope than ``ROBOTS`` or none named with it, or a robot id that is empty or
        too long."""
        names = ', '.join(f'{s.value} ({s.name})' for s in RecallScope)
        if self.scope not in tuple(RecallScope):
            raise QueryError(RecallStatus.INVALID_SCOPE,
                             f'scope={self.scope} is unknown; accepted: {names}')
        if self.scope == RecallScope.ROBOTS and not self.robots:
            raise QueryError(RecallStatus.INVALID_SCOPE,
                             'scope ROBOTS names no robot; give robots, or another scope')
        if self.scope != RecallScope.ROBOTS and self.robots:
            raise QueryError(RecallStatus.INVALID_SCOPE,
                             f'robots are named but scope is {RecallScope(self.scope).name}; '
                             'robots go with scope ROBOTS (1)')
        if len(self.robots) > MAX_REQUEST_ITEMS:
            raise QueryError(RecallStatus.INVALID_SCOPE,
                             f'{len(self.robots)} robots; accepted: at most '
                             f'{MAX_REQUEST_ITEMS} (MAX_REQUEST_ITEMS)')
        for robot in self.robots:
            if not robot.strip() or utf8_len(robot) > MAX_TAG_BYTES:
                raise QueryError(RecallStatus.INVALID_SCOPE,
                                 f'robot id {robot!r}; accepted: a non-empty id of at most '
                                 f'{MAX_TAG_BYTES} bytes')

    def _check_sizes(self) -> None:
        """:raises QueryError: past a limit of :mod:`engram_ros.core.model.limits`."""
        if utf8_len(self.text) > MAX_QUERY_TEXT_BYTES:
            raise QueryError(RecallStatus.INVALID_TAG,
                             f'text of {utf8_len(self.text)} bytes; accepted: at most '
                             f'{MAX_QUERY_TEXT_BYTES} bytes (MAX_QUERY_TEXT_BYTES)')
        tags = len(self.tags_all) + len(self.tags_any) + len(self.tags_none)
        if tags > MAX_REQUEST_ITEMS:
            raise QueryError(RecallStatus.INVALID_TAG,
                             f'{tags} tags; accepted: at most {MAX_REQUEST_ITEMS} in '
                             'tags_all, tags_any and tags_none together (MAX_REQUEST_ITEMS)')
        long_tag = oversized_tag(self.tags_all + self.tags_any + self.tags_none)
        if long_tag is not None:
            raise QueryError(RecallStatus.INVALID_TAG,
                             f'tag {long_tag!r} is too long; accepted: at most '
                             f'{MAX_TAG_BYTES} bytes (MAX_TAG_BYTES)')
        if len(self.kinds) > MAX_REQUEST_ITEMS:
            raise QueryError(RecallStatus.UNKNOWN_KIND,
                             f'{len(self.kinds)} kinds; accepted: at most {MAX_REQUEST_ITEMS} '
                             '(MAX_REQUEST_ITEMS)')


@dataclass
class RecallHit:
    """One ranked answer with the per-stage scores that explain its rank (each in [0, 1])."""

    engram: Engram
    score: float
    symbolic: float
    dense: float
    spatial: float
    temporal: float
    #: Evidence behind the engram: ``1 - exp(-observation_count / support_scale)``.
    support: float
    #: The robot that saw it (whose memory it comes from; its evidence files are there).
    robot: str = ''


@dataclass
class RecallResult:
    """A recall's answer: hits best first, and how many engrams passed the filter stage (and,
    in a fleet scope, how many the fleet gave to rank)."""

    hits: list[RecallHit] = field(default_factory=list)
    candidates: int = 0
    status: RecallStatus = RecallStatus.OK
    message: str = ''
    #: Whether the fleet answered (:class:`FleetAnswer`); the message says why not.
    fleet: FleetAnswer = FleetAnswer.NOT_ASKED

    @property
    def ids(self) -> list[int]:
        return [hit.engram.id for hit in self.hits]


def as_tags(values: Sequence[str]) -> tuple[str, ...]:
    """Strip and drop empty entries, keep order (helper for message conversions)."""
    return tuple(v.strip() for v in values if v.strip())
