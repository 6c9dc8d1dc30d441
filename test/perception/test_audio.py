"""Audio engrams: segmentation by energy onset, log-mel embedding, sound event tags."""

import numpy as np
import pytest

from engram_ros.perception.audio import audio_embedding
from engram_ros.perception.audio import audio_features
from engram_ros.perception.audio import AudioSegmenter
from engram_ros.perception.audio import log_mel
from engram_ros.perception.audio import SoundClassifier
from engram_ros.perception.audio import SoundModel
from engram_ros.perception.sounds import GENERATORS
from engram_ros.perception.sounds import synthesise

SR = 16000
MODEL = SoundModel.load()


def stream(x: np.ndarray, segmenter: AudioSegmenter, chunk: int = 1600, t0: float = 100.0):
    out = []
    for i in range(0, len(x), chunk):
        out += segmenter.push(t0 + i / SR, x[i:i + chunk], SR)
    return out


def test_one_event_per_sound_with_its_onset_time():
    quiet = np.random.default_rng(0).normal(0, 1e-3, SR).astype(np.float32)
    x = np.concatenate([quiet, synthesise('doorbell', 5, pad=0.0), quiet, quiet,
                        synthesise('knock', 6, pad=0.0), quiet])
    segments = stream(x, AudioSegmenter())
    assert len(segments) == 2
    assert segments[0].stamp == pytest.approx(101.0, abs=0.05)
    assert 0.8 < segments[0].duration < 2.0
    assert segments[1].stamp > segments[0].stamp + segments[0].duration


def test_silence_and_steady_noise_make_no_event():
    noise = np.random.default_rng(1).normal(0, 0.01, 5 * SR).astype(np.float32)
    assert stream(noise, AudioSegmenter()) == []
    assert stream(np.zeros(3 * SR, np.float32), AudioSegmenter()) == []


def test_long_sounds_are_cut_at_max_duration():
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(6 * SR) / SR)).astype(np.float32)
    x = np.concatenate([np.zeros(SR // 2, np.float32), tone])
    segments = stream(x, AudioSegmenter(max_duration=2.0))
    assert len(segments) >= 2 and all(s.duration <= 2.05 for s in segments)


def test_log_mel_shape_and_tone_band():
    tone = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32)
    s = log_mel(tone, SR)
    assert s.shape[1] == 40 and 95 <= s.shape[0] <= 100
    assert 10 < int(np.argmax(s.mean(axis=0))) < 25


@pytest.mark.parametrize('name', sorted(GENERATORS))
def test_synthesised_sounds_get_their_tag_at_other_levels_and_noise(name):
    classifier = SoundClassifier(MODEL)
    x = synthesise(name, 9999, level=0.2, snr_db=20.0, pad=1.0)
    (segment,) = stream(x, AudioSegmenter())
    label, similarity = classifier.classify(audio_features(segment.samples, SR))
    assert label == name, (label, similarity)


def test_embedding_is_unit_length_and_same_class_is_closer():
    def vec(name, seed):
        return audio_embedding(audio_features(synthesise(name, seed), SR), MODEL, 256)

    a, b, c = vec('alarm', 1), vec('alarm', 2), vec('speech', 1)
    assert a.shape == (256,) and abs(np.linalg.norm(a) - 1) < 1e-5
    assert a @ b > a @ c


def test_background_sounds_mostly_get_no_tag():
    classifier = SoundClassifier(MODEL)
    labels = [classifier.classify(audio_features(synthesise('background', 7000 + i), SR))[0]
              for i in range(10)]
    assert labels.count('') >= 6, labels
