"""The synthetic memory the service, load and scale benchmarks fill: long-term objects around
256 vector centres, spread over a 100 m x 100 m floor, with tag families of known selectivity
and one of 20 rooms each. One generator, so every benchmark measures the same memory."""

from __future__ import annotations

import numpy as np

DIM = 256
# Tag families: (tag, fraction of engrams carrying it).
TAGS = [('label:common', 0.5), ('label:frequent', 0.1), ('label:rare', 0.01),
        ('label:very_rare', 0.001)]


def engram_batches(size: int, seed: int = 0, batch: int = 10000):
    """Lists of at most ``batch`` new engrams (id 0: the store numbers them), ``size`` in all,
    the same for the same ``seed``."""
    from engram_ros.core.model.engram import Engram
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, DIM)).astype(np.float32)
    for start in range(0, size, batch):
        n = min(batch, size - start)
        vecs = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, DIM))
        pos = rng.uniform(0, 100, size=(n, 3)) * (1, 1, 0.02)
        engrams = []
        for i in range(n):
            tags = tuple(t for t, p in TAGS if rng.random() < p) + (
                f'room:r{rng.integers(0, 20)}',)
            engrams.append(Engram(
                id=0, kind='object', frame_id='map', position=pos[i],
                vector=vecs[i].astype(np.float32), first_seen=1.7e9 + start + i,
                last_seen=1.7e9 + start + i, tags=tags, label='thing', tier='long'))
        yield engrams
