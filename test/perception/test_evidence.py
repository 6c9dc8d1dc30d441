"""Perception's evidence goes through the memory's EvidenceStore: private, atomic, file://
URIs, and encrypted at rest when a key is given."""

import stat
import wave
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from engram_ros.core.evidence import EvidenceStore
from engram_ros.perception.evidence import encode_jpeg
from engram_ros.perception.evidence import encode_wav
from engram_ros.perception.objects import Detection

from test_pipeline import make
from test_pipeline import run_all
from test_pipeline import view


def see_the_mug(p):
    """One frame with the mug detected: its object observation."""
    pose, rgb, depth, box = view(0.0)
    p.add_pose(99.95, pose)
    p.add_pose(100.05, pose)
    jobs = p.add_depth(100.0, depth) + p.add_color(100.0, rgb)
    jobs += p.add_detections(100.0, [Detection('cup', 0.9, box)])
    (mug,) = [o for o in run_all(p, jobs) if o.kind == 'object']
    return mug


def test_images_and_clips_round_trip_through_uris(tmp_path):
    store = EvidenceStore(tmp_path / 'ev')
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200
    uri = store.write('mug_crop.jpg', encode_jpeg(rgb), 'image')
    path = Path(urlparse(uri).path)
    assert uri.startswith('file://') and path.parent == (tmp_path / 'ev' / 'image')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = cv2.imread(str(path))[..., ::-1]
    assert back.shape == rgb.shape and abs(int(back[..., 0].mean()) - 200) < 5
    assert store.write('mug_crop.jpg', b'x', 'image') != uri        # never overwrites
    clip = store.write('doorbell.wav', encode_wav(np.zeros(1600), 16000), 'audio')
    with wave.open(urlparse(clip).path) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 1600
    assert not list((tmp_path / 'ev').rglob('*.tmp'))


def test_a_crop_written_with_a_key_is_no_image_on_disk_and_reads_back_with_the_key(tmp_path):
    key = EvidenceStore.generate_key()
    mug = see_the_mug(make(tmp_path, evidence_key=key))
    (uri,) = mug.evidence
    path = Path(urlparse(uri).path)
    assert path.parent == tmp_path / 'evidence' / 'image' and path.name.endswith('.enc')
    on_disk = path.read_bytes()
    assert b'\xff\xd8' not in on_disk[:16] and b'JFIF' not in on_disk     # no JPEG in clear
    assert cv2.imdecode(np.frombuffer(on_disk, np.uint8), cv2.IMREAD_COLOR) is None
    data = EvidenceStore(tmp_path / 'evidence', key).read(uri)
    crop = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert crop.shape == (160, 160, 3) and crop[..., 0].mean() > 150    # the red mug
    # without a key the same pipeline writes plain JPEG, readable by anything
    (plain,) = see_the_mug(make(tmp_path / 'plain')).evidence
    assert Path(urlparse(plain).path).read_bytes()[:2] == b'\xff\xd8'


def test_evidence_names_reveal_no_label(tmp_path):
    """Names used to be ``mug_crop-<hex>.jpg.enc``: the label readable without the key."""
    for name, key in (('plain', None), ('encrypted', EvidenceStore.generate_key())):
        mug = see_the_mug(make(tmp_path / name, evidence_key=key))
        store = EvidenceStore(tmp_path / name / 'ev', key)
        store.write('mug_crop.mug', b'x', 'image')              # a hint is never a name
        store.write('doorbell.wav', b'RIFF', 'audio')
        assert mug.label == 'mug' and mug.evidence
        names = [p.name for p in (tmp_path / name).rglob('*')]
        assert names and not [n for n in names if 'mug' in n or 'crop' in n or 'door' in n]
        assert all(Path(urlparse(u).path).parent.name == 'image' for u in mug.evidence)
