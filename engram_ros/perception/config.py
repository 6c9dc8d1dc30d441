"""The perception pipeline's settings (:class:`PerceptionConfig`) and how the node's parameters
fill them (:func:`perception_config`): one place, so the node and ``engram ingest-bag`` perceive
a bag as live input."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Callable

from engram_ros.core.evidence import load_key
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.perception.audio import AudioSegmenter
from engram_ros.perception.class_names import ClassNames
from engram_ros.perception.ghosts import GhostCheck
from engram_ros.perception.keyframe import KeyframeGate
from engram_ros.perception.objects import ObjectLocator
from engram_ros.perception.rooms import RoomMap


@dataclass
class PerceptionConfig:
    """Settings of the pipeline (the node fills it from ``engram_perception`` parameters)."""

    frame_id: str = 'map'
    dim: int = 256
    sync_slop: float = 0.02
    sync_queue_size: int = 30
    pose_tolerance: float = 0.1
    #: The robot's frame in TF: its pose is ``frame_id <- base_frame``.
    base_frame: str = 'base_link'
    #: TF lookups (:class:`~engram_ros.core.transforms.TransformBuffer`): how far [s] outside
    #: the samples a stamp may be, and the largest gap [s] interpolated across.
    tf_tolerance: float = 0.1
    tf_max_gap: float = 1.0
    #: [s] at start, frames wait this long (odometry time) for TF before the fall-back below
    #: places them (the node's parameter ``tf.wait`` defaults to 2 s).
    tf_wait: float = 0.0
    #: Camera pose in base_link, used while TF does not give it; see
    #: :func:`engram_ros.perception.geometry.camera_extrinsic`.
    camera_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    camera_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    camera_convention: str = 'body'
    visual_words_per_place: int = 8
    min_detection_score: float = 0.3
    #: Labels of numeric class ids (a detector's COCO ids); empty: ids are labels.
    class_names: ClassNames = field(default_factory=ClassNames)
    #: Looks per tracked thing (label and rough position, :mod:`.looks`): ``object_burst``
    #: for a thing newly in view, then one per ``object_min_interval`` [s].
    object_min_interval: float = 0.5
    object_burst: int = 2
    place_position_variance: float = 0.25
    audio_position_variance: float = 4.0
    #: Where frames, crops and clips go, through the memory's :class:`EvidenceStore` (empty:
    #: nowhere); with ``evidence_key`` (a Fernet key) they are encrypted at rest.
    evidence_dir: str = ''
    evidence_key: bytes | None = None
    #: Names of new evidence files (``None``: random, :class:`EvidenceStore`'s default); a
    #: seeded generator makes an offline ingest reproducible.
    evidence_names: Callable[[], str] | None = None
    save_images: bool = True
    save_audio_clips: bool = False
    #: The memory's privacy zones and windows: nothing inside them is encoded or written.
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    #: A stamp this far [s] behind the same input's newest one means time was reset (a
    #: simulator restart, a bag looping): every buffer is cleared. Smaller steps back are
    #: refused.
    time_reset: float = 3.0
    #: Rooms of the map: places and objects in one get its ``room:`` tag.
    rooms: RoomMap = field(default_factory=RoomMap)
    keyframe: KeyframeGate = field(default_factory=KeyframeGate)
    locator: ObjectLocator = field(default_factory=ObjectLocator)
    segmenter: AudioSegmenter = field(default_factory=AudioSegmenter)


def perception_config(value: Callable[[str], Any]) -> PerceptionConfig:
    """The pipeline's settings from ``engram_perception``'s parameters: ``value(name)`` is a
    parameter's value (``[]`` for an unset string array). The node and ``engram ingest-bag``
    both build it here, so a bag is perceived as live input is. Evidence goes nowhere without
    the memory's consent (``persist``).

    :raises ValueError: for a bad room, privacy zone or window, or class names file;
        EncryptionKeyError when ``encrypt_evidence`` is on without a usable key.
    """
    p = value
    return PerceptionConfig(
        frame_id=p('frame_id'), dim=p('dim'), sync_slop=p('sync_slop'),
        sync_queue_size=p('sync_queue_size'), pose_tolerance=p('pose_tolerance'),
        base_frame=p('base_frame'), tf_tolerance=p('tf.tolerance'),
        tf_max_gap=p('tf.max_gap'), tf_wait=p('tf.wait'), camera_xyz=tuple(p('camera_xyz')),
        camera_rpy=tuple(p('camera_rpy')),
        camera_convention=p('camera_convention'),
        visual_words_per_place=p('visual_words_per_place'),
        min_detection_score=p('objects.min_score'),
        class_names=ClassNames.load(p('class_names')),
        evidence_dir=p('evidence_dir') if p('persist') else '',
        evidence_key=load_key(p('encryption_key_file')) if p('encrypt_evidence') else None,
        object_min_interval=p('objects.min_interval'), object_burst=p('objects.burst'),
        save_images=p('save_images'), save_audio_clips=p('save_audio_clips'),
        privacy=PrivacyPolicy.parse(list(p('privacy.zones') or []),
                                    list(p('privacy.time_windows') or [])),
        time_reset=p('time_reset'), rooms=RoomMap.parse(list(p('rooms') or [])),
        keyframe=KeyframeGate(p('keyframe.min_translation'), p('keyframe.min_rotation'),
                              p('keyframe.min_view_change'), p('keyframe.min_interval')),
        locator=ObjectLocator(min_depth=p('objects.min_depth'),
                              max_depth=p('objects.max_depth'),
                              min_valid_fraction=p('objects.min_valid_fraction'),
                              ghosts=GhostCheck(enabled=p('objects.refuse_ghosts'),
                                                free_space_min=p('objects.free_space_min'))),
        segmenter=AudioSegmenter(threshold_db=p('audio.threshold_db'),
                                 min_db=p('audio.min_db'), hangover=p('audio.hangover'),
                                 max_duration=p('audio.max_duration')))
