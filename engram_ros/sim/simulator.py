"""The simulated robot: a kinematic base patrolling a scenario's route in a PyBullet house.

Every frame (``1 / rate`` seconds of simulated time) the robot turns in place towards the next
waypoint at ``turn_rate`` or drives towards it at ``speed``, and the simulator renders RGB, depth
and segmentation, runs the simulated detector, mixes the audio heard at the robot and integrates
noisy odometry. After each lap the scenario's events for that lap are applied (objects move or
disappear) and the ground truth changes with them.

    with Simulator(load_scenario('house')) as sim:
        for frame in sim.frames():
            ...   # frame.render.rgb, frame.odom, frame.detections, frame.audio
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from typing import Iterator

import numpy as np

from engram_ros.sim.audio import Microphone
from engram_ros.sim.detector import SimDetection
from engram_ros.sim.detector import SimDetector
from engram_ros.sim.scenario import Scenario
from engram_ros.sim.scene import CameraModel
from engram_ros.sim.scene import Render
from engram_ros.sim.scene import Scene
from engram_ros.sim.world import COLOURS


def wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def lap_poses(route: tuple[tuple[float, float], ...], step: float,
              turn_step: float) -> list[tuple[float, float, float]]:
    """Planar poses (x, y, yaw) of one closed lap, one per frame, ending before the start pose.

    The robot starts on waypoint 1 facing waypoint 2; each frame it either turns by at most
    ``turn_step`` [rad] towards the next waypoint or drives at most ``step`` [m] towards it.
    """
    n = len(route)
    x, y = route[0]
    yaw = math.atan2(route[1 % n][1] - y, route[1 % n][0] - x)
    poses = []
    for i in range(1, n + 1):
        gx, gy = route[i % n]
        heading = math.atan2(gy - y, gx - x) if (gx, gy) != (x, y) else yaw
        while abs(wrap(heading - yaw)) > 1e-9:
            poses.append((x, y, yaw))
            delta = wrap(heading - yaw)
            yaw = wrap(yaw + math.copysign(min(abs(delta), turn_step), delta))
        while math.hypot(gx - x, gy - y) > 1e-9:
            poses.append((x, y, yaw))
            d = math.hypot(gx - x, gy - y)
            f = min(step, d) / d
            x, y = x + (gx - x) * f, y + (gy - y) * f
    return poses


class Odometry:
    """Integrates the true motion increments with scale drift, heading drift and white noise."""

    def __init__(self, start: tuple[float, float, float], noise) -> None:
        self.noise = noise
        self.rng = np.random.default_rng(noise.seed)
        self.pose = start
        self._true = start
        self.travelled = 0.0

    def update(self, true_pose: tuple[float, float, float]) -> tuple[float, float, float]:
        x0, y0, yaw0 = self._true
        x1, y1, yaw1 = true_pose
        self._true = true_pose
        c, s = math.cos(yaw0), math.sin(yaw0)
        dx, dy = x1 - x0, y1 - y0
        local = np.array([c * dx + s * dy, -s * dx + c * dy])
        dyaw = wrap(yaw1 - yaw0)
        dist = float(np.hypot(*local))
        if dist == 0.0 and dyaw == 0.0:
            return self.pose
        n = self.noise
        self.travelled += dist
        local = local * (1.0 + n.drift_xy) + self.rng.normal(scale=n.noise_xy, size=2) * (
            dist > 0.0)
        dyaw = dyaw + n.drift_yaw * dist + self.rng.normal(scale=n.noise_yaw)
        ox, oy, oyaw = self.pose
        c, s = math.cos(oyaw), math.sin(oyaw)
        self.pose = (ox + c * local[0] - s * local[1], oy + s * local[0] + c * local[1],
                     wrap(oyaw + dyaw))
        return self.pose


@dataclass
class Frame:
    index: int                                   # 0-based over the whole run
    lap: int                                     # 1-based
    t: float                                     # [s] simulated time since start
    pose: tuple[float, float, float]             # true base pose (x, y, yaw) in map
    odom: tuple[float, float, float]             # odometry's estimate of it
    camera_pose: np.ndarray                      # 4x4 true camera_optical pose in map
    render: Render
    detections: list[SimDetection]
    audio: np.ndarray                            # int16 mono samples of [t, t + 1/rate)
    events: list[str] = field(default_factory=list)  # applied just before this frame
    lap_done: bool = False                       # last frame of its lap
    last: bool = False                           # last frame of the run


class Simulator:
    """Runs a :class:`Scenario`: a scene, a patrolling robot, a detector, a microphone."""

    def __init__(self, scenario: Scenario, camera: CameraModel | None = None,
                 rate: float = 4.0, sample_rate: int = 16000, with_masks: bool = True) -> None:
        if not rate > 0.0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.scenario = scenario
        self.rate = float(rate)
        self.with_masks = with_masks
        self.scene = Scene(scenario.world, camera)
        self.camera = self.scene.camera
        self.detector = SimDetector(scenario.detector, [o.label for o in scenario.world.objects])
        self.microphone = Microphone(scenario.world.sounds, scenario.world.walls,
                                     scenario.audio, sample_rate, seed=scenario.detector.seed,
                                     height=self.camera.xyz[2])
        dt = 1.0 / self.rate
        self.lap_poses = lap_poses(scenario.route, scenario.speed * dt, scenario.turn_rate * dt)
        self.frames_per_lap = len(self.lap_poses)
        self.total_frames = self.frames_per_lap * scenario.laps
        self.lap = 1
        self.applied: list[dict] = []
        self.lap_end_times: list[float] = []

    # --------------------------------------------------------------------------- running
    def frames(self) -> Iterator[Frame]:
        """Every frame of every lap, rendering as it goes."""
        odometry = Odometry(self.lap_poses[0], self.scenario.odometry)
        dt = 1.0 / self.rate
        index = 0
        pending: list[str] = []
        for lap in range(1, self.scenario.laps + 1):
            self.lap = lap
            for i, pose in enumerate(self.lap_poses):
                t = index * dt
                odom = odometry.update(pose)
                self.scene.set_robot(*pose)
                render = self.scene.render(*pose)
                detections = self.detector.detect(render.seg, self.scene.labels,
                                                  self.with_masks)
                audio = self.microphone.chunk(t, dt, pose[:2])
                lap_done = i == self.frames_per_lap - 1
                yield Frame(index, lap, t, pose, odom, self.camera.optical_pose(*pose), render,
                            detections, audio, events=pending, lap_done=lap_done,
                            last=lap_done and lap == self.scenario.laps)
                pending = []
                index += 1
            self.lap_end_times.append(index * dt)
            pending = self.apply_events(lap)

    def apply_events(self, lap: int) -> list[str]:
        """Apply the events scheduled after ``lap``; returns what happened, in words."""
        done = []
        for event in self.scenario.events:
            if event.after_lap != lap or event.label not in self.scene.bodies:
                continue
            if event.action == 'move':
                self.scene.move(event.label, event.position)
                where = event.room or self.scenario.world.room_at(*event.position[:2])
                text = f'after lap {lap}: moved {event.label} to {where} {list(event.position)}'
            else:
                self.scene.remove(event.label)
                text = f'after lap {lap}: removed {event.label}'
            self.applied.append({'after_lap': lap, 'action': event.action,
                                 'label': event.label, 'text': text})
            done.append(text)
        return done

    # --------------------------------------------------------------------------- truth
    def ground_truth(self) -> dict:
        """Everything an evaluation needs, JSON-serialisable; follows applied events."""
        spec = self.scenario.world
        objects = []
        for obj in spec.objects:
            if obj.label not in self.scene.bodies:
                continue
            position = self.scene.positions[obj.label]
            lo, hi = self.scene.object_extent(obj.label)
            objects.append({
                'label': obj.label, 'category': obj.category,
                'room': spec.room_at(*position[:2]),
                'position': [round(float(v), 4) for v in position],
                'center': [round(float(v), 4) for v in (lo + hi) / 2.0],
                'size': [round(float(v), 4) for v in hi - lo],
                'color': '' if obj.asset else obj.color,
                'rgb': [] if obj.asset else list(COLOURS[obj.color]),
                'body_id': self.scene.bodies[obj.label]})
        cam = self.camera
        return {
            'world': spec.name, 'scenario': self.scenario.name, 'frame_id': 'map',
            'lap': self.lap, 'laps': self.scenario.laps, 'rate': self.rate,
            'frames_per_lap': self.frames_per_lap,
            'rooms': [{'name': r.name, 'min': [r.x0, r.y0], 'max': [r.x1, r.y1]}
                      for r in spec.rooms],
            'walls': [[w.x0, w.y0, w.x1, w.y1, w.thickness] for w in spec.walls],
            'objects': objects,
            'sounds': [{'label': s.label, 'synth': s.synth, 'room': spec.room_at(*s.position[:2]),
                        'position': list(s.position), 'period': s.period,
                        'duration': s.duration, 'phase': s.phase} for s in spec.sounds],
            'route': [list(p) for p in self.scenario.route],
            'events': [{'after_lap': e.after_lap, 'action': e.action, 'label': e.label,
                        'room': e.room,
                        'position': list(e.position) if e.position else None}
                       for e in self.scenario.events],
            'applied': list(self.applied),
            'lap_end_times': list(self.lap_end_times),
            'camera': {'width': cam.width, 'height': cam.height, 'fov_deg': cam.fov_deg,
                       'K': cam.K.tolist(), 'xyz': list(cam.xyz), 'rpy': list(cam.rpy)},
        }

    def close(self) -> None:
        self.scene.close()

    def __enter__(self) -> 'Simulator':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
