"""Data and helpers shared by the index tests (``test_index*.py``): a small index of
``N`` engrams with known tags, kinds, positions and times, and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.index import EngramIndex

DIM = 16
N = 400


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _tags(i: int) -> list[str]:
    tags = [f'color:{("red", "green", "blue")[i % 3]}', f'room:{("kitchen", "hall")[i % 2]}']
    if i % 5 == 0:
        tags.append('label:mug')
    if i % 7 == 0:
        tags.append('label:cup')
    return tags


def make_data() -> dict:
    rng = np.random.default_rng(1)
    return {
        'ids': 10 + 3 * np.arange(N, dtype=np.int64),
        'vectors': _unit(rng, N),
        'kinds': np.arange(N) % 4,
        'positions': rng.uniform(-10, 10, (N, 3)),
        'first': 1000.0 + np.arange(N, dtype=np.float64),
        'last': 1000.0 + np.arange(N, dtype=np.float64) + 5.0,
        'tags': [_tags(i) for i in range(N)],
    }


def _build(data: dict, **kwargs: int) -> EngramIndex:
    index = EngramIndex(DIM, **kwargs)
    index.add_batch(data['ids'], data['vectors'], kinds=data['kinds'],
                    positions=data['positions'], first_seen=data['first'],
                    last_seen=data['last'], tags=data['tags'])
    return index


def _ids(index: EngramIndex, slots: np.ndarray | None) -> set[int]:
    assert slots is not None
    return set(index.ids_of(slots).tolist())


def _expected(data: dict, pred) -> set[int]:
    return {int(data['ids'][i]) for i in range(N) if pred(i)}


def _brute(vectors: np.ndarray, q: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    q = q / np.linalg.norm(q)
    sims = vectors[rows] @ q
    return rows[np.argsort(-sims, kind='stable')[:k]]


@pytest.fixture()
def data() -> dict:
    return make_data()


@pytest.fixture()
def index(data: dict) -> EngramIndex:
    return _build(data)
