"""One fleet consolidator at a time, with real processes: a milvus-lite file hosted by one
process and reached by URI (as a fleet on one machine runs it), consolidators in others. A
second consolidator is refused by the OS lock (same machine) or by the lease (another lock,
standing for another machine); a holder killed with SIGKILL leaves a lease that blocks others
until it expires and is then taken with a larger token; a holder paused past its lease that
comes back finds the larger token and writes nothing."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.lease import HELD
from engram_ros.core.fleet.lease import Lease
from engram_ros.core.fleet.lease import LeaseLost
from engram_ros.core.fleet.lease import LeaseRecord
from engram_ros.core.fleet.lease import LeaseRefused
from engram_ros.core.fleet.lease import LOCKED
from engram_ros.core.fleet.lease import OsLock
from engram_ros.core.model.engram import Engram

DIM = 8
DEADLINE = 120.0

HOST = textwrap.dedent("""
    import sys
    from milvus_lite.server_manager import server_manager_instance
    print(server_manager_instance.start_and_get_uri(sys.argv[1]), flush=True)
    sys.stdin.read()
""")

#: A consolidator: takes the lock and the lease, prints its token (or its refusal, exit 3),
#: then runs a pass for each 'consolidate' line on stdin; exits at EOF without giving the
#: lease back (as a crash would leave it). Its clock runs ``offset`` seconds ahead, standing
#: for a consolidator that starts that much later.
HOLDER = textwrap.dedent("""
    import json, sys, time
    from engram_ros.core.backends.milvus import MilvusBackend
    from engram_ros.core.fleet.consolidate import consolidate_fleet, FLEET_OWNER
    from engram_ros.core.fleet.lease import Lease, LeaseRefused, OsLock
    uri, lock_path, holder, ttl, offset = sys.argv[1:6]
    lock = OsLock(lock_path)
    try:
        lock.acquire(holder)
        backend = MilvusBackend.open_existing(uri, robot_id=FLEET_OWNER)
        lease = Lease(backend, holder, ttl=float(ttl), lock=lock,
                      clock=lambda: time.time() + float(offset))
        lease.acquire()
    except LeaseRefused as exc:
        print(json.dumps({'refused': exc.status, 'message': str(exc)}), flush=True)
        sys.exit(3)
    print(json.dumps({'token': lease.token, 'pid': __import__('os').getpid()}), flush=True)
    for line in sys.stdin:
        if line.strip() == 'consolidate':
            print(json.dumps(consolidate_fleet(backend, lease).as_dict()), flush=True)
""")


def _line(proc: subprocess.Popen) -> str:
    """The next stdout line of ``proc``, waiting at most :data:`DEADLINE`."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], end - time.monotonic())
        if ready:
            line = proc.stdout.readline()
            assert line, f'process {proc.args} ended: {proc.stderr.read() if proc.stderr else ""}'
            return line
    raise AssertionError(f'no output from {proc.args} within {DEADLINE} s')


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.fixture()
def served(tmp_path: Path):
    """A milvus-lite file hosted by its own process; its URI, with one collection in it."""
    host = _start(HOST, str(tmp_path / 'fleet.db'))
    try:
        uri = _line(host).strip()
        assert uri.startswith('http://'), uri
        backend = MilvusBackend(uri, DIM, model='clip', robot_id='robot1')
        backend.close()
        yield uri
    finally:
        host.stdin.close()
        host.wait(timeout=DEADLINE)


def _holder(uri: str, lock: Path, holder: str, ttl: float = 600.0,
            offset: float = 0.0) -> tuple[subprocess.Popen, dict]:
    proc = _start(HOLDER, uri, str(lock), holder, str(ttl), str(offset))
    return proc, json.loads(_line(proc))


def _finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=DEADLINE)


def test_a_second_consolidator_process_is_refused(served: str, tmp_path: Path) -> None:
    first, took = _holder(served, tmp_path / 'c.lock', 'c1')
    try:
        assert took['token'] == 1
        # Same machine (same lock file): the OS lock refuses, naming the holder.
        second, refused = _holder(served, tmp_path / 'c.lock', 'c2')
        assert second.wait(timeout=DEADLINE) == 3
        assert refused['refused'] == LOCKED and 'c1' in refused['message']
        # Another machine (its own lock file): the lease refuses, naming holder and token.
        third, refused = _holder(served, tmp_path / 'other.lock', 'c3')
        assert third.wait(timeout=DEADLINE) == 3
        assert refused['refused'] == HELD
        assert "'c1'" in refused['message'] and 'token 1' in refused['message']
    finally:
        _finish(first)


