"""tf2_msgs/TFMessage <-> the core transform tree's tuples (:mod:`engram_ros.core.transforms`).

A transform is ``(parent, child, stamp [s], translation [m], rotation (x, y, z, w))``: the
header's frame_id is the parent, ``child_frame_id`` the child, as in tf2.
"""

from __future__ import annotations

from typing import Iterable
from typing import Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage

from engram_ros.ros.conversions.common import set_header
from engram_ros.ros.conversions.common import stamp_of

Transform = tuple[str, str, float, tuple[float, float, float], tuple[float, float, float, float]]


def transforms_from_msg(msg: TFMessage) -> list[Transform]:
    out = []
    for t in msg.transforms:
        v, q = t.transform.translation, t.transform.rotation
        out.append((t.header.frame_id, t.child_frame_id, stamp_of(t), (v.x, v.y, v.z),
                    (q.x, q.y, q.z, q.w)))
    return out


def transform_msg(parent: str, child: str, stamp: float | Time, translation: Sequence[float],
                  rotation: Sequence[float]) -> TransformStamped:
    """One ``parent <- child`` transform: ``translation`` [m], ``rotation`` (x, y, z, w)."""
    msg = TransformStamped(child_frame_id=child)
    set_header(msg, stamp, parent)
    v, q = msg.transform.translation, msg.transform.rotation
    v.x, v.y, v.z = (float(a) for a in translation)
    q.x, q.y, q.z, q.w = (float(a) for a in rotation)
    return msg


def tf_message(transforms: Iterable[TransformStamped]) -> TFMessage:
    return TFMessage(transforms=list(transforms))
