"""The pipeline end to end without ROS: frames, poses, detections and audio -> observations."""

import math

import numpy as np
import pytest

from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.perception.audio import SoundClassifier
from engram_ros.perception.audio import SoundModel
from engram_ros.perception.class_names import ClassNames
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.ghosts import GhostCheck
from engram_ros.perception.objects import Detection
from engram_ros.perception.objects import ObjectLocator
from engram_ros.perception.pipeline import ObjectJob
from engram_ros.perception.pipeline import Perception
from engram_ros.perception.pipeline import PerceptionConfig
from engram_ros.perception.pipeline import PlaceJob
from engram_ros.perception.rooms import RoomMap
from engram_ros.perception.scenes import rgbd_with_objects
from engram_ros.perception.sounds import synthesise
from engram_ros.perception.visual import load_visual_encoder

from test_geometry import yaw_quat

K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
CAM_XYZ, CAM_RPY = (0.2, 0.0, 1.0), (0.0, 0.2, 0.0)
MUG = np.array([3.0, 0.4, 0.6])
ENCODER = load_visual_encoder('orb_bow', 256)
SOUNDS = SoundClassifier(SoundModel.load())


def make(tmp_path=None, **kwargs) -> Perception:
    kwargs.setdefault('object_min_interval', 0.0)
    config = PerceptionConfig(camera_xyz=CAM_XYZ, camera_rpy=CAM_RPY,
                              evidence_dir=str(tmp_path / 'evidence') if tmp_path else '',
                              **kwargs)
    p = Perception(config, ENCODER, SOUNDS)
    p.add_camera_info(K)
    return p


def view(x: float, yaw: float = 0.0):
    pose = checked_pose((x, 0.0, 0.0), yaw_quat(yaw))
    t = pose.matrix() @ camera_extrinsic(CAM_XYZ, CAM_RPY)
    rgb, depth, boxes = rgbd_with_objects(K, t, [(MUG, 0.05, (210, 30, 30))], background_seed=7)
    return pose, rgb, depth, boxes[0]


def run_all(p: Perception, jobs):
    return [obs for job in jobs for obs in p.run(job)]


def test_frames_detections_and_poses_become_place_and_object_observations(tmp_path):
    p = make(tmp_path)
    observations = []
    for i, x in enumerate((0.0, 0.1, 0.8)):
        stamp = 100.0 + i
        pose, rgb, depth, box = view(x)
        p.add_pose(stamp - 0.05, pose)
        p.add_pose(stamp + 0.05, pose)
        jobs = p.add_depth(stamp, depth) + p.add_color(stamp + 0.002, rgb)
        jobs += p.add_detections(stamp + 0.002, [Detection('cup', 0.9, box),
                                                 Detection('ghost', 0.1, box)])
        observations += run_all(p, jobs)
    places = [o for o in observations if o.kind == 'place']
    objects = [o for o in observations if o.kind == 'object']
    assert len(places) == 2                       # the 0.1 m step is gated out
    assert np.allclose(places[1].position, (0.8, 0, 0))
    assert any(t.startswith('vw:') for t in places[0].tags)
    assert len(objects) == 3                      # the low-score ghost is ignored
    for obj in objects:
        assert obj.label == 'mug' and {'label:mug', 'color:red', 'size:small'} <= set(obj.tags)
        assert np.linalg.norm(obj.position - MUG) < 0.03
        assert 0.4 < obj.confidence <= 0.9 and obj.evidence[0].startswith('file://')
    assert np.dot(objects[0].vector, objects[2].vector) > 0.7   # the same mug looks alike
    # where the camera was: how far away the memory may expect to see the mug
    assert np.allclose(objects[0].viewpoint, (0.2, 0.0, 1.0), atol=1e-6)
    counters = p.snapshot()
    assert counters['frames_synced'] == 3 and counters['frames_gated'] == 2
    assert counters['object_observations'] == 3


