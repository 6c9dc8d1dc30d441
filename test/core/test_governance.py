"""Governance in the core store: list, edit, forget (really), status codes, privacy zones."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import ObservationExcluded
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.storage import SQLiteStorage

DIM = 16
SECRET_LABEL = 'zqxsecretlabel'
SECRET_TAG = 'color:zqxsecrettag'
SECRET_BYTES = b'ZQX-EVIDENCE-PLAINTEXT-0123456789' * 4


def observation(i: int, label: str, tags=(), evidence=(), position=None, stamp=None):
    rng = np.random.default_rng(i)
    return Observation(kind='object', frame_id='map',
                       position=np.array(position if position is not None else [i, 0.0, 0.5]),
                       stamp=stamp or time.time(), vector=rng.normal(size=DIM), label=label,
                       tags=tuple(tags), evidence=tuple(evidence))


def open_memory(directory: Path, **config) -> MemoryStore:
    storage = SQLiteStorage(directory)
    return MemoryStore(storage, StoreConfig(dim=DIM, **config),
                       audit=AuditLog(directory / 'audit.jsonl'))


@pytest.fixture
def memory(tmp_path):
    store = open_memory(tmp_path / 'store')
    for i in range(20):
        store.ingest(observation(i, f'thing{i}', tags=('room:kitchen',) if i % 2 else ()))
    yield store
    store.close()


def scan(directory: Path, needles: list[bytes]) -> list[str]:
    """Every (file, needle) where a file under ``directory`` contains a needle."""
    found = []
    for path in directory.rglob('*'):
        if path.is_file():
            data = path.read_bytes()
            found += [f'{path.name}: {n!r}' for n in needles if n in data]
    return found


def test_list_filters_and_pages(memory):
    result = memory.list_engrams(EngramFilter(tags_all=('room:kitchen',)), offset=2, limit=3)
    assert result.total == 10
    assert [e.id for e in result.engrams] == sorted(e.id for e in result.engrams)
    assert len(result.engrams) == 3
    region = memory.list_engrams(EngramFilter(center=np.array([0.0, 0.0, 0.5]), radius=2.5))
    assert sorted(e.label for e in region.engrams) == ['thing0', 'thing1', 'thing2']
    assert memory.list_engrams(EngramFilter(tier='long')).total == 0
    assert memory.list_engrams(EngramFilter(pinned=False)).total == 20


@pytest.mark.parametrize('selection, status', [
    (EngramFilter(kinds=('chair',)), GovernanceStatus.UNKNOWN_KIND),
    (EngramFilter(radius=-1.0), GovernanceStatus.INVALID_RADIUS),
    (EngramFilter(radius=1.0), GovernanceStatus.INVALID_RADIUS),
    (EngramFilter(radius=float('nan')), GovernanceStatus.INVALID_NUMBER),
    (EngramFilter(center=np.array([np.inf, 0, 0]), radius=1.0), GovernanceStatus.INVALID_NUMBER),
    (EngramFilter(center=np.zeros(3), radius=1.0, frame_id='odom'),
     GovernanceStatus.UNKNOWN_FRAME),
    (EngramFilter(t_start=10.0, t_end=5.0), GovernanceStatus.INVALID_TIME_WINDOW),
    (EngramFilter(tier='medium'), GovernanceStatus.INVALID_TIER),
    (EngramFilter(tags_any=('',)), GovernanceStatus.INVALID_TAG),
])
def test_malformed_filters_are_refused(memory, selection, status):
    with pytest.raises(GovernanceError) as err:
        memory.list_engrams(selection)
    assert err.value.status == status
    with pytest.raises(GovernanceError) as err:
        memory.forget(selection=selection)
    assert err.value.status == status
    assert len(memory) == 20


def test_bad_page_and_empty_forget(memory):
    for offset, limit in ((-1, 10), (0, 5000)):
        with pytest.raises(GovernanceError) as err:
            memory.list_engrams(offset=offset, limit=limit)
        assert err.value.status == GovernanceStatus.INVALID_PAGE
    with pytest.raises(GovernanceError) as err:
        memory.forget()
    assert err.value.status == GovernanceStatus.EMPTY_SELECTION
    assert len(memory) == 20


def test_edit_tags_label_pin(memory):
    engram = memory.edit(3, add_tags=('color:red',), label='teapot', pinned=True)
    assert engram.label == 'teapot' and engram.pinned
    assert 'label:teapot' in engram.tags and 'label:thing2' not in engram.tags
    assert 'color:red' in engram.tags
    assert memory.list_engrams(EngramFilter(tags_all=('label:teapot',))).total == 1
    assert memory.list_engrams(EngramFilter(pinned=True)).total == 1
    engram = memory.edit(3, remove_tags=('color:red',), pinned=False)
    assert 'color:red' not in engram.tags and not engram.pinned
    assert memory.list_engrams(EngramFilter(tags_all=('color:red',))).total == 0


@pytest.mark.parametrize('kwargs, status', [
    ({'engram_id': 9999, 'add_tags': ('color:red',)}, GovernanceStatus.UNKNOWN_ID),
    ({'engram_id': 3}, GovernanceStatus.INVALID_EDIT),
    ({'engram_id': 3, 'add_tags': ('color:red',), 'remove_tags': ('color:red',)},
     GovernanceStatus.INVALID_EDIT),
    ({'engram_id': 3, 'add_tags': ('',)}, GovernanceStatus.INVALID_TAG),
])
def test_bad_edits_are_refused(memory, kwargs, status):
    engram_id = kwargs.pop('engram_id')
    before = memory.get([3])[0]
    with pytest.raises(GovernanceError) as err:
        memory.edit(engram_id, **kwargs)
    assert err.value.status == status
    assert memory.get([3])[0].tags == before.tags


def test_forget_unknown_id_says_so(memory):
    result = memory.forget([1, 424242])
    assert result.forgotten_ids == [1]
    assert result.unknown_ids == [424242]
    assert result.status == GovernanceStatus.UNKNOWN_ID
    assert '424242' in result.message
    assert memory.get([1]) == []


def test_forget_by_region_time_and_dry_run(memory):
    preview = memory.forget(selection=EngramFilter(center=np.array([0, 0, 0.5]), radius=1.5),
                            dry_run=True)
    assert len(preview.forgotten_ids) == 2 and len(memory) == 20
    memory.forget(selection=EngramFilter(center=np.array([0, 0, 0.5]), radius=1.5))
    assert len(memory) == 18
    assert memory.forget(selection=EngramFilter(t_end=1.0)).forgotten_ids == []
    assert len(memory.forget(selection=EngramFilter(t_start=1.0)).forgotten_ids) == 18
    assert len(memory) == 0


def test_forget_leaves_no_trace_in_the_store_directory(tmp_path):
    directory = tmp_path / 'store'
    store = open_memory(directory)
    evidence = EvidenceStore(store.storage.evidence_dir)
    for i in range(30):
        store.ingest(observation(i, f'thing{i}'))
    uri = evidence.write('crop.png', SECRET_BYTES, 'image')
    secret = store.ingest(observation(100, SECRET_LABEL, tags=(SECRET_TAG,), evidence=(uri,),
                                      position=[50.0, 50.0, 0.0]))
    store.close()                     # the saved index cache now holds the secret too
    needles = [SECRET_LABEL.encode(), SECRET_TAG.split(':')[1].encode(), SECRET_BYTES[:40]]
    assert scan(directory, needles)   # the test can see it before the forget

    store = open_memory(directory)
    result = store.forget([secret.engram_id])
    assert result.forgotten_ids == [secret.engram_id] and result.evidence_files == 1
    assert scan(directory, needles) == []           # database, WAL, index cache, evidence
    store.vacuum()
    assert scan(directory, needles) == []
    store.close()
    assert scan(directory, needles) == []
    store = open_memory(directory)                  # reopens (index rebuilt), all else intact
    assert len(store) == 30 and store.get([secret.engram_id]) == []
    assert store.audit.verify().ok
    store.close()
    assert scan(directory, needles) == []


def test_edit_that_removes_a_tag_leaves_no_trace(tmp_path):
    directory = tmp_path / 'store'
    store = open_memory(directory)
    engram = store.ingest(observation(1, 'mug', tags=(SECRET_TAG,)))
    store.close()
    store = open_memory(directory)
    store.edit(engram.engram_id, remove_tags=(SECRET_TAG,))
    store.close()
    assert scan(directory, [SECRET_TAG.split(':')[1].encode()]) == []


def test_audit_records_actions_without_content(tmp_path):
    directory = tmp_path / 'store'
    store = open_memory(directory)
    engram = store.ingest(observation(1, SECRET_LABEL))
    store.list_engrams(requester='alice')
    store.edit(engram.engram_id, add_tags=(SECRET_TAG,), requester='bob')
    store.forget([engram.engram_id], requester='carol')
    store.close()
    records = list(store.audit.records())
    assert [r['action'] for r in records] == ['audit_start', 'list', 'edit', 'forget']
    assert [r['requester'] for r in records[1:]] == ['alice', 'bob', 'carol']
    assert records[3]['result']['ids'] == [engram.engram_id]
    assert records[2]['params']['add_tags'] == [store.audit.digest(SECRET_TAG)]
    assert SECRET_LABEL not in (directory / 'audit.jsonl').read_text()


def test_privacy_zone_observations_are_not_stored(tmp_path):
    policy = PrivacyPolicy.parse(zones=['circle:10,10,2', 'box:-5,-5,-4,-4'],
                                 windows=['epoch:1000-2000'])
    store = open_memory(tmp_path / 'store', privacy=policy)
    evidence = EvidenceStore(store.storage.evidence_dir)
    uri = evidence.write('bathroom.png', b'private pixels', 'image')
    with pytest.raises(ObservationExcluded, match='privacy zone circle'):
        store.ingest(observation(1, 'towel', position=[11.0, 10.5, 1.0], evidence=(uri,)))
    assert not evidence.path_of(uri).exists()      # its evidence is not kept either
    with pytest.raises(ObservationExcluded, match='box'):
        store.ingest(observation(2, 'sock', position=[-4.5, -4.5, 0.0]))
    with pytest.raises(ObservationExcluded, match='window'):
        store.ingest(observation(3, 'cup', position=[0.0, 0.0, 0.0], stamp=1500.0))
    store.ingest(observation(4, 'mug', position=[0.0, 0.0, 0.0]))
    assert len(store) == 1
    store.close()


def test_consolidation_deletes_expired_evidence(tmp_path):
    policy = PrivacyPolicy.parse(retention={'audio': 60.0, 'image': 0.0})
    store = open_memory(tmp_path / 'store', privacy=policy)
    evidence = EvidenceStore(store.storage.evidence_dir)
    clip = evidence.write('doorbell.wav', b'RIFF....', 'audio')
    photo = evidence.write('hall.png', b'PNG....', 'image')
    engram = store.ingest(observation(1, 'doorbell', evidence=(clip, photo)))
    assert store.consolidate(now=time.time()).evidence_expired == 0
    report = store.consolidate(now=time.time() + 120.0)
    assert report.evidence_expired == 1
    assert store.get([engram.engram_id])[0].evidence == (photo,)
    assert not evidence.path_of(clip).exists() and evidence.path_of(photo).exists()
    store.close()


def test_status_codes_match_the_services():
    srv = pytest.importorskip('engram_ros.srv')
    for name in ('ListEngrams', 'GetEngrams', 'EditEngram', 'ForgetEngrams'):
        response = getattr(srv, name).Response
        constants = [c for c in dir(response) if re.fullmatch(r'STATUS_[A-Z_]+', c)]
        assert constants
        for constant in constants:
            assert getattr(response, constant) == GovernanceStatus[constant[7:]], (name,
                                                                                   constant)
