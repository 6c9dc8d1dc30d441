"""Evidence files: private, atomic, referenced by file:// URI."""

import stat
import wave
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from engram_ros.perception.evidence import encode_jpeg
from engram_ros.perception.evidence import encode_wav
from engram_ros.perception.evidence import write_evidence


def test_images_and_clips_round_trip_through_uris(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200
    uri = write_evidence(tmp_path / 'ev', 'mug_crop.jpg', encode_jpeg(rgb), 'image')
    path = Path(urlparse(uri).path)
    assert uri.startswith('file://') and path.parent == (tmp_path / 'ev' / 'image').resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = cv2.imread(str(path))[..., ::-1]
    assert back.shape == rgb.shape and abs(int(back[..., 0].mean()) - 200) < 5
    second = write_evidence(tmp_path / 'ev', 'mug_crop.jpg', b'x', 'image')
    assert second != uri                                 # never overwrites

    clip = write_evidence(tmp_path / 'ev', 'doorbell.wav', encode_wav(np.zeros(1600), 16000),
                          'audio')
    with wave.open(urlparse(clip).path) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 1600
    assert not list((tmp_path / 'ev').rglob('*.tmp'))
