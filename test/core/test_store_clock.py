"""The memory's clock: a recall without an explicit ``now`` takes the store's ``clock`` (the
ROS clock in the node, simulated time under ``use_sim_time``, a bag's time in an offline
ingest), never the wall clock behind its back. Real SQLite files."""

from __future__ import annotations

from pathlib import Path

from test_ingest_batch import look
from test_ingest_batch import make_obs
from test_ingest_batch import open_store
from test_ingest_batch import T0

from engram_ros.core.query import RecallQuery

#: A replayed bag's time: years before the wall clock.
BAG_NOW = T0 + 100.0


def test_a_recall_without_now_touches_on_the_stores_clock(tmp_path: Path) -> None:
    store = open_store('sqlite', tmp_path / 's')
    store.clock = lambda: BAG_NOW
    engram_id = store.ingest(make_obs(1, thing='mug')).engram_id
    hits = store.recall(RecallQuery(vector=look('mug', 1), k=1)).hits
    assert [h.engram.id for h in hits] == [engram_id]
    store.close()
    again = open_store('sqlite', tmp_path / 's')
    try:
        (engram,) = again.get([engram_id])
        assert engram.last_access == BAG_NOW
    finally:
        again.close()

