"""Recall scope (issue 15): a recall of this robot, of named robots or of the fleet, answered
from robot A's own memory and a real milvus-lite fleet collection holding robot B's engrams
(and A's replicas, which must never come back twice). Ranking of the fleet's engrams is the
local ranking: the same engrams in a local memory get the same scores. A fleet that is missing,
unreachable or failing leaves a local answer that says so and is counted."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.backend import MemoryBackend
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.view import FleetView
from engram_ros.core.fleet.view import robot_id_from_namespace
from engram_ros.core.memory import fleet_recall
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Engram
from engram_ros.core.query import FleetAnswer
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallScope
from engram_ros.core.query import RecallStatus
from engram_ros.core.storage import MemoryStorage

DIM = 16
FRAME = 'map'
NOW = 5000.0
#: Fleet ids of A's replicas: the fleet's own ids, unlike A's local ones.
REPLICA_OFFSET = 1_000_000


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _engram(engram_id: int, label: str, seed: int, x: float, count: int = 3) -> Engram:
    return Engram(id=engram_id, kind='object', frame_id=FRAME, position=np.array([x, 1.0, 0.5]),
                  vector=_vector(seed), first_seen=1000.0 + seed, last_seen=2000.0 + seed,
                  valid_from=1000.0 + seed, tags=(f'label:{label}', 'room:kitchen'),
                  label=label, observation_count=count)


#: Robot A's own memory (local ids are the store's).
A_SEEN = [('cup', 1, 1.0), ('plant', 2, 2.0), ('chair', 3, 3.0)]
#: Robot B's sightings, only in the fleet (fleet ids).
B_SEEN = [('mug', 11, -1.0, 5), ('book', 12, -2.0, 1)]


class Fleet:
    """A :class:`FleetView` over a real backend; ``reachable`` false gives ``None``."""

    def __init__(self, robot_id: str, backend: MemoryBackend) -> None:
        self.robot_id = robot_id
        self._backend = backend
        self.reachable = True

    def backend(self) -> MemoryBackend | None:
        return self._backend if self.reachable else None


@pytest.fixture()
def fleet_db(tmp_path: Path) -> Iterator[MilvusBackend]:
    """A fleet collection: A's replicas, written by robot 'a'; B's engrams, written by 'b'
    (two backends on one milvus-lite file, as one process hosting it would serve them).
    The fleet as robot A sees it is B's writer: any backend on the collection reads all rows."""
    path = str(tmp_path / 'fleet.db')
    writer_a = MilvusBackend(path, DIM, model='test', frame_id=FRAME, robot_id='a')
    writer_a.put([_engram(REPLICA_OFFSET + i + 1, label, seed, x)
                  for i, (label, seed, x) in enumerate(A_SEEN)])
    writer_a.close()
    backend = MilvusBackend(path, DIM, model='test', frame_id=FRAME, robot_id='b')
    backend.put([_engram(2_000_000 + seed, label, seed, x, count)
                 for label, seed, x, count in B_SEEN])
    yield backend
    backend.close()


@pytest.fixture()
def store() -> Iterator[MemoryStore]:
    """Robot A's memory, with its own engrams and no fleet."""
    made = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, frame_id=FRAME),
                       audit=AuditLog(None))
    made.robot_id = 'a'
    made.bulk_load([_engram(0, label, seed, x) for label, seed, x in A_SEEN])
    yield made
    made.close()


@pytest.fixture()
def fleet(store: MemoryStore, fleet_db: MilvusBackend) -> Fleet:
    store.fleet = Fleet('a', fleet_db)
    return store.fleet


def _labels(result) -> list[tuple[str, str]]:
    return [(h.engram.label, h.robot) for h in result.hits]


OBJECTS = dict(kinds=('object',), k=10)


def test_fleet_view_is_the_protocol(fleet: Fleet) -> None:
    assert isinstance(fleet, FleetView)


def test_scope_robot_answers_from_this_robot_only(store: MemoryStore, fleet: Fleet) -> None:
    result = store.recall(RecallQuery(**OBJECTS), now=NOW)
    assert sorted(_labels(result)) == [('chair', 'a'), ('cup', 'a'), ('plant', 'a')]
    assert result.fleet == FleetAnswer.NOT_ASKED
    assert store.recall(RecallQuery(tags_any=('label:mug',)), now=NOW).hits == []
    assert store.fleet_recalls == 0


