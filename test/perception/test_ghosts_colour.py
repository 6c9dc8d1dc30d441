"""Real PyBullet renders: a thing's colour from its own pixels; ghosts refused and counted."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.free_space import FreeSpace
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.ghosts import GhostCheck
from engram_ros.perception.objects import Detection
from engram_ros.perception.objects import object_tags
from engram_ros.perception.objects import ObjectLocator
from engram_ros.perception.rooms import RoomMap

pytest.importorskip('pybullet')

from engram_ros.sim.scene import CameraModel  # noqa: E402
from engram_ros.sim.scene import Scene  # noqa: E402
from engram_ros.sim.world import ObjectSpec  # noqa: E402
from engram_ros.sim.world import world  # noqa: E402

CAMERA = CameraModel(width=320, height=240)
K = Intrinsics(CAMERA.K[0, 0], CAMERA.K[1, 1], CAMERA.K[0, 2], CAMERA.K[1, 2], CAMERA.width,
               CAMERA.height)
# The small world's living room (x 3..6, y 0..4, brown floor), with a teddy, a white cylinder
# and a brown box on the floor. The PyBullet teddy's material is rgba (1, 0.4, 0.4): it renders
# light red, not brown (its texture is not used by the renderer).
THINGS = (ObjectSpec('teddy', (4.0, 1.0, 0.0), asset='teddy_vhacd.urdf', scale=3.0),
          ObjectSpec('cup', (4.8, 1.0, 0.0), 'cylinder', (0.06, 0.2), 'white'),
          ObjectSpec('box', (3.5, 1.5, 0.0), 'box', (0.3, 0.25, 0.3), 'brown'))


@pytest.fixture(scope='module')
def scene():
    spec = world('small')
    with Scene(replace(spec, objects=spec.objects + THINGS), CAMERA) as s:
        yield s


def view(scene: Scene, x: float, y: float, yaw: float):
    scene.set_robot(x, y, yaw)
    return scene.render(x, y, yaw), CAMERA.optical_pose(x, y, yaw)


def detection(scene: Scene, seg: np.ndarray, label: str, masked: bool) -> Detection:
    mask = seg == scene.bodies[label]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return Detection(label, 0.9, box, mask if masked else None)


@pytest.mark.parametrize('masked', [True, False])
@pytest.mark.parametrize('label, colour', [('teddy', 'red'), ('cup', 'white'),
                                           ('box', 'brown')])
def test_a_thing_is_named_by_the_colour_of_its_own_pixels(scene, label, colour, masked):
    # seen from the room's middle, 1.2-1.5 m away, the floor (brown) behind and around it
    x, y, _ = scene.positions[label]
    render, t = view(scene, x, y + 1.4, -math.pi / 2)
    det = detection(scene, render.seg, label, masked)
    est = ObjectLocator().locate(det, render.depth, render.rgb, K, t)
    assert f'color:{colour}' in object_tags(label, est.colour, est.size_class)
    assert np.linalg.norm((est.position - np.asarray(scene.positions[label]))[:2]) < 0.15


def wall_view(scene: Scene):
    # In the kitchen, 1.5 m from the west wall (x = 0), facing it; the plant is off to the right.
    return view(scene, 1.5, 2.0, math.pi)


def test_a_box_on_a_wall_or_where_it_meets_the_floor_is_refused(scene):
    render, t = wall_view(scene)
    wall = (130.0, 40.0, 190.0, 90.0)             # upper middle: wall only
    corner = (120.0, 200.0, 200.0, 235.0)         # bottom middle: wall and floor
    for box in (wall, corner):
        assert not np.isin(render.seg[int(box[1]):int(box[3]), int(box[0]):int(box[2])],
                           list(scene.labels)).any()
        with pytest.raises(InputRejected) as err:
            ObjectLocator().locate(Detection('tv', 0.5, box), render.depth, render.rgb, K, t)
        assert err.value.reason == 'ghost_surface'


def test_a_box_on_a_wall_beside_a_piece_of_furniture_is_refused(scene):
    # The wall, with the table's edge along the box's left side: the whole box is no plane going
    # on past every side (the table is on one), but the points it would be placed by, the
    # box's foreground, are the wall, which goes on past the other three sides.
    render, t = wall_view(scene)
    box = (2.0, 110.0, 60.0, 190.0)
    assert (render.seg[110:190, 0:4] == scene.bodies['table']).any()
    with pytest.raises(InputRejected) as err:
        ObjectLocator().locate(Detection('tv', 0.5, box), render.depth, render.rgb, K, t)
    assert err.value.reason == 'ghost_plane_patch'


def test_a_real_thing_against_a_wall_is_not_a_surface(scene):
    # the sofa stands against the north wall of the living room, seen head on
    x, y, _ = scene.positions['sofa']
    render, t = view(scene, x, y - 2.2, math.pi / 2)
    for masked in (True, False):
        est = ObjectLocator().locate(detection(scene, render.seg, 'sofa', masked), render.depth,
                                     render.rgb, K, t)
        assert np.linalg.norm((est.position - np.asarray(scene.positions['sofa']))[:2]) < 0.4


def test_a_position_behind_the_wall_or_outside_the_rooms_is_refused(scene):
    render, t = wall_view(scene)
    locator = ObjectLocator()
    # the wall is seen 1.4-1.5 m ahead; a centre 1 m behind it is no thing this box saw
    with pytest.raises(InputRejected) as err:
        locator.ghosts.check_in_front_of_depth('tv', np.array([0.0, 0.0, 2.6]),
                                               np.array([0.2, 0.2]), render.depth, K)
    assert err.value.reason == 'ghost_behind_depth'
    locator.ghosts.check_in_front_of_depth('tv', np.array([0.0, 0.0, 1.6]),
                                           np.array([0.2, 0.2]), render.depth, K)
    # the plant, placed with a map whose rooms leave out the kitchen's west half
    x, y, _ = scene.positions['plant']
    render, t = view(scene, x + 1.5, y - 1.0, math.atan2(1.0, -1.5))
    det = detection(scene, render.seg, 'plant', True)
    rooms = RoomMap.parse(['kitchen=box:1,0,3,4', 'living_room=box:3,0,6,4'])
    with pytest.raises(InputRejected) as err:
        locator.locate(det, render.depth, render.rgb, K, t, rooms.covers)
    assert err.value.reason == 'ghost_outside_map'
    est = locator.locate(det, render.depth, render.rgb, K, t,
                         RoomMap.parse(['kitchen=box:0,0,3,4']).covers)
    assert np.linalg.norm((est.position - np.asarray(scene.positions['plant']))[:2]) < 0.2


def test_space_seen_empty_refuses_a_centre_but_keeps_a_thing_put_there_later(scene):
    # The brown box lifted out of view; the living room seen from two places: the space where
    # it will float (0.6-0.9 m up, the wall 1.5 m behind) is seen empty.
    home = scene.positions['box']
    spot = (home[0], home[1], 0.6)
    locator = ObjectLocator(ghosts=GhostCheck(free_space_min=2))
    space = FreeSpace()
    try:
        scene.move('box', (home[0], home[1], -5.0))
        for stamp, (x, y, yaw) in enumerate(((spot[0], spot[1] + 1.4, -math.pi / 2),
                                             (spot[0] + 1.2, spot[1] + 1.2, -3 * math.pi / 4))):
            render, t = view(scene, x, y, yaw)
            space.add_frame(float(stamp), render.depth, K, t)
        centre = np.array([spot[0], spot[1], 0.75])
        with pytest.raises(InputRejected) as err:
            locator.ghosts.check_not_in_free_space('box', centre, space)
        assert err.value.reason == 'ghost_free_space'
        # The box put there (a move into space seen empty) and seen: against the record
        # without this frame its centre is in empty space; the frame goes in first, and the
        # box's own surface, hit by its rays, keeps it.
        scene.move('box', spot)
        render, t = view(scene, spot[0], spot[1] + 1.4, -math.pi / 2)
        det = detection(scene, render.seg, 'box', False)
        with pytest.raises(InputRejected):
            locator.locate(det, render.depth, render.rgb, K, t, free_space=copy.deepcopy(space))
        space.add_frame(2.0, render.depth, K, t)
        est = locator.locate(det, render.depth, render.rgb, K, t, free_space=space)
        assert np.linalg.norm(est.position[:2] - np.asarray(spot[:2])) < 0.2
    finally:
        scene.move('box', home)
