"""Tests of engram_ros.core.model.engram helpers used on the batch paths: copies and row stacks."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import stack_rows


def _engram() -> Engram:
    return Engram(id=7, kind='object', frame_id='map', position=np.array([1.0, 2.0, 3.0]),
                  vector=np.ones(4, dtype=np.float32) / 2, first_seen=1.0, last_seen=2.0,
                  tags=('label:mug',), label='mug')


def test_copy_is_deep() -> None:
    e = _engram()
    c = e.copy()
    assert (c.id, c.kind, c.label, c.tags) == (e.id, e.kind, e.label, e.tags)
    for name in ('position', 'vector', 'orientation', 'covariance'):
        assert not np.shares_memory(getattr(c, name), getattr(e, name))
        np.testing.assert_array_equal(getattr(c, name), getattr(e, name))
    c.position[0] = 99.0
    c.tags = ()
    assert e.position[0] == 1.0 and e.tags == ('label:mug',)


def test_copy_shares_only_the_skipped_arrays() -> None:
    e = _engram()
    c = e.copy(skip=('position', 'vector'))
    assert c.position is e.position and c.vector is e.vector
    assert not np.shares_memory(c.covariance, e.covariance)
    assert not np.shares_memory(c.orientation, e.orientation)
    assert (c.id, c.label, c.tags) == (e.id, e.label, e.tags)


def test_stack_rows_equals_np_stack() -> None:
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=5).astype(np.float32) for _ in range(100)]
    out = stack_rows(rows)
    np.testing.assert_array_equal(out, np.stack(rows))
    assert out.dtype == np.float32 and out.shape == (100, 5)


@pytest.mark.parametrize('rows', [[], [np.ones(3), np.ones(4)],
                                  [np.ones(4), np.ones(2), np.ones(6), np.ones(4)]],
                         ids=['none', 'two-lengths', 'same-total'])
def test_stack_rows_rejects_ragged_or_no_rows(rows: list) -> None:
    with pytest.raises(ValueError):
        stack_rows(rows)
