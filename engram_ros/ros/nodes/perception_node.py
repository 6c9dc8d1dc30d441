"""The perception node: camera, depth, pose, audio and detections in, observations out.

Subscribed (relative names; remap them): ``camera/color/image_raw`` and
``camera/depth/image_raw`` (sensor_msgs/Image; with ``image_transport: compressed`` /
``depth_image_transport: compressedDepth``, sensor_msgs/CompressedImage on
``<base>/compressed`` / ``<base>/compressedDepth``, the base name remapped first, as
image_transport names them), ``camera/color/camera_info`` (sensor_msgs/CameraInfo), ``odom``
(nav_msgs/Odometry) or ``pose`` (geometry_msgs/PoseStamped), ``audio/chunk``
(engram_ros/AudioChunk), ``detections`` (engram_ros/DetectionArray, with masks),
``detections_2d`` (vision_msgs/Detection2DArray, as detector nodes publish), ``/tf`` and
``/tf_static`` (tf2_msgs/TFMessage; remap them for a namespaced robot). Published:
``engram/observations`` (engram_ros/Observation), ``/diagnostics``.

Poses: once TF connects ``frame_id`` (the memory frame) to ``base_frame``, the robot pose at a
frame's stamp is ``frame_id <- base_frame`` and the camera's ``frame_id <- image frame_id``,
from TF; until then, odometry (already in ``frame_id``) and ``camera_xyz``/``camera_rpy``
(:mod:`engram_ros.perception.frame_poses`). Diagnostics say which (``pose_source``).

The node only translates: messages -> arrays (:mod:`engram_ros.ros.conversions.sensors`) ->
:class:`engram_ros.perception.pipeline.Perception` -> Observation messages. Sensor callbacks
(one mutually exclusive group) do the cheap half and queue jobs; a guard condition wakes the
encoding callback (its own group), which runs the expensive half. The job queue is bounded:
when encoding falls behind, the oldest job is dropped and counted, so there is never a backlog.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray

from engram_ros.core.evidence import EvidenceError
from engram_ros.msg import AudioChunk
from engram_ros.msg import DetectionArray
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.perception.audio import SoundClassifier
from engram_ros.perception.audio import SoundModel
from engram_ros.perception.class_names import ClassNames
from engram_ros.perception.config import perception_config
from engram_ros.perception.config import PerceptionConfig
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.frame_poses import TF
from engram_ros.perception.pipeline import Perception
from engram_ros.perception.rooms import RoomMap
from engram_ros.perception.visual import load_visual_encoder
from engram_ros.ros.conversions import sensors as pc
from engram_ros.ros.conversions.common import diagnostic_array
from engram_ros.ros.conversions.memory import observation_to_msg
from engram_ros.ros.conversions.transforms import transforms_from_msg
from engram_ros.ros.diagnostics import for_node
from engram_ros.ros.managed import ManagedNode
from engram_ros.ros.nodes.spin import run_node
from engram_ros.ros.perception_parameters import invalid
from engram_ros.ros.perception_parameters import PARAMETERS
from engram_ros.ros.perception_parameters import PRIVACY_PARAMETERS
from engram_ros.ros.perception_parameters import READ_ONLY
from engram_ros.ros.perception_parameters import ROOMS_DESCRIPTION
from engram_ros.ros.perception_parameters import TRANSPORTS

#: Detections the pipeline skips one by one (not the whole message): counter -> why.
_DETECTION_SKIPS = {'skipped_unknown_class': 'a numeric class id not in class_names',
                    'skipped_no_label': 'no class (a detection without a hypothesis)'}
#: Detections kept with a label that may not mean anything to a person: counter -> what.
_LABELS_KEPT = {'labels_empty': 'an empty label, kept as "unlabeled"',
                'labels_numeric': 'a numeric class id without a name, kept as its label',
                'labels_non_ascii': 'a label not in ASCII, kept as given'}

class PerceptionNode(ManagedNode):
    """ROS wrapper of :class:`engram_ros.perception.pipeline.Perception`; a managed node
    (:mod:`engram_ros.ros.managed`): configure builds the pipeline and its publishers, activate
    reads the sensors (once a memory listens), deactivate stops reading them."""

    def __init__(self, **kwargs) -> None:
        super().__init__('engram_perception', **kwargs)
        self.perception: Perception | None = None
        try:
            for name, (default, description) in PARAMETERS.items():
                self.declare_parameter(name, default, ParameterDescriptor(
                    description=description, read_only=name in READ_ONLY))
            self.declare_parameter('rooms', Parameter.Type.STRING_ARRAY,
                                   ParameterDescriptor(description=ROOMS_DESCRIPTION))
            for name, description in PRIVACY_PARAMETERS.items():
                self.declare_parameter(name, Parameter.Type.STRING_ARRAY, ParameterDescriptor(
                    description=description, read_only=True))
            self.add_on_set_parameters_callback(self.parameters_callback)
            if self._value('autostart'):
                self.autostart()
        except BaseException:   # rclpy's shutdown must not destroy a half-built node again
            self.destroy_node()
            raise

    # ------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('configure', lambda: self.creating(
            self._configure, self.configured_entities))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('activate', lambda: self.creating(
            self._activate, self.active_entities))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('deactivate', lambda: self.release(self.active_entities))

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('cleanup', self._cleanup)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.transition('shutdown', self._cleanup)

    def _cleanup(self) -> None:
        """Stop reading, drop the pipeline and what waits for it (from any state)."""
        self.release(self.active_entities)
        self.release(self.configured_entities)
        self.perception = None
        self._jobs = deque()

    def destroy_node(self) -> None:
        self._cleanup()
        super().destroy_node()

    def _configure(self) -> None:
        """Check the parameters, build the pipeline, its publishers and timers; a failure
        leaves nothing behind (the node stays unconfigured)."""
        try:
            self._build()
        except BaseException:
            self._cleanup()
            raise

    def _build(self) -> None:
        for param in map(self.get_parameter, PARAMETERS):  # start values, by the change rules
            problem = invalid([param])
            if problem:
                raise ValueError(f'parameter {param.name} = {param.value!r} refused: {problem}')
        # _config raises RoomConfigError / PrivacyConfigError (ValueErrors) for a bad room or
        # privacy zone or window, and EncryptionKeyError when encryption is on without a
        # usable key: never a silent fall-back to plaintext or to no privacy
        p = self._value
        dim = p('dim')
        self.perception = Perception(self._config(), load_visual_encoder(p('visual_encoder'), dim),
                                     SoundClassifier(SoundModel.load(), p('audio.min_similarity')))
        self._jobs: deque = deque()
        self._jobs_lock = threading.Lock()
        self._warned_at: dict[str, float] = {}
        self._encode_ms = 0.0

        self._sensors = MutuallyExclusiveCallbackGroup()
        self._encoding = MutuallyExclusiveCallbackGroup()
        self._reporting = MutuallyExclusiveCallbackGroup()
        self.observation_pub = self.create_publisher(ObservationMsg, 'engram/observations', 100)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.encode_trigger = self.create_guard_condition(self.encode_callback,
                                                          callback_group=self._encoding)
        self.diagnostics_timer = self.create_timer(p('diagnostics_period'),
                                                   self.diagnostics_callback,
                                                   callback_group=self._reporting)

    def _activate(self) -> None:
        p = self._value
        # Sensors are read only once a memory listens: what perception sees before that would
        # be lost (and its evidence files orphaned), and a source that waits for readers (the
        # simulator waits for the colour image's) then starts when nothing can be lost.
        self._memory_wait = self.create_timer(0.1, self.memory_wait_callback,
                                              callback_group=self._reporting)
        self.get_logger().info(f'perception ready: {p("visual_encoder")} -> {p("dim")}-d '
                               f'vectors, observations on {self.observation_pub.topic_name}; '
                               'sensors are read once a memory listens there')

    # ------------------------------------------------------------------------- start-up
    def memory_wait_callback(self) -> None:
        if self._memory_wait is None or self.observation_pub.get_subscription_count() == 0:
            return
        with self.entity_lock:
            # A deactivate may have run since this call was due: its timer is gone then.
            if self._memory_wait is None or self._memory_wait not in self.timers:
                return
            self.destroy_timer(self._memory_wait)
            self._memory_wait = None
            # deactivate destroys the subscriptions with the rest of what activate made
            self.creating(self._subscribe_sensors, self.active_entities)
        self.get_logger().info(f'a memory listens on {self.observation_pub.topic_name}: '
                               'reading the sensors')

    def _subscribe_sensors(self) -> None:
        p = self._value
        # Keep-last 5: if encoding falls behind, old frames are overwritten, never queued.
        sensor_qos = QoSProfile(depth=5, reliability=(
            ReliabilityPolicy.RELIABLE if p('sensor_reliability') == 'reliable'
            else ReliabilityPolicy.BEST_EFFORT))
        reliable = QoSProfile(depth=10)
        color, depth = self._image_topic('image_transport', 'camera/color/image_raw'), \
            self._image_topic('depth_image_transport', 'camera/depth/image_raw')
        self.color_sub = self.create_subscription(
            *color, self.color_callback, sensor_qos, callback_group=self._sensors)
        self.depth_sub = self.create_subscription(
            *depth, self.depth_callback, sensor_qos, callback_group=self._sensors)
        self.info_sub = self.create_subscription(
            CameraInfo, 'camera/color/camera_info', self.camera_info_callback, sensor_qos,
            callback_group=self._sensors)
        self.odom_sub = self.create_subscription(
            Odometry, 'odom', self.odometry_callback, reliable, callback_group=self._sensors)
        self.pose_sub = self.create_subscription(
            PoseStamped, 'pose', self.pose_callback, reliable, callback_group=self._sensors)
        self.audio_sub = self.create_subscription(
            AudioChunk, 'audio/chunk', self.audio_callback, QoSProfile(depth=50),
            callback_group=self._sensors)
        self.detections_sub = self.create_subscription(
            DetectionArray, 'detections', self.detections_callback, reliable,
            callback_group=self._sensors)
        self.detections_2d_sub = self.create_subscription(
            Detection2DArray, 'detections_2d', self.detections_2d_callback, reliable,
            callback_group=self._sensors)
        # As tf2_ros's listener: /tf keep-last 100, /tf_static latched (transient local).
        self.tf_sub = self.create_subscription(
            TFMessage, '/tf', self.tf_callback, QoSProfile(depth=100),
            callback_group=self._sensors)
        self.tf_static_sub = self.create_subscription(
            TFMessage, '/tf_static', self.tf_static_callback,
            QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL),
            callback_group=self._sensors)

    def _image_topic(self, parameter: str, base: str) -> tuple[type, str]:
        """``(message type, topic)`` of an image input by its transport parameter. As
        image_transport does, a compressed transport's topic is the remapped base topic with
        the transport's suffix (remap ``camera/color/image_raw``, not the suffixed name)."""
        suffix = TRANSPORTS[parameter][self._value(parameter)]
        if not suffix:
            return Image, base
        return CompressedImage, self.resolve_topic_name(base) + suffix

    # ------------------------------------------------------------------------- parameters
    def _value(self, name: str):
        return self.get_parameter(name).value

    def _strings(self, name: str) -> list[str]:
        """A string-array parameter without a default; ``[]`` when unset."""
        try:
            return list(self.get_parameter(name).value or [])
        except ParameterUninitializedException:
            return []

    def _evidence_dir(self, directory: str) -> str:
        """Where evidence may be written: nowhere without consent to persist."""
        return directory if self._value('persist') else ''

    def _rooms(self) -> list[str]:
        return self._strings('rooms')

    def _config(self) -> PerceptionConfig:
        def value(name: str):
            return self._strings(name) if name in ('rooms', *PRIVACY_PARAMETERS) else \
                self._value(name)
        return perception_config(value)

    def parameters_callback(self, params: list[Parameter]) -> SetParametersResult:
        """Validate changes, then apply the tunable ones to the running pipeline."""
        problem = invalid(params)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        if self.perception is None:     # not configured: configure reads them
            return SetParametersResult(successful=True)
        values = {n: self._value(n) for n in ('camera_xyz', 'camera_rpy', 'camera_convention')}
        values.update({p.name: p.value for p in params})
        config = self.perception.config
        try:
            self.perception.set_camera_pose(values['camera_xyz'], values['camera_rpy'],
                                            values['camera_convention'])
            class_names = [ClassNames.load(p.value) for p in params if p.name == 'class_names']
        except ValueError as exc:       # ClassNamesError too: the old names stay
            return SetParametersResult(successful=False, reason=str(exc))
        if class_names:
            config.class_names = class_names[-1]
        simple = {'visual_words_per_place': 'visual_words_per_place',
                  'objects.min_score': 'min_detection_score',
                  'objects.min_interval': 'object_min_interval',
                  'objects.burst': 'object_burst',
                  'save_images': 'save_images', 'save_audio_clips': 'save_audio_clips',
                  'time_reset': 'time_reset'}
        for param in params:
            name, value = param.name, param.value
            if name == 'evidence_dir':
                config.evidence_dir = self._evidence_dir(value)
            elif name in simple:
                setattr(config, simple[name], value)
            elif name.startswith('keyframe.'):
                setattr(config.keyframe, name.split('.', 1)[1], float(value))
            elif name in ('objects.min_depth', 'objects.max_depth',
                          'objects.min_valid_fraction'):
                setattr(config.locator, name.split('.', 1)[1], float(value))
            elif name == 'objects.refuse_ghosts':
                config.locator.ghosts.enabled = bool(value)
            elif name == 'objects.free_space_min':
                config.locator.ghosts.free_space_min = int(value)
            elif name == 'rooms':
                config.rooms = RoomMap.parse(list(value or []))
            elif name == 'audio.min_similarity':
                self.perception.sound_classifier.min_similarity = float(value)
            elif name.startswith('audio.'):
                setattr(config.segmenter, name.split('.', 1)[1], float(value))
            elif name == 'sync_slop':
                self.perception.set_slop(float(value))
            elif name == 'pose_tolerance':
                config.pose_tolerance = self.perception.poses.tolerance = float(value)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------- sensor callbacks
    def _skip(self, what: str, exc: InputRejected) -> None:
        self.perception.count(f'skipped_{exc.reason}')
        self.get_logger().warning(f'skipped {what}: {exc}', throttle_duration_sec=5.0)

    def _queue(self, jobs: list) -> None:
        # Frames that waited for TF or odometry and then could not be placed were counted by
        # the pipeline; warn about them here (throttled), like any skipped input.
        while self.perception.late_skips:
            reason, message = self.perception.late_skips.popleft()
            self.get_logger().warning(f'skipped a frame ({reason}): {message}',
                                      throttle_duration_sec=5.0)
        if not jobs:
            return
        with self._jobs_lock:
            for job in jobs:
                self._jobs.append(job)
                if len(self._jobs) > self._value('job_queue_size'):
                    self.perception.dropped(self._jobs.popleft())
        self.encode_trigger.trigger()

    def color_callback(self, msg: Image | CompressedImage) -> None:
        self.perception.count('color_received')
        decode = pc.color_from_compressed if isinstance(msg, CompressedImage) else \
            pc.color_from_msg
        try:
            self._queue(self.perception.add_color(pc.stamp_of(msg), decode(msg),
                                                  msg.header.frame_id))
        except InputRejected as exc:
            self._skip('a colour image', exc)

    def depth_callback(self, msg: Image | CompressedImage) -> None:
        self.perception.count('depth_received')
        decode = pc.depth_from_compressed if isinstance(msg, CompressedImage) else \
            pc.depth_from_msg
        try:
            self._queue(self.perception.add_depth(pc.stamp_of(msg), decode(msg)))
        except InputRejected as exc:
            self._skip('a depth image', exc)

    def camera_info_callback(self, msg: CameraInfo) -> None:
        self.perception.count('camera_info_received')
        try:
            self.perception.add_camera_info(pc.intrinsics_from_msg(msg))
        except InputRejected as exc:
            self._skip('a camera info', exc)

    def _add_pose(self, frame_id: str, converted) -> None:
        self.perception.count('poses_received')
        expected = self._value('frame_id')
        if frame_id not in ('', expected) and self.perception.frame_poses.source == TF:
            # A real robot's odometry is in its odom frame; with TF it is not needed.
            self.perception.count('poses_unused_with_tf')
            return
        if frame_id not in ('', expected):
            self._skip('a pose', InputRejected('bad_pose', f'pose is in {frame_id!r}, not the '
                                                           f'memory frame {expected!r}'))
            return
        try:
            self._queue(self.perception.add_pose(*converted()))
        except InputRejected as exc:
            self._skip('a pose', exc)

    def odometry_callback(self, msg: Odometry) -> None:
        self._add_pose(msg.header.frame_id, lambda: pc.pose_from_odometry(msg))

    def pose_callback(self, msg: PoseStamped) -> None:
        self._add_pose(msg.header.frame_id, lambda: pc.pose_from_pose_stamped(msg))

    def tf_callback(self, msg: TFMessage) -> None:
        self._queue(self.perception.add_transforms(transforms_from_msg(msg)))

    def tf_static_callback(self, msg: TFMessage) -> None:
        self._queue(self.perception.add_transforms(transforms_from_msg(msg), static=True))

    def audio_callback(self, msg: AudioChunk) -> None:
        self.perception.count('audio_received')
        try:
            self._queue(self.perception.add_audio(*pc.audio_from_msg(msg)))
        except InputRejected as exc:
            self._skip('an audio chunk', exc)

    def detections_callback(self, msg: DetectionArray) -> None:
        self._add_detections(lambda: pc.detections_from_msg(msg))

    def detections_2d_callback(self, msg: Detection2DArray) -> None:
        self._add_detections(lambda: pc.detections_from_vision_msg(msg))

    def _add_detections(self, converted) -> None:
        """Queue what the detections make; warn (throttled) when some had a class id that
        class_names does not name, or no class: the pipeline counts those one by one."""
        counters = self.perception.counters
        before = {key: counters[key] for key in {**_DETECTION_SKIPS, **_LABELS_KEPT}}
        try:
            self._queue(self.perception.add_detections(*converted()))
        except InputRejected as exc:
            self._skip('detections', exc)
            return
        for key, problem in _DETECTION_SKIPS.items():
            if counters[key] > before[key]:
                self.get_logger().warning(f'skipped detections: {problem} (counted in {key})',
                                          throttle_duration_sec=5.0)
        for key, problem in _LABELS_KEPT.items():
            if counters[key] > before[key]:
                self.get_logger().warning(f'kept detections with {problem} (counted in {key})',
                                          throttle_duration_sec=5.0)

    # ------------------------------------------------------------------------- encoding
    def encode_callback(self) -> None:
        while True:
            with self._jobs_lock:
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            start = time.perf_counter()
            try:
                observations = self.perception.run(job)
            except Exception as exc:  # one bad job must not stop perception
                self.perception.count('encode_errors')
                self.get_logger().error(f'encoding failed: {exc!r}', throttle_duration_sec=5.0)
                continue
            self._encode_ms = (time.perf_counter() - start) * 1e3
            if observations and self.observation_pub.get_subscription_count() == 0:
                # Volatile topic: with no matched memory, DDS drops these. Say so, or a lost
                # observation looks like one the memory refused.
                self.perception.count('published_unheard', len(observations))
                self.get_logger().warning('no memory is listening on '
                                          f'{self.observation_pub.topic_name}: observations '
                                          'are lost', throttle_duration_sec=5.0)
            for obs in observations:
                self.observation_pub.publish(observation_to_msg(obs))

    def diagnostics_callback(self) -> None:
        values = self.perception.snapshot()
        with self._jobs_lock:
            values['backlog'] = len(self._jobs)
        values['last_encode_ms'] = round(self._encode_ms, 2)
        values['observation_subscribers'] = self.observation_pub.get_subscription_count()
        values['pose_source'] = self.perception.frame_poses.source
        skipped = sum(v for k, v in values.items() if k.startswith('skipped_'))
        message = (f'{values.get("frames_encoded", 0)} frames encoded, '
                   f'{values.get("object_observations", 0)} objects, '
                   f'{values.get("audio_observations", 0)} sounds, poses from '
                   f'{values["pose_source"]}'
                   + (f', {skipped} inputs skipped' if skipped else ''))
        name = self.get_fully_qualified_name()
        self.diagnostics_pub.publish(for_node(diagnostic_array(
            self.get_clock().now().to_msg(), f'{name}: perception', message,
            sorted(values.items()), warn=bool(skipped)), name))


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, lambda: MultiThreadedExecutor(num_threads=3),
                    logger_name='engram_perception', what='start perception',
                    startup_errors=(ValueError, FileNotFoundError, EvidenceError),
                    args=args)


if __name__ == '__main__':
    sys.exit(main())
