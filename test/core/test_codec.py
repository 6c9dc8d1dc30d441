"""Tests of engram_ros.core.model.codec: every field of every engram survives JSON and SQLite."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engram_ros.core.model.codec import CodecError
from engram_ros.core.model.codec import FIELDS
from engram_ros.core.model.codec import from_record
from engram_ros.core.model.codec import REQUIRED
from engram_ros.core.model.codec import to_record
from engram_ros.core.model.codec import TYPES
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.engram import MODALITIES
from engram_ros.core.model.engram import TIERS
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage.schema import COLUMNS

from test_storage_schema import assert_every_field_equal
from test_storage_schema import fixture_engrams

#: Lines written by ``engram export`` before the codec (``engram_record`` of cli.py, plus the
#: ``evidence_files`` key the export adds), for the engrams of ``fixture_engrams()``.
OLD_EXPORT = Path(__file__).resolve().parents[1] / 'fixtures' / 'storage_export_old.jsonl'
#: Fields the old export did not write.
NOT_IN_OLD_EXPORT = ('valid_from', 'valid_to', 'successor_id', 'anchor_id', 'keyframe_id')

INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
COUNT = st.integers(0, 2 ** 63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=12)


def float64s(size: int) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, size, elements=FINITE)


@st.composite
def engrams(draw: st.DrawFn, dim: int | None = None, engram_id: int | None = None) -> Engram:
    """Any engram the memory can hold: every kind, tier, history, anchors and keyframes."""
    dim = draw(st.integers(1, 12)) if dim is None else dim
    return Engram(
        id=draw(INT64) if engram_id is None else engram_id,
        kind=draw(st.sampled_from(KINDS)), frame_id=draw(TEXT), position=draw(float64s(3)),
        vector=draw(arrays(np.float32, dim, elements=st.floats(
            width=32, allow_nan=False, allow_infinity=False))),
        first_seen=draw(FINITE), last_seen=draw(FINITE),
        tags=tuple(draw(st.lists(TEXT, max_size=4))), label=draw(TEXT),
        orientation=draw(float64s(4)), covariance=draw(float64s(36)),
        modality=draw(st.sampled_from(MODALITIES)), confidence=draw(FINITE),
        evidence=tuple(draw(st.lists(TEXT, max_size=3))), observation_count=draw(COUNT),
        score=draw(FINITE), tier=draw(st.sampled_from(TIERS)), pinned=draw(st.booleans()),
        last_access=draw(FINITE), recall_count=draw(COUNT), valid_from=draw(FINITE),
        valid_to=draw(st.none() | FINITE), successor_id=draw(INT64), anchor_id=draw(INT64),
        keyframe_id=draw(TEXT))


@st.composite
def batches(draw: st.DrawFn) -> list[Engram]:
    """A put batch: up to five engrams with distinct ids and one vector dimension."""
    dim = draw(st.integers(1, 12))
    ids = draw(st.lists(INT64, min_size=1, max_size=5, unique=True))
    return [draw(engrams(dim=dim, engram_id=i)) for i in ids]


def test_fields_are_the_dataclass_fields() -> None:
    assert FIELDS == tuple(f.name for f in dataclasses.fields(Engram))
    assert set(TYPES) == set(FIELDS)
    assert sorted(COLUMNS) == sorted(FIELDS), 'every field has an SQLite column'
    assert REQUIRED == {'id', 'kind', 'frame_id', 'position', 'vector', 'first_seen',
                        'last_seen'}


@settings(max_examples=200)
@given(engrams())
def test_json_round_trip_is_exact(engram: Engram) -> None:
    record = to_record(engram)
    assert list(record) == list(FIELDS)
    text = json.dumps(record, allow_nan=False)        # strict JSON: lists, numbers, null
    assert_every_field_equal(from_record(json.loads(text)), engram)


@settings(max_examples=40)
@given(batches())
def test_sqlite_round_trip_is_exact(batch: list[Engram]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        with SQLiteStorage(Path(directory) / 'store') as backend:
            backend.put(batch)
            got = backend.get([e.id for e in batch])
            assert [e.id for e in backend.iter_all()] == sorted(e.id for e in batch)
    assert len(got) == len(batch)
    for actual, engram in zip(got, batch):
        assert_every_field_equal(actual, engram)


@settings(max_examples=100)
@given(batches())
def test_memory_storage_round_trip_is_exact(batch: list[Engram]) -> None:
    with MemoryStorage() as backend:
        backend.put(batch)
        for actual, engram in zip(backend.get([e.id for e in batch]), batch):
            assert_every_field_equal(actual, engram)


def test_history_and_anchors_survive_a_record() -> None:
    """The fields the old export dropped: a moved object's history and its anchor."""
    engram = dataclasses.replace(fixture_engrams()[3], anchor_id=2, keyframe_id='kf-4')
    assert engram.valid_to is not None and engram.successor_id
    record = json.loads(json.dumps(to_record(engram)))
    assert {name: record[name] for name in NOT_IN_OLD_EXPORT} == {
        'valid_from': engram.valid_from, 'valid_to': engram.valid_to,
        'successor_id': engram.successor_id, 'anchor_id': engram.anchor_id,
        'keyframe_id': engram.keyframe_id}
    assert_every_field_equal(from_record(record), engram)


