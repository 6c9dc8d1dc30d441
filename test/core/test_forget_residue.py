"""Whatever leaves the memory leaves every file: evicted (LRU and budget), merged away and
forgotten engrams, and the evidence files a merge drops or a privacy drop refuses.

The attack is a byte scan of every file under the store directory (SQLite database and WAL,
the saved index cache, evidence; audit digests aside) for a removed engram's words, tag and
vector (float32 as the database keeps it, bf16 as the index cache keeps it). Each scan also
looks for a kept engram's needles and must find them, so a scan that reads nothing fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.governance import EngramFilter
from engram_ros.core.index import EngramIndex
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import ObservationExcluded
from engram_ros.core.memory import StoreConfig
from engram_ros.core.merge import MergePolicy
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.storage import SQLiteStorage

DIM = 16
KEEP_LABEL, KEEP_TAG = 'keeperqqlabel', 'color:keeperqqtag'
GONE_LABEL, GONE_TAG = 'zqxgonelabel', 'color:zqxgonetag'


def open_memory(directory: Path, **config) -> MemoryStore:
    return MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM, **config),
                       audit=AuditLog(directory / 'audit.jsonl'))


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def observation(vector, label: str, tags=(), position=(0.0, 0.0, 0.5), evidence=()):
    return Observation(kind='object', frame_id='map', position=np.array(position),
                       stamp=time.time(), vector=np.asarray(vector), label=label,
                       tags=tuple(tags), evidence=tuple(evidence))


def needles_of(store: MemoryStore, engram_id: int, words: tuple[str, ...]) -> list[bytes]:
    """The words, and the vector as the database (float32) and the index cache (bf16) hold it."""
    vector = store.get([engram_id])[0].vector.astype('<f4')
    bf16 = (vector.view('<u4') >> 16).astype('<u2')        # bf16 truncates: the upper half
    with store._lock:
        codes = store.index._dense.codes_view()[store.index.slot_of(engram_id)].astype('<u2')
    assert np.abs(codes.astype(np.int64) - bf16.astype(np.int64)).max() <= 1
    return [w.encode() for w in words] + [vector.tobytes(), codes.tobytes()]


def scan(directory: Path, needles: list[bytes]) -> list[str]:
    """Every (file, needle) where a file under ``directory`` holds a needle; audit aside."""
    found = []
    for path in directory.rglob('*'):
        if path.is_file() and not path.name.startswith('audit.jsonl'):
            data = path.read_bytes()
            found += [f'{path.relative_to(directory)}: {n[:24]!r}' for n in needles if n in data]
    return found


def make_store(directory: Path, how: str) -> tuple[int, int]:
    """A closed store with a pinned keeper and the engram ``how`` will remove; their ids.

    For a merge the removed engram is a duplicate of the keeper (same label and place, a
    close but distinct vector): its tag moves to the keeper, its vector must not survive.
    """
    store = open_memory(directory)
    keep_vector = unit(1)
    keeper = store.ingest(observation(keep_vector, KEEP_LABEL, (KEEP_TAG,))).engram_id
    store.edit(keeper, pinned=True)
    if how == 'merge':
        near = keep_vector + 0.3 * unit(2)
        [gone] = store.bulk_load([Engram.from_observation(0, observation(
            near, KEEP_LABEL, (GONE_TAG, 'label:' + KEEP_LABEL)))])
    else:
        gone = store.ingest(observation(unit(3), GONE_LABEL, (GONE_TAG,),
                                        position=(20.0, 20.0, 0.5))).engram_id
    store.close()
    return keeper, gone


def remove(store: MemoryStore, how: str, gone: int) -> None:
    """Take ``gone`` out of the memory the way ``how`` says."""
    if how == 'lru':            # reopened with short_term_capacity=2: a new engram evicts it
        result = store.ingest(observation(unit(4), 'filler', position=(-20.0, 0.0, 0.5)))
        assert result.evicted == [gone]
    elif how == 'budget':       # reopened with budget=1: the pinned keeper stays
        assert store.consolidate().evicted_ids == [gone]
    elif how == 'merge':
        store.edit(gone, add_tags=('room:kitchen',))        # changed: consolidation looks at it
        assert store.consolidate().merged == 1
    elif how == 'forget':
        assert store.forget([gone]).forgotten_ids == [gone]
    elif how == 'forget-nothing':
        # an eviction, then a forget that matches nothing still purges what it left
        result = store.ingest(observation(unit(4), 'filler', position=(-20.0, 0.0, 0.5)))
        assert result.evicted == [gone]
        assert store.forget(selection=EngramFilter(tags_all=('color:nomatchqq',))
                            ).forgotten_ids == []
    assert gone not in store.indexed_ids() and store.get([gone]) == []


CONFIG = {'lru': {'short_term_capacity': 2}, 'budget': {'budget': 1},
          'forget-nothing': {'short_term_capacity': 2}}


def found(directory: Path, needles: list[bytes]) -> set[bytes]:
    return {n for n in needles if scan(directory, [n])}


@pytest.mark.parametrize('how', ['lru', 'budget', 'merge', 'forget', 'forget-nothing'])
def test_a_removed_engram_survives_in_no_file(tmp_path, how):
    directory = tmp_path / 'store'
    keeper, gone = make_store(directory, how)
    store = open_memory(directory, **CONFIG.get(how, {}))
    # a merge folds the removed engram's tags into the keeper: only its vector must go
    words = () if how == 'merge' else (GONE_LABEL, GONE_TAG.split(':')[1])
    gone_needles = needles_of(store, gone, words)
    store.close()
    # before the removal the database and the saved index cache hold every needle: the scan
    # can see them (the words in the database, float32 in the database, bf16 in the cache)
    assert found(directory, gone_needles) == set(gone_needles)
    assert found(directory / 'index', gone_needles[-1:]) == set(gone_needles[-1:])

    store = open_memory(directory, **CONFIG.get(how, {}))
    remove(store, how, gone)
    if how != 'lru':            # a forget or a consolidation purged at once
        assert scan(directory, gone_needles) == []
    keep_needles = needles_of(store, keeper, (KEEP_LABEL, KEEP_TAG.split(':')[1]))
    store.close()
    assert scan(directory, gone_needles) == []
    # the kept engram is still in the database and in the saved (compacted) index cache
    assert found(directory, keep_needles) == set(keep_needles)
    in_cache = [keep_needles[0], keep_needles[1], keep_needles[3]]   # words and bf16
    assert found(directory / 'index', in_cache) == set(in_cache)
    store = open_memory(directory)
    ids = store.indexed_ids()
    assert keeper in ids and gone not in ids and store.index.tombstones == 0
    assert store.audit.verify().ok
    store.close()


def test_the_index_compacts_in_ram_past_its_threshold(tmp_path):
    """Churn leaves tombstones; past the threshold a forget rebuilds the index without them,
    and recall still finds the live engrams."""
    store = open_memory(tmp_path / 'store')
    vectors = np.random.default_rng(5).normal(size=(3000, DIM)).astype(np.float32)
    ids = store.bulk_load([Engram.from_observation(0, observation(
        v, f'thing{i}', ('color:red',) if i % 2 else (), position=(i * 0.01, 0.0, 0.5)))
        for i, v in enumerate(vectors)])
    store.forget(ids[:900])                      # 900 tombstones: below the threshold
    assert store.index.tombstones == 900
    store.forget(ids[900:1200])                  # 1200 >= 1024 and >= 25% of 3000 slots
    assert store.index.tombstones == 0 and store.index.slot_count == 1800
    assert not store.index.has_dead_entries()
    index = store.index
    for k in (1200, 2000, 2999):
        slots, sims = index.dense_topk(vectors[k], 1, None)
        assert int(index.ids_of(slots)[0]) == ids[k] and sims[0] > 0.99
    assert len(index.filter(tags_all=('color:red',))) == 900
    store.close()


def test_compaction_drops_dead_tag_names_and_ids():
    index = EngramIndex(DIM)
    index.add(1, unit(1), kind=1, position=np.zeros(3), first_seen=1.0, last_seen=2.0,
              tags=('color:zqxdead', 'label:mug'))
    index.add(2, unit(2), kind=1, position=np.ones(3), first_seen=3.0, last_seen=4.0,
              tags=('label:cup',), score=0.7, count=3)
    before = index.vectors_of(np.array([index.slot_of(2)]))
    index.remove(1)
    assert index.has_dead_entries()
    index.compact()
    assert not index.has_dead_entries() and 1 not in index and len(index) == 1
    assert index._tags.names == ['label:cup'] and index._id_map.n == 1
    slot = index.slot_of(2)
    assert np.array_equal(index.vectors_of(np.array([slot])), before)   # codes kept exactly
    assert index.tags_of(slot) == ('label:cup',) and index.counts_of(np.array([slot]))[0] == 3
    assert index.last_seen_of(np.array([slot]))[0] == 4.0


# ---------------------------------------------------------------- evidence a merge drops

def evidence_files(store: MemoryStore, n: int, tag: str) -> list[str]:
    evidence = EvidenceStore(store.storage.evidence_dir)
    return [evidence.write('crop.jpg', f'{tag}-{i}'.encode() * 8, 'image') for i in range(n)]


def on_disk(store: MemoryStore, uri: str) -> bool:
    return EvidenceStore(store.storage.evidence_dir).path_of(uri).exists()


def test_evidence_a_merge_on_ingest_drops_is_deleted_unless_referenced(tmp_path):
    store = open_memory(tmp_path / 'store')
    cap = MergePolicy().max_evidence
    uris = evidence_files(store, cap + 2, 'mug')
    other = store.ingest(observation(unit(9), 'sofa', position=(9.0, 9.0, 0.5),
                                     evidence=(uris[0],))).engram_id   # shares the first file
    for uri in uris:
        store.ingest(observation(unit(1), 'mug', evidence=(uri,)))
    mug = [e for e in store.list_engrams().engrams if e.label == 'mug']
    assert len(mug) == 1 and mug[0].evidence == tuple(uris[2:])
    assert on_disk(store, uris[0])               # still the sofa's evidence
    assert not on_disk(store, uris[1])           # fell off the capped list, nobody's: gone
    assert all(on_disk(store, u) for u in uris[2:])
    store.forget([other])
    assert not on_disk(store, uris[0])
    store.close()


@pytest.mark.parametrize('batch', [False, True])
def test_evidence_a_consolidation_merge_drops_is_deleted(tmp_path, batch):
    store = open_memory(tmp_path / 'store', batch_consolidation_min=1 if batch else 512)
    first, second = evidence_files(store, 5, 'a'), evidence_files(store, 5, 'b')
    ids = store.bulk_load([Engram.from_observation(0, observation(unit(1), 'mug', evidence=ev))
                           for ev in (first, second)])
    store.bulk_load([Engram.from_observation(0, observation(
        unit(7), 'lamp', position=(5.0, 5.0, 0.5), evidence=(first[1],)))])   # shares one
    assert store.consolidate().merged == 1
    [kept] = store.get([ids[0]])
    assert kept.evidence == tuple(first[2:] + second)       # the 8 most recent
    assert not on_disk(store, first[0])
    assert on_disk(store, first[1])                         # the lamp still uses it
    assert all(on_disk(store, u) for u in kept.evidence)
    store.close()


# ---------------------------------------------------------------- never outside the store

@pytest.fixture
def outside(tmp_path):
    """A file outside the store, and a symlink inside evidence/ to its folder."""
    folder = tmp_path / 'elsewhere'
    folder.mkdir()
    victim = folder / 'precious.jpg'
    victim.write_bytes(b'not the memory\'s')
    return folder, victim


def test_no_deletion_follows_a_symlink_out_of_the_evidence_dir(tmp_path, outside):
    folder, victim = outside
    policy = PrivacyPolicy.parse(zones=['circle:10,10,2'])
    store = open_memory(tmp_path / 'store', privacy=policy)
    evidence_dir = store.storage.evidence_dir
    (evidence_dir / 'image').mkdir(exist_ok=True)
    link = evidence_dir / 'image' / 'elsewhere'
    os.symlink(folder, link)
    uri = (link / victim.name).as_uri()          # lexically inside evidence/
    # a privacy drop deletes the refused observation's evidence
    with pytest.raises(ObservationExcluded):
        store.ingest(observation(unit(1), 'towel', position=(10.0, 10.0, 0.5),
                                 evidence=(uri,)))
    assert victim.exists()
    # a forget deletes the evidence only the forgotten engram referenced
    engram = store.ingest(observation(unit(2), 'mug', evidence=(uri,))).engram_id
    store.forget([engram])
    assert victim.exists()
    # a merge that drops it from a capped evidence list
    first = store.ingest(observation(unit(3), 'cup', position=(3.0, 0.0, 0.5),
                                     evidence=(uri,))).engram_id
    for uri_k in evidence_files(store, MergePolicy().max_evidence, 'cup'):
        store.ingest(observation(unit(3), 'cup', position=(3.0, 0.0, 0.5), evidence=(uri_k,)))
    assert uri not in store.get([first])[0].evidence
    assert victim.exists()
    # retention (every file expired) and the evidence store's own delete
    store.config.privacy.retention['image'] = 1.0
    store.consolidate(now=time.time() + 3600.0)
    assert not EvidenceStore(evidence_dir).delete(uri)
    assert victim.exists() and folder.is_dir()
    store.close()
