"""The memory node's files and durability: its store is private (0700/0600, unreadable to other
users, while it runs and after), and what changed since the last consolidation survives a
``kill -9``, so duplicates written just before it are still merged.
"""

from __future__ import annotations

import signal

import pytest

from conftest import wait_for
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation
from private_files import assert_private
from private_files import open_directory

rclpy = pytest.importorskip('rclpy')

from engram_ros.srv import Consolidate  # noqa: E402


def test_a_store_made_by_the_node_is_private(test_node, start_memory, tmp_path):
    store = open_directory(tmp_path) / 'store'
    process, namespace = start_memory(store_dir=store)
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)
    assert (store / 'engrams.sqlite3-wal').exists() and (store / 'audit.jsonl').exists()
    assert_private(store)                        # while it runs: database, WAL, SHM, audit
    assert process.stop() == 0, process.log()
    assert (store / 'index' / 'hnsw.faiss').exists()
    assert_private(store)                        # after a clean stop: the index cache too
    process, namespace = start_memory(store_dir=store)
    memory = Memory(test_node, process, namespace)
    assert memory.count() == 2
    assert wait_for(lambda: memory.diagnostic('index_cache') == 'loaded', 30.0), process.log()


def test_duplicates_written_before_a_kill_9_are_merged_after_the_restart(
        test_node, start_memory, tmp_path):
    store = tmp_path / 'store'
    # Ingest merges nothing farther than 5 cm: two sightings of the mug 20 cm apart stay two.
    process, namespace = start_memory(None, store, 'merge_radius.object:=0.05')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('mug', (1.2, 2.0, 0.8))],
           expected=2)
    process.stop(signal.SIGKILL)                 # no clean close, no consolidation

    # Restarted with the default 50 cm radius, the two are duplicates of one mug. A new
    # namespace: the killed node's services linger in DDS discovery for a while.
    process, namespace = start_memory(None, store)
    memory = Memory(test_node, process, namespace)
    assert memory.count() == 2
    # no cache after a kill -9: the index was rebuilt from storage
    assert wait_for(lambda: memory.diagnostic('index_cache') == 'rebuilt', 30.0), process.log()
    # rebuilt from storage: the graph is built in the background, and reported once ready
    assert wait_for(lambda: memory.diagnostic('index_graph') == 'ready', 30.0), process.log()
    response = memory.client.consolidate()
    assert response.status == Consolidate.Response.STATUS_OK, response.message
    assert response.merged == 1, process.log()
    assert memory.count() == 1