def test_places_and_objects_get_the_room_they_are_in():
    # the robot drives from the hall (x < 0.5) into the kitchen; the mug is in the kitchen
    p = make(rooms=RoomMap.parse(['hall=box:-2,-2,0.5,2', 'kitchen=poly:0.5,-2,5,-2,5,2,0.5,2']))
    observations = []
    for i, x in enumerate((0.0, 0.8)):
        stamp = 100.0 + i
        pose, rgb, depth, box = view(x)
        p.add_pose(stamp - 0.05, pose)
        p.add_pose(stamp + 0.05, pose)
        jobs = p.add_depth(stamp, depth) + p.add_color(stamp, rgb)
        jobs += p.add_detections(stamp, [Detection('cup', 0.9, box)])
        observations += run_all(p, jobs)
    rooms = [[t for t in o.tags if t.startswith('room:')] for o in observations]
    kinds = [o.kind for o in observations]
    assert sorted(zip(kinds, map(tuple, rooms))) == [
        ('object', ('room:kitchen',)), ('object', ('room:kitchen',)),
        ('place', ('room:hallway',)), ('place', ('room:kitchen',))]
    assert all(o.tags == tuple(sorted(o.tags)) for o in observations)
    # without rooms (the default), no room: tags at all
    p = make()
    pose, rgb, depth, box = view(0.0)
    p.add_pose(99.9, pose)
    p.add_pose(100.1, pose)
    jobs = p.add_depth(100.0, depth) + p.add_color(100.0, rgb)
    jobs += p.add_detections(100.0, [Detection('cup', 0.9, box)])
    assert not [t for o in run_all(p, jobs) for t in o.tags if t.startswith('room:')]


def view_of(x: float, mugs):
    """Frame at (x, 0, 0) with the given mug centres; their boxes, in order."""
    pose = checked_pose((x, 0.0, 0.0), yaw_quat(0.0))
    t = pose.matrix() @ camera_extrinsic(CAM_XYZ, CAM_RPY)
    rgb, depth, boxes = rgbd_with_objects(K, t, [(m, 0.05, (210, 30, 30)) for m in mugs],
                                          background_seed=7)
    return pose, rgb, depth, boxes


def looks(p: Perception, frames) -> list:
    """Feed ``(stamp, mugs)`` frames at x = 0 with one 'cup' detection per mug; the object
    jobs made."""
    jobs = []
    for stamp, mugs in frames:
        pose, rgb, depth, boxes = view_of(0.0, mugs)
        p.add_pose(stamp, pose)
        jobs += p.add_color(stamp, rgb) + p.add_depth(stamp, depth)
        jobs += p.add_detections(stamp, [Detection('cup', 0.9, b) for b in boxes])
    return [j for j in jobs if isinstance(j, ObjectJob)]


def test_a_thing_gets_its_burst_then_one_look_per_interval():
    p = make(object_min_interval=0.5, object_burst=2)
    jobs = looks(p, [(10.0 + 0.1 * i, [MUG]) for i in range(6)])      # 10 Hz detector
    assert [j.frame.stamp for j in jobs] == pytest.approx([10.0, 10.1, 10.5])
    assert p.snapshot()['detections_throttled'] == 3


def test_two_things_of_one_label_each_get_their_looks():
    # Mug A in view for two frames, then mug B (0.8 m to its side) for two: per label, B
    # would get nothing (within 0.5 s of A's look); per thing, each gets both frames.
    other = MUG + np.array([0.0, -0.8, 0.0])
    p = make(object_min_interval=0.5, object_burst=2)
    jobs = looks(p, [(10.0, [MUG]), (10.25, [MUG]), (10.5, [other]), (10.75, [other])])
    assert len(jobs) == 4 and 'detections_throttled' not in p.snapshot()
    # Both in every frame: two looks each, then one per interval each.
    p = make(object_min_interval=0.5, object_burst=2)
    jobs = looks(p, [(20.0 + 0.25 * i, [MUG, other]) for i in range(4)])
    assert [len(j.detections) for j in jobs] == [2, 2, 2]


