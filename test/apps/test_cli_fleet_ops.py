"""`engram fleet consolidate | forget`, run for real (`python -m engram_ros.apps.cli`) on a
milvus-lite file written by two robots' backends: exit statuses 0 (done), 3 (another
consolidator holds the lock), 2 (forget without a store to audit it), 1 (no collection)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.consolidate import merged_id
from engram_ros.core.fleet.lease import OsLock
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Engram
from engram_ros.core.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
DIM = 16


def _release(path: str) -> None:
    """Stop this process's milvus-lite server of ``path`` (closing a client leaves it running
    until the process exits), so that the CLI's process can open the file."""
    from milvus_lite.server_manager import server_manager_instance
    server_manager_instance.release_server(path)


def engram(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def fleet_db(tmp_path: Path) -> str:
    """robot1 and robot2 each saw the same mug; robot2 also a plant."""
    path = str(tmp_path / 'fleet.db')
    mug = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    rows = {'robot1': [(11, 'mug', 1.0, mug)], 'robot2': [(21, 'mug', 1.1, mug),
                                                          (22, 'plant', -6.0, -mug)]}
    for robot, items in rows.items():
        backend = MilvusBackend(path, DIM, model='clip', frame_id='map', robot_id=robot)
        backend.put([Engram(id=i, kind='object', frame_id='map', position=np.array([x, 0, 0.5]),
                            vector=v / np.linalg.norm(v), first_seen=100.0 + i,
                            last_seen=100.0 + i, valid_from=100.0 + i, label=label,
                            tags=(f'label:{label}',), observation_count=2)
                     for i, label, x, v in items])
        backend.close()
    _release(path)
    return path


def _current(path: str) -> list[int]:
    backend = MilvusBackend.open_existing(path)
    try:
        return backend.select(Stage1Filter()).tolist()
    finally:
        backend.close()
        _release(path)


def test_consolidate_merges_once_and_a_second_run_does_nothing(fleet_db: str) -> None:
    first = engram('--json', 'fleet', 'consolidate', fleet_db, '--holder', 'c1')
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert (done['status'], done['merged'], done['holder']) == ('ok', 2, 'c1')
    assert done['merged_ids'] == [merged_id([11, 21])]
    again = engram('fleet', 'consolidate', fleet_db)
    assert again.returncode == 0 and again.stdout.startswith('ok: merged 0 engrams')
    assert _current(fleet_db) == [22, merged_id([11, 21])]


def test_consolidate_is_refused_while_another_holds_the_lock(fleet_db: str) -> None:
    lock = OsLock(fleet_db + '.consolidate.lock')
    lock.acquire('c-other')
    try:
        out = engram('fleet', 'consolidate', fleet_db, '--holder', 'c2')
    finally:
        lock.release()
    assert out.returncode == 3
    assert 'refused (locked)' in out.stderr and 'c-other' in out.stderr
    assert _current(fleet_db) == [11, 21, 22]


def test_forget_by_robot_is_audited_in_the_asking_store(fleet_db: str, tmp_path: Path) -> None:
    store_dir = tmp_path / 'store'
    MemoryStore(SQLiteStorage(store_dir), StoreConfig(dim=DIM)).close()
    missing = engram('fleet', 'forget', fleet_db, '--robot', 'robot2', '--yes')
    assert missing.returncode == 2 and '--store' in missing.stderr
    dry = engram('--store', str(store_dir), 'fleet', 'forget', fleet_db, '--robot', 'robot2',
                 '--dry-run')
    assert dry.returncode == 0 and 'would forget 2 fleet engrams' in dry.stdout
    assert _current(fleet_db) == [11, 21, 22]
    done = engram('--store', str(store_dir), '--as', 'robot1/memory', 'fleet', 'forget',
                  fleet_db, '--robot', 'robot2', '--yes')
    assert done.returncode == 0, done.stderr
    assert 'forgot 2 fleet engrams' in done.stdout
    assert _current(fleet_db) == [11]
    log = AuditLog(store_dir / 'audit.jsonl')
    try:
        forgets = [r for r in log.records() if r['action'] == 'fleet_forget']
    finally:
        log.close()
    assert [r['params']['dry_run'] for r in forgets] == [True, True, False]
    assert forgets[-1]['requester'] == 'robot1/memory'
    assert forgets[-1]['result']['ids'] == [21, 22]


def test_a_missing_collection_fails_with_status_1_a_bad_lease_time_with_2(tmp_path: Path
                                                                          ) -> None:
    path = str(tmp_path / 'empty.db')
    out = engram('fleet', 'consolidate', path, '--collection', 'nope')
    assert out.returncode == 1 and "no collection 'nope'" in out.stderr
    out = engram('fleet', 'consolidate', path, '--ttl', '0')
    assert out.returncode == 2 and 'seconds > 0' in out.stderr
