"""Real PyBullet renders of the built-in worlds: bodies, masks, depth, camera geometry, events."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from engram_ros.core.geometry import rpy_to_matrix
from engram_ros.sim.detector import SimDetector
from engram_ros.sim.scenario import DetectorNoise
from engram_ros.sim.scenario import Event
from engram_ros.sim.scenario import load_scenario
from engram_ros.sim.scene import CameraModel
from engram_ros.sim.scene import Scene
from engram_ros.sim.simulator import lap_poses
from engram_ros.sim.simulator import Simulator
from engram_ros.sim.world import world

pytest.importorskip('pybullet')

SMALL_CAMERA = CameraModel(width=320, height=240)


@pytest.fixture(scope='module')
def small_scene():
    with Scene(world('small'), SMALL_CAMERA) as scene:
        yield scene


def look_at(scene: Scene, label: str, distance: float = 1.6) -> tuple[float, float, float]:
    """A robot pose ``distance`` m in front of ``label``, facing it (from the room's centre)."""
    x, y, _ = scene.positions[label]
    room = scene.spec.room(scene.spec.room_at(x, y))
    cx, cy = room.center
    heading = math.atan2(y - cy, x - cx)
    return (x - distance * math.cos(heading), y - distance * math.sin(heading), heading)


def test_house_builds_with_every_object():
    with Scene(world('house'), SMALL_CAMERA) as scene:
        assert len(scene.bodies) == len(world('house').objects) >= 15
        assert set(scene.labels.values()) == {o.label for o in world('house').objects}


def test_optical_frame_convention():
    cam = CameraModel(xyz=(0.0, 0.0, 1.0), rpy=(-math.pi / 2, 0.0, -math.pi / 2))
    r = rpy_to_matrix(*cam.rpy)
    np.testing.assert_allclose(r[:, 2], [1, 0, 0], atol=1e-9)   # z forward = base x
    np.testing.assert_allclose(r[:, 0], [0, -1, 0], atol=1e-9)  # x right = -base y
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-9)  # y down
    # a point 2 m ahead of a robot at (1, 1) facing +y projects to the image centre
    u, v, z = cam.project(cam.optical_pose(1.0, 1.0, math.pi / 2), [[1.0, 3.0, 1.0]])[0]
    assert (u, v, z) == pytest.approx((cam.width / 2, cam.height / 2, 2.0))


@pytest.mark.parametrize('label', ['mug', 'kettle', 'sofa', 'ball', 'plant'])
def test_render_shows_the_object_where_the_camera_model_says(small_scene, label):
    pose = look_at(small_scene, label)
    render = small_scene.render(*pose)
    cam = small_scene.camera
    assert render.rgb.shape == (cam.height, cam.width, 3) and render.rgb.dtype == np.uint8
    assert render.depth.shape == (cam.height, cam.width) and render.depth.dtype == np.float32
    body = small_scene.bodies[label]
    mask = render.seg == body
    assert mask.sum() > 50, f'{label} not in the segmentation mask'
    # the mask's pixels, back-projected with the depth, lie on the object
    lo, hi = small_scene.object_extent(label)
    vs, us = np.nonzero(mask)
    z = render.depth[vs, us].astype(float)
    k = cam.K
    points = np.column_stack([(us + 0.5 - k[0, 2]) * z / k[0, 0],
                              (vs + 0.5 - k[1, 2]) * z / k[1, 1], z, np.ones_like(z)])
    world_points = (cam.optical_pose(*pose) @ points.T).T[:, :3]
    centre = np.median(world_points, axis=0)
    x, y, _ = small_scene.positions[label]
    assert math.hypot(centre[0] - x, centre[1] - y) < 0.5


def test_detections_from_the_mask_follow_the_noise_settings(small_scene):
    render = small_scene.render(*look_at(small_scene, 'kettle', 1.2))
    visible = {small_scene.labels[b] for b in np.unique(render.seg)
               if b in small_scene.labels and (render.seg == b).sum() >= 100}
    assert {'mug', 'kettle'} <= visible

    exact = SimDetector(DetectorNoise(min_pixels=100), small_scene.labels.values())
    detections = exact.detect(render.seg, small_scene.labels)
    assert {d.label for d in detections} == visible
    for d in detections:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= render.seg.shape[1] and 0 <= y0 < y1 <= render.seg.shape[0]
        assert d.mask.sum() == d.pixels and d.label == d.true_label and 0 < d.score < 1

    blind = SimDetector(DetectorNoise(miss_rate=1.0), small_scene.labels.values())
    assert blind.detect(render.seg, small_scene.labels) == []

    confused = SimDetector(DetectorNoise(label_noise=1.0, min_pixels=100),
                           small_scene.labels.values())
    assert all(d.label != d.true_label for d in confused.detect(render.seg, small_scene.labels))

    noisy = SimDetector(DetectorNoise(false_positives=3.0, min_pixels=100, seed=5),
                        small_scene.labels.values())
    runs = [noisy.detect(render.seg, small_scene.labels) for _ in range(20)]
    spurious = [d for run in runs for d in run if not d.true_label]
    assert 30 <= len(spurious) <= 90  # Poisson(3) per image over 20 images
    assert all(d.mask is None and d.score < 0.6 for d in spurious)


def test_lap_poses_follow_the_route():
    route = ((0.0, 0.0), (2.0, 0.0), (2.0, 1.0))
    poses = lap_poses(route, step=0.5, turn_step=0.5)
    assert poses[0] == (0.0, 0.0, 0.0)
    steps = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(poses, poses[1:])]
    assert max(steps) <= 0.5 + 1e-9
    turns = [abs(math.remainder(b[2] - a[2], math.tau)) for a, b in zip(poses, poses[1:])]
    assert max(turns) <= 0.5 + 1e-9
    assert all(s == 0 or t == 0 for s, t in zip(steps, turns))  # turn in place, then drive


def test_simulator_events_move_objects_and_update_ground_truth():
    scenario = replace(load_scenario('small'), laps=2, events=(
        Event(1, 'move', 'mug', (4.5, 3.6, 0.0), 'living_room'),))
    with Simulator(scenario, SMALL_CAMERA, rate=1.0) as sim:
        before = {o['label']: o for o in sim.ground_truth()['objects']}
        assert before['mug']['room'] == 'kitchen'
        frames = []
        for frame in sim.frames():
            frames.append(frame)
        assert len(frames) == 2 * sim.frames_per_lap
        assert frames[-1].last and frames[sim.frames_per_lap - 1].lap_done
        assert frames[sim.frames_per_lap].events == ['after lap 1: moved mug to living_room '
                                                     '[4.5, 3.6, 0.0]']
        after = {o['label']: o for o in sim.ground_truth()['objects']}
        assert after['mug']['room'] == 'living_room'
        assert after['mug']['position'] == [4.5, 3.6, 0.0]
        assert frames[0].audio.dtype == np.int16 and frames[0].audio.size == 16000
