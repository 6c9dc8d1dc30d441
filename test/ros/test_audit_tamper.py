"""The audit log of a real memory node under attack: a ``kill -9``, a cut tail, restarts.

The node runs in its own process with ``persist: true`` and a key file; the log is cut with
ordinary file writes, as a crash or someone who can write the store would; ``engram verify`` is
the real CLI in its own process.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from conftest import wait_for
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from engram_ros.core.keys import write_key_file  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402


def engram(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def files(directory: Path) -> dict[str, str]:
    """Every file's hash; but SQLite's ``-shm`` (its shared-memory WAL index, no data), which a
    read-only reader of a database with a WAL (here: left by the kill) may update."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob('*')) if p.is_file() and not p.name.endswith('-shm')}


def level(memory: Memory) -> int | None:
    for array in reversed(memory.diagnostics):
        for status in array.status:
            if memory.namespace.strip('/') in status.name or 'engram_memory' in status.name:
                return status.level
    return None


def test_a_cut_tail_after_kill_9_is_a_gap_reported_after_every_restart(test_node, start_memory,
                                                                          tmp_path):
    store = tmp_path / 'store'
    key = write_key_file(tmp_path / 'engram.key')
    keyed = f'audit_key_file:={key}'
    process, namespace = start_memory(None, store, keyed)
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)
    for _ in range(3):
        assert memory.client.recall(text='mug', k=5).status == Recall.Response.STATUS_OK
    assert wait_for(lambda: memory.diagnostic('audit_keyed') == 'true', 10.0)
    process.proc.send_signal(signal.SIGKILL)                 # a real crash: nothing is closed
    process.proc.wait(10)
    log = store / 'audit.jsonl'
    lines = log.read_text().splitlines()
    assert len(lines) >= 5
    log.write_text('\n'.join(lines[:-3]) + '\n')              # and the tail is cut

    # Verify (twice) finds it and changes nothing.
    before = files(store)
    for _ in range(2):
        out = engram('--store', str(store), '--key', str(key), 'verify')
        assert out.returncode == 1 and 'cut off the end' in out.stdout, out.stdout + out.stderr
    assert files(store) == before

    # The node starts (a crash must not brick a store), writes a gap record, reports ERROR.
    process, namespace = start_memory(namespace, store, keyed)
    memory = Memory(test_node, process, namespace)
    assert wait_for(lambda: memory.diagnostic('audit_gaps') == '1', 10.0), process.log()
    assert level(memory) == DiagnosticStatus.ERROR
    assert memory.client.recall(text='mug', k=5).status == Recall.Response.STATUS_OK
    assert process.stop() == 0, process.log()
    out = engram('--store', str(store), '--key', str(key), 'verify')
    assert out.returncode == 1 and 'gap before line' in out.stdout, out.stdout
    assert 'cut off the end' in out.stdout

    # Another restart: the gap is history now; verify still reports it.
    process, namespace = start_memory(namespace, store, keyed)
    memory = Memory(test_node, process, namespace)
    assert wait_for(lambda: memory.diagnostic('audit_gaps_logged') == '1', 10.0)
    assert memory.diagnostic('audit_gaps') == '0'
    assert process.stop() == 0, process.log()
    out = engram('--store', str(store), '--key', str(key), 'verify')
    assert out.returncode == 1 and 'gap before line' in out.stdout, out.stdout
