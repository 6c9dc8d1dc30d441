"""The perception node's parameters: declared once here (names, defaults, descriptions) and
checked by the same rules at start and when they change; ``config/engram.yaml`` mirrors the
defaults (:mod:`engram_ros.ros.memory_parameters` is the memory node's counterpart).
"""

from __future__ import annotations

import math

from rclpy.parameter import Parameter

from engram_ros.perception.rooms import RoomMap
from engram_ros.perception.rooms import SYNTAX as ROOM_SYNTAX
from engram_ros.ros.managed import AUTOSTART

#: Fixed once the node runs.
READ_ONLY = ('frame_id', 'base_frame', 'tf.tolerance', 'tf.max_gap', 'tf.wait', 'dim',
             'visual_encoder', 'job_queue_size', 'diagnostics_period', 'sensor_reliability',
             'encrypt_evidence', 'encryption_key_file', 'persist', 'autostart', 'image_transport',
             'depth_image_transport')
#: image_transport transports read, by parameter, and the topic suffix each subscribes.
TRANSPORTS = {'image_transport': {'raw': '', 'compressed': '/compressed'},
              'depth_image_transport': {'raw': '', 'compressedDepth': '/compressedDepth'}}

# name -> (default, description). Declared once, here; config/engram.yaml mirrors them.
PARAMETERS: dict[str, tuple[object, str]] = {
    AUTOSTART[0]: AUTOSTART[1:],
    'frame_id': ('map', 'memory frame: TF target of the robot and camera poses; odometry/pose '
                        'must be in it when there is no TF (read-only)'),
    'base_frame': ('base_link', 'robot frame in TF: the robot pose is frame_id <- base_frame '
                                '(read-only)'),
    'tf.tolerance': (0.1, '[s] how far outside the TF samples a frame may be (the nearest is '
                          'used); further is skipped as tf_extrapolation (read-only)'),
    'tf.max_gap': (1.0, '[s] largest gap between TF samples interpolated across; a frame in a '
                        'larger one is skipped as tf_stale (read-only)'),
    'tf.wait': (2.0, '[s] at start, frames wait this long (odometry time) for TF to connect '
                     'before odometry and the camera parameters place them; 0: no wait '
                     '(read-only)'),
    'dim': (256, 'context vector dimension, the memory\'s dim (read-only)'),
    'visual_encoder': ('orb_bow', 'orb_bow (shipped) or torchscript:<path> (read-only)'),
    'camera_xyz': ([0.1, 0.0, 1.0], '[m] camera position in base_link'),
    'camera_rpy': ([-1.7708, 0.0, -1.5708], '[rad] camera fixed-axis roll, pitch, yaw in '
                                            'base_link (see camera_convention)'),
    'camera_convention': ('optical', 'camera_rpy is of the optical frame (z forward, x right, '
                                     'y down) or of the camera body frame (x forward): '
                                     'optical | body'),
    'sensor_reliability': ('reliable', 'QoS of the image and camera info subscriptions: '
                                       'reliable (as engram_sim publishes) or best_effort (for '
                                       'drivers publishing sensor-data QoS) (read-only)'),
    'image_transport': ('raw', 'colour input: raw (sensor_msgs/Image on '
                               'camera/color/image_raw) or compressed (sensor_msgs/'
                               'CompressedImage JPEG/PNG on camera/color/image_raw/compressed) '
                               '(read-only)'),
    'depth_image_transport': ('raw', 'depth input: raw (sensor_msgs/Image on '
                                     'camera/depth/image_raw) or compressedDepth '
                                     '(sensor_msgs/CompressedImage PNG on '
                                     'camera/depth/image_raw/compressedDepth) (read-only)'),
    'class_names': ('', 'file naming numeric detector class ids: text, one name per line from '
                        'id 0, or YAML (list, or id: name); config/coco_names.txt holds '
                        'COCO\'s 80; empty: class ids are the labels'),
    'sync_slop': (0.02, '[s] largest stamp difference of colour, depth and detections paired'),
    'sync_queue_size': (30, 'messages kept per input while waiting for a partner'),
    'pose_tolerance': (0.1, '[s] how far outside the pose history a frame may be'),
    'time_reset': (3.0, '[s] a stamp this far back clears all buffers (simulator restart)'),
    'keyframe.min_translation': (0.5, '[m] robot motion that makes a new place keyframe'),
    'keyframe.min_rotation': (0.35, '[rad] robot rotation that makes a new place keyframe'),
    'keyframe.min_view_change': (0.3, 'view change (1 - thumbnail correlation) that makes a '
                                      'new place keyframe'),
    'keyframe.min_interval': (0.0, '[s] shortest time between place keyframes'),
    'visual_words_per_place': (8, 'vw: tags per place observation'),
    'objects.min_score': (0.3, 'detections below this detector score are ignored'),
    'objects.min_interval': (0.5, '[s] between two looks at one thing, once its burst is used'),
    'objects.burst': (2, 'looks a thing newly in view gets on consecutive frames'),
    'objects.min_depth': (0.1, '[m] nearest valid depth'),
    'objects.max_depth': (8.0, '[m] farthest valid depth'),
    'objects.min_valid_fraction': (0.2, 'fraction of the box/mask that must have valid depth'),
    'objects.refuse_ghosts': (True, 'refuse object positions on a wall/floor plane that goes on '
                                    'past the box, behind the depth seen, or outside the rooms'),
    'objects.free_space_min': (0, 'refuse an object whose centre and the space around it this '
                                  'many frames saw empty (depth rays through it, 0.1 m voxels; '
                                  'counted: skipped_ghost_free_space); 0: off'),
    'audio.threshold_db': (12.0, '[dB] above the noise floor that starts a sound event'),
    'audio.min_db': (-50.0, '[dBFS] quietest level that can start a sound event'),
    'audio.hangover': (0.4, '[s] of quiet that ends a sound event'),
    'audio.max_duration': (4.0, '[s] longest sound event'),
    'audio.min_similarity': (0.5, 'mean cosine to the nearest example sounds needed for a '
                                   'sound: tag'),
    'persist': (False, 'consent to write evidence files, the memory\'s persist (the launchers '
                       'pass it); false writes none, counted as evidence_not_written (read-only)'),
    'evidence_dir': ('~/.ros/engram_store/evidence',
                     'where frames, crops and clips are written: the memory\'s '
                     '<store_dir>/evidence, so its retention and forgetting apply; empty '
                     'writes none'),
    'encrypt_evidence': (False, 'encrypt evidence files at rest (Fernet), as the memory\'s '
                                'encrypt_evidence; a missing key stops the node (read-only)'),
    'encryption_key_file': ('', 'evidence key file, the memory\'s (engram keygen FILE); '
                                'empty: $ENGRAM_KEY (read-only)'),
    'save_images': (True, 'write place frames and object crops as evidence'),
    'save_audio_clips': (False, 'write sound clips as evidence (off: data minimisation)'),
    'job_queue_size': (4, 'encoding jobs waiting at most; the oldest is dropped past it '
                          '(read-only)'),
    'diagnostics_period': (1.0, '[s] diagnostics publishing period (read-only)'),
}

