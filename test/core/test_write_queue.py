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


class BatchTable(Table):
    """``write_many``: a batch in one transaction (all rows or none); an item that is not an
    int is refused alone, as the memory refuses an invalid observation."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[list] = []

    def write_many(self, items: list) -> list:
        self.batches.append(list(items))
        out: list = [ValueError(f'not a row: {i!r}') if not isinstance(i, int) else None
                     for i in items]
        self.conn.execute('BEGIN IMMEDIATE')
        try:
            self.conn.executemany('INSERT INTO rows (n) VALUES (?)',
                                  [(i,) for i in items if isinstance(i, int)])
        except BaseException:
            self.conn.execute('ROLLBACK')
            raise
        self.conn.execute('COMMIT')
        return out


@pytest.fixture
def batch_table(tmp_path: Path) -> BatchTable:
    return BatchTable(tmp_path / 'rows.sqlite3')


def test_drain_hands_batches_of_at_most_max_batch(batch_table: BatchTable) -> None:
    queue = WriteQueue(write_many=batch_table.write_many, capacity=10)
    for n in range(7):
        queue.put(n)
    drained = queue.drain(max_batch=3)
    assert drained.written == 7 and drained.error is None and len(queue) == 0
    assert batch_table.batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert batch_table.rows() == list(range(7))


def test_a_locked_database_keeps_the_whole_batch_in_order(batch_table: BatchTable) -> None:
    clock = Clock()
    queue = WriteQueue(write_many=batch_table.write_many, capacity=10, clock=clock)
    holder = hold_lock(batch_table.path)
    try:
        for n in range(1, 6):
            queue.put(n)
        drained = queue.drain(max_batch=4)
        assert isinstance(drained.error, sqlite3.OperationalError)
        assert drained.written == 0 and len(queue) == 5
        assert queue.failing and queue.failures == 1 and not queue.due()
        assert batch_table.rows() == []
        queue.put(6)
    finally:
        release(holder)
    clock.now += RETRY_MAX
    drained = queue.drain(max_batch=4)
    assert drained.written == 6 and drained.error is None
    assert batch_table.rows() == [1, 2, 3, 4, 5, 6]
    assert queue.written_late == 6 and not queue.failing and queue.last_error == ''


def test_a_refused_item_of_a_batch_is_rejected_alone(batch_table: BatchTable) -> None:
    queue = WriteQueue(write_many=batch_table.write_many, capacity=10)
    for item in (1, 'two', 3):
        queue.put(item)
    drained = queue.drain(max_batch=8)
    assert drained.written == 2 and [i for i, _ in drained.rejected] == ['two']
    assert isinstance(drained.rejected[0][1], ValueError)
    assert batch_table.rows() == [1, 3] and not queue.failing


def test_items_that_failed_on_storage_stay_first_in_order(table: Table) -> None:
    """A batch whose writer answers a storage error for some items only: those wait, first,
    in their order; the others are written."""
    clock = Clock()

    def write_many(items: list[int]) -> list:
        out: list = []
        for n in items:
            if n % 2:
                out.append(OSError(28, 'No space left on device'))
            else:
                table.write(n)
                out.append(None)
        return out

    queue = WriteQueue(write_many=write_many, capacity=10, clock=clock)
    for n in range(6):
        queue.put(n)
    drained = queue.drain(max_batch=4)
    assert drained.written == 2 and isinstance(drained.error, OSError)
    assert queue.take_all() == [1, 3, 4, 5]
    assert table.rows() == [0, 2] and queue.failing and queue.failures == 1


def test_a_queue_needs_a_writer_and_a_positive_batch() -> None:
    with pytest.raises(ValueError):
        WriteQueue(capacity=3)
    with pytest.raises(ValueError):
        WriteQueue(lambda item: None).drain(max_batch=0)