def test_scope_fleet_finds_what_another_robot_saw(store: MemoryStore, fleet: Fleet) -> None:
    result = store.recall(RecallQuery(tags_any=('label:mug',), scope=RecallScope.FLEET),
                          now=NOW)
    assert _labels(result) == [('mug', 'b')]
    assert result.fleet == FleetAnswer.ANSWERED
    assert result.hits[0].engram.id == 2_000_011      # the fleet's id, as the fleet keeps it
    assert '1 from other robots' in result.message
    assert store.fleet_recalls == 1


def test_a_question_naming_what_only_another_robot_saw(store: MemoryStore,
                                                       fleet: Fleet) -> None:
    alone = store.recall(RecallQuery(text='where is the book?'), now=NOW)
    assert alone.hits == [] and 'nothing in the memory matches' in alone.message
    result = store.recall(RecallQuery(text='where is the book?', scope=RecallScope.FLEET),
                          now=NOW)
    assert _labels(result) == [('book', 'b')]
    # 'mug' finds A's cup (a cup is one here) and, asked of the fleet as it is, B's mug.
    assert _labels(store.recall(RecallQuery(text='where is the mug?'), now=NOW)) == [
        ('cup', 'a')]
    both = store.recall(RecallQuery(text='where is the mug?', scope=RecallScope.FLEET),
                        now=NOW)
    assert sorted(_labels(both)) == [('cup', 'a'), ('mug', 'b')]
    assert [h.symbolic for h in both.hits] == [1.0, 1.0]


def test_scope_robots_names_whose_memory_answers(store: MemoryStore, fleet: Fleet) -> None:
    only_b = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('b',)),
                          now=NOW)
    assert sorted(_labels(only_b)) == [('book', 'b'), ('mug', 'b')]
    only_a = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('a',)),
                          now=NOW)
    assert {r for _, r in _labels(only_a)} == {'a'} and only_a.fleet == FleetAnswer.NOT_ASKED
    both = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('b', 'a')),
                        now=NOW)
    assert len(both.hits) == 5
    nobody = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('c',)),
                          now=NOW)
    assert nobody.hits == [] and nobody.fleet == FleetAnswer.ANSWERED


def test_own_rows_in_the_fleet_are_not_answered_twice(store: MemoryStore,
                                                      fleet: Fleet) -> None:
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.FLEET), now=NOW)
    assert sorted(_labels(result)) == [('book', 'b'), ('chair', 'a'), ('cup', 'a'),
                                       ('mug', 'b'), ('plant', 'a')]
    assert not any(h.engram.id > REPLICA_OFFSET for h in result.hits if h.robot == 'a')
    assert result.candidates == 5


@pytest.mark.parametrize('query', [
    RecallQuery(kinds=('object',), k=10),
    RecallQuery(vector=_vector(11), k=3),
    RecallQuery(tags_any=('label:mug', 'label:book'), center=np.array([-1.0, 1.0, 0.5]),
                radius=3.0, t_start=1500.0, k=5),
], ids=['kinds', 'vector', 'tags-region-window'])
def test_fleet_engrams_rank_as_they_would_locally(store: MemoryStore, fleet: Fleet,
                                                  query: RecallQuery) -> None:
    """The same ranking code: B's engrams score in the fleet recall what they score in a
    memory that holds them locally."""
    local_b = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, frame_id=FRAME))
    try:
        local_b.bulk_load([_engram(0, label, seed, x, count)
                           for label, seed, x, count in B_SEEN])
        expected = {h.engram.label: h.score for h in local_b.recall(query, now=NOW).hits}
    finally:
        local_b.close()
    query.scope, query.robots = RecallScope.ROBOTS, ('b',)
    got = {h.engram.label: h.score for h in store.recall(query, now=NOW).hits}
    assert got.keys() == expected.keys() and expected
    for label, score in expected.items():
        assert got[label] == pytest.approx(score, abs=1e-5)


def test_more_fleet_candidates_than_ranked_are_said(store: MemoryStore, fleet: Fleet,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_recall, 'FLEET_CANDIDATES', 1)
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.FLEET), now=NOW)
    assert [r for _, r in _labels(result)].count('b') == 1
    assert 'more than 1 fleet candidates: 1 of them ranked' in result.message


def test_fleet_and_local_answers_merge_by_score(store: MemoryStore, fleet: Fleet) -> None:
    result = store.recall(RecallQuery(vector=_vector(11), k=2, scope=RecallScope.FLEET),
                          now=NOW)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert result.hits[0].engram.label == 'mug' and result.hits[0].robot == 'b'
    assert len(result.hits) == 2


