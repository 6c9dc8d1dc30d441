"""The shared region / time window / kinds checks, in the wording of each request family.

The expected messages are the ones RecallQuery.validate and EngramFilter.normalized gave before
the checks were shared: a service's message text does not change with the refactor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.model.engram import KINDS
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallStatus
from engram_ros.core.request_checks import check_kinds
from engram_ros.core.request_checks import check_region
from engram_ros.core.request_checks import check_time_window
from engram_ros.core.request_checks import RequestRules

ACCEPTED_KINDS = ', '.join(KINDS)

RECALL_CASES = [
    (dict(radius=math.inf), RecallStatus.INVALID_NUMBER, 'radius=inf is not finite'),
    (dict(radius=-1.0), RecallStatus.INVALID_RADIUS,
     'radius=-1.0 is negative; accepted: 0 (no spatial filter) or a positive distance in metres'),
    (dict(radius=1.0), RecallStatus.INVALID_RADIUS, 'a radius was given without a centre'),
    (dict(radius=1.0, center=np.array([0.0, math.nan, 0.0])), RecallStatus.INVALID_NUMBER,
     'centre must be three finite coordinates (x, y, z in metres)'),
    (dict(radius=1.0, center=np.zeros(3), frame_id='odom'), RecallStatus.UNKNOWN_FRAME,
     "centre is in frame 'odom'; the memory answers in 'map'"),
    (dict(t_start=math.nan), RecallStatus.INVALID_NUMBER, 't_start is not finite'),
    (dict(t_end=-math.inf), RecallStatus.INVALID_NUMBER, 't_end is not finite'),
    (dict(t_start=20.0, t_end=10.0), RecallStatus.INVALID_TIME_WINDOW,
     'time window ends (10.0) before it starts (20.0); accepted: end >= start, or either side '
     'left open (0)'),
    (dict(kinds=('object', 'ghost', 'ufo')), RecallStatus.UNKNOWN_KIND,
     f"unknown kind(s) 'ghost', 'ufo'; accepted: {ACCEPTED_KINDS}"),
]

GOVERNANCE_CASES = [
    (dict(radius=math.inf), GovernanceStatus.INVALID_NUMBER, 'radius=inf is not finite'),
    (dict(radius=-1.0), GovernanceStatus.INVALID_RADIUS,
     'radius=-1.0 is negative; accepted: 0 (no region) or a distance in metres'),
    (dict(radius=1.0), GovernanceStatus.INVALID_RADIUS, 'a radius was given without a centre'),
    (dict(radius=1.0, center=np.array([0.0, 0.0])), GovernanceStatus.INVALID_NUMBER,
     'centre must be three finite coordinates [m]'),
    (dict(radius=1.0, center=np.zeros(3), frame_id='odom'), GovernanceStatus.UNKNOWN_FRAME,
     "centre is in frame 'odom'; the memory frame is 'map'"),
    (dict(t_start=math.nan), GovernanceStatus.INVALID_NUMBER, 'start is not finite'),
    (dict(t_end=math.inf), GovernanceStatus.INVALID_NUMBER, 'end is not finite'),
    (dict(t_start=20.0, t_end=10.0), GovernanceStatus.INVALID_TIME_WINDOW,
     'time window ends (10.0) before it starts (20.0); accepted: end >= start or an open side'),
    (dict(kinds=('ghost',)), GovernanceStatus.UNKNOWN_KIND,
     f"unknown kind(s) 'ghost'; accepted: {ACCEPTED_KINDS}"),
]


@pytest.mark.parametrize('fields,status,message', RECALL_CASES)
def test_recall_refusals_keep_their_status_and_message(fields, status, message):
    query = RecallQuery(text='mug', **fields)
    with pytest.raises(QueryError) as info:
        query.validate(dim=4, max_k=10, frame_id='map')
    assert info.value.status == status
    assert str(info.value) == message


@pytest.mark.parametrize('fields,status,message', GOVERNANCE_CASES)
def test_governance_refusals_keep_their_status_and_message(fields, status, message):
    selection = EngramFilter(**fields)
    with pytest.raises(GovernanceError) as info:
        selection.normalized('map')
    assert info.value.status == status
    assert str(info.value) == message


def test_recall_checks_in_its_order():
    # A query with a bad region and a bad kind reports the region; a bad at_time comes before
    # an inverted window, as RecallQuery.validate always did.
    query = RecallQuery(text='mug', radius=-1.0, kinds=('ghost',))
    with pytest.raises(QueryError) as info:
        query.validate(dim=4, max_k=10, frame_id='map')
    assert info.value.status == RecallStatus.INVALID_RADIUS
    query = RecallQuery(text='mug', t_start=20.0, t_end=10.0, at_time=math.nan)
    with pytest.raises(QueryError) as info:
        query.validate(dim=4, max_k=10, frame_id='map')
    assert info.value.status == RecallStatus.INVALID_NUMBER


def test_governance_checks_kinds_first():
    selection = EngramFilter(kinds=('ghost',), radius=-1.0)
    with pytest.raises(GovernanceError) as info:
        selection.normalized('map')
    assert info.value.status == GovernanceStatus.UNKNOWN_KIND


RULES = RequestRules(error=QueryError, invalid_number=RecallStatus.INVALID_NUMBER,
                     invalid_radius=RecallStatus.INVALID_RADIUS,
                     unknown_frame=RecallStatus.UNKNOWN_FRAME,
                     invalid_time_window=RecallStatus.INVALID_TIME_WINDOW,
                     unknown_kind=RecallStatus.UNKNOWN_KIND)


@pytest.mark.parametrize('center,radius,frame_id,expected', [
    (None, 0.0, '', None),
    (np.array([1.0, 2.0, 3.0]), 0.0, 'elsewhere', None),   # no radius: no region to check
    ([1, 2, 3], 0.5, '', [1.0, 2.0, 3.0]),
    (np.array([[1.0], [2.0], [3.0]]), 0.5, 'map', [1.0, 2.0, 3.0]),
])
def test_check_region_returns_the_centre(center, radius, frame_id, expected):
    got = check_region(center, radius, frame_id, 'map', RULES)
    if expected is None:
        assert got is None
    else:
        assert got.dtype == np.float64 and got.tolist() == expected


@pytest.mark.parametrize('t_start,t_end', [(None, None), (5.0, None), (None, 5.0),
                                           (5.0, 5.0), (1.0, 2.0)])
def test_check_time_window_accepts_open_and_ordered_windows(t_start, t_end):
    check_time_window(t_start, t_end, RULES)


def test_check_kinds_accepts_every_known_kind():
    check_kinds(KINDS, RULES)
    check_kinds((), RULES)
