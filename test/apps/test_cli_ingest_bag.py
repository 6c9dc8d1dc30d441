"""``engram ingest-bag``: a bag the simulator node records (its own process, the small
scenario) becomes a memory, the same twice; bad bags are refused with exit status 2 and leave
no store behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from conftest import NodeProcess
from conftest import PARAMS
from conftest import ROOT
from conftest import wait_for

pytest.importorskip('rclpy')
pytest.importorskip('pybullet')
pytest.importorskip('rosbags')
if not (ROOT / 'engram_ros' / 'perception' / 'models' / 'visual_vocabulary.npz').exists():
    pytest.skip('perception models not generated (tools/train_perception_models.py)',
                allow_module_level=True)

from std_msgs.msg import String  # noqa: E402

from engram_ros.apps.cli import main  # noqa: E402
from engram_ros.ros.bag import BagError  # noqa: E402
from engram_ros.ros.bag import BagReader  # noqa: E402
from engram_ros.ros.bag import BagWriter  # noqa: E402
from engram_ros.ros.bag import message_class  # noqa: E402

NAMESPACE = f'/b{uuid.uuid4().hex[:8]}'
COLOR = f'{NAMESPACE}/camera/color/image_raw'


def record(path: Path, log: Path, *extra: str) -> None:
    """The sim node records the small scenario as fast as it renders, on simulated time."""
    args = ['--params-file', str(PARAMS), '-r', f'__ns:={NAMESPACE}']
    for item in ('scenario:=small', 'width:=320', 'height:=240', 'realtime:=false',
                 'start_time:=1700000000.0', 'wait_for_subscribers:=false', f'record:={path}',
                 *extra):
        args += ['-p', item]
    sim = NodeProcess('engram_ros.sim.node', args, log)
    try:
        # metadata.yaml is written when the bag is closed, at the end of the patrol
        wait_for(lambda: (path / 'metadata.yaml').exists() or sim.proc.poll() is not None,
                 timeout=240.0)
        assert (path / 'metadata.yaml').exists(), sim.log()
    finally:
        assert sim.stop() == 0, sim.log()


@pytest.fixture(scope='module')
def sim_bag(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('bag')
    record(folder / 'small', folder / 'sim.log', 'record_raw:=true')
    return folder / 'small'


@pytest.fixture
def params(tmp_path) -> Path:
    path = tmp_path / 'params.yaml'
    path.write_text('/**/engram_memory:\n  ros__parameters:\n    persist: true\n')
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out = io.StringIO()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(list(argv), out=out)
    return status, out.getvalue(), err.getvalue()


def ingest(bag: Path, store: Path, params: Path, *extra: str) -> tuple[int, str, str]:
    return run('ingest-bag', str(bag), '--store', str(store), '--params', str(params),
               '--namespace', NAMESPACE, *extra)


def copy_bag(source: Path, target: Path, change=lambda topic, msg: msg) -> Path:
    """A copy of ``source`` through ``change(topic, msg)`` (None leaves the message out)."""
    with BagReader(source) as reader, BagWriter(target) as writer:
        for topic, log_ns, msg in reader.messages(reader.topics):
            msg = change(topic, msg)
            if msg is not None:
                writer.write(topic, msg, log_ns)
    return target


def test_the_recorded_bag_is_private_and_complete(sim_bag):
    assert stat.S_IMODE(os.stat(sim_bag).st_mode) == 0o700
    files = list(sim_bag.iterdir())
    assert {f.suffix for f in files} == {'.mcap', '.yaml'}
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    with BagReader(sim_bag) as bag:
        topics = bag.topics
        assert topics[COLOR] == 'sensor_msgs/msg/Image'
        assert topics['/tf_static'] == topics['/tf'] == 'tf2_msgs/msg/TFMessage'
        assert topics['/clock'] == 'rosgraph_msgs/msg/Clock'
        assert bag.count([COLOR]) == bag.count([f'{NAMESPACE}/detections']) > 10
        assert bag.start_ns == 1_700_000_000 * 10**9


def test_same_bag_gives_an_identical_export_twice(sim_bag, params, tmp_path):
    exports = []
    for run_name in ('a', 'b'):
        store = tmp_path / f'store_{run_name}'
        status, out, err = ingest(sim_bag, store, params)
        assert status == 0, err
        assert 'engrams from' in out
        export = tmp_path / f'export_{run_name}.jsonl'
        status, _, err = run('--store', str(store), 'export', str(export))
        assert status == 0, err
        files = sorted(p.relative_to(export.parent / f'{export.name}.evidence')
                       for p in (export.parent / f'{export.name}.evidence').rglob('*')
                       if p.is_file())
        exports.append((export.read_bytes(), files,
                        [(export.parent / f'{export.name}.evidence' / f).read_bytes()
                         for f in files]))
    assert exports[0] == exports[1]
    text = exports[0][0].decode()
    assert '"kind": "object"' in text and '"kind": "place"' in text
    assert exports[0][1], 'no evidence written'
    # the memory's clock was the bag's: every engram was last touched in the bag's time
    records = [json.loads(line) for line in text.splitlines()]
    assert all(1.7e9 <= r['last_access'] <= 1.7e9 + 60 for r in records)


def test_without_consent_to_persist_there_is_no_store(sim_bag, tmp_path):
    no_consent = tmp_path / 'no.yaml'
    no_consent.write_text('/**/engram_memory:\n  ros__parameters:\n    persist: false\n')
    status, _, err = ingest(sim_bag, tmp_path / 'store', no_consent)
    assert status == 2
    assert 'consent' in err and 'persist' in err
    assert not (tmp_path / 'store').exists()


def test_a_truncated_bag_is_refused(sim_bag, params, tmp_path):
    cut = tmp_path / 'cut'
    cut.mkdir()
    for f in sim_bag.iterdir():
        data = f.read_bytes()
        (cut / f.name).write_bytes(data[:len(data) // 2] if f.suffix == '.mcap' else data)
    status, _, err = ingest(cut, tmp_path / 'store', params)
    assert status == 2, err
    assert 'truncated or damaged' in err and str(cut) in err
    assert not (tmp_path / 'store').exists()


def test_a_bag_without_images_is_refused_naming_the_topic(sim_bag, params, tmp_path):
    bag = copy_bag(sim_bag, tmp_path / 'no_images',
                   lambda topic, msg: None if 'image_raw' in topic else msg)
    status, _, err = ingest(bag, tmp_path / 'store', params)
    assert status == 2
    assert f'no colour images: the bag has no {COLOR} or {COLOR}/compressed' in err
    assert not (tmp_path / 'store').exists()


def test_a_recording_without_record_raw_has_no_images(tmp_path, params):
    bag = tmp_path / 'plain'
    record(bag, tmp_path / 'sim.log')
    with BagReader(bag) as reader:
        assert COLOR not in reader.topics
        assert f'{NAMESPACE}/detections' in reader.topics
    status, _, err = ingest(bag, tmp_path / 'store', params)
    assert status == 2 and 'no colour images' in err


def test_an_input_of_an_unknown_type_is_refused_naming_it(sim_bag, params, tmp_path):
    bag = copy_bag(sim_bag, tmp_path / 'strings',
                   lambda topic, msg: String(data='not an image') if topic == COLOR else msg)
    status, _, err = ingest(bag, tmp_path / 'store', params)
    assert status == 2
    assert f'topic {COLOR} carries std_msgs/msg/String, not sensor_msgs/msg/Image' in err
    assert not (tmp_path / 'store').exists()
    with pytest.raises(BagError, match='no_such_msgs/msg/Thing is not installed'):
        message_class('no_such_msgs/msg/Thing')


def _stamps_back(sim_bag: Path, target: Path) -> Path:
    seen = []

    def change(topic, msg):
        if topic == COLOR:
            seen.append(msg)
            if len(seen) == 30:     # late in the bag: the store exists by then
                msg.header.stamp.sec -= 5
        return msg
    return copy_bag(sim_bag, target, change)


def test_stamps_going_back_are_refused_and_the_partial_store_removed(sim_bag, params,
                                                                     tmp_path):
    bag = _stamps_back(sim_bag, tmp_path / 'back')
    status, _, err = ingest(bag, tmp_path / 'store', params)
    assert status == 2
    assert f'stamps go back on topic {COLOR}' in err
    assert not (tmp_path / 'store').exists()

    status, _, err = ingest(bag, tmp_path / 'kept', params, '--keep-partial')
    assert status == 2 and 'partial store kept' in err
    assert any((tmp_path / 'kept').iterdir())     # what was ingested before the refusal


def test_a_store_that_exists_is_not_touched(sim_bag, params, tmp_path):
    store = tmp_path / 'store'
    store.mkdir()
    (store / 'keep.txt').write_text('mine')
    status, _, err = ingest(sim_bag, store, params)
    assert status == 2 and 'not empty' in err
    assert (store / 'keep.txt').read_text() == 'mine'


def test_raw_frames_inside_a_privacy_window_are_not_recorded(tmp_path):
    bag = tmp_path / 'private'
    record(bag, tmp_path / 'sim.log', 'record_raw:=true',
           'privacy.time_windows:=["epoch:1700000000-1700000005"]')
    with BagReader(bag) as reader:
        stamps = [msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                  for _, _, msg in reader.messages([COLOR])]
        detections = reader.count([f'{NAMESPACE}/detections'])
        status = [json.loads(msg.data) for _, _, msg in
                  reader.messages([f'{NAMESPACE}/sim/status'])][-1]
    assert stamps and min(stamps) > 1700000005
    skipped = status['recorded']['privacy_skipped']
    assert skipped > 0 and len(stamps) == detections - skipped
    assert status['recorded']['raw_frames'] == len(stamps)


def _skips(summary: str) -> list[str]:
    """The counters of the ``skipped:`` line of an ingest summary (``skipped_ghost_surface 1``)."""
    return [item.strip() for line in summary.splitlines() if line.startswith('skipped: ')
            for item in line[len('skipped: '):].split(',')]


def _summary_counts(out: str) -> tuple[int, int]:
    """(synced frames, stored observations) from the summary."""
    line = next(li for li in out.splitlines() if li.startswith('frames:'))
    words = line.replace(',', '').split()
    return int(words[1]), int(words[words.index('stored') - 1])


def test_compressed_images_and_vision_msgs_detections_as_a_real_robot_records_them(
        sim_bag, params, tmp_path):
    """A real robot's bag: image_transport's compressed colour and compressedDepth depth, and
    a detector's vision_msgs Detection2DArray, instead of the raw images and own detections."""
    from engram_ros.perception import compressed
    from engram_ros.ros.conversions import sensors

    def change(topic, msg):
        if topic == COLOR:
            fmt, data = compressed.encode_color(sensors.color_from_msg(msg), 'png')
            return (f'{COLOR}/compressed',
                    sensors.compressed_msg(fmt, data, msg.header.stamp, msg.header.frame_id))
        if topic == f'{NAMESPACE}/camera/depth/image_raw':
            fmt, data = compressed.encode_depth(sensors.depth_from_msg(msg), '32FC1')
            return (f'{topic}/compressedDepth',
                    sensors.compressed_msg(fmt, data, msg.header.stamp, msg.header.frame_id))
        if topic == f'{NAMESPACE}/detections':
            _, detections = sensors.detections_from_msg(msg)
            return (f'{NAMESPACE}/detections_2d', sensors.vision_detections_to_msg(
                detections, msg.header.stamp, msg.header.frame_id))
        return topic, msg

    robot = tmp_path / 'robot'
    with BagReader(sim_bag) as reader, BagWriter(robot) as writer:
        for topic, log_ns, msg in reader.messages(reader.topics):
            topic, msg = change(topic, msg)
            writer.write(topic, msg, log_ns)
    status, out, err = ingest(robot, tmp_path / 'robot_store', params)
    assert status == 0, err
    status, raw_out, err = ingest(sim_bag, tmp_path / 'raw_store', params)
    assert status == 0, err
    robot_frames, robot_stored = _summary_counts(out)
    raw_frames, raw_stored = _summary_counts(raw_out)
    assert robot_frames == raw_frames > 10, (out, raw_out)  # every frame, from the compressed
    # nothing lost to decoding: the only detections skipped are boxes the ghost checks refuse
    # (JPEG-compressed colour can tip a borderline box either way)
    assert robot_stored > 0, out
    assert not [line for line in _skips(out) if 'ghost' not in line], out
    status, listing, err = run('--store', str(tmp_path / 'robot_store'), '--json', 'list',
                               '--kind', 'object')
    assert status == 0 and '"label"' in listing, (out, listing, err)


