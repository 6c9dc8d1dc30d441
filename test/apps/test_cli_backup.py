"""``engram backup``: a consistent, private copy of a store, also while the memory node runs
and is written to; a restored backup opens, verifies and answers the same recalls.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditLog
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import SQLiteStorage

from private_files import loose

ROOT = Path(__file__).resolve().parents[2]
DIM = 16


def engram(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _open(directory: Path) -> MemoryStore:
    storage = SQLiteStorage(directory, create=not directory.exists())
    return MemoryStore(storage, StoreConfig(dim=DIM),
                       audit=AuditLog(directory / AUDIT_FILE_NAME),
                       evidence=EvidenceStore(storage.evidence_dir))


def _answers(store: MemoryStore, vector: np.ndarray) -> list[tuple[int, str, float, tuple]]:
    hits = store.recall(RecallQuery(vector=vector, k=10)).hits
    return [(h.engram.id, h.engram.label, round(h.dense, 6), h.engram.evidence) for h in hits]


def test_a_restored_backup_verifies_and_answers_the_same(tmp_path: Path) -> None:
    source = tmp_path / 'store'
    store = _open(source)
    rng = np.random.default_rng(11)
    for i, label in enumerate(('mug', 'book', 'plant', 'lamp')):
        uri = store.evidence.write(f'{label}.png', f'pixels of {label}'.encode(), 'image')
        store.ingest(Observation(kind='object', frame_id='map', position=np.array([i, 0.0, 0.5]),
                                 stamp=time.time(), vector=rng.normal(size=DIM), label=label,
                                 evidence=(uri,)))
    store.evidence.write('orphan.png', b'referenced by no engram', 'image')
    query = rng.normal(size=DIM)
    expected = _answers(store, query)
    # The memory is open (its writer connection, WAL and audit log in use) during the backup.
    done = engram('--store', str(source), 'backup', str(tmp_path / 'backup'))
    store.close()
    assert done.returncode == 0, done.stderr
    assert 'backup of 4 engrams, 4 evidence files' in done.stdout
    assert loose(tmp_path / 'backup') == []                   # as private as a store
    assert not list((tmp_path / 'backup' / 'evidence').rglob('orphan*'))

    # Restore: the backup goes where the store was (evidence URIs name that path).
    source.rename(tmp_path / 'old')
    shutil.move(tmp_path / 'backup', source)
    checked = engram('--store', str(source), 'verify')
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert 'every referenced evidence file exists' in checked.stdout
    restored = _open(source)
    try:
        assert _answers(restored, query) == expected
    finally:
        restored.close()


def test_backup_refuses_a_target_that_is_not_empty_and_a_non_store(tmp_path: Path) -> None:
    store = _open(tmp_path / 'store')
    store.close()
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'keep.txt').write_text('mine')
    done = engram('--store', str(tmp_path / 'store'), 'backup', str(tmp_path / 'full'))
    assert done.returncode == 1 and 'not empty' in done.stderr
    assert [p.name for p in (tmp_path / 'full').iterdir()] == ['keep.txt']
    (tmp_path / 'plain').mkdir()
    done = engram('--store', str(tmp_path / 'plain'), 'backup', str(tmp_path / 'new'))
    assert done.returncode == 1 and 'not a store' in done.stderr
    assert not (tmp_path / 'new').exists()


# ---------------------------------------------------------------------------------------------
# While the memory node runs and a publisher keeps sending observations

def test_backup_of_a_running_memory_holds_every_acknowledged_engram(
        test_node, start_memory, tmp_path):
    pytest.importorskip('rclpy')
    from conftest import wait_for
    from memory_graph import Memory
    from memory_graph import observation

    store = tmp_path / 'store'
    process, namespace = start_memory(store_dir=store)
    memory = Memory(test_node, process, namespace)
    stop = threading.Event()
    labels = ('mug', 'book', 'kitchen', 'plant')

    def publish() -> None:     # distinct things 3 m apart: each one a new engram
        i = 0
        while not stop.is_set():
            memory.publish(observation(labels[i % 4], (3.0 * i, 0.0, 0.5)))
            i += 1
            stop.wait(0.02)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        assert wait_for(lambda: memory.count() >= 10, 20.0), process.log()
        listed = memory.client.list_engrams(limit=1000, kinds=['object'])
        acknowledged = {e.id for e in listed.engrams}     # answered: committed
        done = engram('--store', str(store), 'backup', str(tmp_path / 'backup'))
        during = memory.count()
    finally:
        stop.set()
        publisher.join(10.0)
    assert done.returncode == 0, done.stderr
    assert process.stop() == 0, process.log()
    assert during >= len(acknowledged) >= 10

    checked = engram('--store', str(tmp_path / 'backup'), 'verify')
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with SQLiteStorage(tmp_path / 'backup', create=False) as backup:
        held = {e.id for e in backup.iter_all()}
    assert acknowledged <= held
    assert loose(tmp_path / 'backup') == []
