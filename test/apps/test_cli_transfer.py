"""``engram export`` then ``engram import``: a memory moved to a new store is the same memory.

The store is made the way a robot makes one (observations on laps through two rooms,
consolidation), so it holds what a map-like memory holds: a moved belief (history with a
successor), objects anchored to places, places at SLAM keyframes, pinned and long-term
engrams, evidence files, and a gap in the ids (a forgotten engram).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from engram_ros.apps.cli.transfer import load_renumbered
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
DIM = 16
T0 = 1.7e9
LAP = 100.0                                  # [s] one lap
KITCHEN = (0.0, 0.0, 0.0)
LIVING = (10.0, 0.0, 0.0)


def engram_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def look(name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return rng.normal(size=DIM)


def lap(store: MemoryStore, evidence: EvidenceStore, n: int, things: dict[str, tuple]) -> None:
    """Kitchen, then the living room; ``things`` maps labels to where they are seen."""
    t = T0 + n * LAP
    for room, (name, centre, keyframe) in enumerate((('kitchen', KITCHEN, 'kf-kitchen'),
                                                     ('living', LIVING, 'kf-living'))):
        stamp = t + 10 * room
        store.ingest(Observation(kind='place', frame_id='map', position=np.array(centre),
                                 stamp=stamp, vector=look(name), keyframe_id=keyframe,
                                 tags=(f'room:{name}',)))
        for i, (label, where) in enumerate(things.items()):
            if (where[0] >= 5) == bool(room):
                uri = evidence.write(f'{label}.png', f'{label} on lap {n}'.encode(), 'image')
                store.ingest(Observation(kind='object', frame_id='map',
                                         position=np.array(where), stamp=stamp + 1 + i,
                                         vector=look(label), label=label, evidence=(uri,),
                                         tags=(f'room:{name}',)))
    store.consolidate(now=t + 20)


@pytest.fixture
def robot_store(tmp_path) -> Path:
    directory = tmp_path / 'robot'
    store = MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM))
    evidence = EvidenceStore(store.storage.evidence_dir)
    mug_kitchen, mug_living, book = (1.0, 0.5, 0.8), (10.5, 1.0, 0.8), (9.0, -1.0, 0.4)
    lap(store, evidence, 0, {'mug': mug_kitchen, 'book': book, 'sock': (2.0, 2.0, 0.0)})
    lap(store, evidence, 1, {'mug': mug_kitchen, 'book': book})
    lap(store, evidence, 2, {'mug': mug_living, 'plant': (11.0, 2.0, 0.0)})
    lap(store, evidence, 3, {'mug': mug_living})
    engrams = {e.label or e.keyframe_id: e for e in store.list_engrams(limit=1000).engrams
               if e.valid_to is None}
    store.edit(engrams['book'].id, pinned=True)
    store.forget([engrams['sock'].id])          # a gap in the ids
    store.close()
    return directory


def stored(directory: Path) -> list[Engram]:
    storage = SQLiteStorage(directory)
    try:
        return sorted(storage.iter_all(), key=lambda e: e.id)
    finally:
        storage.close()


def evidence_bytes(directory: Path, engram: Engram) -> list[bytes]:
    evidence = EvidenceStore(directory / 'evidence')
    return sorted(evidence.path_of(uri).read_bytes() for uri in engram.evidence)


def assert_same_memory(source: Path, target: Path) -> None:
    """Every field of every engram equal; ids (and references) may be renumbered, evidence
    files copied (same bytes, the new store's paths)."""
    before, after = stored(source), stored(target)
    assert len(before) == len(after)
    identity = {(e.kind, e.first_seen, tuple(e.position)): e for e in after}
    new_id = {e.id: identity[(e.kind, e.first_seen, tuple(e.position))].id for e in before}
    new_id[0] = 0
    for old in before:
        new = identity[(old.kind, old.first_seen, tuple(old.position))]
        for f in dataclasses.fields(Engram):
            a, b = getattr(old, f.name), getattr(new, f.name)
            if f.name in ('id', 'successor_id', 'anchor_id'):
                assert new_id[a] == b, (old.id, f.name, a, b)
            elif f.name == 'evidence':
                assert evidence_bytes(source, old) == evidence_bytes(target, new), old.id
            elif isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b), (old.id, f.name)
            else:
                assert a == b, (old.id, f.name, a, b)


def test_export_then_import_keeps_every_field_of_every_engram(robot_store, tmp_path):
    before = stored(robot_store)
    assert any(e.valid_to is not None and e.successor_id for e in before)      # a move
    assert any(e.anchor_id for e in before) and any(e.keyframe_id for e in before)
    assert {e.tier for e in before} == {'short', 'long'} and any(e.pinned for e in before)
    assert max(e.id for e in before) > len(before)                              # a gap
    target = tmp_path / 'out' / 'memory.jsonl'
    target.parent.mkdir()
    out = engram_cli('--store', str(robot_store), 'export', str(target))
    assert out.returncode == 0, out.stderr
    copy = tmp_path / 'copy'
    out = engram_cli('--store', str(copy), 'import', str(target))
    assert out.returncode == 0, out.stderr
    assert_same_memory(robot_store, copy)
    assert engram_cli('--store', str(copy), 'verify').returncode == 0


def test_references_between_imported_engrams_follow_the_new_ids():
    def engram(engram_id: int, kind: str = 'object', **fields) -> Engram:
        return Engram(id=engram_id, kind=kind, frame_id='map', position=np.zeros(3),
                      vector=look(str(engram_id)), first_seen=T0, last_seen=T0, **fields)

    # 40 was replaced by 50, which replaced nothing; both anchored to place 30; 60 names an
    # engram that is not imported. Ids in the new store start at 1.
    engrams = [engram(40, valid_to=T0 + 1, successor_id=50, anchor_id=30),
               engram(50, anchor_id=30), engram(30, kind='place', keyframe_id='kf'),
               engram(60, successor_id=999)]
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
    new_ids = load_renumbered(store, engrams)
    loaded = {e.id: e for e in store.get(new_ids)}
    old, new, place, orphan = (loaded[i] for i in new_ids)
    assert len(set(new_ids)) == 4 and set(new_ids).isdisjoint({40, 50, 60})
    assert old.successor_id == new.id and old.valid_to == T0 + 1
    assert old.anchor_id == new.anchor_id == place.id and place.keyframe_id == 'kf'
    assert orphan.successor_id == 0
    store.close()
