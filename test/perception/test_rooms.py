"""Rooms of the map: parsing their string form and finding the room of a position."""

import pytest

from engram_ros.perception.rooms import RoomConfigError
from engram_ros.perception.rooms import RoomMap

# an L-shaped living room around a square kitchen corner, and a hall overlapping both
ROOMS = ['Kitchen=box:0,0,3,4', 'living room=poly:3,0,8,0,8,6,0,6,0,4,3,4',
         'hall=box:-1,-1,10,10']


@pytest.mark.parametrize('position, tag', [
    ((1.0, 1.0), 'room:kitchen'),
    ((1.0, 1.0, 2.5), 'room:kitchen'),            # heights are ignored
    ((3.0, 2.0), 'room:kitchen'),                 # on a shared wall: the first listed
    ((5.0, 1.0), 'room:living_room'),
    ((1.0, 5.0), 'room:living_room'),             # the L's other arm
    ((9.0, 9.0), 'room:hallway'),                 # 'hall' is the canonical 'hallway'
    ((20.0, 0.0), ''),
])
def test_a_position_is_in_the_first_room_that_contains_it(position, tag):
    rooms = RoomMap.parse(ROOMS)
    assert rooms.room_at(position) == tag
    assert rooms.tags(position) == ((tag,) if tag else ())


def test_no_rooms_tags_nothing():
    assert len(RoomMap.parse([])) == 0 and RoomMap().tags((0.0, 0.0)) == ()


@pytest.mark.parametrize('text', [
    'kitchen', 'kitchen=circle:1,2,3', '=box:0,0,1,1', 'kitchen=box:0,0,1',
    'kitchen=box:1,0,0,1', 'kitchen=box:0,0,nan,1', 'kitchen=box:a,b,c,d',
    'kitchen=poly:0,0,1,1', 'kitchen=poly:0,0,1,1,2,2', 'kitchen=poly:0,0,1,1,2',
])
def test_bad_rooms_are_refused_with_the_syntax(text):
    with pytest.raises(RoomConfigError) as info:
        RoomMap.parse(['office=box:0,0,1,1', text])
    assert text in str(info.value)
