"""Perception takes the robot and camera poses from TF when TF arrives, else the parameters."""

import numpy as np
import pytest

from engram_ros.core.geometry import matrix_to_quat
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.frame_poses import PARAMETERS
from engram_ros.perception.frame_poses import TF
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.objects import Detection

from test_geometry import yaw_quat
from test_pipeline import CAM_RPY
from test_pipeline import CAM_XYZ
from test_pipeline import make
from test_pipeline import MUG
from test_pipeline import run_all
from test_pipeline import view

MOUNT = camera_extrinsic(CAM_XYZ, CAM_RPY)


def tf_frame(p, stamp: float, x: float, odom_drift: float = 0.3, camera_frame='camera_optical'):
    """Publish like a robot: map -> odom (the correction), odom -> base_link (drifted), static
    base_link -> camera; then the images of the robot at ``x`` in map."""
    pose, rgb, depth, box = view(x)
    p.add_transforms([('base_link', 'camera_optical', 0.0, MOUNT[:3, 3],
                       matrix_to_quat(MOUNT[:3, :3]))], static=True)
    jobs = p.add_color(stamp, rgb, camera_frame) + p.add_depth(stamp, depth)
    jobs += p.add_transforms([('map', 'odom', stamp, (-odom_drift, 0.0, 0.0), yaw_quat(0.0)),
                              ('odom', 'base_link', stamp, (x + odom_drift, 0.0, 0.0),
                               yaw_quat(0.0))])
    jobs += p.add_detections(stamp, [Detection('cup', 0.9, box)])
    return jobs


def test_tf_wins_over_wrong_camera_parameters_and_frames_wait_for_it():
    p = make()
    p.set_camera_pose((5.0, 5.0, 5.0), (1.0, 1.0, 1.0), 'optical')   # deliberately wrong
    assert p.frame_poses.source == PARAMETERS
    observations = []
    for i, x in enumerate((0.0, 0.8)):
        observations += run_all(p, tf_frame(p, 100.0 + i, x))
    assert p.frame_poses.source == TF
    objects = [o for o in observations if o.kind == 'object']
    places = [o for o in observations if o.kind == 'place']
    assert len(objects) == 2 and len(places) == 2
    for obj in objects:
        assert np.linalg.norm(obj.position - MUG) < 0.03
    assert np.allclose(places[1].position, (0.8, 0, 0))   # map <- base, not the drifted odom
    counters = p.snapshot()
    assert counters['frames_posed_by_tf'] == 2 and 'frames_posed_by_parameters' not in counters


def test_an_image_frame_unknown_to_tf_is_skipped_and_counted():
    p = make()
    jobs = tf_frame(p, 100.0, 0.0, camera_frame='camera_link_typo')
    assert run_all(p, jobs) == []
    assert p.snapshot()['skipped_tf_unknown_frame'] == 1
    reason, message = p.late_skips[-1]
    assert reason == 'tf_unknown_frame' and 'camera_link_typo' in message


def robot_tf(p, stamp: float, x: float, edges=('map', 'odom')):
    return p.add_transforms([e for e in (
        ('map', 'odom', stamp, (0.0, 0.0, 0.0), yaw_quat(0.0)),
        ('odom', 'base_link', stamp, (x, 0.0, 0.0), yaw_quat(0.0))) if e[0] in edges])


def test_a_frame_beyond_the_tf_samples_is_not_guessed():
    p = make(tf_tolerance=0.05)
    run_all(p, tf_frame(p, 100.0, 0.0))
    pose, rgb, depth, _ = view(0.1)
    p.add_color(101.0, rgb, 'camera_optical')
    p.add_depth(101.0, depth)
    assert p.snapshot().get('skipped_tf_extrapolation', 0) == 0    # waiting, not refused
    # odom -> base_link goes on, map -> odom stopped at 100.0: the frame's map pose is unknown
    robot_tf(p, 100.5, 0.05, edges=('odom',))
    robot_tf(p, 102.0, 0.2, edges=('odom',))
    p.add_transforms([('map', 'odom', 102.0, (0.0, 0.0, 0.0), yaw_quat(0.0))])
    assert p.snapshot()['skipped_tf_stale'] == 1    # map -> odom has no sample 100 .. 102


