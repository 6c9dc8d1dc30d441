"""Governance services of the memory node over real DDS: list, get, edit, forget, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.model.limits import MAX_LABEL_BYTES  # noqa: E402
from engram_ros.core.model.limits import MAX_REQUEST_ITEMS  # noqa: E402
from engram_ros.core.model.limits import MAX_TAG_BYTES  # noqa: E402
from engram_ros.msg import Observation as ObservationMsg  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.ros.conversions import memory as conversions  # noqa: E402
from engram_ros.srv import EditEngram  # noqa: E402
from engram_ros.srv import Feedback  # noqa: E402
from engram_ros.srv import ForgetEngrams  # noqa: E402
from engram_ros.srv import GetEngrams  # noqa: E402
from engram_ros.srv import ListEngrams  # noqa: E402

DIM = 256


def observation(i: int, label: str, position, tags=()) -> ObservationMsg:
    vec = np.random.default_rng(i).normal(size=DIM)
    return conversions.observation_to_msg(Observation(
        kind='object', frame_id='map', position=np.asarray(position, dtype=float),
        stamp=time.time(), vector=vec, label=label, tags=tuple(tags)))


def test_list_get_edit_forget_over_dds(test_node, start_memory, tmp_path):
    store = tmp_path / 'store'
    process, namespace = start_memory(None, store, "privacy.zones:=['circle:50,50,2']")
    client = MemoryClient(test_node, namespace)
    try:
        client.wait_for_services(timeout=20.0)
    except RuntimeError:
        pytest.fail(f'memory node did not come up:\n{process.log()}')
    diagnostics: list[DiagnosticArray] = []
    test_node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    pub = test_node.create_publisher(ObservationMsg, f'{namespace}/engram/observations', 100)
    assert wait_for(lambda: pub.get_subscription_count() > 0, 10.0)
    for i, label in enumerate(('mug', 'book', 'zqxsecret', 'lamp')):
        pub.publish(observation(i, label, [3.0 * i, 0.0, 0.5], tags=('room:kitchen',)))
    pub.publish(observation(9, 'towel', [50.5, 50.0, 0.5]))        # in the privacy zone
    assert wait_for(lambda: client.list_engrams(limit=1).total == 4, 15.0), process.log()

    def dropped() -> str | None:
        for array in reversed(diagnostics):
            for status in array.status:
                if status.hardware_id == f'{namespace}/engram_memory':
                    return {kv.key: kv.value for kv in status.values}.get('dropped_privacy')
        return None
    assert wait_for(lambda: dropped() == '1', 10.0)

    page = client.list_engrams(tags_all=['room:kitchen'], offset=1, limit=2, requester='ops')
    assert page.status == ListEngrams.Response.STATUS_OK, page.message
    assert page.total == 4 and len(page.engrams) == 2
    near = client.list_engrams(center=(0.0, 0.0, 0.5), radius=1.0)
    assert [e.label for e in near.engrams] == ['mug']
    ids = {e.label: e.id for e in client.list_engrams().engrams}

    got = client.get_engrams([ids['book'], 9999])
    assert got.status == GetEngrams.Response.STATUS_UNKNOWN_ID
    assert [e.label for e in got.engrams] == ['book'] and list(got.unknown_ids) == [9999]

    edited = client.edit_engram(ids['lamp'], add_tags=['color:red'], pinned=True,
                                requester='alice')
    assert edited.status == EditEngram.Response.STATUS_OK, edited.message
    assert edited.engram.pinned and 'color:red' in edited.engram.tags
    assert client.list_engrams(pinned=True).total == 1

    preview = client.forget_engrams(tags_any=['label:zqxsecret'], dry_run=True)
    assert preview.forgotten == 1 and client.list_engrams(limit=1).total == 4
    gone = client.forget_engrams([ids['zqxsecret'], 4242], requester='bob')
    assert gone.status == ForgetEngrams.Response.STATUS_UNKNOWN_ID
    assert list(gone.forgotten_ids) == [ids['zqxsecret']] and list(gone.unknown_ids) == [4242]
    assert client.list_engrams(limit=1).total == 3
    assert client.recall(text='zqxsecret', k=5).engrams == []
    for path in store.rglob('*'):
        if path.is_file() and path.name != 'audit.jsonl':
            assert b'zqxsecret' not in path.read_bytes(), path

    # Bad requests: a status and a message, and the node keeps serving.
    r = ListEngrams.Response
    bad_lists = [({'kinds': ['chair']}, r.STATUS_UNKNOWN_KIND),
                 ({'radius': -1.0}, r.STATUS_INVALID_RADIUS),
                 ({'center': (float('nan'), 0, 0), 'radius': 1.0}, r.STATUS_INVALID_NUMBER),
                 ({'start': 20.0, 'end': 10.0}, r.STATUS_INVALID_TIME_WINDOW),
                 ({'tier': 'medium'}, r.STATUS_INVALID_TIER),
                 ({'limit': 5000}, r.STATUS_INVALID_PAGE),
                 ({'center': (0, 0, 0), 'radius': 1.0, 'frame_id': 'odom'},
                  r.STATUS_UNKNOWN_FRAME)]
    for kwargs, status in bad_lists:
        answer = client.list_engrams(**kwargs)
        assert answer.status == status, (kwargs, answer.message)
        assert answer.message
    assert client.get_engrams([]).status == GetEngrams.Response.STATUS_INVALID_PAGE
    assert client.edit_engram(ids['mug']).status == EditEngram.Response.STATUS_INVALID_EDIT
    assert client.edit_engram(777, pinned=True).status == EditEngram.Response.STATUS_UNKNOWN_ID
    assert client.edit_engram(ids['mug'], add_tags=['']).status == \
        EditEngram.Response.STATUS_INVALID_TAG
    assert client.forget_engrams().status == ForgetEngrams.Response.STATUS_EMPTY_SELECTION
    assert client.forget_engrams(kinds=['chair']).status == \
        ForgetEngrams.Response.STATUS_UNKNOWN_KIND
    assert client.list_engrams(limit=1).total == 3

    assert process.stop() == 0
    from engram_ros.core.audit import AuditLog

    records = list(AuditLog(store / 'audit.jsonl').records())
    assert AuditLog(store / 'audit.jsonl').verify().ok
    assert {'list', 'get', 'edit', 'forget', 'recall'} <= {r['action'] for r in records}
    assert {'ops', 'alice', 'bob'} <= {r['requester'] for r in records}


def test_encryption_without_a_key_stops_the_node(start_memory, tmp_path, monkeypatch):
    monkeypatch.delenv('ENGRAM_KEY', raising=False)
    process, _ = start_memory(None, tmp_path / 'store', 'encrypt_evidence:=true')
    assert process.proc.wait(30) != 0
    assert 'no key is given' in process.log()


def start(test_node, start_memory, store):
    process, namespace = start_memory(None, store)
    client = MemoryClient(test_node, namespace)
    try:
        client.wait_for_services(timeout=20.0)
    except RuntimeError:
        pytest.fail(f'memory node did not come up:\n{process.log()}')
    pub = test_node.create_publisher(ObservationMsg, f'{namespace}/engram/observations', 100)
    assert wait_for(lambda: pub.get_subscription_count() > 0, 10.0)
    pub.publish(observation(1, 'mug', [0.0, 0.0, 0.5]))
    assert wait_for(lambda: client.list_engrams(limit=1).total == 1, 15.0), process.log()
    return process, client


#: uint64 ids no engram can have (engram ids are int64).
HUGE_IDS = [2 ** 63, 2 ** 64 - 1]


def test_ids_beyond_int64_are_unknown_ids_on_every_service(test_node, start_memory, tmp_path):
    process, client = start(test_node, start_memory, tmp_path / 'store')
    mug = client.list_engrams().engrams[0].id
    for huge in HUGE_IDS:
        got = client.get_engrams([mug, huge])
        assert got.status == GetEngrams.Response.STATUS_UNKNOWN_ID, got.message
        assert list(got.unknown_ids) == [huge] and [e.id for e in got.engrams] == [mug]

        edited = client.edit_engram(huge, pinned=True)
        assert edited.status == EditEngram.Response.STATUS_UNKNOWN_ID, edited.message
        assert str(huge) in edited.message

        feedback = client.feedback([mug, huge], helped=True)
        assert feedback.status == Feedback.Response.STATUS_UNKNOWN_ID, feedback.message
        assert list(feedback.unknown_ids) == [huge]

        for dry_run in (True, False):
            gone = client.forget_engrams([huge], dry_run=dry_run)
            assert gone.status == ForgetEngrams.Response.STATUS_UNKNOWN_ID, gone.message
            assert list(gone.unknown_ids) == [huge] and gone.forgotten == 0
        # Narrowed by a filter that selects the mug: still only the named (unknown) id.
        gone = client.forget_engrams([huge], kinds=['object'])
        assert gone.status == ForgetEngrams.Response.STATUS_UNKNOWN_ID and gone.forgotten == 0
    assert client.list_engrams(limit=1).total == 1
    assert client.get_engrams([mug]).engrams[0].score == pytest.approx(0.5)   # unchanged
    assert process.stop() == 0, process.log()


def test_requests_past_a_size_limit_are_refused_at_the_limit_accepted(test_node, start_memory,
                                                                      tmp_path):
    process, client = start(test_node, start_memory, tmp_path / 'store')
    mug = client.list_engrams().engrams[0].id
    n = MAX_REQUEST_ITEMS
    many = [f'place:p{i}' for i in range(n)]

    at = client.edit_engram(mug, remove_tags=many, label='a' * MAX_LABEL_BYTES)
    assert at.status == EditEngram.Response.STATUS_OK, at.message
    long_label = client.edit_engram(mug, label='a' * (MAX_LABEL_BYTES + 1))
    assert long_label.status == EditEngram.Response.STATUS_INVALID_EDIT
    assert 'MAX_LABEL_BYTES' in long_label.message
    too_many = client.edit_engram(mug, remove_tags=many + ['place:one_more'])
    assert too_many.status == EditEngram.Response.STATUS_INVALID_TAG
    assert 'MAX_REQUEST_ITEMS' in too_many.message
    long_tag = client.edit_engram(mug, add_tags=['place:' + 'x' * (MAX_TAG_BYTES - 5)])
    assert long_tag.status == EditEngram.Response.STATUS_INVALID_TAG
    assert 'MAX_TAG_BYTES' in long_tag.message

    assert client.list_engrams(tags_none=many).status == ListEngrams.Response.STATUS_OK
    listed = client.list_engrams(tags_none=many + ['place:one_more'])
    assert listed.status == ListEngrams.Response.STATUS_INVALID_TAG
    assert 'MAX_REQUEST_ITEMS' in listed.message

    unknown = list(range(10 ** 6, 10 ** 6 + n))
    assert client.forget_engrams(unknown, dry_run=True).status == \
        ForgetEngrams.Response.STATUS_UNKNOWN_ID
    over = client.forget_engrams(unknown + [1], dry_run=True)
    assert over.status == ForgetEngrams.Response.STATUS_INVALID_PAGE
    assert 'MAX_REQUEST_ITEMS' in over.message
    assert client.feedback(unknown, helped=True).status == Feedback.Response.STATUS_UNKNOWN_ID
    over = client.feedback(unknown + [1], helped=True)
    assert over.status == Feedback.Response.STATUS_EMPTY and 'MAX_REQUEST_ITEMS' in over.message
    assert client.list_engrams(limit=1).total == 1
    assert process.stop() == 0, process.log()