def test_an_sqlite3_copy_gives_the_same_memory_as_the_mcap_bag(sim_bag, params, tmp_path):
    copy = tmp_path / 'sqlite'
    with BagReader(sim_bag) as reader, BagWriter(copy, storage='sqlite3') as writer:
        for topic, log_ns, msg in reader.messages(reader.topics):
            writer.write(topic, msg, log_ns)
    assert [f.suffix for f in copy.iterdir() if f.suffix != '.yaml'] == ['.db3']
    exports = []
    for name, bag in (('mcap', sim_bag), ('sqlite', copy)):
        assert ingest(bag, tmp_path / f'store_{name}', params)[0] == 0
        export = tmp_path / f'{name}.jsonl'
        assert run('--store', str(tmp_path / f'store_{name}'), 'export', str(export))[0] == 0
        exports.append(export.read_bytes())
    assert exports[0] == exports[1] and exports[0]


def test_a_bag_is_never_written_over(sim_bag):
    with pytest.raises(BagError, match='exists'):
        BagWriter(sim_bag)


def test_remapped_topics_are_read_where_the_robot_recorded_them(sim_bag, params, tmp_path):
    robot = tmp_path / 'renamed'
    with BagReader(sim_bag) as reader, BagWriter(robot) as writer:
        for topic, log_ns, msg in reader.messages(reader.topics):
            writer.write('/front/rgb' if topic == COLOR else topic, msg, log_ns)
    status, _, err = ingest(robot, tmp_path / 'refused', params)
    assert status == 2 and f'no colour images: the bag has no {COLOR}' in err
    status, out, err = ingest(robot, tmp_path / 'store', params,
                              '--remap', 'camera/color/image_raw:=/front/rgb')
    assert status == 0, err
    assert _summary_counts(out)[0] > 10
    status, _, err = ingest(robot, tmp_path / 'bad', params, '--remap', 'camera')
    assert status == 2 and 'accepted NAME:=TOPIC' in err


def test_checkpoints_show_the_memory_as_it_was_then_and_change_nothing(sim_bag, params,
                                                                         tmp_path):
    from engram_ros.apps.bag_ingest import ingest_bag
    with BagReader(sim_bag) as reader:
        start, end = reader.start_ns * 1e-9, reader.end_ns * 1e-9
    seen = []

    def look(store, t):
        engrams = list(store.storage.iter_all())
        seen.append((t, len(store), max((e.last_seen for e in engrams), default=0.0)))

    times = [start + 0.4 * (end - start), start + 0.8 * (end - start), end + 100.0]
    report = ingest_bag(sim_bag, tmp_path / 'a', params, namespace=NAMESPACE, progress=False,
                        checkpoints=times[::-1], on_checkpoint=look)
    assert [t for t, _, _ in seen] == times              # once each, in time order
    assert 0 < seen[0][1] <= seen[1][1]                  # the memory grew between them
    assert seen[0][2] <= times[0] and seen[1][2] <= times[1]   # nothing from after t
    plain = ingest_bag(sim_bag, tmp_path / 'b', params, namespace=NAMESPACE, progress=False)
    assert report.engrams == plain.engrams