def test_a_gap_in_tf_is_stale_and_a_frame_before_it_is_extrapolation():
    p = make(tf_max_gap=0.5, tf_tolerance=0.05)
    p.add_transforms([('base_link', 'camera_optical', 0.0, MOUNT[:3, 3],
                       matrix_to_quat(MOUNT[:3, :3]))], static=True)
    robot_tf(p, 100.0, 0.0)
    robot_tf(p, 103.0, 0.3)
    pose, rgb, depth, _ = view(0.1)
    p.add_color(99.5, rgb, 'camera_optical')      # before the first sample
    with pytest.raises(InputRejected) as early:
        p.add_depth(99.5, depth)
    assert early.value.reason == 'tf_extrapolation'
    p.add_color(101.5, rgb, 'camera_optical')     # between two samples 3 s apart
    with pytest.raises(InputRejected) as gap:
        p.add_depth(101.5, depth)
    assert gap.value.reason == 'tf_stale'


def test_without_tf_the_odometry_and_the_parameters_are_used():
    p = make()
    pose, rgb, depth, box = view(0.0)
    p.add_pose(99.9, pose)
    p.add_pose(100.1, pose)
    jobs = p.add_color(100.0, rgb, 'camera_optical') + p.add_depth(100.0, depth)
    jobs += p.add_detections(100.0, [Detection('cup', 0.9, box)])
    objects = [o for o in run_all(p, jobs) if o.kind == 'object']
    assert len(objects) == 1 and np.linalg.norm(objects[0].position - MUG) < 0.03
    assert p.snapshot()['frames_posed_by_parameters'] == 1


def test_at_start_frames_wait_for_tf_rather_than_take_wrong_parameters():
    """Images come before the first /tf_static: with tf_wait, the first frames wait for TF
    rather than being placed by (deliberately wrong) parameters; TF then decides."""
    p = make(tf_wait=2.0)
    p.set_camera_pose((5.0, 5.0, 5.0), (1.0, 1.0, 1.0), 'optical')
    pose, rgb, depth, box = view(0.0)
    p.add_pose(99.9, pose)
    jobs = p.add_color(100.0, rgb, 'camera_optical') + p.add_depth(100.0, depth)
    jobs += p.add_detections(100.0, [Detection('cup', 0.9, box)])
    jobs += p.add_pose(100.1, pose)         # odometry covers the frame, but TF may still come
    assert jobs == []
    jobs = tf_frame(p, 101.0, 0.8)          # TF connects, its samples start at 101 s
    objects = [o for o in run_all(p, jobs) if o.kind == 'object']
    assert len(objects) == 1 and np.linalg.norm(objects[0].position - MUG) < 0.03
    counters = p.snapshot()
    # the frame of 100 s is before TF's first sample: skipped and counted, never placed by
    # the wrong parameters
    assert counters['skipped_tf_extrapolation'] == 1
    assert counters['frames_posed_by_tf'] == 1 and 'frames_posed_by_parameters' not in counters


def test_without_tf_frames_wait_tf_wait_then_the_parameters_place_them():
    p = make(tf_wait=2.0)
    pose, rgb, depth, box = view(0.0)
    p.add_pose(99.9, pose)
    jobs = p.add_color(100.0, rgb, 'camera_optical') + p.add_depth(100.0, depth)
    jobs += p.add_detections(100.0, [Detection('cup', 0.9, box)])
    jobs += p.add_pose(101.0, pose)
    assert jobs == []                       # 1 s of odometry: TF may still come
    jobs = p.add_pose(102.0, pose)          # 2 s: no TF, the fall-back places the frame
    objects = [o for o in run_all(p, jobs) if o.kind == 'object']
    assert len(objects) == 1 and np.linalg.norm(objects[0].position - MUG) < 0.03
    assert p.snapshot()['frames_posed_by_parameters'] == 1
