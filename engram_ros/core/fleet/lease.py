"""One fleet consolidator at a time: an OS lock, and a lease record with a fencing token.

Milvus has no compare-and-set, so two consolidators cannot be kept apart by the collection
alone. Two guards, both needed:

* **An OS lock** (``fcntl.flock``, non-blocking) on a lock file: next to a milvus-lite
  database file (``<file>.consolidate.lock``) or at a configured path for a server URI (on a
  disk every consolidator host sees, or on the one host allowed to consolidate). A second
  consolidator on the same machine is refused at once (:class:`LeaseRefused`, status
  ``locked``). The kernel drops the lock when its holder dies, even by ``kill -9``.
* **A lease record** in the collection's metadata (key :data:`LEASE_KEY`): a fencing token
  (a counter that only grows), the holder's id and an expiry time. A consolidator takes the
  lease only when none is unexpired (status ``held`` otherwise, whoever holds it), writing the
  next token; a killed holder's lease therefore blocks others until it expires, and then the
  next taker gets a larger token. Before every write the holder checks (:meth:`Lease.check`)
  that the record still carries its token and has not expired, renewing it past half its time;
  a holder that was paused or cut off and comes back finds a larger token (or its own lease
  expired) and stops (:class:`LeaseLost`), writing nothing more.

What is left, and said here rather than hidden: between a check and the write it guards there is
no atomicity (Milvus cannot refuse a write by token), so a holder paused exactly there may
still land one batch after its lease expired. Batches are small and the lease's time is long
against them (default 60 s), which makes that window narrow, not closed. Lease times are read
from this machine's clock: consolidator hosts need synchronised clocks (see docs/fleet.md).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from typing import Protocol

_LOG = logging.getLogger(__name__)

#: Metadata key of the lease record in the fleet collection.
LEASE_KEY = 'fleet.lease'
#: Lease time [s] when the caller gives none.
DEFAULT_TTL = 60.0
#: Refusal statuses: another process holds the OS lock; another holder's lease is unexpired;
#: another consolidator wrote the lease between our write and our read-back.
LOCKED = 'locked'
HELD = 'held'
RACED = 'raced'


class MetaStore(Protocol):
    """What a lease needs of a backend: its metadata strings."""

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class LeaseRecord:
    """The lease as kept in the collection: ``token`` (grows by one per taking), ``holder``,
    ``expires`` [s since the epoch], and the holder's host and pid (for people reading it)."""

    token: int
    holder: str
    expires: float
    host: str = ''
    pid: int = 0

    def to_json(self) -> str:
        return json.dumps({'token': self.token, 'holder': self.holder, 'expires': self.expires,
                           'host': self.host, 'pid': self.pid}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> LeaseRecord | None:
        """The record, or ``None`` for none (or one this code cannot read: counted as none,
        with a warning, so a damaged record does not block the fleet forever)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(int(data['token']), str(data['holder']), float(data['expires']),
                       str(data.get('host', '')), int(data.get('pid', 0)))
        except (ValueError, KeyError, TypeError) as exc:
            _LOG.warning('unreadable fleet lease record %r (%s): taken as no lease', text, exc)
            return None


class LeaseRefused(RuntimeError):
    """Another consolidator holds the lock or the lease; ``status`` is :data:`LOCKED`,
    :data:`HELD` or :data:`RACED`, ``record`` the lease found (if any)."""

    def __init__(self, status: str, message: str, record: LeaseRecord | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.record = record


class LeaseLost(RuntimeError):
    """This holder's lease was taken over (a larger token) or expired: write nothing more."""


def default_lock_path(uri: str) -> Path | None:
    """The lock file next to a milvus-lite database file; ``None`` for a server URI (which
    needs a configured lock path to be guarded by an OS lock)."""
    if '://' in uri:
        return None
    return Path(uri + '.consolidate.lock')


def default_holder() -> str:
    """``consolidator@<host>:<pid>``: unique per process."""
    return f'consolidator@{socket.gethostname()}:{os.getpid()}'


class OsLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created when missing), holding the
    holder's id and pid for whoever is refused. Taken before the fleet collection is opened:
    a milvus-lite file is served to one process, so a second consolidator must be refused by
    this lock, not fail to open the file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, holder: str) -> None:
        """:raises LeaseRefused: ``locked``, naming the process that holds it."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 4096, 0).decode('utf-8', 'replace').strip()
            os.close(fd)
            raise LeaseRefused(LOCKED, f'another fleet consolidator holds {self.path} '
                                       f'({who or "holder unknown"})') from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{holder} pid {os.getpid()}\n'.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the descriptor drops the flock); again: nothing."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class Lease:
    """The consolidation lease of one fleet collection, held by ``holder``.

    :param meta: the fleet backend (its metadata keeps the lease record).
    :param holder: who holds it (a consolidator id; :func:`default_holder`).
    :param ttl: [s] how long the lease lasts without a check renewing it.
    :param lock: the OS lock (:class:`OsLock`; taken by :meth:`acquire` unless already held,
        dropped by :meth:`release`); ``None``: the lease alone guards.
    :param clock: seconds since the epoch (``time.time``; tests give a later time to
        stand for a wait).
    :raises ValueError: for a ttl that is not a positive finite time, or an empty holder.
    """

    def __init__(self, meta: MetaStore, holder: str, *, ttl: float = DEFAULT_TTL,
                 lock: OsLock | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not (ttl > 0.0 and ttl < float('inf')):
            raise ValueError(f'ttl={ttl} must be a positive number of seconds')
        if not holder:
            raise ValueError('a lease needs a holder id')
        self.meta = meta
        self.holder = holder
        self.ttl = float(ttl)
        self.lock = lock
        self.clock = clock
        #: The fencing token while held (0: not held).
        self.token = 0
        self._expires = 0.0

    def read(self) -> LeaseRecord | None:
        """The lease record kept now (anyone's)."""
        return LeaseRecord.from_json(self.meta.get_meta(LEASE_KEY))

    def acquire(self) -> int:
        """Take the OS lock and the lease; the new fencing token.

        :raises LeaseRefused: another process holds the OS lock (``locked``), another
            holder's lease is unexpired (``held``), or another taker's record is read back
            (``raced``); this lease then holds nothing.
        """
        if self.lock is not None and not self.lock.held:
            self.lock.acquire(self.holder)
        try:
            found = self.read()
            now = self.clock()
            if found is not None and found.expires > now:
                raise LeaseRefused(
                    HELD, f'the fleet consolidation lease is held by {found.holder!r} '
                          f'(token {found.token}, pid {found.pid} on {found.host or "?"}) for '
                          f'{found.expires - now:.1f} s more; try again after it expires',
                    found)
            token = (found.token if found is not None else 0) + 1
            mine = LeaseRecord(token, self.holder, now + self.ttl, socket.gethostname(),
                               os.getpid())
            self.meta.set_meta(LEASE_KEY, mine.to_json())
            back = self.read()
            if back != mine:
                raise LeaseRefused(RACED, f'another consolidator wrote the lease at the same '
                                          f'time ({back}); not taken', back)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.token, self._expires = token, mine.expires
        _LOG.info('fleet lease taken by %s: token %d until %.3f', self.holder, token,
                  mine.expires)
        return token

    def check(self) -> None:
        """Before a write: the record still carries this holder's token and is unexpired
        (renewed when less than half its time is left).

        :raises LeaseLost: when it does not (write nothing more); also when never taken.
        """
        if not self.token:
            raise LeaseLost(f'{self.holder} holds no fleet lease')
        found = self.read()
        now = self.clock()
        if found is None or found.token != self.token or found.holder != self.holder:
            raise LeaseLost(f'the fleet lease of {self.holder} (token {self.token}) was taken '
                            f'over: now {found}')
        if found.expires <= now:
            raise LeaseLost(f'the fleet lease of {self.holder} (token {self.token}) expired '
                            f'{now - found.expires:.1f} s ago')
        if found.expires - now < self.ttl / 2.0:
            renewed = LeaseRecord(self.token, self.holder, now + self.ttl, found.host,
                                  found.pid)
            self.meta.set_meta(LEASE_KEY, renewed.to_json())
            self._expires = renewed.expires

    def release(self) -> None:
        """Give the lease back (its record expires now, the token stays counted) if still
        held, and drop the OS lock. Calling it again does nothing."""
        try:
            if self.token:
                found = self.read()
                if found is not None and found.token == self.token \
                        and found.holder == self.holder:
                    self.meta.set_meta(LEASE_KEY, LeaseRecord(
                        self.token, self.holder, 0.0, found.host, found.pid).to_json())
        finally:
            self.token = 0
            if self.lock is not None:
                self.lock.release()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
