"""Tests of engram_ros.core.query: RecallQuery validation, status codes, and Recall.srv sync."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core import query as query_module
from engram_ros.core.model.engram import KINDS
from engram_ros.core.query import as_tags
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallResult
from engram_ros.core.query import RecallScope
from engram_ros.core.query import RecallStatus

DIM = 8
MAX_K = 50
FRAME = 'map'
REPO_ROOT = Path(query_module.__file__).resolve().parents[2]
RECALL_SRV = REPO_ROOT / 'srv' / 'Recall.srv'

S = RecallStatus


def unit(i: int = 0) -> np.ndarray:
    v = np.zeros(DIM)
    v[i] = 1.0
    return v


def with_value(i: int, value: float) -> np.ndarray:
    v = unit(0)
    v[i] = value
    return v


CENTRE = np.array([1.0, 2.0, 0.0])

# (case id, query, expected status, regex the message must match: it names what is accepted)
BAD_QUERIES = [
    ('k_zero', RecallQuery(text='mug', k=0), S.INVALID_K, rf'1\.\.{MAX_K}'),
    ('k_negative', RecallQuery(text='mug', k=-3), S.INVALID_K, rf'1\.\.{MAX_K}'),
    ('k_above_max', RecallQuery(text='mug', k=MAX_K + 1), S.INVALID_K, rf'1\.\.{MAX_K}'),
    ('vector_nan', RecallQuery(vector=with_value(3, math.nan)), S.INVALID_NUMBER, r'finite'),
    ('vector_inf', RecallQuery(vector=with_value(3, math.inf)), S.INVALID_NUMBER, r'finite'),
    ('vector_neg_inf', RecallQuery(vector=with_value(0, -math.inf)), S.INVALID_NUMBER,
     r'finite'),
    ('centre_nan', RecallQuery(center=np.array([0.0, math.nan, 0.0]), radius=1.0),
     S.INVALID_NUMBER, r'three finite coordinates'),
    ('centre_inf', RecallQuery(center=np.array([math.inf, 0.0, 0.0]), radius=1.0),
     S.INVALID_NUMBER, r'three finite coordinates'),
    ('centre_two_values', RecallQuery(center=np.array([0.0, 0.0]), radius=1.0),
     S.INVALID_NUMBER, r'three finite coordinates'),
    ('t_start_nan', RecallQuery(t_start=math.nan), S.INVALID_NUMBER, r't_start.*finite'),
    ('t_start_inf', RecallQuery(t_start=math.inf), S.INVALID_NUMBER, r't_start.*finite'),
    ('t_end_nan', RecallQuery(t_end=math.nan), S.INVALID_NUMBER, r't_end.*finite'),
    ('t_end_neg_inf', RecallQuery(t_start=0.0, t_end=-math.inf), S.INVALID_NUMBER,
     r't_end.*finite'),
    ('radius_nan', RecallQuery(center=CENTRE, radius=math.nan), S.INVALID_NUMBER,
     r'radius.*finite'),
    ('radius_inf', RecallQuery(center=CENTRE, radius=math.inf), S.INVALID_NUMBER,
     r'radius.*finite'),
    ('vector_too_short', RecallQuery(vector=np.ones(DIM - 1)), S.DIMENSION_MISMATCH,
     rf'\b{DIM}\b'),
    ('vector_too_long', RecallQuery(vector=np.ones(DIM + 5)), S.DIMENSION_MISMATCH,
     rf'\b{DIM}\b'),
    ('vector_empty', RecallQuery(vector=np.zeros(0)), S.DIMENSION_MISMATCH, rf'\b{DIM}\b'),
    ('vector_zero', RecallQuery(vector=np.zeros(DIM)), S.INVALID_NUMBER, r'non-zero'),
    ('empty', RecallQuery(), S.EMPTY_QUERY, r'give text, tags, a vector'),
    ('blank_text', RecallQuery(text='   \t'), S.EMPTY_QUERY, r'give text, tags, a vector'),
    ('unknown_kind', RecallQuery(kinds=('object', 'furniture')), S.UNKNOWN_KIND,
     r"'furniture'.*accepted: " + ', '.join(KINDS)),
    ('end_before_start', RecallQuery(t_start=200.0, t_end=100.0), S.INVALID_TIME_WINDOW,
     r'accepted: end >= start'),
    ('negative_radius', RecallQuery(text='mug', center=CENTRE, radius=-0.5),
     S.INVALID_RADIUS, r'accepted: 0 .*positive distance'),
    ('radius_without_centre', RecallQuery(text='mug', radius=2.0), S.INVALID_RADIUS,
     r'centre'),
    ('centre_other_frame', RecallQuery(center=CENTRE, radius=1.0, frame_id='odom'),
     S.UNKNOWN_FRAME, r"'odom'.*'map'"),
    ('min_score_negative', RecallQuery(text='mug', min_score=-0.1), S.INVALID_SCORE,
     r'accepted: 0\.\.1'),
    ('min_score_above_one', RecallQuery(text='mug', min_score=1.01), S.INVALID_SCORE,
     r'accepted: 0\.\.1'),
    ('min_score_nan', RecallQuery(text='mug', min_score=math.nan), S.INVALID_SCORE,
     r'accepted: 0\.\.1'),
]


def _bad_query_params() -> list:
    return [pytest.param(query, status, pattern, id=case)
            for case, query, status, pattern in BAD_QUERIES]


@pytest.mark.parametrize('query, status, pattern', _bad_query_params())
def test_bad_query_gives_status(query: RecallQuery, status: RecallStatus, pattern: str) -> None:
    with pytest.raises(QueryError) as info:
        query.validate(DIM, MAX_K, FRAME)
    assert info.value.status is status
    assert isinstance(info.value, ValueError)
    assert str(info.value)


@pytest.mark.parametrize('query, status, pattern', _bad_query_params())
def test_bad_query_message_names_what_is_accepted(query: RecallQuery, status: RecallStatus,
                                                  pattern: str) -> None:
    with pytest.raises(QueryError) as info:
        query.validate(DIM, MAX_K, FRAME)
    assert re.search(pattern, str(info.value)), str(info.value)


@pytest.mark.parametrize('query', [
    pytest.param(RecallQuery(text='red mug'), id='text'),
    pytest.param(RecallQuery(tags_all=('label:mug',)), id='tags_all'),
    pytest.param(RecallQuery(tags_any=('label:mug',)), id='tags_any'),
    pytest.param(RecallQuery(tags_none=('label:mug',)), id='tags_none'),
    pytest.param(RecallQuery(vector=unit(2)), id='vector'),
    pytest.param(RecallQuery(vector=list(unit(2))), id='vector_list'),
    pytest.param(RecallQuery(center=CENTRE, radius=1.0), id='radius_no_frame'),
    pytest.param(RecallQuery(center=CENTRE, radius=1.0, frame_id=FRAME), id='radius_map'),
    pytest.param(RecallQuery(text='mug', center=CENTRE, radius=0.0, frame_id='odom'),
                 id='centre_ignored_without_radius'),
    pytest.param(RecallQuery(t_start=10.0), id='t_start'),
    pytest.param(RecallQuery(t_end=10.0), id='t_end'),
    pytest.param(RecallQuery(t_start=10.0, t_end=10.0), id='instant_window'),
    pytest.param(RecallQuery(kinds=KINDS), id='all_kinds'),
    pytest.param(RecallQuery(text='mug', k=1), id='k_one'),
    pytest.param(RecallQuery(text='mug', k=MAX_K), id='k_max'),
    pytest.param(RecallQuery(text='mug', min_score=0.0), id='min_score_0'),
    pytest.param(RecallQuery(text='mug', min_score=1.0), id='min_score_1'),
])
def test_valid_query_passes(query: RecallQuery) -> None:
    query.validate(DIM, MAX_K, FRAME)


def test_is_empty() -> None:
    assert RecallQuery().is_empty()
    assert RecallQuery(text='  ').is_empty()
    assert RecallQuery(k=3, min_score=0.5).is_empty()
    assert not RecallQuery(text='mug').is_empty()
    assert not RecallQuery(center=CENTRE, radius=1.0).is_empty()
    # A centre without a radius filters nothing.
    assert RecallQuery(center=CENTRE).is_empty()


def _srv_status_constants(text: str) -> dict[str, int]:
    response = text.split('\n---\n', 1)[1]
    found = re.findall(r'^\s*uint8\s+STATUS_([A-Z0-9_]+)\s*=\s*(\d+)\b', response, re.MULTILINE)
    constants = {name: int(value) for name, value in found}
    assert len(constants) == len(found), 'duplicate STATUS_* constant in Recall.srv'
    return constants


def test_recall_status_matches_srv() -> None:
    constants = _srv_status_constants(RECALL_SRV.read_text(encoding='utf-8'))
    assert constants, f'no STATUS_* constants found in {RECALL_SRV}'
    assert constants == {status.name: int(status.value) for status in RecallStatus}


@pytest.mark.parametrize('prefix,part,enum', [('SCOPE', 0, RecallScope),
                                              ('FLEET', 1, FleetAnswer)])
def test_scope_and_fleet_answers_match_srv(prefix: str, part: int, enum: type) -> None:
    text = RECALL_SRV.read_text(encoding='utf-8').split('\n---\n', 1)[part]
    found = re.findall(rf'^\s*uint8\s+{prefix}_([A-Z0-9_]+)\s*=\s*(\d+)\b', text, re.MULTILINE)
    assert {name: int(value) for name, value in found} == {e.name: int(e.value) for e in enum}


def test_srv_status_values_fit_uint8_and_are_unique() -> None:
    values = [int(s) for s in RecallStatus]
    assert len(set(values)) == len(values)
    assert all(0 <= v <= 255 for v in values)


def test_result_defaults_and_ids() -> None:
    result = RecallResult()
    assert result.status is RecallStatus.OK
    assert result.hits == [] and result.ids == [] and result.candidates == 0


def test_as_tags_strips_and_drops_empty() -> None:
    assert as_tags([' label:mug ', '', '  ', 'color:red']) == ('label:mug', 'color:red')