def test_an_unreachable_fleet_leaves_a_local_answer_said_and_counted(
        store: MemoryStore, fleet: Fleet) -> None:
    fleet.reachable = False
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.FLEET), now=NOW)
    assert sorted(_labels(result)) == [('chair', 'a'), ('cup', 'a'), ('plant', 'a')]
    assert result.status == RecallStatus.OK
    assert result.fleet == FleetAnswer.UNREACHABLE
    assert 'unreachable' in result.message and 'alone answered' in result.message
    assert (store.fleet_recalls, store.fleet_recalls_unanswered) == (0, 1)


def test_a_fleet_failing_during_the_recall_leaves_a_local_answer(
        store: MemoryStore, fleet: Fleet, fleet_db: MilvusBackend) -> None:
    fleet_db.close()        # the engine goes away: every call now raises
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('a', 'b')),
                          now=NOW)
    assert sorted(_labels(result)) == [('chair', 'a'), ('cup', 'a'), ('plant', 'a')]
    assert result.fleet == FleetAnswer.UNREACHABLE
    assert 'the fleet failed: RuntimeError' in result.message
    assert store.fleet_recalls_unanswered == 1


def test_a_fleet_engram_no_index_can_hold_leaves_a_local_answer(
        store: MemoryStore, fleet: Fleet, fleet_db: MilvusBackend) -> None:
    broken = _engram(2_000_099, 'mug', 99, -3.0, count=0)    # another robot wrote no sighting
    fleet_db.put([broken])
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.FLEET), now=NOW)
    assert sorted(_labels(result)) == [('chair', 'a'), ('cup', 'a'), ('plant', 'a')]
    assert result.fleet == FleetAnswer.UNREACHABLE
    assert "the fleet's engrams could not be ranked" in result.message
    assert store.fleet_recalls_unanswered == 1


def test_no_fleet_configured_answers_locally_and_says_so(store: MemoryStore) -> None:
    result = store.recall(RecallQuery(**OBJECTS, scope=RecallScope.FLEET), now=NOW)
    assert sorted(_labels(result)) == [('chair', 'a'), ('cup', 'a'), ('plant', 'a')]
    assert result.fleet == FleetAnswer.NOT_CONFIGURED
    assert 'no fleet configured' in result.message
    assert store.fleet_recalls_unanswered == 1


@pytest.mark.parametrize('scope,robots', [
    (7, ()), (RecallScope.ROBOTS, ()), (RecallScope.ROBOT, ('b',)),
    (RecallScope.FLEET, ('b',)), (RecallScope.ROBOTS, ('',)), (RecallScope.ROBOTS, ('x' * 300,)),
], ids=['unknown', 'robots-none-named', 'robot-with-robots', 'fleet-with-robots', 'empty-id',
        'long-id'])
def test_a_bad_scope_is_refused(store: MemoryStore, scope: int, robots: tuple) -> None:
    with pytest.raises(QueryError) as caught:
        store.recall(RecallQuery(**OBJECTS, scope=scope, robots=robots), now=NOW)
    assert caught.value.status == RecallStatus.INVALID_SCOPE


def test_the_audit_records_the_scope(store: MemoryStore, fleet: Fleet) -> None:
    store.recall(RecallQuery(**OBJECTS), now=NOW)
    store.recall(RecallQuery(**OBJECTS, scope=RecallScope.ROBOTS, robots=('b',)), now=NOW)
    with pytest.raises(QueryError):
        store.recall(RecallQuery(**OBJECTS, scope=9), now=NOW)
    records = [r for r in store.audit.records() if r['action'] == 'recall']
    params = [r['params'] for r in records]
    assert [p['scope'] for p in params] == ['robot', 'robots', 9]
    assert params[1]['robots'] == ['b']
    assert 'fleet' not in records[0]['result']
    assert records[1]['result']['fleet'] == 'answered'
    assert records[1]['result']['robots'] == ['b', 'b']


@pytest.mark.parametrize('namespace,robot_id', [
    ('/robot1', 'robot1'), ('robot1/', 'robot1'), ('/site/robot_2', 'site.robot_2'),
    ('/', socket.gethostname()), ('', socket.gethostname()), ('/a b', 'a_b'),
])
def test_robot_id_from_namespace(namespace: str, robot_id: str) -> None:
    assert robot_id_from_namespace(namespace) == robot_id
