"""Synthesised sounds: what plays when, attenuation with distance and walls, chunk continuity."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.sim.audio import attenuation
from engram_ros.sim.audio import Microphone
from engram_ros.sim.audio import rms
from engram_ros.sim.audio import source_signal
from engram_ros.sim.audio import walls_between
from engram_ros.sim.scenario import AudioSettings
from engram_ros.sim.world import SoundSpec
from engram_ros.sim.world import Wall
from engram_ros.sim.world import world

QUIET = AudioSettings(noise_floor=0.0, ref_distance=1.0, wall_loss=0.5)


def test_inverse_distance_law_and_wall_loss():
    assert attenuation(0.5, 0, QUIET) == 1.0          # capped inside the reference distance
    assert attenuation(2.0, 0, QUIET) == pytest.approx(0.5)
    assert attenuation(4.0, 0, QUIET) == pytest.approx(0.25)
    assert attenuation(4.0, 2, QUIET) == pytest.approx(0.25 * 0.25)


def test_walls_between_counts_walls_on_the_line():
    walls = [Wall(1.0, -5.0, 1.0, 5.0), Wall(2.0, -5.0, 2.0, 5.0)]
    assert walls_between((0, 0), (0.5, 3), walls) == 0
    assert walls_between((0, 0), (1.5, 0), walls) == 1
    assert walls_between((0, 0), (3, 0), walls) == 2


@pytest.mark.parametrize('synth', ['chime', 'beep', 'speech'])
def test_sources_play_only_in_their_window(synth):
    sound = SoundSpec('s', synth, (0, 0, 0), period=5.0, duration=1.5, phase=1.0)
    t = np.arange(0.0, 10.0, 1 / 16000)
    x = source_signal(sound, t)
    assert np.all(x[t < 1.0] == 0.0)                  # before the phase
    assert np.all(x[(t >= 2.6) & (t < 6.0)] == 0.0)   # between bursts
    assert rms(x[(t >= 1.0) & (t < 2.5)] * 32767) > 0.02


def test_heard_level_falls_with_distance_and_chunks_join():
    sound = SoundSpec('bell', 'chime', (0.0, 0.0, 1.0), period=2.0, duration=1.0)
    mic = Microphone([sound], [], QUIET, sample_rate=16000)
    near = rms(mic.chunk(0.0, 1.0, (1.0, 0.0)))
    far = rms(mic.chunk(0.0, 1.0, (4.0, 0.0)))
    assert far == pytest.approx(near / 4.0, rel=0.02)
    whole = mic.chunk(0.0, 1.0, (1.0, 0.0))
    halves = np.concatenate([mic.chunk(0.0, 0.5, (1.0, 0.0)), mic.chunk(0.5, 0.5, (1.0, 0.0))])
    np.testing.assert_array_equal(whole, halves)     # a pure function of time: no clicks


def test_house_doorbell_is_loud_in_the_hallway_and_faint_in_the_office():
    house = world('house')
    mic = Microphone(house.sounds, house.walls, AudioSettings())
    hallway = mic.levels((1.0, 5.25))['doorbell']
    office = mic.levels((8.5, 7.5))['doorbell']
    assert hallway > 5 * office
    assert mic.active(0.0, 1.0) == ['doorbell']
