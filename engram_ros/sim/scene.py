"""The PyBullet scene of a world and its RGB-D camera (headless: DIRECT + TinyRenderer).

Camera convention (shared with the perception node through ``config/engram.yaml``): the pose of
the optical frame ``camera_optical`` in ``base_link`` is ``camera_xyz`` [m] and ``camera_rpy``
[rad] (fixed-axis roll, pitch, yaw as in URDF: R = Rz(yaw) Ry(pitch) Rx(roll)); the optical
frame has z forward, x right, y down. ``camera_rpy = (-pi/2, 0, -pi/2)`` looks straight ahead
along base_link's x; a more negative roll tilts the camera down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engram_ros.core.geometry import rpy_to_matrix
from engram_ros.core.geometry import transform_matrix
from engram_ros.sim.world import COLOURS
from engram_ros.sim.world import ObjectSpec
from engram_ros.sim.world import WorldSpec

#: The robot's body: a cylinder [m] drawn under the camera (excluded from detections).
ROBOT_RADIUS = 0.2
ROBOT_HEIGHT = 0.35


def base_matrix(x: float, y: float, yaw: float) -> np.ndarray:
    """4x4 pose of base_link in map for a planar pose."""
    return transform_matrix(rpy_to_matrix(0.0, 0.0, yaw), (x, y, 0.0))


@dataclass(frozen=True)
class CameraModel:
    """A pinhole RGB-D camera mounted on base_link."""

    width: int = 640
    height: int = 480
    fov_deg: float = 60.0                      # vertical field of view
    near: float = 0.1                          # [m] closest depth rendered
    far: float = 12.0                          # [m] farthest depth rendered (beyond: far)
    xyz: tuple[float, float, float] = (0.1, 0.0, 1.0)
    rpy: tuple[float, float, float] = (-math.pi / 2 - 0.2, 0.0, -math.pi / 2)

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f'camera size {self.width}x{self.height} is too small')
        if not 1.0 <= self.fov_deg <= 170.0:
            raise ValueError(f'fov_deg must be in [1, 170], got {self.fov_deg}')
        if not 0.0 < self.near < self.far:
            raise ValueError('need 0 < near < far')

    @property
    def fy(self) -> float:
        return (self.height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsics (square pixels, principal point at the image centre)."""
        f = self.fy
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0],
                         [0.0, 0.0, 1.0]])

    def mount(self) -> np.ndarray:
        """4x4 pose of camera_optical in base_link."""
        return transform_matrix(rpy_to_matrix(*self.rpy), self.xyz)

    def optical_pose(self, x: float, y: float, yaw: float) -> np.ndarray:
        """4x4 pose of camera_optical in map for the base at (x, y, yaw)."""
        return base_matrix(x, y, yaw) @ self.mount()

    def project(self, optical_pose: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Pixel (u, v, depth) of map points (N x 3) seen from ``optical_pose``."""
        inv = np.linalg.inv(optical_pose)
        cam = (inv[:3, :3] @ np.asarray(points, dtype=float).T).T + inv[:3, 3]
        uv = (self.K @ cam.T).T
        return np.column_stack([uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2], cam[:, 2]])


@dataclass
class Render:
    rgb: np.ndarray        # H x W x 3 uint8
    depth: np.ndarray      # H x W float32, metres along the optical axis (z)
    seg: np.ndarray        # H x W int32, PyBullet body id per pixel (-1: nothing)


class Scene:
    """Bodies of a :class:`WorldSpec` in a private PyBullet DIRECT client."""

    def __init__(self, spec: WorldSpec, camera: CameraModel | None = None) -> None:
        import pybullet
        import pybullet_data

        self.p = pybullet
        self.spec = spec
        self.camera = camera or CameraModel()
        self.client = pybullet.connect(pybullet.DIRECT)
        self._data = Path(pybullet_data.getDataPath())
        #: body id -> object label, for everything a detector may report
        self.labels: dict[int, str] = {}
        #: object label -> body id
        self.bodies: dict[str, int] = {}
        #: object label -> current position (x, y, z of the footprint centre on its support)
        self.positions: dict[str, tuple[float, float, float]] = {}
        self._offsets: dict[str, np.ndarray] = {}
        self._removed: set[str] = set()
        self._build()

    # --------------------------------------------------------------------------- building
    def _box(self, half: tuple[float, float, float], centre: tuple[float, float, float],
             colour: tuple[float, float, float], yaw: float = 0.0) -> int:
        p = self.p
        visual = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=(*colour, 1.0),
                                     physicsClientId=self.client)
        return p.createMultiBody(0.0, -1, visual, basePosition=centre,
                                 baseOrientation=p.getQuaternionFromEuler((0, 0, yaw)),
                                 physicsClientId=self.client)

    def _build(self) -> None:
        spec = self.spec
        for room in spec.rooms:
            self._box(((room.x1 - room.x0) / 2.0, (room.y1 - room.y0) / 2.0, 0.005),
                      (*room.center, -0.005), COLOURS[room.floor])
        h = spec.wall_height
        for wall in spec.walls:
            x0, y0, x1, y1 = wall.rect()
            self._box(((x1 - x0) / 2.0, (y1 - y0) / 2.0, h / 2.0),
                      ((x0 + x1) / 2.0, (y0 + y1) / 2.0, h / 2.0), COLOURS[spec.wall_color])
        for obj in spec.objects:
            body = self._object(obj)
            self.labels[body] = obj.label
            self.bodies[obj.label] = body
            self.positions[obj.label] = tuple(obj.position)
        p = self.p
        visual = p.createVisualShape(p.GEOM_CYLINDER, radius=ROBOT_RADIUS, length=ROBOT_HEIGHT,
                                     rgbaColor=(0.3, 0.3, 0.35, 1.0), physicsClientId=self.client)
        self.robot = p.createMultiBody(0.0, -1, visual, basePosition=(0, 0, ROBOT_HEIGHT / 2),
                                       physicsClientId=self.client)

    def _object(self, obj: ObjectSpec) -> int:
        p = self.p
        orientation = p.getQuaternionFromEuler((0.0, 0.0, obj.yaw))
        if obj.asset:
            path = Path(obj.asset)
            if not path.is_absolute():
                path = self._data / path
            if path.suffix == '.sdf':
                body = p.loadSDF(str(path), globalScaling=obj.scale,
                                 physicsClientId=self.client)[0]
            else:
                body = p.loadURDF(str(path), useFixedBase=True, globalScaling=obj.scale,
                                  physicsClientId=self.client)
            p.resetBasePositionAndOrientation(body, (0, 0, 0), orientation,
                                              physicsClientId=self.client)
            lo, hi = self._aabb(body)
            # centre the footprint on the position; lift assets modelled around their centre
            # (an AABB comes from collision shapes only: a table's is just its top, its legs
            # start at the asset's z = 0)
            offset = -np.array([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, min(lo[2], 0.0)])
        else:
            colour = (*COLOURS[obj.color], 1.0)
            if obj.shape == 'box':
                sx, sy, sz = (tuple(obj.size) + (0.1, 0.1, 0.1))[:3]
                visual = p.createVisualShape(p.GEOM_BOX, halfExtents=(sx / 2, sy / 2, sz / 2),
                                             rgbaColor=colour, physicsClientId=self.client)
                height = sz
            elif obj.shape == 'sphere':
                radius = obj.size[0]
                visual = p.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=colour,
                                             physicsClientId=self.client)
                height = 2 * radius
            else:
                radius, height = (tuple(obj.size) + (0.1, 0.1))[:2]
                geom = p.GEOM_CYLINDER if obj.shape == 'cylinder' else p.GEOM_CAPSULE
                visual = p.createVisualShape(geom, radius=radius, length=height,
                                             rgbaColor=colour, physicsClientId=self.client)
                if obj.shape == 'capsule':
                    height += 2 * radius
            body = p.createMultiBody(0.0, -1, visual, baseOrientation=orientation,
                                     physicsClientId=self.client)
            offset = np.array([0.0, 0.0, height / 2.0])
        self._offsets[obj.label] = offset
        p.resetBasePositionAndOrientation(body, tuple(np.array(obj.position) + offset),
                                          orientation, physicsClientId=self.client)
        return body

    def _aabb(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        lo, hi = (np.array(v) for v in p.getAABB(body, -1, physicsClientId=self.client))
        for link in range(p.getNumJoints(body, physicsClientId=self.client)):
            a, b = p.getAABB(body, link, physicsClientId=self.client)
            lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        return lo, hi

    # --------------------------------------------------------------------------- changes
    def move(self, label: str, position: tuple[float, float, float]) -> None:
        """Move an object so that its footprint centre is at ``position``."""
        body = self.bodies[label]
        _, orientation = self.p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        self.p.resetBasePositionAndOrientation(
            body, tuple(np.array(position) + self._offsets[label]), orientation,
            physicsClientId=self.client)
        self.positions[label] = tuple(float(v) for v in position)

    def remove(self, label: str) -> None:
        body = self.bodies.pop(label)
        self.p.removeBody(body, physicsClientId=self.client)
        self.labels.pop(body, None)
        self.positions.pop(label, None)
        self._removed.add(label)

    def object_extent(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds (min, max) of an object in map [m]."""
        return self._aabb(self.bodies[label])

    # --------------------------------------------------------------------------- sensing
    def set_robot(self, x: float, y: float, yaw: float) -> None:
        self.p.resetBasePositionAndOrientation(
            self.robot, (x, y, ROBOT_HEIGHT / 2.0), self.p.getQuaternionFromEuler((0, 0, yaw)),
            physicsClientId=self.client)

    def render(self, x: float, y: float, yaw: float) -> Render:
        """RGB, metric depth and body-id segmentation seen from the robot at (x, y, yaw)."""
        p, cam = self.p, self.camera
        pose = cam.optical_pose(x, y, yaw)
        eye = pose[:3, 3]
        forward, down = pose[:3, 2], pose[:3, 1]
        view = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), (-down).tolist())
        projection = p.computeProjectionMatrixFOV(cam.fov_deg, cam.width / cam.height,
                                                  cam.near, cam.far)
        _, _, rgba, zbuf, seg = p.getCameraImage(
            cam.width, cam.height, view, projection, renderer=p.ER_TINY_RENDERER,
            physicsClientId=self.client)
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)
        zbuf = np.asarray(zbuf, dtype=np.float32).reshape(cam.height, cam.width)
        depth = (cam.far * cam.near / (cam.far - (cam.far - cam.near) * zbuf)).astype(np.float32)
        seg = np.asarray(seg, dtype=np.int32).reshape(cam.height, cam.width)
        return Render(rgb=np.ascontiguousarray(rgba[:, :, :3]), depth=depth, seg=seg)

    def close(self) -> None:
        if self.client is not None and self.p.isConnected(self.client):
            self.p.disconnect(self.client)
        self.client = None

    def __enter__(self) -> 'Scene':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