def test_a_dropped_look_is_counted_and_given_back():
    p = make(object_min_interval=0.5, object_burst=2)
    first = looks(p, [(10.0, [MUG]), (10.1, [MUG]), (10.2, [MUG])])
    assert len(first) == 2                          # the burst; 10.2 is throttled
    p.dropped(first[1])                             # the node had no time to encode it
    counters = p.snapshot()
    assert counters['jobs_dropped'] == 1 and counters['object_jobs_dropped'] == 1
    assert counters['detections_dropped'] == 1
    assert len(looks(p, [(10.3, [MUG])])) == 1      # the thing's next frame gets the look


def test_detections_may_arrive_before_their_frame():
    p = make()
    pose, rgb, depth, box = view(0.0)
    p.add_pose(9.9, pose)
    p.add_pose(10.1, pose)
    assert p.add_detections(10.0, [Detection('cup', 0.9, box)]) == []
    jobs = p.add_color(10.0, rgb) + p.add_depth(10.0, depth)
    assert any(isinstance(j, ObjectJob) for j in jobs)
    assert any(isinstance(j, PlaceJob) for j in jobs)


def test_numeric_class_ids_are_named_and_unknown_ones_counted():
    p = make(class_names=ClassNames({0: 'person', 41: 'cup'}))
    pose, rgb, depth, box = view(0.0)
    p.add_pose(9.9, pose)
    p.add_pose(10.1, pose)
    jobs = p.add_color(10.0, rgb) + p.add_depth(10.0, depth)
    jobs += p.add_detections(10.0, [Detection('41', 0.9, box), Detection('80', 0.9, box),
                                    Detection('', 0.0, box)])
    (job,) = [j for j in jobs if isinstance(j, ObjectJob)]
    assert [d.label for d in job.detections] == ['cup']
    assert p.snapshot()['skipped_unknown_class'] == 1
    assert p.snapshot()['skipped_no_label'] == 1
    assert [o.label for o in run_all(p, [job])] == ['mug']


def test_odd_labels_are_kept_as_given_and_counted_and_colour_words_tag_colour():
    """Empty, numeric and non-ASCII labels become observations (an empty one 'unlabeled'),
    each counted; a colour word in a label is the sighting's colour, over the pixels' (the
    object is drawn red: 'blue box' is tagged blue, 'box' red)."""
    p = make()
    pose, rgb, depth, box = view(0.0)
    p.add_pose(9.9, pose)
    p.add_pose(10.1, pose)
    jobs = p.add_color(10.0, rgb) + p.add_depth(10.0, depth)
    jobs += p.add_detections(10.0, [Detection(label, 0.9, box) for label in
                                    ('  ', '41', 'Tasse \u00e0 caf\u00e9', 'blue box', 'box')])
    (job,) = [j for j in jobs if isinstance(j, ObjectJob)]
    observations = run_all(p, [job])
    assert [o.label for o in observations] == ['unlabeled', '41', 'tasse_\u00e0_caf\u00e9',
                                               'blue_box', 'box']
    counts = p.snapshot()
    assert (counts['labels_empty'], counts['labels_numeric'], counts['labels_non_ascii']) \
        == (1, 1, 1)
    assert counts.get('skipped_no_label', 0) == 0
    colours = {o.label: [t for t in o.tags if t.startswith('color:')] for o in observations}
    assert colours['blue_box'] == ['color:blue'] and colours['box'] == ['color:red']


def test_detections_without_a_frame_of_their_stamp_are_counted():
    p = make(sync_queue_size=3)
    pose, rgb, depth, box = view(0.0)
    p.add_pose(15.9, pose)
    p.add_pose(16.1, pose)
    for i in range(5):                  # a detector whose images never arrive
        p.add_detections(10.0 + i, [Detection(f'thing{i}', 0.9, box)])
    jobs = p.add_color(16.0, rgb) + p.add_depth(16.0, depth)
    assert not any(isinstance(j, ObjectJob) for j in jobs)
    assert p.snapshot()['detections_unmatched'] == 2      # pushed out of the 3-long queue


