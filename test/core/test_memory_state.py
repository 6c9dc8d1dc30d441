"""Tests of engram_ros.core.memory.state.MemoryState: one object, one update path.

The state must never keep a stale copy: re-applying an engram whose tier, pin, validity or
anchor changed updates every structure; removing an engram (forget, eviction, merge) leaves
none of its facts anywhere; and after any path through a real store (ingest, merge, eviction,
forget, import, edit, pose correction, moves) the live state equals the state rebuilt from the
stored records, which is what the next open finds.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from pathlib import Path

import numpy as np

from engram_ros.core.memory import MemoryState
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.places import PoseCorrection
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

DIM = 16
T0 = 1.7e9


def engram(engram_id: int, kind: str = 'object', **fields) -> Engram:
    fields.setdefault('valid_from', T0)
    fields.setdefault('position', np.zeros(3))
    return Engram(id=engram_id, kind=kind, frame_id='map',
                  vector=np.eye(DIM, dtype=np.float32)[engram_id % DIM], first_seen=T0,
                  last_seen=T0, **fields)


def structures(state: MemoryState) -> dict:
    """Every per-engram structure, comparable (LRU order aside)."""
    return {'short': set(state.short), 'pinned': set(state.pinned),
            'history': set(state.history), 'validity': dict(state.validity),
            'anchor_of': dict(state.anchor_of),
            'anchored': {p: set(m) for p, m in state.anchored.items()},
            'keyframes': dict(state.keyframes), 'edges': dict(state.edges)}


def ids_in(state: MemoryState) -> set[int]:
    """Every engram id any structure holds as a fact of that engram."""
    found = set(state.short) | state.pinned | state.history | set(state.validity)
    found |= set(state.anchor_of) | state.dirty | set(state.touched)
    found |= {i for members in state.anchored.values() for i in members}
    found |= set(state.keyframes.values()) | {i for key in state.edges for i in key}
    if state.last_place is not None:
        found.add(state.last_place[0])
    return found


# ------------------------------------------------------------------------------- unit


def test_reapplying_a_changed_engram_updates_every_structure() -> None:
    state = MemoryState()
    state.apply([engram(1, 'place', tier=TIER_LONG), engram(2, 'place', tier=TIER_LONG),
                 engram(3, anchor_id=1, pinned=True, label='mug')])
    assert 3 in state.short and 3 in state.pinned and state.anchored == {1: {3}}
    moved = engram(3, anchor_id=2, tier=TIER_LONG, label='cup', valid_to=T0 + 5.0)
    state.apply([moved])
    assert 3 not in state.short and 3 not in state.pinned
    assert state.anchor_of == {3: 2} and state.anchored == {2: {3}}
    assert 3 in state.history and state.validity[3] == (T0, T0 + 5.0)
    current = engram(3, anchor_id=0, valid_from=T0 + 9.0)     # current again, moved in late
    state.apply([current])
    assert 3 not in state.history and state.validity[3] == (T0 + 9.0, math.inf)
    assert state.anchor_of == {} and state.anchored == {}
    state.apply([engram(3)])                                  # current since first sighting
    assert state.validity == {} and 3 in state.short
    assert state.labels == {'mug', 'cup'}     # a vocabulary: labels seen stay known


def test_apply_marks_dirty_unless_loading_and_reports_access_of_short_ones() -> None:
    state = MemoryState()
    access: dict[int, float] = {}
    state.apply([engram(1, last_access=5.0), engram(2, tier=TIER_LONG)], dirty=False,
                access=access)
    assert state.dirty == set() and access == {1: 5.0}
    state.apply([engram(2, tier=TIER_LONG)])
    assert state.dirty == {2}


def test_removing_engrams_leaves_no_trace_in_any_structure() -> None:
    state = MemoryState([PlaceEdge(1, 2, 3, T0), PlaceEdge(2, 5, 1, T0)])
    state.apply([engram(1, 'place', keyframe_id='kf1', tier=TIER_LONG),
                 engram(2, 'place', keyframe_id='kf2'),
                 engram(3, anchor_id=1, pinned=True, valid_to=T0 + 1.0),
                 engram(4, anchor_id=2, valid_from=T0 + 2.0),
                 engram(5, 'place')])
    state.touch([3, 4], T0 + 3.0)
    state.last_place = (2, T0)
    state.remove([2, 3, 4])
    assert ids_in(state) & {2, 3, 4} == set()
    assert state.anchored == {} and state.anchor_of == {}
    assert state.keyframes == {'kf1': 1} and state.edges == {}
    assert state.last_place is None and set(state.short) == {5}


def test_things_anchored_to_a_removed_place_keep_its_id_as_their_records_do() -> None:
    state = MemoryState()
    state.apply([engram(1, 'place'), engram(3, anchor_id=1)])
    state.remove([1])
    assert state.anchor_of == {3: 1} and state.anchored == {1: {3}}
    rebuilt = MemoryState()
    rebuilt.apply([engram(3, anchor_id=1)])
    assert structures(rebuilt) == structures(state)


def test_edges_are_set_and_dropped_only_through_the_state() -> None:
    state = MemoryState([PlaceEdge(1, 2, 1, T0)])
    state.set_edges([PlaceEdge(1, 2, 2, T0 + 1.0), PlaceEdge(2, 3, 1, T0)])
    state.drop_edges([(2, 3), (7, 8)])
    assert state.edges == {(1, 2): PlaceEdge(1, 2, 2, T0 + 1.0)}


def test_lru_victims_skip_pinned_and_touch_moves_to_the_end() -> None:
    state = MemoryState()
    state.apply([engram(i, pinned=(i == 1)) for i in range(1, 6)])
    state.touch([2], T0)
    short = list(state.short)
    assert short == [1, 3, 4, 5, 2]
    assert state.lru_victims(short, capacity=3) == [3, 4]
    assert state.lru_victims(short, capacity=3, pinned={3}) == [4, 5]
    assert state.take_touched() == {2: (T0, 1)} and state.touched == {}


# ------------------------------------------------------------------------------- store paths


def look(name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def obs(label: str, position, stamp: float, kind: str = 'object',
        keyframe_id: str = '') -> Observation:
    return Observation(kind=kind, frame_id='map', position=np.asarray(position, dtype=float),
                       stamp=stamp, vector=look(label if kind != 'place' else str(position)),
                       label=label if kind != 'place' else '', keyframe_id=keyframe_id)


def assert_matches_storage(store: MemoryStore) -> None:
    """The live state is what an open of the stored records builds."""
    rebuilt = MemoryState(store.storage.edges())
    rebuilt.apply(store.storage.iter_all(), dirty=False)
    live = store.state
    assert structures(live) == structures(rebuilt)
    assert rebuilt.labels <= live.labels
    stored = {e.id for e in store.storage.iter_all()}
    assert (live.dirty | set(live.touched)) <= stored


def walk(store: MemoryStore, lap: int, mug_at=(1.0, 0.5, 0.8)) -> None:
    t = T0 + 100.0 * lap
    store.ingest(obs('kitchen', (0.0, 0.0, 0.0), t, 'place', keyframe_id='kf-kitchen'))
    store.ingest(obs('mug', mug_at, t + 1))
    store.ingest(obs('book', (0.5, -1.0, 0.4), t + 2))
    store.ingest(obs('living', (10.0, 0.0, 0.0), t + 10, 'place', keyframe_id='kf-living'))
    store.ingest(obs('plant', (10.5, 1.0, 0.2), t + 11))


def test_ingest_merge_and_consolidation_keep_the_state_in_step(make_store) -> None:
    store = make_store()
    for lap in range(3):
        walk(store, lap)
        assert_matches_storage(store)
        store.consolidate(now=T0 + 100.0 * lap + 50)
        assert_matches_storage(store)
    assert store.state.edges and store.state.keyframes and store.state.anchor_of


def test_a_move_makes_history_and_the_state_follows(make_store) -> None:
    store = make_store()
    for lap in range(3):
        walk(store, lap)
        store.consolidate(now=T0 + 100.0 * lap + 50)
    for lap in range(3, 6):
        walk(store, lap, mug_at=(10.8, -1.0, 0.8))
        store.consolidate(now=T0 + 100.0 * lap + 50)
        assert_matches_storage(store)
    assert store.state.history and store.state.validity


def test_forget_of_a_place_and_its_things_leaves_no_trace(make_store) -> None:
    store = make_store()
    for lap in range(2):
        walk(store, lap)
        store.consolidate(now=T0 + 100.0 * lap + 50)
    kitchen = store.state.keyframes['kf-kitchen']
    things = sorted(store.state.anchored[kitchen])
    store.edit(things[0], pinned=True)
    store.forget([kitchen, *things])
    assert ids_in(store.state) & {kitchen, *things} == set()
    assert_matches_storage(store)


def test_lru_eviction_and_budget_leave_no_trace(make_store) -> None:
    store = make_store(short_term_capacity=3, budget=4)
    before = set()
    for lap in range(2):
        walk(store, lap)
        before |= {e.id for e in store.storage.iter_all()}
        assert_matches_storage(store)
    store.consolidate(now=T0 + 500.0)
    gone = before - {e.id for e in store.storage.iter_all()}
    assert gone and ids_in(store.state) & gone == set()
    assert_matches_storage(store)


def test_import_edit_and_pose_correction_keep_the_state_in_step(make_store) -> None:
    store = make_store()
    walk(store, 0)
    kitchen = store.state.keyframes['kf-kitchen']
    imported = store.bulk_load([engram(1, pinned=True, anchor_id=kitchen, tier=TIER_SHORT),
                                engram(2, 'place', keyframe_id='kf-old', tier=TIER_LONG,
                                       valid_to=T0 + 1.0)])
    assert_matches_storage(store)
    assert set(imported) <= store.state.dirty
    store.edit(imported[0], pinned=False, label='lamp')
    assert_matches_storage(store)
    store.correct_poses([PoseCorrection(keyframe_id='kf-kitchen',
                                        position=np.array([0.5, 0.0, 0.0]),
                                        orientation=np.array([0.0, 0.0, 0.0, 1.0]))])
    assert_matches_storage(store)
    store.forget(imported)
    assert ids_in(store.state) & set(imported) == set()
    assert_matches_storage(store)


def test_reopen_builds_the_same_state(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / 'store')
    store = MemoryStore(storage, StoreConfig(dim=DIM))
    for lap in range(3):
        walk(store, lap)
        store.consolidate(now=T0 + 100.0 * lap + 50)
    live = structures(store.state)
    store.close()
    with MemoryStore(SQLiteStorage(tmp_path / 'store'), StoreConfig(dim=DIM)) as again:
        assert structures(again.state) == live


def _rich_scene(directory: Path) -> MemoryStore:
    """A closed-and-saved store whose state has every kind of fact: short-term and long-term
    engrams, a pin, history (a move), anchors, keyframes, edges and several labels."""
    store = MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM))
    for lap in range(3):
        walk(store, lap)
        store.consolidate(now=T0 + 100.0 * lap + 50)
    for lap in range(3, 6):                              # the mug moved: history
        walk(store, lap, mug_at=(10.8, -1.0, 0.8))
        store.consolidate(now=T0 + 100.0 * lap + 50)
    store.ingest(obs('cup', (1.5, 0.5, 0.8), T0 + 700.0))       # short-term: not consolidated
    store.ingest(obs('chair', (2.0, 1.0, 0.0), T0 + 701.0))
    book = store.recall(RecallQuery(tags_all=('label:book',))).ids[0]
    store.edit(book, pinned=True)
    assert store.state.history and store.state.pinned and store.state.anchor_of
    assert store.state.short and store.state.keyframes and store.state.edges
    return store


def _opened_state(directory: Path, caplog) -> tuple[MemoryState, list[int], bool]:
    """The state a store opened on ``directory`` holds, its LRU order, whether it came from
    the cache, and whether the saved state file was used."""
    caplog.clear()
    with MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM)) as again:
        used = 'state.json' not in caplog.text
        return again.state, list(again.state.short), again.index_from_cache, used


def test_a_clean_open_reads_the_saved_state_and_finds_what_a_full_scan_finds(
        tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    directory = tmp_path / 'store'
    store = _rich_scene(directory)
    store.close()
    storage = SQLiteStorage(directory)
    rebuilt = MemoryState(storage.edges())
    access: dict[int, float] = {}
    rebuilt.apply(storage.iter_all(), dirty=False, access=access)
    rebuilt.order_short(access)
    storage.close()
    saved = json.loads((directory / 'index' / 'state.json').read_text(encoding='utf-8'))
    assert saved['labels'] == sorted(rebuilt.labels)
    state, order, cached, used = _opened_state(directory, caplog)
    assert cached and used
    assert structures(state) == structures(rebuilt)
    assert state.labels == rebuilt.labels and order == list(rebuilt.short)
    # Without the state file (an older cache) the index still loads and every record is read.
    (directory / 'index' / 'state.json').unlink()
    state, order, cached, used = _opened_state(directory, caplog)
    assert cached and not used
    assert structures(state) == structures(rebuilt)
    assert state.labels == rebuilt.labels and order == list(rebuilt.short)
    # A state file of another generation is not trusted.
    state, _, _, _ = _opened_state(directory, caplog)       # saved again at that close
    path = directory / 'index' / 'state.json'
    stale = json.loads(path.read_text(encoding='utf-8'))
    stale['generation'] = 'another'
    stale['ids'] = []
    path.write_text(json.dumps(stale), encoding='utf-8')
    state, _, cached, used = _opened_state(directory, caplog)
    assert cached and not used and structures(state) == structures(rebuilt)


def test_state_scan_finds_the_state_engrams_on_both_backends(tmp_path: Path) -> None:
    rows = [engram(1, 'place', tier=TIER_LONG, keyframe_id='kf', label=''),
            engram(2, tier=TIER_LONG, label='mug'),                       # nothing of its own
            engram(3, tier=TIER_SHORT, label='cup'),
            engram(4, tier=TIER_LONG, pinned=True, label='mug'),
            engram(5, tier=TIER_LONG, valid_to=T0 + 1.0, label='book'),
            engram(6, tier=TIER_LONG, valid_from=T0 + 5.0, label='book'),  # moved in late
            engram(7, tier=TIER_LONG, anchor_id=1, label='plant')]
    sqlite = SQLiteStorage(tmp_path / 'store')
    for backend in (sqlite, MemoryStorage()):
        backend.put(rows)
        assert backend.state_scan() == ([1, 3, 4, 5, 6, 7], {'mug', 'cup', 'book', 'plant'})
        backend.close()


def test_move_candidates_give_the_moves_every_current_belief_gives(tmp_path: Path) -> None:
    """The candidates are only the missed beliefs and those of their identities; deciding
    moves over them finds exactly what deciding over every current belief finds."""
    from engram_ros.core.duplicates import identity_tags
    from engram_ros.core.memory import beliefs
    from engram_ros.core.model.engram import kind_code
    from engram_ros.core.validity import Candidate
    from engram_ros.core.validity import find_moves
    from engram_ros.core.validity import missed
    store = MemoryStore(SQLiteStorage(tmp_path / 'store'), StoreConfig(dim=DIM))

    def every_belief() -> list[Candidate]:
        index, state = store.index, store.state
        slots = index.filter(kinds=[kind_code('object')])
        out = []
        for s in slots.tolist():
            i = int(index.ids_of(np.array([s]))[0])
            identity = identity_tags(index.tags_of(s))
            if i in state.history or not identity:
                continue
            anchor = state.anchor_of.get(i, 0)
            seen = (float(index.last_seen_of(np.array([index.slot_of(anchor)]))[0])
                    if anchor and anchor in index else None)
            v = index.vectors_of(np.array([s]))[0]
            last = float(index.last_seen_of([s])[0])
            view = (store.misses.missed(i, last, NOW, store.config.move_grace)
                    if store.misses.views_seen else None)
            out.append(Candidate(i, identity, index.positions_of(np.array([s]))[0],
                                 v / np.linalg.norm(v), float(index.first_seen_of([s])[0]),
                                 last, anchor, seen, int(index.counts_of([s])[0]), view))
        return out

    found = 0
    robot = 0
    NOW = T0 + 1e4  # noqa: N806 - a constant of this test
    for lap in range(6):
        walk(store, lap, mug_at=(1.0, 0.5, 0.8) if lap < 3 else (10.8, -1.0, 0.8))
        with store._lock:
            robot = store.state.last_place[0] if store.state.last_place else 0
            policy = store.config.merge
            args = dict(min_distance=2.0 * policy.radius_for('object'),
                        min_similarity=policy.similarity_for('object'),
                        grace=store.config.move_grace, robot_place=robot,
                        min_observations=policy.promote_after)
            few = beliefs._move_candidates(store, 'object', {}, set(), NOW, robot)
            full = every_belief()
            expected = find_moves(full, **args)
            got = find_moves(few or [], **args)
            assert got == expected
            missed_ids = {c.id for c in full if (
                c.view_missed if c.view_missed is not None else
                missed(c.anchor_id, c.anchor_last_seen, c.last_seen, args['grace'], robot))}
            assert (few is None) == (not missed_ids)
            found += len(expected)
        store.consolidate(now=T0 + 100.0 * lap + 50)
    assert found >= 1, 'the scene has a move to find'
    store.close()


def test_index_rows_are_the_records_columns_on_both_backends(tmp_path: Path) -> None:
    from engram_ros.core.storage.base import index_rows
    rows = [engram(i, kind=('object', 'place', 'audio')[i % 3], tier=TIER_LONG,
                   tags=() if i % 4 == 0 else (f'label:l{i}', 'room:r1'), score=0.1 * (i % 9),
                   observation_count=i, position=np.array([i, -i, 0.5 * i]))
            for i in range(1, 24)]
    for r in rows:
        r.vector = look(f'v{r.id}')
    want = index_rows(rows)
    for backend in (SQLiteStorage(tmp_path / 'store'), MemoryStorage()):
        backend.put(rows)
        got = list(backend.iter_index_rows(batch_size=5))
        assert [len(b['ids']) for b in got] == [5, 5, 5, 5, 3]
        for name, value in want.items():
            if name == 'tags':
                assert [t for b in got for t in b['tags']] == value
            else:
                joined = np.concatenate([b[name] for b in got])
                assert joined.dtype == value.dtype
                np.testing.assert_array_equal(joined, value)
        backend.close()
