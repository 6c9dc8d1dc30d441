"""Recall scope over real DDS (issue 15): the memory node's Recall service takes a scope and
names the robot of every answer; with no fleet configured a fleet scope is answered locally,
says so (status OK, ``fleet`` FLEET_NOT_CONFIGURED, the message) and is counted in the
diagnostics. A request that sets no scope is answered as before."""

from __future__ import annotations

import pytest

from conftest import wait_for
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation

rclpy = pytest.importorskip('rclpy')

from engram_ros.srv import Recall  # noqa: E402

R = Recall.Response


@pytest.fixture
def memory(test_node, start_memory, tmp_path):
    process, namespace = start_memory(namespace='/site/scope_robot', store_dir=tmp_path / 's')
    return Memory(test_node, process, namespace)


def test_scope_round_trip_and_a_fleet_scope_without_a_fleet(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)
    me = 'site.scope_robot'         # the namespace as a robot id (robot_id_from_namespace)

    default = memory.client.recall(text='mug', k=5)
    assert default.status == R.STATUS_OK, default.message
    assert [e.label for e in default.engrams] == ['mug']
    assert list(default.robots) == [me] and default.fleet == R.FLEET_NOT_ASKED

    fleet = memory.client.recall(text='mug', k=5, scope=Recall.Request.SCOPE_FLEET)
    assert fleet.status == R.STATUS_OK, fleet.message
    assert [e.id for e in fleet.engrams] == [e.id for e in default.engrams]
    assert list(fleet.robots) == [me]
    assert fleet.fleet == R.FLEET_NOT_CONFIGURED
    assert 'no fleet configured' in fleet.message
    assert wait_for(lambda: memory.diagnostic('recalls_fleet_unanswered') == '1', 15.0)

    named = memory.client.recall(kinds=['object'], k=5, scope=Recall.Request.SCOPE_ROBOTS,
                                 robots=[me])
    assert sorted(e.label for e in named.engrams) == ['book', 'mug']
    assert named.fleet == R.FLEET_NOT_ASKED and list(named.robots) == [me, me]

    others = memory.client.recall(kinds=['object'], k=5, scope=Recall.Request.SCOPE_ROBOTS,
                                  robots=['robot9'])
    assert others.status == R.STATUS_OK and list(others.engrams) == []
    assert others.fleet == R.FLEET_NOT_CONFIGURED


@pytest.mark.parametrize('scope,robots', [(9, []), (Recall.Request.SCOPE_ROBOTS, []),
                                          (Recall.Request.SCOPE_ROBOT, ['robot9'])],
                         ids=['unknown', 'robots-none', 'robot-with-robots'])
def test_a_bad_scope_gets_a_status(memory, scope, robots):
    response = memory.client.recall(kinds=['object'], k=5, scope=scope, robots=robots)
    assert response.status == R.STATUS_INVALID_SCOPE
    assert 'scope' in response.message
