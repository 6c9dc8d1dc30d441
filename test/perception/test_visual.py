"""Visual encoders: the shipped ORB bag-of-words encoder and the pluggable learned backbone."""

import numpy as np
import pytest
import torch

from engram_ros.perception.scenes import render_view
from engram_ros.perception.visual import load_visual_encoder
from engram_ros.perception.visual import OrbBowEncoder
from engram_ros.perception.visual import random_projection
from engram_ros.perception.visual import TorchBackboneEncoder

HELD_OUT = (5001, 5002, 5003)       # scene seeds the shipped models were not trained on


@pytest.fixture(scope='module')
def orb():
    return load_visual_encoder('orb_bow', 256)


@pytest.fixture(scope='module')
def views():
    return {s: [render_view(s, v)[0] for v in range(2)] for s in HELD_OUT}


def test_vectors_are_unit_deterministic_and_recognise_places(orb, views):
    vectors = {s: [orb.encode(img) for img in imgs] for s, imgs in views.items()}
    for s, (a, b) in vectors.items():
        assert a.shape == (256,) and a.dtype == np.float32
        assert abs(np.linalg.norm(a) - 1.0) < 1e-5
        assert np.array_equal(a, orb.encode(views[s][0]))
        others = [vectors[o][1] for o in HELD_OUT if o != s]
        assert a @ b > max(a @ o for o in others), f'scene {s}: another place looks closer'


def test_visual_words_are_vocabulary_ids(orb, views):
    vector, words = orb.encode_with_words(views[HELD_OUT[0]][0], top=8)
    assert len(words) == 8 and all(0 <= w < len(orb.vocabulary) for w in words)
    assert words == orb.visual_words(views[HELD_OUT[0]][0], top=8)
    assert np.array_equal(vector, orb.encode(views[HELD_OUT[0]][0]))


def test_featureless_images_still_give_a_usable_vector(orb):
    flat = np.full((480, 640, 3), 128, np.uint8)
    v = orb.encode(flat)
    assert np.all(np.isfinite(v)) and abs(np.linalg.norm(v) - 1.0) < 1e-5
    assert orb.visual_words(flat) == ()


class TinyBackbone(torch.nn.Module):
    """A randomly initialised stand-in for a CLIP/DINO-class image model."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 5, stride=4)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(x))).flatten(1)


@pytest.mark.parametrize('width', [256, 96, 512])
def test_learned_backbone_from_local_torchscript_file(tmp_path, views, width):
    torch.manual_seed(0)
    path = tmp_path / 'backbone.pt'
    torch.jit.save(torch.jit.script(TinyBackbone(width)), str(path))
    encoder = load_visual_encoder(f'torchscript:{path}', 256)
    assert isinstance(encoder, TorchBackboneEncoder)
    a, b = (encoder.encode(views[s][0]) for s in HELD_OUT[:2])
    assert a.shape == (256,) and abs(np.linalg.norm(a) - 1.0) < 1e-5
    assert np.array_equal(a, encoder.encode(views[HELD_OUT[0]][0])) and not np.allclose(a, b)


def test_bad_encoder_specs(tmp_path):
    with pytest.raises(ValueError):
        load_visual_encoder('clip', 256)
    with pytest.raises(FileNotFoundError):
        load_visual_encoder(f'torchscript:{tmp_path}/missing.pt', 256)
    with pytest.raises(ValueError, match='retrain'):
        load_visual_encoder('orb_bow', 128)


def test_random_projection_keeps_cosines():
    x = np.random.default_rng(0).normal(size=(20, 96)).astype(np.float32)
    up = x @ random_projection(96, 256)
    cos = (x @ x.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    cos_up = (up @ up.T) / np.outer(np.linalg.norm(up, axis=1), np.linalg.norm(up, axis=1))
    assert np.allclose(cos, cos_up, atol=1e-5)


def test_compressor_file_is_small():
    from engram_ros.perception.visual import COMPRESSOR_FILE
    from engram_ros.perception.visual import MODELS_DIR
    total = sum(p.stat().st_size for p in MODELS_DIR.iterdir())
    assert COMPRESSOR_FILE.exists() and total <= 5 * 1024 * 1024
    assert OrbBowEncoder.load().dim == 256
