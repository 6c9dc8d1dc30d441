"""What the Milvus backend adds to the backend contract (test_backend.py runs that on it): the
collection survives a reopen, a collection of another dimension, encoder or schema is refused
with both sides named and nothing written, a milvus-lite file is served to one process, and
filtered searches are planned by their matching count. Real milvus-lite files, no mocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.backend import Region
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.backends.milvus_filter import expression
from engram_ros.core.backends.milvus_filter import plan
from engram_ros.core.backends.milvus_schema import PROP_MODEL
from engram_ros.core.model.engram import Engram

DIM = 16
FRAME = 'map'


def _engrams(n: int, seed: int = 1) -> list[Engram]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = rng.standard_normal(DIM).astype(np.float32)
        out.append(Engram(id=i + 1, kind='object', frame_id=FRAME,
                          position=rng.uniform(-5.0, 5.0, 3), vector=v / np.linalg.norm(v),
                          first_seen=100.0 + i, last_seen=100.0 + i, valid_from=100.0 + i,
                          tags=('label:mug',) if i % 3 == 0 else ('label:cup',)))
    return out


def _open(path: Path, **options) -> MilvusBackend:
    options.setdefault('model', 'clip-a')
    options.setdefault('frame_id', FRAME)
    return MilvusBackend(str(path), options.pop('dim', DIM), **options)


def test_reopen_gives_the_same_answers_and_metadata(tmp_path: Path) -> None:
    engrams = _engrams(120)
    first = _open(tmp_path / 'fleet.db')
    first.put(engrams[:60])
    first.flush()                          # sealed segment (HNSW built) and memtable rows
    first.put(engrams[60:])
    first.delete([5, 6, 70])
    first.set_meta('next_id', '121')
    q = engrams[9].vector
    filters = [Stage1Filter(), Stage1Filter(tags_any=('label:mug',)),
               Stage1Filter(region=Region((0.0, 0.0, 0.0), 4.0, FRAME))]
    before = [(first.select(f).tolist(), first.search(q, 7, f).ids.tolist()) for f in filters]
    first.close()
    again = _open(tmp_path / 'fleet.db')
    try:
        assert again.count() == 117
        assert again.get_meta('next_id') == '121'
        assert [(again.select(f).tolist(), again.search(q, 7, f).ids.tolist())
                for f in filters] == before
    finally:
        again.close()


@pytest.mark.parametrize('change', ['dim', 'model', 'frame'])
def test_another_encoder_dimension_or_frame_is_refused_and_nothing_written(
        tmp_path: Path, change: str) -> None:
    made = _open(tmp_path / 'fleet.db')
    made.put(_engrams(10))
    made.close()
    asked = {'dim': {'dim': DIM + 8}, 'model': {'model': 'clip-b'},
             'frame': {'frame_id': FRAME + '_other'}}[change]
    with pytest.raises(ValueError) as refused:
        _open(tmp_path / 'fleet.db', **asked)
    message = str(refused.value)
    if change == 'dim':
        assert f'{DIM}-d' in message and f'{DIM + 8}-d' in message
    elif change == 'model':
        assert "'clip-a'" in message and "'clip-b'" in message
    else:
        assert f"'{FRAME}'" in message and f"'{FRAME}_other'" in message
        assert 'one map frame' in message
    again = _open(tmp_path / 'fleet.db')
    try:
        assert again.count() == 10 and again.dim == DIM
    finally:
        again.close()


def test_a_collection_of_another_schema_is_refused(tmp_path: Path) -> None:
    from pymilvus import MilvusClient
    client = MilvusClient(str(tmp_path / 'fleet.db'))
    client.create_collection('engrams', dimension=DIM)        # id + vector only
    client.close()
    with pytest.raises(ValueError, match='another schema.*missing'):
        _open(tmp_path / 'fleet.db')


def _unrecorded(path: Path):
    """A collection made by engram_ros whose encoder is not recorded yet (its maker is between
    ``create_collection`` and writing the properties); returns a client to finish it with."""
    from pymilvus import MilvusClient
    _open(path).close()
    client = MilvusClient(str(path))
    client.drop_collection_properties('engrams', property_keys=[PROP_MODEL])
    assert PROP_MODEL not in (client.describe_collection('engrams').get('properties') or {})
    return client


def test_a_collection_being_made_is_waited_for_not_refused(tmp_path: Path) -> None:
    """Two robots starting at once on a new fleet: one opens the collection while the other
    has made it but not yet recorded its encoder; it waits for the record."""
    maker = _unrecorded(tmp_path / 'fleet.db')

    class Joining(MilvusBackend):
        def _properties(self) -> dict[str, str]:
            properties = super()._properties()
            if PROP_MODEL not in properties:    # it saw the gap: the maker finishes now
                maker.alter_collection_properties('engrams', properties={PROP_MODEL: 'clip-a'})
            return properties

    try:
        joined = Joining(str(tmp_path / 'fleet.db'), DIM, model='clip-a', frame_id=FRAME)
        joined.close()
    finally:
        maker.close()


def test_a_collection_whose_encoder_never_comes_is_refused(tmp_path: Path) -> None:
    maker = _unrecorded(tmp_path / 'fleet.db')

    class Impatient(MilvusBackend):
        MAKING_GRACE = 0.3

    try:
        with pytest.raises(ValueError, match='names no encoder'):
            Impatient(str(tmp_path / 'fleet.db'), DIM, model='clip-a', frame_id=FRAME)
    finally:
        maker.close()


def test_a_milvus_lite_file_is_served_to_one_process(tmp_path: Path) -> None:
    held = _open(tmp_path / 'fleet.db')
    try:
        held.put(_engrams(3))
        script = textwrap.dedent(f"""
            from engram_ros.core.backends.milvus import MilvusBackend
            MilvusBackend({str(tmp_path / 'fleet.db')!r}, {DIM}, model='clip-a')
        """)
        second = subprocess.run([sys.executable, '-c', script], capture_output=True,
                                text=True, timeout=300)
        assert second.returncode != 0
        assert 'RuntimeError' in second.stderr and 'one process' in second.stderr
        assert held.count() == 3                      # the first process is not disturbed
    finally:
        held.close()


@pytest.mark.parametrize('threshold,planned,expected', [
    (4096, True, 'exact'), (0, True, 'hnsw'), (4096, False, 'hnsw')])
def test_filtered_searches_are_planned_by_matching_count(tmp_path: Path, threshold: int,
                                                         planned: bool, expected: str) -> None:
    engrams = _engrams(200)
    backend = _open(tmp_path / 'fleet.db', exact_threshold=threshold, plan_filters=planned)
    try:
        backend.put(engrams)
        where = Stage1Filter(tags_all=('label:mug',))
        hit = backend.search(engrams[3].vector, 5, where)
        assert hit.ids[0] == engrams[3].id
        assert backend.plan_counts == {expected: 1}
        assert backend.search(engrams[3].vector, 5, Stage1Filter(tags_all=('x:none',))) \
            .ids.shape == (0,)
    finally:
        backend.close()


def test_plan_scales_ef_as_fewer_engrams_match() -> None:
    options = dict(exact_threshold=1000, ef_search=128, filtered_ef=64, max_ef=1024)
    assert plan(1000, 100_000, 10, has_region=False, **options).exact
    wide = plan(50_000, 100_000, 10, has_region=False, **options)
    narrow = plan(2_000, 100_000, 10, has_region=False, **options)
    assert not wide.exact and not narrow.exact
    assert wide.ef == 128 and narrow.ef == 1024
    assert plan(50_000, 100_000, 10, has_region=True, **options).limit > 10


@pytest.mark.parametrize('tag_match', ['array', 'text'])
def test_tags_with_quotes_wildcards_and_backslashes_are_matched_exactly(
        tmp_path: Path, tag_match: str) -> None:
    odd = 'label:say "hi" \\ 100% a_b'
    engrams = _engrams(4)
    engrams[2].tags = (odd,)
    engrams[3].tags = ('label:say "hi" \\ 100x aXb',)      # what LIKE wildcards would match
    backend = _open(tmp_path / 'fleet.db', tag_match=tag_match)
    try:
        backend.put(engrams)
        assert backend.select(Stage1Filter(tags_all=(odd,))).tolist() == [engrams[2].id]
        assert backend.select(Stage1Filter(tags_none=(odd,))).tolist() == [1, 2, 4]
        assert backend.select(Stage1Filter(tags_any=(odd, 'label:mug'))).tolist() == [1, 3]
    finally:
        backend.close()


def test_expression_of_no_filter_and_of_every_part() -> None:
    assert expression(None) == ''
    assert expression(Stage1Filter(include_history=True)) == 'id > 0'
    text = expression(Stage1Filter(kinds=('object',), tags_any=('a',), t_start=1.0,
                                   at_time=2.0, region=Region((0.0, 0.0, 0.0), 1.0)))
    for part in ('kind in [1]', 'ARRAY_CONTAINS_ANY(tags, ["a"])', 'last_seen >= 1.0',
                 'valid_from <= 2.0', 'x >= ', 'z <= '):
        assert part in text
    assert expression(Stage1Filter(robots=('r"1',), not_robots=('r2',))) == (
        '(robot in ["r\\"1"]) and (robot not in ["r2"]) and (current == true)')
    text = expression(Stage1Filter(tags_all=('a',), tags_none=('b',)), tags='text')
    assert text == ('(tag_text like "%|61|%") and (not (tag_text like "%|62|%")) and '
                    '(current == true)')


@pytest.mark.parametrize('tag_match', ['array', 'text'])
def test_rows_are_filtered_by_the_robot_that_wrote_them(tmp_path: Path, tag_match: str) -> None:
    """Two robots write to one collection (two backends on one file in this process); the
    robot condition selects and searches by the ``robot`` field."""
    engrams = _engrams(30)
    a = _open(tmp_path / 'fleet.db', robot_id='a', tag_match=tag_match)
    b = _open(tmp_path / 'fleet.db', robot_id='b', tag_match=tag_match)
    try:
        a.put(engrams[:10])
        b.put(engrams[10:])
        ids_a = [e.id for e in engrams[:10]]
        ids_b = [e.id for e in engrams[10:]]
        assert a.robots_of([1, 11, 999]) == {1: 'a', 11: 'b'}
        for where, expected in ((Stage1Filter(robots=('a',)), ids_a),
                                (Stage1Filter(robots=('b', 'c')), ids_b),
                                (Stage1Filter(not_robots=('a',)), ids_b),
                                (Stage1Filter(robots=('a', 'b'), not_robots=('b',)), ids_a),
                                (Stage1Filter(robots=('c',)), [])):
            assert b.select(where).tolist() == expected
            found = b.search(engrams[3].vector, 30, where).ids.tolist()
            assert sorted(found) == expected
        mugs_of_b = Stage1Filter(tags_any=('label:mug',), not_robots=('a',))
        assert b.select(mugs_of_b).tolist() == [e.id for e in engrams[10:]
                                                if 'label:mug' in e.tags]
    finally:
        a.close()
        b.close()


def test_a_closed_backend_refuses_calls(tmp_path: Path) -> None:
    backend = _open(tmp_path / 'fleet.db')
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match='closed'):
        backend.count()
