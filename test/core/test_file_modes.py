"""A store is private: directories 0700, files 0600, unreadable to other users, also when it
was made by an older version, and whichever part of the code wrote the file.

The attack is a real process that dropped to ``nobody`` (see ``test/private_files.py``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditLog
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.storage import SQLiteStorage

from private_files import assert_private
from private_files import loose
from private_files import open_directory
from private_files import tree

REPO_ROOT = Path(__file__).resolve().parents[2]
DIM = 8


def _fill(directory: Path, *, close: bool = True) -> MemoryStore:
    """A memory with engrams, evidence, an audit log and (closed) a saved index cache."""
    storage = SQLiteStorage(directory)
    evidence = EvidenceStore(storage.evidence_dir)
    store = MemoryStore(storage, StoreConfig(dim=DIM), audit=AuditLog(directory / AUDIT_FILE_NAME),
                        evidence=evidence)
    for i, label in enumerate(('mug', 'book', 'plant')):
        uri = evidence.write(f'{label}_crop.jpg', b'jpeg bytes of a ' + label.encode(), 'image')
        store.ingest(Observation(kind='object', frame_id='map',
                                 position=np.array([2.0 * i, 0.0, 0.5]), stamp=1.7e9 + i,
                                 vector=np.eye(DIM)[i], label=label, evidence=(uri,)))
    if close:
        store.close()
    return store


def test_a_store_made_by_the_core_is_private(tmp_path: Path) -> None:
    store = _fill(open_directory(tmp_path) / 'store', close=False)
    directory = store.storage.directory
    try:
        assert (directory / 'engrams.sqlite3-wal').exists()     # while it is open
        assert_private(directory)
    finally:
        store.close()
    assert (directory / 'index' / 'hnsw.faiss').exists()       # the index cache was saved
    assert_private(directory)


def test_a_store_made_before_is_made_private_when_it_opens(tmp_path: Path, caplog) -> None:
    directory = open_directory(tmp_path) / 'store'
    _fill(directory)
    for path in tree(directory):                 # what older versions left: 0755 / 0644
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert loose(directory) != []
    with caplog.at_level(logging.WARNING):
        SQLiteStorage(directory).close()
    assert 'readable by other users; made private' in caplog.text
    assert_private(directory)


def test_a_store_made_by_the_cli_is_private(tmp_path: Path) -> None:
    source = _fill(tmp_path / 'source').storage.directory
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    export = tmp_path / 'export.jsonl'
    target = open_directory(tmp_path) / 'store'

    def engram(*args: str) -> None:
        done = subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr

    engram('--store', str(source), 'export', str(export))
    engram('--store', str(target), 'import', str(export))
    assert_private(target)
