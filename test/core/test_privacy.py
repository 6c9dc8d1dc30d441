"""Privacy zones and windows: what they exclude, and malformed ones refused."""

from __future__ import annotations

import time

import pytest

from engram_ros.core.privacy import PrivacyConfigError
from engram_ros.core.privacy import PrivacyPolicy


def test_zones_and_windows_exclude():
    policy = PrivacyPolicy.parse(zones=['circle:0,0,1', 'box:2,2,0,3,3,1', ''],
                                 windows=['epoch:100-200'])
    now = time.time()
    assert policy.excludes([0.5, 0.5, 9.0], now)              # circle: any height
    assert policy.excludes([2.5, 2.5, 0.5], now)
    assert policy.excludes([2.5, 2.5, 1.5], now) is None      # above the 3-D box
    assert policy.excludes([5.0, 5.0, 0.0], 150.0)
    assert policy.excludes([5.0, 5.0, 0.0], now) is None


def test_daily_window_wraps_past_midnight():
    policy = PrivacyPolicy.parse(windows=['daily:22:00-07:00'])
    midnight = time.mktime(time.strptime('2024-05-01 00:00', '%Y-%m-%d %H:%M'))
    assert policy.excludes([0, 0, 0], midnight + 23 * 3600)
    assert policy.excludes([0, 0, 0], midnight + 3 * 3600)
    assert policy.excludes([0, 0, 0], midnight + 12 * 3600) is None


@pytest.mark.parametrize('zones, windows, retention', [
    (['circle:0,0'], [], {}), (['circle:0,0,-1'], [], {}), (['box:1,1,0,0'], [], {}),
    (['ellipse:1,2,3'], [], {}), (['circle:nan,0,1'], [], {}), ([], ['daily:25:00-01:00'], {}),
    ([], ['epoch:200-100'], {}), ([], ['weekly:mon'], {}), ([], [], {'smell': 1.0}),
    ([], [], {'audio': -1.0}),
])
def test_malformed_policies_are_refused(zones, windows, retention):
    with pytest.raises(PrivacyConfigError):
        PrivacyPolicy.parse(zones, windows, retention)
