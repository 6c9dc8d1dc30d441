"""The write queue of the memory node: what storage refused waits, in order, and is written
once storage works again; a full queue refuses and counts; retries back off.

The storage fault is real: a second process holds SQLite's write lock (``BEGIN IMMEDIATE``)
on the database the queue writes to, and releases it when told.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engram_ros.core.audit import AuditError
from engram_ros.core.memory.write_queue import is_storage_error
from engram_ros.core.memory.write_queue import RETRY_MAX
from engram_ros.core.memory.write_queue import RETRY_MIN
from engram_ros.core.memory.write_queue import StorageFaults
from engram_ros.core.memory.write_queue import WriteQueue
from engram_ros.core.storage import StoreClosedError

_HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute('BEGIN IMMEDIATE')
    print('locked', flush=True)
    sys.stdin.readline()
    conn.execute('COMMIT')
""")


class Clock:
    """A clock the test moves (the back-off is what is under test, not time)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Table:
    """Rows written to a real SQLite database; writes fail at once while it is locked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute('PRAGMA journal_mode = WAL')
            conn.execute('CREATE TABLE rows (n INTEGER)')
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=0.0)

    def write(self, n: int) -> None:
        self.conn.execute('INSERT INTO rows (n) VALUES (?)', (n,))

    def rows(self) -> list[int]:
        return [r[0] for r in self.conn.execute('SELECT n FROM rows ORDER BY rowid')]


@pytest.fixture
def table(tmp_path: Path) -> Table:
    return Table(tmp_path / 'rows.sqlite3')


def hold_lock(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, '-c', _HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'locked'
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.stdin.write('\n')
    holder.stdin.flush()
    assert holder.wait(10) == 0


def test_a_locked_database_keeps_the_writes_in_order_until_it_is_free(table: Table) -> None:
    clock = Clock()
    queue = WriteQueue(table.write, capacity=10, clock=clock)
    holder = hold_lock(table.path)
    try:
        for n in range(1, 6):
            assert queue.put(n)
        drained = queue.drain()
        assert isinstance(drained.error, sqlite3.OperationalError)
        assert 'locked' in str(drained.error)
        assert drained.written == 0 and len(queue) == 5
        assert queue.failing and queue.failures == 1 and 'locked' in queue.last_error
        assert not queue.due()                  # backing off
        clock.now += RETRY_MIN
        assert queue.due()
        assert queue.drain().error is not None and queue.failures == 2
        assert table.rows() == []
    finally:
        release(holder)
    clock.now += RETRY_MAX
    drained = queue.drain()
    assert drained.error is None and drained.written == 5
    assert table.rows() == [1, 2, 3, 4, 5]
    assert len(queue) == 0 and not queue.failing and queue.last_error == ''
    assert queue.written_late == 5 and queue.overflowed == 0


def test_a_full_queue_refuses_and_counts(table: Table) -> None:
    queue = WriteQueue(table.write, capacity=3)
    assert [queue.put(n) for n in range(5)] == [True, True, True, False, False]
    assert queue.overflowed == 2 and len(queue) == 3
    assert queue.drain().written == 3
    assert table.rows() == [0, 1, 2]
    assert queue.put(9) and queue.drain().written == 1


def test_back_off_doubles_up_to_its_maximum() -> None:
    clock = Clock()

    def full(item: int) -> None:
        raise OSError(28, 'No space left on device')

    queue = WriteQueue(full, capacity=2, retry_min=0.5, retry_max=4.0, clock=clock)
    queue.put(1)
    waits = []
    for _ in range(6):
        assert queue.drain().error is not None
        start = clock.now
        while not queue.due():
            clock.now += 0.25
        waits.append(clock.now - start)
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    failures = queue.failures
    assert queue.drain().error is not None and queue.failures == failures + 1   # due: tried
    # Not due (backing off): a drain does nothing, no attempt is counted.
    assert queue.drain().error is None and queue.failures == failures + 1


def test_an_error_that_is_not_storage_drops_only_that_item(table: Table) -> None:
    def write(item: int) -> None:
        if item == 2:
            raise ValueError('malformed')
        table.write(item)

    queue = WriteQueue(write, capacity=5)
    for n in (1, 2, 3):
        queue.put(n)
    drained = queue.drain()
    assert drained.written == 2 and [i for i, _ in drained.rejected] == [2]
    assert table.rows() == [1, 3] and not queue.failing


def test_storage_errors_are_told_apart_from_bad_requests() -> None:
    for exc in (sqlite3.OperationalError('database or disk is full'), OSError(27, 'EFBIG'),
                StoreClosedError('closed'), AuditError('cannot append')):
        assert is_storage_error(exc)
    for exc in (ValueError('bad'), sqlite3.IntegrityError('constraint'), KeyError('x')):
        assert not is_storage_error(exc)


def test_storage_faults_say_what_fails_until_it_works() -> None:
    faults = StorageFaults()
    assert faults.summary() == ''
    faults.failed('ingest', sqlite3.OperationalError('database is locked'))
    faults.failed('recall', AuditError('cannot append to the audit log'))
    assert faults.errors == 2
    assert faults.summary() == ('storage failing: ingest: OperationalError: database is '
                                'locked; recall: AuditError: cannot append to the audit log')
    faults.succeeded('ingest')
    faults.succeeded('recall')
    assert faults.summary() == '' and faults.errors == 2


@pytest.mark.parametrize('kwargs', [dict(capacity=0), dict(retry_min=0.0),
                                    dict(retry_min=2.0, retry_max=1.0)])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        WriteQueue(lambda item: None, **kwargs)
