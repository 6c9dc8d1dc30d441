"""The quality benchmark's scoring (benchmarks/quality_score.py) on a tiny hand-made memory and
truth: a ghost is counted, a move is noticed or not, a question is answered or not, through a
real store's text query (SQLite files)."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benchmarks'))

import quality_score as qs  # noqa: E402

DIM = 16
ROOMS = [{'name': 'kitchen', 'min': [0, 0], 'max': [4, 4]},
         {'name': 'lounge', 'min': [4, 0], 'max': [8, 4]}]


def thing(label: str, x: float, y: float) -> dict:
    return {'label': label, 'center': [x, y, 0.5], 'position': [x, y, 0.0]}


TRUTH = {'rooms': ROOMS, 'objects': [thing('mug', 1.0, 1.0), thing('red ball', 5.0, 1.0),
                                     thing('fridge', 0.5, 3.5)]}


def test_a_belief_names_a_thing_by_a_shared_word_but_not_by_a_colour():
    assert qs.names('ball', 'red ball') and qs.names('teddy_bear', 'teddy')
    assert qs.names('refrigerator', 'fridge')          # the memory's synonym
    assert not qs.names('red mug', 'red ball') and not qs.names('', 'mug')


def test_ghosts_and_engrams_per_thing():
    beliefs = [qs.Belief(1, 'mug', 1.2, 1.0), qs.Belief(2, 'mug', 3.5, 3.5),      # 2: ghost
               qs.Belief(3, 'ball', 5.3, 1.4), qs.Belief(4, 'bed', 5.0, 1.0),     # 4: ghost
               qs.Belief(5, 'mug', 6.0, 3.0, valid_to=10.0, successor=1)]         # history
    ghosts = qs.ghosts(beliefs, TRUTH)
    assert [g.id for g in ghosts] == [2, 4]
    assert qs.per_thing(beliefs, TRUTH) == pytest.approx(4 / 3, abs=1e-3)


def test_a_move_is_noticed_only_when_the_old_belief_ends_with_a_successor_at_the_new_place():
    old, new = thing('mug', 1.0, 1.0), thing('mug', 6.0, 3.0)
    before = [qs.Belief(1, 'mug', 1.1, 1.0), qs.Belief(7, 'fridge', 0.5, 3.5)]
    noticed = [qs.Belief(1, 'mug', 1.1, 1.0, valid_to=50.0, successor=2),
               qs.Belief(2, 'mug', 6.2, 3.0, valid_to=60.0, successor=3),    # merged on
               qs.Belief(3, 'mug', 6.1, 3.1)]
    assert qs.move_noticed('mug', old, new, before, noticed)['noticed']
    stale = [qs.Belief(1, 'mug', 1.1, 1.0), qs.Belief(2, 'mug', 6.1, 3.0)]
    result = qs.move_noticed('mug', old, new, before, stale)
    assert not result['noticed'] and 'still current' in result['why']
    elsewhere = [qs.Belief(1, 'mug', 1.1, 1.0, valid_to=50.0, successor=2),
                 qs.Belief(2, 'mug', 3.0, 3.0)]                  # 3.0 m from the new place
    assert not qs.move_noticed('mug', old, new, before, elsewhere)['noticed']
    assert not qs.move_noticed('mug', old, new, [], noticed)['noticed']   # never known
    assert qs.size_ratio({2: 40, 6: 46}, 6) == 1.15


def test_a_false_forget_is_a_real_thing_the_label_noise_rule_left_the_memory_without():
    # 1: a real mug forgotten and no other mug near it after -> the mug is lost;
    # 2: a 'ball' forgotten 0.3 m from the red ball, which another belief still holds;
    # 3: a 'bed' where no bed is (real label noise) -> not a false forget
    forgotten = [qs.Belief(1, 'mug', 1.2, 1.0), qs.Belief(2, 'ball', 5.3, 1.0),
                 qs.Belief(3, 'bed', 0.6, 3.4)]
    after = [qs.Belief(4, 'red ball', 5.1, 1.1), qs.Belief(5, 'refrigerator', 0.5, 3.4),
             qs.Belief(6, 'mug', 1.1, 1.0, valid_to=9.0)]             # history: not held
    result = qs.false_forgets(forgotten, TRUTH, after)
    assert result['things_lost'] == ['mug'] and result['naming_real'] == 2
    assert result['forgotten'] == 3 and result['rate_pct'] == pytest.approx(100.0 / 3, abs=0.01)
    kept = after + [qs.Belief(7, 'mug', 1.0, 1.3)]
    assert qs.false_forgets(forgotten, TRUTH, kept)['things_lost'] == []
    assert qs.false_forgets([], TRUTH, after)['rate_pct'] == 0.0


def look(name: str) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(name.encode())).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def observe(store: MemoryStore, label: str, x: float, y: float, room: str) -> None:
    for i in range(3):
        store.ingest(Observation(kind='object', frame_id='map', position=np.array([x, y, 0.5]),
                                 stamp=1000.0 + i, vector=look(label), label=label,
                                 tags=(f'room:{room}',)))


@pytest.fixture
def store(tmp_path):
    store = MemoryStore(SQLiteStorage(tmp_path / 'store'), StoreConfig(dim=DIM),
                        audit=AuditLog(None))
    observe(store, 'mug', 1.1, 1.0, 'kitchen')
    observe(store, 'ball', 5.2, 1.1, 'lounge')
    observe(store, 'refrigerator', 2.5, 3.5, 'kitchen')      # 2 m from the true fridge
    yield store
    store.close()


def top1(store: MemoryStore, text: str):
    hits = store.recall(RecallQuery(text=text, kinds=('object',), k=5), now=2000.0).hits
    return qs.belief_of(hits[0].engram) if hits else None


def test_questions_through_the_memory_text_query(store):
    ball = {'ask': 'where is the ball?', 'kind': 'category', 'via': 'table',
            'expect': ['ball', 'red ball']}
    answer = top1(store, ball['ask'])
    assert answer.label == 'ball' and answer.room == 'living_room'     # the memory's synonym
    assert qs.answered(ball, answer, TRUTH) == {'position': True, 'named': True,
                                                'error_m': pytest.approx(0.224, abs=1e-3)}
    in_kitchen = dict(ball, room='kitchen')                 # no ball there: not answered
    assert not qs.answered(in_kitchen, answer, TRUTH)['position']
    assert not qs.applicable(in_kitchen, TRUTH) and qs.applicable(dict(ball, room='lounge'),
                                                                  TRUTH)
    fridge = {'ask': 'where is the fridge?', 'kind': 'synonym', 'via': 'table',
              'expect': ['fridge']}
    assert not qs.answered(fridge, top1(store, fridge['ask']), TRUTH)['position']
    unicorn = {'ask': 'where is the unicorn?', 'kind': 'plain', 'via': 'table',
               'expect': ['unicorn']}
    assert not qs.applicable(unicorn, TRUTH) and qs.applicable(ball, TRUTH)
    assert top1(store, unicorn['ask']) is None
    rows = [dict(q, applicable=qs.applicable(q, TRUTH),
                 **qs.answered(q, top1(store, q['ask']), TRUTH))
            for q in (ball, fridge, unicorn)]
    summary = qs.question_summary(rows)
    assert summary['all'] == {'applicable': 2, 'answered': 1, 'answered_named': 1, 'pct': 50.0}
    assert summary['kind']['synonym']['answered'] == 0 and summary['not_applicable'] == 1
    truth_mug = TRUTH['objects'][0]
    assert qs.top1_right(top1(store, 'where is the mug?'), truth_mug)
    assert not qs.top1_right(top1(store, 'where is the ball?'), truth_mug)
