"""Storage faults never kill the memory node (issue 11, item 13), attacked for real.

Each test runs the node in its own process on a real store and breaks the storage under it: a
small tmpfs filled to the last page (ENOSPC), a file size limit set on the node's process
(``RLIMIT_FSIZE``: EFBIG), a second process holding SQLite's write lock (``BEGIN IMMEDIATE``),
and a child that dropped to an unprivileged user trying to take the store from it. While the
fault lasts the node stays alive, Recall answers (saying that storage fails), diagnostics
report ERROR with the count of storage errors; once the fault clears, every observation that
waited is written: none is lost (a full write queue would be counted; it stays empty here).
"""

from __future__ import annotations

import errno
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import wait_for
from memory_graph import Memory

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.storage import DATABASE_NAME  # noqa: E402
from engram_ros.ros.conversions import memory as conversions  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402

DIM = 256
#: Observations published while storage fails.
DURING = 6
#: [s] long enough for SQLite's busy timeout (30 s) and the longest back-off (30 s).
PATIENCE = 75.0


def thing(i: int):
    """A distinct object (own vector, label and place: it never merges with another)."""
    vec = np.random.default_rng(1000 + i).normal(size=DIM)
    return conversions.observation_to_msg(Observation(
        kind='object', frame_id='map', position=np.array([3.0 * i, 0.0, 0.5]),
        stamp=time.time(), vector=vec, label=f'thing{i}'))


def status_of(memory: Memory) -> DiagnosticStatus | None:
    for array in reversed(memory.diagnostics):
        for status in array.status:
            if 'engram_memory' in status.name:
                return status
    return None


def total(memory: Memory) -> int:
    return memory.client.list_engrams(limit=1).total


def survive(memory: Memory, fault_on, fault_off) -> None:
    """Break storage, check the node through it, clear it, check that nothing was lost."""
    memory.publish(thing(0))
    assert wait_for(lambda: total(memory) == 1, 15.0), memory.process.log()
    fault_on()
    try:
        memory.publish(*(thing(i) for i in range(1, DURING + 1)))

        def failing() -> bool:
            status = status_of(memory)
            return (status is not None and status.level == DiagnosticStatus.ERROR
                    and int(memory.diagnostic('storage_errors') or 0) > 0)
        assert wait_for(failing, PATIENCE), memory.process.log()
        assert 'storage failing' in status_of(memory).message
        assert int(memory.diagnostic('write_queue')) > 0

        answer = memory.client.recall(kinds=['object'], k=50, timeout=PATIENCE)
        assert 'storage failing' in answer.message, answer.message
        if answer.status == Recall.Response.STATUS_OK:
            assert 'thing0' in [e.label for e in answer.engrams]
        else:       # the recall itself could not be audited: refused, with the reason
            assert answer.status == Recall.Response.STATUS_INTERNAL_ERROR, answer.message
        assert memory.process.proc.poll() is None, memory.process.log()
    finally:
        fault_off()
    assert wait_for(lambda: memory.diagnostic('write_queue') == '0'
                    and total(memory) == DURING + 1, PATIENCE), memory.process.log()
    labels = {e.label for e in memory.client.list_engrams(limit=100).engrams}
    assert labels == {f'thing{i}' for i in range(DURING + 1)}
    assert memory.diagnostic('dropped_queue_full') == '0'
    assert int(memory.diagnostic('written_late')) >= 1
    answer = memory.client.recall(kinds=['object'], k=50)
    assert answer.status == Recall.Response.STATUS_OK, answer.message
    assert 'storage' not in answer.message and len(answer.engrams) == DURING + 1
    assert wait_for(lambda: status_of(memory).level != DiagnosticStatus.ERROR, 10.0)
    assert memory.process.stop() == 0, memory.process.log()


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 4 MiB tmpfs, unmounted at the end."""
    mount = tmp_path / 'small'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
    yield mount
    subprocess.run(['umount', '-l', str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it."""
    filler = directory / 'filler'
    chunk = b'\0' * 4096
    with open(filler, 'wb', buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler


def test_a_full_disk_queues_observations_until_space_returns(test_node, start_memory, tmpfs):
    process, namespace = start_memory(None, tmpfs / 'store')
    memory = Memory(test_node, process, namespace)
    filler: list[Path] = []
    survive(memory, lambda: filler.append(fill(tmpfs)), lambda: filler[0].unlink())


def test_a_file_size_limit_queues_observations_until_it_is_lifted(test_node, start_memory,
                                                                   tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(None, store)
    memory = Memory(test_node, process, namespace)
    pid = process.proc.pid

    def limit() -> None:
        # The write-ahead log grows with every write: at its current size, the next one fails.
        wal = store / f'{DATABASE_NAME}-wal'
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal.stat().st_size,
                                                      resource.RLIM_INFINITY))

    def lift() -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    survive(memory, limit, lift)


_HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute('BEGIN IMMEDIATE')
    print('locked', flush=True)
    sys.stdin.readline()
    conn.execute('ROLLBACK')
""")


def test_a_database_locked_by_another_process_delays_writes_only(test_node, start_memory,
                                                                  tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(None, store)
    memory = Memory(test_node, process, namespace)
    holder: list[subprocess.Popen] = []

    def lock() -> None:
        child = subprocess.Popen([sys.executable, '-c', _HOLDER, str(store / DATABASE_NAME)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holder.append(child)
        assert child.stdout.readline().strip() == 'locked'

    def unlock() -> None:
        holder[0].stdin.write('\n')
        holder[0].stdin.flush()
        assert holder[0].wait(10) == 0

    survive(memory, lock, unlock)


_UNPRIVILEGED = textwrap.dedent("""
    import json, os, sqlite3, sys
    store = sys.argv[1]
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    tried = {}
    try:
        conn = sqlite3.connect(os.path.join(store, sys.argv[2]), isolation_level=None,
                               timeout=0.0)
        conn.execute('BEGIN IMMEDIATE')
        conn.execute('UPDATE meta SET value = value WHERE 0')   # the write lock, if it can
        tried['lock'] = 'held'
    except sqlite3.Error as exc:
        tried['lock'] = f'refused: {exc}'
    for name, how in (('audit', os.path.join(store, 'audit.jsonl')),
                      ('create', os.path.join(store, 'intruder'))):
        try:
            os.close(os.open(how, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666))
            tried[name] = 'written'
        except OSError as exc:
            tried[name] = f'refused: {exc.strerror}'
    print(json.dumps(tried), flush=True)
    sys.stdin.readline()
""")


@pytest.fixture
def reachable():
    """A directory every local user may enter (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix='engram_faults_', dir='/tmp'))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Intruder:
    """A child process that dropped to an unprivileged user and attacks the store: it tries
    to take SQLite's write lock (and would hold it), to append to the audit log and to create
    a file in the store; it stays until told to leave."""

    def __init__(self, store: Path) -> None:
        self.child = subprocess.Popen(
            [sys.executable, '-c', _UNPRIVILEGED, str(store), DATABASE_NAME],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.tried = json.loads(self.child.stdout.readline())

    def leave(self) -> None:
        self.child.stdin.write('\n')
        self.child.stdin.flush()
        assert self.child.wait(10) == 0


def test_an_unprivileged_user_cannot_stop_the_memory(test_node, start_memory, reachable):
    """Root ignores file modes, so a chmod attack does nothing to the node (it runs as root
    here); an unprivileged local user attacks its store instead: every attempt is refused
    and the memory goes on writing while the intruder stays."""
    store = reachable / 'store'
    process, namespace = start_memory(None, store)
    memory = Memory(test_node, process, namespace)
    memory.publish(thing(0))
    assert wait_for(lambda: total(memory) == 1, 15.0), process.log()
    intruder = Intruder(store)
    try:
        assert all(outcome.startswith('refused') for outcome in intruder.tried.values()), \
            intruder.tried
        memory.publish(*(thing(i) for i in range(1, DURING + 1)))
        assert wait_for(lambda: total(memory) == DURING + 1, 15.0), process.log()
    finally:
        intruder.leave()
    assert not (store / 'intruder').exists()
    assert wait_for(lambda: memory.diagnostic('storage_errors') == '0', 10.0)
    assert status_of(memory).level != DiagnosticStatus.ERROR
    assert process.stop() == 0, process.log()
