"""Writing raw evidence (frames, crops, clips) and naming it by ``file://`` URI.

Everything goes through :func:`write_evidence`, whose signature follows the memory's
``EvidenceStore.write(name, data, kind)`` (engram_ros/core/evidence.py, encryption at rest), so
switching to that API is a change in this one function.
"""

from __future__ import annotations

import io
import os
import secrets
import wave
from pathlib import Path

import cv2
import numpy as np


def write_evidence(directory: str | Path, name: str, data: bytes, kind: str) -> str:
    """Write ``data`` atomically and privately (0600) under ``directory/kind/``; return its URI.

    :raises OSError: when the directory cannot be written.
    """
    folder = Path(os.path.expanduser(str(directory))) / kind
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem, dot, ext = name.rpartition('.')
    path = folder / f'{stem or ext}-{secrets.token_hex(4)}{dot}{ext if stem else ""}'
    tmp = path.with_suffix(path.suffix + '.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)
    return path.resolve().as_uri()


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """RGB uint8 image -> JPEG bytes."""
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return buf.tobytes()


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples in [-1, 1] -> 16-bit PCM WAV bytes."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype('<i2')
    buf = io.BytesIO()
    with wave.open(buf, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
