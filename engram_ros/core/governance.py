"""Governance requests: which engrams a list or forget selects, edits, and their status codes.

People must be able to see, correct and delete what the robot remembers. The contracts of those
requests live here; :class:`engram_ros.core.memory.MemoryStore` carries them out
(:meth:`~engram_ros.core.memory.MemoryStore.list_engrams`, ``edit``, ``forget``) and the
``ListEngrams``/``GetEngrams``/``EditEngram``/``ForgetEngrams`` services mirror the status codes
(``test/core/test_governance.py`` checks that they agree). Nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from enum import IntEnum

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIERS
from engram_ros.core.model.errors import StatusError
from engram_ros.core.model.limits import MAX_LABEL_BYTES
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS
from engram_ros.core.model.limits import MAX_TAG_BYTES
from engram_ros.core.model.limits import oversized_tag
from engram_ros.core.model.limits import utf8_len
from engram_ros.core.request_checks import check_kinds
from engram_ros.core.request_checks import check_region
from engram_ros.core.request_checks import check_time_window
from engram_ros.core.request_checks import RequestRules

#: Largest page a list may ask for.
MAX_LIMIT = 1000
#: Page size when the caller gives none.
DEFAULT_LIMIT = 100


class GovernanceStatus(IntEnum):
    """Outcome of a governance request; the values are the services' ``STATUS_*`` constants."""

    OK = 0
    UNKNOWN_ID = 1
    INVALID_NUMBER = 2
    UNKNOWN_KIND = 3
    INVALID_TAG = 4
    INVALID_RADIUS = 5
    INVALID_TIME_WINDOW = 6
    INVALID_TIER = 7
    INVALID_PAGE = 8
    EMPTY_SELECTION = 9
    INVALID_EDIT = 10
    UNKNOWN_FRAME = 11
    FLEET_UNAVAILABLE = 12
    INTERNAL_ERROR = 255


class GovernanceError(StatusError, ValueError):
    """A governance request that breaks its contract; ``status`` says how."""

    status: GovernanceStatus


#: How a list or forget refuses a bad region, time window or kind list (its own wording).
GOVERNANCE_RULES = RequestRules(
    error=GovernanceError, invalid_number=GovernanceStatus.INVALID_NUMBER,
    invalid_radius=GovernanceStatus.INVALID_RADIUS, unknown_frame=GovernanceStatus.UNKNOWN_FRAME,
    invalid_time_window=GovernanceStatus.INVALID_TIME_WINDOW,
    unknown_kind=GovernanceStatus.UNKNOWN_KIND, time_names=('start', 'end'),
    radius_accepted='0 (no region) or a distance in metres',
    centre_accepted='three finite coordinates [m]', frame_phrase='the memory frame is',
    window_accepted='end >= start or an open side')


@dataclass
class EngramFilter:
    """Which engrams a list or forget selects; unset parts do not filter.

    Tags: all of ``tags_all``, one of ``tags_any``, none of ``tags_none``. ``radius > 0`` keeps
    engrams within ``radius`` metres of ``center`` (memory frame). The time window keeps engrams
    whose ``[first_seen, last_seen]`` overlaps ``[t_start, t_end]`` (epoch seconds; ``None``
    leaves a side open). ``tier`` is ``''`` (any), ``'short'`` or ``'long'``; ``pinned`` is
    ``None`` (any), ``True`` or ``False``.
    """

    kinds: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    center: np.ndarray | None = None
    radius: float = 0.0
    frame_id: str = ''
    t_start: float | None = None
    t_end: float | None = None
    tier: str = ''
    pinned: bool | None = None

    def is_empty(self) -> bool:
        return not (self.kinds or self.tags_all or self.tags_any or self.tags_none
                    or self.radius > 0.0 or self.t_start is not None or self.t_end is not None
                    or self.tier or self.pinned is not None)

    def normalized(self, frame_id: str) -> 'EngramFilter':
        """A checked copy with canonical tags.

        :param frame_id: the memory frame a centre must be in (``''`` in the request = it).
        :raises GovernanceError: naming the first problem and what is accepted.
        """
        check_tag_sizes(self.tags_all + self.tags_any + self.tags_none, 'the filter')
        if len(self.kinds) > MAX_REQUEST_ITEMS:
            raise GovernanceError(GovernanceStatus.UNKNOWN_KIND,
                                  f'{len(self.kinds)} kinds; accepted: at most '
                                  f'{MAX_REQUEST_ITEMS} (MAX_REQUEST_ITEMS)')
        check_kinds(self.kinds, GOVERNANCE_RULES)
        try:
            tags = [sketch.normalize_tags(t) for t in (self.tags_all, self.tags_any,
                                                       self.tags_none)]
        except ValueError as exc:
            raise GovernanceError(GovernanceStatus.INVALID_TAG, str(exc)) from None
        center = check_region(self.center, self.radius, self.frame_id, frame_id,
                              GOVERNANCE_RULES)
        check_time_window(self.t_start, self.t_end, GOVERNANCE_RULES)
        if self.tier not in ('',) + TIERS:
            raise GovernanceError(GovernanceStatus.INVALID_TIER,
                                  f'unknown tier {self.tier!r}; accepted: "" (any), '
                                  f'{", ".join(TIERS)}')
        return EngramFilter(tuple(self.kinds), tags[0], tags[1], tags[2], center, self.radius,
                            frame_id, self.t_start, self.t_end, self.tier, self.pinned)

    def summary(self) -> dict:
        """The filter for the audit log: numbers as they are, tags left to the caller."""
        out: dict = {}
        if self.kinds:
            out['kinds'] = list(self.kinds)
        if self.radius > 0.0 and self.center is not None:
            out['center'] = [round(float(c), 3) for c in self.center]
            out['radius'] = self.radius
        if self.t_start is not None:
            out['start'] = self.t_start
        if self.t_end is not None:
            out['end'] = self.t_end
        if self.tier:
            out['tier'] = self.tier
        if self.pinned is not None:
            out['pinned'] = self.pinned
        return out


