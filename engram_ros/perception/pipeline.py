"""The perception pipeline: sensor inputs in, encoded :class:`Observation` objects out.

Two halves, so a node can run them in different threads (callback groups):

* the **input half** (``add_*``): cheap per message. Colour and depth are paired by
  approximate-time synchronisation, paired with the robot and camera poses at their stamp
  (from TF, or odometry and the camera parameters: :mod:`.frame_poses`; a frame newer than
  the newest pose waits for it) and the camera intrinsics, and gated: a frame becomes
  a :class:`PlaceJob` only when it is a keyframe;
  detections are paired with the frame of their stamp (an :class:`ObjectJob`); audio is cut
  into events (an :class:`AudioJob` with the pose where it was heard). Bad input raises
  :class:`InputRejected` and changes nothing.
* the **encoding half** (:meth:`Perception.run`): the expensive part, one job at a time:
  visual/crop/audio embeddings, 3D object estimates, sketch tags (``room:`` from the
  configured rooms, :mod:`.rooms`), evidence files.

Privacy comes first: the memory's :class:`~engram_ros.core.privacy.PrivacyPolicy` (the same
``privacy.zones`` and ``privacy.time_windows``) is applied before anything is encoded or
written. A job whose robot pose or stamp is private makes nothing (no embedding, no frame, crop
or clip on disk, no observation); an object located inside a zone is skipped before its crop is
cut. Each observation not made is counted in ``privacy_skipped``.

Counters (``Perception.counters``) say what happened to every input; the node publishes them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import Counter
from collections import deque
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from engram_ros.core import labels
from engram_ros.core import sketch
from engram_ros.core.evidence import EvidenceError
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.transforms import TransformBuffer
from engram_ros.core.visibility import View
from engram_ros.perception import evidence
from engram_ros.perception.audio import audio_embedding
from engram_ros.perception.audio import audio_features
from engram_ros.perception.audio import SoundClassifier
from engram_ros.perception.config import PerceptionConfig
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.frame_poses import FramePoses
from engram_ros.perception.free_space import FreeSpace
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import Pose
from engram_ros.perception.jobs import AudioJob
from engram_ros.perception.jobs import Frame
from engram_ros.perception.jobs import Job
from engram_ros.perception.jobs import ObjectJob
from engram_ros.perception.jobs import PlaceJob
from engram_ros.perception.looks import LookThrottle
from engram_ros.perception.looks import rough_position
from engram_ros.perception.objects import Detection
from engram_ros.perception.objects import object_confidence
from engram_ros.perception.objects import object_tags
from engram_ros.perception.pose_buffer import PoseBuffer
from engram_ros.perception.sync import ApproximateTimeSynchronizer
from engram_ros.perception.visual import VisualEncoder

_LOG = logging.getLogger(__name__)

#: Side of the square a detection crop is resized to before it is encoded [px].
CROP_SIZE = 160


class Perception:
    """Sensor inputs -> jobs (cheap) -> observations (expensive); see the module docstring."""

    def __init__(self, config: PerceptionConfig, encoder: VisualEncoder,
                 sound_classifier: SoundClassifier | None) -> None:
        self.config = config
        self.encoder = encoder
        self.sound_classifier = sound_classifier
        self.counters: Counter[str] = Counter()
        self._counter_lock = threading.Lock()
        self.t_base_optical = camera_extrinsic(config.camera_xyz, config.camera_rpy,
                                               config.camera_convention)
        self.intrinsics: Intrinsics | None = None
        self.poses = PoseBuffer(config.pose_tolerance)
        self.tf = TransformBuffer(config.tf_tolerance, config.tf_max_gap)
        self.frame_poses = FramePoses(config.frame_id, config.base_frame, self.poses, self.tf,
                                      self.t_base_optical, tf_wait=config.tf_wait)
        #: The colour image's frame_id: the camera's frame in TF.
        self.camera_frame = ''
        #: Frames skipped for a reason found later than their input (TF or odometry that came
        #: after the images): (reason, message); the node drains them into throttled warnings.
        self.late_skips: deque[tuple[str, str]] = deque(maxlen=20)
        self._frames = ApproximateTimeSynchronizer(('color', 'depth'), config.sync_slop,
                                                   config.sync_queue_size)
        self._detections = ApproximateTimeSynchronizer(('frame', 'detections'),
                                                       config.sync_slop, config.sync_queue_size)
        self._audio_stamp: float | None = None
        self._newest: dict[str, float] = {}
        self.looks = LookThrottle()
        #: Synchronised frames newer than the newest pose, waiting for it.
        self._waiting: deque[tuple[float, np.ndarray, np.ndarray, Intrinsics]] = deque()
        self._evidence: tuple[str, EvidenceStore] | None = None
        #: Where depth saw empty space (:mod:`.free_space`), filled while the check is on.
        self.free_space = FreeSpace()

    # ----------------------------------------------------------------------------- helpers
    def count(self, key: str, n: int = 1) -> None:
        with self._counter_lock:
            self.counters[key] += n

    def dropped(self, job: Job) -> None:
        """Count a job the node dropped unencoded (its queue was full); a frame's looks at
        objects are counted apart, with their detections."""
        self.count('jobs_dropped')
        if isinstance(job, ObjectJob):
            self.count('object_jobs_dropped')
            self.count('detections_dropped', len(job.detections))
            for d in job.detections:        # the thing's next frame gets the look instead
                self.looks.refund(d.label, self._rough(job.frame, d), self.config.object_burst)

    def snapshot(self) -> dict[str, int]:
        with self._counter_lock:
            values = dict(self.counters)
        values['frames_unmatched'] = self._frames.dropped
        # detections whose stamp matched no synchronised frame (no image, or one skipped)
        values['detections_unmatched'] = self._detections.dropped_by['detections']
        values['free_space_voxels_dropped'] = self.free_space.voxels_dropped
        return values

    def set_camera_pose(self, xyz, rpy, convention: str) -> None:
        """:raises ValueError: for non-finite numbers or an unknown convention."""
        self.t_base_optical = camera_extrinsic(xyz, rpy, convention)
        self.frame_poses.t_base_optical = self.t_base_optical

    def set_slop(self, slop: float) -> None:
        self.config.sync_slop = slop
        self._frames.slop = self._detections.slop = slop

    def _check_time(self, source: str, stamp: float) -> None:
        """Clear everything when one input's time jumps back by more than ``time_reset``."""
        if not math.isfinite(stamp):
            raise InputRejected('stamp_backwards', 'stamp is not finite')
        last = self._newest.get(source)
        if last is not None and stamp < last - self.config.time_reset:
            _LOG.warning('%s time went back %.1f s: clearing the buffers', source, last - stamp)
            self.reset()
            self.count('time_resets')
        self._newest[source] = max(stamp, self._newest.get(source, stamp))

    def reset(self) -> None:
        """Forget buffered inputs (poses, unpaired frames, audio, the last keyframe)."""
        self.poses.clear()
        self.tf.clear()
        self.frame_poses.reset()
        self._frames.reset()
        self._detections.reset()
        self._waiting.clear()
        self.looks.reset()
        self.config.keyframe.reset()
        self.config.segmenter.reset()
        self._audio_stamp = None
        self._newest.clear()

    # ----------------------------------------------------------------------------- inputs
    def add_camera_info(self, intrinsics: Intrinsics) -> None:
        self.intrinsics = intrinsics

    def add_pose(self, stamp: float, pose: Pose) -> list[Job]:
        """Buffer a robot pose; frames that were waiting for it are processed.

        :raises InputRejected: ``stamp_backwards``.
        """
        self._check_time('pose', stamp)
        self.poses.add(stamp, pose)
        return self._flush_waiting()

    def add_transforms(self, transforms, static: bool = False) -> list[Job]:
        """Buffer TF transforms ``(parent, child, stamp, translation, rotation xyzw)``; frames
        that were waiting for them are processed. A bad one is skipped and counted
        (``skipped_bad_transform``), the others kept."""
        for parent, child, stamp, translation, rotation in transforms:
            self.count('transforms_received')
            try:
                if not static:
                    self._check_time('tf', stamp)
                self.tf.set_transform(parent, child, stamp, translation, rotation, static)
            except (ValueError, InputRejected) as exc:
                self.count('skipped_bad_transform')
                self.late_skips.append(('bad_transform', f'{parent} <- {child}: {exc}'))
        return self._flush_waiting()

    def _flush_waiting(self) -> list[Job]:
        """Process the waiting frames whose stamp the poses now cover (oldest first)."""
        jobs: list[Job] = []
        while self._waiting and self.frame_poses.ready(self._waiting[0][0], self.camera_frame):
            frame_stamp, rgb, depth, k = self._waiting.popleft()
            try:
                jobs += self._process(self._make_frame(frame_stamp, rgb, depth, k))
            except InputRejected as exc:
                self.count(f'skipped_{exc.reason}')
                self.late_skips.append((exc.reason, str(exc)))
        return jobs

    def add_color(self, stamp: float, rgb: np.ndarray, frame_id: str = '') -> list[Job]:
        """``frame_id``: the image's, the camera frame in TF.

        :raises InputRejected: see :meth:`_pair`."""
        self._check_time('color', stamp)
        self.camera_frame = frame_id
        return self._pair(self._frames.add('color', stamp, rgb))

    def add_depth(self, stamp: float, depth: np.ndarray) -> list[Job]:
        """:raises InputRejected: see :meth:`_frame`."""
        self._check_time('depth', stamp)
        return self._pair(self._frames.add('depth', stamp, depth))

    def _pair(self, matched) -> list[Job]:
        """A synchronised colour/depth pair: check it, then process it or let it wait for the
        pose at its stamp (odometry often arrives after the images).

        :raises InputRejected: ``size_mismatch``, ``no_camera_info``, ``camera_info_mismatch``,
            ``no_pose`` (older than the pose history), ``tf_*`` (see
            :class:`~engram_ros.perception.frame_poses.FramePoses`).
        """
        if matched is None:
            return []
        stamp, items = matched
        self.count('frames_synced')
        rgb, depth = items['color'], items['depth']
        k = self._checked_intrinsics(rgb, depth)
        if not self.frame_poses.ready(stamp, self.camera_frame):
            # TF and odometry often arrive after the images: wait for poses at or after the
            # stamp, so the frame's pose is interpolated, never extrapolated.
            self._waiting.append((stamp, rgb, depth, k))
            if len(self._waiting) > self.config.sync_queue_size:
                self._waiting.popleft()
                self.count('skipped_no_pose')
            return []
        return self._process(self._make_frame(stamp, rgb, depth, k))

    def _process(self, frame: Frame) -> list[Job]:
        jobs: list[Job] = []
        objects = self._detections.add('frame', frame.stamp, frame)
        if objects is not None:
            jobs += self._looks(objects[1]['frame'], objects[1]['detections'])
        reason = self.config.keyframe.check(frame.stamp, frame.pose, frame.rgb)
        if reason:
            self.count('frames_gated')
            jobs.append(PlaceJob(frame, reason))
        return jobs

    def _checked_intrinsics(self, rgb: np.ndarray, depth: np.ndarray) -> Intrinsics:
        if rgb.shape[:2] != depth.shape[:2]:
            raise InputRejected('size_mismatch', f'colour {rgb.shape[1]}x{rgb.shape[0]} and '
                                                 f'depth {depth.shape[1]}x{depth.shape[0]} differ')
        k = self.intrinsics
        if k is None:
            raise InputRejected('no_camera_info', 'no CameraInfo received yet')
        if (k.width, k.height) != (rgb.shape[1], rgb.shape[0]):
            raise InputRejected('camera_info_mismatch',
                                f'CameraInfo is {k.width}x{k.height}, images are '
                                f'{rgb.shape[1]}x{rgb.shape[0]}')
        return k

    def _make_frame(self, stamp: float, rgb: np.ndarray, depth: np.ndarray,
                    k: Intrinsics) -> Frame:
        """:raises InputRejected: no pose at ``stamp`` (see :meth:`_pair`)."""
        source = self.frame_poses.source
        pose, t_map_optical = self.frame_poses.camera(stamp, self.camera_frame)
        self.count('frames_posed_by_tf' if source == 'tf' else 'frames_posed_by_parameters')
        return Frame(stamp, rgb, depth, k, pose, t_map_optical, source)

    def add_detections(self, stamp: float, detections: list[Detection]) -> list[Job]:
        """Pair detections with the frame of their stamp; numeric class ids become labels
        (``class_names``; an id it does not name is counted in ``skipped_unknown_class``).
        Labels that are empty, numeric or not ASCII are kept, counted in ``labels_empty``,
        ``labels_numeric`` and ``labels_non_ascii``; a detection with neither class nor score
        (no hypothesis) in ``skipped_no_label``.
        Detections whose stamp matches no frame leave the queue unused, counted in
        ``detections_unmatched``.

        :raises InputRejected: ``stamp_backwards``.
        """
        self._check_time('detections', stamp)
        self.count('detections_received', len(detections))
        kept = []
        for d in detections:
            if d.score < self.config.min_detection_score:
                if not d.label.strip():     # a vision_msgs detection with no hypothesis
                    self.count('skipped_no_label')
                continue
            try:
                label = self.config.class_names.label(d.label)
            except InputRejected as exc:
                self.count(f'skipped_{exc.reason}')
                _LOG.debug('detection skipped: %s', exc)
                continue
            # Empty, numeric-id and non-ASCII labels are kept as given (an empty one as
            # 'unlabeled'), and counted.
            problem = labels.label_problem(label)
            if problem:
                self.count(f'labels_{problem}')
                label = labels.parse_label(label).label if problem == 'empty' else label
            if label != d.label:
                d = replace(d, label=label)
            kept.append(d)
        if not kept:
            return []
        matched = self._detections.add('detections', stamp, kept)
        if matched is None:
            return []
        return self._looks(matched[1]['frame'], matched[1]['detections'])

    def _looks(self, frame: Frame, detections: list[Detection]) -> list[Job]:
        """The object job of a frame's detections that get a look (per thing, :mod:`.looks`);
        the others are counted in ``detections_throttled``."""
        c = self.config
        kept = [d for d in detections if self.looks.admit(
            d.label, self._rough(frame, d), frame.stamp, c.object_min_interval, c.object_burst)]
        if len(kept) < len(detections):
            self.count('detections_throttled', len(detections) - len(kept))
        return [ObjectJob(frame, kept)] if kept else []

    def _rough(self, frame: Frame, d: Detection) -> np.ndarray | None:
        locator = self.config.locator
        return rough_position(d.box, frame.depth, frame.intrinsics, frame.t_map_optical,
                              locator.min_depth, locator.max_depth)

    def add_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> list[Job]:
        """Feed a mono chunk; return a job per completed sound event.

        :raises InputRejected: ``stamp_backwards`` for a chunk stamped before the previous one.
        """
        self._check_time('audio', stamp)
        if self._audio_stamp is not None and stamp <= self._audio_stamp:
            raise InputRejected('stamp_backwards', f'audio stamp {stamp:.3f} is not after '
                                                   f'{self._audio_stamp:.3f}')
        self._audio_stamp = stamp
        jobs: list[Job] = []
        for segment in self.config.segmenter.push(stamp, samples, sample_rate):
            self.count('audio_segments')
            try:
                pose = self.frame_poses.robot(segment.stamp)
            except InputRejected as exc:
                self.count(f'skipped_{exc.reason}')
                continue
            jobs.append(AudioJob(segment, pose))
        return jobs

    # ----------------------------------------------------------------------------- encoding
    def run(self, job: Job) -> list[Observation]:
        """Encode one job into observations (validated against the memory's contract);
        nothing for a job at a private place or time (see the module doc)."""
        reason = self._private(job)
        if reason is not None:
            self.count('privacy_skipped', len(job.detections) if isinstance(job, ObjectJob)
                       else 1)
            _LOG.debug('%s not encoded: %s', type(job).__name__, reason)
            return []
        if isinstance(job, PlaceJob):
            observations = [self._place(job)]
        elif isinstance(job, ObjectJob):
            observations = self._objects(job)
        else:
            observations = [self._audio(job)]
        valid = []
        for obs in observations:
            try:
                obs.validate(self.config.dim, self.config.frame_id)
            except InvalidObservation as exc:
                _LOG.warning('not publishing an invalid %s observation: %s', obs.kind, exc)
                self.count('invalid_observations')
                continue
            valid.append(obs)
            self.count(f'{obs.kind}_observations')
        return valid

    def _private(self, job: Job) -> str | None:
        """Why the robot's pose and time of ``job`` are private, or None."""
        if isinstance(job, AudioJob):
            return self.config.privacy.excludes(job.pose.position, job.segment.stamp)
        return self.config.privacy.excludes(job.frame.pose.position, job.frame.stamp)

    def _seen(self, frame: Frame) -> FreeSpace | None:
        """The free-space record with ``frame`` in it (each frame once), or None when off."""
        if self.config.locator.ghosts.free_space_min < 1:
            return None
        self.free_space.add_frame(frame.stamp, frame.depth, frame.intrinsics, frame.t_map_optical)
        return self.free_space

    def _place(self, job: PlaceJob) -> Observation:
        frame = job.frame
        self._seen(frame)
        if hasattr(self.encoder, 'encode_with_words'):
            vector, words = self.encoder.encode_with_words(
                frame.rgb, frame.depth, self.config.visual_words_per_place)
        else:
            vector = self.encoder.encode(frame.rgb, frame.depth)
            words = self.encoder.visual_words(frame.rgb, self.config.visual_words_per_place)
        self.count('frames_encoded')
        uris = self._write_image(frame.rgb, 'frame', frame.stamp)
        var = self.config.place_position_variance
        return Observation(
            kind='place', frame_id=self.config.frame_id, position=frame.pose.position.copy(),
            orientation=frame.pose.orientation.copy(), stamp=frame.stamp, vector=vector,
            tags=sketch.normalize_tags([f'vw:{w}' for w in words]
                                       + list(self.config.rooms.tags(frame.pose.position))),
            modality='multi',
            covariance=np.diag([var, var, var, 0.1, 0.1, 0.1]).reshape(-1),
            confidence=1.0, evidence=uris,
            view=View.from_depth(frame.depth, frame.intrinsics.fx, frame.intrinsics.fy,
                                 frame.intrinsics.cx, frame.intrinsics.cy, frame.t_map_optical))

    def _objects(self, job: ObjectJob) -> list[Observation]:
        frame = job.frame
        out, free = [], self._seen(frame)
        for det in job.detections:
            label = labels.parse_label(det.label).label     # never fails: kept as given
            try:
                est = self.config.locator.locate(det, frame.depth, frame.rgb, frame.intrinsics,
                                                 frame.t_map_optical, self.config.rooms.covers,
                                                 free)
            except InputRejected as exc:
                self.count(f'skipped_{exc.reason}')
                _LOG.debug('object skipped: %s', exc)
                continue
            if self.config.privacy.excludes(est.position, frame.stamp) is not None:
                self.count('privacy_skipped')     # seen from outside, but in a private zone
                continue
            x0, y0, x1, y1 = (int(round(v)) for v in det.box)
            h, w = frame.rgb.shape[:2]
            crop = frame.rgb[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
            crop = cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
            vector = self.encoder.encode(crop)
            out.append(Observation(
                kind='object', frame_id=self.config.frame_id, position=est.position,
                stamp=frame.stamp, vector=vector, label=label,
                tags=sketch.normalize_tags(object_tags(label, est.colour, est.size_class)
                                           + self.config.rooms.tags(est.position)),
                modality='multi',
                covariance=est.covariance(),
                confidence=object_confidence(det.score, est.depth_quality),
                evidence=self._write_image(crop, 'crop', frame.stamp),
                viewpoint=frame.t_map_optical[:3, 3].copy()))
        return out

    def _audio(self, job: AudioJob) -> Observation:
        seg = job.segment
        features = audio_features(seg.samples, seg.sample_rate)
        sound, similarity = '', 0.0
        if self.sound_classifier is not None:
            sound, similarity = self.sound_classifier.classify(features)
            vector = audio_embedding(features, self.sound_classifier.model, self.config.dim)
        else:
            raise RuntimeError('audio needs the sound model')
        uris: tuple[str, ...] = ()
        if self.config.save_audio_clips:
            uris = self._write('clip.wav',
                               lambda: evidence.encode_wav(seg.samples, seg.sample_rate), 'audio')
        var = self.config.audio_position_variance
        return Observation(
            kind='audio', frame_id=self.config.frame_id, position=job.pose.position.copy(),
            stamp=seg.stamp, vector=vector, label=sound,
            tags=sketch.normalize_tags([f'sound:{sound}'] if sound else []),
            modality='audio', covariance=np.diag([var, var, var, 10.0, 10.0, 10.0]).reshape(-1),
            confidence=float(max(0.05, similarity)) if sound else 0.3, evidence=uris)

    def _write_image(self, rgb: np.ndarray, name: str, stamp: float) -> tuple[str, ...]:
        if not self.config.save_images:
            return ()
        return self._write(f'{name}.jpg', lambda: evidence.encode_jpeg(rgb), 'image')

    def evidence_store(self) -> EvidenceStore | None:
        """The store evidence is written to (the configured directory; ``None``: none)."""
        directory = self.config.evidence_dir
        if not directory:
            return None
        if self._evidence is None or self._evidence[0] != directory:
            self._evidence = (directory, EvidenceStore(Path(os.path.expanduser(directory)),
                                                       self.config.evidence_key,
                                                       self.config.evidence_names))
        return self._evidence[1]

    def _write(self, name: str, encode, kind: str) -> tuple[str, ...]:
        """Encode and store one piece of evidence; ``()`` when there is nowhere to, or it
        fails (counted: an observation is worth more than its evidence)."""
        store = self.evidence_store()
        if store is None:       # no consent to persist, or no directory: counted, not written
            self.count('evidence_not_written')
            return ()
        try:
            return (store.write(name, encode(), kind),)
        except (EvidenceError, ValueError) as exc:
            self.count('evidence_errors')
            _LOG.warning('evidence not written: %s', exc)
            return ()
