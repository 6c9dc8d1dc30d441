""":class:`FleetSync`: upload this robot's new and changed engrams to the fleet collection.

What changed is read from the storage's change sequence
(:meth:`~engram_ros.core.storage.Storage.changes_since`: every put and delete stamps its ids in
its own transaction), from the number the last successful sync reached (kept in the store's
meta as ``fleet.synced_seq``, so a restart resumes there; a crash between an upload and that
write re-uploads the same rows, which an upsert makes harmless). For each changed id:

* its engram exists and may leave the robot: upserted as fleet id ``index << 48 | local id``
  (:mod:`.ids`) with this robot's id, its validity and its evidence URIs (the evidence files
  stay on the robot); ``successor_id``/``anchor_id`` become fleet ids too;
* its engram is gone (forgotten, merged, evicted): the fleet row is deleted (own rows only);
* its engram may not leave (``fleet.share`` excludes its kind, or it lies in a privacy zone or
  window): withheld (counted), and deleted from the fleet in case an earlier version was sent.

``share='none'`` makes the sync do nothing at all: no connection, nothing read or sent.

While the fleet is unreachable the changed ids wait in a bounded backlog (``backlog`` ids; a
re-changed id counts once); when full the oldest are dropped and counted (``dropped_backlog``),
and the store's number moves past them, so they are not re-read after a restart (a dropped
engram is uploaded again when it next changes). Nothing here imports ROS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict
from dataclasses import dataclass
from typing import Callable
from typing import Sequence

from engram_ros.core.fleet.ids import fleet_id
from engram_ros.core.fleet.ids import MAX_LOCAL_ID
from engram_ros.core.fleet.link import FleetLink
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.storage import Storage

_LOG = logging.getLogger(__name__)

#: Store meta key of the last change number the fleet has (uploaded or dropped).
META_SYNCED = 'fleet.synced_seq'
#: ``fleet.share`` shorthands; a comma-separated list of kinds is accepted too.
SHARE_MODES = {'none': (), 'places': ('place',), 'all': KINDS}


def parse_share(text: str) -> tuple[str, ...]:
    """The kinds ``fleet.share`` lets leave the robot.

    :raises ValueError: naming what is accepted.
    """
    value = text.strip().lower()
    if value in SHARE_MODES:
        return tuple(SHARE_MODES[value])
    kinds = tuple(k.strip() for k in value.split(',') if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise ValueError(f'fleet.share={text!r}: accepted none, places, all, or kinds from '
                         f'{", ".join(KINDS)} separated by commas')
    return kinds


@dataclass
class SyncCounters:
    """What the sync did, for diagnostics (every loss counted)."""

    uploaded: int = 0           #: rows upserted
    deleted: int = 0            #: own fleet rows deleted (forgotten or withheld engrams)
    withheld: int = 0           #: changed engrams not sent (share or privacy)
    refused: int = 0            #: engrams the fleet refused (id or record too large)
    backlog: int = 0            #: changed ids waiting for the fleet
    dropped_backlog: int = 0    #: changed ids dropped from a full backlog, never sent
    failures: int = 0           #: sync runs that failed on the fleet (then unreachable)
    last_sync: float = 0.0      #: wall time [s] of the last sync that emptied the backlog
    lag: float = 0.0            #: age [s] of the oldest change waiting (0: none waits)


class FleetSync:
    """Keeps this robot's shared engrams in the fleet collection (see the module doc).

    :param storage: the robot's store (its change sequence and engrams).
    :param link: the fleet connection.
    :param share: ``fleet.share`` (see :func:`parse_share`).
    :param privacy: the memory's privacy policy, applied before anything leaves.
    :param backlog: most changed ids kept while the fleet is away (>= 1).
    :param batch: engrams per read and upload.
    """

    def __init__(self, storage: Storage, link: FleetLink | None, *, share: str = 'all',
                 privacy: PrivacyPolicy | None = None, backlog: int = 10000,
                 batch: int = 500, clock: Callable[[], float] = time.time) -> None:
        if backlog < 1:
            raise ValueError(f'fleet.backlog={backlog} must be >= 1')
        self.storage = storage
        self.link = link
        self.kinds = parse_share(share)
        self.privacy = privacy or PrivacyPolicy()
        self.capacity = int(backlog)
        self.batch = max(1, int(batch))
        self.counters = SyncCounters()
        self._clock = clock
        self._run_lock = threading.Lock()
        #: id -> (change number, wall time first read), oldest change first.
        self._pending: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self._read_seq = int(storage.get_meta(META_SYNCED, '0') or 0)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """False for ``share='none'`` (or no link): nothing ever leaves the robot."""
        return bool(self.kinds) and self.link is not None

    def run_once(self) -> bool:
        """Read new changes, then, if the fleet answers, send them all; True when the backlog
        is empty afterwards. Blocks on the network: the sync thread calls it."""
        if not self.enabled:
            return True
        with self._run_lock:
            self._read_changes()
            self._count()
            assert self.link is not None
            backend = self.link.connect()
            if backend is None:
                return False
            try:
                self._drain(backend)
            except Exception as exc:        # pymilvus raises its own types
                self.counters.failures += 1
                self.link.fail(exc)
                return False
            finally:
                self._count()
            return not self._pending

    def start(self, period: float) -> None:
        """Run :meth:`run_once` every ``period`` seconds on a daemon thread (not an
        executor's: a slow or absent fleet never delays a callback)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, args=(float(period),),
                                        name='fleet-sync', daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Sync now rather than at the end of the period."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.link is not None:
            self.link.close()

    def status(self) -> dict[str, str]:
        """Diagnostics key/values: the link's state and the counters."""
        state = 'off' if not self.enabled else self.link.status()   # type: ignore[union-attr]
        if self.link is not None and not self.kinds:
            state = 'off (fleet.share=none)'
        out = {'fleet': state}
        out.update({f'fleet.{k}': (f'{v:.3f}' if isinstance(v, float) else str(v))
                    for k, v in asdict(self.counters).items()})
        return out

    # ------------------------------------------------------------------ internals

    def _loop(self, period: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:               # never let the thread die: log and go on
                _LOG.exception('fleet sync failed')
            self._wake.wait(period)
            self._wake.clear()

    def _read_changes(self) -> None:
        now = self._clock()
        while True:
            changes = self.storage.changes_since(self._read_seq, limit=self.batch)
            if not changes:
                break
            for engram_id, seq in changes:
                first = self._pending.pop(engram_id, (seq, now))[1]
                self._pending[engram_id] = (seq, first)
                self._read_seq = max(self._read_seq, seq)
            while len(self._pending) > self.capacity:
                self._pending.popitem(last=False)
                self.counters.dropped_backlog += 1
        self._save_cursor()

    def _drain(self, backend) -> None:
        index = self.link.robot_index          # type: ignore[union-attr]
        while self._pending:
            ids = list(self._pending)[:self.batch]
            found = {e.id: e for e in self.storage.get(ids)}
            send: list[Engram] = []
            gone: list[int] = []
            for i in ids:
                engram = found.get(i)
                if i > MAX_LOCAL_ID:
                    self.counters.refused += 1
                    continue
                if engram is None:
                    gone.append(fleet_id(index, i))
                elif self._may_leave(engram):
                    send.append(self._fleet_copy(engram, index))
                else:
                    self.counters.withheld += 1
                    gone.append(fleet_id(index, i))
            if send:
                self._put(backend, keep_fleet_endings(backend, send))
            if gone:
                self.counters.deleted += backend.delete(gone)
            for i in ids:
                del self._pending[i]
            self._save_cursor()
        self.counters.last_sync = self._clock()

    def _put(self, backend, engrams: Sequence[Engram]) -> None:
        try:
            backend.put(engrams)
            self.counters.uploaded += len(engrams)
        except ValueError:                  # one record the fleet cannot hold: send the rest
            for engram in engrams:
                try:
                    backend.put([engram])
                    self.counters.uploaded += 1
                except ValueError as exc:
                    self.counters.refused += 1
                    _LOG.warning('fleet refused engram %d: %s', engram.id, exc)

    def _may_leave(self, engram: Engram) -> bool:
        if engram.kind not in self.kinds:
            return False
        return self.privacy.excludes(engram.position, engram.last_seen) is None

    @staticmethod
    def _fleet_copy(engram: Engram, index: int) -> Engram:
        out = engram.copy()
        out.id = fleet_id(index, engram.id)
        if engram.successor_id:
            out.successor_id = fleet_id(index, engram.successor_id)
        if engram.anchor_id:
            out.anchor_id = fleet_id(index, engram.anchor_id)
        return out

    def _save_cursor(self) -> None:
        """Everything up to this number is in the fleet, withheld or dropped."""
        # Pending ids are in change order (a re-changed id moves to the end): the first is
        # the oldest change still owed.
        done = (next(iter(self._pending.values()))[0] - 1 if self._pending
                else self._read_seq)
        if done != int(self.storage.get_meta(META_SYNCED, '0') or 0):
            self.storage.set_meta(META_SYNCED, str(done))
            self.storage.prune_changes(done)

    def _count(self) -> None:
        self.counters.backlog = len(self._pending)
        oldest = min((t for _, t in self._pending.values()), default=None) \
            if self._pending else None
        self.counters.lag = 0.0 if oldest is None else max(0.0, self._clock() - oldest)


def keep_fleet_endings(backend, engrams: Sequence[Engram]) -> list[Engram]:
    """``engrams`` as they should be upserted: an ending already in the fleet row is kept.

    Validity changes are events and the earliest ``valid_to`` wins (``docs/fleet.md``): when
    the fleet's row of an engram was ended earlier than this robot's copy says (fleet
    consolidation merged it into a fleet engram, or ended it because another robot saw the
    thing elsewhere), the upload keeps that ``valid_to`` and its ``successor_id`` instead of
    making the belief current again. Every other field is the owner's.
    """
    rows = {e.id: e for e in backend.get([e.id for e in engrams])}
    out: list[Engram] = []
    for engram in engrams:
        row = rows.get(engram.id)
        if (row is not None and row.valid_to is not None
                and (engram.valid_to is None or row.valid_to < engram.valid_to)):
            engram = engram.copy()
            engram.valid_to, engram.successor_id = row.valid_to, row.successor_id
        out.append(engram)
    return out
