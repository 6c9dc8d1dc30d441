"""Free space from the depth the robot saw: where a thing cannot be, because the camera saw
through that spot.

Every depth frame perception is given says, along each of its rays, that the space between the
camera and the surface it hit is empty. :class:`FreeSpace` keeps that as a coarse voxel record
in the map frame: per voxel (``voxel`` metres a side, 0.1 m by default), how many frames saw a
ray pass through it (*free*) and how many saw a ray end in it (*hit*), and how many frames saw
it free since it was last hit (``free_since_hit``: "seen empty again" after a sighting).

What is integrated per frame: every ``stride``-th pixel in each direction (8: 40 x 30 rays at
320 x 240, about 9 cm apart at 3 m), depths between ``min_depth`` and ``max_depth``. A ray
marks the voxels from ``min_depth`` to ``margin`` short of its end as free (each voxel once
per frame), the voxel it ends in as hit; a voxel hit by some ray of the frame is not free in
that frame. No return (0, NaN, beyond ``max_depth``) marks nothing: a window or a far wall
is not evidence of empty space.

Storage is a hash of dense blocks of 16 x 16 x 16 voxels (as Open3D's VoxelBlockGrid keeps
its volume, but with counts instead of a signed distance: Open3D's TSDF keeps only a band
near surfaces and a weight, not how often a spot was seen empty), allocated where rays go.
RAM is bounded: at most ``max_blocks`` blocks (default 2048: 2048 x 4096 voxels x 6 bytes =
48 MiB, 2048 x 4.1 m^3 at 0.1 m, a floor of about 3,000 m^2 at 2.6 m high); a frame whose
rays reach new blocks past the cap leaves those parts out, counted in ``voxels_dropped``.
It lives in RAM only (a restart starts it empty: objects are then judged as before).

:meth:`empty_around` is the question perception asks of an object's centre before it is
stored (:mod:`.ghosts`, ``ghost_free_space``); it looks in the record only, so the record is
updated with a frame before the objects of that frame are placed: a thing put where the robot
saw empty space before (a move) is hit by the rays of the frame that sees it, and is kept.
Nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from engram_ros.perception.geometry import backproject
from engram_ros.perception.geometry import Intrinsics

#: Voxels per block side.
BLOCK = 16
#: Offset that keeps voxel indices positive in the packed key (about +-100 km at 0.1 m).
_OFFSET = 1 << 20
_SPAN = 1 << 21


@dataclass
class VoxelState:
    """What the record says of one voxel (see the module docstring)."""

    free: int = 0
    hit: int = 0
    free_since_hit: int = 0


@dataclass
class FreeSpace:
    """A coarse count of where depth rays passed and ended (see the module docstring).

    :param voxel: [m] side of a voxel.
    :param stride: one ray every ``stride`` pixels in each direction.
    :param min_depth: [m] nearer returns are not integrated (the camera's own blind zone).
    :param max_depth: [m] farther returns are not integrated (noisy, and not a view of the
        space near the robot).
    :param margin: [m] a ray marks space free only up to this short of what it hit (depth
        noise, and a thing's own surface a voxel in front of its centre).
    :param max_blocks: most blocks of 16^3 voxels kept (bounds RAM).
    """

    voxel: float = 0.1
    stride: int = 8
    min_depth: float = 0.3
    max_depth: float = 6.0
    margin: float = 0.15
    max_blocks: int = 2048
    frames: int = 0
    #: Voxel updates left out because the block cap was reached.
    voxels_dropped: int = 0
    _blocks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _last_stamp: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (self.voxel > 0.0 and self.stride >= 1 and self.max_depth > self.min_depth >= 0.0
                and self.margin >= 0.0 and self.max_blocks >= 1):
            raise ValueError(f'free space: voxel={self.voxel} m, stride={self.stride}, depth '
                             f'{self.min_depth}..{self.max_depth} m, margin={self.margin} m, '
                             f'max_blocks={self.max_blocks}; accepted: voxel > 0, stride >= 1, '
                             '0 <= min_depth < max_depth, margin >= 0, max_blocks >= 1')

    # ----------------------------------------------------------------------------- update
    def add_frame(self, stamp: float, depth: np.ndarray, k: Intrinsics,
                  t_map_optical: np.ndarray) -> None:
        """:meth:`integrate` a frame once (a frame that is a keyframe and has detections
        comes twice: counted once)."""
        if stamp != self._last_stamp:
            self._last_stamp = stamp
            self.integrate(depth, k, t_map_optical)

    def integrate(self, depth: np.ndarray, k: Intrinsics, t_map_optical: np.ndarray) -> None:
        """Add one depth frame [m] (0/NaN: no return) taken at ``t_map_optical`` (4x4)."""
        s = self.stride
        z = np.asarray(depth, dtype=np.float64)[s // 2::s, s // 2::s]
        rows, cols = np.mgrid[s // 2:depth.shape[0]:s, s // 2:depth.shape[1]:s]
        ok = np.isfinite(z) & (z >= self.min_depth) & (z <= self.max_depth)
        if not ok.any():
            self.frames += 1
            return
        t = np.asarray(t_map_optical, dtype=np.float64)
        ends = backproject(cols[ok].astype(np.float64), rows[ok].astype(np.float64), z[ok], k)
        ends = ends @ t[:3, :3].T + t[:3, 3]
        origin = t[:3, 3]
        rays = ends - origin
        length = np.linalg.norm(rays, axis=1)
        unit = rays / length[:, None]
        # Samples every half voxel from min_depth (along the ray: slightly less than the
        # z-depth, never more) to margin short of the end.
        step = self.voxel / 2.0
        along = np.arange(self.min_depth, float(length.max()), step)
        keep = along[None, :] <= (length - self.margin)[:, None]
        samples = origin + unit[:, None, :] * along[None, :, None]
        free = np.unique(self._keys(samples[keep]))
        hit = np.unique(self._keys(ends))
        free = free[~np.isin(free, hit, assume_unique=True)]
        self._add(free, 0)
        self._add(hit, 1)
        self.frames += 1

    def _keys(self, points: np.ndarray) -> np.ndarray:
        idx = np.floor(points / self.voxel).astype(np.int64) + _OFFSET
        return (idx[:, 0] * _SPAN + idx[:, 1]) * _SPAN + idx[:, 2]

    @staticmethod
    def _unpack(keys: np.ndarray) -> np.ndarray:
        z = keys % _SPAN
        y = (keys // _SPAN) % _SPAN
        x = keys // (_SPAN * _SPAN)
        return np.stack([x, y, z], axis=1) - _OFFSET

    def _add(self, keys: np.ndarray, kind: int) -> None:
        """Count ``keys`` (unique voxel keys) as free (``kind`` 0) or hit (1) once."""
        if len(keys) == 0:
            return
        idx = self._unpack(keys)
        block_idx = np.floor_divide(idx, BLOCK)
        local = idx - block_idx * BLOCK
        bkeys = ((block_idx[:, 0] + _OFFSET) * _SPAN + block_idx[:, 1] + _OFFSET) * _SPAN \
            + block_idx[:, 2] + _OFFSET
        order = np.argsort(bkeys, kind='stable')
        bkeys, local = bkeys[order], local[order]
        starts = np.flatnonzero(np.r_[True, bkeys[1:] != bkeys[:-1]])
        ends = np.r_[starts[1:], len(bkeys)]
        for a, b in zip(starts.tolist(), ends.tolist()):
            block = self._block(int(bkeys[a]), create=True)
            if block is None:
                self.voxels_dropped += b - a
                continue
            li = local[a:b]
            cell = (li[:, 0], li[:, 1], li[:, 2])
            if kind == 0:
                block[0][cell] = np.minimum(block[0][cell].astype(np.int32) + 1, 65535)
                block[2][cell] = np.minimum(block[2][cell].astype(np.int32) + 1, 65535)
            else:
                block[1][cell] = np.minimum(block[1][cell].astype(np.int32) + 1, 65535)
                block[2][cell] = 0

    def _block(self, key: int, create: bool = False) -> np.ndarray | None:
        block = self._blocks.get(key)
        if block is None and create and len(self._blocks) < self.max_blocks:
            block = self._blocks[key] = np.zeros((3, BLOCK, BLOCK, BLOCK), dtype=np.uint16)
        return block

    # ----------------------------------------------------------------------------- queries
    @property
    def blocks(self) -> int:
        return len(self._blocks)

    def state(self, point) -> VoxelState:
        """The counts of the voxel holding ``point`` (map frame [m])."""
        idx = np.floor(np.asarray(point, dtype=np.float64).reshape(3) / self.voxel).astype(
            np.int64)
        b = np.floor_divide(idx, BLOCK)
        block = self._block(int(((b[0] + _OFFSET) * _SPAN + b[1] + _OFFSET) * _SPAN
                                + b[2] + _OFFSET))
        if block is None:
            return VoxelState()
        i, j, k = (idx - b * BLOCK).tolist()
        return VoxelState(int(block[0, i, j, k]), int(block[1, i, j, k]),
                          int(block[2, i, j, k]))

    def seen_through(self, point, min_free: int) -> bool:
        """Whether the space at ``point`` was seen empty at least ``min_free`` times since
        anything was last seen there (a ray ended in its voxel)."""
        return self.state(point).free_since_hit >= min_free

    def empty_around(self, point, min_free: int) -> bool:
        """Whether the voxel of ``point`` and those around it (one to each side, one below,
        three above: a thing's own surface, what it stands on and a table top over a table's
        centre) were all seen empty at least ``min_free`` times since anything was last seen
        in them: nothing can stand there."""
        if min_free < 1:
            return False
        p = np.asarray(point, dtype=np.float64).reshape(3)
        for dz in (0, -1, 1, 2, 3):             # the centre's layer first: most fail there
            for dx in (0, -1, 1):
                for dy in (0, -1, 1):
                    step = np.array([dx, dy, dz], dtype=np.float64) * self.voxel
                    if self.state(p + step).free_since_hit < min_free:
                        return False
        return True

    def clear(self) -> None:
        self._blocks.clear()
        self.frames = 0
        self.voxels_dropped = 0
        self._last_stamp = None
