"""RViz markers of what the memory keeps: a sphere per engram, sized by how often it was seen,
coloured by kind, and a floating label ``<label> #<id> x<count>``."""

from __future__ import annotations

from typing import Iterable

from builtin_interfaces.msg import Time
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from engram_ros.core.model.engram import Engram
from engram_ros.ros.conversions.common import set_header

#: Marker colours per kind (RGBA).
KIND_COLOURS = {'place': (0.2, 0.5, 1.0, 0.8), 'object': (1.0, 0.6, 0.1, 0.9),
                'audio': (0.6, 0.2, 0.9, 0.8), 'event': (0.3, 0.8, 0.3, 0.8)}
#: Colour of a kind without its own.
OTHER_COLOUR = (0.7, 0.7, 0.7, 0.8)


def engram_markers(engrams: Iterable[Engram], frame_id: str, stamp: Time,
                   limit: int) -> MarkerArray:
    """A DELETEALL, then a body and a label marker for each of the first ``limit`` engrams."""
    markers = MarkerArray()
    markers.markers.append(Marker(action=Marker.DELETEALL))
    for i, engram in enumerate(engrams):
        if i >= limit:
            break
        markers.markers.append(_marker(engram, frame_id, stamp, Marker.SPHERE))
        markers.markers.append(_marker(engram, frame_id, stamp, Marker.TEXT_VIEW_FACING))
    return markers


def _marker(engram: Engram, frame_id: str, stamp: Time, shape: int) -> Marker:
    label = shape == Marker.TEXT_VIEW_FACING
    m = set_header(Marker(), stamp, frame_id)
    m.ns = f'{engram.kind}_{"label" if label else "body"}'
    m.id = int(engram.id)
    m.type = shape
    m.action = Marker.ADD
    m.pose.position.x, m.pose.position.y = map(float, engram.position[:2])
    m.pose.position.z = float(engram.position[2]) + (0.3 if label else 0.0)
    m.pose.orientation.w = 1.0
    size = 0.15 + 0.05 * min(engram.observation_count, 6)
    m.scale.x = m.scale.y = m.scale.z = 0.15 if label else size
    m.color.r, m.color.g, m.color.b, m.color.a = KIND_COLOURS.get(engram.kind, OTHER_COLOUR)
    if label:
        m.text = f'{engram.label or engram.kind} #{engram.id} x{engram.observation_count}'
        m.color.r = m.color.g = m.color.b = 1.0
    return m
