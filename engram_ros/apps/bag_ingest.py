"""``engram ingest-bag BAG --store DIR``: build a memory offline from a rosbag2 bag.

The perception pipeline and the memory run in one process over the bag's messages in log-time
order, at full speed, and every frame is processed: nothing is dropped as a loaded live node
drops frames, so the same bag gives the same memory (a byte-identical ``engram export``). The
pipeline is built from the same parameters as the perception node
(:func:`engram_ros.perception.config.perception_config`), the memory from the memory node's
(:func:`engram_ros.ros.memory_parameters.open_store`), both read from ``--params`` (default
``config/engram.yaml``) the way the launchers read it, with ``store_dir`` = ``--store``.

Time is the bag's: the memory's clock (:attr:`MemoryStore.clock`) is the log time of the message
being handled, consolidation runs every ``consolidation_period`` seconds of bag time and once at
the end. Evidence file names come from a generator seeded by the bag's identity (its start,
end, message count and topics). Encrypted evidence (Fernet) is not reproducible byte for byte.

Topics are the perception node's inputs (:data:`INPUTS`), resolved as the node resolves them:
``/<namespace>/<name>`` (``--namespace``), or what ``--remap NAME:=TOPIC`` names; ``/tf`` and
``/tf_static`` are absolute. Colour and depth are read raw (``sensor_msgs/Image``) when the bag
has the raw topic, else from ``<topic>/compressed`` and ``<topic>/compressedDepth``
(``sensor_msgs/CompressedImage``). Other topics are ignored (listed in the summary).

Consent and privacy as live: without the memory's ``persist`` there is no store to build (the
command refuses); perception and the memory apply the memory's privacy zones and windows.

Refused, with a message naming the problem and the topic, exit status 2, and the store directory
removed unless ``--keep-partial``: a bag that is missing, truncated or damaged; an input topic
of an unexpected or uninstalled type, or a message that does not deserialise; no colour or depth
images, camera info or poses (TF or odometry); a stamp that goes back on an input topic (per
child frame on ``/tf``).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Callable
from typing import Sequence
from typing import TextIO

import yaml
from tqdm import tqdm

from engram_ros.apps.wiring import default_params_file
from engram_ros.apps.wiring import Parameters
from engram_ros.apps.wiring import shared_by_memory
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import ObservationExcluded
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.perception.audio import SoundClassifier
from engram_ros.perception.audio import SoundModel
from engram_ros.perception.config import perception_config
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.pipeline import Perception
from engram_ros.perception.visual import load_visual_encoder
from engram_ros.ros import memory_parameters
from engram_ros.ros.bag import BagError
from engram_ros.ros.bag import BagReader
from engram_ros.ros.conversions import sensors as pc
from engram_ros.ros.conversions.memory import observation_from_msg
from engram_ros.ros.conversions.memory import observation_to_msg
from engram_ros.ros.conversions.transforms import transforms_from_msg
from engram_ros.ros.perception_parameters import PARAMETERS
from engram_ros.ros.perception_parameters import PRIVACY_PARAMETERS

#: Perception's inputs: name -> (message type, compressed variant suffix or '').
INPUTS = {
    'camera/color/image_raw': ('sensor_msgs/msg/Image', '/compressed'),
    'camera/depth/image_raw': ('sensor_msgs/msg/Image', '/compressedDepth'),
    'camera/color/camera_info': ('sensor_msgs/msg/CameraInfo', ''),
    'odom': ('nav_msgs/msg/Odometry', ''),
    'pose': ('geometry_msgs/msg/PoseStamped', ''),
    'audio/chunk': ('engram_ros/msg/AudioChunk', ''),
    'detections': ('engram_ros/msg/DetectionArray', ''),
    'detections_2d': ('vision_msgs/msg/Detection2DArray', ''),
    '/tf': ('tf2_msgs/msg/TFMessage', ''),
    '/tf_static': ('tf2_msgs/msg/TFMessage', ''),
}
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
REQUESTER = 'cli:ingest-bag'


class IngestError(ValueError):
    """The bag or the settings cannot make a memory; the message says why (exit status 2)."""


@dataclass
class IngestReport:
    """What an ingest did."""

    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    messages: int = 0
    engrams: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    ignored_topics: dict[str, str] = field(default_factory=dict)


def resolve(name: str, namespace: str, remaps: dict[str, str]) -> str:
    """The bag topic of input ``name`` (a relative name gets the namespace, as in a node)."""
    if name in remaps:
        return remaps[name]
    if name.startswith('/'):
        return name
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def settings(params_file: Path | None, store: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(perception's values, the memory's values)`` from the parameter file as the launchers
    read it, the memory's ``store_dir`` being ``store`` and perception sharing the memory's
    consent, evidence and privacy settings."""
    path = Path(params_file or default_params_file())
    try:
        parameters = Parameters(path, {'memory': {'store_dir': str(store)}})
    except (OSError, yaml.YAMLError) as exc:
        raise IngestError(f'parameter file {path}: {exc}') from None
    memory_defaults = {name: (None if default is memory_parameters.STRING_ARRAY else default)
                       for name, default, _ in memory_parameters.declarations()}
    memory = parameters.of('memory', memory_defaults)
    defaults: dict[str, Any] = {name: default for name, (default, _) in PARAMETERS.items()}
    defaults.update({'rooms': [], **{name: [] for name in PRIVACY_PARAMETERS}})
    perception = parameters.of('perception', defaults)
    perception.update(shared_by_memory(parameters))
    return perception, memory


