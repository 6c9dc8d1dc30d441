"""Encoding raw evidence (frames, crops, clips) into the bytes that are kept.

Writing them is the memory's :class:`engram_ros.core.evidence.EvidenceStore` (atomic, private,
``file://`` URIs, encrypted at rest when a key is given), the same for perception and memory;
see :meth:`engram_ros.perception.pipeline.Perception.evidence_store`.
"""

from __future__ import annotations

import io
import wave

import cv2
import numpy as np


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
