"""The memory node's parameters as data: declared defaults -> StoreConfig, checks, live changes."""

from __future__ import annotations

import pytest
import yaml

from conftest import PARAMS

pytest.importorskip('rclpy')

from engram_ros.apps import wiring  # noqa: E402
from engram_ros.core.memory import StoreConfig  # noqa: E402
from engram_ros.core.privacy import DEFAULT_RETENTION  # noqa: E402
from engram_ros.ros import memory_parameters  # noqa: E402
from engram_ros.ros.memory_parameters import STRING_ARRAY  # noqa: E402


def defaults() -> dict:
    return {name: (None if default is STRING_ARRAY else default)
            for name, default, _ in memory_parameters.declarations()}


def test_declared_defaults_make_the_stores_default_config():
    config = memory_parameters.store_config(defaults().get)
    reference = StoreConfig()
    assert config.dim == reference.dim and config.frame_id == reference.frame_id
    assert config.merge.radius == reference.merge.radius
    assert config.merge.min_similarity == reference.merge.min_similarity
    assert config.retention.important_tags == ()
    assert config.privacy.retention == {k: float(v) for k, v in DEFAULT_RETENTION.items()}


def test_names_are_declared_once_and_read_only_ones_exist():
    names = [name for name, _, _ in memory_parameters.declarations()]
    assert len(names) == len(set(names))
    assert set(memory_parameters.READ_ONLY) <= set(names)


@pytest.mark.parametrize('name, value, reason', [
    ('miss_visits', -1, 'miss_visits must be >= 0'),
    ('budget', 0, 'budget must be >= 1'),
    ('merge_radius.object', float('nan'), 'must be finite and >= 0'),
    ('anchor_radius', -0.5, 'must be finite and >= 0'),
    ('semantic_threshold', 1.5, 'in [-1, 1]'),
    ('feedback_rate', 0.0, 'in (0, 1]'),
])
def test_bad_values_are_refused_with_a_reason(name, value, reason):
    assert reason in memory_parameters.rejection(name, value)


@pytest.mark.parametrize('name, value, reason', [
    ('budget', 0, 'budget must be >= 1'),
    ('short_term_capacity', 0, 'short_term_capacity must be >= 1'),
    ('dim', 0, 'dim must be >= 1'),
    ('queue_depth', 0, 'queue_depth must be >= 1'),
    ('noise_support', -1, 'noise_support must be >= 0'),
    ('audit_keep_files', -2, 'audit_keep_files must be >= 0'),
    ('consolidation_period', -1.0, 'must be finite and >= 0'),
    ('diagnostics_period', 0.0, 'must be finite and > 0'),
    ('marker_period', float('inf'), 'must be finite and > 0'),
    ('audit_max_mb', 0.0, 'must be finite and > 0'),
    ('frame_id', '', 'frame_id must not be empty'),
    ('evidence_retention.image', -1.0, 'must be finite and >= 0'),
])
def test_a_bad_start_value_is_refused_by_the_rules_of_a_change(name, value, reason):
    """Start values used to skip the checks (the callback exists only once the node runs)."""
    with pytest.raises(memory_parameters.ParameterValueError) as refused:
        memory_parameters.check_start({**defaults(), name: value}.get)
    assert f'parameter {name} = {value!r} refused' in str(refused.value)
    assert reason in str(refused.value)
    assert memory_parameters.rejection(name, value) is not None   # and as a change


def test_the_defaults_and_the_shipped_file_pass_the_start_check():
    memory_parameters.check_start(defaults().get)
    shipped = wiring.node_parameters(yaml.safe_load(PARAMS.read_text()),
                                     '/robot1/engram_memory')
    assert shipped['persist'] is False and shipped['budget'] == 1000000
    memory_parameters.check_start({**defaults(), **shipped}.get)


def test_accepted_changes_reach_the_running_config():
    config = memory_parameters.store_config(defaults().get)
    assert memory_parameters.rejection('merge_radius.object', 0.8) is None
    memory_parameters.apply(config, None, 'merge_radius.object', 0.8)
    memory_parameters.apply(config, None, 'important_tags', ['room:kitchen'])
    memory_parameters.apply(config, None, 'miss_visits', 3)
    assert config.merge.radius['object'] == 0.8
    assert config.retention.important_tags == ('room:kitchen',)
    assert config.misses.visits == 3


def test_fleet_robot_id_defaults_to_the_namespace_and_share_is_checked():
    assert memory_parameters.robot_id('', '/house/robot1') == 'house.robot1'
    assert memory_parameters.robot_id('arm 2', '/house/robot1') == 'arm_2'
    assert memory_parameters.robot_id('', '/')                 # the host name, never empty
    assert 'accepted none, places, all' in memory_parameters.rejection('fleet.share', 'most')
    assert memory_parameters.rejection('fleet.share', 'object,place') is None
    assert 'fleet.backlog must be >= 1' in memory_parameters.rejection('fleet.backlog', 0)
    assert memory_parameters.open_fleet(defaults().get, None, '/r1') is None   # off by default