def _seeded_names(reader: BagReader):
    """Evidence file names from a generator seeded by the bag's identity."""
    identity = repr((reader.start_ns, reader.end_ns, reader.count(reader.topics),
                     sorted(reader.topics.items())))
    rng = random.Random(hashlib.sha256(identity.encode()).digest())
    return lambda: f'{rng.getrandbits(128):032x}'


class _Ingest:
    """One run: the topic plan, the pipeline, the memory, and the loop."""

    def __init__(self, reader: BagReader, perception_values: dict, memory_values: dict,
                 namespace: str, remaps: dict[str, str], checkpoints: Sequence[float] = (),
                 on_checkpoint: Callable[[MemoryStore, float], None] | None = None) -> None:
        self.reader = reader
        self.checkpoints = sorted(checkpoints) if on_checkpoint is not None else []
        self.on_checkpoint = on_checkpoint
        self.plan = self._plan(namespace, remaps)
        self.perception_values = perception_values
        self.memory_values = memory_values
        self.last_stamp: dict[tuple[str, str], float] = {}

    def _plan(self, namespace: str, remaps: dict[str, str]) -> dict[str, tuple[str, str]]:
        """``{bag topic: (input name, message type)}``; refuses a bag without what perception
        needs, or an input of an unexpected type."""
        topics = self.reader.topics
        plan: dict[str, tuple[str, str]] = {}
        for name, (msgtype, suffix) in INPUTS.items():
            topic = resolve(name, namespace, remaps)
            candidates = [(topic, msgtype)]
            if suffix:
                candidates.append((topic + suffix, COMPRESSED))
            for candidate, expected in candidates:
                if candidate not in topics:
                    continue
                if topics[candidate] != expected:
                    raise IngestError(f'topic {candidate} carries {topics[candidate]}, not '
                                      f'{expected}: unknown message type for input {name!r}')
                self.reader.message_class(candidate)    # installed?
                plan[candidate] = (name, expected)
                break
        present = {name for name, _ in plan.values()}
        needed = {'camera/color/image_raw': 'colour images', 'camera/depth/image_raw':
                  'depth images', 'camera/color/camera_info': 'camera info'}
        for name, what in needed.items():
            if name not in present:
                topic = resolve(name, namespace, remaps)
                suffix = INPUTS[name][1]
                also = f' or {topic}{suffix}' if suffix else ''
                raise IngestError(f'no {what}: the bag has no {topic}{also} (its topics: '
                                  f'{", ".join(sorted(topics)) or "none"}); remap with '
                                  f'--remap {name}:=TOPIC')
        if not present & {'/tf', 'odom', 'pose'}:
            raise IngestError('no robot poses: the bag has neither /tf nor '
                              f'{resolve("odom", namespace, remaps)} nor '
                              f'{resolve("pose", namespace, remaps)}')
        return plan

    def _check_stamp(self, topic: str, key: str, stamp: float) -> None:
        last = self.last_stamp.get((topic, key))
        if last is not None and stamp < last:
            where = f'topic {topic}' + (f' (child frame {key})' if key else '')
            raise IngestError(f'stamps go back on {where}: {stamp:.9f} after {last:.9f} '
                              f'({last - stamp:.3f} s earlier)')
        self.last_stamp[(topic, key)] = stamp

    def run(self, out: TextIO, progress: bool) -> IngestReport:
        report = IngestReport(bag_seconds=self.reader.duration_s)
        report.ignored_topics = {t: m for t, m in self.reader.topics.items()
                                 if t not in self.plan}
        p = self.perception_values
        config = perception_config(lambda name: p[name])
        config.evidence_names = _seeded_names(self.reader)
        perception = Perception(config, load_visual_encoder(p['visual_encoder'], p['dim']),
                                SoundClassifier(SoundModel.load(), p['audio.min_similarity']))
        store, _ = memory_parameters.open_store(lambda name: self.memory_values[name])
        now = [self.reader.start_ns * 1e-9]
        store.clock = lambda: now[0]
        period = float(self.memory_values['consolidation_period'])
        next_consolidation = now[0] + period
        total = self.reader.count(self.plan)
        wall, cpu = time.perf_counter(), time.process_time()
        bar = tqdm(total=total, desc='ingesting', unit='msg', file=sys.stderr,
                   disable=not progress, mininterval=0.5)
        try:
            pending = list(self.checkpoints)
            for topic, log_ns, msg in self.reader.messages(self.plan):
                now[0] = log_ns * 1e-9
                while pending and now[0] > pending[0]:
                    self.on_checkpoint(store, pending.pop(0))
                if period > 0 and now[0] >= next_consolidation:
                    store.consolidate(requester=REQUESTER, now=now[0])
                    next_consolidation = now[0] + period
                for job in self._feed(perception, topic, msg):
                    self._store(store, perception, perception.run(job))
                report.messages += 1
                bar.update()
            for checkpoint in pending:      # at or after the bag's last message
                self.on_checkpoint(store, checkpoint)
            store.consolidate(requester=REQUESTER, now=now[0])
            report.engrams = len(store)
        finally:
            bar.close()
            store.close()
        report.wall_seconds = time.perf_counter() - wall
        report.cpu_seconds = time.process_time() - cpu
        report.counters = dict(sorted(perception.snapshot().items()))
        return report

    def _feed(self, perception: Perception, topic: str, msg) -> list:
        name, msgtype = self.plan[topic]
        try:
            if name in ('/tf', '/tf_static'):
                transforms = transforms_from_msg(msg)
                if name == '/tf':
                    for _parent, child, stamp, *_ in transforms:
                        self._check_stamp(topic, child, stamp)
                return perception.add_transforms(transforms, static=name == '/tf_static')
            stamp = pc.stamp_of(msg)
            if name == 'detections_2d' and stamp == 0.0 and msg.detections:
                stamp = pc.stamp_of(msg.detections[0])
            self._check_stamp(topic, '', stamp)
            compressed = msgtype == COMPRESSED
            if name == 'camera/color/image_raw':
                perception.count('color_received')
                rgb = pc.color_from_compressed(msg) if compressed else pc.color_from_msg(msg)
                return perception.add_color(stamp, rgb, msg.header.frame_id)
            if name == 'camera/depth/image_raw':
                perception.count('depth_received')
                depth = pc.depth_from_compressed(msg) if compressed else pc.depth_from_msg(msg)
                return perception.add_depth(stamp, depth)
            if name == 'camera/color/camera_info':
                perception.count('camera_info_received')
                perception.add_camera_info(pc.intrinsics_from_msg(msg))
                return []
            if name in ('odom', 'pose'):
                return self._pose(perception, msg, name)
            if name == 'audio/chunk':
                perception.count('audio_received')
                return perception.add_audio(*pc.audio_from_msg(msg))
            if name == 'detections':
                return perception.add_detections(*pc.detections_from_msg(msg))
            return perception.add_detections(*pc.detections_from_vision_msg(msg))
        except InputRejected as exc:    # skipped and counted, as the live node does
            perception.count(f'skipped_{exc.reason}')
            return []

    def _pose(self, perception: Perception, msg, name: str) -> list:
        perception.count('poses_received')
        frame_id = msg.header.frame_id
        expected = perception.config.frame_id
        if frame_id not in ('', expected):
            # as the live node: with TF, odometry in the odom frame is not needed
            perception.count('poses_unused_with_tf' if perception.frame_poses.source == 'tf'
                             else 'skipped_bad_pose')
            return []
        convert = pc.pose_from_odometry if name == 'odom' else pc.pose_from_pose_stamped
        return perception.add_pose(*convert(msg))

    @staticmethod
    def _store(store: MemoryStore, perception: Perception, observations) -> None:
        """A job's observations in one transaction, through the message as the memory node
        receives them (float32 vectors, ...).

        :raises: a storage error (the ingest stops: the store is not the bag's memory).
        """
        if not observations:
            return
        batch = [observation_from_msg(observation_to_msg(obs)) for obs in observations]
        for result in store.ingest_many(batch):
            if isinstance(result, ObservationExcluded):
                perception.count('refused_private')
            elif isinstance(result, InvalidObservation):
                perception.count('refused_invalid')
            elif isinstance(result, Exception):
                raise result
            else:
                perception.count('stored')