def test_old_export_lines_import() -> None:
    """Records written by the old export decode; the fields they lack take the defaults."""
    lines = OLD_EXPORT.read_text(encoding='utf-8').splitlines()
    expected = fixture_engrams()
    assert len(lines) == len(expected)
    defaults = Engram(id=0, kind='place', frame_id='', position=np.zeros(3),
                      vector=np.zeros(1, dtype=np.float32), first_seen=0.0, last_seen=0.0)
    for line, engram in zip(lines, expected):
        for name in NOT_IN_OLD_EXPORT:
            setattr(engram, name, getattr(defaults, name))
        assert_every_field_equal(from_record(json.loads(line)), engram)


def test_records_are_a_superset_of_the_old_export() -> None:
    """Same keys with the same values for every field the old export wrote."""
    lines = OLD_EXPORT.read_text(encoding='utf-8').splitlines()
    for line, engram in zip(lines, fixture_engrams()):
        old = json.loads(line)
        del old['evidence_files']           # added by the export command, not the record
        new = json.loads(json.dumps(to_record(engram)))
        assert set(new) == set(old) | set(NOT_IN_OLD_EXPORT)
        assert {name: new[name] for name in old} == old


def test_a_nested_covariance_is_read_flat() -> None:
    record = to_record(fixture_engrams()[0])
    flat = record['covariance']
    record['covariance'] = [flat[i:i + 6] for i in range(0, 36, 6)]
    assert np.array_equal(from_record(record).covariance, np.asarray(flat))


def _record(**changes: object) -> dict:
    record = json.loads(json.dumps(to_record(fixture_engrams()[0])))
    record.update(changes)
    return record


@pytest.mark.parametrize('record, field', [
    ({k: v for k, v in _record().items() if k != 'id'}, 'id'),
    ({k: v for k, v in _record().items() if k != 'vector'}, 'vector'),
    (_record(id='7'), 'id'),
    (_record(id=1.5), 'id'),
    (_record(id=True), 'id'),
    (_record(kind=3), 'kind'),
    (_record(position=[1.0, 2.0]), 'position'),
    (_record(position=None), 'position'),
    (_record(position=['a', 'b', 'c']), 'position'),
    (_record(orientation=[[0.0, 0.0], [0.0]]), 'orientation'),
    (_record(vector=[]), 'vector'),
    (_record(confidence='high'), 'confidence'),
    (_record(valid_to='never'), 'valid_to'),
    (_record(tags='label:mug'), 'tags'),
    (_record(evidence=[1, 2]), 'evidence'),
    (_record(pinned='yes'), 'pinned'),
    (_record(pinned=2), 'pinned'),
    ([1, 2, 3], 'record'),
], ids=lambda v: v if isinstance(v, str) else '')
def test_bad_records_name_the_field(record: object, field: str) -> None:
    with pytest.raises(CodecError) as info:
        from_record(record)  # type: ignore[arg-type]
    assert info.value.field == field
    assert str(info.value).startswith(f'{field}: ')
    assert isinstance(info.value, ValueError)
