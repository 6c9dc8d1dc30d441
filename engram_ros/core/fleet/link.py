""":class:`FleetLink`: this robot's connection to the fleet collection.

The memory must never wait on the network: the link opens the
:class:`~engram_ros.core.backends.milvus.MilvusBackend` lazily, from the sync thread
(:meth:`FleetLink.connect`), and while the fleet does not answer it says why and tries again
after a backoff (doubling from ``retry_initial`` up to ``retry_max``). Recall and ingest only
ever call :meth:`FleetLink.backend`, which returns at once (``None`` while unreachable).

A collection this memory cannot share (another vector dimension, encoder or schema: the
backend's ``ValueError`` names both sides) is a permanent refusal: nothing is written and it is
not retried; the state says ``refused: <why>`` until the node is reconfigured. Nothing here
imports ROS.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable
from typing import TYPE_CHECKING

from engram_ros.core.fleet.ids import register

if TYPE_CHECKING:
    from engram_ros.core.backends.milvus import MilvusBackend

_LOG = logging.getLogger(__name__)

#: States of a link.
CONNECTING, CONNECTED, UNREACHABLE, REFUSED = 'connecting', 'connected', 'unreachable', 'refused'


class FleetLink:
    """The fleet collection as this robot reaches it (thread-safe).

    :param uri: a milvus-lite database path or a Milvus server URI (``http://host:19530``).
    :param dim: the memory's context-vector dimension.
    :param model: the encoder identity every robot of the fleet must share.
    :param robot_id: this robot's id (written with every row, registered for its index).
    :param opener: makes the backend (tests and a server pass their own; default
        :class:`~engram_ros.core.backends.milvus.MilvusBackend`).
    """

    def __init__(self, uri: str, dim: int, *, robot_id: str, model: str = '',
                 collection: str = 'engrams', token: str = '', frame_id: str = '',
                 retry_initial: float = 1.0, retry_max: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 opener: Callable[..., MilvusBackend] | None = None) -> None:
        if not uri:
            raise ValueError('a fleet link needs a URI (fleet.uri)')
        if not robot_id:
            raise ValueError('a fleet link needs a robot id (fleet.robot_id)')
        self.uri = uri
        self.dim = int(dim)
        self.model = model
        self.collection = collection
        self.robot_id = robot_id
        self._token = token
        self._frame_id = frame_id
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._clock = clock
        self._opener = opener
        self._lock = threading.Lock()
        self._backend: MilvusBackend | None = None
        self._state = CONNECTING
        self._reason = ''
        self._next_try = 0.0
        self._delay = retry_initial
        #: This robot's index in the collection (see :mod:`.ids`); 0 until connected.
        self.robot_index = 0
        #: Connection attempts, and those that failed.
        self.attempts = 0
        self.attempt_failures = 0

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> str:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def reachable(self) -> bool:
        return self._state == CONNECTED

    def backend(self) -> MilvusBackend | None:
        """The open backend, ``None`` while unreachable or refused (never blocks)."""
        with self._lock:
            return self._backend if self._state == CONNECTED else None

    def status(self) -> str:
        """``connected``, ``connecting``, ``unreachable: <why>`` or ``refused: <why>``."""
        with self._lock:
            return self._state if not self._reason else f'{self._state}: {self._reason}'

    # ------------------------------------------------------------------ the sync thread

    def connect(self) -> MilvusBackend | None:
        """Open the fleet collection unless open, refused, or waiting out a backoff; return
        the backend or ``None``. Blocks while the engine is tried: call it from the sync
        thread only."""
        with self._lock:
            if self._state == CONNECTED:
                return self._backend
            if self._state == REFUSED or self._clock() < self._next_try:
                return None
            self.attempts += 1
        try:
            backend = self._open()
        except ValueError as exc:           # dimension, encoder or schema: permanent
            with self._lock:
                self._state, self._reason = REFUSED, str(exc)
                self.attempt_failures += 1
            _LOG.error('fleet collection refused (not retried): %s', exc)
            return None
        except Exception as exc:            # pymilvus and milvus-lite raise their own types
            self._unreachable(exc)
            return None
        try:
            index = register(backend, self.robot_id)
        except ValueError as exc:
            backend.close()
            with self._lock:
                self._state, self._reason = REFUSED, str(exc)
                self.attempt_failures += 1
            return None
        except Exception as exc:
            backend.close()
            self._unreachable(exc)
            return None
        with self._lock:
            self._backend, self.robot_index = backend, index
            self._state, self._reason = CONNECTED, ''
            self._delay = self._retry_initial
        _LOG.info('fleet collection %r at %s connected (robot %r, index %d)',
                  self.collection, self.uri, self.robot_id, index)
        return backend

    def fail(self, exc: BaseException) -> None:
        """An operation on the open backend failed: close it and retry after a backoff."""
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception:               # closing a dead connection may fail as well
                pass
        self._unreachable(exc)

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
            if self._state == CONNECTED:
                self._state, self._reason = CONNECTING, 'closed'
        if backend is not None:
            backend.close()

    # ------------------------------------------------------------------ internals

    def _open(self) -> MilvusBackend:
        if self._opener is not None:
            return self._opener()
        from engram_ros.core.backends.milvus import MilvusBackend
        return MilvusBackend(self.uri, self.dim, model=self.model, collection=self.collection,
                             frame_id=self._frame_id, robot_id=self.robot_id,
                             token=self._token)

    def _unreachable(self, exc: BaseException) -> None:
        why = ' '.join(str(exc).split())[:300] or type(exc).__name__
        if self.uri not in why:             # e.g. a corrupt collection file: say where
            why = f'fleet at {self.uri!r}: {why}'
        with self._lock:
            self._state, self._reason = UNREACHABLE, why
            self.attempt_failures += 1
            self._next_try = self._clock() + self._delay
            delay = self._delay
            self._delay = min(self._delay * 2.0, self._retry_max)
        _LOG.warning('fleet at %s unreachable (retry in %.0f s): %s', self.uri, delay, why)
