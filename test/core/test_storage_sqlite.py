"""Tests of engram_ros.core.storage.sqlite: the files of a store, reopening, crashes, evidence."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from engram_ros.core.storage import SCHEMA_VERSION
from engram_ros.core.storage import SQLiteStorage

from test_storage_base import assert_same
from test_storage_base import make_engram
from test_storage_base import REPO_ROOT


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStorage]:
    backend = SQLiteStorage(tmp_path / 'store')
    yield backend
    backend.close()


def test_store_layout(sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    directory = tmp_path / 'store'
    assert sqlite_store.persistent is True
    assert sqlite_store.directory == directory
    assert sqlite_store.evidence_dir == directory / 'evidence'
    assert sqlite_store.index_dir == directory / 'index'
    assert (directory / 'evidence').is_dir() and (directory / 'index').is_dir()
    marker = json.loads((directory / 'STORE').read_text())
    assert marker['format'] == 'engram_ros store'
    assert marker['schema_version'] == SCHEMA_VERSION
    assert 'created' in marker
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    try:
        assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
        assert conn.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)
        indexes = {row[1] for row in conn.execute('PRAGMA index_list(engram_tags)')}
        assert 'engram_tags_by_tag' in indexes
    finally:
        conn.close()


def test_tag_rows_follow_put_and_delete(sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    sqlite_store.put([make_engram(1), make_engram(2)])
    sqlite_store.put([make_engram(1, version=3)])
    sqlite_store.delete([2])
    conn = sqlite3.connect(tmp_path / 'store' / 'engrams.sqlite3')
    try:
        rows = sorted(conn.execute('SELECT engram_id, tag FROM engram_tags'))
    finally:
        conn.close()
    assert rows == [(1, tag) for tag in sorted(make_engram(1, version=3).tags)]


def test_reopen_finds_the_same_engrams_and_does_not_reuse_ids(tmp_path: Path) -> None:
    engrams = [make_engram(i) for i in range(1, 31)]
    with SQLiteStorage(tmp_path / 'store') as first:
        first.put(engrams)
        first.set_meta('model', 'clip')
        allocated = [first.next_id() for _ in range(3)]
        first.delete([allocated[-1], 30])
    assert not (tmp_path / 'store' / 'engrams.sqlite3-wal').exists(), 'close left a connection'
    with SQLiteStorage(tmp_path / 'store', create=False) as second:
        assert second.count() == 29
        for actual, expected in zip(second.iter_all(), engrams[:29]):
            assert_same(actual, expected)
        assert second.get_meta('model') == 'clip'
        assert second.next_id() > allocated[-1]


def test_committed_writes_survive_a_crash(tmp_path: Path) -> None:
    script = (
        'import os, sys\n'
        'from engram_ros.core.storage import SQLiteStorage\n'
        'from test_storage_base import make_engram\n'
        'store = SQLiteStorage(sys.argv[1])\n'
        'store.put([make_engram(i) for i in range(1, 11)])\n'
        'store.next_id()\n'
        'os._exit(0)\n')
    path = os.pathsep.join([str(REPO_ROOT), str(Path(__file__).parent)])
    env = dict(os.environ, PYTHONPATH=path)
    subprocess.run([sys.executable, '-c', script, str(tmp_path / 'store')], check=True, env=env,
                   timeout=60)
    with SQLiteStorage(tmp_path / 'store', create=False) as reopened:
        assert reopened.count() == 10
        assert_same(reopened.get([10])[0], make_engram(10))
        assert reopened.next_id() > 11


def test_concurrent_use_closes_every_connection(tmp_path: Path) -> None:
    backend = SQLiteStorage(tmp_path / 'store')
    backend.put([make_engram(i) for i in range(1, 11)])
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        for _ in range(20):
            backend.get(list(range(1, 11)))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.close()
    # SQLite removes the WAL file when the last connection to the database closes.
    assert not (tmp_path / 'store' / 'engrams.sqlite3-wal').exists()


def test_delete_removes_evidence_owned_only_by_deleted_engrams(
        sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    evidence = sqlite_store.evidence_dir
    assert evidence is not None
    (evidence / 'crops').mkdir()
    owned_abs = evidence / 'crops' / 'a.jpg'
    owned_uri = evidence / 'crops' / 'a b.png'
    owned_rel = evidence / 'frame.jpg'
    shared = evidence / 'shared.jpg'
    outside = tmp_path / 'outside.jpg'
    for path in (owned_abs, owned_uri, owned_rel, shared, outside):
        path.write_bytes(b'jpeg')
    a = make_engram(1)
    a.evidence = (str(owned_abs), owned_uri.as_uri(), 'frame.jpg', str(shared), str(outside),
                  str(evidence / '..' / '..' / 'outside.jpg'), 'https://example.com/x.jpg')
    b = make_engram(2)
    b.evidence = (shared.as_uri(),)
    sqlite_store.put([a, b])

    assert sqlite_store.delete([1]) == 1
    assert not owned_abs.exists() and not owned_uri.exists() and not owned_rel.exists()
    assert shared.exists(), 'still referenced by engram 2'
    assert outside.exists(), 'files outside the evidence directory are never deleted'

    assert sqlite_store.delete([2]) == 1
    assert not shared.exists()
    assert outside.exists()


def test_put_does_not_delete_evidence(sqlite_store: SQLiteStorage) -> None:
    evidence = sqlite_store.evidence_dir
    assert evidence is not None
    crop = evidence / 'crop.jpg'
    crop.write_bytes(b'jpeg')
    engram = make_engram(1)
    engram.evidence = (str(crop),)
    sqlite_store.put([engram])
    engram.evidence = ()
    sqlite_store.put([engram])
    assert crop.exists()


# ---------------------------------------------------------------------------------------------
# What changed since the last consolidation survives a kill -9

_TWINS = """
import sys
import time

