"""Fleet-unique engram ids: ``robot index << 48 | local id``.

A robot's engram ids are unique only on that robot (each store counts from 1), so two robots'
engram 7 would be one row in a shared collection. Each robot therefore registers a small
index in the collection's metadata (``engram.meta.robot.<robot id>`` = the index, see
:func:`register`) and writes engram ``i`` as fleet id ``index << 48 | i``:

* the index is 1..32766 (15 bits: the id stays a positive int64; 0 is never used, so a fleet
  id is never a plain local id), at most :data:`MAX_ROBOTS` robots per collection; index
  32767 (:data:`FLEET_INDEX`) is the fleet's own, for the engrams fleet consolidation makes
  (their owner is :data:`FLEET_OWNER`, a robot id no robot may register);
* a local id must be below ``2 ** 48`` (2.8e14 engrams): a larger one is refused
  (:func:`fleet_id` raises, the sync counts it) rather than wrapped into another robot's range;
* :func:`local_id` and :func:`robot_index` take a fleet id apart again.

Milvus has no compare-and-set, so two robots registering at the same instant may pick the same
free index; :func:`register` re-reads after writing and, while another robot holds the same
index, picks again at random among the free ones, so both end with distinct indices (a robot
registered alone keeps its index for good). Nothing here imports ROS.
"""

from __future__ import annotations

import random
from typing import Protocol

#: Bits of the local id inside a fleet id.
LOCAL_BITS = 48
#: Largest local id a fleet id can carry.
MAX_LOCAL_ID = (1 << LOCAL_BITS) - 1
#: The largest index: the fleet's own (engrams fleet consolidation makes), never a robot's.
FLEET_INDEX = (1 << (63 - LOCAL_BITS)) - 1
#: Robot indices are 1..MAX_ROBOTS.
MAX_ROBOTS = FLEET_INDEX - 1
#: The owner (row ``robot``) of the engrams fleet consolidation makes; not a robot id.
FLEET_OWNER = 'fleet'
#: Metadata key prefix of robot registrations (under the backend's own meta prefix).
ROBOT_KEY = 'robot.'
#: Re-picks before :func:`register` gives up (each needs another robot racing it).
_ATTEMPTS = 8


class MetaStore(Protocol):
    """What :func:`register` needs of a backend (``MilvusBackend`` has it)."""

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def meta_items(self, prefix: str) -> dict[str, str]: ...


def fleet_id(index: int, local: int) -> int:
    """The fleet id of local engram ``local`` of the robot with ``index``.

    :raises ValueError: for an index outside 1..:data:`MAX_ROBOTS` or a local id outside
        1..:data:`MAX_LOCAL_ID` (it would collide with another robot's range).
    """
    if not 1 <= index <= MAX_ROBOTS:
        raise ValueError(f'robot index {index} outside 1..{MAX_ROBOTS}')
    if not 1 <= local <= MAX_LOCAL_ID:
        raise ValueError(f'local engram id {local} does not fit a fleet id (1..{MAX_LOCAL_ID}: '
                         f'{LOCAL_BITS} bits beside the robot index)')
    return (index << LOCAL_BITS) | local


def local_id(fleet: int) -> int:
    """The robot-local engram id inside a fleet id."""
    return int(fleet) & MAX_LOCAL_ID


def robot_index(fleet: int) -> int:
    """The robot index inside a fleet id."""
    return int(fleet) >> LOCAL_BITS


def register(meta: MetaStore, robot_id: str) -> int:
    """This robot's index in the collection: the one registered before, else the smallest
    free one, written as ``robot.<robot_id>``.

    :raises ValueError: for an empty robot id, the fleet's own id, or when every index is taken.
    :raises RuntimeError: when concurrent registrations kept colliding.
    """
    if not robot_id:
        raise ValueError('a fleet robot id must not be empty')
    if robot_id == FLEET_OWNER:
        raise ValueError(f'{FLEET_OWNER!r} is the owner of fleet-merged engrams, not a robot id: '
                         f'give the robot another fleet.robot_id')
    for attempt in range(_ATTEMPTS):
        taken = _registrations(meta)
        mine = taken.get(robot_id)
        if mine is not None and not any(i == mine and r != robot_id for r, i in taken.items()):
            return mine
        used = {i for r, i in taken.items() if r != robot_id}
        free = [i for i in range(1, min(MAX_ROBOTS, len(used) + _ATTEMPTS) + 1)
                if i not in used]
        if not free:
            raise ValueError(f'the fleet collection has {MAX_ROBOTS} robots registered; '
                             f'no index is left for {robot_id!r}')
        # The smallest free index first; after a collision, any of the free ones.
        meta.set_meta(ROBOT_KEY + robot_id, str(free[0] if attempt == 0
                                                else random.choice(free)))
    raise RuntimeError(f'robot {robot_id!r} could not register a fleet index: '
                       f'{_ATTEMPTS} concurrent registrations collided')


def registrations(meta: MetaStore) -> dict[str, int]:
    """Every registered robot id and its index (what answers use to say who saw what)."""
    return _registrations(meta)


def _registrations(meta: MetaStore) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in meta.meta_items(ROBOT_KEY).items():
        try:
            out[key[len(ROBOT_KEY):]] = int(value)
        except ValueError:
            continue
    return out
