"""What a memory sees of its fleet: this robot's id and, while reachable, the fleet backend.

A :class:`~engram_ros.core.memory.MemoryStore` answers a recall beyond this robot (a
:class:`~engram_ros.core.query.RecallScope` other than ``ROBOT``) through its ``fleet``
attribute, any object of the :class:`FleetView` protocol (the node's fleet link, a test's
fixture). The robot id is the value every row this robot writes to the fleet carries
(:class:`~engram_ros.core.backends.milvus.MilvusBackend`'s ``robot_id``); by default it is
the node's namespace, made into an id by :func:`robot_id_from_namespace`.
"""

from __future__ import annotations

import re
import socket
from typing import Protocol
from typing import runtime_checkable

from engram_ros.core.backend import MemoryBackend

_UNSAFE = re.compile(r'[^A-Za-z0-9_.-]')


@runtime_checkable
class FleetView(Protocol):
    """The fleet as a memory sees it."""

    @property
    def robot_id(self) -> str:
        """This robot's id in the fleet (the ``robot`` of every row it writes)."""

    def backend(self) -> MemoryBackend | None:
        """The fleet collection, or ``None`` while it is unreachable (or not yet opened).
        Its calls may raise once the fleet goes away; the caller answers locally then."""


def robot_id_from_namespace(namespace: str) -> str:
    """The default robot id of a node in ``namespace``: its segments joined by ``.``
    (``/robot1`` -> ``robot1``, ``/site/robot_2`` -> ``site.robot_2``; a ROS name segment has
    no ``.``, so two namespaces never give one id), any other character than letters, digits,
    ``_``, ``.``, ``-`` replaced by ``_``; the root namespace gives the host name (robots of
    a fleet in their root namespaces run on different machines). At most 255 characters.
    """
    segments = [s for s in namespace.strip().split('/') if s]
    return robot_id('.'.join(segments) or socket.gethostname())


def robot_id(text: str) -> str:
    """``text`` made a robot id: characters other than letters, digits, ``_``, ``.``, ``-``
    replaced by ``_``, at most 255 characters (the fleet collection's ``robot`` field)."""
    return _UNSAFE.sub('_', text)[:255]