import numpy as np

from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage import SQLiteStorage

store = MemoryStore(SQLiteStorage(sys.argv[1]), StoreConfig(dim=8))
now = time.time()
twin = [Engram(id=0, kind='object', frame_id='map', position=np.array([1.0, 2.0, 0.5]),
               vector=np.full(8, 8 ** -0.5), first_seen=now, last_seen=now, label='mug',
               tags=('label:mug',)) for _ in range(2)]
store.bulk_load(twin)      # an import: loaded as they are, merged by the next consolidation
print('acknowledged', flush=True)
sys.stdin.read()           # until killed
"""


def test_duplicates_written_before_a_kill_9_are_merged_after_the_restart(
        tmp_path: Path) -> None:
    from engram_ros.core.memory import MemoryStore
    from engram_ros.core.memory import StoreConfig

    path = os.pathsep.join([str(REPO_ROOT), str(Path(__file__).parent)])
    child = subprocess.Popen([sys.executable, '-c', _TWINS, str(tmp_path / 'store')],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=path))
    try:
        assert child.stdout.readline().strip() == 'acknowledged'
    finally:
        child.kill()        # SIGKILL: no close, no consolidation
        child.wait(timeout=60)
    store = MemoryStore(SQLiteStorage(tmp_path / 'store', create=False), StoreConfig(dim=8))
    try:
        assert len(store) == 2
        report = store.consolidate()
        assert report.merged == 1 and len(store) == 1
        assert store.storage.dirty_ids() == []
    finally:
        store.close()


def test_synchronous_is_applied_and_off_is_refused(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / 'store', synchronous='full') as backend:
        backend.put([make_engram(1)])
        conn = backend._writer      # the writer the storage commits with
        assert conn.execute('PRAGMA synchronous').fetchone()[0] == 2   # FULL
    with pytest.raises(ValueError, match='NORMAL, FULL'):
        SQLiteStorage(tmp_path / 'other', synchronous='OFF')
    assert not (tmp_path / 'other').exists()