#: A string array without a default (an empty list has no type in ROS): unset means no rooms.
ROOMS_DESCRIPTION = (f'rooms of the map, {ROOM_SYNTAX}; places and objects in one get its '
                     'room: tag; unset: none')
#: The memory's privacy parameters, read-only string arrays without defaults (unset: none).
#: Perception applies them before it encodes or writes anything; the launcher passes the
#: memory's values (:func:`engram_ros.apps.wiring.shared_by_memory`).
PRIVACY_PARAMETERS = {
    'privacy.zones': 'the memory\'s privacy zones (circle:X,Y,R, box:XMIN,YMIN,XMAX,YMAX; '
                     'memory frame, m): nothing seen from or located in one is encoded or '
                     'written (read-only)',
    'privacy.time_windows': 'the memory\'s privacy windows (daily:HH:MM-HH:MM, '
                            'epoch:START-END): nothing is encoded or written then (read-only)',
}

#: The rules :func:`invalid` checks.
POSITIVE = ('sync_queue_size', 'pose_tolerance', 'tf.max_gap', 'time_reset', 'objects.max_depth',
            'objects.burst', 'audio.max_duration', 'job_queue_size', 'diagnostics_period', 'dim')
NON_NEGATIVE = ('sync_slop', 'tf.tolerance', 'tf.wait', 'objects.min_interval',
                'keyframe.min_translation', 'keyframe.min_rotation', 'keyframe.min_view_change',
                'keyframe.min_interval', 'visual_words_per_place', 'objects.min_depth',
                'objects.free_space_min', 'audio.hangover', 'audio.threshold_db')
UNIT_INTERVAL = ('objects.min_score', 'objects.min_valid_fraction', 'audio.min_similarity')



def invalid(params: list[Parameter]) -> str:
    """What is wrong with ``params``, or ``''``."""
    for param in params:
        name, value = param.name, param.value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not math.isfinite(value):
            return f'{name} must be finite'
        if name in POSITIVE and not value > 0:
            return f'{name} must be > 0'
        if name in NON_NEGATIVE and not value >= 0:
            return f'{name} must be >= 0'
        if name in UNIT_INTERVAL and not 0.0 <= value <= 1.0:
            return f'{name} must be in [0, 1]'
        if name in ('camera_xyz', 'camera_rpy') and (
                len(value) != 3 or not all(math.isfinite(v) for v in value)):
            return f'{name} must be three finite numbers'
        if name == 'camera_convention' and value not in ('body', 'optical'):
            return 'camera_convention must be body or optical'
        if name == 'sensor_reliability' and value not in ('reliable', 'best_effort'):
            return 'sensor_reliability must be reliable or best_effort'
        if name in TRANSPORTS and value not in TRANSPORTS[name]:
            return f'{name} must be {" or ".join(TRANSPORTS[name])}'
        if name == 'rooms':
            try:
                RoomMap.parse(list(value or []))
            except ValueError as exc:
                return str(exc)
    return ''