def check_tag_sizes(tags: tuple[str, ...] | list[str], where: str) -> None:
    """:raises GovernanceError: ``INVALID_TAG`` for more than :data:`MAX_REQUEST_ITEMS` tags or
        a tag longer than :data:`MAX_TAG_BYTES` (``where`` names the request part)."""
    if len(tags) > MAX_REQUEST_ITEMS:
        raise GovernanceError(GovernanceStatus.INVALID_TAG,
                              f'{len(tags)} tags in {where}; accepted: at most '
                              f'{MAX_REQUEST_ITEMS} (MAX_REQUEST_ITEMS)')
    long_tag = oversized_tag(tags)
    if long_tag is not None:
        raise GovernanceError(GovernanceStatus.INVALID_TAG,
                              f'tag {long_tag!r} in {where} is too long; accepted: at most '
                              f'{MAX_TAG_BYTES} bytes (MAX_TAG_BYTES)')


def check_edit_sizes(add_tags: tuple[str, ...] | list[str],
                     remove_tags: tuple[str, ...] | list[str], label: str | None) -> None:
    """The size limits of an edit.

    :raises GovernanceError: ``INVALID_TAG`` past a tag limit, ``INVALID_EDIT`` for a label
        longer than :data:`MAX_LABEL_BYTES`.
    """
    check_tag_sizes(tuple(add_tags) + tuple(remove_tags), 'add_tags and remove_tags')
    if label is not None and utf8_len(label) > MAX_LABEL_BYTES:
        raise GovernanceError(GovernanceStatus.INVALID_EDIT,
                              f'label of {utf8_len(label)} bytes; accepted: at most '
                              f'{MAX_LABEL_BYTES} bytes (MAX_LABEL_BYTES)')


def check_id_count(count: int) -> None:
    """:raises GovernanceError: ``INVALID_PAGE`` for more than :data:`MAX_REQUEST_ITEMS` ids."""
    if count > MAX_REQUEST_ITEMS:
        raise GovernanceError(GovernanceStatus.INVALID_PAGE,
                              f'{count} ids; accepted: at most {MAX_REQUEST_ITEMS} per request '
                              '(MAX_REQUEST_ITEMS)')


def check_page(offset: int, limit: int) -> int:
    """The page size to use (``limit == 0`` means :data:`DEFAULT_LIMIT`).

    :raises GovernanceError: for a negative offset or a limit above :data:`MAX_LIMIT`.
    """
    if offset < 0 or limit < 0:
        raise GovernanceError(GovernanceStatus.INVALID_PAGE,
                              f'offset={offset}, limit={limit}; accepted: offset >= 0, '
                              f'0 <= limit <= {MAX_LIMIT}')
    if limit > MAX_LIMIT:
        raise GovernanceError(GovernanceStatus.INVALID_PAGE,
                              f'limit={limit} is above {MAX_LIMIT}; page through with offset')
    return limit or DEFAULT_LIMIT


@dataclass
class ListResult:
    """One page of engrams (by increasing id) and how many match in all."""

    engrams: list[Engram] = field(default_factory=list)
    total: int = 0
    offset: int = 0


@dataclass
class ForgetResult:
    """What a forget removed (or, for a dry run, would remove)."""

    forgotten_ids: list[int] = field(default_factory=list)
    unknown_ids: list[int] = field(default_factory=list)
    evidence_files: int = 0
    dry_run: bool = False

    @property
    def status(self) -> GovernanceStatus:
        return GovernanceStatus.UNKNOWN_ID if self.unknown_ids else GovernanceStatus.OK

    @property
    def message(self) -> str:
        verb = 'would forget' if self.dry_run else 'forgot'
        text = f'{verb} {len(self.forgotten_ids)} engrams'
        if self.unknown_ids:
            text += (f'; unknown id(s) {", ".join(map(str, self.unknown_ids[:20]))}'
                     f'{" ..." if len(self.unknown_ids) > 20 else ""}: not in the memory')
        return text


__all__ = ['DEFAULT_LIMIT', 'EngramFilter', 'ForgetResult', 'GovernanceError',
           'GovernanceStatus', 'ListResult', 'MAX_LIMIT', 'check_edit_sizes', 'check_id_count',
           'check_page', 'check_tag_sizes']