@pytest.mark.parametrize('problem, reason', [
    ('no_camera_info', 'no_camera_info'), ('size', 'size_mismatch'),
    ('info_size', 'camera_info_mismatch')])
def test_bad_frames_are_refused_with_a_reason(problem, reason):
    p = make()
    pose, rgb, depth, _ = view(0.0)
    if problem == 'no_camera_info':
        p.intrinsics = None
    if problem == 'size':
        depth = depth[:240]
    if problem == 'info_size':
        p.add_camera_info(Intrinsics(525.0, 525.0, 159.5, 119.5, 320, 240))
    p.add_pose(5.0, pose)
    p.add_color(5.0, rgb)
    with pytest.raises(InputRejected) as info:
        p.add_depth(5.0, depth)
    assert info.value.reason == reason


def test_frames_wait_for_a_late_pose_and_are_skipped_without_one():
    p = make()
    pose, rgb, depth, _ = view(0.0)
    p.add_pose(4.95, pose)
    assert p.add_color(5.0, rgb) + p.add_depth(5.0, depth) == []        # odometry is late
    assert [type(j) for j in p.add_pose(5.02, pose)] == [PlaceJob]
    p.add_color(7.0, rgb)
    p.add_depth(7.0, depth)
    p.add_pose(8.0, pose)                 # odometry had a 3 s gap: no pose for 7.0
    assert p.snapshot()['skipped_no_pose'] == 1


def test_zero_depth_object_is_skipped_and_counted():
    p = make()
    pose, rgb, depth, box = view(0.0)
    depth[:] = 0.0
    p.add_pose(5.0, pose)
    jobs = p.add_color(5.0, rgb) + p.add_depth(5.0, depth) + p.add_detections(
        5.0, [Detection('cup', 0.9, box)])
    observations = run_all(p, jobs)
    assert [o.kind for o in observations] == ['place']
    assert p.snapshot()['skipped_no_valid_depth'] == 1


def test_stamps_going_back_are_refused_and_a_big_jump_resets():
    p = make()
    pose, rgb, depth, _ = view(0.0)
    p.add_pose(10.0, pose)
    p.add_color(10.0, rgb)
    with pytest.raises(InputRejected):
        p.add_color(9.5, rgb)
    with pytest.raises(InputRejected):
        p.add_pose(9.0, pose)
    p.add_pose(1.0, pose)                         # 9 s back: a simulator restart
    assert p.snapshot()['time_resets'] == 1
    p.add_pose(1.1, pose)
    jobs = p.add_color(1.0, rgb) + p.add_depth(1.0, depth)
    assert [type(j) for j in jobs] == [PlaceJob]


def test_a_doorbell_becomes_an_audio_observation_where_it_was_heard(tmp_path):
    p = make(tmp_path, save_audio_clips=True)
    here = checked_pose((2.0, 1.0, 0.0), yaw_quat(0.3))
    x = synthesise('doorbell', 42, pad=1.0)
    jobs = []
    for i in range(0, len(x), 800):                   # odometry keeps coming while it rings
        p.add_pose(50.0 + i / 16000, here)
        jobs += p.add_audio(50.0 + i / 16000, x[i:i + 800], 16000)
    (obs,) = run_all(p, jobs)
    assert obs.kind == 'audio' and obs.label == 'doorbell' and obs.tags == ('sound:doorbell',)
    assert np.allclose(obs.position, (2.0, 1.0, 0.0)) and obs.stamp == pytest.approx(51.0, 0.05)
    assert obs.evidence and obs.evidence[0].endswith('.wav')
    assert math.isclose(np.linalg.norm(obs.vector), 1.0, abs_tol=1e-5)


def test_audio_clips_are_not_kept_by_default(tmp_path):
    p = make(tmp_path)
    for i in range(30):
        p.add_pose(0.5 + 0.1 * i, checked_pose((0, 0, 0), (0, 0, 0, 1)))
    x = synthesise('alarm', 1, pad=1.0)
    (obs,) = run_all(p, p.add_audio(1.0, x, 16000))
    assert obs.evidence == () and not (tmp_path / 'evidence' / 'audio').exists()