def fix_threads() -> None:
    """One thread for BLAS/OpenMP (threadpoolctl: numpy is loaded by now, too late for the
    environment variables the nodes set), OpenCV and torch (when loaded): the same arithmetic
    every run, and no idle BLAS thread spinning against the pipeline on a robot's few cores."""
    import cv2
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    cv2.setNumThreads(1)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(1)


def ingest_bag(bag: Path, store: Path, params_file: Path | None = None,
               keep_partial: bool = False, namespace: str = '',
               remaps: dict[str, str] | None = None, out: TextIO | None = None,
               progress: bool | None = None, checkpoints: Sequence[float] = (),
               on_checkpoint: Callable[[MemoryStore, float], None] | None = None
               ) -> IngestReport:
    """Build the memory at ``store`` (a new directory) from ``bag``.

    ``on_checkpoint(store, t)`` is called once for each time ``t`` [s since the epoch] of
    ``checkpoints``, after every message logged at or before ``t`` is stored and before the
    next one (those past the bag's end: before the final consolidation): a look at the memory
    as it was then, e.g. at the end of each lap (the quality benchmark). It must not write.

    :raises IngestError: (and :class:`BagError`) for a bag or settings that cannot make a
        memory; the store directory is removed then, unless ``keep_partial``.
    """
    out = out or sys.stdout
    store = Path(store).expanduser()
    if store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise IngestError(f'{store} exists and is not empty: ingest-bag builds a new memory')
    perception_values, memory_values = settings(params_file, store)
    if not memory_values['persist']:
        raise IngestError('the memory has no consent to keep anything on disk (engram_memory '
                          f'persist is false in {params_file or default_params_file()}): '
                          'set persist: true in a --params file to build a store')
    fix_threads()
    try:
        with BagReader(bag) as reader:
            run = _Ingest(reader, perception_values, memory_values, namespace, remaps or {},
                          checkpoints, on_checkpoint)
            report = run.run(out, sys.stderr.isatty() if progress is None else progress)
    except BaseException:
        if not keep_partial:
            shutil.rmtree(store, ignore_errors=True)
        raise
    return report


def summary(report: IngestReport) -> str:
    c = report.counters
    speed = report.bag_seconds / report.wall_seconds if report.wall_seconds > 0 else 0.0
    lines = [f'{report.engrams} engrams from {report.messages} messages, '
             f'{report.bag_seconds:.1f} s of bag in {report.wall_seconds:.1f} s '
             f'({speed:.1f}x real time; CPU {report.cpu_seconds:.1f} s)',
             f'frames: {c.get("frames_synced", 0)} synced, {c.get("frames_gated", 0)} '
             f'keyframes, {c.get("object_observations", 0)} object and '
             f'{c.get("audio_observations", 0)} sound observations, {c.get("stored", 0)} '
             'stored']
    skipped = {k: v for k, v in c.items() if k.startswith(('skipped_', 'refused_',
                                                            'privacy_')) and v}
    if skipped:
        lines.append('skipped: ' + ', '.join(f'{k} {v}' for k, v in skipped.items()))
    if report.ignored_topics:
        lines.append('ignored topics: ' + ', '.join(f'{t} ({m})' for t, m in
                                                      sorted(report.ignored_topics.items())))
    return '\n'.join(lines)


__all__ = ['BagError', 'IngestError', 'IngestReport', 'ingest_bag', 'summary', 'settings']