def test_a_killed_holders_lease_expires_and_is_taken_over(served: str,
                                                          tmp_path: Path) -> None:
    lock = tmp_path / 'c.lock'
    first, took = _holder(served, lock, 'c1', ttl=600.0)
    os.kill(took['pid'], signal.SIGKILL)
    assert first.wait(timeout=DEADLINE) == -signal.SIGKILL
    # The kernel dropped the OS lock; the lease record still stands until it expires.
    early, refused = _holder(served, lock, 'c2')
    assert early.wait(timeout=DEADLINE) == 3 and refused['refused'] == HELD
    # A consolidator starting after the expiry (its clock 601 s ahead) takes it over.
    late, taken = _holder(served, lock, 'c2', offset=601.0)
    try:
        assert taken['token'] == 2
    finally:
        _finish(late)


def _engram(i: int, x: float, t: float, seed: int) -> Engram:
    base = np.ones(DIM, dtype=np.float32)
    v = base + 0.05 * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return Engram(id=i, kind='object', frame_id='map', position=np.array([x, 0.0, 0.5]),
                  vector=v / np.linalg.norm(v), first_seen=t, last_seen=t, valid_from=t,
                  tags=('label:mug',), label='mug', observation_count=2)


def test_a_holder_that_comes_back_after_a_takeover_writes_nothing(served: str,
                                                                 tmp_path: Path) -> None:
    for robot, engram in (('robot1', _engram(11, 1.0, 100.0, 1)),
                          ('robot2', _engram(21, 1.1, 105.0, 2))):
        writer = MilvusBackend(served, DIM, model='clip', robot_id=robot)
        writer.put([engram])
        writer.close()
    reader = MilvusBackend.open_existing(served)
    try:
        before = [(e.id, e.valid_to, e.successor_id)
                  for e in reader.get([11, 21])]
        first, took = _holder(served, tmp_path / 'a.lock', 'c1', ttl=600.0)
        os.kill(took['pid'], signal.SIGSTOP)         # paused (or cut off) while holding
        try:
            # On another machine, after c1's lease expired: taken, token 2.
            other, taken = _holder(served, tmp_path / 'b.lock', 'c2', offset=601.0)
            _finish(other)
            assert taken['token'] == 2
        finally:
            os.kill(took['pid'], signal.SIGCONT)
        first.stdin.write('consolidate\n')
        first.stdin.flush()
        result = json.loads(_line(first))
        _finish(first)
        assert result['status'] == 'superseded' and 'taken over' in result['message']
        assert (result['merged'], result['merged_ids'], result['ended']) == (0, [], 0)
        assert [(e.id, e.valid_to, e.successor_id) for e in reader.get([11, 21])] == before
        assert reader.select(Stage1Filter()).tolist() == [11, 21]
        assert LeaseRecord.from_json(reader.get_meta('fleet.lease')).holder == 'c2'
    finally:
        reader.close()


class _Meta:
    """Metadata strings in a dict: the lease's rules without an engine."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self.values[key] = value


def test_a_check_renews_past_half_the_time_and_a_release_lets_the_next_in() -> None:
    meta, now = _Meta(), [1000.0]
    lease = Lease(meta, 'c1', ttl=10.0, clock=lambda: now[0])
    assert lease.acquire() == 1
    now[0] = 1006.0
    lease.check()                                    # 4 s left < 5 s: renewed to 1016
    assert LeaseRecord.from_json(meta.values['fleet.lease']).expires == 1016.0
    other = Lease(meta, 'c2', ttl=10.0, clock=lambda: now[0])
    with pytest.raises(LeaseRefused) as refused:
        other.acquire()
    assert refused.value.status == HELD
    lease.release()
    assert other.acquire() == 2                       # the token keeps counting
    with pytest.raises(LeaseLost):
        lease.check()


def test_an_expired_lease_is_lost_even_when_nobody_took_it() -> None:
    meta, now = _Meta(), [1000.0]
    lease = Lease(meta, 'c1', ttl=10.0, clock=lambda: now[0])
    lease.acquire()
    now[0] = 1010.0
    with pytest.raises(LeaseLost, match='expired'):
        lease.check()


def test_the_os_lock_refuses_a_second_taker_in_the_same_process(tmp_path: Path) -> None:
    first, second = OsLock(tmp_path / 'x.lock'), OsLock(tmp_path / 'x.lock')
    first.acquire('c1')
    with pytest.raises(LeaseRefused) as refused:
        second.acquire('c2')
    assert refused.value.status == LOCKED and 'c1' in str(refused.value)
    first.release()
    second.acquire('c2')
    second.release()