def look(p, x: float, stamp: float, label: str = 'cup'):
    """One frame from ``x`` with the mug detected: its observations."""
    pose, rgb, depth, box = view(x)
    p.add_pose(stamp - 0.05, pose)
    p.add_pose(stamp + 0.05, pose)
    jobs = p.add_depth(stamp, depth) + p.add_color(stamp, rgb)
    jobs += p.add_detections(stamp, [Detection(label, 0.9, box)])
    return run_all(p, jobs)


def evidence_on_disk(tmp_path) -> list:
    return [q for q in (tmp_path / 'evidence').rglob('*') if q.is_file()]


def test_nothing_is_encoded_or_written_in_a_privacy_zone_or_window(tmp_path):
    """Perception applies the memory's privacy policy before it encodes or writes anything."""
    policy = PrivacyPolicy.parse(zones=['circle:0,0,1'], windows=['epoch:500-600'])
    p = make(tmp_path, privacy=policy, save_audio_clips=True)
    assert look(p, 0.0, 100.0) == [] and look(p, 0.6, 101.0) == []     # robot in the zone
    assert evidence_on_disk(tmp_path) == []
    assert p.snapshot()['privacy_skipped'] == 4      # two places, two objects not made
    assert 'frames_encoded' not in p.snapshot()
    x = synthesise('doorbell', 42, pad=1.0)          # a sound heard in the zone
    here = checked_pose((0.5, 0.0, 0.0), yaw_quat(0.0))
    jobs = []
    for i in range(0, len(x), 800):
        p.add_pose(200.0 + i / 16000, here)
        jobs += p.add_audio(200.0 + i / 16000, x[i:i + 800], 16000)
    assert jobs and run_all(p, jobs) == [] and evidence_on_disk(tmp_path) == []
    assert look(p, 1.2, 550.0) == []                 # outside the zone, inside the window
    assert evidence_on_disk(tmp_path) == []
    observations = look(p, 1.8, 700.0)               # outside both: works
    assert sorted(o.kind for o in observations) == ['object', 'place']
    assert len(evidence_on_disk(tmp_path)) == 2


def test_an_object_in_a_zone_seen_from_outside_is_not_kept(tmp_path):
    policy = PrivacyPolicy.parse(zones=[f'circle:{MUG[0]},{MUG[1]},0.5'])
    p = make(tmp_path, privacy=policy)
    observations = look(p, 0.0, 100.0)
    assert [o.kind for o in observations] == ['place']          # the view is not private
    assert len(evidence_on_disk(tmp_path)) == 1                 # the frame, no crop
    assert p.snapshot()['privacy_skipped'] == 1


def test_free_space_fills_only_when_on_and_keeps_a_mug_put_where_space_was_empty():
    # Three keyframes without the mug (x = 0, 0.6, 1.2) see its place empty; then it is there.
    p = make(locator=ObjectLocator(ghosts=GhostCheck(free_space_min=2)))
    off = make()
    for i, x in enumerate((0.0, 0.6, 1.2)):
        pose, rgb, depth, _ = view_of(x, [])
        for q in (p, off):
            q.add_pose(100.0 + i, pose)
            run_all(q, q.add_color(100.0 + i, rgb) + q.add_depth(100.0 + i, depth))
    assert p.free_space.frames == 3 and off.free_space.frames == 0     # off: no cost
    assert p.free_space.empty_around(MUG, 2)
    pose, rgb, depth, boxes = view_of(1.2, [MUG])
    p.add_pose(103.0, pose)
    jobs = p.add_color(103.0, rgb) + p.add_depth(103.0, depth)
    objects = run_all(p, jobs + p.add_detections(103.0, [Detection('cup', 0.9, boxes[0])]))
    assert len(objects) == 1 and np.linalg.norm(objects[0].position - MUG) < 0.05
    assert p.snapshot().get('skipped_ghost_free_space', 0) == 0
    assert p.free_space.frames == 4 and p.snapshot()['free_space_voxels_dropped'] == 0
